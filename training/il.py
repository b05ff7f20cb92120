"""Imitation pretraining (stage 1) and the trajectory vocabulary it starts from.

`train_anchors`: k-means over the expert futures of a dataset (DiffusionDrive's 20-anchor vocabulary was made this
way on navtrain), or NAVSIM's shipped vocabulary reduced to the planner's K. `train_il`: every loss of the model
(`IRLVLA.loss`: planner focal classification + L1 over all cascade layers, matched detection, matched map polylines,
BEV segmentation) against the dataset's targets, the planner conditioned on the auto-labelled commands as one-hots
(what the policy feeds it at run time, docs/vlm.md).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from agent.checkpoint import load_checkpoint, save_checkpoint
from agent.config import load_preset
from agent.model.anchors import kmeans_anchors, load_anchors
from agent.model.irlvla import IRLVLA, build_model
from irlvla.atomic import atomic_path, atomic_write_json
from irlvla.configload import to_plain
from training.config import TrainConfig
from training.dataset import ShardDataset, make_loader
from training.loop import DistInfo, init_distributed, resolve_device, train_loop

logger = logging.getLogger(__name__)

#: batch keys that are targets or bookkeeping, never model inputs of the imitation forward
PERCEPTION_TARGETS = ("agent_boxes", "agent_labels", "agent_mask", "map_points", "map_labels", "map_mask")


def expert_trajectories(data: str | Path) -> np.ndarray:
    """(N, 8, 3) expert futures of a dataset (read from the shards' `gt_trajectory` arrays only)."""
    ds = ShardDataset(data)
    out = []
    for shard in ds.shards:
        with np.load(ds.root / shard["file"], allow_pickle=False) as z:
            out.append(z["gt_trajectory"])
    return np.concatenate(out).astype(np.float64)


def train_anchors(data: str | Path | None, out: str | Path, k: int, seed: int = 0, navsim: str | None = None) -> dict:
    """Write a (k, 8, 3) anchor vocabulary to `out` (.npy) from a dataset's expert futures or a NAVSIM vocabulary."""
    if navsim:
        anchors, source = load_anchors(navsim, k, seed=seed), f"navsim:{navsim}"
        n = k
    else:
        trajs = expert_trajectories(data)
        anchors, source, n = kmeans_anchors(trajs, k, seed=seed), f"dataset:{data}", len(trajs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, suffix=".npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, anchors.astype(np.float32))
    info = {"anchors": str(out), "k": k, "source": source, "num_trajectories": n, "seed": seed}
    atomic_write_json(out.with_suffix(".json"), info)
    return info


def unwrap(net: torch.nn.Module) -> IRLVLA:
    return net.module if hasattr(net, "module") else net


def diffusion_inputs(model: IRLVLA, b: int, gen: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    """Planner noise and truncated timesteps of one training step, drawn from the step's generator."""
    noise = torch.randn(model.planner.noise_shape(b), generator=gen)
    t = torch.randint(0, model.cfg.planner.train_truncation, (b,), generator=gen)
    return {"noise": noise.to(device), "timesteps": t.to(device)}


def il_step(net: torch.nn.Module, batch: dict, gen: torch.Generator, step: int):
    model = unwrap(net)
    b = batch["images"].shape[0]
    inputs = {**batch, **diffusion_inputs(model, b, gen, batch["images"].device)}
    out = net(inputs, mode="train")
    losses = model.loss(out, batch)
    return losses["total"], {k: float(v.detach()) for k, v in losses.items() if k != "total"}


def initial_model(preset: str, anchors: str | None, init: str | None) -> IRLVLA:
    if init:
        return load_checkpoint(init)
    cfg = load_preset(preset)
    arr = None
    if anchors:
        arr = np.load(anchors, allow_pickle=False).astype(np.float32)
        if arr.shape[0] != cfg.planner.num_anchors:
            raise ValueError(
                f"anchors {anchors} hold {arr.shape[0]} trajectories, preset {preset} needs {cfg.planner.num_anchors}"
            )
    return build_model(cfg, anchors=arr)


def train_il(
    data: str | Path,
    out: str | Path,
    cfg: TrainConfig,
    preset: str = "tiny",
    anchors: str | None = None,
    init: str | None = None,
    resume: bool = True,
    progress: bool = True,
) -> dict:
    """Imitation training; writes `out/model.safetensors` (+ sha256), `state.pt`, curves and `summary.json`."""
    out = Path(out)
    device = resolve_device(cfg.device)
    dist = init_distributed(device)
    device = resolve_device(cfg.device, dist)
    ds = ShardDataset(data)
    torch.manual_seed(cfg.seed)
    model = initial_model(preset, anchors, init).to(device)
    if ds.model_cfg.preprocess != model.cfg.preprocess:
        raise ValueError(f"dataset {data} was built for preset {ds.model_cfg.name}, the model is {model.cfg.name}")

    def loader(start: int, d: DistInfo):
        return make_loader(ds, cfg.batch_size, cfg.steps, cfg.seed, start, cfg.num_workers, d.rank, d.world)

    params = [p for p in model.parameters() if p.requires_grad]
    final, summary = train_loop(model, params, loader, il_step, cfg, out, resume, progress, dist, device)
    if dist.is_main:
        path = save_checkpoint(final.cpu(), out / "model.safetensors", {"stage": "il", "steps": str(cfg.steps)})
        summary.update(checkpoint=str(path), config=to_plain(cfg), data=str(data), world=dist.world)
        atomic_write_json(out / "summary.json", summary)
        logger.info("imitation: %s", json.dumps(summary.get("last", {})))
    return summary


__all__ = ["diffusion_inputs", "expert_trajectories", "il_step", "initial_model", "train_anchors", "train_il", "unwrap"]
