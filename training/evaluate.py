"""Open-loop evaluation on a dataset split: plan with a checkpoint, select as the policy does, score exactly.

Selection is the policy's own (`agent.selection.select_candidate`: confidence + predicted reward minus explicit
collision and drivable-area penalties, from the model's own detections and segmentation); "imitation only" is the same
selection with the reward weight set to 0, so the two differ by the reward world model alone. The planner is fed the
dataset's auto-labelled commands (an oracle VLM: DiffVLA also feeds precomputed offline commands); every learned
policy gets the same ones. Noise is seeded per sample, so every policy sees the same draw.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from agent.checkpoint import load_checkpoint
from agent.epdms_metrics import EPDMS_METRICS
from agent.model.irlvla import IRLVLA
from agent.selection import select_candidate
from training.dataset import Collate, ShardDataset
from training.features import cached_scene, constant_velocity_plan, scene_at


def spread(n: int, k: int) -> list[int]:
    """`k` indices evenly spread over range(n) (all of them when k is 0 or >= n)."""
    if not k or k >= n:
        return list(range(n))
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, k)})


@torch.no_grad()
def plan_samples(model: IRLVLA, ds: ShardDataset, idx: list[int], use_reward: bool, seed: int = 0) -> np.ndarray:
    """(len(idx), P, 3) selected plans of `model` on dataset samples."""
    model.eval()
    cfg = model.cfg
    sel_cfg = cfg.selection if use_reward else dataclasses.replace(cfg.selection, reward_weight=0.0)
    collate = Collate(ds.model_cfg)
    times = cfg.planner.interval * np.arange(1, cfg.planner.num_poses + 1)
    out = []
    for j in range(0, len(idx), 8):
        chunk = idx[j : j + 8]
        batch = collate([ds[i] for i in chunk])
        gen = torch.Generator().manual_seed(seed * 1_000_003 + chunk[0])
        batch["noise"] = torch.randn(model.planner.noise_shape(len(chunk)), generator=gen)
        o = model(batch, mode="infer")
        seg = o["seg_logits"].softmax(1)[:, list(cfg.seg.drivable_indices)].sum(1).double().numpy()
        for b in range(len(chunk)):
            cands = o["trajectories"][b].double().numpy()
            s = select_candidate(
                cands,
                torch.sigmoid(o["confidence_logits"][b]).double().numpy(),
                o["rwm"]["epdms"][b].double().numpy(),
                o["agent_boxes"][b].double().numpy(),
                torch.sigmoid(o["agent_logits"][b]).double().numpy(),
                seg[b],
                cfg.bev.range_m,
                times,
                sel_cfg,
            )
            out.append(cands[s.index])
    return np.stack(out)


def score_plans(ds: ShardDataset, idx: list[int], plans: dict[str, np.ndarray]) -> dict[str, dict]:
    """Exact EPDMS (EC against the expert's previous frame) of each named policy's plans: means per policy."""
    from navsim_eval import score_proposals
    from training.rwm import previous_expert_states

    cfg = ds.manifest["config"]
    names = list(plans)
    tables = {n: [] for n in names}
    scores = {n: [] for n in names}
    for row, i in enumerate(idx):
        meta = ds.samples[i]
        base = cached_scene(meta["family"], int(meta["seed"]), cfg["past_s"], cfg["future_s"])
        scene = scene_at(base, int(meta["step"]))
        res = score_proposals(
            scene, np.stack([plans[n][row] for n in names]), previous=previous_expert_states(base, int(meta["step"]))
        )
        for k, n in enumerate(names):
            tables[n].append(res.table[k])
            scores[n].append(res.epdms[k])
    return {
        n: {
            "epdms": round(float(np.mean(scores[n])), 4),
            **{m: round(float(np.nanmean(np.array(tables[n])[:, j])), 4) for j, m in enumerate(EPDMS_METRICS)},
            "per_sample": [round(float(v), 4) for v in scores[n]],
        }
        for n in names
    }


def baseline_plans(ds: ShardDataset, idx: list[int]) -> dict[str, np.ndarray]:
    cfg = ds.manifest["config"]
    cv, ex = [], []
    for i in idx:
        meta = ds.samples[i]
        scene = scene_at(cached_scene(meta["family"], int(meta["seed"]), cfg["past_s"], cfg["future_s"]), meta["step"])
        cv.append(constant_velocity_plan(scene))
        ex.append(scene.human_trajectory())
    return {"constant_velocity": np.stack(cv), "expert": np.stack(ex)}


def evaluate_open_loop(
    data: str | Path, policies: dict[str, tuple[str, bool]], max_samples: int = 0, seed: int = 0
) -> dict:
    """policies: name -> (checkpoint, use RWM reranking). Returns per-policy means (EPDMS + the nine sub-metrics)."""
    ds = ShardDataset(data)
    ds.require_scenes("open-loop evaluation")
    idx = spread(len(ds), max_samples)
    plans = baseline_plans(ds, idx)
    for name, (ckpt, use_reward) in policies.items():
        plans[name] = plan_samples(load_checkpoint(ckpt), ds, idx, use_reward, seed)
    return {"samples": len(idx), "results": score_plans(ds, idx, plans)}


__all__ = ["baseline_plans", "evaluate_open_loop", "plan_samples", "score_plans", "spread"]
