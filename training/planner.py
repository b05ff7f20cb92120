"""Imitation stage 1b: the planner alone, on the frozen imitation trunk's cached outputs.

Joint imitation (`training.il`) shares each step between the camera trunk and the planner, and on two CPU cores a
step costs seconds, so the run ends after about a hundred steps. The planner's mode classification needs far more
than that: its focal loss sits on the uniform prior for a few hundred steps before the modes separate (measured on
the cpu2 run: top-1 ADE 8.4 m after 96 joint steps, worse than constant velocity's 3.3 m; 1.3 m after 3000 planner
steps on the same trunk). With the trunk frozen its outputs are cached once (`training.trunk_cache`) and a planner
step costs milliseconds, so this stage trains the planner to convergence with the same loss (focal classification
of the nearest anchor + L1 over the cascade layers) and reports its open-loop displacement errors.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from agent.checkpoint import load_checkpoint, save_checkpoint
from agent.model.irlvla import IRLVLA
from agent.model.losses import imitation_loss
from irlvla.atomic import atomic_write_json
from irlvla.configload import to_plain
from training.config import TrainConfig
from training.dataset import ShardDataset, StepBatchSampler
from training.il import diffusion_inputs, unwrap
from training.loop import DistInfo, resolve_device, train_loop
from training.rwm import eval_except, freeze_except
from training.trunk_cache import TRUNK_KEYS, CachedTrunkDataset

logger = logging.getLogger(__name__)


def planner_step(net: torch.nn.Module, batch: dict, gen: torch.Generator, step: int):
    """Step function of the shared loop: the imitation loss of the planner on cached trunk outputs."""
    model = unwrap(net)
    eval_except(model, "planner")
    gt = batch["gt_trajectory"]
    d = diffusion_inputs(model, gt.shape[0], gen, gt.device)
    plan = model.planner.forward_train(batch, d["noise"], d["timesteps"])
    loss, parts = imitation_loss(plan["layers"], model.planner.anchors, gt, model.cfg.planner)
    return loss, {k: float(v) for k, v in parts.items()}


@torch.no_grad()
def planner_errors(model: IRLVLA, cached: CachedTrunkDataset, seed: int = 0) -> dict:
    """Open-loop displacement errors (m, mean over samples) of the inference DDIM chain on cached samples.

    top1: the most confident mode (what the agent drives without reranking); best_of_k: the closest of the K
    candidates (what reranking can reach); anchor: the closest anchor (the vocabulary's own error); cv: constant
    velocity along the ego's heading at its current speed."""
    was = model.training
    model.eval()
    try:
        n = len(cached)
        scene = {k: cached.cache[k].to(model.device) for k in TRUNK_KEYS}
        noise = torch.randn(model.planner.noise_shape(n), generator=torch.Generator().manual_seed(seed))
        out = model.planner.forward_infer(scene, noise.to(model.device))
    finally:
        model.train(was)
    traj, logits = out["trajectories"].cpu(), out["confidence_logits"].cpu()
    gt = cached.gt
    rows = torch.arange(n)
    ade = torch.linalg.norm(traj[..., :2] - gt[:, None, :, :2], dim=-1).mean(-1)  # (n, K)
    top = logits.argmax(-1)
    anchors = model.planner.anchors.cpu()
    anchor = torch.linalg.norm(anchors[None, ..., :2] - gt[:, None, :, :2], dim=-1).mean(-1).min(-1).values
    t = torch.arange(1, gt.shape[1] + 1, dtype=torch.float32) * model.cfg.planner.interval
    cv = torch.stack([cached.speed[:, None] * t, torch.zeros(n, len(t))], dim=-1)
    return {
        "samples": n,
        "top1_ade": round(float(ade[rows, top].mean()), 4),
        "top1_fde": round(float(torch.linalg.norm(traj[rows, top, -1, :2] - gt[:, -1, :2], dim=-1).mean()), 4),
        "best_of_k_ade": round(float(ade.min(-1).values.mean()), 4),
        "anchor_ade": round(float(anchor.mean()), 4),
        "cv_ade": round(float(torch.linalg.norm(cv - gt[..., :2], dim=-1).mean()), 4),
    }


def train_planner(
    data: str | Path,
    checkpoint: str,
    out: str | Path,
    cfg: TrainConfig,
    eval_data: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
) -> dict:
    """Train `model.planner` on cached trunk outputs of `data`; writes `out/model.safetensors` and `summary.json`
    with the displacement errors before and after (on `eval_data` too when given)."""
    out = Path(out)
    device = resolve_device(cfg.device)
    model = load_checkpoint(checkpoint).to(device)
    params = freeze_except(model, "planner")
    cached = CachedTrunkDataset(ShardDataset(data), model)
    held = CachedTrunkDataset(ShardDataset(eval_data), model) if eval_data else None
    before = {"train": planner_errors(model, cached, cfg.seed)}
    if held is not None:
        before["heldout"] = planner_errors(model, held, cfg.seed)

    def loader(start: int, d: DistInfo):
        sampler = StepBatchSampler(cached, cfg.batch_size, cfg.steps, cfg.seed, start, d.rank, d.world)
        return torch.utils.data.DataLoader(cached, batch_sampler=sampler, num_workers=0)

    final, summary = train_loop(model, params, loader, planner_step, cfg, out, resume, progress, None, device)
    for p in final.parameters():
        p.requires_grad_(True)
    after = {"train": planner_errors(final, cached, cfg.seed)}
    if held is not None:
        after["heldout"] = planner_errors(final, held, cfg.seed)
    path = save_checkpoint(final.cpu(), out / "model.safetensors", {"stage": "planner", "init": checkpoint})
    summary.update(checkpoint=str(path), config=to_plain(cfg), data=str(data), errors_before=before, errors=after)
    atomic_write_json(out / "summary.json", summary)
    logger.info("planner: %s", after)
    return summary


__all__ = ["planner_errors", "planner_step", "train_planner"]
