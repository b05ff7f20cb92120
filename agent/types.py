"""Boundary types shared by every room: cameras and rigs, observations, ego status, trajectories, commands.

Everything here validates its own shapes and units on construction, so a malformed value is caught at the
boundary where it enters (adapter, data set, test) and not deep inside the model.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np

from agent import geometry
from agent.vehicles import MKZ_REAR_AXLE_TO_CENTER

# --------------------------------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------------------------------

#: The 13 speed-plan commands, named and ordered exactly as in the IRL-VLA supplementary (Sec. 3.2).
SPEED_PLAN_COMMANDS: tuple[str, ...] = (
    "Emergency Decel",
    "Full Stop",
    "Creeping",
    "Regenerative Braking",
    "Controlled Decel",
    "Mild Decel Linear",
    "Mild Decel",
    "Mild Accel",
    "Mild Accel NonLinear",
    "Mild Accel Linear",
    "Aggressive Accel",
    "Constant Speed Loose",
    "Constant Speed Strict",
)

#: The 9 path-plan commands, named and ordered exactly as in the IRL-VLA supplementary (Sec. 3.2).
PATH_PLAN_COMMANDS: tuple[str, ...] = (
    "Swerving",
    "Sharp Left Turn",
    "Slight Left Turn",
    "Sharp Right Turn",
    "Slight Right Turn",
    "Straight Strict",
    "Left LaneChange",
    "Lane Micro Adjust",
    "Right LaneChange",
)

SpeedPlan = enum.IntEnum("SpeedPlan", {n.upper().replace(" ", "_"): i for i, n in enumerate(SPEED_PLAN_COMMANDS)})
SpeedPlan.__doc__ = "Speed-plan command index; `SPEED_PLAN_COMMANDS[int(cmd)]` is its exact name."
PathPlan = enum.IntEnum("PathPlan", {n.upper().replace(" ", "_"): i for i, n in enumerate(PATH_PLAN_COMMANDS)})
PathPlan.__doc__ = "Path-plan command index; `PATH_PLAN_COMMANDS[int(cmd)]` is its exact name."


class NavigationCommand(enum.IntEnum):
    """High-level route command. Index order is NAVSIM's one-hot order (left, straight, right, unknown)."""

    LEFT = 0
    STRAIGHT = 1
    RIGHT = 2
    UNKNOWN = 3

    def one_hot(self) -> np.ndarray:
        v = np.zeros(4, dtype=np.float32)
        v[int(self)] = 1.0
        return v

    @classmethod
    def from_carla_road_option(cls, value: int) -> NavigationCommand:
        """Map a CARLA RoadOption value (see `CARLA_ROAD_OPTIONS`); lane changes keep their side."""
        mapping = {
            1: cls.LEFT,
            2: cls.RIGHT,
            3: cls.STRAIGHT,
            4: cls.STRAIGHT,
            5: cls.LEFT,
            6: cls.RIGHT,
            -1: cls.UNKNOWN,
        }
        try:
            return mapping[int(value)]
        except KeyError:
            raise ValueError(f"unknown CARLA RoadOption value {value!r}") from None


#: CARLA RoadOption names by value (the leaderboard's `agents.navigation.local_planner.RoadOption`).
CARLA_ROAD_OPTIONS: dict[int, str] = {
    -1: "VOID",
    1: "LEFT",
    2: "RIGHT",
    3: "STRAIGHT",
    4: "LANEFOLLOW",
    5: "CHANGELANELEFT",
    6: "CHANGELANERIGHT",
}


# --------------------------------------------------------------------------------------------------------------------
# Cameras and rigs
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraSpec:
    """A pinhole camera mounted on the ego. Mount pose is in the ego frame (rear axle, x fwd, y left, z up).

    Angles are radians in our right-handed frame (yaw CCW, left positive; roll/pitch as `geometry.camera_to_ego`).
    Intrinsics and extrinsics are derived from fov, resolution and mount, never typed in.
    """

    name: str
    x: float
    y: float
    z: float
    yaw: float
    fov_deg: float
    width: int
    height: int
    pitch: float = 0.0
    roll: float = 0.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("CameraSpec.name must be non-empty")
        if not (0.0 < self.fov_deg < 180.0):
            raise ValueError(f"CameraSpec {self.name}: fov_deg must be in (0, 180), got {self.fov_deg}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"CameraSpec {self.name}: resolution must be positive, got {self.width}x{self.height}")
        for k in ("x", "y", "z", "yaw", "pitch", "roll"):
            if not math.isfinite(getattr(self, k)):
                raise ValueError(f"CameraSpec {self.name}: {k} must be finite")

    @property
    def intrinsics(self) -> np.ndarray:
        return geometry.camera_intrinsics(self.width, self.height, self.fov_deg)

    @property
    def cam_to_ego(self) -> np.ndarray:
        return geometry.camera_to_ego(self.x, self.y, self.z, self.roll, self.pitch, self.yaw)

    def resized(self, width: int, height: int) -> CameraSpec:
        """The same camera at another resolution with the same horizontal fov (square pixels)."""
        return CameraSpec(
            self.name, self.x, self.y, self.z, self.yaw, self.fov_deg, width, height, self.pitch, self.roll
        )


@dataclass(frozen=True)
class CameraRig:
    """An ordered set of cameras. Order matters: it is the model's camera axis."""

    name: str
    cameras: tuple[CameraSpec, ...]

    def __post_init__(self) -> None:
        if not self.cameras:
            raise ValueError(f"CameraRig {self.name}: needs at least one camera")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"CameraRig {self.name}: duplicate camera names {names}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cameras)

    def __len__(self) -> int:
        return len(self.cameras)

    def __getitem__(self, name: str) -> CameraSpec:
        for c in self.cameras:
            if c.name == name:
                return c
        raise KeyError(f"camera {name!r} not in rig {self.name} ({', '.join(self.names)})")

    def resized(self, width: int, height: int) -> CameraRig:
        return CameraRig(self.name, tuple(c.resized(width, height) for c in self.cameras))

    def intrinsics(self) -> np.ndarray:
        return np.stack([c.intrinsics for c in self.cameras])

    def cam_to_ego(self) -> np.ndarray:
        return np.stack([c.cam_to_ego for c in self.cameras])


#: Distance from the CARLA vehicle origin (bounding-box centre) back to the rear axle of Bench2Drive's ego.
B2D_REAR_AXLE_OFFSET = MKZ_REAR_AXLE_TO_CENTER

#: Bench2Drive camera rig as mounted in CARLA (vehicle-centre frame, left-handed, degrees): name, x, y, yaw, fov.
#: Source: the Bench2Drive Zoo agents' `sensors()`; all at z = 1.60 m, 1600x900.
B2D_CAMERA_MOUNTS: tuple[tuple[str, float, float, float, float], ...] = (
    ("CAM_FRONT", 0.80, 0.0, 0.0, 70.0),
    ("CAM_FRONT_LEFT", 0.27, -0.55, -55.0, 70.0),
    ("CAM_FRONT_RIGHT", 0.27, 0.55, 55.0, 70.0),
    ("CAM_BACK", -2.0, 0.0, 180.0, 110.0),
    ("CAM_BACK_LEFT", -0.32, -0.55, -110.0, 70.0),
    ("CAM_BACK_RIGHT", -0.32, 0.55, 110.0, 70.0),
)
B2D_CAMERA_Z = 1.60
B2D_IMAGE_SIZE = (1600, 900)


def bench2drive_rig(width: int = 1600, height: int = 900) -> CameraRig:
    """The Bench2Drive six-camera rig in our ego frame (rear axle origin, right-handed)."""
    cams = []
    for name, x, y, yaw_deg, fov in B2D_CAMERA_MOUNTS:
        ex, ey, ez, roll, pitch, yaw = geometry.carla_mount_to_ego(
            x, y, B2D_CAMERA_Z, 0.0, 0.0, yaw_deg, B2D_REAR_AXLE_OFFSET
        )
        cams.append(CameraSpec(name, ex, ey, ez, yaw, fov, width, height, pitch, roll))
    return CameraRig("bench2drive", tuple(cams))


#: NAVSIM/OpenScene eight-camera rig (approximate nuPlan mounts in the rear-axle frame; the real extrinsics come with
#: each NAVSIM frame and replace these when adapting real data): name, x, y, z, yaw (deg, CCW), fov (deg).
NAVSIM_CAMERA_MOUNTS: tuple[tuple[str, float, float, float, float, float], ...] = (
    ("cam_f0", 1.75, 0.0, 1.60, 0.0, 63.7),
    ("cam_l0", 1.55, 0.45, 1.60, 55.0, 63.7),
    ("cam_l1", 0.60, 0.50, 1.60, 110.0, 63.7),
    ("cam_l2", -0.25, 0.45, 1.60, 145.0, 63.7),
    ("cam_r0", 1.55, -0.45, 1.60, -55.0, 63.7),
    ("cam_r1", 0.60, -0.50, 1.60, -110.0, 63.7),
    ("cam_r2", -0.25, -0.45, 1.60, -145.0, 63.7),
    ("cam_b0", -0.60, 0.0, 1.60, 180.0, 63.7),
)


def navsim_rig(width: int = 1920, height: int = 1080) -> CameraRig:
    """The NAVSIM eight-camera rig (f0, l0, l1, l2, r0, r1, r2, b0) in the rear-axle frame."""
    cams = tuple(
        CameraSpec(n, x, y, z, math.radians(yaw), fov, width, height) for n, x, y, z, yaw, fov in NAVSIM_CAMERA_MOUNTS
    )
    return CameraRig("navsim", cams)


#: The model's input resolution (IRL-VLA Sec. 3.1): 256 x 704 (H x W).
MODEL_INPUT_HW = (256, 704)


def model_rig(width: int = MODEL_INPUT_HW[1], height: int = MODEL_INPUT_HW[0]) -> CameraRig:
    """The six-camera rig the model consumes: the Bench2Drive mounts at the model's input resolution."""
    return bench2drive_rig(width, height)


# --------------------------------------------------------------------------------------------------------------------
# Ego status, trajectories, observations
# --------------------------------------------------------------------------------------------------------------------


def _finite(name: str, arr: np.ndarray) -> None:
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")


@dataclass
class EgoStatus:
    """Ego state in its own frame: speed along x (m/s), velocity and acceleration (m/s, m/s^2; ego frame),
    yaw rate (rad/s), and the navigation command. Pose is the origin of the ego frame by definition."""

    velocity: np.ndarray  # (2,) vx, vy
    acceleration: np.ndarray  # (2,) ax, ay
    yaw_rate: float = 0.0
    command: NavigationCommand = NavigationCommand.UNKNOWN
    steer: float = 0.0

    def __post_init__(self) -> None:
        self.velocity = np.asarray(self.velocity, dtype=np.float64).reshape(-1)
        self.acceleration = np.asarray(self.acceleration, dtype=np.float64).reshape(-1)
        if self.velocity.shape != (2,) or self.acceleration.shape != (2,):
            raise ValueError(
                f"EgoStatus: velocity and acceleration must have shape (2,), got {self.velocity.shape}, "
                f"{self.acceleration.shape}"
            )
        _finite("EgoStatus.velocity", self.velocity)
        _finite("EgoStatus.acceleration", self.acceleration)
        if not math.isfinite(self.yaw_rate):
            raise ValueError("EgoStatus.yaw_rate must be finite")
        self.command = NavigationCommand(int(self.command))

    @property
    def speed(self) -> float:
        return float(np.hypot(*self.velocity))

    def as_vector(self) -> np.ndarray:
        """(vx, vy, ax, ay, yaw_rate, one-hot command[4]) -> (9,) float32: the model's ego input."""
        return np.concatenate([self.velocity, self.acceleration, [self.yaw_rate], self.command.one_hot()]).astype(
            np.float32
        )


@dataclass(frozen=True)
class TrajectorySampling:
    num_poses: int = 8
    interval: float = 0.5

    def __post_init__(self) -> None:
        if self.num_poses <= 0 or self.interval <= 0:
            raise ValueError(f"TrajectorySampling needs positive num_poses and interval, got {self}")

    @property
    def horizon(self) -> float:
        return self.num_poses * self.interval

    @property
    def times(self) -> np.ndarray:
        return self.interval * np.arange(1, self.num_poses + 1)


PLANNING_SAMPLING = TrajectorySampling(8, 0.5)


@dataclass
class Trajectory:
    """Future poses (x, y, heading) in the current rear-axle frame, excluding the current pose (NAVSIM's convention)."""

    poses: np.ndarray
    sampling: TrajectorySampling = PLANNING_SAMPLING

    def __post_init__(self) -> None:
        self.poses = np.asarray(self.poses, dtype=np.float64)
        expected = (self.sampling.num_poses, 3)
        if self.poses.shape != expected:
            raise ValueError(f"Trajectory.poses must have shape {expected}, got {self.poses.shape}")
        _finite("Trajectory.poses", self.poses)


@dataclass
class Observation:
    """One planning tick's input, simulator-agnostic.

    images: camera name -> (H, W, 3) uint8 RGB, one per camera in `rig` (same order is not required).
    target_point: the route target in the ego frame (x, y) metres, when the adapter has one.
    route: optional (N, 2) route centreline in the ego frame.
    """

    images: dict[str, np.ndarray]
    rig: CameraRig
    ego: EgoStatus
    timestamp: float = 0.0
    target_point: np.ndarray | None = None
    route: np.ndarray | None = None
    token: str = ""
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [n for n in self.rig.names if n not in self.images]
        if missing:
            raise ValueError(f"Observation: missing camera image(s) {missing} for rig {self.rig.name}")
        for cam in self.rig.cameras:
            img = self.images[cam.name]
            if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(
                    f"Observation: image {cam.name} must be an (H, W, 3) uint8 RGB array, got "
                    f"{getattr(img, 'dtype', type(img))} {getattr(img, 'shape', '')}"
                )
            if img.shape[:2] != (cam.height, cam.width):
                raise ValueError(
                    f"Observation: image {cam.name} is {img.shape[1]}x{img.shape[0]} but its camera spec says "
                    f"{cam.width}x{cam.height}"
                )
        if self.target_point is not None:
            self.target_point = np.asarray(self.target_point, dtype=np.float64).reshape(-1)
            if self.target_point.shape != (2,):
                raise ValueError(f"Observation.target_point must have shape (2,), got {self.target_point.shape}")
            _finite("Observation.target_point", self.target_point)
        if self.route is not None:
            self.route = np.asarray(self.route, dtype=np.float64)
            if self.route.ndim != 2 or self.route.shape[1] != 2:
                raise ValueError(f"Observation.route must have shape (N, 2), got {self.route.shape}")
            _finite("Observation.route", self.route)

    def image_stack(self) -> np.ndarray:
        """(num_cameras, H, W, 3) uint8 in rig order (all cameras must share one resolution)."""
        return np.stack([self.images[n] for n in self.rig.names])
