"""Colours of the HUD: EPDMS ramp for candidates, segmentation classes, ground-truth and detected agents.

None of them is the chosen trajectory's colour (`HudConfig.chosen_rgb`, magenta by default), so the emphasised plan
can be found in a frame by its colour alone.
"""

from __future__ import annotations

import numpy as np

BACKGROUND = (22, 24, 28)
PANEL = (14, 15, 18)
TEXT = (230, 230, 230)
DIM_TEXT = (150, 155, 160)
ROAD = (62, 66, 72)
LANE = (170, 172, 168)
ROUTE = (0, 200, 215)
EGO = (40, 200, 90)
DETECTION = (255, 235, 60)
MAP_PRED = (255, 150, 40)
BAR_FILL = (120, 170, 255)
BAR_BACK = (60, 62, 70)
#: candidates of a planner that predicts no EPDMS
UNSCORED = (160, 160, 160)

SIGNAL = {"GREEN": (40, 220, 90), "YELLOW": (250, 200, 30), "RED": (250, 40, 40), "UNKNOWN": (150, 150, 150)}

#: ground-truth agent kind -> fill colour.
AGENT = {
    "vehicle": (60, 130, 235),
    "pedestrian": (235, 80, 80),
    "bicycle": (235, 80, 80),
    "static": (245, 140, 30),
}
AGENT_DEFAULT = (190, 190, 190)

#: segmentation class name -> overlay colour (names of the model's seg head; unknown names get FALLBACK in turn).
SEG = {
    "road": (70, 100, 150),
    "drivable_area": (70, 100, 150),
    "walkway": (120, 110, 90),
    "centerline": (90, 200, 200),
    "lane_marking": (200, 200, 190),
    "crosswalk": (230, 190, 60),
    "static_object": (245, 140, 30),
    "static_obstacle": (245, 140, 30),
    "vehicle": (60, 130, 235),
    "pedestrian": (235, 80, 80),
    "pedestrian_bicycle": (235, 80, 80),
}
SEG_FALLBACK = ((150, 200, 90), (200, 120, 200), (120, 200, 255))


def seg_colours(class_names: tuple[str, ...]) -> np.ndarray:
    """(C, 3) uint8 overlay colour per class; class 0 ("background") is never drawn."""
    out, k = [], 0
    for name in class_names:
        if name in SEG:
            out.append(SEG[name])
        else:
            out.append(SEG_FALLBACK[k % len(SEG_FALLBACK)])
            k += 1
    return np.array(out, dtype=np.uint8).reshape(-1, 3)


def epdms_ramp(score: float) -> tuple[int, int, int]:
    """Red (0) -> yellow (0.5) -> green (1); the blue channel stays 0, so it never meets the chosen colour."""
    s = float(np.clip(score if np.isfinite(score) else 0.0, 0.0, 1.0))
    if s < 0.5:
        return (230, int(round(60 + 350 * s)), 0)
    return (int(round(230 - 400 * (s - 0.5))), 235, 0)
