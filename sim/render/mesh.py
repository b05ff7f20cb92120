"""World geometry for the renderers: flat ground polygons (static per map) and shaded solids (per frame).

Ground polygons are stored as one flat vertex array with per-polygon starts and counts, in painter order (road before
markings), so a camera transforms and culls all of them with a few array operations. Solids are convex prisms given
by 8 corners (bottom ring counter-clockwise seen from above, then the top ring), expanded to 6 outward-wound quads;
composite objects (a car is wheels, body, cabin, roof, lights) share a `group` and are painted in `rank` order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import shapely

from sim.render import palette
from sim.scene import AG_HEADING, AG_X, AG_Y, AgentType, MapData, MarkingType, Scene, TrafficLightState

logger = logging.getLogger(__name__)

#: Painted line width, dash and gap (m): 15 cm lines, 3 m dashes with 6 m gaps.
MARKING_WIDTH = 0.15
DASH_LENGTH = 3.0
DASH_GAP = 6.0
DOUBLE_LINE_OFFSET = 0.12
#: Douglas-Peucker tolerance (m) for solid line polylines before they become quads.
SIMPLIFY_TOLERANCE = 0.02
CROSSWALK_BAR = 0.5

# Quad faces of a prism with corners 0-3 at the bottom (CCW from above) and 4-7 above them, wound CCW seen from outside.
PRISM_FACES = np.array(
    [[4, 5, 6, 7], [0, 3, 2, 1], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7]],
    dtype=np.intp,
)
#: Which of the prism faces (top, bottom, +y, -x, -y, +x in the object's frame) a part has.
FACE_MASKS: dict[str, np.ndarray] = {
    "all": np.ones(6, dtype=bool),
    "no_bottom": np.array([True, False, True, True, True, True]),
    "sides": np.array([False, False, True, True, True, True]),
    "front": np.array([False, False, False, False, False, True]),
    "rear": np.array([False, False, False, True, False, False]),
}
#: Sun direction (world frame, towards the light) for Lambert shading.
LIGHT_DIR = np.array([-0.35, 0.5, 0.8]) / np.linalg.norm([-0.35, 0.5, 0.8])
AMBIENT = 0.55


@dataclass
class PolygonSoup:
    """Planar polygons on the ground (z = 0): `verts` (N, 3), polygon k = verts[starts[k] : starts[k] + counts[k]]."""

    verts: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    colours: np.ndarray  # (P, 3) uint8

    def __post_init__(self) -> None:
        p = self.starts.shape[0]
        if self.verts.ndim != 2 or self.verts.shape[1] != 3:
            raise ValueError(f"PolygonSoup.verts: expected (N, 3), got {self.verts.shape}")
        if self.counts.shape != (p,) or self.colours.shape != (p, 3):
            raise ValueError("PolygonSoup: starts, counts and colours must describe the same number of polygons")
        if p and int(self.starts[-1] + self.counts[-1]) != self.verts.shape[0]:
            raise ValueError("PolygonSoup: starts/counts do not cover verts")

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    @cached_property
    def colour_tuples(self) -> list[tuple[int, int, int]]:
        """Fill colours as Python tuples (what Pillow wants), converted once."""
        return [tuple(c) for c in self.colours.tolist()]

    @classmethod
    def from_list(cls, polys: list[np.ndarray], colours: list[tuple[int, int, int]]) -> PolygonSoup:
        polys = [np.asarray(p, dtype=np.float64) for p in polys]
        counts = np.array([len(p) for p in polys], dtype=np.intp)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp) if polys else np.zeros(0, np.intp)
        if polys:
            xy = np.concatenate(polys)
            verts = np.concatenate([xy[:, :2], np.zeros((len(xy), 1))], axis=1)
        else:
            verts = np.zeros((0, 3))
        return cls(verts, starts, counts, np.asarray(colours, dtype=np.uint8).reshape(-1, 3))

    @classmethod
    def concat(cls, soups: list[PolygonSoup]) -> PolygonSoup:
        soups = [s for s in soups if len(s)]
        if not soups:
            return cls.from_list([], [])
        offsets = np.cumsum([0] + [s.verts.shape[0] for s in soups[:-1]])
        return cls(
            np.concatenate([s.verts for s in soups]),
            np.concatenate([s.starts + o for s, o in zip(soups, offsets)]),
            np.concatenate([s.counts for s in soups]),
            np.concatenate([s.colours for s in soups]),
        )


@dataclass
class Faces:
    """Shaded quads of solids: `verts` (F, 4, 3) world, `colours` (F, 3) float, painter keys `group` and `rank`."""

    verts: np.ndarray
    colours: np.ndarray
    group: np.ndarray  # (F,) int
    rank: np.ndarray  # (F,) int
    centres: np.ndarray  # (G, 3) world centre of each group, indexed by `group`

    def __post_init__(self) -> None:
        f = self.verts.shape[0]
        if self.verts.ndim != 3 or self.verts.shape[1:] != (4, 3):
            raise ValueError(f"Faces.verts: expected (F, 4, 3), got {self.verts.shape}")
        if self.colours.shape != (f, 3) or self.group.shape != (f,) or self.rank.shape != (f,):
            raise ValueError("Faces: colours (F, 3), group (F,) and rank (F,) must match verts (F, 4, 3)")
        if f and (self.group.min() < 0 or self.group.max() >= self.centres.shape[0]):
            raise ValueError("Faces.group: ids must index Faces.centres")

    def __len__(self) -> int:
        return int(self.verts.shape[0])

    @cached_property
    def radii(self) -> np.ndarray:
        """(G,) radius about each group's centre that holds all of the group's vertices (for frustum culling)."""
        r = np.zeros(self.centres.shape[0])
        if len(self):
            d = np.linalg.norm(self.verts - self.centres[self.group][:, None, :], axis=2).max(axis=1)
            np.maximum.at(r, self.group, d)
        return r

    @classmethod
    def empty(cls) -> Faces:
        return cls(np.zeros((0, 4, 3)), np.zeros((0, 3)), np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros((0, 3)))

    @classmethod
    def concat(cls, parts: list[Faces]) -> Faces:
        """Faces of several sets in one; group ids are offset so they stay distinct."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls(
                np.zeros((0, 4, 3)), np.zeros((0, 3)), np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros((0, 3))
            )
        if len(parts) == 1:
            return parts[0]
        offsets = np.cumsum([0] + [p.centres.shape[0] for p in parts[:-1]])
        out = cls(
            np.concatenate([p.verts for p in parts]),
            np.concatenate([p.colours for p in parts]),
            np.concatenate([p.group + o for p, o in zip(parts, offsets)]),
            np.concatenate([p.rank for p in parts]),
            np.concatenate([p.centres for p in parts]),
        )
        out.__dict__["radii"] = np.concatenate([p.radii for p in parts])  # reuses a static part's cached radii
        return out


# --------------------------------------------------------------------------------------------------------------------
# Static ground
# --------------------------------------------------------------------------------------------------------------------


def _vertex_normals(line: np.ndarray) -> np.ndarray:
    """Unit left normals at the vertices of a polyline (mean of the adjacent segment directions)."""
    d = np.diff(line, axis=0)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    t = np.concatenate([d[:1], d[:-1] + d[1:], d[-1:]])
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-9)
    return np.stack([-t[:, 1], t[:, 0]], axis=1)


def _dedupe(line: np.ndarray) -> np.ndarray:
    keep = np.concatenate([[True], np.linalg.norm(np.diff(line, axis=0), axis=1) > 1e-6])
    return line[keep]


def line_quads(line: np.ndarray, width: float, offset: float = 0.0) -> list[np.ndarray]:
    """A solid painted line along a polyline as one quad per segment (offset to the left by `offset`)."""
    line = _dedupe(np.asarray(line, dtype=np.float64))
    if len(line) < 2:
        return []
    if len(line) > 2:  # straight runs of a densely sampled boundary become one quad
        line = np.asarray(shapely.simplify(shapely.LineString(line), SIMPLIFY_TOLERANCE).coords)
    n = _vertex_normals(line)
    left = line + n * (offset + width / 2)
    right = line + n * (offset - width / 2)
    quads = np.stack([left[:-1], right[:-1], right[1:], left[1:]], axis=1)
    return list(quads)


def dash_quads(line: np.ndarray, width: float, dash: float = DASH_LENGTH, gap: float = DASH_GAP) -> list[np.ndarray]:
    """Dashes along a polyline, starting with a dash at its start; each dash is one quad (dashes are short)."""
    line = _dedupe(np.asarray(line, dtype=np.float64))
    if len(line) < 2:
        return []
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))])
    s0 = np.arange(0.0, s[-1], dash + gap)
    s1 = np.minimum(s0 + dash, s[-1])
    keep = s1 - s0 > 0.2
    s0, s1 = s0[keep], s1[keep]
    if not len(s0):
        return []
    p0 = np.stack([np.interp(s0, s, line[:, 0]), np.interp(s0, s, line[:, 1])], axis=1)
    p1 = np.stack([np.interp(s1, s, line[:, 0]), np.interp(s1, s, line[:, 1])], axis=1)
    d = (p1 - p0) / np.maximum(np.linalg.norm(p1 - p0, axis=1, keepdims=True), 1e-9)
    n = np.stack([-d[:, 1], d[:, 0]], axis=1) * (width / 2)
    return list(np.stack([p0 + n, p0 - n, p1 - n, p1 + n], axis=1))


def marking_quads(line: np.ndarray, kind: MarkingType) -> tuple[list[np.ndarray], tuple[int, int, int]]:
    """Quads and paint colour of one lane boundary: white dashed / solid, yellow double solid."""
    if kind == MarkingType.DASHED:
        return dash_quads(line, MARKING_WIDTH), palette.MARKING_WHITE
    if kind == MarkingType.SOLID:
        return line_quads(line, MARKING_WIDTH), palette.MARKING_WHITE
    if kind == MarkingType.DOUBLE_SOLID:
        quads = line_quads(line, MARKING_WIDTH, DOUBLE_LINE_OFFSET) + line_quads(
            line, MARKING_WIDTH, -DOUBLE_LINE_OFFSET
        )
        return quads, palette.MARKING_YELLOW
    return [], palette.MARKING_WHITE


def lane_boundaries(map_data: MapData) -> list[tuple[np.ndarray, MarkingType]]:
    """Every painted lane boundary once (shared boundaries of neighbouring lanes are deduplicated)."""
    seen: set[tuple] = set()
    out: list[tuple[np.ndarray, MarkingType]] = []
    for lane in map_data.lanes.values():
        if lane.is_connector:
            continue
        for line, kind in ((lane.left_boundary, lane.left_marking), (lane.right_boundary, lane.right_marking)):
            if kind == MarkingType.NONE:
                continue
            a = tuple(np.round(line[0], 1))
            b = tuple(np.round(line[-1], 1))
            key = (min(a, b), max(a, b), len(line))
            if key in seen:
                continue
            seen.add(key)
            out.append((line, kind))
    return out


def crosswalk_bars(polygon_xy: np.ndarray, bar: float = CROSSWALK_BAR) -> list[np.ndarray]:
    """Zebra bars of a crosswalk: each bar spans its short side (along traffic); bars repeat along the long side."""
    rect = shapely.minimum_rotated_rectangle(shapely.Polygon(polygon_xy))
    ring = np.asarray(rect.exterior.coords)[:4]
    if len(ring) < 4:
        return []
    e0, e1 = ring[1] - ring[0], ring[2] - ring[1]
    if np.linalg.norm(e0) < np.linalg.norm(e1):
        origin, long_v, short_v = ring[1], e1, ring[0] - ring[1]
    else:
        origin, long_v, short_v = ring[0], e0, ring[3] - ring[0]
    length = float(np.linalg.norm(long_v))
    if length < 2 * bar:
        return [ring]
    u = long_v / length
    n_bars = int((length - bar) // (2 * bar)) + 1
    margin = (length - (2 * n_bars - 1) * bar) / 2
    t0 = margin + 2 * bar * np.arange(n_bars)
    a = origin + t0[:, None] * u
    b = a + bar * u
    return list(np.stack([a, b, b + short_v, a + short_v], axis=1))


#: Outline vertices closer than this to the chord of their neighbours are dropped (m): a micrometre, far below a
#: pixel at any distance a camera sees; it removes the points densely sampled straight road edges carry.
COLLINEAR_TOLERANCE = 1e-6


def drop_collinear(ring: np.ndarray, tolerance: float = COLLINEAR_TOLERANCE) -> np.ndarray:
    """A polygon outline (n, 2) without its (near-)collinear vertices: the same shape with fewer vertices, so every
    camera transforms and projects less per frame. Small outlines are returned as they are."""
    if len(ring) <= 4:
        return ring
    closed = np.concatenate([ring, ring[:1]]) if not np.array_equal(ring[0], ring[-1]) else ring
    out = shapely.get_coordinates(shapely.simplify(shapely.LineString(closed), tolerance, preserve_topology=False))
    if len(out) < 4:  # degenerate outline: keep it as given
        return ring
    return out[:-1] if not np.array_equal(ring[0], ring[-1]) else out


def build_ground(map_data: MapData) -> PolygonSoup:
    """The map's ground layers in painter order: sidewalks, road surface, crosswalks, stop lines, lane markings."""
    polys: list[np.ndarray] = []
    colours: list[tuple[int, int, int]] = []

    def add(ps, colour) -> None:
        for p in ps:
            polys.append(drop_collinear(np.asarray(p, dtype=np.float64)[:, :2]))
            colours.append(colour)

    add([a.polygon_xy for a in map_data.walkways.values()], palette.SIDEWALK)
    road = [
        a.polygon_xy
        for layer in (map_data.roadblocks, map_data.intersections, map_data.carparks)
        for a in layer.values()
    ]
    add(road, palette.ASPHALT)
    for cw in map_data.crosswalks.values():
        add(crosswalk_bars(cw.polygon_xy), palette.CROSSWALK_PAINT)
    add([a.polygon_xy for a in map_data.stop_lines.values()], palette.MARKING_WHITE)
    for line, kind in lane_boundaries(map_data):
        quads, colour = marking_quads(line, kind)
        add(quads, colour)
    return PolygonSoup.from_list(polys, colours)


# --------------------------------------------------------------------------------------------------------------------
# Per-frame solids
# --------------------------------------------------------------------------------------------------------------------

# A part: (fx0, fx1, fy0, fy1, fz0, fz1, top_scale, colour, rank, faces) with fractions of the object's length /
# width / height about its box centre (x along its heading, z up from the ground); colour None = the object's own
# colour; faces names which of the prism's faces exist (`FACE_MASKS`): a part painted after the one it sits on must
# not have faces hidden inside it, since the painter would draw them over the outside.
_Part = tuple[float, float, float, float, float, float, float, "tuple[int, int, int] | None", int, str]

_VEHICLE_PARTS: tuple[_Part, ...] = (
    (0.20, 0.40, 0.30, 0.50, 0.0, 0.30, 1.0, palette.TYRE, 0, "all"),
    (0.20, 0.40, -0.50, -0.30, 0.0, 0.30, 1.0, palette.TYRE, 0, "all"),
    (-0.40, -0.20, 0.30, 0.50, 0.0, 0.30, 1.0, palette.TYRE, 0, "all"),
    (-0.40, -0.20, -0.50, -0.30, 0.0, 0.30, 1.0, palette.TYRE, 0, "all"),
    (-0.50, 0.50, -0.50, 0.50, 0.20, 0.60, 1.0, None, 1, "all"),
    (-0.503, -0.50, 0.28, 0.44, 0.44, 0.54, 1.0, (200, 24, 24), 2, "rear"),  # tail lights
    (-0.503, -0.50, -0.44, -0.28, 0.44, 0.54, 1.0, (200, 24, 24), 2, "rear"),
    (0.50, 0.503, 0.28, 0.44, 0.44, 0.52, 1.0, (240, 236, 200), 2, "front"),  # headlights
    (0.50, 0.503, -0.44, -0.28, 0.44, 0.52, 1.0, (240, 236, 200), 2, "front"),
    (-0.34, 0.20, -0.45, 0.45, 0.60, 0.95, 0.86, palette.WINDOW, 3, "no_bottom"),
    (-0.30, 0.16, -0.39, 0.39, 0.95, 1.00, 1.0, None, 4, "no_bottom"),
)
_PEDESTRIAN_PARTS: tuple[_Part, ...] = (
    (-0.25, 0.25, -0.32, 0.32, 0.0, 0.48, 1.0, palette.PED_TROUSERS, 0, "all"),
    (-0.30, 0.30, -0.45, 0.45, 0.48, 0.83, 0.9, None, 1, "no_bottom"),
    (-0.20, 0.20, -0.20, 0.20, 0.86, 1.00, 1.0, palette.SKIN, 2, "all"),
)
_BICYCLE_PARTS: tuple[_Part, ...] = (
    (0.22, 0.50, -0.05, 0.05, 0.0, 0.40, 1.0, palette.TYRE, 0, "all"),
    (-0.50, -0.22, -0.05, 0.05, 0.0, 0.40, 1.0, palette.TYRE, 0, "all"),
    (-0.30, 0.32, -0.05, 0.05, 0.22, 0.52, 1.0, palette.BICYCLE_FRAME, 1, "all"),
    (-0.16, 0.10, -0.22, 0.22, 0.30, 0.60, 1.0, palette.PED_TROUSERS, 2, "all"),
    (-0.16, 0.14, -0.30, 0.30, 0.60, 0.86, 0.9, None, 3, "no_bottom"),
    (-0.08, 0.12, -0.14, 0.14, 0.88, 1.00, 1.0, palette.SKIN, 4, "all"),
)
_CONE_PARTS: tuple[_Part, ...] = (
    (-0.50, 0.50, -0.50, 0.50, 0.0, 0.06, 1.0, None, 0, "all"),
    (-0.36, 0.36, -0.36, 0.36, 0.06, 1.00, 0.15, None, 1, "no_bottom"),
    (-0.26, 0.26, -0.26, 0.26, 0.45, 0.62, 0.72, (240, 240, 240), 2, "sides"),
)
_BARRIER_PARTS: tuple[_Part, ...] = (
    (-0.50, 0.50, -0.50, 0.50, 0.0, 0.35, 1.0, palette.BARRIER_WHITE, 0, "all"),
    (-0.50, 0.50, -0.32, 0.32, 0.35, 1.00, 0.6, None, 1, "no_bottom"),
)
_SIGN_PARTS: tuple[_Part, ...] = (
    (-0.50, 0.50, -0.50, 0.50, 0.0, 0.06, 1.0, palette.POLE, 0, "all"),
    (-0.06, 0.06, -0.06, 0.06, 0.06, 0.50, 1.0, palette.POLE, 1, "all"),
    (-0.10, 0.10, -0.50, 0.50, 0.45, 1.00, 1.0, None, 2, "all"),
)
_GENERIC_PARTS: tuple[_Part, ...] = ((-0.50, 0.50, -0.50, 0.50, 0.0, 1.0, 1.0, None, 0, "all"),)

PARTS_BY_TYPE: dict[int, tuple[_Part, ...]] = {
    int(AgentType.VEHICLE): _VEHICLE_PARTS,
    int(AgentType.PEDESTRIAN): _PEDESTRIAN_PARTS,
    int(AgentType.BICYCLE): _BICYCLE_PARTS,
    int(AgentType.TRAFFIC_CONE): _CONE_PARTS,
    int(AgentType.BARRIER): _BARRIER_PARTS,
    int(AgentType.CZONE_SIGN): _SIGN_PARTS,
    int(AgentType.GENERIC_OBJECT): _GENERIC_PARTS,
}


def _agent_colour(agent_type: int, agent_id: str) -> np.ndarray:
    if agent_type == AgentType.VEHICLE:
        return palette.CAR_COLOURS[palette.stable_index(agent_id, len(palette.CAR_COLOURS))]
    if agent_type in (AgentType.PEDESTRIAN, AgentType.BICYCLE):
        return palette.PED_SHIRTS[palette.stable_index(agent_id, len(palette.PED_SHIRTS))].astype(np.float64)
    fixed = {
        AgentType.TRAFFIC_CONE: palette.CONE,
        AgentType.BARRIER: palette.BARRIER_RED,
        AgentType.CZONE_SIGN: palette.SIGN,
    }
    return np.asarray(fixed.get(AgentType(agent_type), palette.GENERIC), dtype=np.float64)


def prism_corners(centre_xy: np.ndarray, heading: np.ndarray, box: np.ndarray, top_scale: np.ndarray) -> np.ndarray:
    """Corners (S, 8, 3) of prisms; `box` (S, 6) = x0, x1, y0, y1, z0, z1 in each object's frame (x along heading).

    The top ring is the bottom ring scaled by `top_scale` about the part's own centre (cones, cabins, barriers).
    """
    x0, x1, y0, y1, z0, z1 = box.T
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    hx, hy = (x1 - x0) / 2, (y1 - y0) / 2
    sx = np.array([1.0, -1.0, -1.0, 1.0])
    sy = np.array([1.0, 1.0, -1.0, -1.0])
    scale = np.stack([np.ones_like(top_scale), top_scale], axis=1)  # (S, 2)
    lx = mx[:, None, None] + scale[:, :, None] * hx[:, None, None] * sx  # (S, 2, 4)
    ly = my[:, None, None] + scale[:, :, None] * hy[:, None, None] * sy
    c, s = np.cos(heading)[:, None, None], np.sin(heading)[:, None, None]
    wx = centre_xy[:, 0, None, None] + c * lx - s * ly
    wy = centre_xy[:, 1, None, None] + s * lx + c * ly
    wz = np.broadcast_to(np.stack([z0, z1], axis=1)[:, :, None], wx.shape)
    return np.stack([wx, wy, wz], axis=-1).reshape(-1, 8, 3)


@dataclass
class _SolidBatch:
    corners: list[np.ndarray]
    colours: list[np.ndarray]
    group: list[np.ndarray]
    rank: list[np.ndarray]
    emissive: list[np.ndarray]
    face_mask: list[np.ndarray]
    n_groups: int = 0


def _agent_solids(scene: Scene, step: int, batch: _SolidBatch) -> None:
    agents = scene.agents
    if not len(agents):
        return
    valid = np.nonzero(agents.valid[:, step])[0]
    if not len(valid):
        return
    states = agents.states[valid, step]
    types = agents.types[valid]
    sizes = agents.sizes[valid]
    g0 = batch.n_groups
    batch.n_groups += len(valid)
    for t in np.unique(types).tolist():
        sel = np.nonzero(types == t)[0]
        parts = PARTS_BY_TYPE[int(t)]
        n, p = len(sel), len(parts)
        frac = np.array([pt[:6] for pt in parts])  # (P, 6)
        lwh = sizes[sel]  # (n, 3)
        dims = np.repeat(lwh, 2, axis=1)  # (n, 6): L L W W H H
        box = (frac[None] * dims[:, None]).reshape(-1, 6)
        top = np.tile(np.array([pt[6] for pt in parts]), n)
        centre = np.repeat(states[sel][:, [AG_X, AG_Y]], p, axis=0)
        heading = np.repeat(states[sel][:, AG_HEADING], p)
        batch.corners.append(prism_corners(centre, heading, box, top))
        own = np.stack([_agent_colour(int(t), agents.ids[valid[i]]) for i in sel])  # (n, 3)
        cols = np.empty((n, p, 3))
        for k, pt in enumerate(parts):
            cols[:, k] = own if pt[7] is None else np.asarray(pt[7], dtype=np.float64)
        batch.colours.append(cols.reshape(-1, 3))
        batch.group.append(np.repeat(g0 + sel, p))
        batch.rank.append(np.tile(np.array([pt[8] for pt in parts]), n))
        batch.emissive.append(np.zeros(n * p, dtype=bool))
        batch.face_mask.append(np.tile(np.stack([FACE_MASKS[pt[9]] for pt in parts]), (n, 1)))


#: Traffic-light head size (depth along `facing`, width, height) and lamp spacing (m).
TL_HEAD = (0.30, 0.40, 1.05)
TL_LAMP = 0.24
TL_POLE = 0.16


def _traffic_light_solids(scene: Scene, step: int, batch: _SolidBatch) -> None:
    lights = scene.traffic_lights
    if not lights:
        return
    g0 = batch.n_groups
    batch.n_groups += len(lights)
    pos = np.stack([tl.position for tl in lights])
    facing = np.array([tl.facing for tl in lights])
    state = np.array([int(tl.states[step]) for tl in lights])
    d, w, h = TL_HEAD
    lamp_z = np.array([h / 3, 0.0, -h / 3])  # red, yellow, green from the top
    rows: list[tuple[np.ndarray, float, float, float, float, float, float, np.ndarray, int, np.ndarray]] = []
    z = pos[:, 2]
    zero = np.zeros_like(z)
    # Pole just behind the head, from the ground to the top of the head.
    rows.append((-d / 2 - TL_POLE, -d / 2, -TL_POLE / 2, TL_POLE / 2, zero, z + h / 2, np.array(palette.POLE), 0))
    rows.append((-d / 2, d / 2, -w / 2, w / 2, z - h / 2, z + h / 2, np.array(palette.LIGHT_HOUSING), 1))
    for k, name in enumerate(("red", "yellow", "green")):
        lit = (
            state
            == {"red": TrafficLightState.RED, "yellow": TrafficLightState.YELLOW, "green": TrafficLightState.GREEN}[
                name
            ]
        )
        col = np.where(
            lit[:, None], np.array(palette.LAMP_LIT[name], dtype=np.float64), np.array(palette.LAMP_DIM[name])
        )
        zc = z + lamp_z[k]
        rows.append((d / 2, d / 2 + 0.02, -TL_LAMP / 2, TL_LAMP / 2, zc - TL_LAMP / 2, zc + TL_LAMP / 2, col, 2))
    n = len(lights)
    for x0, x1, y0, y1, z0, z1, col, rank in rows:
        box = np.stack(np.broadcast_arrays(x0, x1, y0, y1, z0, z1), axis=1).astype(np.float64)
        box = np.broadcast_to(box, (n, 6)) if box.shape[0] == 1 else box
        batch.corners.append(prism_corners(pos[:, :2], facing, box, np.ones(n)))
        batch.colours.append(np.broadcast_to(np.asarray(col, dtype=np.float64), (n, 3)))
        batch.group.append(g0 + np.arange(n))
        batch.rank.append(np.full(n, rank))
        batch.emissive.append(np.full(n, rank == 2))
        # Lamps are decals on the housing's front: only their front face exists.
        batch.face_mask.append(np.tile(FACE_MASKS["front" if rank == 2 else "all"], (n, 1)))


def faces_from_prisms(
    corners: np.ndarray,
    colours: np.ndarray,
    group: np.ndarray,
    rank: np.ndarray,
    emissive: np.ndarray | None = None,
    face_mask: np.ndarray | None = None,
) -> Faces:
    """Prisms (S, 8, 3) -> Lambert-shaded outward quads; a group's centre is the mean of its prisms' corners.

    `face_mask` (S, 6) keeps a subset of each prism's faces (order of `PRISM_FACES`; see `FACE_MASKS`).
    """
    s = corners.shape[0]
    nf = PRISM_FACES.shape[0]
    if s == 0:
        return Faces(
            np.zeros((0, 4, 3)), np.zeros((0, 3)), np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros((0, 3))
        )
    quads = corners[:, PRISM_FACES]  # (S, 6, 4, 3)
    normal = np.cross(quads[:, :, 1] - quads[:, :, 0], quads[:, :, 3] - quads[:, :, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-12)
    shade = AMBIENT + (1 - AMBIENT) * np.clip(normal @ LIGHT_DIR, 0.0, 1.0)  # (S, 6)
    if emissive is not None:
        shade = np.where(emissive[:, None], 1.0, shade)
    shaded = np.clip(colours[:, None, :] * shade[..., None], 0, 255)
    group = np.asarray(group, dtype=np.intp)
    n_groups = int(group.max()) + 1
    sums = np.zeros((n_groups, 3))
    np.add.at(sums, group, corners.mean(axis=1))
    centres = sums / np.maximum(np.bincount(group, minlength=n_groups), 1)[:, None]
    keep = np.ones((s, nf), dtype=bool) if face_mask is None else np.asarray(face_mask, dtype=bool)
    return Faces(
        verts=quads[keep],
        colours=shaded[keep],
        group=np.broadcast_to(group[:, None], (s, nf))[keep],
        rank=np.broadcast_to(np.asarray(rank, dtype=np.intp)[:, None], (s, nf))[keep],
        centres=centres,
    )


def build_faces(scene: Scene, step: int) -> Faces:
    """All solids of a frame (agents and traffic lights) as shaded, outward-wound quads."""
    batch = _SolidBatch([], [], [], [], [], [])
    _agent_solids(scene, step, batch)
    _traffic_light_solids(scene, step, batch)
    if not batch.corners:
        return Faces.empty()
    return faces_from_prisms(
        np.concatenate(batch.corners),
        np.concatenate(batch.colours),
        np.concatenate(batch.group),
        np.concatenate(batch.rank),
        np.concatenate(batch.emissive),
        np.concatenate(batch.face_mask),
    )


def shadow_polygons(scene: Scene, step: int, margin: float = 0.15) -> np.ndarray:
    """Dark ground quads (S, 4, 2) under vehicles and bicycles so they sit on the road."""
    agents = scene.agents
    if not len(agents):
        return np.zeros((0, 4, 2))
    sel = agents.valid[:, step] & np.isin(agents.types, [int(AgentType.VEHICLE), int(AgentType.BICYCLE)])
    if not sel.any():
        return np.zeros((0, 4, 2))
    from sim.scene import box_corners

    st = agents.states[sel, step]
    return box_corners(
        st[:, AG_X], st[:, AG_Y], st[:, AG_HEADING], agents.sizes[sel, 0] + margin, agents.sizes[sel, 1] + margin
    )
