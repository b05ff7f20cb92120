"""Camera images tiled into one picture: front-facing cameras on the top row, rear-facing below, left to right.

For the Bench2Drive rig this is the familiar 2x3 grid (front-left, front, front-right / back-left, back,
back-right); any other rig is laid out by the same rule (cameras ordered by yaw as seen from the driver's seat).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from agent.types import CameraRig

__all__ = ["mosaic", "mosaic_layout"]


def mosaic_layout(rig: CameraRig) -> list[list[str]]:
    """Rows of camera names: cameras facing forward (|yaw| <= 90 deg) left to right, then the rear ones."""
    front = [c for c in rig.cameras if abs(math.remainder(c.yaw, 2 * math.pi)) <= math.pi / 2 + 1e-9]
    rear = [c for c in rig.cameras if c not in front]
    # Left to right: a front camera's yaw decreases (left is +yaw); a rear camera's yaw in [0, 2 pi) increases.
    front.sort(key=lambda c: -math.remainder(c.yaw, 2 * math.pi))
    rear.sort(key=lambda c: c.yaw % (2 * math.pi))
    return [[c.name for c in row] for row in (front, rear) if row]


def mosaic(images: dict[str, np.ndarray], rig: CameraRig, labels: bool = False, gap: int = 2) -> np.ndarray:
    """One (H', W', 3) uint8 picture of a rig's images; rows are centred, tiles share the first camera's size.

    Images of another size than the first camera are resized to it; missing cameras are an error.
    """
    missing = [n for n in rig.names if n not in images]
    if missing:
        raise ValueError(f"mosaic: no image for camera(s) {missing} of rig {rig.name}")
    if gap < 0:
        raise ValueError(f"mosaic: gap must be >= 0, got {gap}")
    rows = mosaic_layout(rig)
    first = np.asarray(images[rig.names[0]])
    if first.ndim != 3 or first.shape[2] != 3:
        raise ValueError(f"mosaic: images must be (H, W, 3), got {first.shape} for {rig.names[0]}")
    th, tw = first.shape[:2]
    cols = max(len(r) for r in rows)
    out = np.zeros((len(rows) * th + (len(rows) - 1) * gap, cols * tw + (cols - 1) * gap, 3), dtype=np.uint8)
    for r, names in enumerate(rows):
        x0 = (cols - len(names)) * (tw + gap) // 2
        for k, name in enumerate(names):
            tile = np.asarray(images[name], dtype=np.uint8)
            if tile.shape[:2] != (th, tw):
                tile = np.asarray(Image.fromarray(tile).resize((tw, th), Image.BILINEAR))
            y, x = r * (th + gap), x0 + k * (tw + gap)
            out[y : y + th, x : x + tw] = tile
    if labels:
        img = Image.fromarray(out)
        draw = ImageDraw.Draw(img)
        for r, names in enumerate(rows):
            x0 = (cols - len(names)) * (tw + gap) // 2
            for k, name in enumerate(names):
                draw.text((x0 + k * (tw + gap) + 6, r * (th + gap) + 4), name, fill=(255, 255, 255))
        out = np.asarray(img).copy()
    return out
