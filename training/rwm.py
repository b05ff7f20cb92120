"""Reward world model (stage 2): exact EPDMS labels, training, and held-out agreement.

Labels (`generate_labels`): for every sample, M candidates are scored by the exact batched harness
(`navsim_eval.score_proposals`) in a process pool: the expert, the planner's K anchors, K policy samples (one noised
inference of a checkpoint, when given) and perturbed copies of the expert (speed time-warp, a smooth lateral offset
and a small rotation). EC needs the previous frame's simulated plan: the expert's plan 0.5 s earlier, scored on the
same scenario, is that frame (what an agent that had followed the log would have done). The label table is the
harness's nine sub-scores in `EPDMS_METRICS` order, unchanged.

Training (`train_rwm`): the imitation trunk is frozen (the RWM reads its detached scene tokens anyway), so its outputs
are computed once per labelled sample in eval mode (the BatchNorm statistics inference uses) and cached; only
`model.rwm` learns, with the model's own `rwm_loss` (CE for NC/DDC, BCE for the Bernoulli metrics, MSE for EP) plus
the ranking terms of `RWMTrainConfig` on the predicted EPDMS itself.
Evaluation (`evaluate_rwm`): per scene Spearman correlation of predicted vs true EPDMS over its candidates, per-metric
accuracy (NC/DDC 3-class, the Bernoulli ones at 0.5, EP within 0.1 and its MAE), and top-1 regret.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from agent.checkpoint import load_checkpoint, save_checkpoint
from agent.epdms_metrics import EPDMS_METRICS, epdms_from_table
from agent.model.irlvla import IRLVLA
from agent.model.rwm import rwm_loss
from irlvla.atomic import atomic_path, atomic_write_json
from irlvla.configload import to_plain
from training.config import RWMLabelConfig, RWMTrainConfig, TrainConfig
from training.dataset import Collate, ShardDataset, StepBatchSampler, _progress
from training.features import cached_scene, scene_at
from training.loop import DistInfo, resolve_device, train_loop
from training.trunk_cache import trunk_outputs

logger = logging.getLogger(__name__)

KIND_EXPERT, KIND_ANCHOR, KIND_POLICY, KIND_PERTURBED = range(4)


def perturb_expert(gt: np.ndarray, n: int, rng: np.random.Generator, lateral_sigma: float, speed_sigma: float):
    """`n` perturbed copies (n, P, 3) of an expert plan (P, 3): speed time-warp, smooth lateral offset, rotation."""
    p = gt.shape[0]
    full = np.vstack([np.zeros((1, 3)), gt])
    times = np.arange(p + 1, dtype=np.float64)
    heading = np.unwrap(full[:, 2])
    out = np.zeros((n, p, 3))
    for i in range(n):
        scale = float(np.clip(1.0 + speed_sigma * rng.standard_normal(), 0.0, 2.0))
        q = scale * times[1:]
        last_v = full[-1, :2] - full[-2, :2]
        xy = np.stack([np.interp(q, times, full[:, j]) for j in (0, 1)], -1)
        beyond = np.clip(q - times[-1], 0.0, None)[:, None]
        xy = xy + beyond * last_v
        h = np.interp(q, times, heading)
        ramp = lateral_sigma * rng.standard_normal() * np.sin(0.5 * np.pi * np.clip(times[1:] / p, 0.0, 1.0)) ** 2
        xy = xy + ramp[:, None] * np.stack([-np.sin(h), np.cos(h)], -1)
        rot = 0.05 * rng.standard_normal()
        c, s = np.cos(rot), np.sin(rot)
        xy = xy @ np.array([[c, s], [-s, c]])
        out[i] = np.concatenate([xy, (h + rot)[:, None]], -1)
    return out


def previous_expert_states(base, step: int) -> np.ndarray:
    """(41, 11) simulated states of the expert's plan made 0.5 s before `step` (the previous frame, for EC)."""
    from navsim_eval import EpdmsConfig
    from navsim_eval.simulation import initial_state_from_scene, interpolate_plans, simulate

    sim_cfg = EpdmsConfig().simulation
    prev = step - int(round(sim_cfg.plan_interval / base.dt))
    init = initial_state_from_scene(base, prev)
    plan = base.human_trajectory(8, sim_cfg.plan_interval, step=prev)
    return simulate(interpolate_plans(plan[None], init[:3], sim_cfg), init, sim_cfg, base.ego_params.wheelbase)[0]


def _label_job(args) -> dict:
    """Worker: score one sample's candidates on its scenario (exact harness), EC against the previous expert frame."""
    from navsim_eval import score_proposals

    i, meta, cands, past_s, future_s = args
    try:
        base = cached_scene(meta["family"], int(meta["seed"]), past_s, future_s)
        scene = scene_at(base, int(meta["step"]))
        res = score_proposals(scene, cands, previous=previous_expert_states(base, int(meta["step"])))
        return {"i": i, "table": res.table, "epdms": res.epdms, "error": None}
    except Exception:
        return {"i": i, "table": None, "epdms": None, "error": traceback.format_exc()}


@torch.no_grad()
def policy_candidates(model: IRLVLA, ds: ShardDataset, idx: list[int], seed: int) -> np.ndarray:
    """(len(idx), K, P, 3) candidates of one noised inference of `model` per sample (noise seeded per sample)."""
    model.eval()
    collate = Collate(ds.model_cfg)
    out = []
    for j in range(0, len(idx), 8):
        chunk = idx[j : j + 8]
        batch = collate([ds[i] for i in chunk])
        gen = torch.Generator().manual_seed(seed * 1_000_003 + chunk[0])
        batch["noise"] = torch.randn(model.planner.noise_shape(len(chunk)), generator=gen)
        out.append(model(batch, mode="infer")["trajectories"].double().numpy())
    return np.concatenate(out)


def generate_labels(
    data: str | Path, checkpoint: str | None, cfg: RWMLabelConfig, out: str | Path, progress: bool = True
) -> dict:
    """Label every sample of a dataset; writes `out` (.npz: candidates, targets, epdms, kinds, sample index)."""
    t0 = time.time()
    ds = ShardDataset(data)
    ds.require_scenes("rwm-labels")
    dcfg = ds.manifest["config"]
    model = load_checkpoint(checkpoint) if checkpoint else None
    if model is not None:
        anchors = model.planner.anchors.double().numpy()
    else:
        from agent.model.irlvla import initial_anchors

        anchors = initial_anchors(ds.model_cfg)
    n = len(ds)
    idx = list(range(n))
    if cfg.max_samples and cfg.max_samples < n:
        idx = sorted({int(round(v)) for v in np.linspace(0, n - 1, cfg.max_samples)})
    rng = np.random.default_rng(cfg.seed)
    policy = None
    if model is not None and cfg.policy_samples:
        policy = policy_candidates(model, ds, idx, cfg.seed)[:, : cfg.policy_samples]
    jobs, kinds = [], None
    for row, i in enumerate(idx):
        meta = ds.samples[i]
        gt = ds[i]["gt_trajectory"].astype(np.float64)
        parts = [gt[None], anchors]
        k = [KIND_EXPERT] + [KIND_ANCHOR] * len(anchors)
        if policy is not None:
            parts.append(policy[row])
            k += [KIND_POLICY] * policy.shape[1]
        if cfg.perturbed_expert:
            parts.append(perturb_expert(gt, cfg.perturbed_expert, rng, cfg.lateral_sigma_m, cfg.speed_sigma))
            k += [KIND_PERTURBED] * cfg.perturbed_expert
        kinds = np.array(k, np.int64)
        jobs.append((i, meta, np.concatenate(parts), dcfg["past_s"], dcfg["future_s"]))
    m = len(kinds)
    cands = np.zeros((n, m, *jobs[0][2].shape[1:]), np.float32)
    for j in jobs:
        cands[j[0]] = j[2]
    targets = np.full((n, m, len(EPDMS_METRICS)), np.nan, np.float32)
    epdms = np.full((n, m), np.nan, np.float32)
    failures = []
    bar = _progress(n, "rwm-labels", progress)
    with mp.get_context("spawn").Pool(cfg.workers) as pool:
        for res in pool.imap_unordered(_label_job, jobs, chunksize=2):
            bar.update(1)
            if res["error"]:
                failures.append({"sample": res["i"], "error": res["error"]})
                logger.error("labels of sample %d failed:\n%s", res["i"], res["error"])
                continue
            targets[res["i"]], epdms[res["i"]] = res["table"], res["epdms"]
    bar.close()
    ok = np.isfinite(targets).all(axis=(1, 2))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh, candidates=cands, targets=targets, epdms=epdms, kinds=kinds, valid=ok, sample=np.arange(n)
        )
    info = {
        "labels": str(out),
        "data": str(data),
        "checkpoint": checkpoint,
        "config": to_plain(cfg),
        "samples": n,
        "candidates_per_sample": m,
        "failed": failures,
        "mean_epdms_by_kind": {
            name: round(float(np.nanmean(epdms[:, kinds == code])), 4)
            for code, name in enumerate(("expert", "anchor", "policy", "perturbed"))
            if (kinds == code).any() and ok.any()
        },
        "wall_s": round(time.time() - t0, 1),
    }
    atomic_write_json(out.with_suffix(".json"), info)
    return info


class LabelledDataset(torch.utils.data.Dataset):
    """Dataset samples joined with their RWM candidates and labels (samples whose labelling failed are skipped)."""

    def __init__(self, data: str | Path, labels: str | Path) -> None:
        self.base = ShardDataset(data)
        with np.load(labels, allow_pickle=False) as z:
            self.cands, self.targets, valid = z["candidates"], z["targets"], z["valid"]
        if len(valid) != len(self.base):
            raise ValueError(f"labels {labels} cover {len(valid)} samples, dataset {data} has {len(self.base)}")
        self.keep = np.flatnonzero(valid)
        if not len(self.keep):
            raise ValueError(f"labels {labels} hold no valid sample")
        self.model_cfg = self.base.model_cfg
        self.manifest = self.base.manifest

    def __len__(self) -> int:
        return len(self.keep)

    def shard_of(self, i: int) -> int:
        return self.base.shard_of(int(self.keep[i]))

    def __getitem__(self, i: int) -> dict:
        j = int(self.keep[i])
        item = self.base[j]
        item["rwm_trajectories"] = self.cands[j]
        item["rwm_targets"] = self.targets[j]
        return item


def scene_tokens(out: dict) -> torch.Tensor:
    """The tokens the RWM (and the planner's context) read: agents, map elements, ego/command."""
    return torch.cat([out["agent_tokens"], out["map_tokens"], out["ego_tokens"]], dim=1)


def rwm_predict(model: IRLVLA, batch: dict, trajectories: torch.Tensor) -> dict:
    with torch.no_grad():
        out = model.perceive(batch)
    return model.rwm(trajectories, out["bev"], scene_tokens(out))


def freeze_except(model: torch.nn.Module, trainable: str) -> list[torch.nn.Parameter]:
    params = []
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(trainable + "."))
        if p.requires_grad:
            params.append(p)
    return params


def eval_except(model: torch.nn.Module, trainable: str) -> None:
    """Frozen children in eval mode: their BatchNorm uses (and keeps) the running statistics, as at inference.

    The shared loop puts the whole model in train mode; a frozen trunk left there would normalise with each batch's
    statistics (features the policy never produces at run time) and drift its running statistics."""
    for name, child in model.named_children():
        child.train(name == trainable)


def perception_cache(model: IRLVLA, ds: LabelledDataset, batch_size: int = 8) -> dict[str, torch.Tensor]:
    """The frozen trunk's outputs the RWM reads (BEV, scene tokens) for every labelled sample, in eval mode, once
    (`training.trunk_cache`: the trunk is frozen during reward training, so a step costs the RWM head only)."""
    out = trunk_outputs(model, ds.base, [int(i) for i in ds.keep], batch_size)
    return {"bev": out["bev"], "scene": scene_tokens(out)}


class CachedRWMDataset(torch.utils.data.Dataset):
    """Labelled samples as (cached BEV, scene tokens, candidates, sub-metric labels, exact EPDMS)."""

    def __init__(self, ds: LabelledDataset, cache: dict[str, torch.Tensor]) -> None:
        self.cache = cache
        keep = ds.keep
        self.cands = torch.from_numpy(ds.cands[keep]).float()
        self.targets = torch.from_numpy(ds.targets[keep]).float()
        self.epdms = torch.from_numpy(epdms_from_table(ds.targets[keep])).float()

    def __len__(self) -> int:
        return len(self.cands)

    def shard_of(self, i: int) -> int:
        return 0  # in memory: the epoch order is a plain shuffle

    def __getitem__(self, i: int) -> dict:
        return {
            "bev": self.cache["bev"][i],
            "scene": self.cache["scene"][i],
            "rwm_trajectories": self.cands[i],
            "rwm_targets": self.targets[i],
            "rwm_epdms": self.epdms[i],
        }


def ranking_losses(pred_epdms: torch.Tensor, true_epdms: torch.Tensor, temperature: float) -> dict[str, torch.Tensor]:
    """MSE of the predicted EPDMS and the listwise ranking loss over each sample's candidates (B, M)."""
    target = torch.softmax(true_epdms / temperature, dim=-1)
    listwise = -(target * torch.log_softmax(pred_epdms / temperature, dim=-1)).sum(-1).mean()
    return {"epdms_mse": ((pred_epdms - true_epdms) ** 2).mean(), "listwise": listwise}


class CachedRWMStep:
    """Step function of the shared loop on cached trunk outputs: per-metric loss + the EPDMS ranking terms."""

    def __init__(self, cfg: RWMTrainConfig) -> None:
        self.cfg = cfg

    def __call__(self, net: torch.nn.Module, batch: dict, gen: torch.Generator, step: int):
        model = net.module if hasattr(net, "module") else net
        pred = model.rwm(batch["rwm_trajectories"], batch["bev"], batch["scene"])
        loss, parts = rwm_loss(pred, batch["rwm_targets"], model.cfg.rwm)
        rank = ranking_losses(pred["epdms"], batch["rwm_epdms"], self.cfg.rank_temperature)
        loss = loss + self.cfg.epdms_weight * rank["epdms_mse"] + self.cfg.rank_weight * rank["listwise"]
        metrics = {f"rwm_{k}": float(v.detach()) for k, v in {**parts, **rank}.items()}
        return loss, metrics


def train_rwm(
    data: str | Path,
    labels: str | Path,
    checkpoint: str,
    out: str | Path,
    cfg: TrainConfig,
    resume: bool = True,
    progress: bool = True,
    rwm_cfg: RWMTrainConfig | None = None,
) -> dict:
    """Train `model.rwm` on exact labels with the imitation trunk frozen (its outputs cached once, eval mode; the
    batches come from memory, so `cfg.num_workers` is not used)."""
    out = Path(out)
    rwm_cfg = rwm_cfg or RWMTrainConfig()
    device = resolve_device(cfg.device)
    ds = LabelledDataset(data, labels)
    model = load_checkpoint(checkpoint).to(device)
    params = freeze_except(model, "rwm")
    t0 = time.perf_counter()
    cached = CachedRWMDataset(ds, perception_cache(model, ds))
    cache_s = time.perf_counter() - t0

    def loader(start: int, d: DistInfo):
        sampler = StepBatchSampler(cached, cfg.batch_size, cfg.steps, cfg.seed, start, d.rank, d.world)
        return torch.utils.data.DataLoader(cached, batch_sampler=sampler, num_workers=0)

    final, summary = train_loop(model, params, loader, CachedRWMStep(rwm_cfg), cfg, out, resume, progress, None, device)
    for p in final.parameters():
        p.requires_grad_(True)
    path = save_checkpoint(final.cpu(), out / "model.safetensors", {"stage": "rwm", "init": checkpoint})
    summary.update(checkpoint=str(path), config=to_plain(cfg), rwm=to_plain(rwm_cfg), labels=str(labels))
    summary.update(labelled_samples=len(cached), perception_cache_s=round(cache_s, 1))
    atomic_write_json(out / "summary.json", summary)
    return summary


def agreement(pred: dict[str, np.ndarray], targets: np.ndarray, true_epdms: np.ndarray) -> dict:
    """Agreement figures of predictions (per sample: `epdms` (M,), `metrics` (M, 9), class logits) with labels."""
    from scipy.stats import spearmanr

    rhos, regrets, acc = [], [], {m: [] for m in EPDMS_METRICS}
    ep_err = []
    idx = {m: i for i, m in enumerate(EPDMS_METRICS)}
    for s in range(len(true_epdms)):
        t, p = true_epdms[s], pred["epdms"][s]
        if np.ptp(t) > 1e-9 and np.ptp(p) > 1e-12:
            rhos.append(float(spearmanr(p, t).statistic))
        regrets.append(float(t.max() - t[int(np.argmax(p))]))
        for name in ("nc", "ddc"):
            cls = np.rint(targets[s, :, idx[name]] * 2).astype(int)
            acc[name].append((pred[f"{name}_logits"][s].argmax(-1) == cls).mean())
        for name in ("dac", "tlc", "ttc", "lk", "hc", "ec"):
            acc[name].append(((pred["metrics"][s, :, idx[name]] >= 0.5) == (targets[s, :, idx[name]] >= 0.5)).mean())
        e = np.abs(pred["metrics"][s, :, idx["ep"]] - targets[s, :, idx["ep"]])
        acc["ep"].append((e <= 0.1).mean())
        ep_err.append(e.mean())
    return {
        "scenes": len(true_epdms),
        "spearman_mean": round(float(np.mean(rhos)), 4) if rhos else None,
        "spearman_scenes": len(rhos),
        "top1_regret": round(float(np.mean(regrets)), 4),
        "accuracy": {m: round(float(np.mean(v)), 4) for m, v in acc.items()},
        "ep_mae": round(float(np.mean(ep_err)), 4),
        "true_best_epdms": round(float(true_epdms.max(1).mean()), 4),
    }


@torch.no_grad()
def evaluate_rwm(checkpoint: str, data: str | Path, labels: str | Path, out: Path | None = None) -> dict:
    """Held-out agreement of a checkpoint's RWM with the exact labels (see `agreement`)."""
    model = load_checkpoint(checkpoint).eval()
    ds = LabelledDataset(data, labels)
    collate = Collate(ds.model_cfg)
    keys = ("epdms", "metrics", "nc_logits", "ddc_logits")
    pred: dict[str, list] = {k: [] for k in keys}
    targets, true = [], []
    for j in range(0, len(ds), 8):
        batch = collate([ds[i] for i in range(j, min(j + 8, len(ds)))])
        p = rwm_predict(model, batch, batch["rwm_trajectories"])
        for k in keys:
            pred[k].append(p[k].double().numpy())
        targets.append(batch["rwm_targets"].double().numpy())
    targets_arr = np.concatenate(targets)
    true = epdms_from_table(targets_arr)
    result = agreement({k: np.concatenate(v) for k, v in pred.items()}, targets_arr, true)
    if out is not None:
        atomic_write_json(Path(out) / "heldout_agreement.json", result)
    return result


__all__ = [
    "CachedRWMDataset",
    "CachedRWMStep",
    "LabelledDataset",
    "agreement",
    "eval_except",
    "evaluate_rwm",
    "freeze_except",
    "generate_labels",
    "perception_cache",
    "perturb_expert",
    "ranking_losses",
    "rwm_predict",
    "scene_tokens",
    "train_rwm",
]
