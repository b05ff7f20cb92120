"""RL: the GRPO gradient favours the higher-reward chain on a two-candidate case; both reward options train."""

from __future__ import annotations

import numpy as np
import torch

from agent.checkpoint import load_checkpoint
from agent.config import load_preset
from agent.model.irlvla import build_model
from training.config import RLConfig, TrainConfig
from training.dataset import ShardDataset, make_loader
from training.rl import chain_logprob, chain_timesteps, group_advantages, grpo_loss, initial_states, rollout, train_rl


def test_grpo_gradient_moves_toward_the_better_candidate(tiny_data):
    cfg = load_preset("tiny", planner={"num_anchors": 2})
    model = build_model(cfg)
    rl = RLConfig(groups=1, denoise_steps=3, start_timestep=12)
    batch = next(iter(make_loader(ShardDataset(tiny_data), 1, 1, seed=0)))
    with torch.no_grad():
        scene = model.perceive(batch)
    planner = model.planner
    ts = chain_timesteps(rl.start_timestep, rl.denoise_steps)
    gen = torch.Generator().manual_seed(0)
    ro = rollout(planner, scene, initial_states(planner, 1, 1, rl.start_timestep, gen), ts, rl, gen)
    assert ro.trajectories.shape == (1, 2, 8, 3) and ro.logp.shape == (3, 1, 2)
    adv = group_advantages(torch.tensor([[1.0, 0.0]]))  # candidate 0 is the better one
    assert torch.allclose(adv, torch.tensor([[1.0, -1.0]]), atol=1e-4)
    before = chain_logprob(planner, scene, ro.states, ts, rl).detach()
    torch.testing.assert_close(before, ro.logp, rtol=1e-4, atol=1e-3)  # same policy: ratio 1
    params = [p for p in planner.parameters() if p.requires_grad]
    loss = grpo_loss(chain_logprob(planner, scene, ro.states, ts, rl), ro.logp, adv, rl)
    g_loss = torch.autograd.grad(loss, params, allow_unused=True)
    logp = chain_logprob(planner, scene, ro.states, ts, rl)
    gap = (logp[:, 0, 0] - logp[:, 0, 1]).sum()  # log-likelihood of the better chain relative to the worse one
    g_gap = torch.autograd.grad(gap, params, allow_unused=True)
    # a gradient-descent step on the loss raises the gap: -dL . dgap > 0
    directional = -sum((a * b).sum() for a, b in zip(g_loss, g_gap) if a is not None and b is not None)
    assert directional > 0
    # and a small step (in the linear regime) does so in fact
    norm2 = sum((g**2).sum() for g in g_loss if g is not None)
    with torch.no_grad():
        for p, g in zip(params, g_loss):
            if g is not None:
                p -= (1e-3 / norm2) * g
        after = chain_logprob(planner, scene, ro.states, ts, rl)
    assert (after[:, 0, 0] - after[:, 0, 1]).sum() > gap.detach()


def test_clipped_ratio_stops_the_push():
    rl = RLConfig()
    adv = torch.tensor([[1.0]])
    old = torch.zeros(1, 1, 1)
    new = torch.full((1, 1, 1), 0.5, requires_grad=True)  # ratio e^0.5 > 1 + eps: clipped, no gradient
    grpo_loss(new, old, adv, rl).backward()
    assert new.grad.abs().sum() == 0
    new2 = torch.zeros(1, 1, 1, requires_grad=True)
    grpo_loss(new2, old, adv, rl).backward()
    assert new2.grad.item() < 0  # inside the trust region: descent raises the log-prob of a positive advantage


def test_rl_trains_with_both_rewards(tiny_data, tiny_il, tmp_path):
    cfg = TrainConfig(steps=2, batch_size=1, checkpoint_every=2, num_workers=0, device="cpu")
    for reward, epochs in (("rwm", 2), ("exact", 1)):
        rl = RLConfig(reward=reward, groups=1, denoise_steps=2, start_timestep=8, ppo_epochs=epochs)
        summary = train_rl(tiny_data, str(tiny_il), tmp_path / reward, cfg, rl, progress=False)
        last = summary["last"]
        assert 0.0 <= last["reward"] <= 1.0 and np.isfinite(last["bc_loss"]) and np.isfinite(last["r_ec"])
        assert summary["reward_seconds_per_step"] > 0
        # only the planner moves: the frozen trunk ran in eval mode, so even its BatchNorm statistics are untouched
        before = load_checkpoint(str(tiny_il)).state_dict()
        after = load_checkpoint(summary["checkpoint"]).state_dict()
        for k, v in before.items():
            if not k.startswith("planner."):
                assert torch.equal(v, after[k]), k
