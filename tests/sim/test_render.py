"""Camera and BEV renderer tests on hand-built scenes; expected pixels are derived by hand from the rig geometry.

Rig facts used (Bench2Drive mounts, agent/types.py): CAM_FRONT sits 0.80 m ahead of the CARLA vehicle centre, which is
1.39 m ahead of the rear axle, so at x = 2.19 m; CAM_BACK at -2.0 + 1.39 = -0.61 m; both 1.60 m up, fov 70 and 110 deg.
At the model's 704 x 256, f = 352 / tan(35 deg) = 502.71 px (front) and 352 / tan(55 deg) = 246.48 px (back), and the
principal point is the image centre (352, 128). A pixel j spans [j, j + 1) in continuous image coordinates.
"""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from render_fixtures import EGO_Y, make_scene, showcase_scene

from agent.types import bench2drive_rig, model_rig, navsim_rig
from sim.render import (
    BEV_CLASSES,
    CameraRenderer,
    RenderConfig,
    clip_near,
    mosaic,
    mosaic_layout,
    render_bev,
    render_bev_rgb,
    render_cameras,
)
from sim.scene import AgentType

FRONT_X, BACK_X, CAM_Z = 0.80 + 1.39, -2.0 + 1.39, 1.60
F_FRONT = 352.0 / math.tan(math.radians(35.0))
F_BACK = 352.0 / math.tan(math.radians(55.0))
CX, CY = 352.0, 128.0
VEHICLE = BEV_CLASSES.index("vehicle")


@pytest.fixture(scope="module")
def rig():
    return model_rig()


@pytest.fixture(scope="module")
def empty(rig):
    return render_cameras(make_scene(), None, rig)


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.any(a != b, axis=-1)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


def _pillar(x: float, y: float = EGO_Y) -> tuple:
    """A 1 x 1 x 3.2 m box: its centre is at the cameras' height (1.6 m)."""
    return ("pillar", AgentType.GENERIC_OBJECT, x, y, 0.0, 1.0, 1.0, 2 * CAM_Z)


def _expected_face(f: float, depth: float, half_w: float, half_h: float) -> tuple[float, float, float, float]:
    """Continuous (v0, v1, u0, u1) of a camera-facing rectangle centred on the optical axis at `depth`."""
    return CY - f * half_h / depth, CY + f * half_h / depth, CX - f * half_w / depth, CX + f * half_w / depth


def test_rig_facts_match_hand_derivation(rig):
    front, back = rig["CAM_FRONT"], rig["CAM_BACK"]
    assert (front.x, front.z, back.x, back.z) == pytest.approx((FRONT_X, CAM_Z, BACK_X, CAM_Z))
    assert front.intrinsics[0, 0] == pytest.approx(F_FRONT)
    assert back.intrinsics[0, 0] == pytest.approx(F_BACK)


def test_box_ahead_appears_in_front_camera_at_projected_pixels(rig, empty):
    # Box centre 20 m ahead of the front camera on its axis; its rear face (towards us) is at depth 19.5 m.
    imgs = render_cameras(make_scene([_pillar(FRONT_X + 20.0)]), None, rig)
    changed = {n for n in rig.names if _changed(imgs[n], empty[n]).any()}
    assert changed == {"CAM_FRONT"}
    mask = _changed(imgs["CAM_FRONT"], empty["CAM_FRONT"])
    assert mask[int(CY), int(CX)] and mask[int(CY) - 1, int(CX) - 1]  # the image centre shows the box
    v0, v1, u0, u1 = _expected_face(F_FRONT, 19.5, 0.5, CAM_Z)  # (86.8, 169.2, 339.1, 364.9)
    r0, r1, c0, c1 = _bbox(mask)
    assert abs(r0 - math.floor(v0)) <= 1 and abs(r1 - math.floor(v1)) <= 1
    assert abs(c0 - math.floor(u0)) <= 1 and abs(c1 - math.floor(u1)) <= 1
    # Only the facing side is visible: the box covers its projected rectangle.
    assert mask[math.ceil(v0) : math.floor(v1), math.ceil(u0) : math.floor(u1)].all()


def test_box_behind_appears_in_back_camera_only(rig, empty):
    imgs = render_cameras(make_scene([_pillar(BACK_X - 20.0)]), None, rig)
    changed = {n for n in rig.names if _changed(imgs[n], empty[n]).any()}
    assert changed == {"CAM_BACK"}
    mask = _changed(imgs["CAM_BACK"], empty["CAM_BACK"])
    v0, v1, u0, u1 = _expected_face(F_BACK, 19.5, 0.5, CAM_Z)
    r0, r1, c0, c1 = _bbox(mask)
    assert abs(r0 - math.floor(v0)) <= 1 and abs(r1 - math.floor(v1)) <= 1
    assert abs(c0 - math.floor(u0)) <= 1 and abs(c1 - math.floor(u1)) <= 1


def test_ego_pose_override_moves_the_viewpoint(rig, empty):
    scene = make_scene([_pillar(FRONT_X + 20.0)])
    logged = render_cameras(scene, None, rig)
    same = render_cameras(scene, None, rig, ego_pose=(0.0, EGO_Y, 0.0))
    assert np.array_equal(logged["CAM_FRONT"], same["CAM_FRONT"])
    # 10 m further forward the rear face is at depth 9.5 m: twice as wide and tall, same centre.
    closer = render_cameras(scene, None, rig, ego_pose=(10.0, EGO_Y, 0.0))
    empty_closer = render_cameras(make_scene(), None, rig, ego_pose=(10.0, EGO_Y, 0.0))
    mask = _changed(closer["CAM_FRONT"], empty_closer["CAM_FRONT"])
    _, _, u0, u1 = _expected_face(F_FRONT, 9.5, 0.5, CAM_Z)  # (325.5, 378.5)
    _, _, c0, c1 = _bbox(mask)
    assert abs(c0 - math.floor(u0)) <= 1 and abs(c1 - math.floor(u1)) <= 1


def test_polygon_crossing_behind_the_camera_is_clipped_not_smeared(rig, empty):
    # A 12 m long wall 3 m to the left of the ego, from 6 m behind the front camera to 6 m ahead of it. Everything
    # of it in front of the camera has optical x < 0, so it may only touch the left half of the front image.
    wall = ("wall", AgentType.BARRIER, FRONT_X, EGO_Y + 3.0, 0.0, 12.0, 1.0, 1.0)
    imgs = render_cameras(make_scene([wall]), None, rig)
    mask = _changed(imgs["CAM_FRONT"], empty["CAM_FRONT"])
    assert mask[:, : int(CX)].any()
    assert not mask[:, int(CX) :].any()
    assert all(np.isfinite(img).all() for img in imgs.values())


def test_clip_near_square_crossing_the_plane():
    # Unit square in the y = 0 plane spanning z in [-1, 1]; clipping at z >= 0.5 keeps the band z in [0.5, 1].
    square = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    out = clip_near(square, 0.5)
    expected = {(1.0, 0.0, 0.5), (1.0, 0.0, 1.0), (0.0, 0.0, 1.0), (0.0, 0.0, 0.5)}
    assert {tuple(np.round(p, 9)) for p in out} == expected
    assert len(out) == 4
    assert len(clip_near(square, 2.0)) == 0
    assert np.array_equal(clip_near(square, -2.0), square)


def test_ground_under_the_front_camera_is_road_and_top_is_sky(empty):
    front = empty["CAM_FRONT"].astype(int)
    bottom, top = front[-1, int(CX)], front[0, int(CX)]
    # Asphalt is a neutral dark grey, sky is blue: a clipped road polygon fills the bottom row under the camera.
    assert bottom.max() - bottom.min() < 12 and bottom.mean() < 110
    assert top[2] > top[0] + 40


def test_render_is_deterministic(rig):
    scene = showcase_scene()
    a = render_cameras(scene, None, rig)
    b = CameraRenderer(rig).render(scene, None)
    assert all(a[n].tobytes() == b[n].tobytes() for n in rig.names)
    assert render_bev(scene, None).tobytes() == render_bev(scene, None).tobytes()


@pytest.mark.parametrize(
    "make_rig, count, hw",
    [(model_rig, 6, (256, 704)), (bench2drive_rig, 6, (900, 1600)), (navsim_rig, 8, (1080, 1920))],
)
def test_output_shapes_and_dtypes(make_rig, count, hw):
    rig = make_rig()
    imgs = render_cameras(showcase_scene(), 3, rig)
    assert list(imgs) == list(rig.names) and len(imgs) == count
    for img in imgs.values():
        assert img.dtype == np.uint8 and img.shape == (*hw, 3) and img.flags.writeable
        assert img.std() > 5  # not a blank frame


def test_bev_vehicle_ten_metres_ahead():
    # 128 cells over 64 m: 0.5 m cells, rear axle at the centre. A 4.4 x 1.8 m car centred 10 m ahead spans
    # x in [7.8, 12.2] -> rows (32 - x) / 0.5 in [39.6, 48.4] -> cells 39..48, and y in [-0.9, 0.9] -> cols 62..65.
    bev = render_bev(make_scene([("car", AgentType.VEHICLE, 10.0, EGO_Y, 0.0, 4.4, 1.8, 1.5)]), None)
    assert bev.shape == (128, 128) and bev.dtype == np.uint8
    rows, cols = np.nonzero(bev == VEHICLE)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (39, 48, 62, 65)
    assert np.all(bev[39:49, 62:66] == VEHICLE)
    # Turned by 90 deg the footprint swaps: x in [9.1, 10.9] -> rows 42..45, y in [-2.2, 2.2] -> cols 59..68.
    bev = render_bev(make_scene([("car", AgentType.VEHICLE, 10.0, EGO_Y, math.pi / 2, 4.4, 1.8, 1.5)]), None)
    rows, cols = np.nonzero(bev == VEHICLE)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (42, 45, 59, 68)


def test_bev_follows_the_ego_pose_override():
    # From 10 m further forward the car centred 10 m ahead sits on the rear axle: x in [-2.2, 2.2] -> rows 59..68.
    scene = make_scene([("car", AgentType.VEHICLE, 10.0, EGO_Y, 0.0, 4.4, 1.8, 1.5)])
    bev = render_bev(scene, None, ego_pose=(10.0, EGO_Y, 0.0))
    rows, cols = np.nonzero(bev == VEHICLE)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (59, 68, 62, 65)
    # Turning the ego left by 90 deg puts the car (10 m along world +x) on its right: ego y = -10 -> col 84.
    bev = render_bev(scene, None, ego_pose=(0.0, EGO_Y, math.pi / 2))
    rows, cols = np.nonzero(bev == VEHICLE)
    assert cols.min() <= 84 <= cols.max() and rows.min() <= 64 <= rows.max()


def test_render_config_validation_and_plain_variant(rig):
    with pytest.raises(ValueError, match="near"):
        RenderConfig(near=0.0)
    with pytest.raises(ValueError, match="far"):
        RenderConfig(near=1.0, far=0.5)
    plain = CameraRenderer(rig, RenderConfig(scenery=False, shadows=False, ground_fog=False, fog_distance=0.0))
    imgs = plain.render(make_scene([_pillar(FRONT_X + 20.0)]), None)
    # Without fog the box keeps its own colour: a generic object is brown (red > green > blue).
    r, g, b = imgs["CAM_FRONT"][int(CY), int(CX)].astype(int)
    assert r > g > b


def test_bev_map_layers():
    # The road spans world y in [-3.5, 3.5], i.e. ego y in [-1.75, 5.25] -> cols 53.5..67.5; the lane divider at
    # world y = 0 (ego y 1.75) falls in col 60; sidewalks and beyond are background. Row 100 is 18 m behind.
    bev = render_bev(make_scene(), None)
    row = bev[100]
    assert row[60] == BEV_CLASSES.index("lane_marking")
    assert np.all(row[[55, 57, 62, 65]] == BEV_CLASSES.index("drivable_area"))
    assert np.all(row[[0, 40, 52, 69, 127]] == BEV_CLASSES.index("background"))
    # A cone and a pedestrian take their classes; a crosswalk 10 m ahead shows up between them.
    scene = make_scene(
        [
            ("cone", AgentType.TRAFFIC_CONE, 5.0, EGO_Y, 0.0, 0.4, 0.4, 0.7),
            ("ped", AgentType.PEDESTRIAN, -6.0, EGO_Y, 0.0, 0.6, 0.6, 1.7),
        ],
        crosswalk_x=10.0,
    )
    bev = render_bev(scene, None)
    assert bev[(32 - 5) * 2, 64] == BEV_CLASSES.index("static_obstacle")
    assert bev[(32 + 6) * 2, 64] == BEV_CLASSES.index("pedestrian_bicycle")
    assert bev[int((32 - 12) * 2), 64] == BEV_CLASSES.index("crosswalk")


def test_bev_rgb_picture():
    img = render_bev_rgb(showcase_scene(), None, size_px=256)
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    # 4 px/m: the ego box centre is 1.46 m ahead of the rear axle (row 128 - 5.8); 0.75 m right of its nose line.
    r, g, b = img[122, 131].astype(int)
    assert g > r + 60 and g > b + 60


def test_mosaic_layouts():
    rig = model_rig()
    assert mosaic_layout(rig) == [
        ["CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT"],
        ["CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"],
    ]
    imgs = {n: np.full((256, 704, 3), i, dtype=np.uint8) for i, n in enumerate(rig.names)}
    out = mosaic(imgs, rig, gap=2)
    assert out.shape == (2 * 256 + 2, 3 * 704 + 4, 3)
    assert out[0, 0, 0] == rig.names.index("CAM_FRONT_LEFT")
    assert out[258, 706 * 2, 0] == rig.names.index("CAM_BACK_RIGHT")
    assert mosaic_layout(navsim_rig()) == [
        ["cam_l0", "cam_f0", "cam_r0"],
        ["cam_l1", "cam_l2", "cam_b0", "cam_r2", "cam_r1"],
    ]
    with pytest.raises(ValueError, match="CAM_BACK"):
        mosaic({n: v for n, v in imgs.items() if n != "CAM_BACK"}, rig)


def test_bad_input_is_named():
    scene = make_scene()
    rig = model_rig()
    with pytest.raises(IndexError, match="step 99"):
        render_cameras(scene, 99, rig)
    with pytest.raises(ValueError, match="ego_pose"):
        render_cameras(scene, None, rig, ego_pose=(1.0, 2.0))
    with pytest.raises(ValueError, match="size"):
        render_bev(scene, None, size=0)
    with pytest.raises(ValueError, match="range_m"):
        render_bev(scene, None, range_m=-1.0)


def test_generated_scenes_render():
    try:
        scenarios = importlib.import_module("sim.scenarios")
    except ImportError:
        pytest.skip("sim.scenarios is not available")
    if not callable(getattr(scenarios, "generate_scene", None)):
        pytest.skip("sim.scenarios has no generate_scene yet")
    families = list(getattr(scenarios, "FAMILIES", ()))[:12] or ["straight"]
    rig = model_rig()
    for family in families:
        scene = scenarios.generate_scene(family, 0)
        imgs = render_cameras(scene, None, rig)
        assert all(img.shape == (256, 704, 3) for img in imgs.values())
        bev = render_bev(scene, None)
        assert bev.max() < len(BEV_CLASSES)
        assert (bev == BEV_CLASSES.index("drivable_area")).any(), family
