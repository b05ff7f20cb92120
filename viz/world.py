"""WorldView from the embedded world (`sim.Scene`): ground truth around the ego, in its rear-axle frame.

The closed-loop world and the demo call `view_from_scene` with the ego's actual pose (which leaves the logged
one as soon as the agent drives) and the frames the agent saw.
"""

from __future__ import annotations

import math

import numpy as np

from agent import geometry
from agent.types import CameraRig, NavigationCommand
from sim.render.mesh import lane_boundaries
from sim.scene import AG_HEADING, AG_X, AG_Y, AgentType, Scene, TrafficLightState
from viz.view import Boxes, Control, WorldView

#: map geometry farther than this from the ego (m) is left out of the view (the BEV shows 64 m across).
REACH_M = 60.0

_KIND = {
    int(AgentType.VEHICLE): "vehicle",
    int(AgentType.PEDESTRIAN): "pedestrian",
    int(AgentType.BICYCLE): "bicycle",
}


def _near(pts: np.ndarray, pose: np.ndarray, reach: float) -> bool:
    return bool(np.min(np.hypot(pts[:, 0] - pose[0], pts[:, 1] - pose[1])) <= reach)


def scene_geometry(scene: Scene, pose: np.ndarray, step: int, reach: float = REACH_M) -> dict:
    """Road polygons, lane boundaries, route and signals near `pose`, in its frame (keys of `WorldView`)."""
    m = scene.map
    local = lambda p: geometry.points_to_local(pose, np.asarray(p, dtype=np.float64)[:, :2])  # noqa: E731
    drivable = [
        local(a.polygon_xy)
        for layer in (m.roadblocks, m.intersections, m.carparks)
        for a in layer.values()
        if _near(a.polygon_xy, pose, reach + 40.0)
    ]
    lanes = [local(line) for line, _ in lane_boundaries(m) if _near(line, pose, reach)]
    route = scene.route.centerline[:, :2]
    route = local(route[np.hypot(route[:, 0] - pose[0], route[:, 1] - pose[1]) <= reach])
    signals = []
    for tl in scene.traffic_lights:
        state = TrafficLightState(int(tl.states[min(step, len(tl.states) - 1)])).name
        for cid in tl.connector_ids:
            line = m.lanes[cid].centerline
            if _near(line, pose, reach):
                signals.append((local(line), state))
    return {"drivable": drivable, "lanes": lanes, "route": route if len(route) >= 2 else None, "signals": signals}


def scene_agents(scene: Scene, pose: np.ndarray, step: int, reach: float = REACH_M) -> Boxes:
    """Ground-truth boxes valid at `step` within `reach` of the ego, in its frame."""
    ag = scene.agents
    if not len(ag):
        return Boxes.empty()
    idx = np.nonzero(ag.valid[:, step])[0]
    st = ag.states[idx, step]
    near = np.hypot(st[:, AG_X] - pose[0], st[:, AG_Y] - pose[1]) <= reach
    idx, st = idx[near], st[near]
    xy = geometry.points_to_local(pose, st[:, [AG_X, AG_Y]])
    heading = geometry.wrap_angle(st[:, AG_HEADING] - pose[2])
    boxes = np.column_stack([xy, heading, ag.sizes[idx, 0], ag.sizes[idx, 1]])
    kinds = tuple(_KIND.get(int(t), "static") for t in ag.types[idx])
    return Boxes(boxes, kinds)


def view_from_scene(
    scene: Scene,
    step: int,
    images: dict[str, np.ndarray],
    rig: CameraRig,
    ego_pose: np.ndarray | None = None,
    speed: float | None = None,
    command: NavigationCommand = NavigationCommand.UNKNOWN,
    control: Control | None = None,
    title: str = "",
    info: dict[str, str] | None = None,
) -> WorldView:
    """A HUD view of `scene` at `step` seen from `ego_pose` (default: the logged ego at that step)."""
    pose = scene.ego_pose(step) if ego_pose is None else np.asarray(ego_pose, dtype=np.float64)[:3]
    if speed is None:
        speed = float(math.hypot(*scene.ego[step, 3:5]))
    ep = scene.ego_params
    return WorldView(
        images=images,
        rig=rig,
        speed=float(speed),
        command=command,
        control=control,
        time_s=float(scene.timestamps[step] - scene.timestamps[0]),
        frame=int(step),
        title=title or f"{scene.scenario} {scene.token}",
        agents=scene_agents(scene, pose, step),
        ego_size=(ep.length, ep.width, ep.rear_axle_to_center),
        info=dict(info or {}),
        **scene_geometry(scene, pose, step),
    )
