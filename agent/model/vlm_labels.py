"""Auto-labelling a ground-truth future with the 13 speed-plan and 9 path-plan commands.

Senna labels its four speed and five path meta-actions from the GT future (STOP below 2 m/s, +-3 m/s for
accelerate/decelerate, 4 m lateral and 5 deg endpoint angle for turns vs lane changes). IRL-VLA's 13/9 vocabulary comes
without rules, so these thresholds are ours [I]; they are a frozen dataclass so training can tune them, and
docs/vlm.md tabulates them. Speed classes are decided on the mean acceleration over the horizon, the peak deceleration
and the speed profile's shape; path classes on the final heading change, the final lateral offset and the peak
lateral excursion, all in the current ego frame (x forward, y left, heading CCW).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from agent.types import PathPlan, SpeedPlan


@dataclass(frozen=True)
class CommandLabelThresholds:
    """Thresholds of the auto-labeller (m/s, m/s^2, m, degrees)."""

    # speed plan
    emergency_peak_decel: float = 5.0  # any step deceleration at least this hard -> Emergency Decel
    emergency_mean_decel: float = 4.0  # or a mean deceleration at least this hard
    stopped_speed: float = 0.5  # final speed below this -> Full Stop
    creeping_max_speed: float = 2.0  # never faster than this (Senna's STOP threshold) -> Creeping
    strict_mean_accel: float = 0.1  # |mean accel| below this and speed range below strict_range -> Constant Strict
    strict_range: float = 0.6
    loose_mean_accel: float = 0.3  # |mean accel| below this and speed range below loose_range -> Constant Loose
    loose_range: float = 1.5
    strong_decel: float = 2.5  # mean decel at least this hard -> Regenerative Braking
    controlled_decel: float = 1.0  # mean decel at least this hard -> Controlled Decel
    aggressive_accel: float = 2.0  # mean accel at least this -> Aggressive Accel
    shaped_accel: float = 1.0  # mean accel at least this -> Mild Accel Linear / NonLinear by profile shape
    linear_profile_tolerance: float = 0.25  # max |v - straight ramp| / |dv| at most this -> "Linear"
    # path plan
    min_travel: float = 2.0  # travelling less than this -> Straight Strict (no path to speak of)
    sharp_turn_deg: float = 40.0  # final |heading| at least this -> Sharp Turn
    slight_turn_deg: float = 10.0  # final |heading| at least this -> Slight Turn
    lane_change_offset: float = 2.0  # final |lateral offset| at least this -> LaneChange
    swerve_excursion: float = 1.0  # peak |lateral| at least this ...
    swerve_return_ratio: float = 0.5  # ... and the final |lateral| at most this fraction of it -> Swerving
    micro_adjust_offset: float = 0.4  # peak |lateral| at least this -> Lane Micro Adjust

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"CommandLabelThresholds.{f.name} must be finite and positive, got {v!r}")
        if self.strict_mean_accel > self.loose_mean_accel or self.strict_range > self.loose_range:
            raise ValueError("CommandLabelThresholds: strict constant-speed bands must lie inside the loose ones")
        if not (self.controlled_decel < self.strong_decel <= self.emergency_mean_decel):
            raise ValueError("CommandLabelThresholds: need controlled_decel < strong_decel <= emergency_mean_decel")
        if not (self.loose_mean_accel <= self.shaped_accel < self.aggressive_accel):
            raise ValueError("CommandLabelThresholds: need loose_mean_accel <= shaped_accel < aggressive_accel")
        if not (self.slight_turn_deg < self.sharp_turn_deg):
            raise ValueError("CommandLabelThresholds: need slight_turn_deg < sharp_turn_deg")
        if not (self.micro_adjust_offset < self.lane_change_offset) or self.swerve_return_ratio >= 1.0:
            raise ValueError(
                "CommandLabelThresholds: need micro_adjust_offset < lane_change_offset and swerve_return_ratio < 1"
            )


DEFAULT_THRESHOLDS = CommandLabelThresholds()


def _speed_profile(poses: np.ndarray, speeds: float | np.ndarray, dt: float) -> np.ndarray:
    """(N+1,) speeds: current then one per future pose."""
    n = poses.shape[0]
    s = np.asarray(speeds, dtype=np.float64)
    if s.ndim == 0:
        steps = np.diff(np.vstack([np.zeros((1, 2)), poses[:, :2]]), axis=0)
        return np.concatenate([[float(s)], np.hypot(steps[:, 0], steps[:, 1]) / dt])
    s = s.reshape(-1)
    if s.shape[0] != n + 1:
        raise ValueError(
            f"speeds must be a scalar (current speed) or have N+1 = {n + 1} values (current then per pose), "
            f"got shape {s.shape}"
        )
    return s


def speed_plan_from_profile(v: np.ndarray, dt: float, th: CommandLabelThresholds = DEFAULT_THRESHOLDS) -> SpeedPlan:
    """The speed command of a speed profile sampled every `dt` seconds (first value = now)."""
    v = np.asarray(v, dtype=np.float64)
    horizon = dt * (len(v) - 1)
    dv = v[-1] - v[0]
    mean_acc = dv / horizon
    peak_decel = -float(np.min(np.diff(v))) / dt
    if peak_decel >= th.emergency_peak_decel or mean_acc <= -th.emergency_mean_decel:
        return SpeedPlan.EMERGENCY_DECEL
    if v[-1] < th.stopped_speed:
        return SpeedPlan.FULL_STOP
    if v.max() < th.creeping_max_speed:
        return SpeedPlan.CREEPING
    spread = float(v.max() - v.min())
    if abs(mean_acc) < th.strict_mean_accel and spread < th.strict_range:
        return SpeedPlan.CONSTANT_SPEED_STRICT
    if abs(mean_acc) < th.loose_mean_accel and spread < th.loose_range:
        return SpeedPlan.CONSTANT_SPEED_LOOSE
    ramp = v[0] + dv * np.linspace(0.0, 1.0, len(v))
    linear = float(np.max(np.abs(v - ramp))) <= th.linear_profile_tolerance * max(abs(dv), 1e-6)
    if mean_acc < 0:
        if -mean_acc >= th.strong_decel:
            return SpeedPlan.REGENERATIVE_BRAKING
        if -mean_acc >= th.controlled_decel:
            return SpeedPlan.CONTROLLED_DECEL
        return SpeedPlan.MILD_DECEL_LINEAR if linear else SpeedPlan.MILD_DECEL
    if mean_acc >= th.aggressive_accel:
        return SpeedPlan.AGGRESSIVE_ACCEL
    if mean_acc >= th.shaped_accel:
        return SpeedPlan.MILD_ACCEL_LINEAR if linear else SpeedPlan.MILD_ACCEL_NONLINEAR
    return SpeedPlan.MILD_ACCEL


def path_plan_from_poses(poses: np.ndarray, th: CommandLabelThresholds = DEFAULT_THRESHOLDS) -> PathPlan:
    """The path command of future poses (N, 3) = x, y, heading in the current ego frame."""
    xy = np.vstack([np.zeros((1, 2)), poses[:, :2]])
    travel = float(np.sum(np.hypot(*np.diff(xy, axis=0).T)))
    if travel < th.min_travel:
        return PathPlan.STRAIGHT_STRICT
    heading = math.degrees(math.atan2(math.sin(poses[-1, 2]), math.cos(poses[-1, 2])))
    left = heading > 0
    if abs(heading) >= th.sharp_turn_deg:
        return PathPlan.SHARP_LEFT_TURN if left else PathPlan.SHARP_RIGHT_TURN
    if abs(heading) >= th.slight_turn_deg:
        return PathPlan.SLIGHT_LEFT_TURN if left else PathPlan.SLIGHT_RIGHT_TURN
    lateral = poses[:, 1]
    y_end = float(lateral[-1])
    peak = float(np.max(np.abs(lateral)))
    if peak >= th.swerve_excursion and abs(y_end) <= th.swerve_return_ratio * peak:
        return PathPlan.SWERVING
    if abs(y_end) >= th.lane_change_offset:
        return PathPlan.LEFT_LANECHANGE if y_end > 0 else PathPlan.RIGHT_LANECHANGE
    if peak >= th.micro_adjust_offset:
        return PathPlan.LANE_MICRO_ADJUST
    return PathPlan.STRAIGHT_STRICT


def commands_from_trajectory(
    future_poses: np.ndarray,
    speeds: float | np.ndarray,
    dt: float = 0.5,
    thresholds: CommandLabelThresholds = DEFAULT_THRESHOLDS,
) -> tuple[SpeedPlan, PathPlan]:
    """Label a GT future with (speed plan, path plan).

    future_poses: (N, 3) x, y, heading at dt, 2 dt, ... in the current ego frame (the current pose excluded).
    speeds: the current speed (scalar; future speeds then come from the pose spacing) or (N+1,) speeds, current first.
    """
    poses = np.asarray(future_poses, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != 3 or poses.shape[0] < 2:
        raise ValueError(f"future_poses must have shape (N>=2, 3), got {poses.shape}")
    if not np.all(np.isfinite(poses)):
        raise ValueError("future_poses contains NaN or infinite values")
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be positive, got {dt!r}")
    v = _speed_profile(poses, speeds, dt)
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ValueError("speeds must be finite and non-negative")
    return speed_plan_from_profile(v, dt, thresholds), path_plan_from_poses(poses, thresholds)
