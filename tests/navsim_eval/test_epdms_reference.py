"""PDM-Closed reference pieces that need no devkit: the PDM path, nuPlan's proximity square, the Dijkstra centreline,
the planner's forecast and the generator's leader row. Expected values are worked out by hand in the comments."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))
from epdms_fixtures import LANE_W, _lane, _rect, agent_track, straight_road

from navsim_eval import pdm_closed as pc
from navsim_eval.config import PDMClosedConfig, ScorerConfig
from navsim_eval.mapquery import DiscretePath, MapQueries, dijkstra_lanes, proximal
from navsim_eval.observation import build_observation
from navsim_eval.simulation import initial_state_from_scene
from sim.scene import AgentType, Area, EgoParams, MapData

P = EgoParams()


def test_discrete_path_interpolates_like_interp1d_across_a_shared_vertex():
    # An L: (0,0) -> (10,0) heading 0, then the next lane starts at the same point heading +y: progress 0, 10, 10, 20.
    path = DiscretePath.of([[0, 0, 0], [10, 0, 0], [10, 0, np.pi / 2], [10, 10, np.pi / 2]])
    np.testing.assert_allclose(path.progress, [0, 10, 10, 20])
    got = path.interpolate(np.array([5.0, 10.0, 15.0, -3.0, 25.0]))
    np.testing.assert_allclose(got[0], [5, 0, 0], atol=1e-12)
    np.testing.assert_allclose(got[1], [10, 0, 0], atol=1e-12)  # left search: the first lane's end
    np.testing.assert_allclose(got[2], [10, 5, np.pi / 2], atol=1e-12)
    np.testing.assert_allclose(got[3], [1e-5, 0, 0], atol=1e-12)  # clipped to 1e-5
    np.testing.assert_allclose(got[4], [10, 10, np.pi / 2], atol=1e-12)  # clipped to the length
    # parallel_discrete_path: 1 m to the left of each pose's heading
    np.testing.assert_allclose(path.offset(1.0).poses[:, :2], [[0, 1], [10, 1], [9, 0], [9, 10]], atol=1e-12)
    assert path.project(np.array([[4.0, -2.0], [12.0, 7.0]])).tolist() == pytest.approx([4.0, 17.0])


def test_proximity_is_nuplans_square_not_a_disc():
    # The square [-100, 100]^2: a box whose nearest corner (95, 95) is 134 m away still meets it; one from x = 120 not.
    polys = [shapely.Polygon(_rect(95, 105, 95, 105)), shapely.Polygon(_rect(120, 130, 0, 10))]
    polys.append(shapely.Polygon(_rect(99, 110, -5, 5)))
    assert proximal(polys, np.zeros(2), 100.0).tolist() == [True, False, True]
    assert proximal(polys, np.zeros(2), None).tolist() == [True, True, True]


def test_drivable_map_keeps_areas_meeting_the_square_around_the_ego_centre():
    # Ego box centre at x = 1.461 (rear axle at 0): car park "near" (y from 95) meets the square, "far" (from 105) not.
    scene = straight_road()
    scene.map.carparks = {
        "near": Area("near", _rect(90, 100, 95, 105)),
        "far": Area("far", _rect(90, 100, 105, 115)),
    }
    pts = np.array([[95.0, 100.0], [95.0, 110.0]])
    assert MapQueries(scene).in_drivable(pts).tolist() == [True, False]
    assert MapQueries(scene, None).in_drivable(pts).tolist() == [True, True]
    assert ScorerConfig().drivable_map_radius == 100.0
    with pytest.raises(ValueError, match="drivable_map_radius"):
        ScorerConfig(drivable_map_radius=-1.0)


def _graph(lengths: dict[str, float]) -> SimpleNamespace:
    # A (RB0) -> B (RB1) -> D (RB2) and A -> C (RB1) -> E (RB2); lanes along x with the given lengths
    rb = {i: Area(i, _rect(0, 1, 0, 1)) for i in ("RB0", "RB1", "RB2")}
    block = {"A": "RB0", "B": "RB1", "C": "RB1", "D": "RB2", "E": "RB2"}
    succ = {"A": ("B", "C"), "B": ("D",), "C": ("E",)}
    lanes = {k: _lane(k, 0.0, 0, lengths[k], block[k], successors=succ.get(k, ())) for k in block}
    return SimpleNamespace(map=MapData(lanes, rb))


def test_dijkstra_follows_the_cheapest_successor_chain():
    # Costs: start 1, then lane lengths. B: 1 + 50 = 51, C: 1 + 10 = 11; E: 11 + 10 = 21 < D: 51 + 10 = 61.
    scene = _graph({"A": 10, "B": 50, "C": 10, "D": 10, "E": 10})
    assert dijkstra_lanes(scene, "A", "RB2", list("ABCDE")) == ["A", "C", "E"]
    assert dijkstra_lanes(scene, "A", "RB2", list("ABDE")) == ["A", "B", "D"]  # C is not on the route
    assert dijkstra_lanes(scene, "A", "RB0", list("ABCDE")) == ["A"]
    # unreachable target: the cheapest of the deepest expanded lanes (depth 3: E at 21, D at 61)
    assert dijkstra_lanes(scene, "A", "RB9", list("ABCDE")) == ["A", "C", "E"]


def test_pdm_centerline_stays_in_the_starting_lane():
    # The route lists L1 (so RB0 with L0 and L1 is on route) and its centreline runs along L1 (y = 3.5), but the
    # rear axle is in L0: PDM's centreline is L0's centre line (y = 0) from x = -100 to 300.
    from sim.scene import Route

    scene = straight_road()
    xs = np.arange(-100.0, 300.0 + 1e-9, 1.0)
    scene.route = Route(("L1",), np.stack([xs, np.full_like(xs, LANE_W), np.zeros_like(xs)], axis=1))
    mq = MapQueries(scene)
    assert mq.starting_lane == "L0"
    np.testing.assert_allclose(mq.centerline.poses[:, 1], 0.0)
    assert mq.centerline.length == pytest.approx(400.0)
    s, d = mq.project(np.array([[50.0, 2.0]]))
    assert s[0] == pytest.approx(150.0) and d[0] == pytest.approx(2.0)


def test_generator_leader_row_carries_over_between_proposals():
    # Path y = 0, x 0..200. A car box x 50..54 (5 m/s, heading 0) and a red connector x 30..40, both in the corridor.
    # p0 at x = 36: the red centroid (35) is behind, the car ahead at 50 - (36 + 4.049) = 9.951 -> [45.951, 5, 0].
    # p1 at x = 60: nothing ahead -> progress 200, rear length 2.588, speed 5 left over from p0.
    # p2 at x = 0: the red box is nearest, 30 - 4.049 = 25.951 ahead; a red light sets no speed -> 5 and 2.588 remain.
    path = DiscretePath.of(np.column_stack([np.linspace(0, 200, 201), np.zeros(201), np.zeros(201)]))
    corridor = shapely.buffer(path.linestring(), P.width / 2, cap_style="square")
    polys = np.array([shapely.Polygon(_rect(50, 54, -1, 1)), shapely.Polygon(_rect(30, 40, -1.75, 1.75))])
    progress = np.array([36.0, 60.0, 0.0])
    poses = np.column_stack([progress, np.zeros(3), np.zeros(3)])
    out = pc._nearest_ahead(
        polys, np.array([True, False]), np.array([False, True]), np.array([5.0, 0.0]), np.zeros(2), path,
        corridor, progress, poses, P,
    )  # fmt: skip
    half = (P.front_length + P.rear_length) / 2
    np.testing.assert_allclose(out, [[45.951, 5, 0], [200, 5, half], [25.951, 5, half]], atol=1e-9)


def test_planner_forecast_moves_road_users_along_their_heading():
    # t = 0: "fwd" at x = 30 heading 0 with velocity (0.5, 1.5) (72 deg off its heading: forward) moves along +x at
    # |v| = sqrt(2.5); "back" at x = 40 with velocity (-0.5, 1.5) (108 deg off: reversing) moves along -x. Positions
    # update every 2nd step: step 3 holds step 2 (0.2 s). A cone stands; "far" (148.5 m from the ego centre at
    # x = 1.461) and "hit" (overlapping the ego) are dropped. Static objects are listed first.
    V, C = AgentType.VEHICLE, AgentType.TRAFFIC_CONE
    agents = [
        ("fwd", V, (4.0, 2.0), agent_track(30.0, 0.0, 0.5, vy=1.5)),
        ("back", V, (4.0, 2.0), agent_track(40.0, 0.0, -0.5, vy=1.5)),
        ("cone", C, (0.5, 0.5), agent_track(20.0, 3.0, 0.0)),
        ("far", V, (4.0, 2.0), agent_track(150.0, 0.0, 0.0)),
        ("hit", V, (4.0, 2.0), agent_track(2.0, 0.0, 0.0)),
    ]
    scene = straight_road(agents)
    init = initial_state_from_scene(scene)
    po = pc.planner_observation(build_observation(scene), scene, init, PDMClosedConfig(), 0.1)
    assert po.obs.ids == ("cone", "fwd", "back")
    v = math.sqrt(2.5)
    x = po.obs.states[:, :, 0]
    np.testing.assert_allclose(x[1, [0, 1, 2, 3, 4]], 30 + v * np.array([0, 0, 0.2, 0.2, 0.4]), atol=1e-9)
    np.testing.assert_allclose(x[2, [2, 3, 4]], 40 - v * np.array([0.2, 0.2, 0.4]), atol=1e-9)
    np.testing.assert_allclose(po.obs.states[:, :, 1], [[3.0] * 41, [0.0] * 41, [0.0] * 41], atol=1e-9)
    np.testing.assert_allclose(x[0], 20.0)


def test_pdm_closed_config_rejects_bad_planner_fields():
    assert PDMClosedConfig().idm_exponent == 10.0 and PDMClosedConfig().map_radius == 100.0
    with pytest.raises(ValueError, match="observation_sample_res"):
        PDMClosedConfig(observation_sample_res=0)
    with pytest.raises(ValueError, match="map_radius"):
        PDMClosedConfig(map_radius=0.0)
