"""The HUD under SDL's dummy driver: what a rendered frame shows and what its text panel says."""

from __future__ import annotations

import numpy as np
import pytest

pygame = pytest.importorskip("pygame")  # the `viz` extra

from hud_fixtures import CAMERA_RGB, CHOSEN, make_plan, make_view  # noqa: E402

from agent import geometry  # noqa: E402
from agent.epdms_metrics import EPDMS_METRICS  # noqa: E402
from viz import palette  # noqa: E402
from viz.config import HudConfig  # noqa: E402
from viz.items import Bar  # noqa: E402
from viz.palette import epdms_ramp  # noqa: E402
from viz.viewer import HudViewer  # noqa: E402


@pytest.fixture(scope="module")
def shown():
    viewer = HudViewer(HudConfig())
    plan, view = make_plan(), make_view()
    assert viewer.show(plan, view)
    yield viewer, plan, view, viewer.frame()
    viewer.close()


def _crop(frame: np.ndarray, rect) -> np.ndarray:
    x, y, w, h = rect
    return frame[y : y + h, x : x + w]


def _is(frame: np.ndarray, rgb) -> np.ndarray:
    return np.all(frame == np.array(rgb, dtype=np.uint8), axis=-1)


def test_frame_size_and_type(shown):
    viewer, _, _, frame = shown
    assert frame.shape == (720, 1280, 3) and frame.dtype == np.uint8


def test_bev_panel_draws_the_chosen_trajectory_in_its_colour_where_it_lies(shown):
    viewer, plan, _, frame = shown
    cfg = viewer.cfg
    x0, y0, size, _ = viewer.hud.layout.bev
    bev = _crop(frame, viewer.hud.layout.bev)
    chosen = _is(bev, cfg.chosen_rgb)
    assert chosen.sum() > 100
    # every chosen pose lands on a chosen-coloured pixel (the BEV convention: row = (R/2 - x)/res, col = (R/2 - y)/res)
    for x, y, _ in plan.trajectory.poses:
        row = (cfg.bev_range_m / 2 - x) / (cfg.bev_range_m / size)
        col = (cfg.bev_range_m / 2 - y) / (cfg.bev_range_m / size)
        assert chosen[int(row), int(col)], (x, y)
    # the straight chosen plan runs up the panel's centre column; a rejected candidate keeps its ramp colour
    rc = geometry.world_to_bev_pixel(plan.candidates[0, -1, :2], size, cfg.bev_range_m)
    r, c = int(rc[0]), int(rc[1])
    assert np.any(_is(bev[r - 2 : r + 3, c - 2 : c + 3], epdms_ramp(plan.rewards[0])))
    assert not chosen[r - 2 : r + 3, c - 2 : c + 3].any()


def test_chosen_colour_appears_nowhere_but_the_chosen_plan(shown):
    viewer, _, _, _ = shown
    plan, view = make_plan(), make_view()
    # the same frame with the chosen plan moved onto another candidate that bends left: the old path loses the colour
    plan.selected = 4
    plan.trajectory.poses = plan.candidates[4].copy()
    viewer.show(plan, view)
    bev = _crop(viewer.frame(), viewer.hud.layout.bev)
    size, rng = viewer.hud.layout.bev[2], viewer.cfg.bev_range_m
    rc = geometry.world_to_bev_pixel(make_plan().candidates[CHOSEN, -1, :2], size, rng)
    assert not _is(bev[int(rc[0]) - 1 : int(rc[0]) + 2, int(rc[1]) - 1 : int(rc[1]) + 2], viewer.cfg.chosen_rgb).any()
    viewer.show(make_plan(), view)


def test_camera_mosaic_shows_every_camera_and_the_plan_in_front(shown):
    viewer, _, _, frame = shown
    tiles = {t.name: t for t in viewer.hud.tiles}
    assert set(tiles) == set(CAMERA_RGB)
    for name, rgb in CAMERA_RGB.items():
        tile = _crop(frame, tiles[name].rect)
        share = _is(tile, rgb).mean()
        assert share > 0.5, (name, share)  # the camera's own picture fills the tile (labels and overlays aside)
    front = _crop(frame, tiles["CAM_FRONT"].rect)
    back = _crop(frame, tiles["CAM_BACK"].rect)
    assert _is(front, viewer.cfg.chosen_rgb).sum() > 20  # the plan ahead, projected on the road
    assert not _is(back, viewer.cfg.chosen_rgb).any()  # nothing of it behind
    mosaic = _crop(frame, viewer.hud.layout.mosaic)
    assert len(np.unique(mosaic.reshape(-1, 3), axis=0)) > 6  # not blank


def test_text_panel_numbers_equal_the_plan(shown):
    viewer, plan, view, _ = shown
    v = viewer.hud.values()
    sel = plan.selected
    assert v["epdms"] == plan.rewards[sel] == 0.93
    assert v["confidence"] == plan.confidences[sel]
    assert v["collision"] is False
    for j, name in enumerate(EPDMS_METRICS):
        assert v[f"submetric.{name}"] == plan.submetrics[sel, j]
    assert v["speed_command"] == "Mild Accel" and v["path_command"] == "Straight Strict"
    assert v["command_source"] == "likelihood" and v["navigation"] == "STRAIGHT"
    assert v["speed_kmh"] == pytest.approx(8.5 * 3.6)
    assert (v["steer"], v["throttle"], v["brake"]) == (-0.25, 0.6, 0.0)
    for stage, ms in plan.timings.items():
        assert v[f"latency.{stage}"] == ms
    assert v["tick"] == 7 and v["time_s"] == 12.5
    assert v["info.route completion"] == "12.0 %"
    bars = {b.key: b.text for b in viewer.hud.items if isinstance(b, Bar)}
    assert bars["submetric.ep"] == "0.731" and bars["steer"] == "-0.250" and bars["throttle"] == "0.600"


def test_missing_control_is_said_not_invented():
    viewer = HudViewer()
    viewer.show(make_plan(), make_view(control=None))
    assert not {"steer", "throttle", "brake"} & set(viewer.hud.values())
    viewer.close()


def test_panel_toggles_hide_and_show(shown):
    viewer, plan, view, _ = shown
    hud = viewer.hud
    viewer.controls.handle_key(pygame.K_F2)
    viewer.redraw()
    assert not _is(_crop(viewer.frame(), hud.layout.bev), viewer.cfg.chosen_rgb).any()
    viewer.controls.handle_key(pygame.K_2)
    viewer.controls.handle_key(pygame.K_F3)
    viewer.redraw()
    assert not hud.show_mosaic and hud.show_bev
    assert _is(_crop(viewer.frame(), hud.layout.mosaic), palette.BACKGROUND).all()  # background only
    viewer.controls.handle_key(pygame.K_3)
    viewer.controls.handle_key(pygame.K_F1)
    assert not hud.show_text
    viewer.controls.handle_key(pygame.K_1)
    viewer.redraw()
    assert hud.show_text and hud.show_bev and hud.show_mosaic


def test_keys_pause_step_screenshot_and_quit(shown, tmp_path):
    viewer, plan, view, _ = shown
    viewer.screenshot_dir = tmp_path
    # SPACE pauses and N releases exactly one step: the wait loop returns without blocking
    for key in (pygame.K_SPACE, pygame.K_n, pygame.K_p):
        pygame.event.post(pygame.event.Event(pygame.KEYUP, key=key))
    viewer._interact()
    assert viewer.hud.paused and not viewer.quit_requested
    shots = list(tmp_path.glob("hud_*.png"))
    assert len(shots) == 1
    from PIL import Image

    assert Image.open(shots[0]).size == (1280, 720)
    assert any("screenshot" in n.text for n in viewer.hud.notices)
    assert viewer.controls.handle_key(pygame.K_SPACE) is False and not viewer.hud.paused
    assert viewer.controls.handle_key(pygame.K_ESCAPE) is True


def test_quit_stops_showing():
    viewer = HudViewer()
    pygame.event.post(pygame.event.Event(pygame.KEYUP, key=pygame.K_q))
    viewer._interact()
    assert viewer.quit_requested
    assert viewer.show(make_plan(), make_view()) is False
    viewer.close()


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="HudConfig.width"):
        HudConfig(width=0)
    with pytest.raises(ValueError, match="even"):
        HudConfig(width=1281)
    with pytest.raises(ValueError, match="chosen_rgb"):
        HudConfig(chosen_rgb=(300, 0, 0))
    with pytest.raises(ValueError, match="do not fit"):
        HudConfig(bev_px=800, height=600)


def test_segmentation_overlay_tints_the_bev_where_a_class_beats_background(shown):
    viewer, _, _, frame = shown
    x0, y0, size, _ = viewer.hud.layout.bev
    # (x, y) = (28, 28) m: ahead-left, off the road polygon and clear of every drawn object: only the overlay is there
    r, c = geometry.world_to_bev_pixel(np.array([28.0, 28.0]), size, viewer.cfg.bev_range_m).astype(int)
    pix = frame[y0 + r, x0 + c].astype(int)
    panel = np.array(palette.PANEL)
    road = np.round(np.array(palette.SEG["road"]) * 0.8)  # class colour scaled by its probability (0.8)
    assert np.all(pix != panel)
    assert np.all((np.minimum(panel, road) <= pix) & (pix <= np.maximum(panel, road)))
    off = HudViewer(HudConfig(seg_alpha=0.0))
    off.show(make_plan(), make_view())
    assert np.all(off.frame()[y0 + r, x0 + c] == panel)
    off.close()


def test_a_planner_with_only_a_trajectory_still_gets_its_frame():
    """The contract lets a planner return just a trajectory: the HUD draws it and says what is missing."""
    from agent.contract import PlanResult
    from agent.types import Trajectory

    plan = PlanResult(Trajectory(make_plan().trajectory.poses), timings={"total": 3.0})
    viewer = HudViewer()
    viewer.show(plan, make_view())
    values = viewer.hud.values()
    assert "epdms" not in values and "speed_command" not in values and values["score"] == 1.0
    assert values["latency.total"] == 3.0
    bev = _crop(viewer.frame(), viewer.hud.layout.bev)
    assert _is(bev, viewer.cfg.chosen_rgb).sum() > 100
    viewer.close()
