"""`DrivingPolicy`: one planning tick from an `Observation` to a `PlanResult` (the `agent.contract.Planner`).

preprocess -> VLM commands (latched, own rate) -> model (backbone, BEV, perception, planner, reward model) ->
selection (confidence + predicted reward, collision and drivable-area checks). Adapters (CARLA, NAVSIM, the embedded
world) wrap this and never reach into the model.
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
from agent.preprocess import preprocess_observation
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


class DrivingPolicy:
    """Stateful wrapper (tick counter, latched VLM command) around the model for closed-loop driving; implements
    `agent.contract.Planner`. `vlm` replaces the guidance built from `cfg.vlm`; `use_vlm=False` plans with the
    fallback command (Constant Speed Strict, Straight Strict) instead."""

    def __init__(
        self,
        model: IRLVLA,
        vlm: VLMCommandGuidance | None = None,
        device: str | torch.device = "cpu",
        use_vlm: bool = True,
    ) -> None:
        self.cfg: ModelConfig = model.cfg
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
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
    def from_config(cls, cfg: ModelConfig, device: str | torch.device = "cpu", use_vlm: bool = True) -> DrivingPolicy:
        """A policy with freshly initialised (seeded) weights: for tests, demos and as a training starting point."""
        return cls(build_model(cfg), device=device, use_vlm=use_vlm)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = "cpu", use_vlm: bool = True, cfg: ModelConfig | None = None
    ) -> DrivingPolicy:
        from agent.checkpoint import load_checkpoint

        return cls(load_checkpoint(path, cfg=cfg), device=device, use_vlm=use_vlm)

    def reset(self) -> None:
        self.tick = 0
        if self.vlm is not None:
            self.vlm.reset()

    def close(self) -> None:
        if self.vlm is not None:
            self.vlm.close()

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
        cams = preprocess_observation(obs, cfg.preprocess)
        timings["preprocess"] = (time.perf_counter() - t0) * 1000.0

        t0 = time.perf_counter()
        vlm = self.vlm
        commands = (
            vlm.commands(obs.images, obs.ego.speed, obs.ego.command, self.tick)
            if vlm is not None
            else CommandResult.fallback(self.tick)
        )
        timings["vlm"] = (time.perf_counter() - t0) * 1000.0

        # the latched command as a one-hot, exactly as the planner was trained on auto-labelled commands (docs/vlm.md)
        command_vec = torch.from_numpy(commands.as_vector()).unsqueeze(0)
        n_speed = cfg.num_speed_commands
        dev = self.device
        batch = {
            "images": torch.from_numpy(cams.images).unsqueeze(0).to(dev),
            "intrinsics": torch.from_numpy(cams.intrinsics).unsqueeze(0).to(dev),
            "cam_to_ego": torch.from_numpy(cams.cam_to_ego).unsqueeze(0).to(dev),
            "ego": torch.from_numpy(ego_features(obs)).unsqueeze(0).to(dev),
            "speed_probs": command_vec[:, :n_speed].to(dev),
            "path_probs": command_vec[:, n_speed:].to(dev),
            "noise": (self.noise_for_tick(self.tick) if noise is None else noise).to(dev),
        }
        out = self.model(batch, mode="infer", timings=timings)

        t0 = time.perf_counter()
        candidates = out["trajectories"][0].double().cpu().numpy()
        confidences = torch.sigmoid(out["confidence_logits"][0]).double().cpu().numpy()
        rewards = out["rwm"]["epdms"][0].double().cpu().numpy()
        submetrics = out["rwm"]["metrics"][0].double().cpu().numpy()
        det = Detections(
            out["agent_boxes"][0].double().cpu().numpy(),
            torch.sigmoid(out["agent_logits"][0]).double().cpu().numpy(),
            out["agent_class_logits"][0].argmax(-1).cpu().numpy(),
            tuple(cfg.detection.class_names),
        )
        mp = MapElements(
            out["map_points"][0].double().cpu().numpy(),
            torch.sigmoid(out["map_logits"][0]).double().cpu().numpy(),
            out["map_class_logits"][0].argmax(-1).cpu().numpy(),
            tuple(cfg.map.class_names),
        )
        seg = out["seg_logits"][0].softmax(0).float().cpu().numpy()
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
