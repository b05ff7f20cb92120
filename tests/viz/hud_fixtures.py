"""A hand-made PlanResult and WorldView whose every number is known, for HUD frame checks."""

from __future__ import annotations

import numpy as np

from agent.contract import CommandResult, Detections, MapElements, PlanResult
from agent.epdms_metrics import EPDMS_METRICS
from agent.types import NavigationCommand, PathPlan, SpeedPlan, Trajectory, bench2drive_rig
from viz.view import Boxes, Control, WorldView

#: one solid colour per camera (none of them the chosen trajectory's magenta or a ramp colour)
CAMERA_RGB = {
    "CAM_FRONT": (40, 90, 140),
    "CAM_FRONT_LEFT": (90, 40, 140),
    "CAM_FRONT_RIGHT": (140, 90, 40),
    "CAM_BACK": (40, 140, 90),
    "CAM_BACK_LEFT": (140, 40, 90),
    "CAM_BACK_RIGHT": (90, 140, 40),
}
CHOSEN = 2


def straight(length: float, lateral: float = 0.0) -> np.ndarray:
    """8 poses spread evenly to `length` metres ahead, bending to `lateral` metres left at the end."""
    t = np.arange(1, 9) / 8
    x, y = length * t, lateral * t**2
    return np.stack([x, y, np.arctan2(np.gradient(y), np.gradient(x))], axis=-1)


def make_plan() -> PlanResult:
    k = 5
    cands = np.stack([straight(14.0, lat) for lat in (-6.0, -3.0, 0.0, 3.0, 6.0)])
    rewards = np.array([0.1, 0.4, 0.93, 0.6, 0.2])
    sub = np.tile(np.linspace(0.55, 0.95, len(EPDMS_METRICS)), (k, 1))
    sub[CHOSEN] = [1.0, 0.98, 0.97, 0.96, 0.731, 0.9, 0.88, 0.87, 0.5]
    speed_probs = np.full(13, 0.02)
    speed_probs[int(SpeedPlan.MILD_ACCEL)] = 1 - 0.02 * 12
    path_probs = np.full(9, 0.05)
    path_probs[int(PathPlan.STRAIGHT_STRICT)] = 1 - 0.05 * 8
    commands = CommandResult(
        SpeedPlan.MILD_ACCEL, PathPlan.STRAIGHT_STRICT, speed_probs, path_probs, "likelihood", 3.5, 7
    )
    det = Detections(
        np.array([[12.0, 3.5, 0.0, 4.5, 1.9, 5.0, 0.0], [30.0, -3.5, 0.1, 4.5, 1.9, 0.0, 0.0]]),
        np.array([0.9, 0.1]),
        np.array([0, 0]),
        ("vehicle", "pedestrian", "bicycle"),
    )
    mp = MapElements(
        np.stack([np.stack([np.linspace(-20, 30, 10), np.full(10, y)], -1) for y in (1.75, -1.75)]),
        np.array([0.8, 0.9]),
        np.array([0, 0]),
        ("lane_divider", "road_boundary", "centerline"),
    )
    seg = np.zeros((3, 32, 32))
    seg[0] = 0.2
    seg[1] = 0.8  # "road" everywhere
    return PlanResult(
        trajectory=Trajectory(cands[CHOSEN]),
        candidates=cands,
        confidences=np.array([0.2, 0.3, 0.81, 0.4, 0.1]),
        rewards=rewards,
        submetrics=sub,
        scores=rewards + 0.5,
        selected=CHOSEN,
        penalties={"collision": np.array([True, False, False, False, True]), "offroad": np.zeros(k)},
        commands=commands,
        detections=det,
        map=mp,
        seg=seg,
        seg_classes=("background", "road", "vehicle"),
        timings={"preprocess": 4.25, "backbone": 120.5, "planner": 30.125, "total": 160.0},
        tick=7,
    )


CONTROL = Control(-0.25, 0.6, 0.0)


def make_view(control: Control | None = CONTROL) -> WorldView:
    rig = bench2drive_rig(160, 90)
    images = {n: np.full((90, 160, 3), CAMERA_RGB[n], dtype=np.uint8) for n in rig.names}
    road = np.array([[-40.0, 5.25], [40.0, 5.25], [40.0, -5.25], [-40.0, -5.25]])
    return WorldView(
        images=images,
        rig=rig,
        speed=8.5,
        command=NavigationCommand.STRAIGHT,
        control=control,
        time_s=12.5,
        frame=250,
        title="test route",
        drivable=[road],
        lanes=[np.array([[-40.0, 1.75], [40.0, 1.75]])],
        route=np.array([[0.0, 0.0], [30.0, 0.0]]),
        agents=Boxes(np.array([[-15.0, 0.0, 0.0, 4.5, 1.9]]), ("vehicle",)),
        info={"route completion": "12.0 %"},
    )
