"""Imitation: every loss trains, checkpoints load, a killed run resumes to the same loss, DDP on two CPU processes."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from agent.checkpoint import load_checkpoint
from irlvla.cli import build_parser
from training.cli import train_config
from training.config import OptimConfig, TrainConfig
from training.il import expert_trajectories, train_anchors, train_il

REPO = Path(__file__).resolve().parents[2]


def cli_env() -> dict[str, str]:
    """Environment for a subprocess running this checkout's CLI (this tree first on the path)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "irlvla.cli", *args]


def _curve(out) -> dict[int, float]:
    with open(out / "curves.csv", newline="") as fh:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(fh)}


def test_il_trains_every_loss(tiny_il):
    out = tiny_il.parent
    with open(out / "curves.csv", newline="") as fh:
        row = list(csv.DictReader(fh))[-1]
    for key in ("plan_cls", "plan_reg", "det_box", "map_pts", "seg_ce"):
        assert np.isfinite(float(row[key])), key
    assert (out / "curves.png").is_file()  # matplotlib is in the dev extra
    model = load_checkpoint(tiny_il)
    assert model.cfg.name == "tiny"


def test_anchors_from_dataset(tiny_data, tmp_path):
    info = train_anchors(tiny_data, tmp_path / "a.npy", k=3)
    anchors = np.load(tmp_path / "a.npy")
    assert anchors.shape == (3, 8, 3) and info["num_trajectories"] == len(expert_trajectories(tiny_data))


def _wait(pred, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc.poll() is not None:
            raise AssertionError(f"training exited early with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        time.sleep(0.2)
    raise AssertionError("timed out waiting for the training process")


def test_resume_after_kill_continues_to_the_same_loss(tiny_data, tmp_path, one_torch_thread):
    """The CLI run is SIGKILLed after its step-2 checkpoint; resumed (in process, the same config as the flags) it
    ends at the loss of an uninterrupted run."""
    args = ["train", "il", "--data", str(tiny_data), "--steps", "4", "--batch-size", "1", "--checkpoint-every", "2"]
    args += ["--num-workers", "0", "--device", "cpu", "--no-progress", "--lr", "1e-3", "--warmup-steps", "1"]
    cfg = TrainConfig(4, 1, checkpoint_every=2, num_workers=0, device="cpu", optim=OptimConfig(lr=1e-3, warmup_steps=1))
    assert train_config(build_parser(["train"]).parse_args([*args, "--out", "x"])) == cfg
    straight = tmp_path / "straight"
    train_il(tiny_data, straight, cfg, progress=False)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        cli(*args, "--out", str(killed)),
        env={**cli_env(), **one_torch_thread},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    state = killed / "state.pt"

    def checkpointed() -> bool:
        return state.is_file() and torch.load(state, weights_only=True)["step"] >= 2

    try:
        _wait(checkpointed, 600, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    train_il(tiny_data, killed, cfg, progress=False)
    a, b = _curve(straight), _curve(killed)
    assert sorted(b) == [1, 2, 3, 4]
    assert b[4] == pytest.approx(a[4], rel=1e-4, abs=1e-5)
    assert json.loads((killed / "summary.json").read_text())["start_step"] >= 2


def test_ddp_two_cpu_processes(tiny_data, tmp_path):
    out = tmp_path / "ddp"
    cmd = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "irlvla.cli"]
    cmd += ["train", "il", "--data", str(tiny_data), "--out", str(out), "--steps", "1", "--batch-size", "1"]
    cmd += ["--num-workers", "0", "--device", "cpu", "--no-progress"]
    res = subprocess.run([sys.executable, *cmd], env=cli_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world"] == 2 and np.isfinite(summary["last"]["loss"])
