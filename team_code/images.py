"""Camera frames from the leaderboard (H, W, 4) BGRA uint8 -> the model's (h, w, 3) RGB uint8.

Geometry: the frame is scaled by w / W (square pixels, unchanged horizontal fov) and, when a height is configured,
centre-cropped to it; either way the result is exactly `CameraSpec.resized(w, h)` (principal point at the centre), so
`agent.types.bench2drive_rig(w, h)` describes it. A crop is taken first, in source pixels, so only kept rows are
resampled.

Speed: Pillow decodes BGRA straight to RGB ("BGRX" raw mode, no numpy channel shuffle), an integer box `reduce`
does the antialiasing cheaply and a bilinear resize finishes; cameras run on a small thread pool because Pillow's
resampling and JPEG codec release the GIL.
"""

from __future__ import annotations

import io
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from team_code.config import ImageConfig


def _jpeg_round_trip(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(quality))
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out


class ImagePreprocessor:
    """BGRA -> RGB, optional JPEG round trip, resize + centre crop to (cfg.height, cfg.width)."""

    def __init__(self, cfg: ImageConfig, num_threads: int | None = None) -> None:
        self.cfg = cfg
        n = min(cfg.threads if num_threads is None else num_threads, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="b2d-img") if n > 1 else None
        self._filter = Image.BILINEAR if cfg.resample == "bilinear" else Image.NEAREST

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(w, h) of the preprocessed image for a `width` x `height` frame."""
        h = self.cfg.height if self.cfg.height is not None else max(1, round(height * self.cfg.width / width))
        return self.cfg.width, h

    def crop_box(self, width: int, height: int) -> tuple[int, float, int, float]:
        """Source-pixel box (left, top, right, bottom) that maps onto the model image."""
        scale = self.cfg.width / width
        src_h = self.output_size(width, height)[1] / scale
        if src_h > height + 1e-6:
            raise ValueError(
                f"a {width}x{height} frame scaled to width {self.cfg.width} is {height * scale:.1f} rows, fewer than "
                f"the configured {self.cfg.height}: the camera aspect is too wide for this model input"
            )
        top = (height - src_h) / 2.0
        return 0, top, width, top + src_h

    def one(self, bgra: np.ndarray) -> np.ndarray:
        if not isinstance(bgra, np.ndarray) or bgra.dtype != np.uint8 or bgra.ndim != 3 or bgra.shape[2] != 4:
            raise ValueError(
                f"camera frame must be (H, W, 4) uint8 BGRA, got {getattr(bgra, 'dtype', type(bgra))} "
                f"{getattr(bgra, 'shape', '')}"
            )
        h, w = bgra.shape[:2]
        img = Image.frombuffer("RGB", (w, h), np.ascontiguousarray(bgra), "raw", "BGRX", 0, 1)
        q = self.cfg.jpeg_quality
        if q is not None and self.cfg.jpeg_at == "native":
            img = _jpeg_round_trip(img, q)
        out_w, out_h = self.output_size(w, h)
        left, top, right, bottom = self.crop_box(w, h)
        factor = max(1, int(math.floor(w / self.cfg.width)))  # integer box-reduce first, bilinear for the rest
        if factor > 1:
            t0, b0 = int(math.floor(top)), int(math.ceil(bottom))
            region = img.crop((0, t0, w, b0)).reduce(factor)
            box = (0.0, (top - t0) / factor, w / factor, (bottom - t0) / factor)
            out = region.resize((out_w, out_h), self._filter, box=box)
        else:
            out = img.resize((out_w, out_h), self._filter, box=(left, top, right, bottom))
        if q is not None and self.cfg.jpeg_at == "model":
            out = _jpeg_round_trip(out, q)
        arr = np.asarray(out)
        if arr.shape != (out_h, out_w, 3):  # pragma: no cover - Pillow contract
            raise RuntimeError(f"preprocessing produced {arr.shape}")
        return arr

    def __call__(self, frames: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = list(frames)
        if self._pool is None or len(names) < 2:
            return {n: self.one(frames[n]) for n in names}
        return dict(zip(names, self._pool.map(self.one, (frames[n] for n in names))))
