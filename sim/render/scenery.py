"""Roadside scenery for the camera images: buildings with window bands and trees, placed deterministically per map.

The scene model has no buildings; without them the cameras see roads on an empty plain. Scenery is decoration only
(never in BEV labels, never an obstacle): solids are set back from the drivable area, walkways and crosswalks, along
the outline of that occupied area, with a generator seeded by a constant so the same map always looks the same.
"""

from __future__ import annotations

import logging

import numpy as np
import shapely

from sim.render.mesh import FACE_MASKS, Faces, faces_from_prisms, prism_corners
from sim.scene import MapData

logger = logging.getLogger(__name__)

#: Gap between the occupied area (road, walkways, crosswalks) and the line scenery is placed along (m).
SETBACK = 4.0
#: Spacing of placement slots along that line (m).
SLOT_SPACING = 15.0
FACADES = np.array([(196, 184, 160), (150, 150, 146), (158, 92, 72), (120, 134, 148), (214, 210, 200), (176, 150, 120)])
GLASS = (66, 82, 100)
TRUNK = (92, 66, 44)
LEAVES = np.array([(56, 96, 48), (70, 110, 52), (44, 84, 56)])
FLOOR_HEIGHT = 3.2


def _slots(outline, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Points every `spacing` m along every ring of a (multi)polygon, with the ring's unit tangent there."""
    rings = []
    for poly in getattr(outline, "geoms", [outline]):
        if poly.is_empty:
            continue
        rings.append(poly.exterior)
        rings.extend(poly.interiors)
    pts, tans = [], []
    for ring in rings:
        length = ring.length
        if length < spacing:
            continue
        s = np.arange(spacing / 2, length, spacing)
        p = shapely.get_coordinates(shapely.line_interpolate_point(ring, s))
        q = shapely.get_coordinates(shapely.line_interpolate_point(ring, np.minimum(s + 0.5, length)))
        d = q - p
        d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
        pts.append(p)
        tans.append(d)
    if not pts:
        return np.zeros((0, 2)), np.zeros((0, 2))
    return np.concatenate(pts), np.concatenate(tans)


def build_scenery(map_data: MapData, seed: int = 7) -> Faces:
    """Static buildings and trees around the map's roads as shaded faces (empty for an empty map)."""
    layers = [
        a.polygon
        for layer in (
            map_data.roadblocks,
            map_data.intersections,
            map_data.carparks,
            map_data.walkways,
            map_data.crosswalks,
        )
        for a in layer.values()
    ]
    if not layers:
        return Faces.empty()
    occupied = shapely.union_all(layers)
    outline = occupied.buffer(SETBACK, join_style="mitre", mitre_limit=3.0)
    pts, tan = _slots(outline, SLOT_SPACING)
    if not len(pts):
        return Faces.empty()
    normal = np.stack([-tan[:, 1], tan[:, 0]], axis=1)
    # Point the normal away from the road.
    shapely.prepare(occupied)
    into = shapely.contains_xy(outline, *(pts + normal).T)
    normal = np.where(into[:, None], -normal, normal)
    rng = np.random.default_rng(seed)
    n = len(pts)
    kind = rng.random(n)  # < 0.5 building, < 0.88 tree, else nothing
    width = rng.uniform(9.0, 14.0, n)
    depth = rng.uniform(8.0, 14.0, n)
    floors = rng.integers(2, 6, n)
    facade = rng.integers(0, len(FACADES), n)
    leaves = rng.integers(0, len(LEAVES), n)
    tree_h = rng.uniform(5.0, 8.0, n)
    heading = np.arctan2(normal[:, 1], normal[:, 0])

    corners, colours, group, rank, masks = [], [], [], [], []
    clear = occupied.buffer(1.0)
    shapely.prepare(clear)

    def add(c: np.ndarray, col, g: int, r: int, faces: str = "all") -> None:
        masks.append(FACE_MASKS[faces])
        corners.append(c)
        colours.append(np.asarray(col, dtype=np.float64))
        group.append(g)
        rank.append(r)

    def prism(centre, h, x0, x1, y0, y1, z0, z1, top=1.0) -> np.ndarray:
        return prism_corners(
            np.asarray([centre]), np.array([h]), np.array([[x0, x1, y0, y1, z0, z1]]), np.array([top])
        )[0]

    g = 0
    for i in range(n):
        if kind[i] < 0.5:
            centre = pts[i] + normal[i] * depth[i] / 2
            body = prism(centre, heading[i], -depth[i] / 2, depth[i] / 2, -width[i] / 2, width[i] / 2, 0.0, 1.0)
            if shapely.intersects(clear, shapely.Polygon(body[:4, :2])):
                continue
            height = floors[i] * FLOOR_HEIGHT + 0.6
            dx, dy = depth[i] / 2, width[i] / 2
            add(prism(centre, heading[i], -dx, dx, -dy, dy, 0.0, height), FACADES[facade[i]], g, 0)
            for f in range(floors[i]):  # a glass band per floor, proud of the facade by 2 cm
                z0 = f * FLOOR_HEIGHT + 1.1
                band = prism(centre, heading[i], -dx - 0.02, dx + 0.02, -dy - 0.02, dy + 0.02, z0, z0 + 1.3)
                add(band, GLASS, g, 1, "sides")
            g += 1
        elif kind[i] < 0.88:
            centre = pts[i] + normal[i] * 1.5
            if shapely.intersects_xy(clear, *centre):
                continue
            h = tree_h[i]
            add(prism(centre, 0.0, -0.18, 0.18, -0.18, 0.18, 0.0, 0.45 * h), TRUNK, g, 0)
            add(prism(centre, 0.6, -1.7, 1.7, -1.7, 1.7, 0.3 * h, h, 0.25), LEAVES[leaves[i]], g, 1)
            g += 1
    if not corners:
        return Faces.empty()
    logger.debug("scenery: %d objects from %d slots", g, n)
    return faces_from_prisms(
        np.stack(corners), np.stack(colours), np.array(group), np.array(rank), face_mask=np.stack(masks)
    )
