"""Child processes in their own process groups, so a kill reaches a server's children and nothing else."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def start_process(
    cmd: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None
) -> subprocess.Popen:
    """Start ``cmd`` as a new session (its own process group), stdout+stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as logf:
        logf.write(f"\n### {time.strftime('%Y-%m-%d %H:%M:%S')} $ {' '.join(cmd)}\n".encode())
        logf.flush()
        proc = subprocess.Popen(
            list(cmd),
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    log.debug("started pid %d: %s", proc.pid, " ".join(cmd))
    return proc


def kill_group(pgid: int, grace_s: float = 5.0, proc: subprocess.Popen | None = None) -> None:
    """SIGTERM the process group, then SIGKILL after ``grace_s``; a group that is already gone is fine."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is None:
            time.sleep(0.05)
            continue
        if not group_alive(pgid):
            break
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + max(grace_s, 5.0)  # SIGKILL is not instant: wait until the group is gone
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if proc is not None:
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            log.warning("pid %d did not exit after SIGKILL", proc.pid)


def group_alive(pgid: int) -> bool:
    """True while a process of group ``pgid`` runs; zombies (dead, not yet reaped by a parent that never waits, as
    the evaluator's server is) do not count."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for _pid, stat in _proc_stats():
        if stat[2] == str(pgid) and stat[0] != "Z":
            return True
    return False


def _proc_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, fields after the command name of /proc/<pid>/stat: state, ppid, pgrp, ...) for every process."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        yield int(entry.name), [x.decode() for x in fields[:3]]


def is_running(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


# Every process a launcher attempt starts carries this variable (value: the attempt's folder). Children inherit it,
# including servers the evaluator starts in a session of their own, so a sweep over /proc finds every process of an
# attempt whatever crashed when, even with no pid file written: the role a cgroup would play, without privileges.
TAG_ENV = "IRLVLA_B2D_ATTEMPT"


def tagged_processes(prefix: str) -> list[int]:
    """Running processes of this user whose ``TAG_ENV`` value starts with ``prefix`` (never this process)."""
    needle = f"{TAG_ENV}={prefix}".encode()
    me = os.getpid()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                env = f.read()
        except OSError:  # another user's process, or gone
            continue
        if any(var.startswith(needle) for var in env.split(b"\0")) and is_running(int(entry.name)):
            found.append(int(entry.name))
    return found


def kill_tagged(prefix: str, grace_s: float = 5.0) -> list[int]:
    """SIGTERM every process tagged under ``prefix``, SIGKILL what is left after ``grace_s``, until none runs (forks
    made meanwhile are caught by the next sweep). Returns the pids found."""
    seen: set[int] = set()
    deadline = time.monotonic() + grace_s
    sig = signal.SIGTERM
    while pids := tagged_processes(prefix):
        seen.update(pids)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            sig = signal.SIGKILL
        if time.monotonic() > deadline + max(grace_s, 5.0):
            log.warning("processes %s tagged %s survive SIGKILL", pids, prefix)
            break
        time.sleep(0.05)
    return sorted(seen)


def process_start_time(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (field 22 of ``/proc/<pid>/stat``): with the pid, it names
    one process for good, since a recycled pid gets a later start time."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def stop_process(proc: subprocess.Popen | None, grace_s: float = 5.0) -> None:
    """Kill a child started by `start_process` with its whole group (its pgid is its pid)."""
    if proc is None:
        return
    kill_group(proc.pid, grace_s, proc)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str, port: int, timeout_s: float, proc: subprocess.Popen | None = None, poll_s: float = 0.2
) -> bool:
    """Wait until ``host:port`` accepts connections; False on timeout or if ``proc`` exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if port_open(host, port):
            return True
        time.sleep(poll_s)
    return False
