"""The camera renderer's drawing layer: BGRA frames drawn in place, packed inks, collinear-vertex removal and the
bounding-sphere frustum cull, each checked against the plain path it replaces."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))

from render_fixtures import showcase_scene

from agent.types import model_rig
from sim.render import CameraRenderer, render_cameras, render_cameras_bgra
from sim.render import canvas as canvas_mod
from sim.render.canvas import Canvas, bgra_to_rgb
from sim.render.mesh import drop_collinear

SQUARE = [2.0, 2.0, 9.0, 3.0, 8.0, 9.0, 1.0, 7.0]


def _reference(colour: tuple[int, int, int]) -> np.ndarray:
    """The same polygon through Pillow's public RGB path, as (H, W, 3)."""
    img = Image.new("RGB", (12, 10), (10, 20, 30))
    ImageDraw.Draw(img).polygon(SQUARE, fill=colour)
    return np.asarray(img)


def _draw(colour: tuple[int, int, int]) -> np.ndarray:
    buf = np.empty((10, 12, 4), dtype=np.uint8)
    buf[...] = (30, 20, 10, 255)  # the reference background in BGRA
    c = Canvas(buf)
    c.fill(SQUARE, c.inks(np.array([colour], dtype=np.uint8))[0])
    out = c.finish()
    assert out is buf
    return out


def test_canvas_draws_bgra_in_place_like_pillows_rgb_path():
    out = _draw((200, 100, 7))
    assert np.array_equal(out[..., 2::-1], _reference((200, 100, 7)))
    assert (out[..., 3] == 255).all()
    assert canvas_mod._probe()["shared"]  # the installed Pillow draws straight into the array


def test_packed_inks_match_pillows_draw_ink():
    core = ImageDraw.Draw(Image.new("RGBA", (1, 1))).draw
    cols = np.array([[0, 0, 0], [255, 255, 255], [1, 2, 3], [250, 7, 128]], dtype=np.uint8)
    assert canvas_mod._packed_inks(cols) == [core.draw_ink(tuple(c)) for c in cols.tolist()]


@pytest.mark.parametrize("caps", [dict(shared=False, fast=True, packed=True), dict(shared=False, fast=False)])
def test_fallback_paths_give_the_same_pixels(monkeypatch, caps):
    monkeypatch.setattr(canvas_mod, "_PROBE", {"shared": True, "fast": True, "packed": True, **caps})
    out = _draw((200, 100, 7))
    assert np.array_equal(out[..., 2::-1], _reference((200, 100, 7)))


def test_canvas_rejects_a_wrong_buffer():
    with pytest.raises(ValueError, match="uint8"):
        Canvas(np.zeros((4, 4, 3), dtype=np.uint8))


def test_bgra_frames_are_the_rgb_frames_and_new_each_call():
    scene, rig = showcase_scene(), model_rig()
    rgb = render_cameras(scene, None, rig)
    first = render_cameras_bgra(scene, None, rig)
    again = render_cameras_bgra(scene, None, rig)
    for name, img in rgb.items():
        assert first[name].shape == img.shape[:2] + (4,) and first[name].dtype == np.uint8
        assert np.array_equal(first[name][..., 2::-1], img) and (first[name][..., 3] == 255).all()
        assert np.array_equal(bgra_to_rgb(first[name]), img)
        assert not np.shares_memory(first[name], again[name])  # an agent may keep earlier frames


def test_drop_collinear_keeps_the_shape():
    xs = np.arange(0.0, 20.0)  # a 20 x 4 rectangle with a vertex every metre along its long sides
    ring = np.concatenate([np.stack([xs, np.zeros_like(xs)], 1), [[20.0, 0.0], [20.0, 4.0]]])
    ring = np.concatenate([ring, np.stack([xs[::-1], np.full_like(xs, 4.0)], 1)[:-1], [[0.0, 4.0]]])
    out = drop_collinear(ring)
    assert sorted(map(tuple, out.tolist())) == [(0.0, 0.0), (0.0, 4.0), (20.0, 0.0), (20.0, 4.0)]
    tri = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert drop_collinear(tri) is tri


def test_sphere_cull_drops_only_objects_wholly_outside_a_plane():
    cam = CameraRenderer(model_rig()).cameras[0]
    rng = np.random.default_rng(0)
    centres = rng.uniform(-60, 60, (400, 3))
    radii = rng.uniform(0.1, 8.0, 400)
    keep = cam.spheres_in_view(centres, radii, np.eye(3), np.zeros(3), 0.1, 250.0)
    # Points on each dropped sphere's surface all share an outcode bit; spheres seen by the camera are kept.
    dirs = rng.normal(size=(64, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    for c, r in zip(centres[~keep], radii[~keep]):
        codes = cam.outcodes(c + r * dirs, 0.1, 250.0)
        assert np.bitwise_and.reduce(codes) != 0
    centre_visible = cam.outcodes(centres, 0.1, 250.0) == 0
    assert keep[centre_visible].all() and (~keep).any()
