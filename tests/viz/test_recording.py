"""The HUD's headless recording: one MP4 frame per step through the chosen encoder (the writer itself is tested in
tests/irlvla/test_video.py)."""

from __future__ import annotations

import pytest

pygame = pytest.importorskip("pygame")  # the `viz` extra

from hud_fixtures import make_plan, make_view  # noqa: E402

from irlvla.video import pick_encoder  # noqa: E402
from viz.config import HudConfig  # noqa: E402
from viz.viewer import HudViewer  # noqa: E402


def _count_frames(path) -> int:
    cv2 = pytest.importorskip("cv2")
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


@pytest.mark.parametrize("encoder", ["imageio-ffmpeg", "opencv"])
def test_viewer_records_one_frame_per_step(tmp_path, encoder):
    try:
        pick_encoder(encoder)
    except ImportError:
        pytest.skip(f"{encoder} not installed")
    out = tmp_path / "route.mp4"
    viewer = HudViewer(HudConfig(width=640, height=360, bev_px=240, mosaic_height=150), video=out, encoder=encoder)
    for _ in range(4):
        viewer.show(make_plan(), make_view())
    assert not out.exists()  # written under a temporary name until closed
    assert viewer.close() == out
    assert out.stat().st_size > 0 and _count_frames(out) == 4
    assert not list(tmp_path.glob(".*partial*"))
