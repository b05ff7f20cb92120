"""Trajectory -> steering, throttle and brake: Bench2Drive's PID rules as small parameterised classes, plus creep.

Inputs are in our ego frame (x forward, y left, metres); the output steer follows CARLA (positive turns right).
The Zoo's angle deg(pi/2 - atan2(fwd, right)) / 90 is written here as deg(atan2(-y, x)) / 90, the same value for
points ahead and wrapped to (-2, 2] for points behind (the Zoo's form can reach 3 there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from agent import geometry
from agent.contract import PlanResult
from team_code.config import ControllerConfig, PIDGains


class PID:
    """PID whose I term is the mean error over a window pre-filled with zeros and whose D term is the last difference.

    This is the Bench2Drive / TCP controller's definition (not a time integral), kept because the default gains are
    tuned for it.
    """

    def __init__(self, gains: PIDGains) -> None:
        self.gains = gains
        self._window = np.zeros(gains.window)
        self._pos = 0

    def reset(self) -> None:
        self._window[:] = 0.0
        self._pos = 0

    def step(self, error: float) -> float:
        n = self.gains.window
        prev = self._window[(self._pos - 1) % n]
        self._window[self._pos % n] = error
        self._pos += 1
        integral = float(self._window.mean())
        derivative = error - prev
        return self.gains.kp * error + self.gains.ki * integral + self.gains.kd * derivative


def steering_angle(points: np.ndarray) -> np.ndarray:
    """Normalised bearing of ego-frame points: deg(atan2(-y, x)) / 90, positive to the right."""
    p = np.asarray(points, dtype=np.float64)
    return np.degrees(np.arctan2(-p[..., 1], p[..., 0])) / 90.0


class LateralPID:
    """Steer towards the waypoint whose pair midpoint is closest to `aim_distance`, or the route target when that
    bends less, or when the plan's final heading disagrees with a near target (Bench2Drive's outlier rejection)."""

    def __init__(self, cfg: ControllerConfig) -> None:
        self.cfg = cfg
        self.pid = PID(cfg.lateral)

    def step(self, waypoints: np.ndarray, target: np.ndarray | None, force_target: bool = False) -> tuple[float, dict]:
        wp = np.asarray(waypoints, dtype=np.float64)
        mids = np.hypot(*((wp[1:] + wp[:-1]) / 2.0).T)
        aim = wp[int(np.argmin(np.abs(self.cfg.aim_distance - mids)))]
        angle = float(steering_angle(aim))
        angle_last = float(steering_angle(wp[-1] - wp[-2]))
        final = angle
        if target is not None:
            angle_target = float(steering_angle(target))
            use_target = force_target or abs(angle_target) < abs(angle)
            use_target = use_target or (
                abs(angle_target - angle_last) > self.cfg.angle_threshold
                and float(target[0]) < self.cfg.target_distance_threshold
            )
            if use_target:
                final = angle_target
        else:
            angle_target = float("nan")
        steer = float(np.clip(self.pid.step(final), -1.0, 1.0))
        return steer, {"aim": aim.tolist(), "angle": angle, "angle_target": angle_target, "angle_final": final}


class LongitudinalPID:
    """Desired speed = mean waypoint gap / interval; brake below `brake_speed` or above `brake_ratio` x desired."""

    def __init__(self, cfg: ControllerConfig) -> None:
        self.cfg = cfg
        self.pid = PID(cfg.longitudinal)

    @staticmethod
    def desired_speed(waypoints: np.ndarray, interval: float) -> float:
        wp = np.asarray(waypoints, dtype=np.float64)
        return float(np.mean(np.hypot(*np.diff(wp, axis=0).T)) / interval)

    def step(self, desired: float, speed: float) -> tuple[float, bool]:
        c = self.cfg
        brake = desired < c.brake_speed or speed / desired > c.brake_ratio
        delta = float(np.clip(desired - speed, 0.0, c.clip_delta))
        throttle = float(np.clip(self.pid.step(delta), 0.0, c.max_throttle))
        return (0.0 if brake else throttle), bool(brake)


@dataclass
class ControlCommand:
    """A vehicle command in CARLA's conventions (steer in [-1, 1] positive right, throttle and brake in [0, 1])."""

    steer: float
    throttle: float
    brake: float
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for k in ("steer", "throttle", "brake"):
            v = float(getattr(self, k))
            if not math.isfinite(v):
                raise ValueError(f"ControlCommand.{k} is not finite ({v})")
            setattr(self, k, v)
        if not (-1.0 <= self.steer <= 1.0 and 0.0 <= self.throttle <= 1.0 and 0.0 <= self.brake <= 1.0):
            raise ValueError(
                f"ControlCommand out of range: steer {self.steer}, throttle {self.throttle}, brake {self.brake}"
            )

    @classmethod
    def emergency_brake(cls, reason: str = "", steer: float = 0.0) -> ControlCommand:
        """Full brake, no throttle. `steer` keeps the last good steering: straightening the wheels mid-curve would
        carry the car off its lane while it brakes."""
        steer = float(steer) if math.isfinite(steer) else 0.0
        return cls(float(np.clip(steer, -1.0, 1.0)), 0.0, 1.0, {"emergency": reason})


def hazard_ahead(plan: PlanResult, cfg: ControllerConfig) -> bool:
    """Whether the policy's output explains a stop: its own `hazard` verdict when it gives one, else a confident
    detection (boxes (A, 7) x, y, ... in the ego frame, scores (A,)) in the corridor ahead.

    Missing detections (None: the planner reported no perception) or malformed ones (mismatched lengths, non-finite
    values) are an unknown hazard and count as one: the creep must never drive into something the policy could not
    report. An empty but well-formed set of detections (A = 0) is "nothing ahead"."""
    if plan.hazard is not None:
        return plan.hazard
    if plan.detections is None:
        return True
    b = np.asarray(plan.detections.boxes, dtype=np.float64)
    s = np.asarray(plan.detections.scores, dtype=np.float64).reshape(-1)
    if b.ndim != 2 or b.shape[1] < 2 or b.shape[0] != s.shape[0]:
        return True
    if b.shape[0] == 0:
        return False
    if not (np.all(np.isfinite(b[:, :2])) and np.all(np.isfinite(s))):
        return True
    inside = (b[:, 0] > 0.0) & (b[:, 0] < cfg.hazard_distance) & (np.abs(b[:, 1]) < cfg.hazard_half_width)
    return bool(np.any(inside & (s >= cfg.hazard_score)))


def held_waypoints(
    poses: np.ndarray, interval: float, planned_at: np.ndarray, pose: np.ndarray, elapsed: float
) -> np.ndarray:
    """A plan made `elapsed` seconds ago at world pose `planned_at`, as the controller needs it now at `pose`.

    `poses` (P, 3) are the plan's poses at `interval`, 2 * interval, ... in the ego frame it was made in (rear axle
    at the origin at t = 0). They are re-timed to start now (sampled at elapsed + k * interval, linearly between
    poses, the last segment continued past the horizon) and re-expressed in the current ego frame, so the desired
    speed and the aim point the controller reads off them describe the same motion the planner chose."""
    poses = np.asarray(poses, dtype=np.float64)
    p = poses.shape[0]
    if elapsed <= 0.0:
        shifted = poses
    else:
        ext = 2.0 * poses[-1] - (poses[-2] if p > 1 else np.zeros(3))  # one more interval along the last segment
        full = np.concatenate([np.zeros((1, 3)), poses, ext[None]], axis=0)
        times = interval * np.arange(p + 2)
        query = np.minimum(interval * np.arange(1, p + 1) + elapsed, times[-1])
        shifted = geometry.interpolate_poses(times, full, query)
    world = geometry.relative_to_absolute(np.asarray(planned_at, dtype=np.float64), shifted)
    return geometry.absolute_to_relative(np.asarray(pose, dtype=np.float64), world)


class TrajectoryController:
    """Lateral + longitudinal PID with Bench2Drive's post-processing and a creep when stalled without a hazard."""

    def __init__(self, cfg: ControllerConfig | None = None, interval: float = 0.5) -> None:
        self.cfg = cfg or ControllerConfig()
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.interval = float(interval)
        self.lateral = LateralPID(self.cfg)
        self.longitudinal = LongitudinalPID(self.cfg)
        self.stopped_for = 0.0
        self.creep_left = 0.0
        self.creeps = 0

    def step(
        self,
        waypoints: np.ndarray,
        speed: float,
        target: np.ndarray | None = None,
        dt: float = 0.05,
        hazard: bool = False,
    ) -> ControlCommand:
        """`waypoints` (N>=2, 2) ego-frame plan at `interval` s, `speed` m/s, `target` the route point (ego frame)."""
        wp = np.asarray(waypoints, dtype=np.float64)
        if wp.ndim != 2 or wp.shape[1] < 2 or wp.shape[0] < 2:
            raise ValueError(f"waypoints must have shape (N>=2, 2+), got {wp.shape}")
        wp = wp[:, :2]
        if not np.all(np.isfinite(wp)) or not math.isfinite(speed):
            raise ValueError("controller input contains NaN or infinite values")
        c = self.cfg
        desired = self.longitudinal.desired_speed(wp, self.interval)
        creeping = self._update_creep(speed, desired, dt, hazard)
        if creeping:
            desired = max(desired, c.creep_speed)
        steer, lat_info = self.lateral.step(wp, target, force_target=creeping and target is not None)
        throttle, brake = self.longitudinal.step(desired, speed)
        if c.throttle_cap_speed is not None and speed > c.throttle_cap_speed:
            throttle = 0.0
        info = {"desired_speed": desired, "creeping": creeping, **lat_info}
        return ControlCommand(steer, throttle, 1.0 if brake else 0.0, info)

    def _update_creep(self, speed: float, desired: float, dt: float, hazard: bool) -> bool:
        c = self.cfg
        if hazard:
            self.creep_left = 0.0
            self.stopped_for = 0.0
            return False
        if self.creep_left > 1e-9:
            self.creep_left -= dt
            return True
        if speed < c.stuck_speed and desired < c.brake_speed:
            self.stopped_for += dt
        else:
            self.stopped_for = 0.0
        if c.creep_seconds > 0 and self.stopped_for >= c.stuck_seconds - 1e-9:
            self.stopped_for = 0.0
            self.creep_left = c.creep_seconds - dt
            self.creeps += 1
            return True
        return False
