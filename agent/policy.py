"""`DrivingPolicy`: one planning tick from an `Observation` to a `PlanResult`.

preprocess -> VLM commands (latched, own rate) -> model (backbone, BEV, perception, planner, reward model) ->
selection (confidence + predicted reward, collision and drivable-area checks). Adapters (CARLA, NAVSIM, the embedded
world) wrap this and never reach into the model.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from agent.config import EPDMS_METRICS, ModelConfig
from agent.model.irlvla import IRLVLA, build_model
from agent.model.vlm import CommandResult, VLMCommandGuidance
from agent.runtime.base import Runtime, build_runtime
from agent.runtime.config import RuntimeConfig
from agent.selection import select_candidate
from agent.types import Observation, Trajectory, TrajectorySampling

logger = logging.getLogger(__name__)

#: scale of the target point in the ego vector (metres -> roughly unit range)
TARGET_POINT_SCALE = 32.0


def ego_features(obs: Observation) -> np.ndarray:
    """(12,) ego input: vx, vy, ax, ay, yaw_rate, one-hot nav command (4), target x / 32, y / 32, has-target."""
    tp = obs.target_point
    target = np.zeros(3, dtype=np.float32) if tp is None else np.array([*(tp / TARGET_POINT_SCALE), 1.0], np.float32)
    return np.concatenate([obs.ego.as_vector(), target]).astype(np.float32)


@dataclass
class Detections:
    boxes: np.ndarray  # (A, 7) x, y, heading, length, width, vx, vy (ego frame)
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
    polylines: np.ndarray  # (M, P, 2) ego frame
    scores: np.ndarray  # (M,)
    labels: np.ndarray  # (M,)
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


@dataclass
class PlanResult:
    """Everything one tick decided and saw; arrays are numpy, frames are the ego (rear-axle) frame."""

    trajectory: Trajectory
    candidates: np.ndarray  # (K, P, 3)
    confidences: np.ndarray  # (K,) sigmoid of the planner's mode logits
    rewards: np.ndarray  # (K,) predicted EPDMS
    submetrics: np.ndarray  # (K, 9) in EPDMS_METRICS order
    scores: np.ndarray  # (K,) selection scores
    selected: int
    penalties: dict[str, np.ndarray]  # collision (K,) bool, first_collision (K,), offroad (K,)
    commands: CommandResult
    detections: Detections
    map: MapElements
    seg: np.ndarray  # (C, H, W) class probabilities, BEV raster convention
    seg_classes: tuple[str, ...]
    timings: dict[str, float]  # ms per stage and "total"
    tick: int = 0
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        k = self.candidates.shape[0]
        p = self.trajectory.poses.shape[0]
        if self.candidates.shape != (k, p, 3):
            raise ValueError(f"PlanResult.candidates must be (K, {p}, 3), got {self.candidates.shape}")
        for name in ("confidences", "rewards", "scores"):
            if getattr(self, name).shape != (k,):
                raise ValueError(f"PlanResult.{name} must have shape ({k},), got {getattr(self, name).shape}")
        if self.submetrics.shape != (k, len(EPDMS_METRICS)):
            raise ValueError(f"PlanResult.submetrics must be ({k}, {len(EPDMS_METRICS)}), got {self.submetrics.shape}")
        if not (0 <= self.selected < k):
            raise ValueError(f"PlanResult.selected {self.selected} out of range for {k} candidates")
        if self.seg.ndim != 3 or self.seg.shape[0] != len(self.seg_classes):
            raise ValueError(f"PlanResult.seg must be ({len(self.seg_classes)}, H, W), got {self.seg.shape}")

    @property
    def reward(self) -> float:
        return float(self.rewards[self.selected])

    def as_dict(self) -> dict:
        """A compact JSON-ready record of the decision (for per-step logs; perception rasters left out)."""
        return {
            "tick": self.tick,
            "selected": self.selected,
            "trajectory": self.trajectory.poses.round(4).tolist(),
            "scores": self.scores.round(5).tolist(),
            "confidences": self.confidences.round(5).tolist(),
            "rewards": self.rewards.round(5).tolist(),
            "submetrics_selected": dict(zip(EPDMS_METRICS, self.submetrics[self.selected].round(5).tolist())),
            "collision": self.penalties["collision"].astype(bool).tolist(),
            "offroad": np.asarray(self.penalties["offroad"]).round(4).tolist(),
            "speed_command": self.commands.speed_name,
            "path_command": self.commands.path_name,
            "command_source": self.commands.source,
            "timings_ms": {k: round(v, 3) for k, v in self.timings.items()},
        }


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


class DrivingPolicy:
    """Stateful wrapper (tick counter, latched VLM command) around the model for closed-loop driving."""

    def __init__(
        self,
        model: IRLVLA,
        vlm: VLMCommandGuidance | None = None,
        device: str | torch.device = "cpu",
        use_vlm: bool = True,
        runtime: RuntimeConfig | Runtime | None = None,
    ) -> None:
        """`runtime`: a built `Runtime`, a `RuntimeConfig`, or None for the model config's `runtime` section."""
        self.cfg: ModelConfig = model.cfg
        self.device = torch.device(device)
        self.model = model.eval()
        self.runtime = (
            runtime if isinstance(runtime, Runtime) else build_runtime(model, runtime or self.cfg.runtime, device)
        )
        self.use_vlm = use_vlm
        self._vlm = vlm
        self.tick = 0
        p = self.cfg.planner
        self.sampling = TrajectorySampling(p.num_poses, p.interval)

    # -------------------------------------------------------------------------------------------- construction
    @classmethod
    def from_config(
        cls,
        cfg: ModelConfig,
        device: str | torch.device = "cpu",
        use_vlm: bool = True,
        runtime: RuntimeConfig | None = None,
    ) -> DrivingPolicy:
        """A policy with freshly initialised (seeded) weights: for tests, demos and as a training starting point."""
        return cls(build_model(cfg), device=device, use_vlm=use_vlm, runtime=runtime)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        use_vlm: bool = True,
        cfg: ModelConfig | None = None,
        runtime: RuntimeConfig | None = None,
    ) -> DrivingPolicy:
        """`runtime` overrides the (checkpoint or `cfg`) config's runtime section."""
        from agent.checkpoint import load_checkpoint

        return cls(load_checkpoint(path, cfg=cfg), device=device, use_vlm=use_vlm, runtime=runtime)

    @property
    def vlm(self) -> VLMCommandGuidance | None:
        if self._vlm is None and self.use_vlm:
            self._vlm = VLMCommandGuidance(self.cfg.vlm)
        return self._vlm

    def reset(self) -> None:
        self.tick = 0
        if self._vlm is not None:
            self._vlm.reset()

    def close(self) -> None:
        if self._vlm is not None:
            self._vlm.close()
        self.runtime.close()

    # ------------------------------------------------------------------------------------------------- running
    def noise_for_tick(self, tick: int) -> torch.Tensor:
        """Planner noise, a pure function of (seed, tick): reruns of the same episode are identical."""
        gen = torch.Generator().manual_seed(int(self.cfg.seed) * 1_000_003 + int(tick))
        return torch.randn(self.model.planner.noise_shape(1), generator=gen)

    @torch.inference_mode()
    def step(self, obs: Observation, noise: torch.Tensor | None = None) -> PlanResult:
        t_start = time.perf_counter()
        timings: dict[str, float] = {}
        cfg = self.cfg

        t0 = time.perf_counter()
        vlm = self.vlm
        commands = (
            vlm.commands(obs.images, obs.ego.speed, obs.ego.command, self.tick)
            if vlm is not None
            else CommandResult.fallback(self.tick)
        )
        timings["vlm"] = (time.perf_counter() - t0) * 1000.0

        # the latched command as a one-hot, exactly as the planner was trained on auto-labelled commands (docs/vlm.md)
        command_vec = commands.as_vector()
        n_speed = cfg.num_speed_commands
        noise = self.noise_for_tick(self.tick) if noise is None else noise
        out = self.runtime.infer(obs, ego_features(obs), command_vec[:n_speed], command_vec[n_speed:], noise, timings)

        t0 = time.perf_counter()
        candidates = out["trajectories"][0].astype(np.float64)
        confidences = _sigmoid(out["confidence_logits"][0])
        rewards = out["rwm_epdms"][0].astype(np.float64)
        submetrics = out["rwm_metrics"][0].astype(np.float64)
        det = Detections(
            out["agent_boxes"][0].astype(np.float64),
            _sigmoid(out["agent_logits"][0]),
            out["agent_class_logits"][0].argmax(-1),
            tuple(cfg.detection.class_names),
        )
        mp = MapElements(
            out["map_points"][0].astype(np.float64),
            _sigmoid(out["map_logits"][0]),
            out["map_class_logits"][0].argmax(-1),
            tuple(cfg.map.class_names),
        )
        logits = out["seg_logits"][0].astype(np.float64)
        seg = np.exp(logits - logits.max(0, keepdims=True))
        seg = (seg / seg.sum(0, keepdims=True)).astype(np.float32)
        drivable = seg[list(cfg.seg.drivable_indices)].sum(0)
        sel = select_candidate(
            candidates, confidences, rewards, det.boxes, det.scores, drivable, cfg.bev.range_m, self.sampling.times,
            cfg.selection,
        )  # fmt: skip
        timings["selection"] = (time.perf_counter() - t0) * 1000.0
        timings["total"] = (time.perf_counter() - t_start) * 1000.0

        result = PlanResult(
            trajectory=Trajectory(candidates[sel.index], self.sampling),
            candidates=candidates,
            confidences=confidences,
            rewards=rewards,
            submetrics=submetrics,
            scores=sel.scores,
            selected=sel.index,
            penalties={"collision": sel.collision, "first_collision": sel.first_collision, "offroad": sel.offroad},
            commands=commands,
            detections=det,
            map=mp,
            seg=seg,
            seg_classes=tuple(cfg.seg.class_names),
            timings=timings,
            tick=self.tick,
        )
        self.tick += 1
        return result
