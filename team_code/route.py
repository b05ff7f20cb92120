"""Route following over the leaderboard's global plan: the Bench2Drive near/far planner and the dense route ahead.

`RoutePlanner` reproduces the Zoo `RoutePlanner(4.0, 50.0)` behaviour on our world frame, vectorised: among the plan
points reachable within `far_distance` of path length, it drops everything up to the farthest point within
`near_distance` of the ego (always keeping two), and targets the next point. `RouteTracker` follows the dense 1 m plan
to hand the policy the route ahead in its own frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent import geometry
from agent.types import NavigationCommand
from team_code.config import RouteConfig


def road_option_value(option) -> int:
    """CARLA `RoadOption` enum member (or its int value) -> int value (LEFT 1 ... CHANGELANERIGHT 6, VOID -1)."""
    value = getattr(option, "value", option)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"not a RoadOption: {option!r}") from None


@dataclass(frozen=True)
class RouteTarget:
    """The planner's answer for one tick: target point in the world and ego frames, its RoadOption and command."""

    world_xy: np.ndarray
    ego_xy: np.ndarray
    road_option: int
    command: NavigationCommand
    remaining: int


def _as_route(points, options) -> tuple[np.ndarray, np.ndarray]:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 1:
        raise ValueError(f"route points must have shape (N>=1, 2), got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("route points contain NaN or infinite values")
    opts = np.array([road_option_value(o) for o in options], dtype=np.int64)
    if opts.shape != (len(pts),):
        raise ValueError(f"need one RoadOption per route point, got {len(opts)} for {len(pts)} points")
    for v in np.unique(opts):
        NavigationCommand.from_carla_road_option(int(v))  # raises on unknown values
    return pts, opts


class RoutePlanner:
    """Bench2Drive's near/far waypoint planner on the downsampled global plan (world frame, metres)."""

    def __init__(self, cfg: RouteConfig, points, options) -> None:
        self.cfg = cfg
        self.points, self.options = _as_route(points, options)
        seg = np.hypot(*np.diff(self.points, axis=0).T) if len(self.points) > 1 else np.zeros(0)
        self._arc = np.concatenate([[0.0], np.cumsum(seg)])
        self.index = 0

    def __len__(self) -> int:
        return len(self.points) - self.index

    def run_step(self, pose) -> RouteTarget:
        """Advance past reached points and return the current target; `pose` = (x, y, heading) of the ego."""
        pose = np.asarray(pose, dtype=np.float64).reshape(3)
        n = len(self.points)
        if n - self.index > 1:
            cand = np.arange(self.index + 1, n)
            # point i is examined while the path length up to point i-1 (from the first kept point) is <= far.
            reach = self._arc[cand - 1] - self._arc[self.index] <= self.cfg.far_distance
            cand = cand[reach]
            d = np.hypot(self.points[cand, 0] - pose[0], self.points[cand, 1] - pose[1])
            near = d <= self.cfg.near_distance
            if np.any(near):
                best = cand[near][int(np.argmax(d[near]))]  # first of the farthest, as the strict '>' in the Zoo
                self.index = max(self.index, min(int(best), n - 2))
            k = self.index + 1
        else:
            k = self.index
        world = self.points[k].copy()
        ego = geometry.points_to_local(pose, world[None])[0]
        opt = int(self.options[k])
        return RouteTarget(world, ego, opt, NavigationCommand.from_carla_road_option(opt), n - self.index)


class RouteTracker:
    """Progress along the dense plan; returns the next `route_points` points every `spacing` metres (ego frame)."""

    def __init__(self, points, spacing: float = 2.0, num_points: int = 20, search_window: int = 80) -> None:
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 1:
            raise ValueError(f"dense route must have shape (N>=1, 2), got {pts.shape}")
        if not spacing > 0:
            raise ValueError(f"spacing must be positive, got {spacing}")
        self.points = pts
        self.arc = (
            np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))]) if len(pts) > 1 else np.zeros(1)
        )
        self.spacing = float(spacing)
        self.num_points = int(num_points)
        self.window = int(search_window)
        self.index = 0

    @property
    def length(self) -> float:
        return float(self.arc[-1])

    @property
    def progress(self) -> float:
        return float(self.arc[self.index])

    def update(self, pose) -> np.ndarray:
        """Move the progress index to the nearest point within the look-ahead window; route ahead in the ego frame."""
        pose = np.asarray(pose, dtype=np.float64).reshape(3)
        hi = min(len(self.points), self.index + self.window)
        seg = self.points[self.index : hi]
        self.index += int(np.argmin(np.hypot(seg[:, 0] - pose[0], seg[:, 1] - pose[1])))
        s = self.arc[self.index] + self.spacing * np.arange(self.num_points)
        s = np.minimum(s, self.arc[-1])
        if len(self.points) > 1:
            xs = np.interp(s, self.arc, self.points[:, 0])
            ys = np.interp(s, self.arc, self.points[:, 1])
        else:
            xs = np.full_like(s, self.points[0, 0])
            ys = np.full_like(s, self.points[0, 1])
        return geometry.points_to_local(pose, np.stack([xs, ys], axis=-1))
