"""Every artefact comes out with the mode a plain `open()` gives under the umask (0644 under 022), never mkstemp's 0600.

A docker evaluator running as another user must be able to read our weights, scenes and reports (issue 9 item 5).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from agent.checkpoint import save_checkpoint, sha256_path, write_manifest_entry
from agent.config import load_preset
from agent.model.irlvla import build_model
from irlvla.atomic import atomic_path, atomic_write_bytes, atomic_write_json, file_mode
from irlvla.cli import main
from navsim_eval.aggregate import write_csv
from navsim_eval.cli import write_baseline_trajectories
from navsim_eval.crosscheck.compare import _write_json
from sim.scenarios import generate_scene
from sim.scene_io import save_scene
from team_code.metric_log import METRIC_KEYS, MetricLogger


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _expected(mask: int) -> int:
    return 0o666 & ~mask  # 0o644 under 022, 0o640 under 027


def _no_temporaries(folder: Path) -> None:
    assert not [p.name for p in folder.rglob(".*")], "a temporary file was left behind"


def test_file_mode_follows_the_umask(umask):
    assert file_mode() == _expected(umask)
    assert file_mode() == _expected(umask)  # reading the umask must not change it


def test_helpers_write_with_the_umask_mode(umask, tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"x")
    atomic_write_json(tmp_path / "sub" / "b.json", {"k": 1})
    with atomic_path(tmp_path / "c.npz") as tmp:
        np.savez(tmp, a=np.zeros(2))
    for name in ("a.bin", "sub/b.json", "c.npz"):
        assert _mode(tmp_path / name) == _expected(umask), name
    _no_temporaries(tmp_path)


def test_checkpoint_sha256_config_and_manifest_modes(umask, tmp_path):
    cfg = load_preset("tiny")
    torch.manual_seed(0)
    path = save_checkpoint(build_model(cfg), tmp_path / "w" / "tiny.safetensors")
    cfg_path = cfg.save(tmp_path / "w" / "tiny.yaml")
    json_path = cfg.save(tmp_path / "w" / "tiny.json")
    manifest = tmp_path / "w" / "manifest.json"
    write_manifest_entry(manifest, "tiny", path)
    for p in (path, sha256_path(path), cfg_path, json_path, manifest):
        assert _mode(p) == _expected(umask), p.name
    _no_temporaries(tmp_path)


def test_scene_csv_npz_png_metric_log_and_report_modes(umask, tmp_path):
    scenes = tmp_path / "scenes"
    scene_path = save_scene(generate_scene("curve", 0), scenes / "s0")
    csv_path = write_csv(tmp_path / "scores.csv", "token,score\na,1.0\n")
    npz_path = tmp_path / "plans.npz"
    assert write_baseline_trajectories(scenes, "constant_velocity", npz_path) == 1
    report = tmp_path / "report.json"
    _write_json(report, {"all_agree": 1})
    log = MetricLogger(tmp_path / "route", flush_every=1)
    log.append(0, {k: [0.0, 0.0, 0.0] for k in METRIC_KEYS})
    log.close()
    out = tmp_path / "png"
    rc = main(["scenes", "show", str(scene_path), "--out", str(out), "--width", "64", "--height", "36"])
    assert rc == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 8  # six cameras, the mosaic and the BEV
    written = [scene_path, csv_path, npz_path, report, log.json_path, *pngs]
    for p in written:
        assert _mode(p) == _expected(umask), p.name
    assert json.loads(report.read_text()) == {"all_agree": 1}
    _no_temporaries(tmp_path)
