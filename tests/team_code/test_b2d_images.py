"""BGRA -> model RGB: channel order, geometry of the resize + centre crop, JPEG round trip."""

from __future__ import annotations

import numpy as np
import pytest

from agent.types import bench2drive_rig
from team_code.config import ImageConfig
from team_code.images import ImagePreprocessor


@pytest.fixture(params=["pillow", "opencv"])
def backend(request):
    if request.param == "opencv":
        pytest.importorskip("cv2")
    return request.param


def _bgra(h=900, w=1600, bgr=(10, 20, 30)):
    f = np.empty((h, w, 4), dtype=np.uint8)
    f[..., 0], f[..., 1], f[..., 2], f[..., 3] = bgr[0], bgr[1], bgr[2], 255
    return f


def test_channel_order_is_rgb_and_shape_is_model_input(backend):
    out = ImagePreprocessor(ImageConfig(height=256, jpeg_quality=None, backend=backend), num_threads=1).one(_bgra())
    assert out.shape == (256, 704, 3) and out.dtype == np.uint8
    assert out[100, 100].tolist() == [30, 20, 10]


def test_crop_geometry_matches_resized_intrinsics(backend):
    # A bright 10-row band centred on source row 450 and a 10-column band centred on column 1200.
    f = _bgra(bgr=(0, 0, 0))
    f[445:455, :, :3] = 255
    f[:, 1195:1205, :3] = 255
    out = ImagePreprocessor(ImageConfig(height=256, jpeg_quality=None, backend=backend), num_threads=1).one(f)
    rows = out[:, 10, 0].astype(float)
    cols = out[20, :, 0].astype(float)
    # Scale 704/1600 = 0.44; 900 rows -> 396, cropped by (396 - 256)/2 = 70: row 450 -> 0.44*450 - 70 = 128.
    assert np.sum(rows * np.arange(256)) / rows.sum() == pytest.approx(128.0 - 0.5, abs=0.3)
    assert np.sum(cols * np.arange(704)) / cols.sum() == pytest.approx(0.44 * 1200 - 0.5, abs=0.3)
    # The model rig at 704x256 has its principal point at the crop centre and f = 0.44 * the 1600x900 focal length.
    k_full, k_model = bench2drive_rig().intrinsics(), bench2drive_rig(704, 256).intrinsics()
    assert k_model[0, 0, 0] == pytest.approx(0.44 * k_full[0, 0, 0])
    assert k_model[0, 1, 2] == pytest.approx(0.44 * k_full[0, 1, 2] - 70.0)


@pytest.mark.parametrize("where", ["model", "native"])
def test_jpeg_round_trip_close_to_source(where, backend):
    out = ImagePreprocessor(
        ImageConfig(height=256, jpeg_quality=20, jpeg_at=where, backend=backend), num_threads=1
    ).one(_bgra())
    assert np.abs(out.astype(int) - np.array([30, 20, 10])).max() <= 4


def test_threaded_batch_and_errors(backend):
    pre = ImagePreprocessor(ImageConfig(height=256, jpeg_quality=None, backend=backend), num_threads=3)
    try:
        out = pre({"a": _bgra(bgr=(1, 2, 3)), "b": _bgra(h=450, w=800, bgr=(4, 5, 6))})
        assert out["a"][0, 0].tolist() == [3, 2, 1] and out["b"][0, 0].tolist() == [6, 5, 4]
    finally:
        pre.close()
    with pytest.raises(ValueError, match="BGRA"):
        ImagePreprocessor(ImageConfig(backend=backend)).one(np.zeros((900, 1600, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="too wide"):
        ImagePreprocessor(ImageConfig(height=256, backend=backend)).one(np.zeros((200, 1600, 4), dtype=np.uint8))


def test_default_keeps_aspect_with_exact_rig_geometry(backend):
    pre = ImagePreprocessor(ImageConfig(backend=backend), num_threads=1)
    f = _bgra(bgr=(0, 0, 0))
    f[445:455, :, :3] = 255  # band centred on row 450 -> 0.44 * 450 = 198, the 704x396 image centre
    out = pre.one(f)
    assert out.shape == (396, 704, 3) and pre.output_size(1600, 900) == (704, 396)
    rows = out[:, 5, 0].astype(float)
    assert np.sum(rows * np.arange(396)) / rows.sum() == pytest.approx(198.0 - 0.5, abs=0.3)
    k = bench2drive_rig(704, 396).intrinsics()[0]
    assert k[1, 2] == pytest.approx(198.0) and k[0, 0] == pytest.approx(0.44 * 1600 / (2 * np.tan(np.radians(35))))


def test_opencv_and_pillow_backends_agree_on_smooth_images():
    pytest.importorskip("cv2")
    yy, xx = np.mgrid[0:900, 0:1600]
    f = np.empty((900, 1600, 4), dtype=np.uint8)
    f[..., 0] = (xx * 255 // 1599).astype(np.uint8)
    f[..., 1] = (yy * 255 // 899).astype(np.uint8)
    f[..., 2] = ((xx + yy) % 256).astype(np.uint8) // 2 + 60
    f[..., 3] = 255
    for cfg in (dict(), dict(height=256)):
        a = ImagePreprocessor(ImageConfig(backend="pillow", **cfg), num_threads=1).one(f).astype(int)
        b = ImagePreprocessor(ImageConfig(backend="opencv", **cfg), num_threads=1).one(f).astype(int)
        assert a.shape == b.shape
        assert np.abs(a - b).mean() < 1.5


def test_width_from_the_policy_and_halving_reduction():
    from types import SimpleNamespace

    from agent.config import PreprocessConfig
    from team_code.irlvla_b2d_agent import policy_image_width

    tiny = SimpleNamespace(cfg=SimpleNamespace(preprocess=PreprocessConfig(image_width=352, image_height=128)))
    assert policy_image_width(tiny) == 352  # 1600x900 fitted to width 352 covers 128 rows: 352x198, no resample
    assert policy_image_width(SimpleNamespace(cfg=SimpleNamespace(preprocess=PreprocessConfig()))) == 704
    assert policy_image_width(object()) is None  # a planner without a model config
    pre = ImagePreprocessor(ImageConfig(), num_threads=1, width=352)
    assert pre.output_size(1600, 900) == (352, 198)
    assert ImagePreprocessor(ImageConfig(width=512), width=352).output_size(1600, 900) == (512, 288)  # config wins
    cv2 = pytest.importorskip("cv2")
    from team_code.images import _area_reduce

    f = np.random.default_rng(0).integers(0, 256, (900, 1600, 4), dtype=np.uint8)
    for factor in (2, 4, 6):
        rows, cols = 900 - 900 % factor, 1600 - 1600 % factor
        direct = cv2.resize(f[:rows, :cols], (cols // factor, rows // factor), interpolation=cv2.INTER_AREA)
        halved = _area_reduce(cv2, f[:rows, :cols], factor)
        assert halved.shape == direct.shape
        assert np.abs(halved.astype(int) - direct.astype(int)).max() <= 1  # one rounding step per halving
