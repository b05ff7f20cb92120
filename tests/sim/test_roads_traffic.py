"""Map builders and traffic primitives: lane topology and geometry, signal plans, IDM following, paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from sim import roads
from sim.scene import TrafficLightState
from sim.traffic import Committed, Follower, SignalPlan, build_path, four_way_plan, simulate_followers

MAPS = {
    "straight": lambda: roads.straight_road(200.0, 2, 2, carpark=True, crosswalk_at=80.0),
    "curve": lambda: roads.curved_road(100.0, math.pi / 2),
    "cross": roads.four_way_intersection,
    "t": roads.t_junction,
    "ramp": roads.on_ramp,
}


@pytest.mark.parametrize("name", sorted(MAPS))
def test_lane_topology_is_continuous_and_drivable(name):
    m = MAPS[name]().map
    for lane in m.lanes.values():
        for succ in lane.successors:
            gap = np.hypot(*(m.lanes[succ].centerline[0] - lane.centerline[-1]))
            assert gap < 1e-6, f"{lane.id} -> {succ} leaves a {gap:.3f} m gap"
            assert lane.id in m.lanes[succ].predecessors
        # the centreline lies inside the drivable area, the lane is about 3.5 m wide
        assert m.in_drivable_area(lane.centerline).all(), lane.id
        width = np.hypot(*(lane.left_boundary - lane.right_boundary).T)
        np.testing.assert_allclose(width, roads.LANE_WIDTH, atol=0.05)
        if lane.left_neighbor:
            # the left neighbour runs one lane width to the left, in the same direction
            d = m.lanes[lane.left_neighbor].centerline[0] - lane.centerline[0]
            h = lane.headings[0]
            assert abs(-d[0] * math.sin(h) + d[1] * math.cos(h) - roads.LANE_WIDTH) < 0.05


def test_four_way_intersection_layout():
    rm = roads.four_way_intersection(lanes_per_side=2)
    m = rm.map
    # 4 arms x (2 straight + 1 left + 1 right) connectors
    conns = [lane for lane in m.lanes.values() if lane.is_connector]
    assert len(conns) == 16
    assert all(c.traffic_light_id in rm.light_groups for c in conns)
    assert len(m.stop_lines) == 4 and len(m.crosswalks) == 4 and len(m.intersections) == 1
    # a right turn from the east arm (travelling west) heads north afterwards: heading +pi/2
    right = rm.connectors[(0, 1)][0]
    c = m.lanes[right].centerline
    assert rm.movements[(0, 1)] == "right"
    assert abs(math.atan2(*(c[-1] - c[-2])[::-1]) - math.pi / 2) < 0.05
    assert abs(abs(math.atan2(*(c[1] - c[0])[::-1])) - math.pi) < 0.05
    # connectors lie inside the junction box
    assert shapely.contains_xy(m.intersections["junction"].polygon.buffer(1e-6), c[:, 0], c[:, 1]).all()


def test_t_junction_has_stop_line_only_on_the_stem():
    rm = roads.t_junction()
    assert [a.stop_line is not None for a in rm.arms] == [False, False, True]
    assert not any(lane.traffic_light_id for lane in rm.map.lanes.values())


def test_invalid_map_parameters_raise():
    with pytest.raises(ValueError):
        roads.straight_road(20.0)
    with pytest.raises(ValueError):
        roads.straight_road(n_fwd=0)
    with pytest.raises(ValueError):
        roads.curved_road(radius=5.0)
    with pytest.raises(ValueError):
        roads.junction(lanes_per_side=7)
    with pytest.raises(ValueError):
        roads.straight_road(100.0, crosswalk_at=500.0)


def test_signal_plan_cycles_green_yellow_red_without_conflicts():
    plan = four_way_plan(green_s=10.0)
    t = np.arange(0, 2 * plan.cycle_s, 0.1)
    s0 = plan.states("tl0_main", t)
    s1 = plan.states("tl1_main", t)
    # hand-derived: phase 0 is green for 10 s, yellow for 3 s, then red (1 s all-red plus three other phases)
    assert plan.cycle_s == pytest.approx(4 * 14.0)
    assert s0[0] == TrafficLightState.GREEN and s0[int(10.5 / 0.1)] == TrafficLightState.YELLOW
    assert s0[int(13.5 / 0.1)] == TrafficLightState.RED
    assert s1[int(28.5 / 0.1)] == TrafficLightState.GREEN
    assert not np.any((s0 != TrafficLightState.RED) & (s1 != TrafficLightState.RED))
    for a, b in zip(s0[:-1], s0[1:]):
        assert (a, b) != (TrafficLightState.GREEN, TrafficLightState.RED)
    with pytest.raises(ValueError):
        SignalPlan(())


def test_build_path_is_dense_and_rejects_broken_chains():
    rm = roads.four_way_intersection()
    conn = rm.connectors[(0, 2)][0]
    lane_in = rm.map.lanes[conn].predecessors[0]
    lane_out = rm.map.lanes[conn].successors[0]
    p = build_path(rm.map.lanes, [lane_in, conn, lane_out])
    assert np.diff(p.s).max() <= 0.5 + 1e-9
    total = sum(rm.map.lanes[x].length for x in (lane_in, conn, lane_out))
    assert abs(p.length - total) < 0.5
    with pytest.raises(ValueError, match="does not follow"):
        build_path(rm.map.lanes, [lane_out, lane_in])


def test_idm_follower_stops_behind_a_standing_car():
    rm = roads.straight_road(300.0, 1, 0)
    path = build_path(rm.map.lanes, ["main_f0"])
    f = Follower(path, s0=10.0, v0=12.0, front=2.3, rear=2.3, width=1.9)
    steps = 300
    # a 4.6 m car standing still with its centre at s = 120 (lane along +x starting at x = 0, y = -1.75)
    obstacle = Committed(
        np.tile([[[120.0, -1.75]]], (1, steps, 1)),
        np.zeros((1, steps)),
        np.zeros((1, steps)),
        np.array([4.6]),
        np.array([1.9]),
        np.ones((1, steps), bool),
    )
    s, v, a = simulate_followers([f], steps, 0.1, obstacle)
    front = s[0] + 2.3
    rear_of_obstacle = 120.0 - 2.3
    assert front.max() < rear_of_obstacle  # never touches it
    assert rear_of_obstacle - front[-1] < 6.0  # and closes up to about the minimum gap
    assert v[0, -1] < 0.05
    assert a.min() > -4.1 and np.abs(np.diff(a[0]) / 0.1).max() < 8.37


def test_first_entry_s_finds_a_stop_line_whose_edges_lie_on_the_sample_grid():
    """A 0.5 m deep stop line with both edges exactly on the 0.5 m path samples contains no sample strictly; the
    entry must still be found, at the near edge (the red-light stop once vanished this way)."""
    from sim.traffic import Path, first_entry_s

    n = 201
    ys = np.linspace(-50.0, 50.0, n)
    path = Path(
        lane_ids=("a",),
        lane_start={"a": 0.0},
        lane_end={"a": 100.0},
        xy=np.stack([np.full(n, 1.75), ys], axis=1),
        s=ys + 50.0,
        heading=np.full(n, math.pi / 2),
        kappa=np.zeros(n),
        speed_limit=np.full(n, 10.0),
    )
    line = shapely.Polygon([(0.0, -19.5), (7.0, -19.5), (7.0, -19.0), (0.0, -19.0)])
    assert first_entry_s(path, line) == pytest.approx(30.5)  # -19.5 is 30.5 m from the start at -50
    assert first_entry_s(path, shapely.Polygon([(5, 0), (6, 0), (6, 1), (5, 1)])) is None
