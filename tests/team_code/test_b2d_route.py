"""Bench2Drive near/far route planner and the dense route tracker."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent.types import NavigationCommand
from team_code.config import RouteConfig
from team_code.route import RoutePlanner, RouteTracker


def _straight(n=6, gap=10.0, option=4):
    return np.stack([np.arange(n) * gap, np.zeros(n)], axis=-1), [option] * n


def test_targets_next_point_and_pops_reached_ones():
    pts, opts = _straight()
    rp = RoutePlanner(RouteConfig(), pts, opts)
    t = rp.run_step([0.0, 0.0, 0.0])
    assert t.world_xy.tolist() == [10.0, 0.0]  # point 1 is 10 m away, outside 4 m: nothing popped
    t = rp.run_step([7.0, 0.0, math.pi / 2])  # point 1 within 4 m -> popped; facing +y, (20, 0) is 13 m right
    assert t.world_xy.tolist() == [20.0, 0.0]
    assert t.ego_xy == pytest.approx([0.0, -13.0])
    assert t.command == NavigationCommand.STRAIGHT and t.road_option == 4


def test_keeps_two_points_at_the_end():
    pts, opts = _straight(3)
    rp = RoutePlanner(RouteConfig(), pts, opts)
    t = rp.run_step([19.0, 0.0, 0.0])
    assert t.world_xy.tolist() == [20.0, 0.0] and rp.index == 1 and len(rp) == 2


def test_far_distance_limits_the_search():
    # P3 comes back next to the ego but lies 60 m of path further on: only seen when far_distance >= 60.
    pts = np.array([[0.0, 0.0], [30.0, 0.0], [60.0, 0.0], [31.0, 4.0], [0.0, 4.0]])
    opts = [4, 4, 4, 1, 4]
    ego = [31.0, 1.0, 0.0]
    near_only = RoutePlanner(RouteConfig(4.0, 50.0), pts, opts).run_step(ego)
    assert near_only.world_xy.tolist() == [60.0, 0.0]
    far = RoutePlanner(RouteConfig(4.0, 100.0), pts, opts).run_step(ego)
    assert far.world_xy.tolist() == [0.0, 4.0]


def test_commands_and_validation():
    pts = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    assert RoutePlanner(RouteConfig(), pts, [4, 1, 4]).run_step([0, 0, 0]).command == NavigationCommand.LEFT
    assert RoutePlanner(RouteConfig(), pts, [4, 2, 4]).run_step([0, 0, 0]).command == NavigationCommand.RIGHT
    assert RoutePlanner(RouteConfig(), pts, [4, -1, 4]).run_step([0, 0, 0]).command == NavigationCommand.UNKNOWN
    with pytest.raises(ValueError, match="RoadOption"):
        RoutePlanner(RouteConfig(), pts, [4, 9, 4])
    with pytest.raises(ValueError, match="one RoadOption"):
        RoutePlanner(RouteConfig(), pts, [4, 4])


def test_route_tracker_returns_route_ahead_in_ego_frame():
    pts = np.stack([np.arange(0.0, 100.0), np.zeros(100)], axis=-1)
    tr = RouteTracker(pts, spacing=2.0, num_points=5)
    ahead = tr.update([10.2, 0.5, 0.0])
    assert tr.index == 10
    assert ahead == pytest.approx(np.array([[-0.2, -0.5], [1.8, -0.5], [3.8, -0.5], [5.8, -0.5], [7.8, -0.5]]))
    ahead = tr.update([98.7, 0.0, 0.0])  # beyond the window: progress only moves within 80 points
    assert tr.index == 89  # window = points 10..89
    end = tr.update([98.7, 0.0, 0.0])
    assert tr.index == 99 and end[-1] == pytest.approx([0.3, 0.0])
