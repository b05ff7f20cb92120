"""NAVSIM's agent-side classes when the devkit is importable, else local stand-ins with the same contract.

`AbstractAgent`, `SensorConfig`, `Trajectory`, `TrajectorySampling`, `AbstractFeatureBuilder` and
`AbstractTargetBuilder` are taken from navsim / nuplan-devkit when both import (`navsim.agents.abstract_agent` also
needs pytorch_lightning), so `IRLVLAAgent` drops into the official scripts unchanged; otherwise the stand-ins below
mirror the official signatures (docs: ../shared/specs/navsim.md section 1) so the agent runs and is tested without it.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

CAMERA_FIELDS = ("cam_f0", "cam_l0", "cam_l1", "cam_l2", "cam_r0", "cam_r1", "cam_r2", "cam_b0")


class LocalTrajectorySampling:
    """nuPlan's `TrajectorySampling(num_poses, time_horizon, interval_length)`: two of the three determine the third."""

    def __init__(self, num_poses: int | None = None, time_horizon: float | None = None, interval_length=None):
        if num_poses is None:
            num_poses = int(round(time_horizon / interval_length))
        if interval_length is None:
            interval_length = time_horizon / num_poses
        self.num_poses, self.interval_length = int(num_poses), float(interval_length)
        self.time_horizon = self.num_poses * self.interval_length

    def __eq__(self, other) -> bool:
        return (self.num_poses, self.interval_length) == (
            getattr(other, "num_poses", None),
            getattr(other, "interval_length", None),
        )

    def __hash__(self) -> int:
        return hash((self.num_poses, self.interval_length))


@dataclass
class LocalTrajectory:
    """`navsim.common.dataclasses.Trajectory`: (num_poses, 3) x, y, heading in the rear-axle frame."""

    poses: np.ndarray
    trajectory_sampling: Any = field(
        default_factory=lambda: LocalTrajectorySampling(time_horizon=4, interval_length=0.5)
    )

    def __post_init__(self) -> None:
        assert self.poses.ndim == 2, "Trajectory poses should have two dimensions for samples and poses."
        assert self.poses.shape[0] == self.trajectory_sampling.num_poses, "Trajectory poses and sampling mismatch."
        assert self.poses.shape[1] == 3, "Trajectory poses should have (x, y, heading) at last dim."


@dataclass
class LocalSensorConfig:
    """`navsim.common.dataclasses.SensorConfig`: per sensor a bool (all history frames) or a list of frame indices."""

    cam_f0: bool | list[int] = False
    cam_l0: bool | list[int] = False
    cam_l1: bool | list[int] = False
    cam_l2: bool | list[int] = False
    cam_r0: bool | list[int] = False
    cam_r1: bool | list[int] = False
    cam_r2: bool | list[int] = False
    cam_b0: bool | list[int] = False
    lidar_pc: bool | list[int] = False


class LocalFeatureBuilder(ABC):
    @abstractmethod
    def get_unique_name(self) -> str: ...

    @abstractmethod
    def compute_features(self, agent_input) -> dict[str, torch.Tensor]: ...


class LocalTargetBuilder(ABC):
    @abstractmethod
    def get_unique_name(self) -> str: ...

    @abstractmethod
    def compute_targets(self, scene) -> dict[str, torch.Tensor]: ...


class LocalAbstractAgent(torch.nn.Module, ABC):
    """`navsim.agents.abstract_agent.AbstractAgent` without its devkit imports."""

    requires_scene = False

    def __init__(self, trajectory_sampling, requires_scene: bool = False) -> None:
        super().__init__()
        self.requires_scene = requires_scene
        self._trajectory_sampling = trajectory_sampling

    @abstractmethod
    def name(self) -> str: ...

    @abstractmethod
    def get_sensor_config(self): ...

    @abstractmethod
    def initialize(self) -> None: ...

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def get_feature_builders(self) -> list:
        raise NotImplementedError

    def get_target_builders(self) -> list:
        raise NotImplementedError

    def compute_loss(self, features, targets, predictions) -> torch.Tensor:
        raise NotImplementedError

    def get_optimizers(self):
        raise NotImplementedError

    def get_training_callbacks(self) -> list:
        return []


def _official() -> dict[str, Any] | None:
    try:
        from navsim.agents.abstract_agent import AbstractAgent
        from navsim.common.dataclasses import SensorConfig, Trajectory
        from navsim.planning.training.abstract_feature_target_builder import (
            AbstractFeatureBuilder,
            AbstractTargetBuilder,
        )
        from nuplan.planning.simulation.trajectory.trajectory_sampling import TrajectorySampling
    except ImportError as exc:
        logger.debug("navsim devkit not importable (%s); using the local agent base", exc)
        return None
    return {
        "AbstractAgent": AbstractAgent,
        "SensorConfig": SensorConfig,
        "Trajectory": Trajectory,
        "TrajectorySampling": TrajectorySampling,
        "AbstractFeatureBuilder": AbstractFeatureBuilder,
        "AbstractTargetBuilder": AbstractTargetBuilder,
    }


_found = _official()
HAVE_NAVSIM = _found is not None
AbstractAgent = _found["AbstractAgent"] if _found else LocalAbstractAgent
SensorConfig = _found["SensorConfig"] if _found else LocalSensorConfig
Trajectory = _found["Trajectory"] if _found else LocalTrajectory
TrajectorySampling = _found["TrajectorySampling"] if _found else LocalTrajectorySampling
AbstractFeatureBuilder = _found["AbstractFeatureBuilder"] if _found else LocalFeatureBuilder
AbstractTargetBuilder = _found["AbstractTargetBuilder"] if _found else LocalTargetBuilder
