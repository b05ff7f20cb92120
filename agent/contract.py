"""The one agent contract: what a planning step takes (`Observation`) and what it returns (`PlanResult`).

Every adapter (the CARLA leaderboard agent in `team_code/`, the NAVSIM agent in `navsim_agent/`, the closed-loop
runner in `sim/`) and every runtime (torch, onnxruntime, tensorrt) is written against `Planner` and `PlanResult`
only, never against `DrivingPolicy` or the model's tensors. A planner that has no model behind it (a privileged
route follower, the rule-based expert, a test double) returns a `PlanResult` with just a trajectory; the optional
fields (candidates' rewards, commands, perception) are None and adapters treat None as "not produced".

Frames: every array is in the current ego frame (rear axle, x forward, y left, heading CCW), numpy, float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from agent.epdms_metrics import EPDMS_METRICS
from agent.model.vlm_parse import FALLBACK_PATH, FALLBACK_SPEED
from agent.types import PATH_PLAN_COMMANDS, SPEED_PLAN_COMMANDS, Observation, PathPlan, SpeedPlan, Trajectory

__all__ = [
    "COMMAND_SOURCES",
    "CommandResult",
    "Detections",
    "MapElements",
    "PlanResult",
    "Planner",
    "commands_one_hot",
]

#: where a `CommandResult` came from: the VLM scored every command, the VLM generated text, or the fixed fallback.
COMMAND_SOURCES = ("likelihood", "generation", "fallback")


@runtime_checkable
class Planner(Protocol):
    """A stateful planner for closed-loop driving: one `step` per tick, `reset` between episodes, `close` at the end.

    `step` must not keep references to the observation's arrays after it returns (adapters reuse their buffers).
    `reset` forgets everything episode-specific (tick counter, latched commands) so one planner serves many routes.
    """

    def step(self, observation: Observation) -> PlanResult: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


@dataclass
class CommandResult:
    """The guidance commands a tick used: speed plan (13) and path plan (9), their probability tables, where they came
    from and when (VLM command guidance, `agent.model.vlm`)."""

    speed: SpeedPlan
    path: PathPlan
    speed_probs: np.ndarray  # (13,) over SPEED_PLAN_COMMANDS
    path_probs: np.ndarray  # (9,) over PATH_PLAN_COMMANDS
    source: str  # one of COMMAND_SOURCES
    latency_ms: float
    tick: int  # planner tick whose inputs produced this result
    text: str = ""  # generated text, or the winning "SPEED, PATH" answer in likelihood mode
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.speed = SpeedPlan(int(self.speed))
        self.path = PathPlan(int(self.path))
        self.speed_probs = np.asarray(self.speed_probs, dtype=np.float64).reshape(-1)
        self.path_probs = np.asarray(self.path_probs, dtype=np.float64).reshape(-1)
        for name, probs, n in (
            ("speed_probs", self.speed_probs, len(SPEED_PLAN_COMMANDS)),
            ("path_probs", self.path_probs, len(PATH_PLAN_COMMANDS)),
        ):
            if probs.shape != (n,):
                raise ValueError(f"CommandResult.{name} must have shape ({n},), got {probs.shape}")
            if not np.all(np.isfinite(probs)) or np.any(probs < 0) or abs(probs.sum() - 1.0) > 1e-4:
                raise ValueError(f"CommandResult.{name} must be a probability vector, got {probs}")
        if self.source not in COMMAND_SOURCES:
            raise ValueError(f"CommandResult.source must be one of {COMMAND_SOURCES}, got {self.source!r}")
        if not math.isfinite(self.latency_ms) or self.latency_ms < 0:
            raise ValueError(f"CommandResult.latency_ms must be finite and >= 0, got {self.latency_ms}")

    @property
    def speed_name(self) -> str:
        return SPEED_PLAN_COMMANDS[self.speed]

    @property
    def path_name(self) -> str:
        return PATH_PLAN_COMMANDS[self.path]

    def as_vector(self, soft: bool = False) -> np.ndarray:
        """(22,) float32 planner input: speed then path, one-hot (as the GT labels in training) or the probabilities."""
        if soft:
            return np.concatenate([self.speed_probs, self.path_probs]).astype(np.float32)
        return commands_one_hot(self.speed, self.path)

    @classmethod
    def fallback(cls, tick: int, latency_ms: float = 0.0, text: str = "") -> CommandResult:
        """(Constant Speed Strict, Straight Strict) as one-hot tables."""
        return cls.certain(FALLBACK_SPEED, FALLBACK_PATH, "fallback", latency_ms, tick, text)

    @classmethod
    def certain(
        cls, speed: SpeedPlan | int, path: PathPlan | int, source: str, latency_ms: float, tick: int, text: str = ""
    ) -> CommandResult:
        """A decision with one-hot probability tables (generation, fallback)."""
        vec = commands_one_hot(speed, path).astype(np.float64)
        n = len(SPEED_PLAN_COMMANDS)
        return cls(speed, path, vec[:n], vec[n:], source, latency_ms, tick, text)


def commands_one_hot(speed: SpeedPlan | int, path: PathPlan | int) -> np.ndarray:
    """(13 + 9,) float32 one-hot of a (speed, path) pair, e.g. the auto-labeller's training labels."""
    v = np.zeros(len(SPEED_PLAN_COMMANDS) + len(PATH_PLAN_COMMANDS), dtype=np.float32)
    v[int(SpeedPlan(int(speed)))] = 1.0
    v[len(SPEED_PLAN_COMMANDS) + int(PathPlan(int(path)))] = 1.0
    return v


@dataclass
class Detections:
    """Detected agents in the ego frame."""

    boxes: np.ndarray  # (A, 7) x, y, heading, length, width, vx, vy
    scores: np.ndarray  # (A,) existence probability
    labels: np.ndarray  # (A,) class index into class_names
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        a = self.boxes.shape[0]
        if self.boxes.shape != (a, 7) or self.scores.shape != (a,) or self.labels.shape != (a,):
            raise ValueError(
                f"Detections: boxes {self.boxes.shape}, scores {self.scores.shape}, labels {self.labels.shape}"
            )


@dataclass
class MapElements:
    """Vectorised map elements (lane dividers, boundaries, ...) in the ego frame."""

    polylines: np.ndarray  # (M, P, 2)
    scores: np.ndarray  # (M,)
    labels: np.ndarray  # (M,) class index into class_names
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        m = self.polylines.shape[0]
        if (
            self.polylines.ndim != 3
            or self.polylines.shape[2] != 2
            or self.scores.shape != (m,)
            or self.labels.shape != (m,)
        ):
            raise ValueError(f"MapElements: polylines {self.polylines.shape}, scores {self.scores.shape}")


def _vector(name: str, value: np.ndarray | None, k: int) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (k,):
        raise ValueError(f"PlanResult.{name} must have shape ({k},), got {arr.shape}")
    return arr


@dataclass
class PlanResult:
    """Everything one tick decided and saw.

    Required: `trajectory`, the plan to drive (usually `candidates[selected]`). A planner without alternatives may
    leave `candidates`/`scores` out: they become the trajectory alone with score 1. The model's outputs that other
    planners do not have (confidences, predicted rewards and sub-metrics, commands, perception) are None there.
    `hazard` is the planner's own verdict that a stop is explained by something ahead (None: the adapter judges
    from `detections`). `timings` are milliseconds per stage plus "total".
    """

    trajectory: Trajectory
    candidates: np.ndarray | None = None  # (K, P, 3)
    scores: np.ndarray | None = None  # (K,) selection scores
    selected: int = 0
    confidences: np.ndarray | None = None  # (K,) sigmoid of the planner's mode logits
    rewards: np.ndarray | None = None  # (K,) predicted EPDMS
    submetrics: np.ndarray | None = None  # (K, 9) in EPDMS_METRICS order
    penalties: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (K,), e.g. collision, offroad
    commands: CommandResult | None = None
    detections: Detections | None = None
    map: MapElements | None = None
    seg: np.ndarray | None = None  # (C, H, W) class probabilities, BEV raster convention
    seg_classes: tuple[str, ...] = ()
    hazard: bool | None = None
    timings: dict[str, float] = field(default_factory=dict)
    tick: int = 0
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.trajectory, Trajectory):
            raise TypeError(f"PlanResult.trajectory must be an agent.types.Trajectory, got {type(self.trajectory)}")
        p = self.trajectory.poses.shape[0]
        if self.candidates is None:
            if self.scores is not None:
                raise ValueError("PlanResult: scores given without candidates")
            self.candidates = self.trajectory.poses[None].copy()
            self.scores = np.ones(1)
        self.candidates = np.asarray(self.candidates, dtype=np.float64)
        k = self.candidates.shape[0]
        if self.candidates.shape != (k, p, 3) or k < 1:
            raise ValueError(f"PlanResult.candidates must be (K>=1, {p}, 3), got {self.candidates.shape}")
        if self.scores is None:
            raise ValueError("PlanResult: candidates given without scores")
        self.scores = _vector("scores", self.scores, k)
        self.confidences = _vector("confidences", self.confidences, k)
        self.rewards = _vector("rewards", self.rewards, k)
        if self.submetrics is not None:
            self.submetrics = np.asarray(self.submetrics, dtype=np.float64)
            if self.submetrics.shape != (k, len(EPDMS_METRICS)):
                raise ValueError(
                    f"PlanResult.submetrics must be ({k}, {len(EPDMS_METRICS)}), got {self.submetrics.shape}"
                )
        for name, value in self.penalties.items():
            if np.shape(value) != (k,):
                raise ValueError(f"PlanResult.penalties[{name!r}] must have shape ({k},), got {np.shape(value)}")
        if not (0 <= self.selected < k):
            raise ValueError(f"PlanResult.selected {self.selected} out of range for {k} candidates")
        if self.seg is not None and (self.seg.ndim != 3 or self.seg.shape[0] != len(self.seg_classes)):
            raise ValueError(f"PlanResult.seg must be ({len(self.seg_classes)}, H, W), got {self.seg.shape}")
        if self.hazard is not None:
            self.hazard = bool(self.hazard)
        for name, ms in self.timings.items():
            if not isinstance(ms, (int, float)) or isinstance(ms, bool):
                raise TypeError(f"PlanResult.timings[{name!r}] must be a number of milliseconds, got {ms!r}")

    @property
    def reward(self) -> float:
        """The selected candidate's predicted EPDMS (NaN when the planner predicts none)."""
        return math.nan if self.rewards is None else float(self.rewards[self.selected])

    def as_dict(self) -> dict:
        """A compact JSON-ready record of the decision (for per-step logs; perception rasters left out)."""

        def rounded(a: np.ndarray | None, digits: int) -> list | None:
            return None if a is None else np.asarray(a, dtype=np.float64).round(digits).tolist()

        out: dict[str, Any] = {
            "tick": self.tick,
            "selected": self.selected,
            "trajectory": self.trajectory.poses.round(4).tolist(),
            "scores": rounded(self.scores, 5),
            "confidences": rounded(self.confidences, 5),
            "rewards": rounded(self.rewards, 5),
            "submetrics_selected": None
            if self.submetrics is None
            else dict(zip(EPDMS_METRICS, self.submetrics[self.selected].round(5).tolist())),
            "hazard": self.hazard,
            "timings_ms": {k: round(float(v), 3) for k, v in self.timings.items()},
        }
        for name, value in self.penalties.items():
            arr = np.asarray(value)
            out[name] = arr.tolist() if arr.dtype == bool else arr.astype(np.float64).round(4).tolist()
        if self.commands is not None:
            out["speed_command"] = self.commands.speed_name
            out["path_command"] = self.commands.path_name
            out["command_source"] = self.commands.source
        return out
