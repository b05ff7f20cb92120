"""WorldView from an embedded-world scene: ground truth in the ego frame, as the BEV panel draws it."""

from __future__ import annotations

import math

import numpy as np

from agent.types import bench2drive_rig
from sim.scenarios import generate_scene
from sim.scene import AG_HEADING, AG_X, AG_Y
from viz.world import REACH_M, view_from_scene


def test_scene_view_is_ground_truth_in_the_ego_frame():
    scene = generate_scene("static_obstacle", 3)
    step = scene.current_index
    rig = bench2drive_rig(32, 18)
    images = {n: np.zeros((18, 32, 3), np.uint8) for n in rig.names}
    view = view_from_scene(scene, step, images, rig)
    x0, y0, h0 = scene.ego_pose(step)
    ag = scene.agents
    near = [
        i for i in range(len(ag))
        if ag.valid[i, step] and math.hypot(ag.states[i, step, AG_X] - x0, ag.states[i, step, AG_Y] - y0) <= REACH_M
    ]  # fmt: skip
    assert len(view.agents) == len(near) > 0
    # rotate by hand: ego-frame x = forward component, y = left component
    i = near[0]
    dx, dy = ag.states[i, step, AG_X] - x0, ag.states[i, step, AG_Y] - y0
    expected = (dx * math.cos(h0) + dy * math.sin(h0), -dx * math.sin(h0) + dy * math.cos(h0))
    np.testing.assert_allclose(view.agents.boxes[0, :2], expected, atol=1e-9)
    dh = math.remainder(ag.states[i, step, AG_HEADING] - h0, 2 * math.pi)
    assert math.isclose(view.agents.boxes[0, 2], dh, abs_tol=1e-9)
    names = {0: "vehicle", 1: "pedestrian", 2: "bicycle"}  # AgentType codes; cones, barriers, objects are "static"
    assert view.agents.kinds == tuple(names.get(int(ag.types[i]), "static") for i in near)
    # the route starts under the ego and the ego stands on drivable road
    assert view.route is not None and np.min(np.hypot(*view.route.T)) < 2.0
    assert view.drivable and view.lanes
    assert view.speed == math.hypot(*scene.ego[step, 3:5]) and view.frame == step
