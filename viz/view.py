"""What the HUD shows besides the plan: one moment of the world, in the ego (rear-axle) frame, from any source.

The HUD never reads a simulator. Whoever drives (the embedded closed-loop world, the CARLA agent, a test) fills a
`WorldView`; fields it cannot know (ground truth in a real CARLA run) stay empty and are simply not drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from agent.types import CameraRig, NavigationCommand


@dataclass(frozen=True)
class Control:
    """The vehicle control applied this tick (CARLA's ranges: steer [-1, 1], throttle and brake [0, 1])."""

    steer: float = 0.0
    throttle: float = 0.0
    brake: float = 0.0

    def __post_init__(self) -> None:
        for name, lo in (("steer", -1.0), ("throttle", 0.0), ("brake", 0.0)):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and lo <= v <= 1.0):
                raise ValueError(f"Control.{name} must be in [{lo}, 1], got {v!r}")


@dataclass
class Boxes:
    """Oriented boxes in the ego frame: (N, 5) centre x, y, heading, length, width, with a kind name per box."""

    boxes: np.ndarray
    kinds: tuple[str, ...]

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 5)
        self.kinds = tuple(self.kinds)
        if len(self.kinds) != len(self.boxes):
            raise ValueError(f"Boxes: {len(self.boxes)} boxes but {len(self.kinds)} kinds")
        if not np.all(np.isfinite(self.boxes)):
            raise ValueError("Boxes: NaN or infinite values")

    @classmethod
    def empty(cls) -> Boxes:
        return cls(np.zeros((0, 5)), ())

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass
class WorldView:
    """One tick of the world as the HUD draws it. Geometry is in the ego frame (x forward, y left, metres).

    images: camera name -> (H, W, 3) uint8 RGB, described by `rig` (at the images' resolution).
    drivable: road polygons; lanes: lane boundary polylines; route: the route centreline ahead;
    signals: (connector polyline, light state name) pairs; agents: ground-truth boxes (empty when unknown).
    info: extra text lines for the panel (route progress, infractions so far), in display order.
    """

    images: dict[str, np.ndarray]
    rig: CameraRig
    speed: float
    command: NavigationCommand = NavigationCommand.UNKNOWN
    control: Control | None = None
    time_s: float = 0.0
    frame: int = 0
    title: str = ""
    drivable: list[np.ndarray] = field(default_factory=list)
    lanes: list[np.ndarray] = field(default_factory=list)
    route: np.ndarray | None = None
    signals: list[tuple[np.ndarray, str]] = field(default_factory=list)
    agents: Boxes = field(default_factory=Boxes.empty)
    #: ego length, width and rear axle -> box centre (m), for the ego box in the BEV (Lincoln MKZ 2020 by default).
    ego_size: tuple[float, float, float] = (4.89, 1.84, 1.39)
    info: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [n for n in self.rig.names if n not in self.images]
        if missing:
            raise ValueError(f"WorldView: no image for camera(s) {missing}")
        for cam in self.rig.cameras:
            img = self.images[cam.name]
            if img.dtype != np.uint8 or img.shape != (cam.height, cam.width, 3):
                raise ValueError(
                    f"WorldView: image {cam.name} must be ({cam.height}, {cam.width}, 3) uint8, got "
                    f"{img.dtype} {img.shape}"
                )
        if not math.isfinite(self.speed):
            raise ValueError(f"WorldView.speed must be finite, got {self.speed}")
        self.command = NavigationCommand(int(self.command))
