"""PID controllers with Bench2Drive's rules, post-processing and creep."""

from __future__ import annotations

import math

import numpy as np
import pytest

from team_code.config import ControllerConfig, PIDGains
from team_code.controllers import PID, ControlCommand, LongitudinalPID, TrajectoryController, steering_angle


def test_pid_window_mean_and_last_difference():
    pid = PID(PIDGains(1.0, 1.0, 1.0, window=4))
    assert pid.step(1.0) == pytest.approx(1.0 + 0.25 + 1.0)  # window [1, 0, 0, 0]
    assert pid.step(1.0) == pytest.approx(1.0 + 0.5 + 0.0)
    pid.step(1.0)
    pid.step(1.0)
    assert pid.step(3.0) == pytest.approx(3.0 + (1 + 1 + 1 + 3) / 4 + 2.0)  # oldest 1 dropped


def test_steering_angle_sign_is_carla_right_positive():
    assert steering_angle([1.0, -1.0]) == pytest.approx(0.5)  # 45 deg to the right
    assert steering_angle([1.0, 1.0]) == pytest.approx(-0.5)
    assert steering_angle([5.0, 0.0]) == 0.0


def test_default_gains_are_bench2drive():
    c = ControllerConfig()
    assert (c.lateral.kp, c.lateral.ki, c.lateral.kd, c.lateral.window) == (0.75, 0.75, 0.3, 40)
    assert (c.longitudinal.kp, c.longitudinal.ki, c.longitudinal.kd, c.longitudinal.window) == (5.0, 0.5, 1.0, 40)
    assert (c.max_throttle, c.brake_speed, c.brake_ratio, c.clip_delta, c.aim_distance) == (0.75, 0.4, 1.1, 0.25, 4.0)


def test_desired_speed_and_brake_rules():
    wp = np.stack([np.arange(1.0, 9.0), np.zeros(8)], axis=-1)  # 1 m gaps at 0.5 s -> 2 m/s
    assert LongitudinalPID.desired_speed(wp, 0.5) == pytest.approx(2.0)
    lon = LongitudinalPID(ControllerConfig())
    assert lon.step(0.3, 0.0) == (0.0, True)  # desired below 0.4 m/s
    assert lon.step(2.0, 2.3) == (0.0, True)  # 2.3 / 2.0 = 1.15 > 1.1
    fresh = LongitudinalPID(ControllerConfig())
    throttle, brake = fresh.step(2.0, 1.0)  # delta clipped to 0.25: 5*0.25 + 0.5*0.25/40 + 1*0.25 -> clipped 0.75
    assert (throttle, brake) == (0.75, False)
    small = LongitudinalPID(ControllerConfig())
    assert small.step(2.0, 1.98)[0] == pytest.approx(5 * 0.02 + 0.5 * 0.02 / 40 + 0.02)


def test_lateral_uses_aim_point_and_first_step_value():
    ang = math.radians(10.0)  # every waypoint and the target lie 10 deg to the right
    wp = np.stack([np.arange(1.0, 9.0), -np.arange(1.0, 9.0) * math.tan(ang)], axis=-1)
    target = np.array([20.0, -20.0 * math.tan(ang)])
    ctl = TrajectoryController(ControllerConfig())
    cmd = ctl.step(wp, speed=2.0, target=target)
    a = 10.0 / 90.0
    assert cmd.steer == pytest.approx(0.75 * a + 0.75 * a / 40 + 0.3 * a)
    assert cmd.brake == 0.0 and cmd.throttle > 0


def test_lateral_prefers_a_target_that_bends_less():
    wp = np.stack([np.arange(1.0, 9.0), -0.5 * np.arange(1.0, 9.0)], axis=-1)  # plan bends right
    cmd = TrajectoryController(ControllerConfig()).step(wp, 2.0, target=np.array([20.0, 0.0]))
    assert cmd.steer == 0.0 and cmd.info["angle_final"] == 0.0


def test_throttle_cap_and_straight_plan():
    wp = np.stack([np.arange(1.0, 9.0) * 3, np.zeros(8)], axis=-1)  # 6 m/s desired
    cfg = ControllerConfig(throttle_cap_speed=5.0)
    assert TrajectoryController(cfg).step(wp, 5.5, np.array([10.0, 0.0])).throttle == 0.0
    cmd = TrajectoryController(ControllerConfig()).step(wp, 5.5, np.array([10.0, 0.0]))
    assert cmd.steer == 0.0 and cmd.throttle > 0 and cmd.brake == 0.0


def test_creep_after_stuck_without_hazard_only():
    cfg = ControllerConfig(stuck_seconds=1.0, creep_seconds=0.5, creep_speed=2.0)
    stop = np.zeros((8, 2))
    target = np.array([10.0, 0.0])
    ctl = TrajectoryController(cfg)
    cmds = [ctl.step(stop, 0.0, target, dt=0.1) for _ in range(16)]
    assert all(c.brake == 1.0 for c in cmds[:9])
    assert cmds[9].info["creeping"] and cmds[9].throttle > 0 and cmds[9].brake == 0.0  # 10 x 0.1 s stopped
    assert sum(c.info["creeping"] for c in cmds) == 5  # 0.5 s of creep
    assert not cmds[-1].info["creeping"] and cmds[-1].brake == 1.0
    assert ctl.creeps == 1
    hazard = TrajectoryController(cfg)
    assert not any(hazard.step(stop, 0.0, target, dt=0.1, hazard=True).info["creeping"] for _ in range(30))


def test_control_command_validation_and_bad_input():
    with pytest.raises(ValueError, match="not finite"):
        ControlCommand(float("nan"), 0.0, 0.0)
    with pytest.raises(ValueError, match="out of range"):
        ControlCommand(0.0, 1.5, 0.0)
    assert ControlCommand.emergency_brake("x").brake == 1.0
    with pytest.raises(ValueError, match="NaN"):
        TrajectoryController().step(np.full((8, 2), np.nan), 0.0)
    with pytest.raises(ValueError, match="shape"):
        TrajectoryController().step(np.zeros((1, 2)), 0.0)


def test_hazard_ahead_from_flag_or_detections():
    from agent.contract import Detections, PlanResult
    from agent.types import Trajectory
    from team_code.controllers import hazard_ahead

    cfg = ControllerConfig()  # corridor 0 < x < 20 m, |y| < 2 m, score >= 0.3
    stop = Trajectory(np.zeros((8, 3)))
    assert hazard_ahead(PlanResult(stop, hazard=True), cfg) and not hazard_ahead(PlanResult(stop, hazard=False), cfg)
    assert hazard_ahead(PlanResult(stop), cfg)  # neither a verdict nor detections: an unknown hazard

    def det(x, y, score):
        boxes = np.array([[x, y, 0.0, 4.5, 1.9, 0.0, 0.0]])
        return PlanResult(stop, detections=Detections(boxes, np.array([score]), np.zeros(1, dtype=int), ("car",)))

    assert hazard_ahead(det(8.0, 0.5, 0.9), cfg)
    assert not hazard_ahead(det(8.0, 0.5, 0.1), cfg)  # not confident
    assert not hazard_ahead(det(8.0, 3.5, 0.9), cfg)  # next lane
    assert not hazard_ahead(det(-6.0, 0.0, 0.9), cfg)  # behind
    assert not hazard_ahead(det(25.0, 0.0, 0.9), cfg)  # too far
    assert hazard_ahead(det(19.9, -1.9, 0.3), cfg)  # corner of the corridor, at the score threshold
    empty = PlanResult(stop, detections=Detections(np.zeros((0, 7)), np.zeros(0), np.zeros(0, dtype=int), ("car",)))
    assert not hazard_ahead(empty, cfg)
    assert hazard_ahead(det(float("nan"), 0.0, 0.9), cfg)  # malformed: unknown, so a hazard
    assert hazard_ahead(det(30.0, 0.0, float("nan")), cfg)
    flagged = PlanResult(stop, hazard=False, detections=det(8.0, 0.0, 0.9).detections)
    assert not hazard_ahead(flagged, cfg)  # the planner's own verdict wins over detections


def test_held_plan_is_unchanged_when_the_car_drove_it_exactly():
    from team_code.controllers import held_waypoints

    poses = np.stack([2.0 * np.arange(1, 9), np.zeros(8), np.zeros(8)], axis=-1)  # 4 m/s straight ahead
    same = held_waypoints(poses, 0.5, np.array([3.0, -1.0, 0.0]), np.array([3.0, -1.0, 0.0]), 0.0)
    assert same == pytest.approx(poses)
    # 0.1 s later the car is 0.4 m further: re-timed to t + 0.1 (x = 2.4 ... 16.4, the last 0.1 s continued along
    # the last segment) and seen from 0.4 m ahead, the plan reads exactly as it did
    moved = held_waypoints(poses, 0.5, np.array([3.0, -1.0, 0.0]), np.array([3.4, -1.0, 0.0]), 0.1)
    assert moved == pytest.approx(poses, abs=1e-9)


def test_held_plan_is_re_expressed_in_the_current_frame():
    from team_code.controllers import held_waypoints

    poses = np.array([[2.0, 0.0, 0.0], [4.0, 0.0, 0.0]])
    # planned facing +y (north) at (10, 5): its points lie at (10, 7), (10, 9) in the world; now the car faces +x at
    # the same place, so they are to its left: (0, 2), (0, 4), headings +pi/2
    out = held_waypoints(poses, 0.5, np.array([10.0, 5.0, math.pi / 2]), np.array([10.0, 5.0, 0.0]), 0.0)
    assert out == pytest.approx(np.array([[0.0, 2.0, math.pi / 2], [0.0, 4.0, math.pi / 2]]))
    # a stop plan (all poses at the origin) held for 0.1 s stays a stop at the same world place
    stop = held_waypoints(np.zeros((8, 3)), 0.5, np.zeros(3), np.array([0.5, 0.0, 0.0]), 0.1)
    assert stop[:, :2] == pytest.approx(np.tile([-0.5, 0.0], (8, 1)))
    assert LongitudinalPID.desired_speed(stop[:, :2], 0.5) == 0.0
