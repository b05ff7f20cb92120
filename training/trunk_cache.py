"""Outputs of a frozen perception trunk, computed once per sample, for the stages that train only a head.

The reward-model, planner and RL stages freeze the imitation trunk (backbone, BEV, perception heads, ego/command
encoders). Its outputs are then a pure function of the sample, so computing them once in eval mode (inference
BatchNorm statistics, what the agent sees at run time) makes a training step cost the trained head only: on two CPU
cores a planner step drops from seconds to milliseconds, which is what lets those stages take thousands of steps.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from agent.model.irlvla import IRLVLA
from training.dataset import Collate, ShardDataset

#: the trunk outputs the planner and the reward model read (`TruncatedDiffusionPlanner.decode`, `IRLVLA.forward`)
TRUNK_KEYS = ("bev", "agent_tokens", "map_tokens", "ego_tokens", "ego_status_token")


@torch.no_grad()
def trunk_outputs(
    model: IRLVLA, ds: ShardDataset, indices: list[int], batch_size: int = 16, keep: tuple[str, ...] = ()
) -> dict[str, torch.Tensor]:
    """TRUNK_KEYS for the samples `indices` of `ds` (CPU tensors, first axis = position in `indices`), eval mode,
    plus the collated batch entries named in `keep` (targets read in the same pass, so each shard is read once)."""
    was = model.training
    model.eval()
    collate = Collate(ds.model_cfg)
    dev = next(model.parameters()).device
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in (*TRUNK_KEYS, *keep)}
    try:
        for j in range(0, len(indices), batch_size):
            batch = collate([ds[int(i)] for i in indices[j : j + batch_size]])
            out = model.perceive({k: v.to(dev) for k, v in batch.items()})
            for k in TRUNK_KEYS:
                parts[k].append(out[k].float().cpu())
            for k in keep:
                parts[k].append(batch[k])
    finally:
        model.train(was)
    return {k: torch.cat(v) for k, v in parts.items()}


class CachedTrunkDataset(torch.utils.data.Dataset):
    """Samples of a dataset as (cached trunk outputs, expert trajectory, dataset index): the planner's inputs."""

    def __init__(self, ds: ShardDataset, model: IRLVLA, indices: list[int] | None = None) -> None:
        self.indices = list(range(len(ds))) if indices is None else [int(i) for i in indices]
        out = trunk_outputs(model, ds, self.indices, keep=("gt_trajectory", "ego"))
        self.gt = out.pop("gt_trajectory").float()
        #: current speed (the ego vector's vx), for the constant-velocity reference of `training.planner`
        self.speed = out.pop("ego")[:, 0].float()
        self.cache = out

    def __len__(self) -> int:
        return len(self.indices)

    def shard_of(self, i: int) -> int:
        return 0  # in memory: the epoch order is a plain shuffle

    def __getitem__(self, i: int) -> dict:
        item = {k: v[i] for k, v in self.cache.items()}
        item["gt_trajectory"] = self.gt[i]
        item["index"] = torch.tensor(self.indices[i], dtype=torch.long)
        return item


def is_cached(batch: dict) -> bool:
    """A batch of trunk outputs (no images) rather than raw samples."""
    return "images" not in batch and "bev" in batch


def scene_of(model: IRLVLA, batch: dict, perceive: Callable[[dict], dict] | None = None) -> dict:
    """The planner/RWM inputs of a batch: the cached trunk outputs, or the trunk run (no grad) on raw samples."""
    if is_cached(batch):
        return batch
    with torch.no_grad():
        return (perceive or model.perceive)(batch)


__all__ = ["TRUNK_KEYS", "CachedTrunkDataset", "is_cached", "scene_of", "trunk_outputs"]
