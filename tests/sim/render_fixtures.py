"""Tiny hand-built scenes for the renderer tests: a straight two-lane road along +x with boxes placed by hand."""

from __future__ import annotations

import numpy as np

from sim.scene import (
    AGENT_DIM,
    EGO_DIM,
    Agents,
    AgentType,
    Area,
    Lane,
    MapData,
    MarkingType,
    Route,
    Scene,
    TrafficLight,
)

LANE_WIDTH = 3.5
NUM_STEPS = 11
CURRENT = 5
#: The ego's rear axle sits at the world origin, heading +x, in the right lane (y = -1.75) unless told otherwise.
EGO_Y = -LANE_WIDTH / 2


def _rect(x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def two_lane_map(x0: float = -120.0, x1: float = 220.0, crosswalk_x: float | None = None) -> MapData:
    """Two lanes travelling +x (right lane centre y = -1.75, left y = +1.75), sidewalks either side."""
    xs = np.linspace(x0, x1, 35)

    def line(y: float) -> np.ndarray:
        return np.stack([xs, np.full_like(xs, y)], axis=1)

    right = Lane(
        "right", line(-1.75), line(0.0), line(-3.5), "rb", left_neighbor="left",
        left_marking=MarkingType.DASHED, right_marking=MarkingType.SOLID,
    )  # fmt: skip
    left = Lane(
        "left", line(1.75), line(3.5), line(0.0), "rb", right_neighbor="right",
        left_marking=MarkingType.DOUBLE_SOLID, right_marking=MarkingType.DASHED,
    )  # fmt: skip
    roadblocks = {"rb": Area("rb", _rect(x0, x1, -3.5, 3.5), ("right", "left"))}
    walkways = {
        "w_left": Area("w_left", _rect(x0, x1, 3.5, 6.0)),
        "w_right": Area("w_right", _rect(x0, x1, -6.0, -3.5)),
    }
    crosswalks = {}
    stop_lines = {}
    if crosswalk_x is not None:
        crosswalks["cw"] = Area("cw", _rect(crosswalk_x, crosswalk_x + 4.0, -3.5, 3.5))
        stop_lines["sl"] = Area("sl", _rect(crosswalk_x - 1.5, crosswalk_x - 1.0, -3.5, 0.0))
    return MapData(
        lanes={"right": right, "left": left},
        roadblocks=roadblocks,
        walkways=walkways,
        crosswalks=crosswalks,
        stop_lines=stop_lines,
    )


def make_scene(
    boxes: list[tuple[str, int, float, float, float, float, float, float]] = (),
    ego_xy: tuple[float, float] = (0.0, EGO_Y),
    crosswalk_x: float | None = None,
    lights: list[TrafficLight] = (),
) -> Scene:
    """A static scene; `boxes` are (id, AgentType, x, y, heading, length, width, height), constant over time."""
    t = NUM_STEPS
    n = len(boxes)
    states = np.zeros((n, t, AGENT_DIM))
    sizes = np.zeros((n, 3))
    types = np.zeros(n, dtype=np.int8)
    for i, (_id, typ, x, y, h, length, width, height) in enumerate(boxes):
        states[i, :, :3] = (x, y, h)
        sizes[i] = (length, width, height)
        types[i] = int(typ)
    agents = Agents(tuple(b[0] for b in boxes), types, sizes, states, np.ones((n, t), dtype=bool))
    ego = np.zeros((t, EGO_DIM))
    ego[:, 0], ego[:, 1] = ego_xy
    route_x = np.linspace(-120.0, 220.0, 50)
    route = Route(("right",), np.stack([route_x, np.full_like(route_x, EGO_Y), np.zeros_like(route_x)], axis=1))
    return Scene(
        token="render-fixture",
        scenario="fixture",
        seed=0,
        timestamps=np.arange(t) * 0.1,
        current_index=CURRENT,
        map=two_lane_map(crosswalk_x=crosswalk_x),
        agents=agents,
        traffic_lights=tuple(lights),
        ego=ego,
        route=route,
    )


def showcase_scene() -> Scene:
    """A busier scene for looking at pictures: cars, a cyclist, pedestrians, cones, a barrier and a red light."""
    v, p, b = AgentType.VEHICLE, AgentType.PEDESTRIAN, AgentType.BICYCLE
    boxes = [
        ("car_ahead", v, 14.0, -1.75, 0.0, 4.6, 1.9, 1.5),
        ("car_left", v, 26.0, 1.75, 0.0, 4.8, 2.0, 1.6),
        ("van_far", v, 55.0, -1.9, 0.05, 5.5, 2.1, 2.3),
        ("car_behind", v, -12.0, -1.75, 0.0, 4.5, 1.9, 1.45),
        ("car_back_left", v, -7.0, 1.75, 0.0, 4.4, 1.85, 1.5),
        ("ped_1", p, 38.0, 4.5, -1.57, 0.6, 0.6, 1.75),
        ("ped_2", p, 41.0, 2.0, -1.57, 0.6, 0.6, 1.7),
        ("ped_3", p, 8.0, -4.6, 0.0, 0.6, 0.6, 1.8),
        ("bike", b, 20.0, -3.0, 0.0, 1.8, 0.6, 1.7),
        ("cone_1", AgentType.TRAFFIC_CONE, 30.0, -0.3, 0.0, 0.4, 0.4, 0.7),
        ("cone_2", AgentType.TRAFFIC_CONE, 33.0, -0.5, 0.0, 0.4, 0.4, 0.7),
        ("cone_3", AgentType.TRAFFIC_CONE, 36.0, -0.7, 0.0, 0.4, 0.4, 0.7),
        ("barrier", AgentType.BARRIER, 6.0, -5.0, 0.0, 2.0, 0.5, 1.0),
        ("sign", AgentType.CZONE_SIGN, 27.0, -4.0, 3.14, 0.6, 0.6, 1.4),
        ("crate", AgentType.GENERIC_OBJECT, -4.0, 4.8, 0.3, 1.0, 1.0, 0.8),
    ]
    light = TrafficLight("tl", ("right",), np.full(NUM_STEPS, 2), position=np.array([44.0, -4.2, 4.5]), facing=np.pi)
    return make_scene(boxes, crosswalk_x=40.0, lights=[light])
