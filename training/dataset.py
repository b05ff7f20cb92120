"""Datasets from the embedded world: parallel generation into npz shards + index, and a torch loader over them.

Generation (`build_dataset`): scenes of one split's seed range are generated in worker processes; along each scenario
current frames are sampled every `frame_stride_s` (the moments of interaction included, since every frame with 4 s of
future is a candidate); each frame is scored with the exact EPDMS harness for the constant-velocity agent and the
expert, and frames the CV agent already solves (NAVSIM's "trivially solved" filter) or the expert fails are dropped.
Kept frames become samples (`training.features.build_sample`), written in shards of `shard_size` as compressed npz,
listed in `index.json`; `manifest.json` holds the config, the seed range, the CV / expert scores of the whole set and
of the kept set, per family, and the command label histograms. A scene that fails is recorded with its error, the run
goes on; every file is written atomically.

Loading (`ShardDataset`, `StepBatchSampler`): the batch order is a pure function of (seed, epoch): shards are
shuffled, then samples within a shard, so a worker reads a shard once per epoch; a run resumed at global step s
restarts exactly at that step's batch; under DDP each rank takes every world-th sample of the epoch order.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from agent.config import ModelConfig, load_preset
from agent.types import PATH_PLAN_COMMANDS, SPEED_PLAN_COMMANDS
from irlvla.atomic import atomic_path, atomic_write_json
from irlvla.configload import to_plain
from sim.scenarios import FAMILIES
from training.config import SPLIT_SEEDS, DataConfig
from training.features import build_sample, cached_scene, constant_velocity_plan, sample_steps, scene_at

logger = logging.getLogger(__name__)

INDEX = "index.json"
MANIFEST = "manifest.json"


def scene_list(cfg: DataConfig) -> list[tuple[str, int]]:
    fams = cfg.families or FAMILIES
    lo, _ = cfg.seed_range
    return [(fams[j % len(fams)], lo + j) for j in range(cfg.num_scenes)]


def _unit_hash(*parts: object) -> float:
    h = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "little") / 2**64


def score_cv_expert(scene) -> tuple[float, float]:
    """EPDMS of the constant-velocity plan and of the expert's logged future at the scene's current frame."""
    from navsim_eval import score_proposals

    res = score_proposals(scene, np.stack([constant_velocity_plan(scene), scene.human_trajectory()]))
    return float(res.epdms[0]), float(res.epdms[1])


def _scene_job(args: tuple[DataConfig, str, int]) -> dict:
    """Worker: every sampled frame of one scene, scored, filtered, and featurised when kept."""
    cfg, family, seed = args
    model_cfg = load_preset(cfg.preset)
    try:
        base = cached_scene(family, seed, cfg.past_s, cfg.future_s)
        frames, samples = [], []
        for step in sample_steps(base, cfg.min_history_s, cfg.frame_stride_s):
            scene = scene_at(base, step)
            cv, expert = score_cv_expert(scene)
            trivial = cv >= cfg.cv_max_epdms
            keep = expert >= cfg.expert_min_epdms and (
                not trivial or _unit_hash(family, seed, step) < cfg.keep_trivial_fraction
            )
            meta = {"family": family, "seed": seed, "step": step, "token": scene.token, "cv_epdms": cv}
            meta.update(expert_epdms=expert, trivial=bool(trivial), kept=bool(keep))
            frames.append(meta)
            if keep:
                arrays = build_sample(scene, model_cfg, cfg.target_distance_m)
                meta = dict(meta, speed_command=int(arrays["speed_command"]), path_command=int(arrays["path_command"]))
                samples.append((meta, arrays))
        return {"family": family, "seed": seed, "frames": frames, "samples": samples, "error": None}
    except Exception:  # one broken scene is a recorded failure, not a dead run
        return {"family": family, "seed": seed, "frames": [], "samples": [], "error": traceback.format_exc()}


def _write_shard(out: Path, k: int, buf: list[dict]) -> dict:
    name = f"shard_{k:05d}.npz"
    stacked = {key: np.stack([s[key] for s in buf]) for key in buf[0]}
    with atomic_path(out / name, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **stacked)
    return {"file": name, "num_samples": len(buf)}


def _set_stats(frames: list[dict]) -> dict:
    if not frames:
        return {"frames": 0}
    cv = np.array([f["cv_epdms"] for f in frames])
    ex = np.array([f["expert_epdms"] for f in frames])
    return {"frames": len(frames), "cv_epdms": round(float(cv.mean()), 4), "expert_epdms": round(float(ex.mean()), 4)}


def build_dataset(cfg: DataConfig, out: str | Path, progress: bool = True) -> dict:
    """Generate a split into `out` (shards, index.json, manifest.json); returns the manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    jobs = [(cfg, f, s) for f, s in scene_list(cfg)]
    shards: list[dict] = []
    samples: list[dict] = []
    frames: list[dict] = []
    failures: list[dict] = []
    buf: list[dict] = []
    ctx = mp.get_context("spawn")
    bar = _progress(len(jobs), f"data {cfg.split}", progress)
    with ctx.Pool(min(cfg.workers, len(jobs))) as pool:
        for res in pool.imap(_scene_job, jobs):
            bar.update(1)
            if res["error"]:
                logger.error("scene %s seed %d failed:\n%s", res["family"], res["seed"], res["error"])
                failures.append({k: res[k] for k in ("family", "seed", "error")})
                continue
            frames.extend(res["frames"])
            for meta, arrays in res["samples"]:
                meta = dict(meta, shard=len(shards), row=len(buf))
                samples.append(meta)
                buf.append(arrays)
                if len(buf) == cfg.shard_size:
                    shards.append(_write_shard(out, len(shards), buf))
                    buf = []
    bar.close()
    if buf:
        shards.append(_write_shard(out, len(shards), buf))
    kept = [f for f in frames if f["kept"]]
    per_family = {
        fam: {
            "all": _set_stats([f for f in frames if f["family"] == fam]),
            "kept": _set_stats([f for f in kept if f["family"] == fam]),
        }
        for fam in sorted({f["family"] for f in frames})
    }
    manifest = {
        "format": "irlvla-dataset/1",
        "split": cfg.split,
        "seed_range": list(cfg.seed_range),
        "split_seed_ranges": {k: list(v) for k, v in SPLIT_SEEDS.items()},
        "config": to_plain(cfg),
        "num_scenes": cfg.num_scenes,
        "num_samples": len(samples),
        "num_shards": len(shards),
        "failed_scenes": failures,
        "scores": {"all_frames": _set_stats(frames), "kept": _set_stats(kept), "per_family": per_family},
        "speed_commands": dict(Counter(SPEED_PLAN_COMMANDS[s["speed_command"]] for s in samples)),
        "path_commands": dict(Counter(PATH_PLAN_COMMANDS[s["path_command"]] for s in samples)),
        "wall_s": round(time.time() - t0, 1),
    }
    atomic_write_json(out / INDEX, {"shards": shards, "samples": samples})
    atomic_write_json(out / MANIFEST, manifest)
    logger.info("dataset %s: %d samples in %d shards (%s)", out, len(samples), len(shards), manifest["scores"])
    return manifest


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NullBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, dynamic_ncols=True)


# ---------------------------------------------------------------------------------------------------------- loading
class ShardDataset(torch.utils.data.Dataset):
    """Samples of a generated split; each worker keeps the shard it read last (the sampler keeps shards together)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not (self.root / INDEX).is_file():
            raise FileNotFoundError(f"{self.root} is not a dataset (no {INDEX}); run `irlvla train data` first")
        index = json.loads((self.root / INDEX).read_text())
        self.manifest = json.loads((self.root / MANIFEST).read_text())
        self.shards = index["shards"]
        self.samples = index["samples"]
        if not self.samples:
            raise ValueError(f"dataset {self.root} has no samples")
        self.model_cfg: ModelConfig = load_preset(self.manifest["config"]["preset"])
        self._cache: tuple[int, dict] | None = None

    def require_scenes(self, stage: str) -> None:
        """Stages that re-score samples with the exact EPDMS harness need the embedded world's scenes behind them."""
        if self.manifest.get("source", "embedded") != "embedded":
            raise ValueError(
                f"{stage} needs a dataset generated from the embedded world (`irlvla train data`); {self.root} holds "
                f"{self.manifest['source']} samples, which carry no scene the exact scorer can replay"
            )

    def __len__(self) -> int:
        return len(self.samples)

    def shard_of(self, i: int) -> int:
        return int(self.samples[i]["shard"])

    def _shard(self, k: int) -> dict:
        if self._cache is None or self._cache[0] != k:
            with np.load(self.root / self.shards[k]["file"], allow_pickle=False) as z:
                self._cache = (k, {key: z[key] for key in z.files})
        return self._cache[1]

    def __getitem__(self, i: int) -> dict:
        meta = self.samples[i]
        arrays = self._shard(int(meta["shard"]))
        item = {k: v[int(meta["row"])] for k, v in arrays.items()}
        item["index"] = np.int64(i)
        return item


def collate(items: list[dict], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Stack samples; images uint8 (N, H, W, 3) -> normalised float (N, 3, H, W); commands -> one-hot probabilities."""
    out = {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in items[0]}
    mean = torch.tensor(cfg.preprocess.mean).view(1, 1, 3, 1, 1) * 255.0
    std = torch.tensor(cfg.preprocess.std).view(1, 1, 3, 1, 1) * 255.0
    out["images"] = (out["images"].permute(0, 1, 4, 2, 3).float() - mean) / std
    out["speed_probs"] = torch.nn.functional.one_hot(out["speed_command"], cfg.num_speed_commands).float()
    out["path_probs"] = torch.nn.functional.one_hot(out["path_command"], cfg.num_path_commands).float()
    if "bev_semantic" in out:  # NAVSIM samples have no BEV raster (training.navsim_data)
        out["bev_semantic"] = out["bev_semantic"].long()
    return out


class Collate:
    """Picklable collate function bound to a model config (DataLoader workers are separate processes)."""

    def __init__(self, cfg: ModelConfig) -> None:
        self.cfg = cfg

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        return collate(items, self.cfg)


def epoch_order(shard_of: list[int], seed: int, epoch: int) -> np.ndarray:
    """Sample order of one epoch: shards shuffled, then samples within each shard (a pure function of seed, epoch)."""
    rng = np.random.default_rng([int(seed), int(epoch)])
    shard_of = np.asarray(shard_of)
    order = []
    for k in rng.permutation(np.unique(shard_of)):
        members = np.flatnonzero(shard_of == k)
        order.append(members[rng.permutation(len(members))])
    return np.concatenate(order)


class StepBatchSampler(torch.utils.data.Sampler):
    """Batches for global steps [start_step, total_steps): deterministic, resumable, split over DDP ranks."""

    def __init__(
        self,
        dataset: ShardDataset,
        batch_size: int,
        total_steps: int,
        seed: int,
        start_step: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.shard_of = [dataset.shard_of(i) for i in range(len(dataset))]
        self.batch_size, self.total_steps, self.seed = batch_size, total_steps, seed
        self.start_step, self.rank, self.world = start_step, rank, world
        per_rank = len(self.shard_of) // world
        self.batches_per_epoch = per_rank // batch_size
        if self.batches_per_epoch < 1:
            raise ValueError(
                f"dataset of {len(self.shard_of)} samples is too small for batch {batch_size} x {world} ranks"
            )

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)

    def batch_at(self, step: int) -> list[int]:
        epoch, b = divmod(step, self.batches_per_epoch)
        order = epoch_order(self.shard_of, self.seed, epoch)[self.rank :: self.world]
        return order[b * self.batch_size : (b + 1) * self.batch_size].tolist()

    def __iter__(self):
        cached_epoch, order = -1, None
        for step in range(self.start_step, self.total_steps):
            epoch, b = divmod(step, self.batches_per_epoch)
            if epoch != cached_epoch:
                order = epoch_order(self.shard_of, self.seed, epoch)[self.rank :: self.world]
                cached_epoch = epoch
            yield order[b * self.batch_size : (b + 1) * self.batch_size].tolist()


def make_loader(
    dataset: ShardDataset,
    batch_size: int,
    total_steps: int,
    seed: int,
    start_step: int = 0,
    num_workers: int = 0,
    rank: int = 0,
    world: int = 1,
) -> torch.utils.data.DataLoader:
    sampler = StepBatchSampler(dataset, batch_size, total_steps, seed, start_step, rank, world)
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=Collate(dataset.model_cfg),
        persistent_workers=False,
        multiprocessing_context="spawn" if num_workers else None,
    )


__all__ = [
    "Collate",
    "ShardDataset",
    "StepBatchSampler",
    "build_dataset",
    "collate",
    "epoch_order",
    "make_loader",
    "scene_list",
    "score_cv_expert",
]
