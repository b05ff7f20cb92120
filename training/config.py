"""Typed configs of every training stage (one frozen dataclass each), loaded only through `irlvla.configload`.

The seed ranges of the three data splits are fixed here, disjoint, and written into every dataset manifest, so no
held-out scene can leak into training: scene j of a split is `generate_scene(families[j % F], split.start + j)`.
The closed-loop route suites reserve their own seed ranges (`sim.closed_loop.suites`); a check at import refuses
any training split that overlaps them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from agent.validation import require_non_negative, require_positive
from sim.closed_loop.suites import RESERVED_SEED_RANGES

#: split -> (first seed, end seed exclusive). Disjoint from each other and from the route suites' reserved seeds.
SPLIT_SEEDS: dict[str, tuple[int, int]] = {
    "train": (100_000, 200_000),
    "val": (200_000, 210_000),
    "heldout": (210_000, 220_000),
}
for _split, (_lo, _hi) in SPLIT_SEEDS.items():
    for _reserved in RESERVED_SEED_RANGES:
        if _lo < _reserved.stop and _reserved.start < _hi:
            raise RuntimeError(f"training split {_split} seeds [{_lo}, {_hi}) overlap a route suite's {_reserved}")


def _unit(owner: str, **values: float) -> None:
    for k, v in values.items():
        if not (isinstance(v, (int, float)) and math.isfinite(v) and 0.0 <= v <= 1.0):
            raise ValueError(f"{owner}.{k} must be in [0, 1], got {v!r}")


@dataclass(frozen=True)
class DataConfig:
    """Dataset generation from the embedded world (see docs/training.md for the sample layout)."""

    preset: str = "tiny"  #: model preset whose input size, BEV grid and query counts the samples are built for
    split: str = "train"
    num_scenes: int = 44
    seed_offset: int = 0  #: first scene index within the split's seed range (extend a dataset without overlap)
    families: tuple[str, ...] = ()  #: empty: every scenario family, cycled
    past_s: float = 2.0
    future_s: float = 10.0  #: generated future; frames are sampled while 4 s of it remain
    frame_stride_s: float = 0.5  #: current frames sampled along each scenario at this stride
    min_history_s: float = 1.5  #: first sampled frame (EPDMS comfort needs 1.5 s of history)
    cv_max_epdms: float = 0.8  #: a frame the constant-velocity agent scores at least this on is trivially solved
    expert_min_epdms: float = 0.8  #: a frame the expert scores below this is dropped (no imitation target)
    keep_trivial_fraction: float = 0.0  #: keep this share of trivially solved frames (deterministic per frame)
    target_distance_m: float = 20.0  #: route target point this far ahead along the route (ego frame input)
    shard_size: int = 32
    workers: int = 2

    def __post_init__(self) -> None:
        if self.split not in SPLIT_SEEDS:
            raise ValueError(f"DataConfig.split must be one of {sorted(SPLIT_SEEDS)}, got {self.split!r}")
        lo, hi = SPLIT_SEEDS[self.split]
        require_positive("DataConfig", num_scenes=self.num_scenes, shard_size=self.shard_size, workers=self.workers)
        require_positive("DataConfig", frame_stride_s=self.frame_stride_s, target_distance_m=self.target_distance_m)
        require_non_negative("DataConfig", seed_offset=self.seed_offset)
        if lo + self.seed_offset + self.num_scenes > hi:
            raise ValueError(
                f"DataConfig: {self.num_scenes} scenes from offset {self.seed_offset} overflow {self.split}"
            )
        if not (1.5 <= self.min_history_s <= self.past_s):
            raise ValueError("DataConfig.min_history_s must be in [1.5, past_s]")
        if self.future_s < 4.0:
            raise ValueError("DataConfig.future_s must be at least 4 s (the planning horizon)")
        _unit(
            "DataConfig",
            cv_max_epdms=self.cv_max_epdms,
            expert_min_epdms=self.expert_min_epdms,
            keep_trivial_fraction=self.keep_trivial_fraction,
        )

    @property
    def seed_range(self) -> tuple[int, int]:
        lo = SPLIT_SEEDS[self.split][0] + self.seed_offset
        return lo, lo + self.num_scenes


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then cosine decay, gradient clipping, optional EMA of the weights."""

    lr: float = 6e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 20
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    ema_decay: float = 0.0  #: 0 disables the EMA; e.g. 0.999

    def __post_init__(self) -> None:
        require_positive("OptimConfig", lr=self.lr, grad_clip=self.grad_clip)
        require_non_negative("OptimConfig", weight_decay=self.weight_decay, warmup_steps=self.warmup_steps)
        _unit("OptimConfig", min_lr_ratio=self.min_lr_ratio)
        if not (0.0 <= self.ema_decay < 1.0):
            raise ValueError(f"OptimConfig.ema_decay must be in [0, 1), got {self.ema_decay}")


@dataclass(frozen=True)
class TrainConfig:
    """One training run (imitation, RWM or RL): steps, batch, checkpoints, loader, precision."""

    steps: int = 200
    batch_size: int = 8
    seed: int = 0
    checkpoint_every: int = 50
    log_every: int = 1
    num_workers: int = 1  #: DataLoader worker processes
    bf16: bool = True  #: bf16 autocast when on a GPU (ignored on the CPU)
    device: str = "auto"
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        require_positive("TrainConfig", steps=self.steps, batch_size=self.batch_size)
        require_positive("TrainConfig", checkpoint_every=self.checkpoint_every, log_every=self.log_every)
        require_non_negative("TrainConfig", num_workers=self.num_workers, seed=self.seed)


@dataclass(frozen=True)
class RWMLabelConfig:
    """Which candidates each sample's reward labels cover (all scored by the exact EPDMS harness)."""

    perturbed_expert: int = 8  #: perturbed copies of the expert trajectory (lateral, speed, heading)
    policy_samples: int = 8  #: policy candidates from a checkpoint (0 or no checkpoint: none)
    lateral_sigma_m: float = 1.2
    speed_sigma: float = 0.25  #: relative speed-scale perturbation
    seed: int = 0
    workers: int = 2
    max_samples: int = 0  #: label only this many samples, evenly spread over the dataset (0: all)

    def __post_init__(self) -> None:
        require_non_negative("RWMLabelConfig", perturbed_expert=self.perturbed_expert, max_samples=self.max_samples)
        require_non_negative("RWMLabelConfig", policy_samples=self.policy_samples, seed=self.seed)
        require_positive("RWMLabelConfig", lateral_sigma_m=self.lateral_sigma_m, speed_sigma=self.speed_sigma)
        require_positive("RWMLabelConfig", workers=self.workers)


@dataclass(frozen=True)
class RWMTrainConfig:
    """Reward-model objective on top of the model's per-metric `rwm_loss`: the ranking the RWM is used for.

    The per-metric loss alone fits each sub-score but not the product that ranks candidates (EPDMS multiplies four
    gates with a weighted mean), so two terms on the predicted EPDMS itself are added: `epdms_weight` x MSE against
    the exact EPDMS, and `rank_weight` x a listwise loss (cross-entropy between softmax(true / T) and
    softmax(pred / T) over each sample's candidates, T = `rank_temperature`), which is what the selection and the
    GRPO advantages read. Zero weights give the per-metric loss only (the model's own recipe)."""

    epdms_weight: float = 4.0
    rank_weight: float = 1.0
    rank_temperature: float = 0.1

    def __post_init__(self) -> None:
        require_non_negative("RWMTrainConfig", epdms_weight=self.epdms_weight, rank_weight=self.rank_weight)
        require_positive("RWMTrainConfig", rank_temperature=self.rank_temperature)


@dataclass(frozen=True)
class RLConfig:
    """GRPO over the stochastic DDIM chain of the truncated-diffusion planner."""

    reward: str = "rwm"  #: "rwm" (learned reward world model) or "exact" (the EPDMS harness, simulator in the loop)
    groups: int = 2  #: samples per scene = groups x num_anchors
    denoise_steps: int = 4  #: stochastic DDIM steps from start_timestep down to 0
    start_timestep: int = 20
    eta: float = 1.0  #: DDIM eta; the per-step Gaussian's std is eta x the DDPM posterior std
    min_std: float = 0.02  #: floor of the per-step std (normalised units) so every step is a proper Gaussian
    step_discount: float = 0.6  #: weight of step i is discount ** (steps - 1 - i) (ReCogDrive 0.6)
    clip_eps: float = 0.2
    ppo_epochs: int = 1
    bc_weight: float = 0.1  #: imitation (behaviour-cloning) loss weight (DiffusionDriveV2/ReCogDrive 0.1)

    def __post_init__(self) -> None:
        if self.reward not in ("rwm", "exact"):
            raise ValueError(f"RLConfig.reward must be 'rwm' or 'exact', got {self.reward!r}")
        require_positive("RLConfig", groups=self.groups, denoise_steps=self.denoise_steps, eta=self.eta)
        require_positive("RLConfig", min_std=self.min_std, clip_eps=self.clip_eps, ppo_epochs=self.ppo_epochs)
        require_non_negative("RLConfig", bc_weight=self.bc_weight)
        _unit("RLConfig", step_discount=self.step_discount)
        if self.start_timestep < self.denoise_steps:
            raise ValueError("RLConfig.start_timestep must be at least denoise_steps")


__all__ = ["SPLIT_SEEDS", "DataConfig", "OptimConfig", "RLConfig", "RWMLabelConfig", "RWMTrainConfig", "TrainConfig"]
