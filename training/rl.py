"""RL (stage 3): GRPO over the truncated-diffusion planner's denoising chain, rewarded by the reward world model.

Every stochastic DDIM step (eta > 0) is a Gaussian policy: x_{t'} ~ N(mu_theta(x_t, t), sigma_t^2 I) with
mu = sqrt(a_t') x0_theta + sqrt(1 - a_t' - sigma_t^2) eps_theta and sigma_t = eta sqrt((1 - a_t') / (1 - a_t)
(1 - a_t / a_t')) (floored at `min_std`), so a sample's log-probability is the sum of its steps' Gaussian
log-densities (DiffusionDriveV2). For each scene G = groups x K chains start from the K anchors noised at
`start_timestep`; the final clean trajectories are rewarded by the RWM's predicted EPDMS (or, as the named option
`reward="exact"`, by the exact EPDMS harness: simulator-in-the-loop RL) and advantages are normalised within the
scene's group (GRPO). The loss is the PPO clipped surrogate per denoising step, weighted by
`step_discount ** (steps - 1 - i)` (ReCogDrive), plus `bc_weight` x the imitation loss (behaviour cloning keeps the
policy near the expert; ReCogDrive's users needed it to stop EP gaming from collapsing comfort). The perception trunk
and the RWM are frozen and run in eval mode (inference BatchNorm statistics, what the RWM was trained on): only the
planner moves. With `ppo_epochs` > 1 a rollout is reused for that many optimiser
steps, so the ratio departs from 1 and the clip acts; a run resumed mid-cycle re-rolls with the current policy.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from agent.checkpoint import load_checkpoint, save_checkpoint
from agent.epdms_metrics import EPDMS_METRICS
from agent.model.losses import imitation_loss
from agent.model.planner import TruncatedDiffusionPlanner
from irlvla.atomic import atomic_write_json
from irlvla.configload import to_plain
from training.config import RLConfig, TrainConfig
from training.dataset import ShardDataset, StepBatchSampler, make_loader
from training.features import cached_scene, scene_at
from training.il import diffusion_inputs
from training.loop import DistInfo, resolve_device, train_loop
from training.rwm import eval_except, scene_tokens
from training.trunk_cache import CachedTrunkDataset, scene_of

logger = logging.getLogger(__name__)


def chain_timesteps(start: int, steps: int) -> list[int]:
    """Descending timesteps start .. 0 visited by the stochastic chain (steps + 1 states, `steps` Gaussian moves)."""
    ts = [int(round(v)) for v in np.linspace(start, 0, steps + 1)]
    if len(set(ts)) != len(ts):
        raise ValueError(f"{steps} denoising steps do not fit in timesteps {start}..0")
    return ts


def step_std(ab_t: torch.Tensor, ab_prev: torch.Tensor, eta: float, min_std: float) -> torch.Tensor:
    sigma = eta * torch.sqrt((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev))
    return sigma.clamp_min(min_std)


def step_mean(x_t: torch.Tensor, x0: torch.Tensor, ab_t: torch.Tensor, ab_prev: torch.Tensor, std: torch.Tensor):
    eps = (x_t - ab_t.sqrt() * x0) / (1 - ab_t).sqrt()
    return ab_prev.sqrt() * x0 + (1 - ab_prev - std**2).clamp_min(0.0).sqrt() * eps


def gaussian_logprob(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Log-density of isotropic Gaussians summed over the trajectory (last two dims: poses x 3)."""
    z = (x - mean) / std
    return (-0.5 * z**2 - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum((-1, -2))


def group_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """GRPO: each scene's rewards (B, N) normalised by that scene's group mean and std."""
    mean = rewards.mean(-1, keepdim=True)
    std = rewards.std(-1, keepdim=True, unbiased=False)
    return (rewards - mean) / (std + eps)


def grpo_loss(logp_new: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, cfg: RLConfig) -> torch.Tensor:
    """Clipped surrogate over (steps, B, N) log-probs, step-discounted, averaged over samples."""
    s = logp_new.shape[0]
    w = torch.tensor([cfg.step_discount ** (s - 1 - i) for i in range(s)], dtype=logp_new.dtype, device=adv.device)
    ratio = torch.exp(logp_new - logp_old)
    surr = torch.minimum(ratio * adv, ratio.clamp(1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv)
    return -(w[:, None, None] * surr).sum(0).mean() / w.sum()


@dataclass
class Rollout:
    states: list[torch.Tensor]  # steps + 1 normalised states (B, N, P, 3)
    logp: torch.Tensor  # (steps, B, N)
    trajectories: torch.Tensor  # (B, N, P, 3) metres


def _denoise(planner: TruncatedDiffusionPlanner, x: torch.Tensor, t: int, scene: dict) -> torch.Tensor:
    tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
    return planner.decode(x, tt, scene)[-1][0]


def _moments(planner, x, t, t_prev, scene, cfg: RLConfig):
    x0 = planner.normalize(_denoise(planner, x, t, scene)).clamp(-1.0, 1.0)
    ab_t, ab_prev = planner.alphas_cumprod[t], planner.alphas_cumprod[t_prev]
    std = step_std(ab_t, ab_prev, cfg.eta, cfg.min_std)
    return step_mean(x, x0, ab_t, ab_prev, std), std


def initial_states(planner: TruncatedDiffusionPlanner, b: int, groups: int, t0: int, gen: torch.Generator):
    anchors = planner.normalize(planner.anchors).repeat(groups, 1, 1)
    x0 = anchors.unsqueeze(0).expand(b, -1, -1, -1)
    noise = torch.randn(x0.shape, generator=gen).to(x0.device)
    t = torch.full((b,), t0, dtype=torch.long, device=x0.device)
    return planner.add_noise(x0, noise, t).clamp(-1.0, 1.0)


@torch.no_grad()
def rollout(planner, scene: dict, x_start: torch.Tensor, ts: list[int], cfg: RLConfig, gen: torch.Generator):
    states, logps = [x_start], []
    x = x_start
    for t, t_prev in zip(ts[:-1], ts[1:]):
        mean, std = _moments(planner, x, t, t_prev, scene, cfg)
        x = mean + std * torch.randn(mean.shape, generator=gen).to(mean.device)
        logps.append(gaussian_logprob(x, mean, std))
        states.append(x)
    return Rollout(states, torch.stack(logps), _denoise(planner, x, ts[-1], scene))


def chain_logprob(planner, scene: dict, states: list[torch.Tensor], ts: list[int], cfg: RLConfig) -> torch.Tensor:
    """(steps, B, N) log-probabilities of a stored chain under the current planner (with gradients)."""
    out = []
    for i, (t, t_prev) in enumerate(zip(ts[:-1], ts[1:])):
        mean, std = _moments(planner, states[i], t, t_prev, scene, cfg)
        out.append(gaussian_logprob(states[i + 1], mean, std))
    return torch.stack(out)


class ExactReward:
    """Rewards from the exact EPDMS harness on each sample's scenario (simulator in the loop)."""

    def __init__(self, ds: ShardDataset) -> None:
        ds.require_scenes("RL with the exact scorer's reward")
        self.ds = ds
        self.cfg = ds.manifest["config"]

    def __call__(self, index: torch.Tensor, trajs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from navsim_eval import score_proposals

        rewards, tables = [], []
        for i, tr in zip(index.tolist(), trajs.detach().double().cpu().numpy()):
            meta = self.ds.samples[i]
            scene = scene_at(
                cached_scene(meta["family"], meta["seed"], self.cfg["past_s"], self.cfg["future_s"]), meta["step"]
            )
            res = score_proposals(scene, tr)
            rewards.append(res.epdms)
            tables.append(np.nan_to_num(res.table, nan=1.0))
        return torch.tensor(np.stack(rewards), dtype=torch.float32), torch.tensor(np.stack(tables), dtype=torch.float32)


class GRPOStep:
    """The step function of the shared loop: roll out, reward, clipped surrogate + BC."""

    def __init__(self, cfg: RLConfig, exact: ExactReward | None) -> None:
        self.cfg = cfg
        self.exact = exact
        self.cache: dict | None = None
        self.reward_seconds: list[float] = []

    def __call__(self, net, batch: dict, gen: torch.Generator, step: int):
        model = net.module if hasattr(net, "module") else net
        planner, cfg = model.planner, self.cfg
        ts = chain_timesteps(cfg.start_timestep, cfg.denoise_steps)
        reuse = self.cache is not None and step % cfg.ppo_epochs != 0 and self.cache["cycle"] == step // cfg.ppo_epochs
        eval_except(model, "planner")  # the frozen trunk and RWM see inference-mode BatchNorm, as the RWM was trained
        if reuse:
            batch, scene, ro, adv, metrics = (self.cache[k] for k in ("batch", "scene", "rollout", "adv", "metrics"))
        else:
            scene = scene_of(model, batch)
            b = batch["gt_trajectory"].shape[0]
            ro = rollout(planner, scene, initial_states(planner, b, cfg.groups, cfg.start_timestep, gen), ts, cfg, gen)
            t0 = time.perf_counter()
            with torch.no_grad():
                if cfg.reward == "exact":
                    rewards, table = self.exact(batch["index"], ro.trajectories)
                    rewards, table = rewards.to(ro.trajectories.device), table.to(ro.trajectories.device)
                else:
                    pred = model.rwm(ro.trajectories, scene["bev"], scene_tokens(scene))
                    rewards, table = pred["epdms"], pred["metrics"]
            self.reward_seconds.append(time.perf_counter() - t0)
            adv = group_advantages(rewards.float())
            metrics = {"reward": float(rewards.mean()), "reward_s": self.reward_seconds[-1]}
            metrics.update({f"r_{m}": float(table[..., i].mean()) for i, m in enumerate(EPDMS_METRICS)})
            self.cache = {"cycle": step // cfg.ppo_epochs, "batch": batch, "scene": scene, "rollout": ro, "adv": adv}
            self.cache["metrics"] = metrics
        logp = chain_logprob(planner, scene, ro.states, ts, cfg)
        rl = grpo_loss(logp, ro.logp, adv, cfg)
        total = rl
        out = dict(metrics, rl_loss=float(rl.detach()))
        if cfg.bc_weight > 0:
            gt = batch["gt_trajectory"]
            d = diffusion_inputs(model, gt.shape[0], gen, gt.device)
            plan = planner.forward_train(scene, d["noise"], d["timesteps"])
            bc, _ = imitation_loss(plan["layers"], planner.anchors, gt, model.cfg.planner)
            total = total + cfg.bc_weight * bc
            out["bc_loss"] = float(bc.detach())
        return total, out


def train_rl(
    data: str | Path,
    checkpoint: str,
    out: str | Path,
    cfg: TrainConfig,
    rl_cfg: RLConfig,
    resume: bool = True,
    progress: bool = True,
    cache_trunk: bool = True,
) -> dict:
    """GRPO of the planner; with `cache_trunk` the frozen trunk's outputs are computed once (`training.trunk_cache`)
    so a step costs the planner, the RWM and the reward only; without it every step runs the trunk on raw samples."""
    from training.rwm import freeze_except

    out = Path(out)
    device = resolve_device(cfg.device)
    ds = ShardDataset(data)
    model = load_checkpoint(checkpoint).to(device)
    params = freeze_except(model, "planner")
    step_fn = GRPOStep(rl_cfg, ExactReward(ds) if rl_cfg.reward == "exact" else None)
    cached = CachedTrunkDataset(ds, model) if cache_trunk else None

    def loader(start: int, d: DistInfo):
        if cached is None:
            return make_loader(ds, cfg.batch_size, cfg.steps, cfg.seed, start, cfg.num_workers, d.rank, d.world)
        sampler = StepBatchSampler(cached, cfg.batch_size, cfg.steps, cfg.seed, start, d.rank, d.world)
        return torch.utils.data.DataLoader(cached, batch_sampler=sampler, num_workers=0)

    final, summary = train_loop(model, params, loader, step_fn, cfg, out, resume, progress, None, device)
    for p in final.parameters():
        p.requires_grad_(True)
    meta = {"stage": "rl", "reward": rl_cfg.reward, "init": checkpoint}
    path = save_checkpoint(final.cpu(), out / "model.safetensors", meta)
    secs = step_fn.reward_seconds
    summary.update(checkpoint=str(path), config=to_plain(cfg), rl=to_plain(rl_cfg), cache_trunk=cache_trunk)
    summary["reward_seconds_per_step"] = round(float(np.mean(secs)), 4) if secs else None
    atomic_write_json(out / "summary.json", summary)
    return summary


__all__ = [
    "GRPOStep",
    "chain_logprob",
    "chain_timesteps",
    "gaussian_logprob",
    "group_advantages",
    "grpo_loss",
    "initial_states",
    "rollout",
    "step_mean",
    "step_std",
    "train_rl",
]
