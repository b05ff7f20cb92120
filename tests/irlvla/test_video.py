"""`irlvla.video`: the one MP4 writer (both encoders, frames read back), atomic naming, refusals, PNG stills."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from irlvla.video import VideoWriter, pick_encoder, save_png


def _encoder_or_skip(encoder: str) -> str:
    try:
        return pick_encoder(encoder)
    except ImportError:
        pytest.skip(f"{encoder} not installed")


def _read_frames(path) -> list[np.ndarray]:
    cv2 = pytest.importorskip("cv2")
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f[..., ::-1])
    cap.release()
    return frames


@pytest.mark.parametrize("encoder", ["imageio-ffmpeg", "opencv"])
def test_frames_come_back_in_order_with_their_colours(tmp_path, encoder):
    _encoder_or_skip(encoder)
    colours = [(220, 30, 30), (30, 220, 30), (30, 30, 220)]
    out = tmp_path / "v" / "clip.mp4"
    with VideoWriter(out, 10.0, encoder) as w:
        for c in colours:
            w.write(np.broadcast_to(np.array(c, np.uint8), (48, 64, 3)))
        assert not out.exists()  # a temporary name until closed
    assert w.frames == 3 and out.stat().st_size > 0
    back = _read_frames(out)
    assert len(back) == 3
    for f, c in zip(back, colours):  # flat colours survive lossy coding within a few levels, channels in RGB order
        assert f.shape == (48, 64, 3) and np.abs(f.reshape(-1, 3).mean(0) - c).max() < 12
    assert not list(out.parent.glob(".*partial*"))


def test_close_can_choose_the_final_name(tmp_path):
    _encoder_or_skip("auto")
    w = VideoWriter(tmp_path / "work" / "tmp.mp4", 5.0)
    w.write(np.zeros((16, 16, 3), np.uint8))
    final = w.close(tmp_path / "videos" / "route.mp4")
    assert final == tmp_path / "videos" / "route.mp4" and final.stat().st_size > 0
    assert not list((tmp_path / "work").iterdir())


def test_failed_recording_leaves_no_file(tmp_path):
    _encoder_or_skip("auto")
    out = tmp_path / "bad.mp4"
    with pytest.raises(ValueError, match="size changed"):
        with VideoWriter(out, 10.0) as w:
            w.write(np.zeros((36, 64, 3), np.uint8))
            w.write(np.zeros((38, 64, 3), np.uint8))
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bad_frames_and_settings_are_refused(tmp_path):
    _encoder_or_skip("auto")
    w = VideoWriter(tmp_path / "x.mp4", 10.0)
    with pytest.raises(ValueError, match="uint8"):
        w.write(np.zeros((36, 64, 3), np.float32))
    with pytest.raises(ValueError, match="even"):
        w.write(np.zeros((35, 64, 3), np.uint8))
    assert w.close() is None and not (tmp_path / "x.mp4").exists()
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "y.mp4", 0.0)
    with pytest.raises(ValueError, match="encoder"):
        VideoWriter(tmp_path / "y.mp4", 10.0, encoder="gif")


def test_save_png_round_trips(tmp_path):
    frame = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    path = save_png(tmp_path / "a" / "f.png", frame)
    assert np.array_equal(np.asarray(Image.open(path)), frame)
