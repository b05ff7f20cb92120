"""Colours of the camera renderer and the BEV semantic classes.

The BEV classes are the segmentation label set of the model's BEV head. There are exactly seven, ordered so that a
later class is painted over an earlier one (a car on a crosswalk is labelled car):

0 background, 1 drivable area (roadblocks, intersections, car parks), 2 lane marking (painted lane dividers and stop
lines), 3 crosswalk, 4 vehicle, 5 vulnerable road user (pedestrian, bicycle), 6 static obstacle (cone, barrier,
construction sign, generic object).
"""

from __future__ import annotations

import numpy as np

from sim.scene import AgentType, TrafficLightState

BEV_CLASSES: tuple[str, ...] = (
    "background",
    "drivable_area",
    "lane_marking",
    "crosswalk",
    "vehicle",
    "pedestrian_bicycle",
    "static_obstacle",
)
BEV_BACKGROUND, BEV_DRIVABLE, BEV_MARKING, BEV_CROSSWALK, BEV_VEHICLE, BEV_VRU, BEV_STATIC = range(len(BEV_CLASSES))

#: Agent type -> BEV class.
AGENT_BEV_CLASS: dict[int, int] = {
    int(AgentType.VEHICLE): BEV_VEHICLE,
    int(AgentType.PEDESTRIAN): BEV_VRU,
    int(AgentType.BICYCLE): BEV_VRU,
    int(AgentType.TRAFFIC_CONE): BEV_STATIC,
    int(AgentType.BARRIER): BEV_STATIC,
    int(AgentType.CZONE_SIGN): BEV_STATIC,
    int(AgentType.GENERIC_OBJECT): BEV_STATIC,
}

#: RGB per BEV class for pictures (index = class id).
BEV_CLASS_RGB = np.array(
    [
        (38, 41, 46),  # background
        (92, 96, 104),  # drivable area
        (235, 235, 225),  # lane marking
        (230, 190, 60),  # crosswalk
        (60, 130, 235),  # vehicle
        (235, 80, 80),  # pedestrian / bicycle
        (245, 140, 30),  # static obstacle
    ],
    dtype=np.uint8,
)

# ---- camera renderer ----
SKY_ZENITH = np.array([78.0, 128.0, 196.0])
SKY_HORIZON = np.array([196.0, 214.0, 230.0])
HAZE = np.array([178.0, 186.0, 192.0])
TERRAIN = np.array([104.0, 112.0, 84.0])
ASPHALT = (86, 88, 92)
SIDEWALK = (158, 156, 150)
MARKING_WHITE = (226, 226, 218)
MARKING_YELLOW = (222, 180, 50)
CROSSWALK_PAINT = (222, 222, 214)

#: Car body colours, picked per agent id (deterministically).
CAR_COLOURS = np.array(
    [
        (200, 200, 204),
        (30, 32, 38),
        (150, 26, 30),
        (28, 58, 128),
        (236, 236, 232),
        (110, 114, 120),
        (60, 90, 60),
        (180, 150, 60),
        (88, 40, 30),
        (40, 120, 160),
    ],
    dtype=np.float64,
)
WINDOW = (44, 58, 72)
TYRE = (22, 22, 24)
PED_SHIRTS = np.array([(170, 40, 40), (40, 70, 150), (220, 200, 60), (60, 130, 70), (200, 200, 200), (120, 60, 140)])
PED_TROUSERS = (40, 42, 56)
SKIN = (204, 160, 130)
BICYCLE_FRAME = (30, 30, 34)
CONE = (245, 110, 20)
BARRIER_RED = (200, 40, 36)
BARRIER_WHITE = (230, 230, 228)
SIGN = (250, 150, 20)
GENERIC = (132, 108, 82)
POLE = (70, 72, 76)
LIGHT_HOUSING = (28, 28, 30)

#: Lamp colours (lit, dim) for red, yellow, green, top to bottom.
LAMP_LIT = {"red": (255, 40, 30), "yellow": (255, 200, 20), "green": (40, 230, 90)}
LAMP_DIM = {"red": (70, 24, 22), "yellow": (70, 60, 20), "green": (20, 60, 30)}
#: BEV picture colour of a connector by its light state.
STATE_RGB = {
    int(TrafficLightState.GREEN): (40, 220, 90),
    int(TrafficLightState.YELLOW): (250, 200, 30),
    int(TrafficLightState.RED): (250, 40, 40),
    int(TrafficLightState.UNKNOWN): (150, 150, 150),
}


def stable_index(key: str, n: int) -> int:
    """A deterministic small hash of `key` (Python's str hash is salted per process)."""
    h = 2166136261
    for ch in key.encode("utf-8"):
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    return h % n
