"""Edge-case variants of generated scenes for the official cross-check (test helper, no devkit imports)."""

from __future__ import annotations

import dataclasses

import numpy as np

from sim.scene import Agents, AgentType, MapData, Route, Scene


def rotate_scene(scene: Scene, theta: float, shift: tuple[float, float] = (1234.5, -987.6)) -> Scene:
    """The same scene rigidly rotated by `theta` and shifted (every map layer, track, light and the ego log)."""
    c, s = np.cos(theta), np.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    t = np.asarray(shift, dtype=np.float64)

    def pts(p: np.ndarray) -> np.ndarray:
        return np.asarray(p, dtype=np.float64) @ rot.T + t

    def wrap(h: np.ndarray) -> np.ndarray:
        return np.arctan2(np.sin(h + theta), np.cos(h + theta))

    m = scene.map
    lanes = {
        k: dataclasses.replace(
            lane,
            centerline=pts(lane.centerline),
            left_boundary=pts(lane.left_boundary),
            right_boundary=pts(lane.right_boundary),
        )
        for k, lane in m.lanes.items()
    }

    def areas(layer: dict) -> dict:
        return {k: dataclasses.replace(a, polygon_xy=pts(a.polygon_xy)) for k, a in layer.items()}

    new_map = MapData(
        lanes,
        areas(m.roadblocks),
        areas(m.intersections),
        areas(m.crosswalks),
        areas(m.carparks),
        areas(m.walkways),
        areas(m.stop_lines),
    )
    st = scene.agents.states.copy()
    st[..., :2] = pts(st[..., :2])
    st[..., 2] = wrap(st[..., 2])
    st[..., 3:5] = st[..., 3:5] @ rot.T
    ag = scene.agents
    agents = Agents(ag.ids, ag.types, ag.sizes, st, ag.valid)
    ego = scene.ego.copy()
    ego[:, :2] = pts(ego[:, :2])
    ego[:, 2] = wrap(ego[:, 2])
    line = scene.route.centerline.copy()
    line[:, :2] = pts(line[:, :2])
    line[:, 2] = wrap(line[:, 2])
    lights = tuple(
        dataclasses.replace(tl, position=np.r_[pts(tl.position[:2]), tl.position[2]], facing=float(wrap(tl.facing)))
        for tl in scene.traffic_lights
    )
    return dataclasses.replace(
        scene,
        map=new_map,
        agents=agents,
        ego=ego,
        route=Route(scene.route.lane_ids, line),
        traffic_lights=lights,
        token=f"{scene.token}_rot",
    )


def flicker_tracks(scene: Scene, seed: int = 0) -> Scene:
    """Tracks that appear late, vanish early or have a gap inside the 4 s horizon."""
    rng = np.random.default_rng(seed)
    valid = scene.agents.valid.copy()
    ci = scene.current_index
    for a in range(len(valid)):
        kind = int(rng.integers(4))
        if kind == 0:
            valid[a, ci : ci + int(rng.integers(1, 40))] = False
        elif kind == 1:
            valid[a, ci + int(rng.integers(1, 40)) :] = False
        elif kind == 2:
            valid[a, ci + 10 : ci + 25] = False
    ag = scene.agents
    agents = Agents(ag.ids, ag.types, ag.sizes, ag.states, valid)
    return dataclasses.replace(scene, agents=agents, token=f"{scene.token}_flicker")


def add_overlapping_objects(scene: Scene) -> Scene:
    """A cone under the ego's front bumper and a car over its left side at t = 0, and a pedestrian 8 m ahead."""
    ag = scene.agents
    e = scene.ego[scene.current_index]
    c, s = np.cos(e[2]), np.sin(e[2])
    extra = np.zeros((3, scene.num_steps, 5))
    for i, (dx, dy, dh) in enumerate([(3.8, 0.5, 0.0), (1.0, 1.9, 0.3), (8.0, 0.0, 1.57)]):
        extra[i, :, 0] = e[0] + dx * c - dy * s
        extra[i, :, 1] = e[1] + dx * s + dy * c
        extra[i, :, 2] = e[2] + dh
    agents = Agents(
        ag.ids + ("x_cone", "x_car", "x_ped"),
        np.r_[ag.types, [AgentType.TRAFFIC_CONE, AgentType.VEHICLE, AgentType.PEDESTRIAN]],
        np.r_[ag.sizes, [[0.5, 0.5, 1.0], [4.5, 1.9, 1.6], [0.6, 0.6, 1.8]]],
        np.concatenate([ag.states, extra]),
        np.concatenate([ag.valid, np.ones((3, scene.num_steps), dtype=bool)]),
    )
    return dataclasses.replace(scene, agents=agents, token=f"{scene.token}_overlap")


def stopped_ego(scene: Scene) -> Scene:
    """The logged ego standing still for the whole scene (at its pose 1.5 s before the current frame)."""
    ego = scene.ego.copy()
    ego[:, :3] = ego[scene.current_index - 15, :3]
    ego[:, 3:] = 0.0
    return dataclasses.replace(scene, ego=ego, token=f"{scene.token}_stopped")
