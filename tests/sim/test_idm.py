"""The one IDM acceleration (`sim/idm.py`) against hand-computed values of its three official variants."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.idm import NUPLAN_AGENT_IDM_EXPONENT, idm_acceleration

NUPLAN = dict(accel_max=1.0, decel=2.0, min_gap=1.0, headway=1.5, gap_floor=1.0)  # navsim_IDM_traffic_agents.yaml


def test_free_road_and_following_by_hand():
    v = np.array([0.0, 5.0, 10.0, 10.0])
    gap = np.array([np.inf, np.inf, 30.0, np.nan])  # NaN or inf: no lead
    lead = np.array([0.0, 0.0, 8.0, 0.0])
    a = idm_acceleration(v, 10.0, gap, lead, exponent=NUPLAN_AGENT_IDM_EXPONENT, **NUPLAN)
    # free road: 1 - (v / 10)^4 -> 1, 1 - 1/16, and 0 at the target speed
    # following at 10 m/s, lead 8 m/s, 30 m: s* = 1 + 15 + 10 * 2 / (2 sqrt 2) = 16 + 5 sqrt 2 = 23.0711
    s_star = 16.0 + 5.0 * math.sqrt(2.0)
    expected = [1.0, 1.0 - 1.0 / 16.0, -((s_star / 30.0) ** 2), 0.0]
    assert a.tolist() == pytest.approx(expected, abs=1e-12)


def test_gap_floor_exponent_and_treiber_clamp():
    # gap below the floor divides by the floor: 0.2 m -> 1 m, s* = 1 at standstill -> a = 1 - 0 - 1 = 0
    assert idm_acceleration(np.array([0.0]), 10.0, np.array([0.2]), 0.0, **NUPLAN)[0] == pytest.approx(0.0)
    # PDM-Closed's exponent 10: 1 - 0.5^10
    a10 = idm_acceleration(np.array([5.0]), 10.0, np.array([np.inf]), 0.0, exponent=10.0, **NUPLAN)[0]
    assert a10 == pytest.approx(1.0 - 0.5**10, abs=1e-15)
    # a lead pulling away fast: dynamic part 2 * 1.5 + 2 * (2 - 12) / (2 sqrt 2) = 3 - 10 / sqrt 2 < 0
    v, gap, lead = np.array([2.0]), np.array([4.0]), 12.0
    plain = idm_acceleration(v, 10.0, gap, lead, **NUPLAN)[0]
    clamped = idm_acceleration(v, 10.0, gap, lead, clamp_dynamic_gap=True, **NUPLAN)[0]
    free = 1.0 - 0.2**4
    assert plain == pytest.approx(free - ((1.0 + 3.0 - 10.0 / math.sqrt(2.0)) / 4.0) ** 2, abs=1e-12)
    assert clamped == pytest.approx(free - (1.0 / 4.0) ** 2, abs=1e-12)  # s* never below s0 in Treiber's form


def test_broadcasts_per_vehicle_parameters():
    a = idm_acceleration(
        np.array([[5.0, 5.0]]), np.array([10.0, 5.0]), np.full((1, 2), np.inf), 0.0,
        accel_max=np.array([1.0, 2.0]), decel=2.0, min_gap=1.0, headway=1.5, gap_floor=0.05,
    )  # fmt: skip
    assert a.shape == (1, 2) and a[0].tolist() == pytest.approx([1.0 - 1.0 / 16.0, 0.0])
