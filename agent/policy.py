"""`DrivingPolicy`: one planning tick from an `Observation` to a `PlanResult` (the `agent.contract.Planner`).

VLM commands (latched, own rate) -> the inference runtime (preprocessing, then backbone, BEV, perception, planner,
reward model as torch / ONNX Runtime / TensorRT graphs: agent.runtime) -> selection (confidence + predicted reward,
collision and drivable-area checks). Adapters (CARLA, NAVSIM, the embedded world) wrap this and never reach into
the model.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import torch

from agent.config import ModelConfig
from agent.contract import CommandResult, Detections, MapElements, PlanResult
from agent.model.irlvla import IRLVLA, build_model
from agent.model.vlm import VLMCommandGuidance
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


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


class DrivingPolicy:
    """Stateful wrapper (tick counter, latched VLM command) around the model for closed-loop driving; implements
    `agent.contract.Planner`. `vlm` replaces the guidance built from `cfg.vlm`; `use_vlm=False` plans with the
    fallback command (Constant Speed Strict, Straight Strict) instead. `vlm_checkpoint` (fine-tuned weights of
    `irlvla train vlm`) replaces `cfg.vlm.checkpoint` for the guidance built here."""

    def __init__(
        self,
        model: IRLVLA,
        vlm: VLMCommandGuidance | None = None,
        device: str | torch.device = "cpu",
        use_vlm: bool = True,
        runtime: RuntimeConfig | Runtime | None = None,
        vlm_checkpoint: str | Path | None = None,
    ) -> None:
        """`runtime`: a built `Runtime`, a `RuntimeConfig`, or None for the model config's `runtime` section."""
        self.cfg: ModelConfig = model.cfg
        if vlm_checkpoint is not None:
            if vlm is not None or not use_vlm:
                raise ValueError("DrivingPolicy: vlm_checkpoint is for the VLM built here (use_vlm=True, no vlm given)")
            vlm_cfg = dataclasses.replace(self.cfg.vlm, checkpoint=str(vlm_checkpoint))
            self.cfg = dataclasses.replace(self.cfg, vlm=vlm_cfg)  # a runtime field: the model's weights are as loaded
        self.device = torch.device(device)
        # on the policy's device whatever the backend: adapters (the NAVSIM agent's training forward) use it directly
        self.model = model.to(self.device).eval()
        self.runtime = (
            runtime if isinstance(runtime, Runtime) else build_runtime(model, runtime or self.cfg.runtime, device)
        )
        if vlm is None and use_vlm:
            # built now, not at the first step (a slow or failing VLM shows at load time), and on the policy's device:
            # `VLMConfig.device` is for the guidance used on its own
            vlm = VLMCommandGuidance(dataclasses.replace(self.cfg.vlm, device=str(self.device)))
        self.vlm: VLMCommandGuidance | None = vlm
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
        vlm_checkpoint: str | Path | None = None,
    ) -> DrivingPolicy:
        """A policy with freshly initialised (seeded) weights: for tests, demos and as a training starting point."""
        return cls(build_model(cfg), device=device, use_vlm=use_vlm, runtime=runtime, vlm_checkpoint=vlm_checkpoint)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        use_vlm: bool = True,
        cfg: ModelConfig | None = None,
        runtime: RuntimeConfig | None = None,
        vlm_checkpoint: str | Path | None = None,
    ) -> DrivingPolicy:
        """`runtime` overrides the (checkpoint or `cfg`) config's runtime section, `vlm_checkpoint` its VLM weights."""
        from agent.checkpoint import load_checkpoint

        model = load_checkpoint(path, cfg=cfg)
        return cls(model, device=device, use_vlm=use_vlm, runtime=runtime, vlm_checkpoint=vlm_checkpoint)

    def reset(self) -> None:
        self.tick = 0
        if self.vlm is not None:
            self.vlm.reset()

    def close(self) -> None:
        if self.vlm is not None:
            self.vlm.close()
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
