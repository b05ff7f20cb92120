"""`SceneCache`: the scorer's explicit per-scene memo, with a planned or a GIVEN reference and centreline."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from epdms_fixtures import LANE_W, straight_plan, straight_road

from agent.epdms_metrics import EP, LK
from navsim_eval import EpdmsConfig, score_proposals
from navsim_eval.cache import SceneCache
from navsim_eval.config import ScorerConfig
from navsim_eval.simulation import interpolate_plans

PLANS = np.stack([straight_plan(10.0), straight_plan(5.0)])


def test_scoring_with_a_cache_equals_scoring_without_and_leaves_the_scene_untouched():
    scene = straight_road()
    before = set(scene.map.__dict__)
    plain = score_proposals(scene, PLANS)
    cache = SceneCache.build(scene)
    cached = score_proposals(scene, PLANS, cache=cache)
    again = score_proposals(scene, PLANS[:1], cache=cache)  # the memo (reference, human row) is reused
    np.testing.assert_array_equal(plain.table, cached.table)
    np.testing.assert_array_equal(cached.table[:1], again.table)
    assert set(scene.map.__dict__) == before  # nothing hidden on the map any more
    assert cache.reference_source == "planned"
    assert "human" in cache.memo and "ref_best" in cache.memo


def test_a_given_reference_equal_to_the_planned_one_scores_identically():
    scene = straight_road()
    planned = SceneCache.build(scene)
    given = SceneCache.build(scene, reference=planned.reference_plan, centerline=planned.map_queries.centerline.poses)
    assert given.reference_source == "given"
    a = score_proposals(scene, PLANS, cache=planned)
    b = score_proposals(scene, PLANS, cache=given)
    np.testing.assert_array_equal(a.table, b.table)
    np.testing.assert_array_equal(a.reference_states, b.reference_states)


def test_the_given_reference_is_what_progress_is_normalised_against():
    scene = straight_road()
    cfg = EpdmsConfig(scorer=ScorerConfig(human_penalty_filter=False))
    # the reference IS the 10 m/s plan (its 41 interpolated poses): that proposal's progress equals the reference's,
    # so its EP is exactly 1; the 5 m/s plan covers a bit over half the distance
    poses = interpolate_plans(PLANS[:1], np.zeros(3), cfg.simulation)[0]
    cache = SceneCache.build(scene, cfg, reference=poses)
    res = score_proposals(scene, PLANS, cfg, cache=cache)
    assert res.table[0, EP] == 1.0
    assert 0.5 < res.table[1, EP] < 0.7  # above 1/2: the tracker starts at the logged 10 m/s and slows down
    # a reference twice as fast (20 m/s) halves the 10 m/s plan's EP, roughly (the tracker starts at 10 m/s)
    fast = interpolate_plans(straight_plan(20.0)[None], np.zeros(3), cfg.simulation)[0]
    res_fast = score_proposals(scene, PLANS, cfg, cache=SceneCache.build(scene, cfg, reference=fast))
    assert res_fast.table[0, EP] < 0.75


def test_a_given_centreline_is_what_lane_keeping_measures_against():
    scene = straight_road()
    plan = straight_plan(10.0)[None]
    assert score_proposals(scene, plan).table[0, LK] == 1.0
    # the centreline of the left lane (y = 3.5): a plan along y = 0 stays 3.5 m > 0.5 m from it for the whole 4 s
    xs = np.arange(-100.0, 300.0, 1.0)
    left = np.stack([xs, np.full_like(xs, LANE_W), np.zeros_like(xs)], axis=1)
    # (stage two: the logged human drives along y = 0 too, and on stage one the human filter would reset LK to 1)
    cache = SceneCache.build(scene, centerline=left)
    assert score_proposals(scene, plan, cache=cache, stage_one=False).table[0, LK] == 0.0
    assert score_proposals(scene, plan, cache=cache, stage_one=True).table[0, LK] == 1.0


def test_a_cache_refuses_another_scene_another_config_and_bad_given_inputs():
    scene = straight_road()
    cache = SceneCache.build(scene)
    with pytest.raises(ValueError, match="built for scene"):
        score_proposals(straight_road(), PLANS, cache=cache)
    with pytest.raises(ValueError, match="another EpdmsConfig"):
        score_proposals(scene, PLANS, EpdmsConfig(reactive=True), cache=cache)
    x0, y0 = scene.ego_pose()[:2]
    with pytest.raises(ValueError, match="start near the ego"):  # 50 m off: another frame or another token
        SceneCache.build(scene, reference=np.tile([x0 + 50.0, y0, 0.0], (41, 1)))
    # PDM-Closed's +-1 m offset proposals start beside the ego: accepted, tracked from the ego's own state
    beside = np.column_stack([x0 + np.arange(41) * 0.5, np.full(41, y0 + 1.0), np.zeros(41)])
    res = score_proposals(scene, PLANS, cache=SceneCache.build(scene, reference=beside))
    np.testing.assert_allclose(res.reference_states[0, :3], [x0, y0, scene.ego_pose()[2]])
    with pytest.raises(ValueError, match="shape"):
        SceneCache.build(scene, reference=np.zeros((10, 3)))
    with pytest.raises(ValueError, match="centreline"):
        SceneCache.build(scene, centerline=np.full((5, 3), np.nan))
