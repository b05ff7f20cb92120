"""The HUD on screen or headless: a pygame display, the keyboard, recording to MP4 and PNG screenshots.

`HudViewer.show(plan, view)` is the one call a driver makes per planning step: the HUD's `tick()` and `render()`,
one video frame, and (in a live window) the keys, waiting while paused. Headless viewers use SDL's dummy video driver
and never wait.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from irlvla.video import VideoWriter, save_png
from viz.config import HudConfig
from viz.hud import HUD
from viz.pygame_support import import_pygame
from viz.view import WorldView

if TYPE_CHECKING:
    from agent.contract import PlanResult

logger = logging.getLogger(__name__)


class KeyboardControl:
    """Keys of the HUD (after `manual_control.py`'s `KeyboardControl.parse_events`, which returns True to quit)."""

    def __init__(self, viewer: HudViewer) -> None:
        self.viewer = viewer
        self.step_requested = False

    def parse_events(self) -> bool:
        pygame = self.viewer.pygame
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                return True
            if event.type == pygame.KEYUP and self.handle_key(event.key):
                return True
        return False

    def handle_key(self, key: int) -> bool:
        """Apply one key; True means quit."""
        pg, hud = self.viewer.pygame, self.viewer.hud
        if key in (pg.K_ESCAPE, pg.K_q):
            return True
        if key == pg.K_SPACE:
            hud.paused = not hud.paused
            hud.notify("paused: N steps, SPACE resumes" if hud.paused else "resumed")
        elif key in (pg.K_n, pg.K_RIGHT):
            self.step_requested = True
        elif key in (pg.K_F1, pg.K_1):
            hud.toggle("text")
        elif key in (pg.K_F2, pg.K_2):
            hud.toggle("bev")
        elif key in (pg.K_F3, pg.K_3):
            hud.toggle("mosaic")
        elif key == pg.K_h:
            hud.toggle("help")
        elif key in (pg.K_p, pg.K_F12):
            path = self.viewer.screenshot()
            hud.notify(f"screenshot {path}")
        return False


class HudViewer:
    """A HUD with its surface: `live=True` opens a window, otherwise it draws off screen (SDL dummy driver).

    video: MP4 path to record every shown frame to (None: no video); screenshot_dir: where P / F12 write PNGs.
    """

    def __init__(
        self,
        config: HudConfig | None = None,
        live: bool = False,
        video: str | os.PathLike | None = None,
        screenshot_dir: str | os.PathLike = ".",
        encoder: str = "auto",
        title: str = "IRL-VLA HUD",
    ) -> None:
        self.cfg = config or HudConfig()
        self.live = live
        self.pygame = pg = import_pygame(headless=not live)
        size = (self.cfg.width, self.cfg.height)
        if live:
            try:
                self.surface = pg.display.set_mode(size, pg.HWSURFACE | pg.DOUBLEBUF)
            except pg.error as e:
                raise RuntimeError(f"cannot open a HUD window ({e}); run headless (without --live) instead") from e
            pg.display.set_caption(title)
        else:
            # an off-screen surface of its own, so several headless viewers can live in one process
            self.surface = pg.Surface(size)
        self.hud = HUD(self.cfg)
        self.controls = KeyboardControl(self)
        self.clock = pg.time.Clock()
        self.screenshot_dir = Path(screenshot_dir)
        self.video = VideoWriter(video, self.cfg.video_fps, encoder) if video is not None else None
        self.quit_requested = False
        self.frames_shown = 0
        self.last_view: WorldView | None = None

    # ---------------------------------------------------------------------------------------------------- showing
    def show(self, plan: PlanResult, view: WorldView) -> bool:
        """Tick, render and record one planning step; in a live window also handle keys and wait while paused.

        Returns False once the user asked to quit (the caller decides what quitting means: the demo stops, the
        CARLA agent just closes its window and drives on).
        """
        if self.quit_requested:
            return False
        self.last_view = view
        self.hud.tick(plan, view)
        self.redraw()
        if self.video is not None:
            self.video.write(self.frame())
        self.frames_shown += 1
        if self.live:
            self._interact()
        return not self.quit_requested

    def _interact(self) -> None:
        pg = self.pygame
        ctl = self.controls
        while True:
            if ctl.parse_events():
                self.quit_requested = True
                return
            if not self.hud.paused or ctl.step_requested:
                ctl.step_requested = False
                break
            self.redraw()
            self.clock.tick(30)
        if self.cfg.max_fps > 0:
            self.clock.tick(self.cfg.max_fps)
        del pg

    def redraw(self) -> None:
        self.hud.render(self.surface)
        if self.live:
            self.pygame.display.flip()

    def frame(self) -> np.ndarray:
        """The current picture as (H, W, 3) uint8 RGB."""
        w, h = self.surface.get_size()
        raw = self.pygame.image.tobytes(self.surface, "RGB")
        return np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3).copy()

    def screenshot(self, path: str | os.PathLike | None = None) -> Path:
        if path is None:
            path = self.screenshot_dir / f"hud_{self.frames_shown:06d}.png"
        return save_png(path, self.frame())

    def close(self, keep_video: bool = True) -> Path | None:
        """Finish the video (or drop it) and close the window."""
        out = None
        if self.video is not None:
            out = self.video.close() if keep_video else self.video.abort()
            self.video = None
        if self.live:
            self.pygame.display.quit()
        return out
