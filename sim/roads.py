"""Procedural map builders: multi-lane roads, curves, a signalised four-way intersection, a T-junction and an on-ramp.

Traffic drives on the right. A road is laid along a reference polyline: lanes travelling with the polyline sit to its
right, oncoming lanes to its left, all at integer multiples of the lane width so lanes of one road share their vertex
count (lane changes blend neighbouring centrelines vertex by vertex). Junction arms point away from the junction
centre; their incoming lanes end at the junction box, where stop lines, crosswalks and connectors begin.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import shapely

from sim.scene import SPEED_LIMIT_50_KMH, SPEED_LIMIT_60_KMH, Area, Lane, MapData, MarkingType, polyline_arclength

logger = logging.getLogger(__name__)

LANE_WIDTH = 3.5
SIDEWALK_WIDTH = 2.5
CROSSWALK_DEPTH = 4.0
STOP_LINE_DEPTH = 0.5
VERTEX_SPACING = 1.0


# ---- polyline helpers ----
def resample_polyline(xy: np.ndarray, spacing: float) -> np.ndarray:
    """Points every ~`spacing` metres along a polyline, keeping both ends."""
    s = polyline_arclength(xy)
    n = max(int(math.ceil(s[-1] / spacing)), 1) + 1
    q = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(q, s, xy[:, 0]), np.interp(q, s, xy[:, 1])], axis=-1)


def vertex_normals(xy: np.ndarray) -> np.ndarray:
    """Unit left normals at the vertices (central differences, so offsets of arcs stay arcs)."""
    d = np.gradient(xy, axis=0)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    return np.stack([-d[:, 1], d[:, 0]], axis=-1)


def offset_polyline(xy: np.ndarray, offset: float | np.ndarray) -> np.ndarray:
    """Shift every vertex `offset` metres to the left (negative: right)."""
    off = np.asarray(offset, dtype=np.float64)
    return xy + vertex_normals(xy) * (off[:, None] if off.ndim else off)


def arc_points(center: np.ndarray, radius: float, a0: float, a1: float, spacing: float = VERTEX_SPACING) -> np.ndarray:
    n = max(int(math.ceil(abs(a1 - a0) * radius / spacing)), 2) + 1
    a = np.linspace(a0, a1, n)
    return np.stack([center[0] + radius * np.cos(a), center[1] + radius * np.sin(a)], axis=-1)


def bezier_connector(p0, h0: float, p3, h1: float, spacing: float = 0.5) -> np.ndarray:
    """Quintic Bezier from pose (p0, h0) to (p3, h1) with zero curvature at both ends, so curvature (and a
    vehicle's lateral acceleration) rises continuously from the straight lanes it joins."""
    p0, p3 = np.asarray(p0, dtype=np.float64), np.asarray(p3, dtype=np.float64)
    chord = float(np.linalg.norm(p3 - p0))
    turn = abs(math.remainder(h1 - h0, 2 * math.pi))
    k = chord * (0.2 if turn < 0.2 else 0.21)
    t0 = np.array([math.cos(h0), math.sin(h0)])
    t1 = np.array([math.cos(h1), math.sin(h1)])
    ctrl = np.stack([p0, p0 + k * t0, p0 + 2 * k * t0, p3 - 2 * k * t1, p3 - k * t1, p3])
    t = np.linspace(0.0, 1.0, 400)[:, None]
    coef = [1, 5, 10, 10, 5, 1]
    pts = sum(coef[i] * (1 - t) ** (5 - i) * t**i * ctrl[i] for i in range(6))
    return resample_polyline(pts, spacing)


def _ring(poly) -> np.ndarray:
    """Exterior ring of a (multi)polygon as (N, 2); a multipolygon falls back to its convex hull."""
    if poly.geom_type != "Polygon":
        poly = poly.convex_hull
    return np.asarray(poly.exterior.coords)[:-1]


# ---- builder ----
@dataclass
class _LaneDraft:
    id: str
    center: np.ndarray
    width: float
    roadblock: str
    speed: float
    connector: bool = False
    successors: list[str] = field(default_factory=list)
    predecessors: list[str] = field(default_factory=list)
    left: str | None = None
    right: str | None = None
    left_marking: MarkingType = MarkingType.DASHED
    right_marking: MarkingType = MarkingType.SOLID
    light: str | None = None


@dataclass
class RoadHandle:
    """Lane ids of one road: `fwd` travel along the reference polyline, `bwd` against it; index 0 is innermost."""

    name: str
    ref: np.ndarray
    fwd: list[str]
    bwd: list[str]
    lane_width: float

    @property
    def half_width_fwd(self) -> float:
        return len(self.fwd) * self.lane_width

    @property
    def half_width_bwd(self) -> float:
        return len(self.bwd) * self.lane_width


@dataclass
class JunctionArm:
    """One arm of a junction: `angle` points away from the centre; `incoming` lanes end at the junction box."""

    index: int
    angle: float
    road: RoadHandle
    stop_line: str | None = None
    crosswalk: str | None = None

    @property
    def incoming(self) -> list[str]:
        return self.road.bwd

    @property
    def outgoing(self) -> list[str]:
        return self.road.fwd


@dataclass
class RoadMap:
    """A built map plus the handles scenario scripts need (roads, junction arms, connectors by movement)."""

    map: MapData
    roads: dict[str, RoadHandle]
    arms: list[JunctionArm] = field(default_factory=list)
    # (from arm, to arm) -> connector ids; movement per (from arm, to arm) is "left" / "right" / "straight".
    connectors: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    movements: dict[tuple[int, int], str] = field(default_factory=dict)
    light_groups: dict[str, list[str]] = field(default_factory=dict)  # traffic light id -> connector ids
    center: np.ndarray = field(default_factory=lambda: np.zeros(2))
    junction_half_size: float = 0.0

    def movement_target(self, from_arm: int, movement: str) -> int | None:
        for (a, b), m in self.movements.items():
            if a == from_arm and m == movement:
                return b
        return None


class MapBuilder:
    """Accumulates lanes and areas, then validates everything into a `MapData`."""

    def __init__(self) -> None:
        self.lanes: dict[str, _LaneDraft] = {}
        self.roadblocks: dict[str, Area] = {}
        self.layers: dict[str, dict[str, Area]] = {
            k: {} for k in ("intersections", "crosswalks", "carparks", "walkways", "stop_lines")
        }
        self.roads: dict[str, RoadHandle] = {}

    def add_area(self, layer: str, area_id: str, polygon_xy: np.ndarray, lane_ids=()) -> str:
        self.layers[layer][area_id] = Area(area_id, np.asarray(polygon_xy, dtype=np.float64), tuple(lane_ids))
        return area_id

    def add_road(
        self,
        name: str,
        ref: np.ndarray,
        n_fwd: int,
        n_bwd: int,
        lane_width: float = LANE_WIDTH,
        speed_limit: float = SPEED_LIMIT_50_KMH,
        sidewalks: bool = True,
    ) -> RoadHandle:
        """Lanes on both sides of `ref` (resampled at 1 m), their roadblocks, markings, neighbours and sidewalks."""
        if n_fwd < 0 or n_bwd < 0 or n_fwd + n_bwd == 0:
            raise ValueError(f"road {name}: needs at least one lane (n_fwd={n_fwd}, n_bwd={n_bwd})")
        ref = resample_polyline(np.asarray(ref, dtype=np.float64), VERTEX_SPACING)
        handle = RoadHandle(name, ref, [], [], lane_width)
        for direction, n, sign in (("f", n_fwd, -1.0), ("b", n_bwd, 1.0)):
            if n == 0:
                continue
            rb = f"{name}_{direction}"
            ids = [f"{name}_{direction}{k}" for k in range(n)]
            for k, lid in enumerate(ids):
                center = offset_polyline(ref, sign * (k + 0.5) * lane_width)
                if direction == "b":
                    center = center[::-1].copy()
                inner = MarkingType.DOUBLE_SOLID if (n_fwd and n_bwd) else MarkingType.SOLID
                draft = _LaneDraft(lid, center, lane_width, rb, speed_limit)
                draft.left_marking = inner if k == 0 else MarkingType.DASHED
                draft.right_marking = MarkingType.SOLID if k == n - 1 else MarkingType.DASHED
                draft.left = ids[k - 1] if k > 0 else None
                draft.right = ids[k + 1] if k < n - 1 else None
                self.lanes[lid] = draft
            outer = offset_polyline(ref, sign * n * lane_width)
            poly = np.concatenate([ref, outer[::-1]])
            self.roadblocks[rb] = Area(rb, poly, tuple(ids))
            (handle.fwd if direction == "f" else handle.bwd).extend(ids)
            if sidewalks:
                w0 = offset_polyline(ref, sign * n * lane_width)
                w1 = offset_polyline(ref, sign * (n * lane_width + SIDEWALK_WIDTH))
                self.add_area("walkways", f"{name}_walk_{direction}", np.concatenate([w0, w1[::-1]]))
        self.roads[name] = handle
        return handle

    def link(self, a: str, b: str) -> None:
        if b not in self.lanes[a].successors:
            self.lanes[a].successors.append(b)
        if a not in self.lanes[b].predecessors:
            self.lanes[b].predecessors.append(a)

    def connect(self, cid: str, from_lane: str, to_lane: str, roadblock: str, light: str | None = None) -> str:
        """A connector lane from the end of `from_lane` to the start of `to_lane` (cubic Bezier)."""
        a, b = self.lanes[from_lane], self.lanes[to_lane]
        h0 = math.atan2(*(a.center[-1] - a.center[-2])[::-1])
        h1 = math.atan2(*(b.center[1] - b.center[0])[::-1])
        center = bezier_connector(a.center[-1], h0, b.center[0], h1)
        draft = _LaneDraft(cid, center, a.width, roadblock, min(a.speed, b.speed), connector=True, light=light)
        draft.left_marking = draft.right_marking = MarkingType.NONE
        self.lanes[cid] = draft
        self.link(from_lane, cid)
        self.link(cid, to_lane)
        return cid

    def _lane_polygon(self, d: _LaneDraft):
        left = offset_polyline(d.center, d.width / 2)
        right = offset_polyline(d.center, -d.width / 2)
        return left, right

    def build(self) -> MapData:
        lanes: dict[str, Lane] = {}
        connector_groups: dict[str, list] = {}
        for d in self.lanes.values():
            left, right = self._lane_polygon(d)
            lanes[d.id] = Lane(
                id=d.id,
                centerline=d.center,
                left_boundary=left,
                right_boundary=right,
                roadblock_id=d.roadblock,
                speed_limit=d.speed,
                successors=tuple(d.successors),
                predecessors=tuple(d.predecessors),
                is_connector=d.connector,
                left_neighbor=d.left,
                right_neighbor=d.right,
                left_marking=d.left_marking,
                right_marking=d.right_marking,
                traffic_light_id=d.light,
            )
            if d.connector:
                connector_groups.setdefault(d.roadblock, []).append(d.id)
        roadblocks = dict(self.roadblocks)
        for rb, ids in connector_groups.items():
            union = shapely.union_all([lanes[i].polygon for i in ids])
            roadblocks[rb] = Area(rb, _ring(union), tuple(ids))
        return MapData(lanes=lanes, roadblocks=roadblocks, **self.layers)


# ---- map recipes ----
def straight_road(
    length: float = 260.0,
    n_fwd: int = 2,
    n_bwd: int = 2,
    speed_limit: float = SPEED_LIMIT_50_KMH,
    carpark: bool = False,
    crosswalk_at: float | None = None,
) -> RoadMap:
    """A straight road along +x from x = 0, optionally with a car park beside the right sidewalk and a mid-block
    crosswalk starting at x = `crosswalk_at`."""
    _check_lanes(n_fwd, n_bwd, length)
    b = MapBuilder()
    ref = np.array([[0.0, 0.0], [length, 0.0]])
    road = b.add_road("main", ref, n_fwd, n_bwd, speed_limit=speed_limit)
    if crosswalk_at is not None:
        if not (10.0 <= crosswalk_at <= length - 10.0):
            raise ValueError(f"crosswalk_at must lie within the road (10 .. {length - 10} m), got {crosswalk_at}")
        y0, y1 = -n_fwd * LANE_WIDTH, n_bwd * LANE_WIDTH
        xc = crosswalk_at
        b.add_area(
            "crosswalks",
            "crosswalk0",
            np.array([[xc, y0], [xc + CROSSWALK_DEPTH, y0], [xc + CROSSWALK_DEPTH, y1], [xc, y1]]),
        )
    if carpark:
        y0 = -(n_fwd * LANE_WIDTH + SIDEWALK_WIDTH)
        x0 = 0.45 * length
        b.add_area("carparks", "carpark_0", np.array([[x0, y0], [x0 + 40, y0], [x0 + 40, y0 - 18], [x0, y0 - 18]]))
    return RoadMap(b.build(), {"main": road})


def curved_road(
    radius: float = 80.0,
    angle: float = math.pi / 2,
    lead_in: float = 70.0,
    lead_out: float = 140.0,
    n_fwd: int = 2,
    n_bwd: int = 1,
    speed_limit: float = SPEED_LIMIT_50_KMH,
) -> RoadMap:
    """Straight, then a circular arc turning left (angle > 0) or right (angle < 0), then straight again."""
    _check_lanes(n_fwd, n_bwd, lead_in + lead_out)
    if radius < max(n_fwd, n_bwd) * LANE_WIDTH + 10.0:
        raise ValueError(f"curve radius {radius} m is too tight for {max(n_fwd, n_bwd)} lanes per side")
    if not (0.0 < abs(angle) <= math.pi):
        raise ValueError(f"curve angle must be in (0, pi] in magnitude, got {angle}")
    sign = 1.0 if angle > 0 else -1.0
    start = np.array([[0.0, 0.0], [lead_in, 0.0]])
    c = np.array([lead_in, sign * radius])
    arc = arc_points(c, radius, -sign * math.pi / 2, -sign * math.pi / 2 + angle)
    end_dir = np.array([math.cos(angle), math.sin(angle)])
    tail = np.array([arc[-1], arc[-1] + lead_out * end_dir])
    ref = np.concatenate([start[:-1], arc, tail[1:]])
    b = MapBuilder()
    road = b.add_road("main", ref, n_fwd, n_bwd, speed_limit=speed_limit)
    return RoadMap(b.build(), {"main": road})


def _check_lanes(n_fwd: int, n_bwd: int, length: float) -> None:
    if not (1 <= n_fwd <= 4) or not (0 <= n_bwd <= 4):
        raise ValueError(f"lane counts must be 1..4 forward and 0..4 backward, got {n_fwd}, {n_bwd}")
    if not (length >= 50.0):
        raise ValueError(f"road length must be at least 50 m, got {length}")


_MOVES = {1: "right", 2: "straight", 3: "left"}


def junction(
    arm_angles: tuple[float, ...] = (0.0, math.pi / 2, math.pi, 3 * math.pi / 2),
    lanes_per_side: int = 2,
    arm_length: float = 130.0,
    signalised: bool = True,
    curb_radius: float = 7.0,
    speed_limit: float = SPEED_LIMIT_50_KMH,
    crosswalks: bool = True,
    stop_arms: tuple[int, ...] | None = None,
) -> RoadMap:
    """A right-angle junction centred at the origin with arms at `arm_angles` (4: cross, 3: T).

    Connectors: straight lane k -> lane k; right from the outermost and left from the innermost incoming lane; with
    lights, one head per (arm, straight+right) and per (arm, left), protected phases (see sim.traffic). Stop lines
    sit before the crosswalk on every arm with lights, else on `stop_arms` (the T's minor road by default).
    """
    if not (1 <= lanes_per_side <= 3):
        raise ValueError(f"lanes_per_side must be 1..3, got {lanes_per_side}")
    if len(arm_angles) not in (3, 4):
        raise ValueError(f"a junction needs 3 or 4 arms, got {len(arm_angles)}")
    if arm_length < 40.0:
        raise ValueError(f"arm_length must be at least 40 m, got {arm_length}")
    w = LANE_WIDTH
    half = lanes_per_side * w + curb_radius
    b = MapBuilder()
    arms: list[JunctionArm] = []
    slots = [int(round(a / (math.pi / 2))) % 4 for a in arm_angles]
    for i, slot in enumerate(slots):
        ang = slot * math.pi / 2
        u = np.array([math.cos(ang), math.sin(ang)])
        ref = np.stack([u * half, u * (half + arm_length)])
        road = b.add_road(f"arm{i}", ref, lanes_per_side, lanes_per_side, speed_limit=speed_limit)
        arms.append(JunctionArm(i, ang, road))
    rm = RoadMap(MapData({}, {}), b.roads, arms, center=np.zeros(2), junction_half_size=half)
    # intersection box (rounded corners are left square: drivable anyway)
    box = np.array([[half, half], [-half, half], [-half, -half], [half, -half]])
    b.add_area("intersections", "junction", box)
    if stop_arms is None:
        stop_arms = tuple(range(len(arms))) if signalised else _minor_arms(slots)
    for arm in arms:
        u = np.array([math.cos(arm.angle), math.sin(arm.angle)])
        n = np.array([-u[1], u[0]])
        hw = lanes_per_side * w

        def quad(d0, d1, lat0, lat1, u=u, n=n):
            return np.array([u * d0 + n * lat0, u * d1 + n * lat0, u * d1 + n * lat1, u * d0 + n * lat1])

        if crosswalks:
            arm.crosswalk = b.add_area(
                "crosswalks", f"crosswalk{arm.index}", quad(half + 0.5, half + 0.5 + CROSSWALK_DEPTH, -hw, hw)
            )
        if arm.index in stop_arms:
            d0 = half + (0.5 + CROSSWALK_DEPTH + 0.5 if crosswalks else 1.0)
            # incoming lanes are on the arm's left (+n side)
            arm.stop_line = b.add_area(
                "stop_lines", f"stop{arm.index}", quad(d0, d0 + STOP_LINE_DEPTH, 0.0, hw), arm.incoming
            )
    # connectors
    for a in arms:
        for bb in arms:
            if a is bb:
                continue
            rel = (slots[bb.index] - slots[a.index]) % 4
            move = _MOVES[rel]
            rb = f"conn{a.index}_{bb.index}"
            light = None
            if signalised:
                light = f"tl{a.index}_{'left' if move == 'left' else 'main'}"
            if move == "straight":
                pairs = list(zip(a.incoming, bb.outgoing))
            elif move == "right":
                pairs = [(a.incoming[-1], bb.outgoing[-1])]
            else:
                pairs = [(a.incoming[0], bb.outgoing[0])]
            ids = []
            for k, (fl, tl_) in enumerate(pairs):
                ids.append(b.connect(f"c{a.index}_{bb.index}_{k}", fl, tl_, rb, light))
            rm.connectors[(a.index, bb.index)] = ids
            rm.movements[(a.index, bb.index)] = move
            if light is not None:
                rm.light_groups.setdefault(light, []).extend(ids)
    rm.map = b.build()
    return rm


def _minor_arms(slots: list[int]) -> tuple[int, ...]:
    """Arms of a T whose opposite slot is missing: the stem, which yields."""
    return tuple(i for i, s in enumerate(slots) if (s + 2) % 4 not in slots)


def four_way_intersection(
    lanes_per_side: int = 2, arm_length: float = 130.0, speed_limit: float = SPEED_LIMIT_50_KMH
) -> RoadMap:
    return junction(lanes_per_side=lanes_per_side, arm_length=arm_length, signalised=True, speed_limit=speed_limit)


def t_junction(lanes_per_side: int = 1, arm_length: float = 130.0, speed_limit: float = SPEED_LIMIT_50_KMH) -> RoadMap:
    """Main road east-west (arms 0 and 1), stem to the south (arm 2) with a stop line; no lights."""
    return junction(
        arm_angles=(0.0, math.pi, 3 * math.pi / 2),
        lanes_per_side=lanes_per_side,
        arm_length=arm_length,
        signalised=False,
        speed_limit=speed_limit,
    )


def on_ramp(
    n_main: int = 2,
    n_bwd: int = 2,
    before: float = 120.0,
    merge_length: float = 90.0,
    after: float = 140.0,
    ramp_length: float = 90.0,
    speed_limit: float = SPEED_LIMIT_60_KMH,
) -> RoadMap:
    """A main road along +x with an on-ramp joining from the right through a tapered acceleration lane.

    Sections: `up` (x < before), `mid` (merge zone, one extra lane that tapers into the rightmost main lane),
    `down`. The ramp rises at 20 degrees from the right and its lane continues into the acceleration lane.
    """
    _check_lanes(n_main, n_bwd, before + after)
    w = LANE_WIDTH
    b = MapBuilder()
    x0, x1, x2 = 0.0, before, before + merge_length
    up = b.add_road("up", np.array([[x0, 0.0], [x1, 0.0]]), n_main, n_bwd, speed_limit=speed_limit)
    mid = b.add_road("mid", np.array([[x1, 0.0], [x2, 0.0]]), n_main, n_bwd, speed_limit=speed_limit, sidewalks=False)
    down = b.add_road("down", np.array([[x2, 0.0], [x2 + after, 0.0]]), n_main, n_bwd, speed_limit=speed_limit)
    for k in range(n_main):
        b.link(up.fwd[k], mid.fwd[k])
        b.link(mid.fwd[k], down.fwd[k])
    for k in range(n_bwd):
        b.link(down.bwd[k], mid.bwd[k])
        b.link(mid.bwd[k], up.bwd[k])
    # acceleration lane: offset one lane right of the outer main lane, tapering in over the last 60 % of the zone
    xs = np.arange(x1, x2 + 1e-9, VERTEX_SPACING)
    t = np.clip((xs - (x1 + 0.4 * merge_length)) / (0.6 * merge_length), 0.0, 1.0)
    smooth = t * t * t * (10 - 15 * t + 6 * t * t)
    y_acc = -(n_main + 0.5) * w + smooth * w
    acc_center = np.stack([xs, y_acc], axis=-1)
    acc = _LaneDraft("mid_acc", acc_center, w, "mid_f", speed_limit)
    acc.left = None
    acc.left_marking = MarkingType.DASHED
    b.lanes["mid_acc"] = acc
    outer = b.lanes[mid.fwd[-1]]
    outer.right_marking = MarkingType.DASHED
    mid_rb = b.roadblocks["mid_f"]
    edge = np.stack([xs, y_acc - w / 2], axis=-1)
    b.roadblocks["mid_f"] = Area(
        "mid_f", np.concatenate([np.array([[x1, 0.0], [x2, 0.0]]), edge[::-1]]), (*mid_rb.lane_ids, "mid_acc")
    )
    b.link("mid_acc", down.fwd[-1])
    b.add_area("walkways", "mid_walk_f", np.concatenate([edge, (edge + [0.0, -SIDEWALK_WIDTH])[::-1]]))
    # ramp: a straight at -20 degrees feeding into the acceleration lane start
    start = np.array([x1, -(n_main + 0.5) * w])
    ang = math.radians(20.0)
    d = np.array([math.cos(ang), math.sin(ang)])
    p_far = start - d * ramp_length
    ramp_c = bezier_connector(p_far, ang, start, 0.0, spacing=VERTEX_SPACING)
    ramp_ref = offset_polyline(ramp_c, w / 2)
    ramp = b.add_road("ramp", ramp_ref, 1, 0, speed_limit=speed_limit * 0.8, sidewalks=False)
    b.lanes[ramp.fwd[0]].center[-1] = acc_center[0]  # snap away the offset round-off so the chain is continuous
    b.link(ramp.fwd[0], "mid_acc")
    del b.layers["walkways"]["up_walk_f"]  # the ramp runs where that sidewalk would be
    rm = RoadMap(b.build(), {"up": up, "mid": mid, "down": down, "ramp": ramp})
    return rm
