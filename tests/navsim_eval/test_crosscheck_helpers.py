"""Parts of the NAVSIM cross-check that run without the official devkits (CI has neither navsim nor nuplan)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from navsim_eval.crosscheck.compare import CrossCheckConfig, load_anchors, standard_proposals
from navsim_eval.crosscheck.metric_cache import MetricCacheConfig, scene_to_metric_cache
from sim.scenarios import generate_scene


def _devkits_importable() -> bool:
    try:
        return importlib.util.find_spec("nuplan") is not None and (
            importlib.util.find_spec("navsim.planning.simulation.planner.pdm_planner.scoring.pdm_scorer") is not None
        )
    except ImportError:  # an unrelated PyPI `navsim` without the planning package
        return False


@pytest.mark.skipif(_devkits_importable(), reason="the official devkits are installed here")
def test_conversion_without_devkits_names_the_navsim_extra():
    scene = generate_scene("straight_road", 0)
    with pytest.raises(ImportError, match="`navsim`"):
        scene_to_metric_cache(scene)


def test_metric_cache_config_rejects_bad_sampling():
    with pytest.raises(ValueError, match="sample_s"):
        MetricCacheConfig(horizon_s=4.2)
    with pytest.raises(ValueError, match="interval_s"):
        MetricCacheConfig(interval_s=0.0)
    assert MetricCacheConfig().num_poses == 40


def test_crosscheck_config_validation():
    with pytest.raises(ValueError, match="num_anchors"):
        CrossCheckConfig(num_anchors=-1)
    with pytest.raises(ValueError, match="frame_offset_steps"):
        CrossCheckConfig(frame_offset_steps=0)


def test_standard_proposals_geometry():
    scene = generate_scene("straight_road", 0)
    v = float(scene.ego[scene.current_index, 3])
    assert v > 0
    cfg = CrossCheckConfig(brake_decel=6.0, swerve_offset_m=12.0)
    names, plans = standard_proposals(scene, cfg, np.zeros((2, 8, 3)))
    assert names[:5] == ["human", "constant_velocity", "hard_brake", "swerve_left", "swerve_right"]
    assert plans.shape == (7, 8, 3)
    t = 0.5 * np.arange(1, 9)
    # constant velocity: x = v t on the ego's axis
    np.testing.assert_allclose(plans[1, :, 0], v * t)
    np.testing.assert_allclose(plans[1, :, 1:], 0.0)
    # hard brake at 6 m/s^2: x = v t - 3 t^2 until the stop at v^2 / 12, then held
    stop = v * v / 12.0
    expected = np.where(t < v / 6.0, v * t - 3.0 * t**2, stop)
    np.testing.assert_allclose(plans[2, :, 0], expected)
    assert plans[2, -1, 0] == pytest.approx(stop)
    # swerves: the human plan shifted 1.5, 3, ..., 12 m to each side
    np.testing.assert_allclose(plans[3, :, 1] - plans[0, :, 1], np.arange(1, 9) * 1.5)
    np.testing.assert_allclose(plans[4, :, 1] - plans[0, :, 1], -np.arange(1, 9) * 1.5)


def test_load_anchors_missing_file_gives_none(tmp_path):
    assert load_anchors(8, tmp_path / "absent.npy").shape == (0, 8, 3)
    assert load_anchors(0).shape == (0, 8, 3)


def test_official_idm_config_is_the_navhard_yaml_and_validates():
    from navsim_eval.crosscheck.official_idm import OfficialIdmConfig

    cfg = OfficialIdmConfig()
    assert (cfg.target_velocity, cfg.accel_max, cfg.decel_max, cfg.idm_snap_threshold) == (10.0, 1.0, 2.0, 3.0)
    with pytest.raises(ValueError, match="positive"):
        OfficialIdmConfig(radius=-1.0)
