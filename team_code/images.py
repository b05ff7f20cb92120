"""Camera frames from the leaderboard (H, W, 4) BGRA uint8 -> the model's (h, w, 3) RGB uint8.

Geometry: the frame is scaled by w / W (square pixels, unchanged horizontal fov) and, when a height is configured,
centre-cropped to it; either way the result is exactly `CameraSpec.resized(w, h)` (principal point at the centre), so
`agent.types.bench2drive_rig(w, h)` describes it. A crop is taken first, in source pixels, so only kept rows are
resampled.

Speed: with OpenCV (the `carla` extra) the BGRA frame is box-reduced by the integer factor (`INTER_AREA` by 2,
repeated while the factor stays even: OpenCV's halving path is about 6x faster than one reduction by 4, and a 2x2 mean
of 2x2 means is the 4x4 mean up to one rounding step), mapped onto the exact source box with one bilinear
`warpAffine`, and only then converted to RGB, so the channel shuffle touches the small image. Without OpenCV, Pillow
decodes BGRA straight to RGB ("BGRX" raw mode), an integer box `reduce` does the antialiasing and a bilinear resize
finishes. Cameras run on a small thread pool because both libraries release the GIL.
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


def _load_cv2(backend: str):
    """OpenCV module for the "opencv"/"auto" backends, or None to use Pillow."""
    if backend == "pillow":
        return None
    try:
        import cv2
    except ImportError:
        if backend == "opencv":
            raise ImportError(
                "ImageConfig.backend='opencv' needs OpenCV: pip install 'irlvla[carla]' (opencv-python-headless)"
            ) from None
        return None
    cv2.setNumThreads(1)  # the agent parallelises over cameras itself
    return cv2


#: output width when neither `ImageConfig.width` nor the policy gives one (the Bench2Drive Zoo agents' 704).
FALLBACK_WIDTH = 704


def _area_reduce(cv2, img: np.ndarray, factor: int) -> np.ndarray:
    """Mean over `factor` x `factor` blocks (the image's sides are multiples of `factor`), halving while it can."""
    while factor > 1:
        step = 2 if factor % 2 == 0 else factor
        h, w = img.shape[:2]
        img = cv2.resize(img, (w // step, h // step), interpolation=cv2.INTER_AREA)
        factor //= step
    return img


class ImagePreprocessor:
    """BGRA -> RGB, optional JPEG round trip, resize + centre crop to (cfg.height, width).

    `width`: the output width when `cfg.width` is null (the agent passes the policy's own resize width); without
    either, `FALLBACK_WIDTH`."""

    def __init__(self, cfg: ImageConfig, num_threads: int | None = None, width: int | None = None) -> None:
        self.cfg = cfg
        self.width = int(cfg.width or width or FALLBACK_WIDTH)
        n = min(cfg.threads if num_threads is None else num_threads, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="b2d-img") if n > 1 else None
        self._filter = Image.BILINEAR if cfg.resample == "bilinear" else Image.NEAREST
        self._cv2 = _load_cv2(cfg.backend)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(w, h) of the preprocessed image for a `width` x `height` frame."""
        h = self.cfg.height if self.cfg.height is not None else max(1, round(height * self.width / width))
        return self.width, h

    def crop_box(self, width: int, height: int) -> tuple[int, float, int, float]:
        """Source-pixel box (left, top, right, bottom) that maps onto the model image."""
        scale = self.width / width
        src_h = self.output_size(width, height)[1] / scale
        if src_h > height + 1e-6:
            raise ValueError(
                f"a {width}x{height} frame scaled to width {self.width} is {height * scale:.1f} rows, fewer than "
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
        q = self.cfg.jpeg_quality
        if self._cv2 is not None and not (q is not None and self.cfg.jpeg_at == "native"):
            return self._one_cv2(bgra)
        img = Image.frombuffer("RGB", (w, h), np.ascontiguousarray(bgra), "raw", "BGRX", 0, 1)
        if q is not None and self.cfg.jpeg_at == "native":
            img = _jpeg_round_trip(img, q)
        out_w, out_h = self.output_size(w, h)
        left, top, right, bottom = self.crop_box(w, h)
        factor = max(1, int(math.floor(w / self.width)))  # integer box-reduce first, bilinear for the rest
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

    def _one_cv2(self, bgra: np.ndarray) -> np.ndarray:
        cv2 = self._cv2
        h, w = bgra.shape[:2]
        out_w, out_h = self.output_size(w, h)
        left, top, right, bottom = self.crop_box(w, h)
        factor = max(1, int(math.floor(w / self.width)))
        src = bgra
        if factor > 1:
            t0 = int(math.floor(top))
            rows = int(math.ceil(bottom)) - t0
            rows += -rows % factor  # whole factor x factor blocks keep INTER_AREA on its fast integer path
            t0 = max(0, min(t0, h - rows))
            cols = w - w % factor
            src = _area_reduce(cv2, bgra[t0 : t0 + rows, :cols], factor)
            left, top, right, bottom = left / factor, (top - t0) / factor, right / factor, (bottom - t0) / factor
        sx, sy = (right - left) / out_w, (bottom - top) / out_h
        # Output pixel centre (u + 0.5) maps to source coordinate left + (u + 0.5) * sx - 0.5 (pixel-centre convention).
        m = np.array([[sx, 0.0, left + 0.5 * sx - 0.5], [0.0, sy, top + 0.5 * sy - 0.5]])
        interp = cv2.INTER_LINEAR if self.cfg.resample == "bilinear" else cv2.INTER_NEAREST
        small = cv2.warpAffine(
            src, m, (out_w, out_h), flags=interp | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
        )
        out = cv2.cvtColor(small, cv2.COLOR_BGRA2RGB)
        q = self.cfg.jpeg_quality
        if q is not None and self.cfg.jpeg_at == "model":
            out = np.asarray(_jpeg_round_trip(Image.fromarray(out), q))
        return out

    def __call__(self, frames: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = list(frames)
        if self._pool is None or len(names) < 2:
            return {n: self.one(frames[n]) for n in names}
        return dict(zip(names, self._pool.map(self.one, (frames[n] for n in names))))
