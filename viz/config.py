"""The HUD's one config: window size, BEV scale, thresholds, colours of the emphasised plan, recording options.

Loaded through `irlvla.configload` (`load_config(HudConfig, mapping)`), e.g. from the `hud:` section of an agent
config or from `irlvla demo` options; every field has a default so `HudConfig()` is a working HUD.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.validation import require_positive

RGB = tuple[int, int, int]


def _check_rgb(owner: str, name: str, value: tuple) -> None:
    if len(value) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in value):
        raise ValueError(f"{owner}.{name} must be three integers in 0..255, got {value!r}")


@dataclass(frozen=True)
class HudConfig:
    """Layout (pixels), content thresholds and recording settings of the HUD.

    Layout: the camera mosaic fills the top-left (`width - bev_px` wide, `mosaic_height` tall), the BEV panel is the
    top-right `bev_px` square, the text panel fills the rest (two columns under the mosaic, the chosen plan's
    sub-metrics under the BEV).
    """

    width: int = 1280
    height: int = 720
    bev_px: int = 480
    mosaic_height: int = 300
    #: metres shown across the BEV panel (the model's BEV covers 64 m).
    bev_range_m: float = 64.0
    #: metres across the model's segmentation raster when the PlanResult does not say (`extras["bev_range_m"]`).
    seg_range_m: float = 64.0
    #: segmentation overlay opacity at probability 1 (0 hides it).
    seg_alpha: float = 0.45
    #: detections and predicted map elements below this score are not drawn.
    score_threshold: float = 0.3
    #: colour of the chosen trajectory (BEV and cameras); candidates use a red-yellow-green ramp over predicted EPDMS.
    chosen_rgb: RGB = (255, 0, 255)
    font_size: int = 14
    #: predicted-EPDMS history points kept for the sparkline.
    history: int = 120
    #: frames per second of recorded videos (the demo plans at 10 Hz of simulated time by default).
    video_fps: float = 10.0
    #: live window frame-rate cap (0: as fast as the world runs).
    max_fps: float = 0.0
    #: seconds a notification stays on screen (fading out).
    notice_seconds: float = 2.0

    def __post_init__(self) -> None:
        require_positive(
            "HudConfig",
            width=self.width,
            height=self.height,
            bev_px=self.bev_px,
            mosaic_height=self.mosaic_height,
            bev_range_m=self.bev_range_m,
            seg_range_m=self.seg_range_m,
            font_size=self.font_size,
            history=self.history,
            video_fps=self.video_fps,
            notice_seconds=self.notice_seconds,
        )
        for name in ("width", "height", "bev_px", "mosaic_height", "font_size", "history"):
            if int(getattr(self, name)) != getattr(self, name):
                raise ValueError(f"HudConfig.{name} must be an integer, got {getattr(self, name)!r}")
        if self.width % 2 or self.height % 2:
            raise ValueError(f"HudConfig: width and height must be even (video), got {self.width}x{self.height}")
        if self.bev_px >= self.width or self.bev_px > self.height or self.mosaic_height >= self.height:
            raise ValueError(
                f"HudConfig: panels do not fit: bev_px {self.bev_px}, mosaic_height {self.mosaic_height} in "
                f"{self.width}x{self.height}"
            )
        if not (0.0 <= self.seg_alpha <= 1.0) or not (0.0 <= self.score_threshold <= 1.0):
            raise ValueError("HudConfig.seg_alpha and score_threshold must be in [0, 1]")
        if not (self.max_fps >= 0.0):
            raise ValueError(f"HudConfig.max_fps must be >= 0, got {self.max_fps!r}")
        _check_rgb("HudConfig", "chosen_rgb", self.chosen_rgb)
