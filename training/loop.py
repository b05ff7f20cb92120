"""The one optimisation loop every stage uses (imitation, reward model, RL): AdamW, warm-up + cosine, clipping, bf16
autocast on a GPU, optional EMA, progress bar, CSV + PNG curves, checkpoints every N steps, exact resume, DDP.

Exact resume: the training state (`state.pt`: weights, optimizer, scheduler, EMA, step, RNG states) is written
atomically every `checkpoint_every` steps; the data order is a pure function of (seed, step) (`StepBatchSampler`) and
every random draw of a step (diffusion noise and timesteps, RL samples) comes from a generator seeded by (seed, step,
rank), so a run killed after its checkpoint at step s and resumed replays steps s+1.. exactly as the uninterrupted run.
The state file holds tensors and plain numbers only and is read with `torch.load(weights_only=True)`; final weights are
safetensors (`agent.checkpoint.save_checkpoint`).

DDP: launched by torchrun (RANK / WORLD_SIZE / LOCAL_RANK in the environment) the loop joins a process group (gloo on
the CPU, nccl on GPUs), wraps the model, and only rank 0 writes files.
"""

from __future__ import annotations

import copy
import csv
import io
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from irlvla.atomic import atomic_path, atomic_write_bytes
from training.config import OptimConfig, TrainConfig
from training.speed import apply_speed_options, build_optimizer

logger = logging.getLogger(__name__)

STATE = "state.pt"
CURVES = "curves.csv"


# ------------------------------------------------------------------------------------------------------ distributed
@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join torchrun's process group when launched by it; a plain process is rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(name: str, dist: DistInfo | None = None) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda" and dist is not None and dist.world > 1:
        dev = torch.device("cuda", dist.local_rank)
    return dev


# ---------------------------------------------------------------------------------------------------- optimisation
def warmup_cosine(step: int, total: int, cfg: OptimConfig) -> float:
    """LR multiplier: linear warm-up over `warmup_steps`, then cosine down to `min_lr_ratio` at `total`."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, total - cfg.warmup_steps)
    p = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))


class EMA:
    """Exponential moving average of a module's floating-point state (weights and buffers)."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(self.decay).add_(v.detach(), alpha=1.0 - self.decay)
            else:
                self.shadow[k].copy_(v)

    def copy_to(self, model: torch.nn.Module) -> torch.nn.Module:
        out = copy.deepcopy(model)
        out.load_state_dict(self.shadow)
        return out


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The generator of every random draw of one training step (see the module docstring)."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(step)) * 97 + int(rank))


def _rng_state() -> dict:
    np_state = np.random.get_state()  # noqa: NPY002 - the legacy global state other code may draw from
    return {
        "torch": torch.get_rng_state(),
        "numpy": [
            np_state[0],
            torch.from_numpy(np_state[1].astype(np.int64)),
            *[int(x) for x in np_state[2:4]],
            float(np_state[4]),
        ],
        "python": [list(map(int, random.getstate()[1])), random.getstate()[0], random.getstate()[2]],
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    internal, version, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


# ------------------------------------------------------------------------------------------------------------ curves
class Curves:
    """Per-step metrics kept in memory, written as CSV (and a PNG plot) atomically at checkpoints and at the end."""

    def __init__(self, out: Path, resume_step: int = 0) -> None:
        self.out = out
        self.rows: list[dict] = []
        path = out / CURVES
        if resume_step and path.is_file():
            with open(path, newline="") as fh:
                self.rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]

    def add(self, row: dict) -> None:
        self.rows.append(row)

    def write(self) -> None:
        if not self.rows:
            return
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys)
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_bytes(self.out / CURVES, buf.getvalue().encode())
        self._plot(keys)

    def _plot(self, keys: list[str]) -> None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:  # the PNG is a convenience; the CSV is the record
            logger.info("matplotlib missing (install the 'viz' extra): curves.png not written")
            return
        skip = {"step", "lr", "samples_per_s", "epoch"}
        names = [k for k in keys if k not in skip][:12]
        steps = [int(r["step"]) for r in self.rows]
        fig, axes = plt.subplots(len(names) + 1, 1, figsize=(7, 1.8 * (len(names) + 1)), sharex=True)
        for ax, k in zip(axes, names):
            ax.plot(steps, [float(r.get(k) or "nan") for r in self.rows], lw=1)
            ax.set_ylabel(k, fontsize=7)
        axes[-1].plot(steps, [float(r.get("lr") or "nan") for r in self.rows], lw=1)
        axes[-1].set_ylabel("lr", fontsize=7)
        axes[-1].set_xlabel("step")
        fig.tight_layout()
        with atomic_path(self.out / "curves.png", suffix=".png") as tmp:
            fig.savefig(tmp, dpi=80)
        plt.close(fig)


# -------------------------------------------------------------------------------------------------------------- loop
StepFn = Callable[[torch.nn.Module, dict, torch.Generator, int], tuple[torch.Tensor, dict[str, float]]]


def move(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def batch_size_of(batch: dict) -> int:
    """Samples in a batch of raw samples (images) or of cached trunk outputs (expert trajectories)."""
    for key in ("images", "gt_trajectory", "bev"):
        if key in batch:
            return int(batch[key].shape[0])
    return 0


def optimisation_step(
    net: torch.nn.Module,
    params: list[torch.nn.Parameter],
    opt: torch.optim.Optimizer,
    step_fn: StepFn,
    batch: dict,
    gen: torch.Generator,
    step: int,
    grad_clip: float,
    bf16_on: torch.device | None = None,
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """One step: forward + loss (bf16 autocast on device `bf16_on`, none when None), backward, gradient clipping,
    optimizer update.

    A non-finite loss returns before the update, so the weights stay those of the last good step. The scheduler is
    the caller's (benchmarks/bench_train.py times exactly this function)."""
    amp = bf16_on or torch.device("cpu")
    with torch.autocast(amp.type, dtype=torch.bfloat16, enabled=bf16_on is not None):
        loss, metrics = step_fn(net, batch, gen, step)
    if not torch.isfinite(loss):
        return loss, metrics, torch.full((), float("nan"))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    opt.step()
    return loss, metrics, grad_norm


def train_loop(
    model: torch.nn.Module,
    params: list[torch.nn.Parameter],
    make_loader: Callable[[int, DistInfo], object],
    step_fn: StepFn,
    cfg: TrainConfig,
    out: str | Path,
    resume: bool = True,
    progress: bool = True,
    dist: DistInfo | None = None,
    device: torch.device | None = None,
) -> tuple[torch.nn.Module, dict]:
    """Run `cfg.steps` optimisation steps of `step_fn` over `make_loader(start_step, dist)`; returns the (EMA) model
    and a summary. `model` is already on `device`; with DDP it is wrapped here."""
    out = Path(out)
    dist = dist or DistInfo()
    device = device or next(model.parameters()).device
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
    applied = apply_speed_options(model, cfg.speed)
    if applied:
        logger.info("speed options: %s", ", ".join(applied))
    opt = build_optimizer(params, cfg.optim.lr, cfg.optim.weight_decay, cfg.speed.fused_adamw, device)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, cfg.steps, cfg.optim))
    ema = EMA(model, cfg.optim.ema_decay) if cfg.optim.ema_decay > 0 else None
    start = 0
    state_path = out / STATE
    if resume and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if ema is not None and state.get("ema") is not None:
            ema.shadow = {k: v.to(device) for k, v in state["ema"].items()}
        _set_rng_state(state["rng"])
        start = int(state["step"])
        logger.info("resumed %s at step %d", out, start)
    net = model
    if dist.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    curves = Curves(out, start) if dist.is_main else None
    bf16_on = device if cfg.bf16 and device.type == "cuda" else None
    loader = make_loader(start, dist)
    bar = None
    if progress and dist.is_main:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc=out.name, dynamic_ncols=True)
    step = start
    t_last, n_last = time.perf_counter(), 0
    summary: dict = {"start_step": start}
    model.train()
    for batch in loader:
        batch = move(batch, device)
        gen = step_generator(cfg.seed, step, dist.rank)
        loss, metrics, grad_norm = optimisation_step(
            net, params, opt, step_fn, batch, gen, step, cfg.optim.grad_clip, bf16_on
        )
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{out.name}: loss is {float(loss)} at step {step}; stopping (last checkpoint kept)"
            )
        sched.step()
        if ema is not None:
            ema.update(model)
        step += 1
        n_last += batch_size_of(batch) * dist.world
        if dist.is_main and (step % cfg.log_every == 0 or step == cfg.steps):
            now = time.perf_counter()
            sps = n_last / max(now - t_last, 1e-9)
            t_last, n_last = now, 0
            row = {"step": step, "loss": round(float(loss.detach()), 6), "grad_norm": round(float(grad_norm), 4)}
            row.update({k: round(float(v), 6) for k, v in metrics.items()})
            row.update(lr=f"{sched.get_last_lr()[0]:.3e}", samples_per_s=round(sps, 3))
            curves.add(row)
            summary["last"] = row
            if bar is not None:
                bar.set_postfix_str(f"loss {float(loss):.4f} {sps:.2f} samples/s")
        if bar is not None:
            bar.update(1)
        if dist.is_main and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            state = {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "ema": ema.shadow if ema is not None else None,
                "rng": _rng_state(),
                "step": step,
            }
            with atomic_path(state_path, suffix=".pt") as tmp:
                torch.save(state, tmp)
            curves.write()
        if step >= cfg.steps:
            break
    if bar is not None:
        bar.close()
    summary["steps"] = step
    final = ema.copy_to(model) if ema is not None else model
    return final, summary


__all__ = [
    "EMA",
    "Curves",
    "DistInfo",
    "init_distributed",
    "optimisation_step",
    "resolve_device",
    "step_generator",
    "train_loop",
    "warmup_cosine",
]
