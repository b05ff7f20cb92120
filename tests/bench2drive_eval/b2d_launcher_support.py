"""Shared by the launcher tests: the run fixture over test doubles of CARLA and the evaluator, and helpers that
poll with deadlines (a loaded CI machine is slow, never wrong)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench2drive_eval.launcher.config import LaunchConfig
from bench2drive_eval.launcher.processes import is_running, tagged_processes
from bench2drive_eval.records import load_records

FAKES = Path(__file__).resolve().parent / "fakes"
EVALUATOR = (
    f"{sys.executable} {FAKES / 'fake_leaderboard_evaluator.py'} --routes={{routes}} --checkpoint={{checkpoint}} "
    "--agent={agent} --agent-config={agent_config} --host={host} --port={port} --traffic-manager-port={tm_port} "
    "--gpu-rank={gpu} --track={track}"
)
SERVER = (
    f"{sys.executable} {FAKES / 'fake_carla_server.py'} -RenderOffScreen -carla-rpc-port={{port}} "
    "-graphicsadapter={gpu}"
)
IDS = [str(i) for i in range(101, 109)]
# the smallest agent file the leaderboard (and the preflight) accepts: an entry point naming a class
AGENT = 'def get_entry_point():\n    return "Agent"\n\n\nclass Agent:\n    pass\n'


def runs(state: Path) -> list[tuple[str, str]]:
    path = state / "runs.log"
    return [tuple(line.split()) for line in path.read_text().splitlines()] if path.is_file() else []


def done_counts(state: Path) -> Counter:
    return Counter(rid for rid, what in runs(state) if what == "done")


def launcher_args(cfg, *extra: str) -> list[str]:
    """`irlvla b2d eval` arguments for the fixture's routes on one GPU, fast polling."""
    return [
        "b2d", "eval", "--routes", str(cfg.routes), "--agent", str(cfg.agent), "--agent-config", cfg.agent_config,
        "--out", str(cfg.out), "--gpus", "0", *extra,
        "--base-port", str(cfg.base_port), "--poll", "0.05", "--route-timeout", "30",
    ]  # fmt: skip


def sigkill_launcher_after_two_routes(args: list[str], state: Path) -> None:
    """Run the launcher as its own process and SIGKILL it once two routes are done, leaving its children behind."""
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    with open(state / "launcher.log", "ab") as out:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "irlvla.cli", *args], cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_until(
            lambda: sum(done_counts(state).values()) >= 2 or launcher.poll() is not None,
            timeout_s=180,
            what="two routes done by the launcher",
        )
        assert launcher.poll() is None, f"the launcher exited early (see {state / 'launcher.log'})"
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()


def pids(state: Path, name: str) -> list[int]:
    path = state / name
    return [int(line.split()[0]) for line in path.read_text().splitlines()] if path.is_file() else []


def alive(pid: int) -> bool:
    """Running (a zombie is dead: an orphan killed in a container whose init does not reap stays one)."""
    return is_running(pid)


def free_tcp_port() -> int:
    """A port the kernel just handed out as free. A fixed port in the ephemeral range (32768-60999) can be taken by
    any outgoing connection on a busy machine; this one can too, but only in the moment between close and reuse."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(cond, timeout_s: float = 120.0, what: str = "condition") -> None:
    """Poll ``cond`` until it holds; fail after ``timeout_s`` (generous: a loaded CI machine is slow, never wrong)."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def assert_all_dead(pids_: list[int], cfg: LaunchConfig | None = None) -> None:
    """Every listed process, and every process tagged under the run folder, is gone (polled, with a deadline)."""
    wait_until(lambda: not any(alive(p) for p in pids_), what=f"processes {pids_} to exit")
    if cfg is not None:
        prefix = str(cfg.out.resolve()) + os.sep
        wait_until(lambda: not tagged_processes(prefix), what="no process tagged with the run folder")


def assert_one_record_each(cfg: LaunchConfig, result) -> None:
    assert result.ok, (result.missing, result.duplicates, result.shard_errors)
    ids = sorted(r["route_id"].split("_")[1] for r in result.records)
    assert ids == IDS
    merged = load_records(cfg.out / "merged.json")
    assert len(merged) == len(IDS)
