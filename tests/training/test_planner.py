"""Planner stage: the trunk cache is the eval-mode trunk, and the planner learns on it with the trunk untouched."""

from __future__ import annotations

import torch

from agent.checkpoint import load_checkpoint
from training.config import TrainConfig
from training.dataset import Collate, ShardDataset
from training.planner import planner_errors, train_planner
from training.trunk_cache import TRUNK_KEYS, CachedTrunkDataset, is_cached, scene_of


def test_trunk_cache_is_the_eval_mode_trunk(tiny_data, tiny_il):
    model = load_checkpoint(str(tiny_il)).train()
    ds = ShardDataset(tiny_data)
    cached = CachedTrunkDataset(ds, model, indices=[3, 1])
    assert model.training  # the caller's mode is restored
    model.eval()
    batch = Collate(ds.model_cfg)([ds[1]])
    with torch.no_grad():
        out = model.perceive(batch)
    item = cached[1]
    assert int(item["index"]) == 1
    for k in TRUNK_KEYS:
        torch.testing.assert_close(item[k][None], out[k], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(item["gt_trajectory"], torch.from_numpy(ds[1]["gt_trajectory"]).float())
    assert float(cached.speed[1]) == float(ds[1]["ego"][0])
    # a batch of cached outputs is used as the scene as it is; raw samples go through the trunk
    stacked = {k: v[None] for k, v in item.items()}
    assert is_cached(stacked) and scene_of(model, stacked) is stacked
    assert not is_cached(batch) and torch.equal(scene_of(model, batch)["bev"], out["bev"])


def test_planner_stage_learns_and_moves_only_the_planner(tiny_data, tiny_il, tmp_path, one_torch_thread):
    cfg = TrainConfig(steps=60, batch_size=8, checkpoint_every=30, log_every=10, num_workers=0, device="cpu")
    summary = train_planner(tiny_data, str(tiny_il), tmp_path / "planner", cfg, eval_data=tiny_data, progress=False)
    before, after = summary["errors_before"]["train"], summary["errors"]["train"]
    assert set(after) == {"samples", "top1_ade", "top1_fde", "best_of_k_ade", "anchor_ade", "cv_ade"}
    assert after["samples"] == len(ShardDataset(tiny_data)) and summary["errors"]["heldout"] == after
    # the vocabulary and the constant-velocity reference do not depend on the planner's weights
    assert after["anchor_ade"] == before["anchor_ade"] and after["cv_ade"] == before["cv_ade"]
    assert after["top1_ade"] < before["top1_ade"]
    assert after["best_of_k_ade"] <= after["top1_ade"]
    first = load_checkpoint(str(tiny_il)).state_dict()
    trained = load_checkpoint(summary["checkpoint"]).state_dict()
    assert any(not torch.equal(v, trained[k]) for k, v in first.items() if k.startswith("planner."))
    for k, v in first.items():
        if not k.startswith("planner."):
            assert torch.equal(v, trained[k]), k


def test_planner_errors_of_a_perfect_planner_are_zero(tiny_data, tiny_il):
    model = load_checkpoint(str(tiny_il))
    cached = CachedTrunkDataset(ShardDataset(tiny_data), model)
    shape = model.planner.noise_shape

    class Oracle(torch.nn.Module):
        """Every candidate is the expert; the top mode is candidate 0."""

        def forward_infer(self, scene, noise):
            k = noise.shape[1]
            traj = cached.gt[:, None].expand(-1, k, -1, -1)
            logits = torch.zeros(traj.shape[:2])
            logits[:, 0] = 1.0
            return {"trajectories": traj, "confidence_logits": logits}

        def noise_shape(self, n):
            return shape(n)

    anchors = model.planner.anchors
    model.planner = Oracle()
    model.planner.anchors = anchors
    errors = planner_errors(model, cached)
    assert errors["top1_ade"] == 0.0 and errors["top1_fde"] == 0.0 and errors["best_of_k_ade"] == 0.0
    assert errors["anchor_ade"] > 0.0 and errors["cv_ade"] > 0.0
