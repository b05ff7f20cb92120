"""Per-route MP4 videos of a closed-loop drive: the Bench2Drive camera mosaic beside a BEV picture, with a status line.

Frames are rendered from the world at `fps` (10 by default, every other 20 Hz tick) at a small resolution so that
recording stays cheap; they are encoded with imageio-ffmpeg (or OpenCV when that is what is installed), both in the
`viz` extra and imported only here. Frames are kept in memory per route (about 1 MB per second of driving).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from agent.types import bench2drive_rig
from irlvla.atomic import atomic_path


class RouteRecorder:
    """Collects frames from `TickInfo`s and writes them as one MP4."""

    def __init__(self, fps: int = 10, camera_width: int = 320, camera_height: int = 180, bev_px: int = 368) -> None:
        self.fps = fps
        self.rig = bench2drive_rig(camera_width, camera_height)
        self.bev_px = bev_px
        self.frames: list[np.ndarray] = []
        self._every = None

    def add(self, info) -> None:
        if self._every is None:
            self._every = max(int(round(1.0 / (self.fps * info.world.dt))), 1)
        if (info.tick - 1) % self._every:
            return
        from sim.render import mosaic, render_bev_rgb, render_cameras

        scene = info.world.scene_at(info.ego, info.snapshot)
        cams = mosaic(render_cameras(scene, 0, self.rig, ego_pose=info.ego.pose), self.rig)
        bev = render_bev_rgb(scene, 0, size_px=self.bev_px, ego_pose=info.ego.pose)
        h = max(cams.shape[0], bev.shape[0])
        canvas = np.zeros((h + 24, cams.shape[1] + bev.shape[1], 3), np.uint8)
        canvas[: cams.shape[0], : cams.shape[1]] = cams
        canvas[: bev.shape[0], cams.shape[1] :] = bev
        img = Image.fromarray(canvas)
        c = info.control
        text = (
            f"{info.route.spec.leaderboard_id}  t={info.time_s:6.1f}s  v={info.ego.speed:5.2f} m/s  "
            f"throttle={c.throttle:.2f} steer={c.steer:+.2f} brake={c.brake:.2f}  RC={info.criteria.completion:5.1f}%"
        )
        ImageDraw.Draw(img).text((6, h + 6), text, fill=(255, 255, 255))
        frame = np.asarray(img)
        # codecs want even sizes
        self.frames.append(frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2])

    def write(self, path: str | Path) -> Path | None:
        if not self.frames:
            return None
        path = Path(path)
        with atomic_path(path) as tmp:
            write_mp4(tmp, self.frames, self.fps)
        return path


def write_mp4(path: Path, frames: list[np.ndarray], fps: int) -> None:
    """Encode RGB frames as H.264 MP4 with imageio-ffmpeg, else OpenCV's mp4v; neither: ImportError naming the extra."""
    try:
        import imageio_ffmpeg
    except ImportError:
        imageio_ffmpeg = None
    h, w = frames[0].shape[:2]
    if imageio_ffmpeg is not None:
        writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                             macro_block_size=2, quality=7)  # fmt: skip
        writer.send(None)
        for f in frames:
            writer.send(np.ascontiguousarray(f))
        writer.close()
        return
    try:
        import cv2
    except ImportError as e:
        raise ImportError("recording videos needs imageio-ffmpeg or OpenCV: pip install 'irlvla[viz]'") from e
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not vw.isOpened():
        raise RuntimeError(f"OpenCV could not open a video writer for {path}")
    for f in frames:
        vw.write(np.ascontiguousarray(f[..., ::-1]))
    vw.release()
