"""THE video writer: RGB frames -> one MP4, through a maintained encoder (imageio-ffmpeg, else OpenCV); PNG stills.

Every room that records uses this one writer (the closed-loop runner's per-route videos in `sim/closed_loop/record.py`,
the HUD's `viz/viewer.py`), so codec settings, the even-size rule and the crash safety live in one place. It sits with
the other ground-floor helpers (`irlvla.atomic`) because `sim` may not import `viz`.

Both encoders are optional (the `viz` extra brings imageio-ffmpeg; OpenCV comes with the `carla` extra) and are
imported when the first frame arrives. Frames stream to the encoder (nothing is kept in memory) under a temporary
name next to the target; `close()` renames the finished file, so a killed run never leaves a truncated video under
the final name, and `abort()` (or leaving a `with` block on an exception) deletes it.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import numpy as np

from irlvla.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)

ENCODERS = ("auto", "imageio-ffmpeg", "opencv")


def save_png(path: str | os.PathLike, frame: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB (or (H, W) grey) frame as PNG, all or nothing."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def pick_encoder(encoder: str = "auto") -> str:
    """The encoder `VideoWriter` will use for `encoder` ("auto": imageio-ffmpeg when installed, else OpenCV), or an
    ImportError naming what to install."""
    if encoder not in ENCODERS:
        raise ValueError(f"VideoWriter: encoder must be one of {ENCODERS}, got {encoder!r}")
    if encoder in ("auto", "imageio-ffmpeg"):
        try:
            import imageio_ffmpeg  # noqa: F401

            return "imageio-ffmpeg"
        except ImportError:
            if encoder == "imageio-ffmpeg":
                raise ImportError("MP4 recording needs imageio-ffmpeg: pip install 'irlvla[viz]'") from None
    try:
        import cv2  # noqa: F401
    except ImportError:
        raise ImportError(
            "MP4 recording needs imageio-ffmpeg (pip install 'irlvla[viz]') or OpenCV (opencv-python-headless)"
        ) from None
    return "opencv"


class VideoWriter:
    """Frames (H, W, 3) uint8 RGB, all of one even size -> one MP4 (H.264 yuv420p with imageio-ffmpeg, MPEG-4 part 2
    with OpenCV). The encoder is chosen at construction (`pick_encoder`), so a missing one fails before any work."""

    def __init__(self, path: str | os.PathLike, fps: float, encoder: str = "auto") -> None:
        if not (fps > 0):
            raise ValueError(f"VideoWriter: fps must be positive, got {fps}")
        self.path = Path(path)
        self.encoder = pick_encoder(encoder)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.fps = float(fps)
        self.frames = 0
        self._size: tuple[int, int] | None = None
        self._writer = None

    def _open(self, w: int, h: int) -> None:
        if self.encoder == "imageio-ffmpeg":
            import imageio_ffmpeg

            self._writer = imageio_ffmpeg.write_frames(
                str(self._tmp), (w, h), fps=self.fps, codec="libx264", pix_fmt_out="yuv420p", quality=7,
                macro_block_size=2, output_params=["-movflags", "+faststart"],
            )  # fmt: skip
            self._writer.send(None)
        else:
            import cv2

            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise OSError(f"OpenCV could not open an MP4 writer for {self._tmp}")
        self._size = (w, h)

    def write(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"VideoWriter: frames must be (H, W, 3) uint8, got {frame.dtype} {frame.shape}")
        h, w = frame.shape[:2]
        if self._writer is None:
            if w % 2 or h % 2:
                raise ValueError(f"VideoWriter: frame size must be even for yuv420p, got {w}x{h}")
            self._open(w, h)
        elif (w, h) != self._size:
            raise ValueError(f"VideoWriter: frame size changed from {self._size} to {(w, h)}")
        if self.encoder == "imageio-ffmpeg":
            self._writer.send(np.ascontiguousarray(frame))
        else:
            self._writer.write(np.ascontiguousarray(frame[..., ::-1]))
        self.frames += 1

    def close(self, path: str | os.PathLike | None = None) -> Path | None:
        """Finish the file and move it to `path` (default: the constructor's); None when no frame was written."""
        w, self._writer = self._writer, None
        if w is None:
            return None
        if self.encoder == "imageio-ffmpeg":
            w.close()
        else:
            w.release()
        final = Path(path) if path is not None else self.path
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, final)
        logger.info("wrote %s (%d frames, %s)", final, self.frames, self.encoder)
        return final

    def abort(self) -> None:
        """Drop a half-written video (the final name is never touched)."""
        w, self._writer = self._writer, None
        if w is not None:
            try:
                w.close() if self.encoder == "imageio-ffmpeg" else w.release()
            except Exception:  # the encoder may already be dead
                logger.debug("encoder close failed during abort", exc_info=True)
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


__all__ = ["ENCODERS", "VideoWriter", "pick_encoder", "save_png"]
