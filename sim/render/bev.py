"""Bird's-eye-view rasters: semantic class labels for BEV segmentation and a coloured picture for people.

The raster follows `agent.geometry`'s BEV convention: ego (rear axle) at the centre, row 0 farthest ahead (+x),
column 0 leftmost (+y), `range_m` metres on a side. A cell takes a layer's class when the layer's polygon overlaps it
(Pillow's rule: each vertex is snapped to the cell containing it and boundary cells are filled), so thin objects never
vanish from the labels.
Layers are painted in class order, so the later class wins (see `palette.BEV_CLASSES`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from agent import geometry
from sim.render import palette
from sim.render.common import resolve_ego_pose, resolve_step
from sim.render.mesh import lane_boundaries
from sim.scene import AG_HEADING, AG_X, AG_Y, Scene, box_corners

logger = logging.getLogger(__name__)

__all__ = ["BEV_CLASSES", "render_bev", "render_bev_rgb"]

BEV_CLASSES = palette.BEV_CLASSES


def _check_raster(size: int, range_m: float) -> None:
    if not isinstance(size, (int, np.integer)) or size <= 0:
        raise ValueError(f"BEV size must be a positive integer, got {size!r}")
    if not (isinstance(range_m, (int, float, np.floating)) and math.isfinite(range_m) and range_m > 0):
        raise ValueError(f"BEV range_m must be a positive finite number of metres, got {range_m!r}")


class _Painter:
    """World polygons/lines -> Pillow pixel coordinates of one BEV raster."""

    def __init__(self, draw: ImageDraw.ImageDraw, pose: np.ndarray, size: int, range_m: float) -> None:
        self.draw = draw
        self.pose = pose
        self.size = size
        self.range_m = range_m
        self.px_per_m = size / range_m
        # World-space disc that can touch the raster (its circumscribed circle), for culling.
        self.reach = range_m / math.sqrt(2.0) + 1.0

    def xy(self, world_pts: np.ndarray) -> np.ndarray:
        """World (..., 2) -> Pillow (x = col, y = row) coordinates; cell (i, j) spans [i, i+1) x [j, j+1)."""
        local = geometry.points_to_local(self.pose, world_pts)
        rc = geometry.world_to_bev_pixel(local, self.size, self.range_m)
        return np.stack([rc[..., 1], rc[..., 0]], axis=-1)

    def near(self, pts: np.ndarray) -> bool:
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        d = np.maximum(np.maximum(lo - self.pose[:2], self.pose[:2] - hi), 0.0)
        return bool(np.hypot(*d) <= self.reach)

    def polygon(self, pts: np.ndarray, fill, outline=None) -> None:
        if len(pts) >= 3 and self.near(pts):
            self.draw.polygon(self.xy(pts).ravel().tolist(), fill=fill, outline=outline)

    def line(self, pts: np.ndarray, fill, width: int = 1) -> None:
        if len(pts) >= 2 and self.near(pts):
            self.draw.line(self.xy(pts).ravel().tolist(), fill=fill, width=width)


def _paint_layers(scene: Scene, step: int, painter: _Painter, fill: Callable[[int], object], line_width: int) -> None:
    """Paint the seven classes in order; `fill(class_id)` gives the Pillow fill value of a class."""
    m = scene.map
    for layer in (m.roadblocks, m.intersections, m.carparks):
        for area in layer.values():
            painter.polygon(area.polygon_xy, fill(palette.BEV_DRIVABLE))
    for line, _kind in lane_boundaries(m):
        painter.line(line, fill(palette.BEV_MARKING), line_width)
    for area in m.stop_lines.values():
        painter.polygon(area.polygon_xy, fill(palette.BEV_MARKING))
    for area in m.crosswalks.values():
        painter.polygon(area.polygon_xy, fill(palette.BEV_CROSSWALK))
    agents = scene.agents
    if not len(agents):
        return
    valid = np.nonzero(agents.valid[:, step])[0]
    if not len(valid):
        return
    st = agents.states[valid, step]
    corners = box_corners(st[:, AG_X], st[:, AG_Y], st[:, AG_HEADING], agents.sizes[valid, 0], agents.sizes[valid, 1])
    cls = np.array([palette.AGENT_BEV_CLASS[int(t)] for t in agents.types[valid]])
    far = np.hypot(st[:, AG_X] - painter.pose[0], st[:, AG_Y] - painter.pose[1]) > painter.reach + 10.0
    for c in (palette.BEV_VEHICLE, palette.BEV_VRU, palette.BEV_STATIC):
        for i in np.nonzero((cls == c) & ~far)[0].tolist():
            painter.draw.polygon(painter.xy(corners[i]).ravel().tolist(), fill=fill(c))


def render_bev(
    scene: Scene, step: int | None = None, size: int = 128, range_m: float = 64.0, ego_pose=None
) -> np.ndarray:
    """(size, size) uint8 class ids (`BEV_CLASSES`) around the ego at `step`; `ego_pose` overrides the logged pose."""
    _check_raster(size, range_m)
    step = resolve_step(scene, step)
    pose = resolve_ego_pose(scene, step, ego_pose)
    img = Image.new("L", (size, size), palette.BEV_BACKGROUND)
    painter = _Painter(ImageDraw.Draw(img), pose, size, range_m)
    _paint_layers(scene, step, painter, int, 1)
    return np.asarray(img).copy()


def render_bev_rgb(
    scene: Scene, step: int | None = None, size_px: int = 512, range_m: float = 64.0, ego_pose=None
) -> np.ndarray:
    """(size_px, size_px, 3) uint8 picture: classes coloured, connectors by light state, route, headings, ego box."""
    _check_raster(size_px, range_m)
    step = resolve_step(scene, step)
    pose = resolve_ego_pose(scene, step, ego_pose)
    img = Image.new("RGB", (size_px, size_px), tuple(palette.BEV_CLASS_RGB[palette.BEV_BACKGROUND].tolist()))
    draw = ImageDraw.Draw(img)
    painter = _Painter(draw, pose, size_px, range_m)
    ppm = painter.px_per_m
    rgb = [tuple(c) for c in palette.BEV_CLASS_RGB.tolist()]
    _paint_layers(scene, step, painter, lambda c: rgb[c], max(1, round(0.2 * ppm)))
    # Walkways are not a label class but help reading the picture.
    for area in scene.map.walkways.values():
        painter.polygon(area.polygon_xy, None, outline=(120, 120, 110))
    # Connectors controlled by a light, coloured by its state.
    lanes = scene.map.lanes
    for tl in scene.traffic_lights:
        colour = palette.STATE_RGB.get(int(tl.states[step]), palette.STATE_RGB[3])
        for cid in tl.connector_ids:
            painter.line(lanes[cid].centerline, colour, max(1, round(0.35 * ppm)))
    # Route centreline.
    painter.line(scene.route.centerline[:, :2], (0, 220, 230), max(1, round(0.3 * ppm)))
    # Agent headings: a line from the box centre to its front.
    agents = scene.agents
    if len(agents):
        valid = np.nonzero(agents.valid[:, step])[0]
        st = agents.states[valid, step]
        half = agents.sizes[valid, 0] / 2
        for k in range(len(valid)):
            x, y, h = st[k, AG_X], st[k, AG_Y], st[k, AG_HEADING]
            tip = np.array([[x, y], [x + (half[k] + 0.8) * math.cos(h), y + (half[k] + 0.8) * math.sin(h)]])
            painter.line(tip, (250, 250, 250), max(1, round(0.15 * ppm)))
    # The ego box (rear-axle pose -> box centre) with its heading.
    ep = scene.ego_params
    c = geometry.rear_axle_to_center(pose, ep.rear_axle_to_center)
    ego_box = box_corners(c[0], c[1], c[2], ep.length, ep.width)
    painter.polygon(ego_box, (40, 200, 90), outline=(255, 255, 255))
    nose = np.array([c[:2], c[:2] + (ep.length / 2) * np.array([math.cos(c[2]), math.sin(c[2])])])
    painter.line(nose, (255, 255, 255), max(1, round(0.2 * ppm)))
    return np.asarray(img).copy()
