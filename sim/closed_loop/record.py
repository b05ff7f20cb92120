"""Per-route MP4 videos of a closed-loop drive: the Bench2Drive camera mosaic beside a BEV picture, with a status line.

Frames are rendered from the world at `fps` (10 by default, every other 20 Hz tick) at a small resolution so that
recording stays cheap, and streamed to `irlvla.video.VideoWriter` (the project's one MP4 writer; imageio-ffmpeg or
OpenCV, imported only when recording) under a temporary name in `work_dir`: nothing is kept in memory, and the file
gets its final name only in `write`, once the route (and with it the leaderboard's save name) is known.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from agent.types import bench2drive_rig
from irlvla.video import VideoWriter

logger = logging.getLogger(__name__)


class RouteRecorder:
    """Renders frames from `TickInfo`s and streams them into one MP4.

    A recording failure (no encoder installed, a full disk) never stops the route: it is logged once, the recorder
    stops recording, and `write` raises it so the caller can report the missing video."""

    def __init__(self, work_dir: str | Path, fps: int = 10, camera_width: int = 320, camera_height: int = 180,
                 bev_px: int = 368, encoder: str = "auto") -> None:  # fmt: skip
        self.fps = fps
        self.rig = bench2drive_rig(camera_width, camera_height)
        self.bev_px = bev_px
        self.work_dir = Path(work_dir)
        self.encoder = encoder
        self.frames = 0
        self.error: Exception | None = None
        self._writer: VideoWriter | None = None
        self._every = None

    def add(self, info) -> None:
        if self.error is not None:
            return
        if self._every is None:
            self._every = max(int(round(1.0 / (self.fps * info.world.dt))), 1)
        if (info.tick - 1) % self._every:
            return
        try:
            frame = self.frame(info)
            if self._writer is None:
                name = f"recording_{info.route.spec.leaderboard_id}.mp4"  # a rerun overwrites a killed run's
                self._writer = VideoWriter(self.work_dir / name, self.fps, self.encoder)
            self._writer.write(frame)
            self.frames += 1
        except Exception as e:
            logger.error("recording stopped on route %s: %s", info.route.spec.leaderboard_id, e)
            self.error = e
            self.abort()

    def frame(self, info) -> np.ndarray:
        """The (even-sized) RGB frame of one tick: camera mosaic, BEV and a status line."""
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
        return frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2]  # codecs want even sizes

    def write(self, path: str | Path) -> Path | None:
        """Finish the video under `path`; None when nothing was recorded; the recording's error if it failed."""
        if self.error is not None:
            raise self.error
        w, self._writer = self._writer, None
        if w is None:
            return None
        try:
            return w.close(path)
        except Exception:
            w.abort()
            raise

    def abort(self) -> None:
        """Drop an unfinished video."""
        w, self._writer = self._writer, None
        if w is not None:
            w.abort()
