"""Renderers of the embedded world: pinhole cameras, BEV label rasters and pictures, and camera mosaics.

images = render_cameras(scene, step, bench2drive_rig())   # {camera name: (H, W, 3) uint8 RGB}
frames = render_cameras_bgra(scene, step, rig)            # {camera name: (H, W, 4) uint8 BGRA, as CARLA delivers}
labels = render_bev(scene, step)                          # (128, 128) uint8 ids of BEV_CLASSES
picture = mosaic(images, rig)                             # 2x3 grid for six cameras
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from agent.types import CameraRig
from sim.render.bev import render_bev, render_bev_rgb
from sim.render.camera import CameraRenderer, RenderConfig, clip_near
from sim.render.mosaic import mosaic, mosaic_layout
from sim.render.palette import BEV_CLASS_RGB, BEV_CLASSES
from sim.scene import Scene

__all__ = [
    "BEV_CLASSES",
    "BEV_CLASS_RGB",
    "CameraRenderer",
    "RenderConfig",
    "clip_near",
    "get_renderer",
    "mosaic",
    "mosaic_layout",
    "render_bev",
    "render_bev_rgb",
    "render_cameras",
    "render_cameras_bgra",
]


@lru_cache(maxsize=8)
def get_renderer(rig: CameraRig, config: RenderConfig | None = None) -> CameraRenderer:
    """A shared renderer per (rig, config): its per-camera precomputation and map caches are reused across calls."""
    return CameraRenderer(rig, config)


def render_cameras(scene: Scene, step: int | None, rig: CameraRig, ego_pose=None) -> dict[str, np.ndarray]:
    """{camera name: (H, W, 3) uint8 RGB} of `scene` at `step` (None: the current frame) seen from `rig`.

    `ego_pose` (x, y, heading), the rear-axle world pose, replaces the logged ego pose (closed-loop use).
    """
    return get_renderer(rig).render(scene, step, ego_pose)


def render_cameras_bgra(scene: Scene, step: int | None, rig: CameraRig, ego_pose=None) -> dict[str, np.ndarray]:
    """{camera name: (H, W, 4) uint8 BGRA, alpha 255} (CARLA's camera layout): the pixels of `render_cameras`, drawn
    in that layout directly, so a leaderboard stand-in needs no conversion pass."""
    return get_renderer(rig).render_bgra(scene, step, ego_pose)
