"""Reactive traffic: NAVSIM's `NavsimIDMTrafficAgents` (nuPlan IDM agents on `SceneIdmMapApi`) against ours
(`IDMTrafficConfig(model="navsim")`), through the full official `pdm_score` and our batched `score_proposals`.

Skips unless navsim and nuplan-devkit are importable (see docs/navsim_crosscheck.md).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("nuplan")
pytest.importorskip("navsim")
pytest.importorskip("navsim.traffic_agents_policies.navsim_IDM_traffic_agents")

from navsim_eval.crosscheck.compare import CrossCheckConfig, compare_scene, load_anchors
from navsim_eval.crosscheck.metric_cache import scene_to_metric_cache
from navsim_eval.crosscheck.official_idm import official_reactive_tracks
from sim.scenarios import generate_scene

pytestmark = [
    pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

CONFIG = CrossCheckConfig(num_anchors=2)


@pytest.mark.parametrize("family", ["straight_road", "intersection", "cut_in", "static_obstacle", "red_light"])
def test_reactive_sub_scores_match_official(family):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmp = compare_scene(generate_scene(family, 0), CONFIG, load_anchors(CONFIG.num_anchors), False, reactive=True)
    both = np.concatenate([cmp.official[:, :8], cmp.official_epdms[:, None]], axis=1)
    mine = np.concatenate([cmp.ours[:, :8], cmp.ours_epdms[:, None]], axis=1)
    np.testing.assert_allclose(mine, both, atol=1e-6, err_msg=str(cmp.disagreements(1e-6)))


def test_official_reactive_policy_drives_vehicles_only():
    # the official policy returns 41 frames; frame 0 is the log; non-vehicles are the log's own tracks
    scene = generate_scene("pedestrian_crossing", 0)
    cache = scene_to_metric_cache(scene)
    ego = np.zeros((41, 11))
    ego[:, 0] = cache.ego_state.rear_axle.x
    ego[:, 1] = cache.ego_state.rear_axle.y
    ego[:, 2] = cache.ego_state.rear_axle.heading
    frames = official_reactive_tracks(cache, scene, ego)
    assert len(frames) == 41
    n_log = len(cache.current_tracked_objects[0].tracked_objects.tracked_objects)
    assert len(frames[0].tracked_objects.tracked_objects) == n_log
