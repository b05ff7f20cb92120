"""The project's one way to write a file: all or nothing, with the permissions a plain `open()` would give.

Every artefact a run produces (scenes, PNGs, CSVs, checkpoints and their sha256, configs, run records) is written
through here so that a killed or failed run never leaves a half-written file, and never replaces a good one with
garbage. `tempfile.mkstemp` creates its file 0600 and that mode survives the rename, so a docker evaluator running as
another user could not read our weights; we apply the process umask ourselves, as `open()` does.

This module is stdlib-only on purpose: every room (including the torch-free `bench2drive_eval/`) imports it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "file_mode"]


def file_mode() -> int:
    """The mode `open(path, "w")` would give a new file under the current umask (read, never cached)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on normal exit it replaces `path` atomically, on error it vanishes.

    For writers that want a file name rather than bytes (`np.savez`, `safetensors.torch.save_file`, `PIL.Image.save`,
    video writers). `suffix` keeps the extension such writers look at (default: `path`'s own suffix).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=path.suffix if suffix is None else suffix, dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, file_mode())
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` all or nothing (temporary file in the same folder, fsync, rename)."""
    with atomic_path(path, suffix=".tmp") as tmp, open(tmp, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` all or nothing."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Write `obj` as strict JSON (NaN and infinity refused, so every reader can parse it) all or nothing."""
    atomic_write_text(path, json.dumps(obj, indent=indent, allow_nan=False) + "\n")
