"""Generated scenes scored by the official NAVSIM v2.2 scorer (through a converted metric cache) and by ours.

Skips unless navsim (autonomousvision/navsim, not the unrelated PyPI package) and nuplan-devkit are importable; see
docs/navsim_crosscheck.md for the side-venv recipe. The tracks' 2 Hz -> 10 Hz interpolation, the traffic-light
sample-and-hold, the simulation, the scorer, the human filter and EC all run in the official code; our side runs
`navsim_eval.score_proposals`. Both are given the same PDM-Closed reference (ours), since the official planner needs
a nuPlan map API.
"""

from __future__ import annotations

import sys
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("nuplan")
pytest.importorskip("navsim")
pytest.importorskip("navsim.planning.simulation.planner.pdm_planner.scoring.pdm_scorer")

from navsim_eval.api import score_proposals
from navsim_eval.crosscheck.compare import CrossCheckConfig, compare_scene, load_anchors
from navsim_eval.crosscheck.metric_cache import MetricCacheConfig, reference_states, scene_to_metric_cache
from navsim_eval.crosscheck.official_scorer import official_score
from sim.scenarios import FAMILIES, generate_scene

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scene_perturbations import add_overlapping_objects, flicker_tracks, rotate_scene, stopped_ego

# The official StateInterpolator evaluates a one-sample track (seen at a single 2 Hz frame) before noticing it has one
# sample and holding it; scipy warns about the 0/0 it computes and throws away.
pytestmark = [
    pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # shapely.vectorized inside the devkit
]

DISCRETE = [0, 1, 2, 3, 5, 6, 7, 8]  # NC, DAC, DDC, TLC, TTC, LK, HC, EC columns
EP = 4
CONFIG = CrossCheckConfig(num_anchors=4)


PERTURBATIONS = {
    "none": lambda s: s,
    # ego heading just past +-pi at t = 0, so headings wrap inside the plan, the history and the tracks
    "rotated": lambda s: rotate_scene(s, np.pi - s.ego[s.current_index, 2] + 0.05),
    "flicker": flicker_tracks,
    "overlap": add_overlapping_objects,
}


@cache
def _comparison(family: str, seed: int = 0, synthetic: bool = False, perturbation: str = "none"):
    scene = PERTURBATIONS[perturbation](generate_scene(family, seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compare_scene(scene, CONFIG, load_anchors(CONFIG.num_anchors), True, synthetic)


def _assert_same(cmp) -> None:
    bad = np.flatnonzero(np.any(cmp.official[:, DISCRETE] != cmp.ours[:, DISCRETE], axis=1))
    assert bad.size == 0, f"{cmp.family} {cmp.token}: {_describe(cmp, bad)}"
    np.testing.assert_allclose(cmp.ours[:, EP], cmp.official[:, EP], atol=1e-6, rtol=0)
    np.testing.assert_allclose(cmp.ours_epdms, cmp.official_epdms, atol=1e-6, rtol=0)


def _describe(cmp, rows) -> str:
    return "; ".join(
        f"{cmp.names[k]}: official {np.round(cmp.official[k], 4).tolist()} ours {np.round(cmp.ours[k], 4).tolist()}"
        for k in rows
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_sub_scores_and_epdms_match_official(family):
    _assert_same(_comparison(family))


@pytest.mark.parametrize("family", ["intersection", "static_obstacle", "cut_in"])
def test_stage_two_scenes_without_human_filter_match_official(family):
    _assert_same(_comparison(family, synthetic=True))


@pytest.mark.parametrize("perturbation", ["rotated", "flicker", "overlap"])
@pytest.mark.parametrize("family", ["intersection", "cut_in"])
def test_edge_case_scenes_match_official(family, perturbation):
    _assert_same(_comparison(family, perturbation=perturbation))


def test_the_comparison_exercises_failing_metrics():
    """Not vacuous: over all families the official scorer fails DAC, EP < 1 and some of NC/TTC/DDC/LK/HC."""
    off = np.concatenate([_comparison(f).official for f in FAMILIES])
    assert np.any(off[:, 1] == 0.0), "no proposal left the drivable area"
    assert np.any(off[:, EP] < 1.0)
    assert np.any(off[:, [0, 2, 5, 6, 7]] < 1.0)
    assert np.all(np.isin(off[:, DISCRETE], (0.0, 0.5, 1.0)))


def test_metric_cache_objects_follow_navsim_conventions():
    scene = generate_scene("straight_road", 0)
    cache = scene_to_metric_cache(scene, reference=reference_states(scene))
    ego = scene.ego[scene.current_index]
    rear = cache.ego_state.rear_axle
    assert (rear.x, rear.y, rear.heading) == pytest.approx(tuple(ego[:3]))
    # the box centre lies (4.049 - 1.127) / 2 = 1.461 m ahead of the rear axle (nuPlan Pacifica)
    centre = cache.ego_state.center
    assert np.hypot(centre.x - rear.x, centre.y - rear.y) == pytest.approx(1.461, abs=1e-6)
    assert cache.ego_state.dynamic_car_state.angular_velocity == 0.0
    np.testing.assert_allclose(cache.human_trajectory.poses, scene.human_trajectory())
    # past human trajectory: -1.5, -1.0, -0.5, 0 s
    times = [s.time_point.time_s for s in cache.past_human_trajectory.get_sampled_trajectory()]
    np.testing.assert_allclose(np.diff(times), 0.5)
    assert len(times) == 4
    # every track valid now is in the first occupancy map (no red lights on this road)
    now = set(np.asarray(scene.agents.ids)[scene.agents.valid[:, scene.current_index]])
    assert set(cache.observation[0].tokens) == now


def test_tracks_are_interpolated_linearly_between_2hz_samples():
    scene = generate_scene("cut_in", 0)
    cache = scene_to_metric_cache(scene, reference=reference_states(scene))
    ci = scene.current_index
    both = np.flatnonzero(scene.agents.valid[:, ci] & scene.agents.valid[:, ci + 5])
    assert both.size
    a = int(both[0])
    token = scene.agents.ids[a]
    p0, p5 = scene.agents.states[a, ci, :2], scene.agents.states[a, ci + 5, :2]
    # 0.2 s lies 2/5 of the way from the t = 0 sample to the t = 0.5 s sample
    centroid = cache.observation[2][token].centroid
    np.testing.assert_allclose([centroid.x, centroid.y], 0.6 * p0 + 0.4 * p5, atol=1e-9)


def test_red_on_route_connectors_become_red_light_objects():
    scene = generate_scene("red_light", 0)
    cache = scene_to_metric_cache(scene, reference=reference_states(scene))
    route_blocks = {scene.map.lanes[i].roadblock_id for i in scene.route.lane_ids}
    red_now = {
        cid
        for tl in scene.traffic_lights
        if tl.states[scene.current_index] == 2
        for cid in tl.connector_ids
        if scene.map.lanes[cid].roadblock_id in route_blocks
    }
    tokens = {t for t in cache.observation[0].tokens if t.startswith("red_light")}
    assert tokens == {f"red_light_{cid}" for cid in red_now}


# ---- disagreements found by this cross-check, now fixed (regression tests) ----


def test_stationary_human_does_not_lift_ep():
    """Found by this cross-check (fixed): the human is scored alone for the filter, so its EP is never 0."""
    scene = stopped_ego(generate_scene("straight_road", 0))
    stay = np.zeros((1, 8, 3))
    official = official_score(scene_to_metric_cache(scene, reference=reference_states(scene)), stay)
    # by hand: staying put has no progress while the reference leaves from standstill (> 5 m), so EP = 0 / ref = 0
    assert official.table[0, EP] == 0.0
    assert score_proposals(scene, stay).table[0, EP] == 0.0


def test_drivable_area_is_limited_to_the_map_radius():
    scene = generate_scene("merge", 0)
    t = 0.5 * np.arange(1, 9)
    fast = np.stack([35.0 * t, 0 * t, 0 * t], axis=-1)[None]  # 140 m in 4 s: beyond the 100 m proximity square
    ref = reference_states(scene)
    whole = official_score(scene_to_metric_cache(scene, reference=ref, config=MetricCacheConfig(map_radius=None)), fast)
    official = official_score(scene_to_metric_cache(scene, reference=ref), fast)
    assert whole.table[0, 1] == 1.0  # on the road when the whole map counts
    assert official.table[0, 1] == 0.0
    assert score_proposals(scene, fast).table[0, 1] == official.table[0, 1]


@pytest.mark.parametrize(
    ("family", "seed"),
    # curve seed 1: a free proposal inherits the leader speed of the proposal before it (the generator's shared row);
    # static_obstacle: the reference stays in its lane behind the obstacle; red_light: stops at the connector
    [("straight_road", 0), ("hard_brake", 0), ("curve", 1), ("static_obstacle", 0), ("red_light", 0)],
)
def test_reference_planner_matches_official_pdm_closed(family, seed):
    from navsim_eval.crosscheck.official_pdm_closed import official_reference_states

    scene = generate_scene(family, seed)
    official, _ = official_reference_states(scene)
    ours = reference_states(scene)
    np.testing.assert_allclose(ours[:41, :2], official[:41, :2], atol=1e-9)
    np.testing.assert_allclose(np.cos(ours[:41, 2] - official[:41, 2]), 1.0, atol=1e-12)


def test_route_centerline_is_the_official_dijkstra_centerline():
    from navsim_eval.crosscheck.metric_cache import centerline_path, require_navsim
    from navsim_eval.crosscheck.official_pdm_closed import official_reference_states

    scene = generate_scene("lane_change", 0)
    _, official = official_reference_states(scene)
    ours = centerline_path(require_navsim(), scene).linestring
    gaps = [ours.distance(official.linestring.interpolate(d)) for d in np.linspace(0, 120, 61)]
    assert max(gaps) < 1e-9
