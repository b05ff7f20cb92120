"""Pinhole camera renderer of the embedded world: sky, ground, road, markings and shaded solids.

Per camera the world is transformed into the optical frame with one matrix, polygons entirely outside the view
frustum are culled with a bitmask test, polygons crossing the near plane are clipped against z >= near in camera space
(before projecting, so nothing behind the camera smears across the image), and the rest is filled with Pillow's C
polygon rasteriser. Visibility is the painter's algorithm: ground layers first (the world is flat and every camera is
above it, so the ground never hides a solid), then solids far to near by object with back-face culling inside each
convex part. Everything that depends only on the rig (sky and terrain background, ground-distance fog) is computed
once in `CameraRenderer.__init__`; the map's ground polygons and roadside scenery are built once per map and cached.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PIL import Image

from agent.types import CameraRig, CameraSpec
from sim.render import palette
from sim.render.canvas import Canvas, bgra_to_rgb
from sim.render.common import resolve_ego_pose, resolve_step
from sim.render.mesh import Faces, PolygonSoup, build_faces, build_ground, shadow_polygons
from sim.render.scenery import build_scenery
from sim.scene import MapData, Scene

logger = logging.getLogger(__name__)

#: Haze opacity below which the ground is left untouched (keeps the per-pixel fog pass to a band near the horizon).
FOG_START = 0.08

# Outcode bits of a camera-space vertex.
_BEHIND, _LEFT, _RIGHT, _TOP, _BOTTOM, _FAR = 1, 2, 4, 8, 16, 32
#: Next vertex of each quad corner (the shoelace formula's partner).
_NEXT = np.array([1, 2, 3, 0])


@dataclass(frozen=True)
class RenderConfig:
    """Camera renderer settings.

    near: near clipping plane (m along the optical axis); far: polygons wholly beyond it are dropped;
    fog_distance: e-folding distance of the haze that fades far objects to the horizon colour (0 disables);
    shadows: dark contact patches under vehicles; ground_fog: per-pixel haze on road surfaces too;
    scenery: roadside buildings and trees (decoration, see `scenery.py`).
    """

    near: float = 0.1
    far: float = 250.0
    fog_distance: float = 220.0
    shadows: bool = True
    ground_fog: bool = True
    scenery: bool = True

    def __post_init__(self) -> None:
        if not (self.near > 0):
            raise ValueError(f"RenderConfig.near must be positive, got {self.near}")
        if not (self.far > self.near):
            raise ValueError(f"RenderConfig.far must exceed near ({self.near}), got {self.far}")
        if self.fog_distance < 0:
            raise ValueError(f"RenderConfig.fog_distance must be >= 0, got {self.fog_distance}")


def world_to_ego_matrix(ego_pose: np.ndarray) -> np.ndarray:
    """4x4 world -> ego (rear axle) transform for a flat-ground pose (x, y, heading)."""
    x, y, h = (float(v) for v in ego_pose)
    c, s = np.cos(h), np.sin(h)
    m = np.eye(4)
    m[:2, :2] = [[c, s], [-s, c]]
    m[:2, 3] = [-(c * x + s * y), -(-s * x + c * y)]
    return m


def clip_near(poly: np.ndarray, near: float) -> np.ndarray:
    """Clip a camera-space polygon (n, 3) against the half-space z >= near (one Sutherland-Hodgman pass, vectorised).

    Vertices in front are kept; where an edge crosses the plane its intersection is inserted. Returns (m, 3), m may be
    0 when the polygon is wholly behind the plane.
    """
    d = poly[:, 2] - near
    inside = d >= 0
    if inside.all():
        return poly
    if not inside.any():
        return poly[:0]
    n = len(poly)
    nxt_idx = np.arange(1, n + 1) % n
    dn = d[nxt_idx]
    crosses = inside != inside[nxt_idx]
    t = d / np.where(crosses, d - dn, 1.0)
    inter = poly + t[:, None] * (poly[nxt_idx] - poly)
    inter[:, 2] = near  # exact, against rounding
    # Interleave each vertex with the crossing on its outgoing edge, keeping the ones that exist.
    cand = np.empty((2 * n, 3))
    cand[0::2], cand[1::2] = poly, inter
    keep = np.empty(2 * n, dtype=bool)
    keep[0::2], keep[1::2] = inside, crosses
    return cand[keep]


class _CameraData:
    """What one camera needs per frame: intrinsics, ego -> optical transform, frustum slopes and its background."""

    def __init__(self, spec: CameraSpec, config: RenderConfig) -> None:
        self.spec = spec
        self.K = spec.intrinsics
        cam_to_ego = spec.cam_to_ego
        self.cam_to_ego = cam_to_ego
        self.ego_to_cam = np.linalg.inv(cam_to_ego)
        w, h = spec.width, spec.height
        fx, fy, cx, cy = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2]
        # Frustum half-space slopes: x >= -z * left, x <= z * right, y >= -z * top, y <= z * bottom.
        self.slopes = (cx / fx, (w - cx) / fx, cy / fy, (h - cy) / fy)
        self.background, self.fog = self._background(config)

    def _background(self, config: RenderConfig) -> tuple[np.ndarray, tuple | None]:
        """Sky gradient above the horizon, hazy terrain below, from each pixel's ray direction in the ego frame, as
        (H, W, 4) BGRA; and the ground-fog overlay (haze image, mask, offset) in the same channel order."""
        spec = self.spec
        k, rot = self.K, self.cam_to_ego[:3, :3]
        f32 = np.float32
        xc = ((np.arange(spec.width, dtype=f32) + f32(0.5)) - f32(k[0, 2])) / f32(k[0, 0])  # (W,)
        yc = ((np.arange(spec.height, dtype=f32) + f32(0.5)) - f32(k[1, 2])) / f32(k[1, 1])  # (H,)
        # Ray directions in the ego frame, one (H, W) map per axis (optical ray = (xc, yc, 1)).
        rx, ry, rz = (f32(rot[i, 0]) * xc[None, :] + f32(rot[i, 1]) * yc[:, None] + f32(rot[i, 2]) for i in range(3))
        norm = np.sqrt(rx * rx + ry * ry + rz * rz)
        elev = rz / norm
        above = elev > 0
        # Sky: horizon colour to zenith colour with sqrt(elevation), fading into haze over the first ~2 degrees.
        sky_w = np.sqrt(np.clip(elev, 0.0, 1.0))
        haze_w = 1.0 - np.clip(elev / f32(0.03), 0.0, 1.0)
        # Terrain: hazed by the distance to the ground point the ray hits (unless the per-pixel fog pass does it).
        cam_z = f32(max(float(self.cam_to_ego[2, 3]), 0.05))
        with np.errstate(divide="ignore", invalid="ignore"):
            dist = np.where(elev < -1e-6, cam_z * np.sqrt(rx * rx + ry * ry) / (norm * np.maximum(-elev, 1e-6)), np.inf)
        if config.fog_distance > 0:
            alpha = np.where(np.isfinite(dist), 1.0 - np.exp(-dist / f32(config.fog_distance)), 1.0).astype(f32)
        else:
            alpha = np.zeros_like(dist)
        baked = np.zeros_like(alpha) if config.ground_fog else alpha
        channels = []
        for c in range(3):
            sky = f32(palette.SKY_HORIZON[c]) + f32(palette.SKY_ZENITH[c] - palette.SKY_HORIZON[c]) * sky_w
            sky = sky + (f32(palette.HAZE[c]) - sky) * haze_w
            ground = f32(palette.TERRAIN[c]) + f32(palette.HAZE[c] - palette.TERRAIN[c]) * baked
            channels.append(np.where(above, sky, ground))
        img = np.clip(np.round(np.stack(channels, axis=-1)), 0, 255).astype(np.uint8)
        # Stored as BGRA, the layout every frame is drawn in (see `_render_camera`).
        background = np.empty((spec.height, spec.width, 4), dtype=np.uint8)
        background[..., :3] = img[..., ::-1]
        background[..., 3] = 255
        fog = None
        if config.ground_fog and config.fog_distance > 0:
            # Ramp the haze in from FOG_START so the blend pass only touches the far rows near the horizon.
            ramp = np.clip((alpha - FOG_START) / (1.0 - FOG_START), 0.0, 1.0)
            a = np.round(ramp * 255).astype(np.uint8)
            a[elev >= 0] = 0
            rows = np.nonzero((a > 0).any(axis=1))[0]
            if len(rows):
                r0, r1 = int(rows[0]), int(rows[-1]) + 1
                haze = tuple(int(round(c)) for c in palette.HAZE)[::-1]  # BGR
                fog = (Image.new("RGBA", (spec.width, r1 - r0), haze), Image.fromarray(a[r0:r1]), (0, r0))
        return background, fog

    # ---- per frame ----
    def outcodes(self, p: np.ndarray, near: float, far: float) -> np.ndarray:
        x, y, z = p[..., 0], p[..., 1], p[..., 2]
        left, right, top, bottom = self.slopes
        code = (z < near).astype(np.uint8) * _BEHIND
        code |= (x < -z * left).astype(np.uint8) * _LEFT
        code |= (x > z * right).astype(np.uint8) * _RIGHT
        code |= (y < -z * top).astype(np.uint8) * _TOP
        code |= (y > z * bottom).astype(np.uint8) * _BOTTOM
        code |= (z > far).astype(np.uint8) * _FAR
        return code

    def spheres_in_view(
        self, centres: np.ndarray, radii: np.ndarray, rot: np.ndarray, trans: np.ndarray, near: float, far: float
    ) -> np.ndarray:
        """(G,) bool: False where a world sphere lies wholly outside one frustum plane (then every vertex inside it
        has that plane's outcode bit). Conservative by a small margin against rounding."""
        c = centres @ rot.T + trans
        x, y, z = c[:, 0], c[:, 1], c[:, 2]
        r = radii * (1.0 + 1e-9) + 1e-6
        left, right, top, bottom = self.slopes
        out = z + r < near
        out |= z - r > far
        # Each side plane as n . v >= 0 with |n| = sqrt(1 + slope^2); a sphere is outside when n . c < -r |n|.
        out |= x + z * left < -r * np.hypot(1.0, left)
        out |= z * right - x < -r * np.hypot(1.0, right)
        out |= y + z * top < -r * np.hypot(1.0, top)
        out |= z * bottom - y < -r * np.hypot(1.0, bottom)
        return ~out

    def project(self, p: np.ndarray) -> np.ndarray:
        """Camera-space points (..., 3) with z > 0 -> continuous pixel coordinates (..., 2); pixel j spans [j, j+1).

        Pillow snaps each vertex to the pixel containing it and fills boundary pixels, which is this convention.
        """
        k = self.K
        z = p[..., 2]
        u = k[0, 0] * p[..., 0] / z + k[0, 2]
        v = k[1, 1] * p[..., 1] / z + k[1, 2]
        return np.stack([u, v], axis=-1)


#: Pixel coordinates are clamped to this band before rasterising: Pillow fills exactly up to ~1e8 (C ints) and fails
#: beyond; reaching it would need a vertex 20 km to the side at the near plane.
_GUARD = 1.0e8


def _to_flat_list(uv: np.ndarray) -> list[float]:
    return np.clip(uv, -_GUARD, _GUARD).ravel().tolist()


#: Static geometry of the last few maps, keyed by (id(map), scenery); the weak reference guards against id reuse.
_STATIC_CACHE: OrderedDict[tuple[int, bool], tuple[weakref.ref, PolygonSoup, Faces]] = OrderedDict()
_STATIC_CACHE_SIZE = 8
_STATIC_LOCK = threading.Lock()


def _static_geometry(map_data: MapData, scenery: bool) -> tuple[PolygonSoup, Faces]:
    key = (id(map_data), bool(scenery))
    with _STATIC_LOCK:
        hit = _STATIC_CACHE.get(key)
        if hit is not None and hit[0]() is map_data:
            _STATIC_CACHE.move_to_end(key)
            return hit[1], hit[2]
    soup = build_ground(map_data)
    solids = build_scenery(map_data) if scenery else Faces.empty()
    with _STATIC_LOCK:
        _STATIC_CACHE[key] = (weakref.ref(map_data), soup, solids)
        while len(_STATIC_CACHE) > _STATIC_CACHE_SIZE:
            _STATIC_CACHE.popitem(last=False)
    return soup, solids


class CameraRenderer:
    """Renders scenes into the cameras of one rig; rig-dependent work is precomputed at construction."""

    def __init__(self, rig: CameraRig, config: RenderConfig | None = None) -> None:
        if not isinstance(rig, CameraRig):
            raise TypeError(f"CameraRenderer needs a CameraRig, got {type(rig).__name__}")
        self.rig = rig
        self.config = config or RenderConfig()
        self.cameras = [_CameraData(c, self.config) for c in rig.cameras]

    # ---- caches ----
    def static(self, map_data: MapData) -> tuple[PolygonSoup, Faces]:
        """The map's ground polygons and scenery, built once per map object and shared by every renderer."""
        return _static_geometry(map_data, self.config.scenery)

    def ground(self, map_data: MapData) -> PolygonSoup:
        """The map's ground polygons (cached)."""
        return self.static(map_data)[0]

    # ---- rendering ----
    def render(self, scene: Scene, step: int | None = None, ego_pose=None) -> dict[str, np.ndarray]:
        """Images (H, W, 3) uint8 RGB per camera name of the scene at `step` (default: the current frame).

        `ego_pose` (x, y, heading), the rear-axle world pose, replaces the logged one (closed-loop simulation).
        """
        return {name: bgra_to_rgb(img) for name, img in self.render_bgra(scene, step, ego_pose).items()}

    def render_bgra(self, scene: Scene, step: int | None = None, ego_pose=None) -> dict[str, np.ndarray]:
        """Images (H, W, 4) uint8 BGRA (alpha 255) per camera name, the layout CARLA's cameras deliver; the same
        pixels as `render`, drawn in that layout directly (no conversion pass). Each call returns new arrays."""
        step = resolve_step(scene, step)
        pose = resolve_ego_pose(scene, step, ego_pose)
        ground, scenery = self.static(scene.map)
        if self.config.shadows:
            shadows = shadow_polygons(scene, step)
            if len(shadows):
                ground = PolygonSoup.concat(
                    [ground, PolygonSoup.from_list(list(shadows), [(40, 41, 44)] * len(shadows))]
                )
        faces = Faces.concat([scenery, build_faces(scene, step)])
        world_to_ego = world_to_ego_matrix(pose)
        return {cam.spec.name: self._render_camera(cam, world_to_ego, ground, faces) for cam in self.cameras}

    def _render_camera(
        self, cam: _CameraData, world_to_ego: np.ndarray, ground: PolygonSoup, faces: Faces
    ) -> np.ndarray:
        m = cam.ego_to_cam @ world_to_ego
        rot, trans = m[:3, :3], m[:3, 3]
        draw = Canvas(cam.background.copy())  # a new array per frame: agents may keep earlier frames
        self._draw_ground(cam, draw, ground, rot, trans)
        if cam.fog is not None:
            # Haze the ground by its per-pixel distance (precomputed mask; solids get their own fog below).
            haze, mask, at = cam.fog
            draw.paste(haze, at, mask)
        if len(faces):
            self._draw_faces(cam, draw, faces, rot, trans)
        return draw.finish()

    def _draw_ground(self, cam: _CameraData, draw: Canvas, soup: PolygonSoup, rot, trans) -> None:
        if not len(soup):
            return
        cfg = self.config
        p = soup.verts @ rot.T + trans
        code = cam.outcodes(p, cfg.near, cfg.far)
        culled = np.bitwise_and.reduceat(code, soup.starts) != 0
        behind = np.bitwise_or.reduceat(code & _BEHIND, soup.starts) != 0
        visible = np.nonzero(~culled)[0]
        if not len(visible):
            return
        # Project only the vertices of visible polygons, laid out contiguously.
        counts = soup.counts[visible]
        new_starts = np.zeros(len(visible), dtype=np.intp)
        np.cumsum(counts[:-1], out=new_starts[1:])
        vidx = np.repeat(soup.starts[visible] - new_starts, counts) + np.arange(int(counts.sum()))
        q = p[vidx]
        q[:, 2] = np.maximum(q[:, 2], cfg.near)
        flat = _to_flat_list(cam.project(q))
        inks = draw.inks(soup.colours[visible])
        starts, counts_l, new_l = soup.starts.tolist(), soup.counts.tolist(), new_starts.tolist()
        behind_l = behind.tolist()
        for j, k in enumerate(visible.tolist()):
            if behind_l[k]:
                s = starts[k]
                poly = clip_near(p[s : s + counts_l[k]], cfg.near)
                if len(poly) < 3:
                    continue
                xy = _to_flat_list(cam.project(poly))
            else:
                s = new_l[j]
                xy = flat[2 * s : 2 * (s + counts_l[k])]
            draw.fill(xy, inks[j])

    def _draw_faces(self, cam: _CameraData, draw: Canvas, faces: Faces, rot, trans) -> None:
        cfg = self.config
        # Whole objects outside the frustum go first, by their bounding spheres (exact: a sphere wholly outside one
        # frustum plane has every vertex outside it, which is what the per-vertex test below culls).
        sel = np.nonzero(cam.spheres_in_view(faces.centres, faces.radii, rot, trans, cfg.near, cfg.far)[faces.group])[0]
        if not len(sel):
            return
        verts = faces.verts[sel]
        p = (verts.reshape(-1, 3) @ rot.T + trans).reshape(-1, 4, 3)
        code = cam.outcodes(p, cfg.near, cfg.far)
        culled = np.bitwise_and.reduce(code, axis=1) != 0
        behind = np.bitwise_or.reduce(code & _BEHIND, axis=1) != 0
        idx = np.nonzero(~culled)[0]
        if not len(idx):
            return
        safe = p[idx]
        safe[..., 2] = np.maximum(safe[..., 2], cfg.near)
        uv = cam.project(safe)  # (n, 4, 2)
        # Back-face culling: outward-wound quads appear clockwise in the image (v points down) when facing us.
        x, y = uv[..., 0], uv[..., 1]
        area2 = np.sum(x * y[:, _NEXT] - x[:, _NEXT] * y, axis=1)
        front = (area2 < 0) | behind[idx]  # clipped faces are re-tested after clipping
        idx, uv = idx[front], uv[front]
        if not len(idx):
            return
        fidx = sel[idx]  # indices into `faces`
        centres = faces.centres[faces.group[fidx]] @ rot.T + trans
        dist = np.linalg.norm(centres, axis=1)
        colours = faces.colours[fidx]
        if cfg.fog_distance > 0:
            a = (1.0 - np.exp(-dist / cfg.fog_distance))[:, None]
            colours = colours + (palette.HAZE - colours) * a
        colours = np.clip(np.round(colours), 0, 255).astype(np.uint8)
        order = np.lexsort((faces.rank[fidx], -dist))  # far to near, then parts in rank order
        inks = draw.inks(colours)
        behind_l = behind[idx].tolist()
        uv_l = np.clip(uv, -_GUARD, _GUARD).reshape(len(idx), 8).tolist()
        for j in order.tolist():
            if behind_l[j]:
                poly = clip_near(p[idx[j]], cfg.near)
                if len(poly) < 3:
                    continue
                q = cam.project(poly)
                qx, qy = q[:, 0], q[:, 1]
                if np.sum(qx * np.roll(qy, -1) - np.roll(qx, -1) * qy) >= 0:
                    continue
                draw.fill(_to_flat_list(q), inks[j])
            else:
                draw.fill(uv_l[j], inks[j])
