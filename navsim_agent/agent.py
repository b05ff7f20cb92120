"""`IRLVLAAgent`: the IRL-VLA policy behind NAVSIM's `AbstractAgent`, for the official scripts (`agent=irlvla_agent`).

Inference goes through the agent contract (`agent.contract.Planner.step` -> `PlanResult`, which `DrivingPolicy`
implements): the adapter only
translates the `AgentInput` into an `Observation` (navsim_agent.convert) and the chosen plan into a NAVSIM
`Trajectory`. Training uses the same feature path (`IRLVLAFeatureBuilder` runs the policy's own preprocessing), the
human future as target, and the model's own losses. Only the current frame of the six cameras f0, l0, l1, r0, r1, b0
is read; no lidar.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.config import load_preset
from agent.contract import CommandResult, Planner, PlanResult
from agent.policy import DrivingPolicy, ego_features
from agent.preprocess import preprocess_observation
from navsim_agent.convert import NAVSIM_TO_MODEL_CAMERAS, observation_from_agent_input
from navsim_agent.devkit import (
    AbstractAgent,
    AbstractFeatureBuilder,
    AbstractTargetBuilder,
    SensorConfig,
    Trajectory,
    TrajectorySampling,
)

logger = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        logger.info("IRLVLAAgent: device auto -> %s", dev)
        return dev
    return torch.device(device)


def policy_features(policy: DrivingPolicy, agent_input: Any) -> dict[str, torch.Tensor]:
    """Unbatched model inputs of one `AgentInput`, exactly as the policy's step builds them (commands: fallback)."""
    obs = observation_from_agent_input(agent_input)
    cfg = policy.cfg
    cams = preprocess_observation(obs, cfg.preprocess)
    cmd = CommandResult.fallback(0).as_vector()
    n_speed = cfg.num_speed_commands
    return {
        "images": torch.from_numpy(cams.images),
        "intrinsics": torch.from_numpy(cams.intrinsics),
        "cam_to_ego": torch.from_numpy(cams.cam_to_ego),
        "ego": torch.from_numpy(ego_features(obs)),
        "speed_probs": torch.from_numpy(np.asarray(cmd[:n_speed], dtype=np.float32)),
        "path_probs": torch.from_numpy(np.asarray(cmd[n_speed:], dtype=np.float32)),
    }


class IRLVLAFeatureBuilder(AbstractFeatureBuilder):
    def __init__(self, agent: IRLVLAAgent) -> None:
        self._agent = agent

    def get_unique_name(self) -> str:
        return "irlvla_features"

    def compute_features(self, agent_input: Any) -> dict[str, torch.Tensor]:
        return policy_features(self._agent.policy, agent_input)


class IRLVLATargetBuilder(AbstractTargetBuilder):
    def __init__(self, trajectory_sampling: Any) -> None:
        self._sampling = trajectory_sampling

    def get_unique_name(self) -> str:
        return "irlvla_targets"

    def compute_targets(self, scene: Any) -> dict[str, torch.Tensor]:
        future = scene.get_future_trajectory(num_trajectory_frames=self._sampling.num_poses)
        return {"gt_trajectory": torch.as_tensor(np.asarray(future.poses), dtype=torch.float32)}


class IRLVLAAgent(AbstractAgent):
    """NAVSIM agent. checkpoint_path: safetensors checkpoint (loaded in `initialize`, once per worker); without one the
    model of `preset` is built with its seeded initial weights (tests, training from scratch). vlm_checkpoint: the
    fine-tuned VLM (`irlvla train vlm` -> vlm.safetensors) for the command guidance; needs use_vlm."""

    def __init__(
        self,
        trajectory_sampling: Any = None,
        checkpoint_path: str | None = None,
        preset: str = "tiny",
        device: str = "auto",
        use_vlm: bool = False,
        lr: float = 1e-4,
        vlm_checkpoint: str | None = None,
    ) -> None:
        sampling = trajectory_sampling or TrajectorySampling(time_horizon=4, interval_length=0.5)
        super().__init__(trajectory_sampling=sampling, requires_scene=False)
        if sampling.num_poses != 8 or abs(sampling.interval_length - 0.5) > 1e-9:
            raise ValueError("IRLVLAAgent plans 8 poses at 0.5 s; trajectory_sampling must be 4 s at 0.5 s")
        if checkpoint_path is not None and not Path(checkpoint_path).is_file():
            raise FileNotFoundError(f"IRLVLAAgent: checkpoint not found: {checkpoint_path}")
        if vlm_checkpoint is not None:
            if not use_vlm:
                raise ValueError("IRLVLAAgent: vlm_checkpoint is given but use_vlm is false")
            if not Path(vlm_checkpoint).is_file():
                raise FileNotFoundError(f"IRLVLAAgent: VLM checkpoint not found: {vlm_checkpoint}")
        self._checkpoint_path, self._vlm_checkpoint = checkpoint_path, vlm_checkpoint
        self._preset, self._device_name, self._use_vlm, self._lr = preset, device, use_vlm, lr
        self._policy: DrivingPolicy | None = None
        self.model: torch.nn.Module | None = None
        if checkpoint_path is None:
            self._set_policy(
                DrivingPolicy.from_config(
                    load_preset(preset), device="cpu", use_vlm=use_vlm, vlm_checkpoint=vlm_checkpoint
                )
            )

    def _set_policy(self, policy: DrivingPolicy) -> None:
        self._policy = policy
        self.model = policy.model  # registered: parameters() and state_dict() are the model's

    @property
    def policy(self) -> DrivingPolicy:
        if self._policy is None:
            raise RuntimeError("IRLVLAAgent: call initialize() first (it loads the checkpoint)")
        return self._policy

    def name(self) -> str:
        return "irlvla_agent"

    def initialize(self) -> None:
        device = resolve_device(self._device_name)
        vlm = {"use_vlm": self._use_vlm, "vlm_checkpoint": self._vlm_checkpoint}
        if self._checkpoint_path is not None:
            self._set_policy(DrivingPolicy.from_checkpoint(self._checkpoint_path, device=device, **vlm))
        else:  # rebuilt around the same model so the policy (and its VLM, if any) lives on the resolved device
            self._set_policy(DrivingPolicy(self.policy.model, device=device, **vlm))
        if not isinstance(self.policy, Planner):
            raise TypeError(f"{type(self.policy).__name__} does not implement agent.contract.Planner")
        self.policy.reset()

    def get_sensor_config(self) -> Any:
        current = [3]  # the current frame of NAVSIM's 4-frame history
        return SensorConfig(
            cam_f0=current, cam_l0=current, cam_l1=current, cam_l2=False,
            cam_r0=current, cam_r1=current, cam_r2=False, cam_b0=current, lidar_pc=False,
        )  # fmt: skip

    def compute_trajectory(self, agent_input: Any) -> Any:
        """One planning step: `AgentInput` -> `Observation` -> `DrivingPolicy.step` (tensors on the agent's device)."""
        self.eval()
        obs = observation_from_agent_input(agent_input)
        result: PlanResult = self.policy.step(obs)
        poses = np.asarray(result.trajectory.poses, dtype=np.float64)
        return Trajectory(poses, self._trajectory_sampling)

    def get_feature_builders(self) -> list:
        return [IRLVLAFeatureBuilder(self)]

    def get_target_builders(self) -> list:
        return [IRLVLATargetBuilder(self._trajectory_sampling)]

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Batched model pass; `trajectory` (B, 8, 3) is each sample's most confident candidate."""
        dev = self.policy.device
        out = self.policy.model({k: v.to(dev) for k, v in features.items()}, mode="train" if self.training else "infer")
        best = out["confidence_logits"].argmax(dim=1)
        out["trajectory"] = out["trajectories"][torch.arange(len(best), device=best.device), best]
        return out

    def compute_loss(self, features: dict, targets: dict, predictions: dict) -> torch.Tensor:
        dev = self.policy.device
        batch = {k: v.to(dev) for k, v in {**features, **targets}.items()}
        return self.policy.model.loss(predictions, batch)["total"]

    def get_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.policy.model.parameters(), lr=self._lr)


__all__ = ["NAVSIM_TO_MODEL_CAMERAS", "IRLVLAAgent", "IRLVLAFeatureBuilder", "IRLVLATargetBuilder"]
