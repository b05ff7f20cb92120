"""Where the camera renderer draws: a (H, W, 4) uint8 BGRA array filled through Pillow's C polygon rasteriser.

CARLA's cameras deliver BGRA, so the closed loop wants exactly that layout; RGB users convert once at the end
(`bgra_to_rgb`). Pillow has no BGRA mode, so the array is drawn as an RGBA image with every colour given in
B, G, R order: the bytes in memory are then CARLA's layout with no conversion pass.

Two costs are cut without changing a pixel:
- Pillow draws straight into the array's memory (`Image.frombuffer` over a writable array, marked writable), so no
  copy out of Pillow (`np.asarray(img)` serialises the whole image) is needed. Whether the installed Pillow does that
  is checked once; if not, `finish()` copies the image back.
- Fill colours become Pillow's 32-bit "ink" integers in one vectorised step (`inks`), and polygons go to the drawing
  core's `draw_polygon` directly, skipping `ImageDraw.polygon`'s per-call argument handling. The ink layout is
  checked against Pillow's own `draw_ink` once; Pillow versions without these core methods take the public path.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

_PROBE: dict[str, bool] = {}


def _probe() -> dict[str, bool]:
    """Which fast paths the installed Pillow supports (checked once per process)."""
    if _PROBE:
        return _PROBE
    buf = np.zeros((2, 2, 4), dtype=np.uint8)
    shared = False
    try:
        img = Image.frombuffer("RGBA", (2, 2), buf, "raw", "RGBA", 0, 1)
        img.readonly = 0
        ImageDraw.Draw(img).point((1, 1), fill=(1, 2, 3))
        shared = bool(buf[1, 1, 0] == 1 and buf[1, 1, 2] == 3 and buf[0, 0, 0] == 0)
    except Exception:  # any failure means: use the copying path
        shared = False
    core = ImageDraw.Draw(Image.new("RGBA", (1, 1))).draw
    fast = hasattr(core, "draw_polygon") and hasattr(core, "draw_ink")
    packed = False
    if fast:
        probe = np.array([[7, 130, 250], [255, 255, 255], [0, 0, 0]], dtype=np.uint8)
        packed = _packed_inks(probe) == [core.draw_ink(tuple(int(v) for v in c)) for c in probe.tolist()]
    _PROBE.update(shared=shared, fast=fast, packed=packed)
    return _PROBE


def _packed_inks(colours: np.ndarray) -> list[int]:
    """Pillow's ink for opaque 4-byte pixels [c0, c1, c2, 255]: the little-endian signed 32-bit integer of those
    bytes (what `draw_ink` returns on every supported platform; verified by `_probe`)."""
    c = colours.astype(np.uint32)
    packed = c[:, 0] | (c[:, 1] << 8) | (c[:, 2] << 16) | np.uint32(0xFF000000)
    return packed.view(np.int32).tolist()


class Canvas:
    """Polygons filled into a (H, W, 4) uint8 BGRA array (see the module docstring)."""

    def __init__(self, buf: np.ndarray) -> None:
        if buf.dtype != np.uint8 or buf.ndim != 3 or buf.shape[2] != 4 or not buf.flags.c_contiguous:
            raise ValueError(f"Canvas needs a C-contiguous (H, W, 4) uint8 array, got {buf.dtype} {buf.shape}")
        self._caps = _probe()
        self.buf = buf
        h, w = buf.shape[:2]
        if self._caps["shared"]:
            self.img = Image.frombuffer("RGBA", (w, h), buf, "raw", "RGBA", 0, 1)
            self.img.readonly = 0  # the array is writable: draw into it, not into a private copy
        else:
            self.img = Image.fromarray(buf, "RGBA")
        self.draw = ImageDraw.Draw(self.img)
        self._core = self.draw.draw if self._caps["fast"] else None

    def inks(self, rgb: np.ndarray) -> list:
        """Fill values for `rgb` (n, 3) uint8 colours, in the form `fill` takes."""
        bgr = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)[:, ::-1])
        if self._core is None:
            return [tuple(c) for c in bgr.tolist()]
        if self._caps["packed"]:
            return _packed_inks(bgr)
        return [self._core.draw_ink(tuple(c)) for c in bgr.tolist()]

    def fill(self, xy: list[float], ink) -> None:
        """Fill a polygon given as flat [u0, v0, u1, v1, ...] pixel coordinates with an ink from `inks`."""
        if self._core is None:
            self.draw.polygon(xy, fill=ink)
        else:
            self._core.draw_polygon(xy, ink, 1)

    def paste(self, overlay: Image.Image, at: tuple[int, int], mask: Image.Image) -> None:
        """Blend an RGBA overlay (colours in B, G, R order) through an L mask."""
        self.img.paste(overlay, at, mask)

    def finish(self) -> np.ndarray:
        """The drawn (H, W, 4) BGRA array."""
        if not self._caps["shared"]:
            self.buf[...] = np.asarray(self.img)
        return self.buf


def bgra_to_rgb(img: np.ndarray) -> np.ndarray:
    """(H, W, 4) BGRA -> (H, W, 3) RGB, with OpenCV when installed (several times faster than numpy's strided copy)."""
    try:
        import cv2
    except ImportError:
        return np.ascontiguousarray(img[..., 2::-1])
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
