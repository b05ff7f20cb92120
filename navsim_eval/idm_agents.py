"""Set-up of NAVSIM's reactive IDM vehicles on our map (`build_idm_agents_on_map_rails`, navsim variant).

Per vehicle present at t = 0, in track order: the starting segment is a lane containing its centre (or, inside an
intersection, a lane connector containing it), the one whose nearest baseline pose has the smallest raw heading
difference; the vehicle is snapped to the nearest baseline pose (heading from the point 0.5 m further on) and kept
when that is within the snap threshold and the snapped box touches neither the ego box nor an earlier snapped box.
Its path is that one segment's centreline: NAVSIM's metric cache has no traffic-light status, so `plan_route`
never extends it. The map queries run once per scene (memoised by the caller).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import LineString, Point

from agent.boxes import boxes_overlap, centre_boxes
from sim.scene import AgentType, Scene

HEADING_LOOKAHEAD = 0.5  # NuPlanPolylineMapObject's distance_for_heading_estimation


@dataclass
class IdmAgentSetup:
    """Which vehicles IDM drives and their rails.

    controlled: observation indices (n,) in update order; paths: per agent (P_i, 3) centreline x, y, unwrapped
    heading with cum (P_i,) arc length; progress0 / speed0 / target (n,); deviation (A,) lateral distance to the
    starting segment (inf without one); stationary_off_lane (A,) whether a vehicle counts as parked off the lanes.
    """

    controlled: np.ndarray
    paths: list[np.ndarray]
    cums: list[np.ndarray]
    progress0: np.ndarray
    speed0: np.ndarray
    target: np.ndarray
    snapped: np.ndarray  # (n, 3) snapped centre pose
    deviation: np.ndarray
    stationary_off_lane: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.controlled)
        if len(self.paths) != n or len(self.cums) != n or self.snapped.shape != (n, 3):
            raise ValueError("IdmAgentSetup: one path, cum and snapped pose per controlled vehicle")


def _nearest_pose(line: LineString, x: float, y: float) -> tuple[float, float, float, float]:
    s = float(line.project(Point(x, y)))
    p1 = line.interpolate(s)
    p2 = line.interpolate(s + HEADING_LOOKAHEAD)
    if p1.equals(p2):
        p0 = line.interpolate(s - HEADING_LOOKAHEAD)
        h = float(np.arctan2(p1.y - p0.y, p1.x - p0.x))
    else:
        h = float(np.arctan2(p2.y - p1.y, p2.x - p1.x))
    return s, float(p1.x), float(p1.y), h


def setup_idm_agents(scene: Scene, obs, ego_box: np.ndarray, fallback_speed: float, snap: float) -> IdmAgentSetup:
    """The controlled vehicles of `obs` (frame 0) and their single-segment rails; ego_box (4, 2) at t = 0."""
    m = scene.map
    lanes = [lane for lane in m.lanes.values() if not lane.is_connector]
    connectors = [lane for lane in m.lanes.values() if lane.is_connector]
    lane_polys = np.array([lane.polygon for lane in lanes], dtype=object)
    conn_polys = np.array([lane.polygon for lane in connectors], dtype=object)
    inter_polys = np.array([a.polygon for a in m.intersections.values()], dtype=object)
    a_n = len(obs.ids)
    deviation = np.full(a_n, np.inf)
    off_lane = np.zeros(a_n, dtype=bool)
    controlled, paths, cums, prog, speed, target, snapped, boxes = [], [], [], [], [], [], [], [ego_box]
    for a in range(a_n):
        if obs.types[a] != int(AgentType.VEHICLE) or not obs.present[a, 0]:
            continue
        x, y, h, vx, vy = obs.states[a, 0]
        in_lane = shapely.contains_xy(lane_polys, x, y) if len(lanes) else np.zeros(0, bool)
        in_inter = bool(shapely.contains_xy(inter_polys, x, y).any()) if len(inter_polys) else False
        off_lane[a] = np.hypot(vx, vy) < 0.1 and not in_lane.any() and not in_inter
        if in_lane.any():
            segs = [lanes[i] for i in np.flatnonzero(in_lane)]
        elif in_inter and len(connectors):
            segs = [connectors[i] for i in np.flatnonzero(shapely.contains_xy(conn_polys, x, y))]
        else:
            continue
        if not segs:
            continue
        poses = [_nearest_pose(LineString(seg.centerline), x, y) for seg in segs]
        best = int(np.argmin([abs(p[3] - h) for p in poses]))
        seg, (s0, px, py, ph) = segs[best], poses[best]
        deviation[a] = float(np.hypot(px - x, py - y))
        if deviation[a] > snap:
            continue
        box = centre_boxes(np.array([px, py, ph]), obs.sizes[a, 0], obs.sizes[a, 1])
        others = np.stack(boxes)
        if boxes_overlap(np.broadcast_to(box, others.shape), others).any():
            continue
        boxes.append(box)
        pts = np.asarray(seg.centerline, dtype=np.float64)
        keep = np.concatenate([[True], np.hypot(*np.diff(pts, axis=0).T) > 1e-9])
        pts = pts[keep]
        d = np.diff(pts, axis=0)
        hd = np.arctan2(d[:, 1], d[:, 0])
        hd = np.unwrap(np.append(hd, hd[-1]))
        controlled.append(a)
        paths.append(np.column_stack([pts, hd]))
        cums.append(np.concatenate([[0.0], np.cumsum(np.hypot(d[:, 0], d[:, 1]))]))
        prog.append(s0)
        speed.append(float(np.hypot(vx, vy)))
        target.append(seg.speed_limit if seg.speed_limit > 0 else fallback_speed)
        snapped.append((px, py, ph))
    n = len(controlled)
    return IdmAgentSetup(
        np.asarray(controlled, dtype=np.int64),
        paths,
        cums,
        np.asarray(prog, dtype=np.float64),
        np.asarray(speed, dtype=np.float64),
        np.asarray(target, dtype=np.float64),
        np.asarray(snapped, dtype=np.float64).reshape(n, 3),
        deviation,
        off_lane,
    )


def sample_paths(setup: IdmAgentSetup, s: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
    """Poses (K, c, 3) at arc lengths s (K, c) along paths `cols` (default all), clamped to each path, headings
    wrapped to (-pi, pi]."""
    cols = np.arange(len(setup.paths)) if cols is None else np.asarray(cols)
    out = np.empty(s.shape + (3,))
    for j, a in enumerate(cols):
        p, cum = setup.paths[a], setup.cums[a]
        sj = np.clip(s[:, j], cum[0], cum[-1])
        for c in range(3):
            out[:, j, c] = np.interp(sj, cum, p[:, c])
    out[..., 2] = np.arctan2(np.sin(out[..., 2]), np.cos(out[..., 2]))
    return out
