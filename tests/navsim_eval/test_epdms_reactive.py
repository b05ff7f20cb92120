"""NAVSIM's reactive IDM traffic (`IDMTrafficConfig(model="navsim")`) on the hand-made scenes of `epdms_fixtures`.

Expected values come from nuPlan's IDM formula and the fixtures' geometry (lane L0: y = 0, x from -100 to 300 m,
speed limit 13.89 m/s; junction approach lane A ends at x = 0), worked out by hand below.
"""

from __future__ import annotations

import numpy as np
import pytest

from navsim_eval.config import IDMTrafficConfig
from navsim_eval.observation import build_observation
from navsim_eval.simulation import S_HEADING, S_VX, S_X, S_Y
from sim.scene import SPEED_LIMIT_50_KMH as LIMIT  # the fixtures' lane speed limit, 13.89 m/s
from sim.scene import AgentType, EgoParams, TrafficLightState
from tests.navsim_eval.epdms_fixtures import agent_track, junction, make_agents, straight_road

V = AgentType.VEHICLE
P = EgoParams()
NAVSIM = IDMTrafficConfig(model="navsim")


def _ego_states(x: np.ndarray, speed: float = 0.0) -> np.ndarray:
    """(1, 41, 11) ego rear-axle states along y = 0 heading +x."""
    st = np.zeros((1, 41, 11))
    st[0, :, S_X] = x
    st[0, :, S_Y] = 0.0
    st[0, :, S_HEADING] = 0.0
    st[0, :, S_VX] = speed
    return st


def _run(scene, ego: np.ndarray):
    from navsim_eval.traffic import idm_reactive

    return idm_reactive(scene, build_observation(scene), ego, P, NAVSIM)


def test_lone_vehicle_steps_with_nuplan_idm_towards_its_lane_end():
    # L0 starts at x = -100 and ends at x = 300: progress 160 m, 240 m to go, gap to the lane end 240 - 2.5 m with
    # rear length 2.5 (half its 5 m). IDM (exponent 4, target = the lane's 13.89 m/s, a 1, b 2, T 1.5, s0 1):
    # s* = 1 + 13 * 1.5 + 13 * 13 / (2 sqrt(2)), a = 1 - (13 / 13.89)^4 - (s* / 237.5)^2; Euler with the old speed.
    scene = straight_road([("car", V, (5.0, 2.0), agent_track(60.0, 0.0, 13.0))])
    obs = _run(scene, _ego_states(np.zeros(41)))  # the ego stands behind it, out of its way
    s_star = 1.0 + 13.0 * 1.5 + 13.0 * 13.0 / (2.0 * np.sqrt(2.0))
    acc = 1.0 - (13.0 / LIMIT) ** 4 - (s_star / 237.5) ** 2
    assert obs.states[0, 0, 1, 0] == pytest.approx(60.0 + 0.1 * 13.0, abs=1e-9)
    assert obs.states[0, 0, 1, 3] == pytest.approx(13.0 + 0.1 * acc, abs=1e-9)
    # the lane end 237 m ahead already takes 0.11 m/s^2 off the free-road acceleration 1 - (13 / 13.89)^4
    assert obs.states[0, 0, 1, 3] < 13.0 + 0.1 * (1.0 - (13.0 / LIMIT) ** 4) - 0.01


def test_vehicle_is_snapped_onto_its_lane_centreline():
    # centre 1 m left of L0's centreline (inside L0, |y| < 1.75): snapped to y = 0 (1 m <= the 3 m threshold)
    scene = straight_road([("car", V, (5.0, 2.0), agent_track(40.0, 1.0, 8.0))])
    obs = _run(scene, _ego_states(np.zeros(41)))
    assert obs.states[0, 0, 0, 1] == pytest.approx(1.0)  # frame 0 is the log
    np.testing.assert_allclose(obs.states[0, 0, 1:, 1], 0.0, atol=1e-9)
    assert obs.present[0, 0].all()


def test_off_lane_vehicles_parked_stay_moving_vanish():
    # y = -5 lies outside every lane and roadblock (RB0 spans y >= -1.75): no segment, so not IDM-driven. The
    # stationary one is added back frozen at its t = 0 state; the moving one exists only in frame 0.
    scene = straight_road(
        [
            ("parked", V, (5.0, 2.0), agent_track(30.0, -5.0, 0.0)),
            ("moving", V, (5.0, 2.0), agent_track(60.0, -5.0, 5.0)),
        ]
    )
    obs = _run(scene, _ego_states(np.full(41, -50.0)))
    assert obs.present[0, 0].all() and obs.present[0, 1, 0] and not obs.present[0, 1, 1:].any()
    np.testing.assert_allclose(obs.states[0, 0, :, :2], np.tile([30.0, -5.0], (41, 1)))


def test_vehicle_beyond_the_radius_is_dropped():
    # the car starts 120 m from the ego rear axle (x = -50 -> 70), more than the 100 m radius: dropped at step 1
    scene = straight_road([("far", V, (5.0, 2.0), agent_track(70.0, 0.0, 5.0))])
    obs = _run(scene, _ego_states(np.full(41, -50.0)))
    assert obs.present[0, 0, 0] and not obs.present[0, 0, 1:].any()


@pytest.mark.parametrize("state", [TrafficLightState.RED, TrafficLightState.GREEN])
def test_vehicle_stops_at_its_lane_end_whatever_the_light(state):
    # NAVSIM's metric cache has no traffic-light status, so the route is never extended past the approach lane A
    # (ending at x = 0) and no stop line is inserted: on red and green alike the 4.5 m car from x = -30 at 8 m/s
    # brakes for the lane end and its front (centre + 2.25) never passes x = 0.
    ego = np.zeros((61, 8))
    ego[:, 0] = -60.0
    scene = junction(state, ego=ego)
    scene.agents = make_agents([("car", V, (4.5, 2.0), agent_track(-30.0, 0.0, 8.0))])
    obs = _run(scene, _ego_states(np.full(41, -60.0)))
    front = obs.states[0, 0, :, 0] + 2.25
    assert front.max() <= 0.0 and obs.states[0, 0, -1, 0] > -30.0 + 10.0


def test_follower_brakes_for_the_ego_box_centred_on_the_rear_axle():
    # the ego stands with its rear axle at x = 20 (nuPlan's box there spans 20 +- length/2, rear at 17.41); a car at
    # x = -40 doing 10 m/s behind it must slow down, more than the same car with the ego behind it does
    car = [("car", V, (5.0, 2.0), agent_track(-40.0, 0.0, 10.0))]
    with_ego = _run(straight_road(car), _ego_states(np.full(41, 20.0)))
    free = _run(straight_road(car), _ego_states(np.full(41, -50.0)))
    assert with_ego.states[0, 0, -1, 3] < free.states[0, 0, -1, 3] - 1.0
    assert with_ego.states[0, 0, :, 0].max() + 2.5 < 20.0 - P.length / 2  # never reaches the ego box


def test_model_name_is_validated():
    with pytest.raises(ValueError, match="model"):
        IDMTrafficConfig(model="lanes")
