"""The Bench2Drive agent's configuration: one validated dataclass per component, read from one YAML file.

Every inference option is a field here (never an environment variable); the environment only supplies paths
(`SAVE_PATH`). Unknown YAML keys are an error so a typo cannot silently fall back to a default.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.runtime.config import RuntimeConfig
from agent.validation import require_non_negative as _non_negative
from agent.validation import require_positive as _positive
from irlvla.configload import load_config, load_config_file, to_plain

logger = logging.getLogger(__name__)

#: `AgentConfig.plan_every` at most: 10 ticks (0.5 s at 20 Hz) is one interval of the planned trajectory.
MAX_PLAN_EVERY = 10


@dataclass
class PIDGains:
    """P, I, D gains and the integral window (I is the window mean, D the last difference, as Bench2Drive's PID)."""

    kp: float
    ki: float
    kd: float
    window: int = 40

    def __post_init__(self) -> None:
        _non_negative("PIDGains", kp=self.kp, ki=self.ki, kd=self.kd)
        if int(self.window) != self.window or self.window < 2:
            raise ValueError(f"PIDGains.window must be an integer >= 2, got {self.window!r}")
        self.window = int(self.window)


@dataclass
class ControllerConfig:
    """Trajectory-following controller. Defaults are the Bench2Drive Zoo `PIDController` values.

    creep: after `stuck_seconds` standing still with a stop that no hazard explains (see `hazard_ahead`), the
    controller asks for `creep_speed` for `creep_seconds` so a conservative planner cannot stall the route forever
    (Bench2Drive's AgentBlockedTest ends a route after 60 s). `creep_seconds = 0` disables it.
    """

    lateral: PIDGains = field(default_factory=lambda: PIDGains(0.75, 0.75, 0.3, 40))
    longitudinal: PIDGains = field(default_factory=lambda: PIDGains(5.0, 0.5, 1.0, 40))
    aim_distance: float = 4.0
    angle_threshold: float = 0.3
    target_distance_threshold: float = 10.0
    max_throttle: float = 0.75
    brake_speed: float = 0.4
    brake_ratio: float = 1.1
    clip_delta: float = 0.25
    #: throttle is zeroed above this speed (UniAD's post-processing uses 5 m/s); null disables the cap.
    throttle_cap_speed: float | None = None
    stuck_seconds: float = 40.0
    stuck_speed: float = 0.1
    creep_seconds: float = 1.5
    creep_speed: float = 2.0
    #: "something ahead" vetoes the creep: a detection scoring >= hazard_score whose centre lies in the corridor
    #: 0 < x < hazard_distance, |y| < hazard_half_width (ego frame, metres from the rear axle).
    hazard_score: float = 0.3
    hazard_distance: float = 20.0
    hazard_half_width: float = 2.0

    def __post_init__(self) -> None:
        _positive(
            "ControllerConfig",
            aim_distance=self.aim_distance,
            max_throttle=self.max_throttle,
            brake_ratio=self.brake_ratio,
            clip_delta=self.clip_delta,
            target_distance_threshold=self.target_distance_threshold,
            stuck_seconds=self.stuck_seconds,
            creep_speed=self.creep_speed,
            hazard_distance=self.hazard_distance,
            hazard_half_width=self.hazard_half_width,
        )
        if not (0.0 <= self.hazard_score <= 1.0):
            raise ValueError(f"ControllerConfig.hazard_score must be in [0, 1], got {self.hazard_score}")
        _non_negative(
            "ControllerConfig",
            angle_threshold=self.angle_threshold,
            brake_speed=self.brake_speed,
            stuck_speed=self.stuck_speed,
            creep_seconds=self.creep_seconds,
        )
        if self.max_throttle > 1.0:
            raise ValueError(f"ControllerConfig.max_throttle must be <= 1, got {self.max_throttle}")
        if self.throttle_cap_speed is not None:
            _positive("ControllerConfig", throttle_cap_speed=self.throttle_cap_speed)


@dataclass
class LocalizationConfig:
    """GNSS + compass localisation. `filter`: "none" (raw fixes) or "complementary" (dead reckoning from the exact
    speedometer and the noise-free compass, pulled towards each GNSS fix by `gnss_gain`).

    The leaderboard's GNSS noise (std 5e-6 deg, ~0.55 m north, white per tick) would otherwise jitter the target
    point and any pose-based plan; gain 0.05 at 20 Hz is a ~1 s time constant and leaves ~0.16 of the noise std
    (sqrt(k / (2 - k))).
    """

    filter: str = "complementary"
    gnss_gain: float = 0.05
    #: GNSS antenna in the CARLA vehicle frame (x forward from the box centre): the Bench2Drive mount.
    gnss_mount_x: float = -1.4
    #: a fix further than this from the prediction is taken as-is (teleport / respawn) instead of being filtered.
    reset_distance: float = 5.0
    #: GNSS projection: "auto" calibrates it from the global plan and the first fixes (team_code/localization.py);
    #: "mercator" (CARLA <= 0.9.15) or "tmerc" (CARLA 0.9.16) forces one.
    projection: str = "auto"
    #: the chosen projection must reproduce every global-plan point to this many metres, else setup fails.
    max_plan_residual: float = 0.5
    #: a GNSS model is confirmed or rejected by the first fix that lands within this many metres of the route start
    #: (later: of the route) under one model only.
    model_check_tolerance: float = 5.0

    def __post_init__(self) -> None:
        if self.filter not in ("none", "complementary"):
            raise ValueError(f"LocalizationConfig.filter must be 'none' or 'complementary', got {self.filter!r}")
        if not (0.0 < self.gnss_gain <= 1.0):
            raise ValueError(f"LocalizationConfig.gnss_gain must be in (0, 1], got {self.gnss_gain}")
        _positive(
            "LocalizationConfig",
            reset_distance=self.reset_distance,
            max_plan_residual=self.max_plan_residual,
            model_check_tolerance=self.model_check_tolerance,
        )
        if self.projection not in ("auto", "mercator", "tmerc"):
            raise ValueError(
                f"LocalizationConfig.projection must be 'auto', 'mercator' or 'tmerc', got {self.projection!r}"
            )
        if not math.isfinite(self.gnss_mount_x):
            raise ValueError("LocalizationConfig.gnss_mount_x must be finite")


@dataclass
class RouteConfig:
    """Route following over the leaderboard's global plan; 4 m / 50 m are the Bench2Drive `RoutePlanner(4.0, 50.0)`."""

    near_distance: float = 4.0
    far_distance: float = 50.0
    #: route points (ego frame) handed to the policy in `Observation.route`.
    route_points: int = 20

    def __post_init__(self) -> None:
        _positive("RouteConfig", near_distance=self.near_distance, far_distance=self.far_distance)
        if self.far_distance < self.near_distance:
            raise ValueError("RouteConfig.far_distance must be >= near_distance")
        if int(self.route_points) != self.route_points or self.route_points < 1:
            raise ValueError(f"RouteConfig.route_points must be a positive integer, got {self.route_points!r}")


@dataclass
class ImageConfig:
    """Camera preprocessing in the adapter: BGRA -> RGB, optional JPEG round trip, resize to `width` (square pixels).

    `width` null (default) resizes straight to the width the policy's own preprocessing would resize the camera to
    (`agent.preprocess.image_transform`; 352 for the shipped tiny checkpoint), so the policy never resamples a second
    time; a planner without a model config gets `FALLBACK_WIDTH`. `height` null keeps the camera's aspect
    (1600x900 -> 352x198) and leaves the vertical crop to the policy's own preprocessing, which it shares with
    training; an integer centre-crops here. `jpeg_quality` null (default)
    leaves JPEG to the policy as well; set it (Bench2Drive's Zoo agents use 20, at "native" 1600x900) for a model
    trained on Bench2Drive's JPEG frames. "model" applies it after resizing, ~10x cheaper.
    """

    width: int | None = None
    height: int | None = None
    jpeg_quality: int | None = None
    jpeg_at: str = "native"
    #: final resampling filter after the integer box reduction: "bilinear" (antialiased) or "nearest" (~2x faster
    #: preprocessing on CPU-starved machines, slight aliasing).
    resample: str = "bilinear"
    #: cameras preprocessed in parallel (Pillow and OpenCV release the GIL); 1 disables the pool.
    threads: int = 6
    #: "auto" uses OpenCV when importable (about 2x faster; `pip install irlvla[carla]`), else Pillow; both give
    #: the same geometry (box-reduce by the integer factor, then bilinear over the exact source box).
    backend: str = "auto"

    def __post_init__(self) -> None:
        if self.resample not in ("bilinear", "nearest"):
            raise ValueError(f"ImageConfig.resample must be 'bilinear' or 'nearest', got {self.resample!r}")
        if self.backend not in ("auto", "pillow", "opencv"):
            raise ValueError(f"ImageConfig.backend must be 'auto', 'pillow' or 'opencv', got {self.backend!r}")
        if int(self.threads) != self.threads or self.threads < 1:
            raise ValueError(f"ImageConfig.threads must be a positive integer, got {self.threads!r}")
        for k in ("width", "height"):
            v = getattr(self, k)
            if v is None:
                continue
            if int(v) != v or v <= 0:
                raise ValueError(f"ImageConfig.{k} must be a positive integer, got {v!r}")
        if self.jpeg_quality is not None and not (1 <= int(self.jpeg_quality) <= 95):
            raise ValueError(f"ImageConfig.jpeg_quality must be in 1..95 or null, got {self.jpeg_quality!r}")
        if self.jpeg_at not in ("native", "model"):
            raise ValueError(f"ImageConfig.jpeg_at must be 'native' or 'model', got {self.jpeg_at!r}")


@dataclass
class AgentConfig:
    """Everything the leaderboard agent needs. Loaded from the YAML named first in the leaderboard's config string.

    Policy source, in priority order: `policy_entry_point` ("module:callable", called with this config; for baselines
    and tests), `checkpoint` (`DrivingPolicy.from_checkpoint`), else `preset` (`DrivingPolicy.from_config`).
    """

    checkpoint: str | None = None
    preset: str = "tiny"
    #: fine-tuned VLM weights (`irlvla train vlm` -> vlm.safetensors) for the policy's command guidance; null keeps
    #: the model config's `vlm.checkpoint` (the seeded random tiny VLM when that is null too)
    vlm_checkpoint: str | None = None
    policy_entry_point: str | None = None
    device: str = "auto"
    #: inference backend (agent.runtime.config.RuntimeConfig, e.g. {backend: tensorrt, precision: fp16}); null keeps
    #: the model config's own `runtime` section
    runtime: RuntimeConfig | None = None
    #: select among the planner's candidates with the reward world model's predicted EPDMS (the paper's RWM
    #: reranking); false selects by confidence and the explicit collision / off-road checks alone, exactly as the
    #: open-loop "imitation only" policy of `training/evaluate.py` (the selection's reward weight set to 0). Only for
    #: the policy this adapter builds (checkpoint or preset), not for a `policy_entry_point`.
    rerank: bool = True
    #: keep the loaded policy for the next route in this process (the evaluator builds a new agent per route; a
    #: reload costs seconds per route); the policy's `reset()` is called at each route's setup.
    reuse_policy: bool = True
    images: ImageConfig = field(default_factory=ImageConfig)
    localization: LocalizationConfig = field(default_factory=LocalizationConfig)
    route: RouteConfig = field(default_factory=RouteConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    #: run the policy on every `plan_every`-th 20 Hz tick and, in between, steer along the held plan: its poses
    #: are advanced by the time since it was planned and re-expressed in the current (localised) ego frame, then fed
    #: to the same controller with the current route target. 1 (default) plans every tick as the leaderboard
    #: allows; 2 plans at 10 Hz, 4 at 5 Hz (many CPU-bound runs; the plan covers 4 s, the hold at most 0.15 s).
    plan_every: int = 1
    #: a step slower than this (wall clock, milliseconds) is logged with its timing breakdown.
    latency_budget_ms: float = 200.0
    #: metric_info.json is re-materialised from its journal every this many steps (and at destroy()).
    metric_flush_every: int = 200
    #: output root when the SAVE_PATH environment variable is not set; null disables per-route files.
    save_path: str | None = None
    #: full tracebacks are logged for this many failing steps, then one in every 100.
    max_logged_tracebacks: int = 5
    #: run one planning step on blank camera frames during setup (then reset the policy), so a broken model, VLM or
    #: device fails `setup` (the leaderboard's "Agent couldn't be set up") instead of braking on every tick.
    setup_check: bool = True
    #: the pygame HUD (`viz`, needs the `viz` extra): `hud` opens a live window; `hud_record` writes `hud.mp4` and
    #: `hud.png` into the route's save folder (headless unless `hud` is set); the HUD draws every `hud_every`-th step.
    hud: bool = False
    hud_record: bool = False
    hud_every: int = 2

    def __post_init__(self) -> None:
        for name, cls in (
            ("images", ImageConfig),
            ("localization", LocalizationConfig),
            ("route", RouteConfig),
            ("controller", ControllerConfig),
        ):
            if not isinstance(getattr(self, name), cls):
                raise TypeError(f"AgentConfig.{name} must be a {cls.__name__} (load plain data with from_dict)")
        _positive("AgentConfig", latency_budget_ms=self.latency_budget_ms)
        if int(self.metric_flush_every) != self.metric_flush_every or self.metric_flush_every < 1:
            raise ValueError(
                f"AgentConfig.metric_flush_every must be a positive integer, got {self.metric_flush_every}"
            )
        if int(self.plan_every) != self.plan_every or not 1 <= self.plan_every <= MAX_PLAN_EVERY:
            raise ValueError(
                f"AgentConfig.plan_every must be an integer in 1..{MAX_PLAN_EVERY}, got {self.plan_every!r}"
            )
        if int(self.hud_every) != self.hud_every or self.hud_every < 1:
            raise ValueError(f"AgentConfig.hud_every must be a positive integer, got {self.hud_every!r}")
        if self.policy_entry_point is not None and ":" not in self.policy_entry_point:
            raise ValueError(
                f"AgentConfig.policy_entry_point must be 'module:callable', got {self.policy_entry_point!r}"
            )
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ValueError(f"AgentConfig.device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")

    @classmethod
    def from_yaml(cls, path: str | Path) -> AgentConfig:
        """Read and validate a YAML file; relative `checkpoint` and `vlm_checkpoint` paths resolve against the file's
        folder."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"agent config {str(p)!r} does not exist")
        cfg = load_config_file(cls, p, where=f"AgentConfig({p})")
        for key in ("checkpoint", "vlm_checkpoint"):
            value = getattr(cfg, key)
            if value and not Path(value).is_absolute():
                setattr(cfg, key, str((p.parent / value).resolve()))
        return cfg

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "AgentConfig") -> AgentConfig:
        """Strictly typed (see `irlvla.configload`): a wrong type or unknown key is a `ConfigError` naming the field."""
        return load_config(cls, raw, where=where)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)
