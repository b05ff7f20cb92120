"""Headless recording: MP4 through the chosen encoder (frames read back), PNG, and no truncated file on failure."""

from __future__ import annotations

import numpy as np
import pytest

pygame = pytest.importorskip("pygame")  # the `viz` extra

from hud_fixtures import make_plan, make_view  # noqa: E402

from viz.config import HudConfig  # noqa: E402
from viz.recorder import VideoWriter, _pick_encoder  # noqa: E402
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
        _pick_encoder(encoder)
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


def test_failed_recording_leaves_no_file(tmp_path):
    out = tmp_path / "bad.mp4"
    with pytest.raises(ValueError, match="size changed"):
        with VideoWriter(out, 10.0) as w:
            w.write(np.zeros((36, 64, 3), np.uint8))
            w.write(np.zeros((38, 64, 3), np.uint8))
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bad_frames_are_refused(tmp_path):
    w = VideoWriter(tmp_path / "x.mp4", 10.0)
    with pytest.raises(ValueError, match="uint8"):
        w.write(np.zeros((36, 64, 3), np.float32))
    with pytest.raises(ValueError, match="even"):
        w.write(np.zeros((35, 64, 3), np.uint8))
    assert w.close() is None
