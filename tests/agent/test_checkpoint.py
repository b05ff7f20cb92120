"""Checkpoints: exact round trip, integrity check, and clear errors for mismatched configs or weights."""

from __future__ import annotations

import json

import pytest
import torch

from agent.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_state_strict,
    read_checkpoint,
    save_checkpoint,
    sha256_file,
    sha256_path,
    write_manifest_entry,
)
from agent.config import load_preset
from agent.model.irlvla import build_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    cfg = load_preset("tiny")
    model = build_model(cfg)
    with torch.no_grad():  # make the weights differ from a fresh build so the round trip means something
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
        model.planner.anchors.add_(0.5)
    path = save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", {"note": "test"})
    return cfg, model, path


def test_round_trip_is_exact(saved):
    cfg, model, path = saved
    loaded = load_checkpoint(path)
    assert loaded.cfg == cfg
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    stored, _, meta = read_checkpoint(path)
    assert stored == cfg and meta["note"] == "test" and json.loads(meta["config"])["name"] == "tiny"


def test_sha256_sidecar(saved):
    _, _, path = saved
    side = sha256_path(path).read_text().split()
    assert side == [sha256_file(path), path.name]


def test_corrupted_file_is_refused(saved, tmp_path):
    _, _, path = saved
    bad = tmp_path / "bad.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    sha256_path(bad).write_text(sha256_path(path).read_text())
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(bad)
    truncated = tmp_path / "trunc.safetensors"
    truncated.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(truncated)  # no sidecar: the integrity check only warns, parsing fails clearly


def test_wrong_config_is_named(saved):
    _, _, path = saved
    other = load_preset("tiny", planner={"num_anchors": 6})
    with pytest.raises(CheckpointError, match=r"planner\.num_anchors: 8 != 6"):
        load_checkpoint(path, cfg=other)


def test_mismatched_weights_are_named(saved):
    _, _, path = saved
    _, state, _ = read_checkpoint(path)
    other = build_model(load_preset("tiny", map={"num_points": 6}))
    with pytest.raises(CheckpointError, match=r"map\.points\.2\.weight: checkpoint \(20, 32\) vs model \(12, 32\)"):
        load_state_strict(other, state)
    state = dict(state)
    state.pop("rwm.ep_head.2.bias")
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"missing.*rwm\.ep_head\.2\.bias.*unexpected.*extra\.weight"):
        load_state_strict(build_model(load_preset("tiny")), state)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "none.safetensors")


def test_manifest_entry(saved, tmp_path):
    _, _, path = saved
    manifest = tmp_path / "manifest.json"
    write_manifest_entry(manifest, "tiny-test", path, produced_by="unit test")
    entry = json.loads(manifest.read_text())["tiny-test"]
    assert entry["sha256"] == sha256_file(path) and entry["preset"] == "tiny" and entry["produced_by"] == "unit test"


def test_policy_from_checkpoint_plans_like_the_saved_model(saved):
    import numpy as np

    from agent.policy import DrivingPolicy
    from agent.types import EgoStatus, Observation, model_rig

    _, model, path = saved
    rig = model_rig()
    rng = np.random.default_rng(0)
    obs = Observation(
        {c.name: rng.integers(0, 256, (c.height, c.width, 3), dtype=np.uint8) for c in rig.cameras},
        rig,
        EgoStatus([3.0, 0.0], [0.0, 0.0]),
    )
    a = DrivingPolicy(model, use_vlm=False).step(obs)
    b = DrivingPolicy.from_checkpoint(path, use_vlm=False).step(obs)
    assert np.array_equal(a.candidates, b.candidates) and a.selected == b.selected
    assert np.array_equal(a.rewards, b.rewards)


def test_runtime_settings_may_differ(saved):
    """A local VLM path, selection weights or the inference step count do not change the weights: loading with them
    works and uses the requested values; an architecture field still fails."""
    _, model, path = saved
    runtime = load_preset(
        "tiny",
        vlm={"backend": "pretrained", "model_path": "/models/senna"},
        selection={"collision_penalty": 20.0},
        planner={"num_inference_steps": 1},
    )
    loaded = load_checkpoint(path, cfg=runtime)
    assert loaded.cfg.vlm.model_path == "/models/senna" and loaded.cfg.selection.collision_penalty == 20.0
    assert loaded.cfg.planner.inference_timesteps == (8,)
    for (ka, va), (kb, vb) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    mixed = load_preset("tiny", vlm={"model_path": "/elsewhere"}, bev={"depth_step": 4.0})
    with pytest.raises(CheckpointError, match=r"1 fields differ\): bev\.depth_step: 3\.0 != 4\.0$"):
        load_checkpoint(path, cfg=mixed)


def test_corrupted_weights_are_refused_without_a_sidecar(saved, tmp_path):
    """The last byte of a safetensors file is tensor data (the header comes first); flipping it must be caught by the
    digest stored in the metadata even when the .sha256 sidecar was not copied along."""
    _, _, path = saved
    bad = tmp_path / "copied.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    bad.write_bytes(bytes(data))
    assert not sha256_path(bad).exists()
    with pytest.raises(CheckpointError, match="corrupted: its tensors do not match"):
        load_checkpoint(bad)
    good = tmp_path / "copied_ok.safetensors"
    good.write_bytes(path.read_bytes())
    load_checkpoint(good)  # an intact copy without a sidecar still loads
