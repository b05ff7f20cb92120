"""Simulation: plan interpolation, bicycle step, LQR commands and tracking, checked against hand computations."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from epdms_fixtures import straight_plan, straight_road

from navsim_eval.config import LQRConfig, SimulationConfig
from navsim_eval.simulation import (
    S_AX,
    S_HEADING,
    S_STEER,
    S_STEER_RATE,
    S_VX,
    S_X,
    S_Y,
    S_YAW_RATE,
    STATE_DIM,
    KinematicBicycle,
    LQRTracker,
    fit_velocity_curvature,
    interpolate_plans,
    simulate,
    simulate_plans,
)


def test_interpolation_gives_41_states_from_the_current_pose():
    plan = straight_plan(10.0)[None]  # x = 5, 10, ..., 40 at 0.5 s
    origin = np.array([100.0, 50.0, math.pi / 2])  # heading north: local x maps to global +y
    out = interpolate_plans(plan, origin)
    assert out.shape == (1, 41, 3)
    t = np.arange(41) * 0.1
    np.testing.assert_allclose(out[0, :, 0], 100.0, atol=1e-9)
    np.testing.assert_allclose(out[0, :, 1], 50.0 + 10.0 * t, atol=1e-9)
    np.testing.assert_allclose(out[0, :, 2], math.pi / 2, atol=1e-12)


def test_interpolation_unwraps_heading_across_pi():
    plan = np.zeros((1, 8, 3))
    plan[0, :, 0] = np.arange(1, 9)
    plan[0, 0, 2] = math.radians(170)
    plan[0, 1:, 2] = math.radians(-170)  # +20 degrees from 170, across the wrap
    out = interpolate_plans(plan, np.zeros(3))
    # between t = 0.5 (170 deg) and 1.0 (190 deg) the midpoint at 0.75 s is 180 deg, not 0
    mid = out[0, 7 + 1, 2]  # t = 0.8 s: 170 + 20 * 0.6 = 182 deg -> wrapped to -178
    assert math.isclose(math.degrees(mid), -178.0, abs_tol=1e-9)


def test_bicycle_step_by_hand():
    s = np.zeros((1, STATE_DIM))
    s[0, S_VX] = 10.0
    out = KinematicBicycle(3.089).propagate(s, np.array([1.0]), np.array([0.5]), 0.1)
    # accel lag: 0.1 / (0.1 + 0.2) * (1 - 0) = 1/3; steering: ideal 0.05, lag 0.1 / 0.15 -> 1/30 rad
    assert math.isclose(out[0, S_AX], 1 / 3)
    assert math.isclose(out[0, S_X], 1.0)  # integrates the old speed
    assert math.isclose(out[0, S_VX], 10.0 + 0.1 / 3)
    assert math.isclose(out[0, S_STEER], 1 / 30)
    assert math.isclose(out[0, S_STEER_RATE], 1 / 3)
    assert math.isclose(out[0, S_HEADING], 0.0)  # heading uses the old steering angle
    assert math.isclose(out[0, S_YAW_RATE], (10.0 + 0.1 / 3) * math.tan(1 / 30) / 3.089)


def test_longitudinal_lqr_and_stopping_controller():
    tracker = LQRTracker()
    n = 41
    ref = np.zeros((2, n, 3))
    vel = np.zeros((2, n - 1))
    vel[0] = 8.0  # reference speed 8, current 10: accel = -(q B)/(q B^2 + r) * (10 - 8), B = 1 s
    curv = np.zeros((2, n - 1))
    st = np.zeros((2, STATE_DIM))
    st[0, S_VX] = 10.0
    st[1, S_VX] = 0.1  # both below 0.2 m/s: P controller, -0.5 * (0.1 - 0)
    accel, steer_rate = tracker.commands(0, st, ref, vel, curv, 0.1)
    assert math.isclose(accel[0], -10.0 / 11.0 * 2.0)
    assert math.isclose(accel[1], -0.05)
    assert steer_rate[1] == 0.0


def test_velocity_fit_recovers_constant_speed_and_curvature():
    # a circle of radius 50 m driven at 10 m/s: curvature 0.02
    t = np.arange(41) * 0.1
    theta = 10.0 * t / 50.0
    poses = np.stack([50 * np.sin(theta), 50 * (1 - np.cos(theta)), theta], axis=1)[None]
    vel, curv = fit_velocity_curvature(poses, 0.1, LQRConfig())
    # chord length 2 R sin(dtheta / 2) per step along the chord heading; the fit uses the start heading, so the
    # fitted speed is the chord projected on it: chord * cos(dtheta / 2)
    d = 0.02
    chord = 2 * 50 * math.sin(d / 2) / 0.1
    np.testing.assert_allclose(vel[0], chord * math.cos(d / 2), rtol=1e-4)
    np.testing.assert_allclose(curv[0, 2:-2], 0.02 / (chord * math.cos(d / 2) / 10.0), rtol=2e-3)


def test_constant_speed_plan_is_tracked_exactly():
    scene = straight_road()
    states = simulate_plans(straight_plan(10.0)[None], scene)
    assert states.shape == (1, 41, 11)
    t = np.arange(41) * 0.1
    np.testing.assert_allclose(states[0, :, S_X], 10.0 * t, atol=1e-6)
    np.testing.assert_allclose(states[0, :, S_Y], 0.0, atol=1e-9)
    np.testing.assert_allclose(states[0, :, S_VX], 10.0, atol=1e-6)


def test_batch_equals_single_simulation():
    scene = straight_road()
    plans = np.stack([straight_plan(10.0), straight_plan(8.0, y=1.0), straight_plan(12.0, y=-0.5)])
    batch = simulate_plans(plans, scene)
    for i in range(3):
        np.testing.assert_allclose(batch[i], simulate_plans(plans[i : i + 1], scene)[0], atol=1e-9)


def test_lane_change_overshoots_like_the_official_tracker():
    scene = straight_road()
    plan = straight_plan(10.0)
    plan[2:, 1] = 3.5  # step to the left lane from 1.5 s on
    st = simulate_plans(plan[None], scene)
    # the tracker smooths the step and overshoots it (spec 8.8), ending near the target lane
    assert st[0, :, S_Y].max() > 3.5
    assert abs(st[0, -1, S_Y] - 3.5) < 1.0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="reference"):
        simulate(np.zeros((2, 41)), np.zeros(11))
    with pytest.raises(ValueError, match="plans"):
        interpolate_plans(np.zeros((8, 3)), np.zeros(3))
    with pytest.raises(ValueError):
        SimulationConfig(interval=0.0)


def _literal_fit(poses: np.ndarray, dt: float, cfg: LQRConfig) -> tuple[np.ndarray, np.ndarray]:
    """nuPlan's formulation written out literally: dense design matrices and pinv of the normal equations."""
    k, n, _ = poses.shape
    d = np.diff(poses, axis=1)
    dh = np.arctan2(np.sin(d[..., 2]), np.cos(d[..., 2]))
    m = n - 1
    vel = np.empty((k, m))
    curv = np.empty((k, m))
    for b in range(k):
        a = np.zeros((2 * m, m))
        for i in range(m):
            u = np.array([np.cos(poses[b, i, 2]), np.sin(poses[b, i, 2])])
            a[2 * i : 2 * i + 2, 0] = dt * u
            for j in range(1, i + 1):
                a[2 * i : 2 * i + 2, j] = dt**2 * u
        # nuPlan's banded "difference" matrix as it evaluates: its `-eye` slice assignment overwrites the `+eye`
        # one, leaving -1 on the diagonal and a single +1 in the last row
        r = np.zeros((m - 2, m))
        for i in range(m - 2):
            r[i, i + 1] = -1.0
        r[m - 3, m - 1] = 1.0
        x = np.linalg.pinv(a.T @ a + cfg.jerk_penalty * r.T @ r) @ a.T @ d[b, :, :2].reshape(-1)
        v = x[0] + np.concatenate([[0.0], np.cumsum(x[1:] * dt)])
        c = np.zeros((m, m))
        for i in range(m):
            c[i, 0] = dt * v[i]
            c[i, 1 : i + 1] = dt**2 * v[i]
        q = cfg.curvature_rate_penalty * np.eye(m)
        q[0, 0] = cfg.initial_curvature_penalty
        y = np.linalg.pinv(c.T @ c + q) @ c.T @ dh[b]
        vel[b] = v
        curv[b] = y[0] + np.concatenate([[0.0], np.cumsum(y[1:] * dt)])
    return vel, curv


def test_closed_form_fit_matches_the_literal_least_squares():
    rng = np.random.default_rng(3)
    poses = np.cumsum(rng.normal(size=(4, 41, 3)) * [1.0, 1.0, 0.05], axis=1)
    poses[1] = 0.0  # a standing plan: zero speed, curvature pinned by the tiny initial penalty
    v1, c1 = _literal_fit(poses, 0.1, LQRConfig())
    v2, c2 = fit_velocity_curvature(poses, 0.1, LQRConfig())
    np.testing.assert_allclose(v2, v1, atol=1e-9)
    np.testing.assert_allclose(c2, c1, atol=1e-9)
