"""The ``CarlaUE4.sh`` shim that hands the stock B2D evaluator's own CARLA server over to the launcher, race-free.

The B2D evaluator starts ``$CARLA_ROOT/CarlaUE4.sh`` itself, in a session of its own (so killing the evaluator's
group leaves it running), and on a crash kills every process matching ``-graphicsadapter=<rank>``, other jobs'
servers included. Each attempt's ``CARLA_ROOT`` therefore points at a shim that records the server's process group
in the attempt folder, renames the flag to ``-GraphicsAdapter=`` (UE4 reads it case-insensitively) and execs the real
script.

The hand-over: the shim writes its record (``carla_server.<pid>.pgid``, by rename, so never half-written) *before*
it looks for the attempt's ``attempt.closed`` marker, and exits without starting anything if the marker is there;
the launcher creates the marker *before* it reads the records. Whatever the interleaving, either the launcher sees the
record and kills that group, or the shim sees the marker and exits: no server outlives its attempt.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from irlvla.atomic import atomic_write_bytes

CLOSED_MARKER = "attempt.closed"
SHIM_EXIT_CLOSED = 75  # EX_TEMPFAIL: the attempt was already over when the evaluator tried to start its server
_LEGACY_RECORD = "carla_server.pgid"  # single record written by launchers before the hand-over protocol

_SHIM = """#!{python}
# irlvla shim for the B2D evaluator's own CARLA launch (see bench2drive_eval/launcher/shim.py): record the server's
# process group (and the group leader's start time, so a recycled pgid is never killed), then start the real server
# unless the launcher has already closed this attempt; -graphicsadapter= becomes -GraphicsAdapter= so the evaluator's
# pattern kill cannot hit other jobs' servers.
import os, sys
adir = {adir!r}
pgid = os.getpgid(0)
try:
    with open("/proc/%d/stat" % pgid) as f:
        start = f.read().rsplit(")", 1)[1].split()[19]
except (OSError, IndexError):
    start = ""
record = os.path.join(adir, "carla_server.%d.pgid" % os.getpid())
with open(record + ".tmp", "w") as f:
    f.write(("%d %s" % (pgid, start)).strip())
os.replace(record + ".tmp", record)
if os.path.exists(os.path.join(adir, {closed!r})):
    os.unlink(record)
    sys.exit({closed_rc})
args = ["-GraphicsAdapter=" + a.split("=", 1)[1] if a.startswith("-graphicsadapter=") else a for a in sys.argv[1:]]
os.execv({real!r}, [{real!r}, *args])
"""


def write_shim(adir: Path, real_root: Path) -> Path:
    """Write the attempt's shim ``CARLA_ROOT`` (returned) for the real install at ``real_root``."""
    shim_root = adir / "carla_shim"
    shim = shim_root / "CarlaUE4.sh"
    text = _SHIM.format(
        python=sys.executable,
        adir=str(adir.resolve()),
        closed=CLOSED_MARKER,
        closed_rc=SHIM_EXIT_CLOSED,
        real=str(real_root / "CarlaUE4.sh"),
    )
    atomic_write_bytes(shim, text.encode())
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return shim_root


def _read_record(path: Path) -> tuple[int, str] | None:
    try:
        parts = path.read_text().split()
    except OSError:
        return None
    if not parts or not parts[0].isdigit():
        return None
    return int(parts[0]), parts[1] if len(parts) > 1 else ""


def server_groups(adir: Path) -> list[tuple[int, str]]:
    """(pgid, group leader start time or "") of every server the shim started in this attempt."""
    paths = [*sorted(adir.glob("carla_server.*.pgid")), adir / _LEGACY_RECORD]
    return [rec for p in paths if (rec := _read_record(p)) is not None]


def close_attempt(adir: Path) -> list[tuple[int, str]]:
    """Mark the attempt closed (a shim starting from now on exits at once), then return the servers it recorded."""
    try:
        fd = os.open(adir / CLOSED_MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.close(fd)
    except FileExistsError:
        pass
    return server_groups(adir)


def is_closed(adir: Path) -> bool:
    return (adir / CLOSED_MARKER).exists()
