"""Reward world model: labels are the exact scorer's sub-scores; training runs; agreement figures by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agent.checkpoint import load_checkpoint
from navsim_eval import score_proposals
from training.config import RWMLabelConfig, TrainConfig
from training.dataset import Collate, ShardDataset
from training.features import cached_scene, scene_at
from training.rwm import (
    LabelledDataset,
    agreement,
    evaluate_rwm,
    generate_labels,
    perception_cache,
    perturb_expert,
    previous_expert_states,
    ranking_losses,
    scene_tokens,
    train_rwm,
)


@pytest.fixture(scope="module")
def labels(tiny_data, tiny_il, tmp_path_factory):
    out = tmp_path_factory.mktemp("labels") / "labels.npz"
    cfg = RWMLabelConfig(perturbed_expert=2, policy_samples=2, workers=1, max_samples=3)
    info = generate_labels(tiny_data, str(tiny_il), cfg, out, progress=False)
    assert not info["failed"]
    return out


def test_labels_equal_the_exact_scorer(tiny_data, labels):
    ds = ShardDataset(tiny_data)
    z = np.load(labels)
    assert z["valid"].sum() == 3 and z["candidates"].shape[1] == 1 + 8 + 2 + 2
    i = int(np.flatnonzero(z["valid"])[1])
    meta = ds.samples[i]
    base = cached_scene(meta["family"], meta["seed"], 2.0, 8.0)
    res = score_proposals(
        scene_at(base, meta["step"]),
        z["candidates"][i].astype(np.float64),
        previous=previous_expert_states(base, meta["step"]),
    )
    np.testing.assert_allclose(z["targets"][i], res.table, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(z["epdms"][i], res.epdms, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(z["candidates"][i][0], ds[i]["gt_trajectory"], atol=1e-6)  # the expert comes first


def test_perturbed_experts_differ_and_are_seeded():
    gt = np.stack([np.arange(1, 9) * 4.0, np.zeros(8), np.zeros(8)], -1)
    a = perturb_expert(gt, 3, np.random.default_rng(0), 1.0, 0.2)
    b = perturb_expert(gt, 3, np.random.default_rng(0), 1.0, 0.2)
    assert a.shape == (3, 8, 3) and np.array_equal(a, b)
    assert np.abs(a - gt).max() > 0.1


def test_rwm_trains_and_reports(tiny_data, tiny_il, labels, tmp_path):
    cfg = TrainConfig(steps=2, batch_size=1, checkpoint_every=2, num_workers=0, device="cpu")
    summary = train_rwm(tiny_data, labels, str(tiny_il), tmp_path / "rwm", cfg, progress=False)
    assert np.isfinite(summary["last"]["rwm_nc"])
    assert np.isfinite(summary["last"]["rwm_listwise"]) and summary["labelled_samples"] == 3
    # only the RWM moves: the trunk's outputs were cached in eval mode, so its BatchNorm statistics are untouched
    before = load_checkpoint(str(tiny_il)).state_dict()
    after = load_checkpoint(summary["checkpoint"]).state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items() if not k.startswith("rwm."))
    rep = evaluate_rwm(summary["checkpoint"], tiny_data, labels, tmp_path)
    assert rep["scenes"] == 3 and 0.0 <= rep["top1_regret"] <= 1.0
    assert set(rep["accuracy"]) == {"nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc", "ec"}


def test_perception_cache_is_the_eval_mode_trunk(tiny_data, tiny_il, labels):
    model = load_checkpoint(str(tiny_il)).train()
    ds = LabelledDataset(tiny_data, labels)
    cache = perception_cache(model, ds, batch_size=2)
    assert model.training  # the caller's mode is restored
    model.eval()
    batch = Collate(ds.model_cfg)([ds.base[int(ds.keep[1])]])
    with torch.no_grad():
        out = model.perceive(batch)
    torch.testing.assert_close(cache["bev"][1:2], out["bev"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cache["scene"][1:2], scene_tokens(out), rtol=1e-5, atol=1e-5)


def test_ranking_losses_by_hand():
    true = torch.tensor([[1.0, 0.5, 0.0]])
    same = ranking_losses(true.clone(), true, 0.1)
    assert same["epdms_mse"] == 0.0
    # listwise loss: cross-entropy of softmax(true / T) against softmax(pred / T); at pred = true it is the entropy
    p = torch.softmax(true / 0.1, -1)
    assert same["listwise"].item() == pytest.approx(float(-(p * p.log()).sum()), rel=1e-5)
    reversed_ = ranking_losses(true.flip(-1), true, 0.1)
    assert reversed_["listwise"] > same["listwise"] and reversed_["epdms_mse"].item() == pytest.approx(2 / 3)


def test_agreement_by_hand():
    targets = np.ones((1, 3, 9))
    targets[0, 1, 0] = 0.5  # NC half
    targets[0, 2, 1] = 0.0  # DAC fails
    true = np.array([[1.0, 0.5, 0.0]])
    nc_logits = np.zeros((1, 3, 3))
    nc_logits[0, [0, 1, 2], [2, 1, 2]] = 5.0
    perfect = {"epdms": true.copy(), "metrics": targets.copy(), "nc_logits": nc_logits, "ddc_logits": nc_logits * 0}
    perfect["ddc_logits"][..., 2] = 5.0
    rep = agreement(perfect, targets, true)
    assert rep["spearman_mean"] == pytest.approx(1.0) and rep["top1_regret"] == 0.0
    assert rep["accuracy"]["nc"] == 1.0 and rep["accuracy"]["dac"] == 1.0
    reversed_ = dict(perfect, epdms=true[:, ::-1].copy())
    rep = agreement(reversed_, targets, true)
    assert rep["spearman_mean"] == pytest.approx(-1.0) and rep["top1_regret"] == pytest.approx(1.0)
