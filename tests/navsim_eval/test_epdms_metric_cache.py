"""NAVSIM metric caches scored without a scene: the conversion (`navsim_eval.metric_cache`) and `irlvla epdms score
--metric-cache`. Stand-ins shaped like `MetricCache` run everywhere; with navsim and nuplan-devkit importable, real
caches made by the official `MetricCacheProcessor` code are dumped, unpickled and scored against the official scorer.
"""

from __future__ import annotations

import importlib.util
import json
import logging

import numpy as np
import pytest
from metric_cache_standins import metric_cache_of

from irlvla.cli import main
from navsim_eval import EpdmsConfig, score_cache, score_proposals
from navsim_eval.cache import SceneCache
from navsim_eval.metric_cache import cache_from_metric_cache, observation_of
from navsim_eval.observation import build_observation
from sim.scenarios import generate_scenes

HAVE_DEVKIT = all(importlib.util.find_spec(m) is not None for m in ("nuplan", "navsim"))


@pytest.fixture(scope="module")
def scenes():
    all_scenes = generate_scenes(11, 0)
    return [
        s for s in all_scenes if s.scenario in ("red_light", "intersection", "merge", "lead_vehicle")
    ] or all_scenes[:3]


def _plans(scene) -> np.ndarray:
    t = np.arange(1, 9)[:, None] * 0.5
    human = scene.human_trajectory()
    fast = np.hstack([12.0 * t, np.zeros_like(t), np.zeros_like(t)])
    swerve = np.hstack([8.0 * t, 2.5 * (t / 4.0) ** 2, 0.3 * t / 4.0])
    return np.stack([human, fast, swerve, np.zeros((8, 3))])


def test_the_observation_of_a_cache_is_our_log_replay_observation(scenes):
    config = EpdmsConfig()
    for scene in scenes:
        mc = metric_cache_of(scene, config)
        got = observation_of(mc.observation, 41)
        want = build_observation(scene, 41, 0.1, True)
        order = [want.ids.index(i) for i in got.ids]
        assert set(got.ids) <= set(want.ids)
        np.testing.assert_array_equal(got.states, want.states[order] * want.present[order][..., None])
        np.testing.assert_array_equal(got.present, want.present[order])
        np.testing.assert_array_equal(got.types, want.types[order])
        assert len(got.red_polygons) == len(want.red_polygons)
        np.testing.assert_array_equal(got.red_masks, want.red_masks)


@pytest.mark.parametrize("synthetic", [False, True])
def test_a_metric_cache_scores_like_its_scene_with_the_same_reference(scenes, synthetic):
    config = EpdmsConfig()
    for scene in scenes:
        mc = metric_cache_of(scene, config, synthetic=synthetic, token=scene.token)
        cache = cache_from_metric_cache(mc, config)
        assert cache.scene is None and cache.token == scene.token and cache.reference_source == "given"
        assert cache.synthetic is synthetic and (cache.human_plan is None) is synthetic
        plans = _plans(scene)
        got = score_cache(cache, plans, stage_one=not synthetic)
        built = SceneCache.build(scene, config)
        given = SceneCache.build(scene, config, built.reference_plan, built.map_queries.centerline.poses)
        want = score_proposals(scene, plans, config, stage_one=not synthetic, cache=given)
        np.testing.assert_allclose(got.table, want.table, atol=1e-12, equal_nan=True)
        np.testing.assert_allclose(got.states, want.states, atol=1e-12)


def test_what_a_metric_cache_cannot_do_is_refused(scenes):
    scene = scenes[0]
    mc = metric_cache_of(scene, synthetic=True)
    with pytest.raises(ValueError, match="reactive"):
        cache_from_metric_cache(mc, EpdmsConfig(reactive=True))
    cache = cache_from_metric_cache(mc)
    with pytest.raises(ValueError, match="human trajectory"):  # a synthetic frame has none to filter with
        score_cache(cache, _plans(scene)[:1], stage_one=True)
    mc.observation.detections_tracks = mc.observation.detections_tracks[:20]
    with pytest.raises(ValueError, match="covers 20 steps"):
        cache_from_metric_cache(mc)


@pytest.mark.skipif(HAVE_DEVKIT, reason="checks the error without the devkits")
def test_a_metric_cache_folder_without_the_devkits_fails_the_run_naming_the_extra(tmp_path, caplog):
    (tmp_path / "mc" / "log" / "type" / "tok").mkdir(parents=True)
    (tmp_path / "mc" / "log" / "type" / "tok" / "metric_cache.pkl").write_bytes(b"not read")
    traj = tmp_path / "t.json"
    traj.write_text(json.dumps({"tok": np.zeros((8, 3)).tolist()}))
    out = tmp_path / "out.csv"
    with caplog.at_level(logging.ERROR):
        rc = main(["epdms", "score", "--metric-cache", str(tmp_path / "mc"), "--trajectories", str(traj), "--out",
                   str(out)])  # fmt: skip
    assert rc == 2 and "pip extra `navsim`" in caplog.text and not out.exists()


@pytest.mark.skipif(not HAVE_DEVKIT, reason="needs navsim and nuplan-devkit (docs/navsim_crosscheck.md)")
def test_real_metric_caches_score_as_the_official_scorer_does(scenes, tmp_path):
    from navsim_eval.crosscheck.metric_cache import scene_to_metric_cache
    from navsim_eval.crosscheck.official_scorer import official_score
    from navsim_eval.metric_cache import MetricCacheIndex

    config = EpdmsConfig()
    plans, stages = {}, {}
    for scene in scenes[:2]:
        for synthetic in (False, True):
            token = f"{scene.token}_{int(synthetic)}"
            folder = tmp_path / "mc" / "log" / ("synthetic" if synthetic else "original") / token
            folder.mkdir(parents=True)
            scene_to_metric_cache(scene, synthetic=synthetic, file_path=folder / "metric_cache.pkl").dump()
            loaded = MetricCacheIndex(tmp_path / "mc").load(token)
            p = _plans(scene)
            official = official_score(loaded, p)
            ours = np.stack([score_cache(cache_from_metric_cache(loaded, config), q[None]).table[0, :8] for q in p])
            np.testing.assert_allclose(ours, official.table, atol=1e-6)
            plans[token], stages[token] = p[1], 2 if synthetic else 1
    # the CLI on the folder: one proposal per token, the caches' own inputs
    traj = tmp_path / "t.json"
    traj.write_text(json.dumps({t: v.tolist() for t, v in plans.items()}))
    out = tmp_path / "out.csv"
    assert main(["epdms", "score", "--metric-cache", str(tmp_path / "mc"), "--trajectories", str(traj), "--out",
                 str(out)]) == 0  # fmt: skip
    assert all(t in out.read_text() for t in plans)
    (tmp_path / "mc" / "log" / "original" / "broken").mkdir()
    (tmp_path / "mc" / "log" / "original" / "broken" / "metric_cache.pkl").write_bytes(b"\x00not lzma")
    traj.write_text(json.dumps({**{t: v.tolist() for t, v in plans.items()}, "broken": np.zeros((8, 3)).tolist()}))
    assert main(["epdms", "score", "--metric-cache", str(tmp_path / "mc"), "--trajectories", str(traj), "--out",
                 str(out)]) == 1  # fmt: skip  # the broken cache is its token's failure, the others score
