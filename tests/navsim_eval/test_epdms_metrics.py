"""Each sub-metric on small built scenes whose answers follow from the geometry (derivations in the comments)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from epdms_fixtures import (
    agent_track,
    ego_log,
    junction,
    make_agents,
    sim_states,
    straight_plan,
    straight_road,
)

from agent.epdms_metrics import DAC, DDC, EC, EP, HC, LK, NC, TLC, TTC
from navsim_eval import metrics
from navsim_eval.api import score_proposals
from navsim_eval.comfort import comfort_flags, two_frame_extended_comfort
from navsim_eval.config import IDMTrafficConfig, ScorerConfig
from navsim_eval.mapquery import MapQueries
from navsim_eval.scorer import normalise_progress
from navsim_eval.simulation import S_AX, simulate_plans
from sim.scene import SPEED_LIMIT_50_KMH, AgentType, EgoParams, TrafficLightState

V = AgentType.VEHICLE
CFG = ScorerConfig()
P = EgoParams()


def _areas(states, scene):
    ego = metrics.EgoFrames.from_states(states, P)
    return ego, metrics.ego_areas(ego, MapQueries.of(scene))


# ---- NC / TTC ----
def test_driving_into_a_stopped_car_is_an_at_fault_collision():
    # stopped car centred 25 m ahead in the ego lane (rear at 22.5 m); the plan drives 40 m at 10 m/s, so the ego
    # front (rear axle + 4.049 m) reaches it at ~1.85 s: stopped track -> at fault, NC 0; it is ahead -> TTC 0
    scene = straight_road([("car", V, (5.0, 2.0), agent_track(25.0, 0.0, 0.0))])
    r = score_proposals(scene, straight_plan(10.0), stage_one=False)
    assert r.table[0, NC] == 0.0
    assert r.table[0, TTC] == 0.0
    assert r.epdms[0] == 0.0


def test_stopped_car_in_the_next_lane_is_not_hit():
    # same car, but centred in lane L1 (y = 3.5): boxes are 3.5 - 1.0 - 1.1485 = 1.35 m apart laterally
    scene = straight_road([("car", V, (5.0, 2.0), agent_track(25.0, 3.5, 0.0))])
    r = score_proposals(scene, straight_plan(10.0), stage_one=False)
    assert r.table[0, NC] == 1.0 and r.table[0, TTC] == 1.0


def test_being_rear_ended_by_a_faster_car_is_not_at_fault():
    # follower at 15 m/s starting 12 m behind the ego rear axle; the ego cruises at 5 m/s: the first contact has the
    # track behind the ego (angle 180 > 150 deg): ACTIVE_REAR, not at fault -> NC 1.
    scene = straight_road([("car", V, (5.0, 2.0), agent_track(-12.0, 0.0, 15.0))], ego=ego_log(5.0))
    r = score_proposals(scene, straight_plan(5.0), stage_one=False)
    assert r.table[0, NC] == 1.0
    # TTC compares the ego rear axle at t with the follower at t + 0.9 s, which by then sits beside/ahead of that
    # earlier pose (spec 8.3): TTC 0 even for the innocent ego
    assert r.table[0, TTC] == 0.0


def test_hitting_a_cone_scores_half():
    # a traffic cone (not a nuPlan AGENT_TYPE) in the lane 20 m ahead: static -> "stopped track" -> at fault, 0.5
    scene = straight_road([("cone", AgentType.TRAFFIC_CONE, (0.5, 0.5), agent_track(20.0, 0.0, 0.0))])
    r = score_proposals(scene, straight_plan(10.0), stage_one=False)
    assert r.table[0, NC] == 0.5
    assert r.table[0, TTC] == 0.0


def test_track_overlapping_the_ego_at_t0_is_ignored():
    # a car already overlapping the ego footprint at t = 0 is dropped by log replay for the whole horizon
    scene = straight_road([("car", V, (5.0, 2.0), agent_track(3.0, 0.5, 0.0))])
    r = score_proposals(scene, straight_plan(10.0), stage_one=False)
    assert r.table[0, NC] == 1.0


def test_collision_while_ego_stopped_is_not_at_fault():
    # ego at rest, a car drives into it from the front: STOPPED_EGO_COLLISION -> not at fault; TTC skips hits below
    # 5e-3 m/s without remembering them
    scene = straight_road([("car", V, (5.0, 2.0), agent_track(20.0, 0.0, -10.0, heading=math.pi))], ego=ego_log(0.0))
    r = score_proposals(scene, np.zeros((8, 3)), stage_one=False)
    assert r.table[0, NC] == 1.0
    assert r.table[0, TTC] == 1.0


def test_lateral_collision_is_at_fault_only_when_straddling_lanes():
    scene = straight_road()
    n = 41
    xy = np.stack([np.arange(n) * 1.0, np.zeros(n)], axis=1)
    states = sim_states(xy, speed=10.0)
    ego, areas = _areas(states, scene)
    # a 4 m x 2 m car level with the ego centre closes in sideways at 1 m/s (0.1 m per step) from y = 4: its right
    # side touches the ego's left side (y = 1.1485) at y = 2.1485; the ego front (centre + 2.588 m) is clear of its
    # 2 m half length, and its centroid is 56 deg off the ego heading: ACTIVE_LATERAL
    from navsim_eval.observation import Observation

    st = np.zeros((1, n, 5))
    st[0, :, 0] = np.arange(n) * 1.0 + 1.461
    st[0, :, 1] = 4.0 - 0.1 * np.arange(n)
    st[0, :, 3] = 10.0
    obs = Observation(
        ("c",),
        np.array([0]),
        np.array([[4.0, 2.0, 1.5]]),
        st,
        np.ones((1, n), bool),
        np.array([10.0]),
        (),
        np.zeros((0, n), bool),
    )
    assert metrics.no_at_fault_collisions(ego, areas, obs, CFG, P)[0] == 1.0
    areas.multiple_lanes[:] = True
    assert metrics.no_at_fault_collisions(ego, areas, obs, CFG, P)[0] == 0.0


# ---- DAC ----
def test_corner_leaving_the_drivable_area():
    scene = straight_road()
    n = 41
    # rear axle at y = -0.5: right corners at y = -0.5 - 1.1485 = -1.6485 > -1.75 (inside RB0)
    ok = sim_states(np.stack([np.arange(n) * 1.0, np.full(n, -0.5)], axis=1), speed=10.0)
    # rear axle at y = -0.7 from step 30: right corners at -1.8485 < -1.75: one corner outside every polygon
    y = np.where(np.arange(n) >= 30, -0.7, -0.5)
    bad = sim_states(np.stack([np.arange(n) * 1.0, y], axis=1), speed=10.0)
    _, a_ok = _areas(ok, scene)
    _, a_bad = _areas(bad, scene)
    assert metrics.drivable_area_compliance(a_ok)[0] == 1.0
    assert metrics.drivable_area_compliance(a_bad)[0] == 0.0


def test_end_to_end_drifting_off_road_fails_dac():
    scene = straight_road()
    r = score_proposals(scene, straight_plan(10.0, y=-3.0), stage_one=False)
    assert r.table[0, DAC] == 0.0
    assert r.epdms[0] == 0.0


# ---- DDC ----
def _ddc_states(step: float, n_oncoming: int) -> np.ndarray:
    """Centre in the oncoming lane (y = 7) for `n_oncoming` consecutive displacements of `step` m, else in L0."""
    n = 41
    x = np.concatenate([[0.0], np.cumsum(np.full(n - 1, step))])
    y = np.zeros(n)
    y[10 : 10 + n_oncoming] = 7.0
    # displacement into the lane (step 10) is a jump; make that entry count only the forward step
    xy = np.stack([x - 1.461, y], axis=1)
    return sim_states(xy, speed=step * 10)


def _ddc(step: float, n_oncoming: int) -> float:
    scene = straight_road()
    states = _ddc_states(step, n_oncoming)
    ego, areas = _areas(states, scene)
    # keep displacement magnitudes pure forward steps: replace the lateral jumps by on-route flags only
    ego.centre[..., 1] = 0.0
    return float(metrics.driving_direction_compliance(ego, areas, CFG, 0.1)[0])


def test_ddc_three_metres_against_traffic_within_one_second_is_half():
    # 10 oncoming steps of 0.3 m: the trailing 1 s window (11 displacements) sums to 3.0 m: 2 <= 3 < 6 -> 0.5
    assert _ddc(0.3, 10) == 0.5


def test_ddc_seven_metres_is_zero():
    assert _ddc(0.7, 10) == 0.0  # 7.0 m >= 6


def test_ddc_below_two_metres_is_one():
    assert _ddc(0.19, 10) == 1.0  # 1.9 m < 2


def test_ddc_intersection_is_exempt():
    scene = junction()
    n = 41
    # centre inside the intersection box (x in [0, 20]) but off the route lanes (y = 6): no oncoming progress
    xy = np.stack([np.linspace(2, 14, n) - 1.461, np.full(n, 6.0)], axis=1)
    ego, areas = _areas(sim_states(xy, speed=3.0), scene)
    assert areas.oncoming.all()
    assert metrics.driving_direction_compliance(ego, areas, CFG, 0.1)[0] == 1.0


# ---- TLC ----
def test_entering_a_red_connector_fails_tlc():
    # ego rear axle at x = -30 at 10 m/s: the front reaches the connector (x = 0) after ~2.6 s
    r = score_proposals(junction(TrafficLightState.RED), straight_plan(10.0), stage_one=False)
    assert r.table[0, TLC] == 0.0
    # braking at 3 m/s^2 stops after 16.7 m: front at -30 + 16.7 + 4.05 = -9.3 m, never touching the connector
    r = score_proposals(junction(TrafficLightState.RED), straight_plan(10.0, accel=-3.0), stage_one=False)
    assert r.table[0, TLC] == 1.0


def test_green_connector_passes_tlc():
    r = score_proposals(junction(TrafficLightState.GREEN), straight_plan(10.0), stage_one=False)
    assert r.table[0, TLC] == 1.0


# ---- LK ----
def _lk(n_off: int, start: int = 5, intersection_gap: bool = False) -> float:
    scene = junction() if intersection_gap else straight_road()
    n = 41
    x = np.arange(n) * 1.0 - 40.0 if intersection_gap else np.arange(n) * 1.0
    y = np.zeros(n)
    y[start : start + n_off] = 0.6  # centre 0.6 m off the centreline (> 0.5 m)
    ego, areas = _areas(sim_states(np.stack([x - 1.461, y], axis=1), speed=10.0), scene)
    return float(metrics.lane_keeping(ego, areas, MapQueries.of(scene), CFG, 0.1)[0])


def test_lane_keeping_fails_after_two_seconds_off_centre():
    assert _lk(21) == 0.0  # 2.1 s
    assert _lk(20) == 0.0  # exactly 20 steps reaches the 2.0 s window
    assert _lk(19) == 1.0  # 1.9 s


def test_lane_keeping_skips_intersection_steps_without_reset():
    # junction scene: centre x runs -40 .. 0 m, the intersection starts at x = 0 (only the last step is inside)
    scene = junction()
    n = 41
    x = np.arange(n) * 0.95 - 18.5  # centre inside the intersection box (0 < x < 20) for steps 20..40
    y = np.full(n, 0.6)
    y[:10] = 0.0
    ego, areas = _areas(sim_states(np.stack([x - 1.461, y], axis=1), speed=10.0), scene)
    inside = areas.centre_in_intersection[0]
    assert inside[20:].all() and not inside[:20].any()
    # 10 off-centre steps before the intersection, then only intersection steps: 10 < 20 -> pass
    assert metrics.lane_keeping(ego, areas, MapQueries.of(scene), CFG, 0.1)[0] == 1.0
    # now 12 off-centre steps, then 5 in the intersection (skipped), then 9 more off-centre after it: 21 counted
    x = np.concatenate(
        [np.linspace(-12, -1, 12), np.linspace(2, 10, 5), np.linspace(21, 29, 9), np.linspace(30, 44, 15)]
    )
    y = np.concatenate([np.full(26, 0.6), np.zeros(15)])
    ego, areas = _areas(sim_states(np.stack([x - 1.461, y], axis=1), speed=10.0), scene)
    assert areas.centre_in_intersection[0, 12:17].all() and not areas.centre_in_intersection[0, 17:26].any()
    assert metrics.lane_keeping(ego, areas, MapQueries.of(scene), CFG, 0.1)[0] == 0.0


# ---- HC / EC ----
def test_harsh_brake_fails_history_comfort():
    # plan: stop from 10 m/s at 5 m/s^2; the tracker's commanded decel exceeds the -4.05 m/s^2 bound
    r = score_proposals(straight_road(), straight_plan(10.0, accel=-5.0), stage_one=False)
    assert r.table[0, HC] == 0.0
    assert r.states[0, :, S_AX].min() < -4.05
    r = score_proposals(straight_road(), straight_plan(10.0), stage_one=False)
    assert r.table[0, HC] == 1.0


def test_comfort_bounds_on_constant_states():
    n = 55
    s = np.zeros((3, n, 11))
    s[0, :, S_AX] = -4.0  # inside (-4.05, 2.40)
    s[1, :, S_AX] = -4.1  # below the bound
    s[2, :, S_AX] = 2.4  # bounds are strict
    flags = comfort_flags(s, CFG, 1.461)
    assert flags[0].all()
    assert not flags[1, 0] and flags[1, 1:].all()
    assert not flags[2, 0]


def test_logged_past_acceleration_fails_hc_even_for_the_human_plan():
    # the human accelerated at 3 m/s^2 over the past 1.5 s (> 2.40): every proposal fails HC (spec 8.1)
    scene = straight_road(ego=ego_log(10.0, accel=3.0))
    r = score_proposals(scene, scene.human_trajectory(), stage_one=False)
    assert r.table[0, HC] == 0.0


def test_two_frame_extended_comfort():
    scene = straight_road()
    prev = simulate_plans(straight_plan(10.0)[None], scene)
    same = two_frame_extended_comfort(prev, prev[0], CFG, 1.461)
    assert same[0] == 1.0
    braking = simulate_plans(straight_plan(10.0, accel=-4.0)[None], scene)
    # acceleration magnitude differs by ~4 m/s^2 over most of the overlap: RMS >> 0.7
    assert two_frame_extended_comfort(braking, prev[0], CFG, 1.461)[0] == 0.0


def test_ec_in_score_proposals_and_its_weight():
    scene = straight_road()
    first = score_proposals(scene, straight_plan(10.0), stage_one=False)
    assert math.isnan(first.table[0, EC])
    r = score_proposals(
        scene, np.stack([straight_plan(10.0), straight_plan(10.0, accel=-4.0)]), previous=first, stage_one=False
    )
    assert r.table[0, EC] == 1.0 and r.table[1, EC] == 0.0
    # proposal 0: all multipliers 1, EP/TTC/LK/HC/EC all 1 -> 16/16 when EP is 1
    t = r.table[0]
    assert math.isclose(r.epdms[0], (5 * t[EP] + 5 + 2 + 2 + 2) / 16)


# ---- EP ----
def test_ep_ratios():
    prog = np.array([10.0, 20.0, 3.0])
    mult = np.array([1.0, 1.0, 1.0])
    # pair mode: each proposal against the reference (15 m): 10/15, 20/20, 3/15
    np.testing.assert_allclose(normalise_progress(prog, mult, 15.0, 5.0, "pair"), [10 / 15, 1.0, 3 / 15])
    # batch mode: the best of everything (20 m)
    np.testing.assert_allclose(normalise_progress(prog, mult, 15.0, 5.0, "batch"), [0.5, 1.0, 0.15])
    # a failing multiplier removes the proposal's own progress from the normaliser
    np.testing.assert_allclose(
        normalise_progress(prog, np.array([1.0, 0.0, 1.0]), 15.0, 5.0, "pair"), [10 / 15, 1.0, 0.2]
    )
    # normaliser at or below 5 m: EP = 1
    np.testing.assert_allclose(normalise_progress(np.array([1.0, 4.0]), np.ones(2), 5.0, 5.0, "pair"), [1.0, 1.0])


def test_ep_end_to_end_against_reference():
    scene = straight_road()
    r = score_proposals(scene, np.stack([straight_plan(10.0), straight_plan(5.0)]), stage_one=False)
    ref_prog = r.reference_states[-1, 0] - r.reference_states[0, 0]  # straight along x: progress = dx
    assert ref_prog > 40.0
    # the 10 m/s plan is tracked exactly (40 m); the 5 m/s plan starts at 10 m/s and the tracker slows down gradually,
    # so its progress is its simulated x displacement (heading stays 0, so the centre moves like the rear axle)
    assert math.isclose(r.states[0, -1, 0], 40.0, abs_tol=1e-6)
    prog = r.states[:, -1, 0] - r.states[:, 0, 0]
    assert 20.0 < prog[1] < 40.0
    np.testing.assert_allclose(r.table[:, EP], prog / ref_prog, rtol=1e-6)


def test_reference_memo_is_not_shared_between_scenes_on_one_map():
    # same map object, token and ego log; only b has a stopped car whose rear is 37.5 m ahead (centre 40 - 2.5).
    # PDM-Closed must stop behind it in b (front bumper short of 37.5 m: rear axle < 37.5 - 4.049) but drives > 40 m
    # in a. A memo keyed on the map alone would hand b the reference of a.
    a = straight_road()
    b = straight_road([("car", V, (5.0, 2.0), agent_track(40.0, 0.0, 0.0))])
    b.map = a.map
    ra = score_proposals(a, straight_plan(10.0), stage_one=False)
    rb = score_proposals(b, straight_plan(10.0), stage_one=False)
    assert ra.reference_states[-1, 0] > 40.0
    assert rb.reference_states[-1, 0] < 37.5 - P.front_length


# ---- human filter and bad input ----
def test_human_filter_sets_columns_where_the_human_scores_zero():
    # the logged human leaves the road (rear axle at y = -3): human DAC = 0, so the agent's DAC is set to 1
    ego = ego_log(10.0)
    t = np.arange(len(ego)) * 0.1 - 1.5
    ego[:, 1] = np.where(t > 0, -3.0 * np.minimum(t, 2.0) / 2.0, 0.0)
    scene = straight_road(ego=ego)
    off = straight_plan(10.0, y=-3.0)
    assert score_proposals(scene, off, stage_one=False).table[0, DAC] == 0.0
    r = score_proposals(scene, off, stage_one=True)
    assert r.human is not None and r.human[DAC] == 0.0
    assert r.table[0, DAC] == 1.0
    # a synthetic scene (stage two) is never filtered
    syn = straight_road(ego=ego, synthetic=True)
    assert score_proposals(syn, off).table[0, DAC] == 0.0


def test_waiting_human_does_not_filter_ep():
    # the logged human stands still for 4 s while PDM-Closed drives off (> 5 m). pdm_score.py scores the human alone
    # (no reference), so the human's EP is its own progress / its own progress -> 1, never 0, and the agent's
    # standing-still plan keeps EP = 0 / reference progress = 0.
    scene = straight_road(ego=ego_log(0.0))
    r = score_proposals(scene, np.zeros((8, 3)), stage_one=True)
    assert r.reference_states[-1, 0] - r.reference_states[0, 0] > 5.0
    assert r.human is not None and r.human[EP] == 1.0
    assert r.table[0, EP] == 0.0
    # the score: multipliers 1, EP 0, TTC/LK/HC 1, no EC -> (5 * 0 + 5 + 2 + 2) / 14
    assert math.isclose(r.epdms[0], 9.0 / 14.0)


@pytest.mark.parametrize(
    "bad, msg",
    [
        (np.full((8, 3), np.nan), "NaN"),
        (np.zeros((7, 3)), "shape"),
        (np.zeros((2, 8, 2)), "shape"),
        (np.full((8, 3), np.inf), "NaN"),
    ],
)
def test_bad_proposals_raise_clear_errors(bad, msg):
    with pytest.raises(ValueError, match=msg):
        score_proposals(straight_road(), bad)


def test_scene_without_enough_history_or_future_raises():
    scene = straight_road()
    scene.current_index = 5
    with pytest.raises(ValueError, match="history"):
        score_proposals(scene, straight_plan(10.0))


def test_ttc_ignores_slow_ego():
    # metric level: ego below 5e-3 m/s with a car ahead in every projection: skipped -> TTC 1
    scene = straight_road()
    n = 41
    states = sim_states(np.zeros((n, 2)), speed=1e-3)
    ego, areas = _areas(states, scene)
    from navsim_eval.observation import Observation

    st = np.zeros((1, n, 5))
    st[0, :, 0] = 5.0
    obs = Observation(
        ("c",),
        np.array([0]),
        np.array([[4.0, 2.0, 1.5]]),
        st,
        np.ones((1, n), bool),
        np.array([0.0]),
        (),
        np.zeros((0, n), bool),
    )
    assert metrics.time_to_collision(ego, areas, obs, CFG, P, 0.1)[0] == 1.0
    states[..., 3] = 1.0
    ego, areas = _areas(states, scene)
    assert metrics.time_to_collision(ego, areas, obs, CFG, P, 0.1)[0] == 0.0


def test_ddc_value_columns_in_score_proposals():
    r = score_proposals(straight_road(), straight_plan(10.0), stage_one=False)
    assert r.table[0, DDC] == 1.0 and r.table[0, DAC] == 1.0 and r.table[0, LK] == 1.0


# ---- traffic policies ----
def test_reactive_follower_brakes_where_log_replay_drives_through():
    # follower 15 m behind (centre to rear axle + 1.461) at 10 m/s; the ego plan brakes at 2 m/s^2. Log replay keeps
    # the follower at 10 m/s: by 4 s it has closed 16 m of a ~10 m gap and overlaps the ego from behind (not at
    # fault, NC 1; TTC 0 by the t / t + 0.9 s quirk). IDM wants a 1 + 1.5 v gap and brakes (<= 2 m/s^2): no contact.
    from navsim_eval import EpdmsConfig

    scene = straight_road([("f", V, (5.0, 2.0), agent_track(-15.0 + 1.461, 0.0, 10.0))])
    plan = straight_plan(10.0, accel=-2.0)
    replay = score_proposals(scene, plan, EpdmsConfig(reactive=False), stage_one=False)
    reactive = score_proposals(scene, plan, EpdmsConfig(reactive=True), stage_one=False)
    assert replay.table[0, NC] == 1.0 and replay.table[0, TTC] == 0.0
    assert reactive.table[0, NC] == 1.0 and reactive.table[0, TTC] == 1.0


def test_reactive_vehicle_keeps_its_lane_speed_limit():
    # The "logged_path" model (the official one brakes for its lane's end instead; tests/sim/test_epdms_reactive.py).
    # nuPlan's IDMAgent replaces the configured 10 m/s target with its lane's speed limit (13.89 m/s here): a lone
    # vehicle at 13 m/s far ahead of the ego must not slow towards 10 m/s; IDM's free-road acceleration is
    # a_max (1 - (v / 13.89)^4) >= 0 and it never exceeds the limit.
    from navsim_eval.observation import build_observation
    from navsim_eval.traffic import idm_reactive

    scene = straight_road([("lead", V, (5.0, 2.0), agent_track(60.0, 0.0, 13.0))])
    states = simulate_plans(straight_plan(10.0)[None], scene)
    obs = idm_reactive(scene, build_observation(scene), states, P, IDMTrafficConfig(model="logged_path"))
    speed = obs.states[0, 0, :, 3]
    assert np.all(np.diff(speed) >= -1e-9)
    assert 13.0 <= speed[-1] <= SPEED_LIMIT_50_KMH


def _junction_with_stop_line(state):
    from epdms_fixtures import LANE_W, _rect

    from sim.scene import Area

    ego = ego_log(0.0)
    ego[:, 0] = -60.0  # the ego waits 60 m before the junction, out of the way
    scene = junction(state, ego=ego)
    scene.map.stop_lines = {"S": Area("S", _rect(-2.0, 0.0, -LANE_W / 2, LANE_W / 2), ("A",))}
    # a car (4.5 m long) on the approach lane A at 8 m/s whose log drives straight through the junction
    scene.agents = make_agents([("car", V, (4.5, 2.0), agent_track(-30.0, 0.0, 8.0))])
    return scene


@pytest.mark.parametrize("state", [TrafficLightState.RED, TrafficLightState.GREEN])
def test_reactive_vehicle_stops_at_the_stop_line_of_a_red_connector(state):
    # The "logged_path" model: the official policy gets no traffic-light data (tests/sim/test_epdms_reactive.py).
    # IDMAgentManager puts the stop lines of red connectors on an agent's route into its occupancy map as standing
    # obstacles. The car's front starts at -27.75 m, 25.75 m before the line at x = -2; braking at most 2 m/s^2 from
    # 8 m/s needs 16 m, so on red its front stays behind x = -2 for all 4 s; on green it drives on past x = 0.
    from navsim_eval.observation import build_observation
    from navsim_eval.traffic import idm_reactive

    scene = _junction_with_stop_line(state)
    states = sim_states(np.tile([-60.0, 0.0], (41, 1)))
    obs = idm_reactive(scene, build_observation(scene), states, P, IDMTrafficConfig(model="logged_path"))
    front = obs.states[0, 0, :, 0] + 2.25
    if state == TrafficLightState.RED:
        assert front.max() <= -2.0 and obs.states[0, 0, -1, 3] < 4.0  # still closing in on the line, slowly
    else:
        assert obs.states[0, 0, -1, 0] > 0.0


def test_reactive_traffic_decelerates_within_idm_bounds():
    from navsim_eval.observation import build_observation
    from navsim_eval.traffic import idm_reactive

    scene = straight_road([("f", V, (5.0, 2.0), agent_track(-15.0 + 1.461, 0.0, 10.0))])
    states = simulate_plans(straight_plan(10.0, accel=-2.0)[None], scene)
    obs = idm_reactive(scene, build_observation(scene), states, P)
    speed = obs.states[0, 0, :, 3]
    accel = np.diff(speed) / 0.1
    assert speed[-1] < 6.0  # it slowed down behind the braking ego
    assert accel.min() >= -2.0 - 1e-9 and accel.max() <= 1.0 + 1e-9  # d_max 2.0, a_max 1.0
    np.testing.assert_allclose(obs.states[0, 0, :, 1], 0.0, atol=1e-9)  # it stays on its logged path (y = 0)


# ---- NAVSIM's 2 Hz observation ----
def test_agents_are_read_at_2hz_and_interpolated():
    from navsim_eval.observation import build_observation

    track = agent_track(10.0, 0.0, 5.0)
    # a 10 Hz wiggle in y between the 0.5 s samples: NAVSIM never sees it
    t = np.arange(len(track))
    track[:, 1] = np.where((t - 15) % 5 == 0, 0.0, 0.7)
    scene = straight_road([("w", V, (4.0, 2.0), track)])
    obs2 = build_observation(scene, two_hz=True)
    np.testing.assert_allclose(obs2.states[0, :, 1], 0.0, atol=1e-12)
    np.testing.assert_allclose(obs2.states[0, :, 0], 10.0 + 5.0 * np.arange(41) * 0.1, atol=1e-9)
    obs10 = build_observation(scene, two_hz=False)
    assert obs10.states[0, 1, 1] == 0.7


def test_track_seen_at_one_sample_is_held_everywhere():
    from navsim_eval.observation import build_observation

    scene = straight_road([("once", V, (4.0, 2.0), agent_track(30.0, 3.5, 8.0))])
    scene.agents.valid[0] = False
    scene.agents.valid[0, 15 + 10] = True  # only the t = 1.0 s sample exists
    obs = build_observation(scene)
    assert obs.present[0].all()
    np.testing.assert_allclose(obs.states[0, :, 0], 30.0 + 8.0 * 1.0)  # frozen at its t = 1 s state
    assert obs.first_speed[0] == 8.0


def test_traffic_lights_are_sample_and_hold_per_half_second():
    from navsim_eval.observation import build_observation

    scene = junction(TrafficLightState.GREEN)
    states = scene.traffic_lights[0].states
    states[15 + 20] = int(TrafficLightState.RED)  # red at the t = 2.0 s sample only
    states[15 + 33] = int(TrafficLightState.RED)  # red between samples: invisible at 2 Hz
    obs = build_observation(scene)
    assert obs.red_masks.shape == (1, 41)
    np.testing.assert_array_equal(np.flatnonzero(obs.red_masks[0]), np.arange(20, 25))  # held 2.0 .. 2.4 s


# ---- PDM-Closed reference ----
def test_pdm_closed_unrolls_batch_idm_by_hand():
    # Empty straight road: route centreline x from -100 to 300 (progress s0 = 100 at the ego), speed limit 13.89,
    # ego at 10 m/s. `PDMGenerator` keeps a zero leader array for step 1 (leaders are re-queried at even steps only),
    # so step 1 sees a leader at progress 0: gap clamped to the 1 m minimum -> IDM clipped to -d_max = -3 m/s^2.
    # From step 2 the leader is the path end (progress 400, rear length = half the ego length, 0 m/s).
    # BatchIDMPolicy: exponent 10, forward Euler (x += dt v, then v += dt a).
    scene = straight_road()
    r = score_proposals(scene, straight_plan(10.0), stage_one=False)
    vmax, a_max, b_max, gap0, head = SPEED_LIMIT_50_KMH, 1.5, 3.0, 1.0, 1.5
    half_len = (P.front_length + P.rear_length) / 2
    best_x, best = None, None
    for target in np.array([0.2, 0.4, 0.6, 0.8, 1.0]) * vmax:  # the free-road winner is the fastest profile
        x, v, xs = 100.0, 10.0, [100.0]
        for t in range(1, 41):
            lead_x, lead_rear = (0.0, 0.0) if t == 1 else (400.0, half_len)
            s_star = gap0 + v * head + v * v / (2 * math.sqrt(a_max * b_max))
            s_alpha = max(lead_x - x - lead_rear, gap0)
            acc = min(max(a_max * (1 - (v / target) ** 10 - (s_star / s_alpha) ** 2), -b_max), a_max)
            x, v = x + 0.1 * v, v + 0.1 * acc
            xs.append(x)
        if best_x is None or xs[-1] > best_x[-1]:
            best_x, best = xs, target
    assert best == pytest.approx(vmax)
    # the reference plan is the IDM trajectory itself (generate_trajectory), not its simulation
    np.testing.assert_allclose(r.reference_plan[:, 0], np.array(best_x) - 100.0, atol=1e-9)
    assert r.reference_plan[1, 0] == pytest.approx(1.0)  # 0.1 s x 10 m/s, while braking to 9.7 m/s
    # ... and the scored reference is that plan (all 41 poses) simulated once by the tracker
    from navsim_eval.config import SimulationConfig
    from navsim_eval.simulation import initial_state_from_scene, simulate

    once = simulate(r.reference_plan[None, :, :3], initial_state_from_scene(scene), SimulationConfig(), P.wheelbase)
    np.testing.assert_allclose(r.reference_states, once[0], atol=1e-9)


def test_pdm_closed_leader_is_requeried_along_the_forecast():
    # A vehicle (4 x 2 m) at x = 30 m drifts into the ego lane from y = -3 at 1.5 m/s (constant-velocity forecast).
    # At step 0 its box (y in [-4, -2]) misses the ego corridor (|y| <= width / 2 = 1.1485): the leader is the path
    # end (progress 400, rear length = half the ego length). At step 20 (2 s) it is centred on the lane: the leader
    # sits at the polygon distance from the ego box (front at 4.049) to its rear (28 m): 23.951 m past the ego's
    # progress (100). Its speed is projected by its *heading* (0, as the ego's), not its velocity direction, as
    # `_get_leading_agent_velocity` does: |v| cos(0) = 1.5 m/s.
    from shapely.geometry import LineString

    from navsim_eval.observation import build_observation
    from navsim_eval.pdm_closed import _leaders, constant_velocity_forecast

    scene = straight_road([("car", V, (4.0, 2.0), agent_track(30.0, -3.0, 0.0, heading=0.0, vy=1.5))])
    mq = MapQueries.of(scene)
    fc = constant_velocity_forecast(build_observation(scene))
    corridor = LineString(mq.line).buffer(P.width / 2, cap_style="flat")
    args = (fc, fc.corners(), fc.is_road_user)
    x = np.array([100.0])
    free = _leaders(*args, 0, corridor, LineString(mq.line), mq.line, mq.arclength, x, 0.0, P)
    np.testing.assert_allclose(free[0], [400.0, 0.0, P.length / 2])
    lead = _leaders(*args, 20, corridor, LineString(mq.line), mq.line, mq.arclength, x, 0.0, P)
    np.testing.assert_allclose(lead[0], [100.0 + 28.0 - P.front_length, 1.5, 0.0], atol=1e-9)


def test_drivable_area_ends_at_the_metric_cache_map_radius():
    # The metric cache keeps map objects within 100 m of the ego centre (x = 1.461 at t = 0). Split the road's
    # roadblock at x = 50 and x = 150: the piece from 150 m on starts 148.5 m away and is not in the drivable map.
    # Driving at 40 m/s the rear axle passes 150 m within 4 s (corners in the far piece): DAC 0. At 25 m/s the front
    # stays short of 150 m, inside the middle piece (which starts 48.5 m away, so it is kept): DAC 1.
    from epdms_fixtures import LANE_W, _rect

    from sim.scene import Area

    scene = straight_road(ego=ego_log(40.0))
    rb = {
        name: Area(name, _rect(x0, x1, -LANE_W / 2, 1.5 * LANE_W), ("L0", "L1"))
        for name, (x0, x1) in {"RB0a": (-100, 50), "RB0m": (50, 150), "RB0b": (150, 300)}.items()
    }
    scene.map.roadblocks = {**rb, "RB1": scene.map.roadblocks["RB1"]}
    for lane in ("L0", "L1"):
        scene.map.lanes[lane].roadblock_id = "RB0m"
    r = score_proposals(scene, np.stack([straight_plan(40.0), straight_plan(25.0)]), stage_one=False)
    assert r.states[0, -1, 0] > 150.0 and r.states[1, -1, 0] + P.front_length < 150.0
    assert r.table[0, DAC] == 0.0 and r.table[1, DAC] == 1.0
