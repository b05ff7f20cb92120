"""The rule-based expert ("human") ego planner whose trajectory is logged in every scene.

The expert follows its route path with the rear axle on the path (a kinematic bicycle's rear axle tracks the path),
chooses its speed with jerk-limited IDM against lead vehicles, committed obstacles, red/yellow lights at stop lines,
stop signs with gap acceptance and pedestrians on crosswalks, and changes lanes along the pre-planned lateral profile
of its path. Its states are written in the scene's ego layout (rear axle, ego-frame velocity/acceleration, yaw rate).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from sim.scene import EGO_DIM, EgoParams
from sim.traffic import Committed, Follower, IDMParams, Path, Stop, simulate_followers

logger = logging.getLogger(__name__)

#: NAVSIM's history-comfort bounds (pdm_comfort_metrics.py); the expert keeps inside them.
COMFORT_LON_ACCEL = (-4.05, 2.40)
COMFORT_LAT_ACCEL = 4.89
COMFORT_JERK = 8.37
COMFORT_YAW_RATE = 0.95


@dataclass
class ExpertConfig:
    """Calm-driver IDM settings; `hard_brake_ok` lets the hard-brake family exceed comfort to stay collision-free."""

    idm: IDMParams = field(default_factory=lambda: IDMParams(accel=1.2, decel=1.8, headway=1.6, min_gap=3.0))
    desired_speed_factor: float = 0.95
    hard_brake_ok: bool = False

    def __post_init__(self) -> None:
        if not (0.1 <= self.desired_speed_factor <= 1.5):
            raise ValueError(
                f"ExpertConfig.desired_speed_factor must be in [0.1, 1.5], got {self.desired_speed_factor}"
            )


@dataclass
class ExpertResult:
    s: np.ndarray  # (T,) arc length of the rear axle on the path
    v: np.ndarray
    a: np.ndarray
    ego: np.ndarray  # (T, 8) scene ego layout


def expert_follower(
    path: Path, s0: float, v0: float, params: EgoParams, stops: list[Stop], cfg: ExpertConfig
) -> Follower:
    idm = cfg.idm
    if cfg.hard_brake_ok:
        idm = IDMParams(**{**idm.__dict__, "emergency_brake": 9.0})
    return Follower(
        path=path,
        s0=s0,
        v0=v0,
        front=params.front_length,
        rear=params.rear_length,
        width=params.width,
        desired_speed_factor=cfg.desired_speed_factor,
        idm=idm,
        stops=stops,
    )


def plan_expert(
    path: Path,
    s0: float,
    v0: float,
    num_steps: int,
    dt: float,
    committed: Committed,
    stops: list[Stop],
    params: EgoParams | None = None,
    cfg: ExpertConfig | None = None,
) -> ExpertResult:
    """Simulate the expert along `path` from arc length `s0` at speed `v0` for `num_steps` steps."""
    params = params or EgoParams()
    cfg = cfg or ExpertConfig()
    f = expert_follower(path, s0, v0, params, stops, cfg)
    s, v, a = simulate_followers([f], num_steps, dt, committed)
    if s[0, -1] > path.length:
        raise ValueError(f"expert path too short: needs {s[0, -1]:.1f} m, path has {path.length:.1f} m")
    ego = ego_states(path, s[0], v[0], a[0], dt)
    return ExpertResult(s[0], v[0], a[0], ego)


def ego_states(path: Path, s: np.ndarray, v: np.ndarray, a: np.ndarray, dt: float) -> np.ndarray:
    """Scene ego rows: rear-axle pose from the path, speed along heading, lateral acceleration v * yaw rate."""
    poses = path.pose_at(s)
    heading = np.unwrap(poses[:, 2])
    yaw_rate = np.gradient(heading, dt)
    ego = np.zeros((len(s), EGO_DIM))
    ego[:, 0:3] = poses
    ego[:, 3] = v
    ego[:, 5] = a
    ego[:, 6] = v * yaw_rate
    ego[:, 7] = yaw_rate
    return ego


def ego_committed(ego: np.ndarray, params: EgoParams) -> Committed:
    """The ego's box trajectory as a committed obstacle for traffic simulated after it."""
    h = ego[:, 2]
    off = params.rear_axle_to_center
    xy = ego[:, :2] + off * np.stack([np.cos(h), np.sin(h)], axis=-1)
    return Committed(
        xy[None],
        h[None],
        ego[None, :, 3],
        np.array([params.length]),
        np.array([params.width]),
        np.ones((1, len(ego)), bool),
    )


def comfort_report(ego: np.ndarray, dt: float) -> dict[str, float]:
    """Peak finite-difference comfort quantities of an ego trajectory, for logs and generator self-checks."""
    xy = ego[:, :2]
    vel = np.gradient(xy, dt, axis=0)
    acc = np.gradient(vel, dt, axis=0)
    h = np.unwrap(ego[:, 2])
    t = np.stack([np.cos(h), np.sin(h)], -1)
    n = np.stack([-np.sin(h), np.cos(h)], -1)
    lon = np.sum(acc * t, -1)
    lat = np.sum(acc * n, -1)
    yaw = np.gradient(h, dt)
    jerk = np.gradient(lon, dt)
    return {
        "min_lon_accel": float(lon.min()),
        "max_lon_accel": float(lon.max()),
        "max_abs_lat_accel": float(np.abs(lat).max()),
        "max_abs_jerk": float(np.abs(jerk).max()),
        "max_abs_yaw_rate": float(np.abs(yaw).max()),
    }


def is_comfortable(ego: np.ndarray, dt: float) -> bool:
    r = comfort_report(ego, dt)
    return (
        COMFORT_LON_ACCEL[0] < r["min_lon_accel"]
        and r["max_lon_accel"] < COMFORT_LON_ACCEL[1]
        and r["max_abs_lat_accel"] < COMFORT_LAT_ACCEL
        and r["max_abs_jerk"] < COMFORT_JERK
        and r["max_abs_yaw_rate"] < COMFORT_YAW_RATE
    )
