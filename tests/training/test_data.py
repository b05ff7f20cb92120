"""Dataset generation: samples, filtering and manifest; the loader's order is deterministic and resumable."""

from __future__ import annotations

import json

import numpy as np

from agent.config import load_preset
from agent.model.vlm_labels import commands_from_trajectory
from training.config import SPLIT_SEEDS, DataConfig
from training.dataset import ShardDataset, StepBatchSampler, make_loader
from training.features import (
    cached_scene,
    constant_velocity_plan,
    sample_layout,
    sample_steps,
    scene_at,
    synthetic_sample,
)


def test_split_seed_ranges_are_disjoint():
    ranges = sorted(SPLIT_SEEDS.values())
    assert all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:]))
    assert ranges[0][0] >= 100_000  # below: the closed-loop route suites


def test_samples_match_the_scene(tiny_data):
    ds = ShardDataset(tiny_data)
    cfg = load_preset("tiny")
    man = ds.manifest
    assert man["seed_range"] == [SPLIT_SEEDS["val"][0], SPLIT_SEEDS["val"][0] + 2]
    assert man["num_samples"] == len(ds) > 0 and not man["failed_scenes"]
    item = ds[0]
    pc = cfg.preprocess
    assert item["images"].shape == (6, pc.image_height, pc.image_width, 3) and item["images"].dtype == np.uint8
    assert item["bev_semantic"].shape == (cfg.bev.size, cfg.bev.size)
    assert item["bev_semantic"].max() < len(cfg.seg.class_names)
    meta = ds.samples[0]
    scene = scene_at(cached_scene(meta["family"], meta["seed"], 2.0, 8.0), meta["step"])
    np.testing.assert_allclose(item["gt_trajectory"], scene.human_trajectory(), atol=1e-5)
    speed, path = commands_from_trajectory(
        scene.human_trajectory(), np.hypot(*scene.ego[scene.current_index :: 5][:9, 3:5].T)
    )
    assert (int(item["speed_command"]), int(item["path_command"])) == (int(speed), int(path))
    # the CV plan goes straight at the current speed
    cv = constant_velocity_plan(scene)
    assert np.allclose(cv[:, 1:], 0) and np.isclose(cv[1, 0] - cv[0, 0], 0.5 * scene.ego[scene.current_index, 3])


def test_samples_follow_the_sample_layout(tiny_data):
    """Generated and synthetic samples have exactly the layout's keys, shapes and dtypes (the benchmark uses it)."""
    ds = ShardDataset(tiny_data)
    layout = sample_layout(ds.model_cfg)
    synthetic = synthetic_sample(ds.model_cfg, np.random.default_rng(0))
    for item in (ds[0], synthetic):
        got = {k: (v.shape, v.dtype) for k, v in item.items() if k != "index"}
        assert got == layout
    assert synthetic["bev_semantic"].max() < len(ds.model_cfg.seg.class_names)
    np.testing.assert_allclose(synthetic["intrinsics"], ds[0]["intrinsics"])  # the same camera geometry
    np.testing.assert_allclose(synthetic["cam_to_ego"], ds[0]["cam_to_ego"])


def test_frames_sampled_along_the_scenario():
    scene = cached_scene("cut_in", SPLIT_SEEDS["val"][0], 2.0, 8.0)
    steps = sample_steps(scene, 1.5, 1.0)
    assert steps[0] == 15 and steps[-1] <= scene.num_steps - 41 and np.all(np.diff(steps) == 10)


def test_trivial_filter_is_recorded(tiny_data):
    man = json.loads((tiny_data / "manifest.json").read_text())
    all_frames, kept = man["scores"]["all_frames"], man["scores"]["kept"]
    assert kept["frames"] == all_frames["frames"]  # keep_trivial_fraction 1, expert_min 0: nothing dropped
    assert 0.0 <= all_frames["cv_epdms"] <= 1.0 and 0.0 <= all_frames["expert_epdms"] <= 1.0


def test_loader_order_is_resumable(tiny_data):
    ds = ShardDataset(tiny_data)
    full = list(StepBatchSampler(ds, 2, 7, seed=3))
    resumed = list(StepBatchSampler(ds, 2, 7, seed=3, start_step=4))
    assert resumed == full[4:]
    ranks = [list(StepBatchSampler(ds, 1, 2, seed=3, rank=r, world=2)) for r in (0, 1)]
    assert not set(sum(ranks[0], [])) & set(sum(ranks[1], []))
    batch = next(iter(make_loader(ds, 2, 1, seed=0)))
    assert batch["images"].shape[:2] == (2, 6) and batch["images"].dtype.is_floating_point
    assert batch["speed_probs"].sum(-1).eq(1).all()


def test_bad_config_is_refused():
    import pytest

    with pytest.raises(ValueError, match="split"):
        DataConfig(split="test")
    with pytest.raises(ValueError, match="overflow"):
        DataConfig(split="val", num_scenes=20_000)
