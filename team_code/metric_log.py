"""Per-route `metric_info.json` for Bench2Drive's comfort (smoothness) tool, written incrementally and atomically.

Format (what `tools/efficiency_smoothness_benchmark.py` and our `bench2drive_eval.comfort` read): a JSON object
`{"<step>": {"acceleration": [x, y, z], "angular_velocity": [x, y, z], "forward_vector": [...], "right_vector": [...],
"location": [...], "rotation": [roll, pitch, yaw]}}` in step order, raw CARLA values (left-handed, deg/s, degrees).

Why a journal: the Zoo agents rewrite the whole JSON every tick (O(T^2) over a 4000-tick route, and a torn file if the
process dies mid-write). Here each step is one appended, flushed JSON line in `metric_info.jsonl`; every
`flush_every` steps and at `close()` the JSON is materialised to a temporary file and `os.replace`d into place, so
`metric_info.json` is always complete, and the journal still holds every step if the evaluator is killed between
materialisations (`materialize(journal)` rebuilds it).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from irlvla.atomic import atomic_write_text

logger = logging.getLogger(__name__)

METRIC_KEYS = ("acceleration", "angular_velocity", "forward_vector", "right_vector", "location", "rotation")
JSON_NAME = "metric_info.json"
JOURNAL_NAME = "metric_info.jsonl"


def metric_info_from_actor(actor) -> dict[str, list[float]]:
    """The six signals of Bench2Drive's `get_metric_info()`, read from a CARLA vehicle (or any look-alike)."""

    def vec(v) -> list[float]:
        return [float(v.x), float(v.y), float(v.z)]

    tf = actor.get_transform()
    rot = tf.rotation
    return {
        "acceleration": vec(actor.get_acceleration()),
        "angular_velocity": vec(actor.get_angular_velocity()),
        "forward_vector": vec(tf.get_forward_vector()),
        "right_vector": vec(tf.get_right_vector()),
        "location": vec(tf.location),
        "rotation": [float(rot.roll), float(rot.pitch), float(rot.yaw)],
    }


def _check_record(info: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    missing = [k for k in METRIC_KEYS if k not in info]
    if missing:
        raise ValueError(f"metric record is missing {missing}")
    out = {}
    for k in METRIC_KEYS:
        v = [float(x) for x in info[k]]
        if len(v) != 3:
            raise ValueError(f"metric record {k} must have 3 values, got {len(v)}")
        out[k] = v
    return out


def read_journal(journal: Path) -> dict[str, dict]:
    """Steps from a journal; a torn last line (process killed mid-write) is skipped with a warning."""
    out: dict[str, dict] = {}
    with Path(journal).open("r", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                out[str(int(rec["step"]))] = _check_record(rec["info"])
            except (ValueError, KeyError, TypeError) as e:
                logger.warning("%s line %d unreadable (%s); skipped", journal, n, e)
    return out


def materialize(journal: Path, target: Path | None = None) -> Path:
    """Rebuild `metric_info.json` next to `journal` (or at `target`) from the journal, atomically."""
    journal = Path(journal)
    target = target or journal.with_name(JSON_NAME)
    atomic_write_text(target, json.dumps(read_journal(journal)))
    return target


class MetricLogger:
    """Appends one record per step to the journal and materialises `metric_info.json` periodically and on close."""

    def __init__(self, directory: str | os.PathLike, flush_every: int = 200) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every must be >= 1, got {flush_every}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.flush_every = int(flush_every)
        self.json_path = self.directory / JSON_NAME
        self.journal_path = self.directory / JOURNAL_NAME
        self._records: dict[str, dict] = {}
        self._journal = self.journal_path.open("a", encoding="utf-8")
        self._dirty = 0
        self.closed = False

    def __len__(self) -> int:
        return len(self._records)

    def append(self, step: int, info: Mapping[str, Sequence[float]]) -> None:
        if self.closed:
            raise RuntimeError("MetricLogger is closed")
        rec = _check_record(info)
        key = str(int(step))
        self._records[key] = rec
        self._journal.write(json.dumps({"step": int(step), "info": rec}, separators=(",", ":")) + "\n")
        self._journal.flush()
        self._dirty += 1
        if self._dirty >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write `metric_info.json` atomically from the in-memory records."""
        atomic_write_text(self.json_path, json.dumps(self._records))
        self._dirty = 0

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.flush()
        finally:
            self._journal.close()
            self.closed = True
