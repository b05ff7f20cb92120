"""Optional cross-check against the official scorer: same inputs through navsim/nuPlan and through ours.

Runs only where `navsim` (autonomousvision/navsim, not the unrelated PyPI package) and nuplan-devkit are importable
(installed from their sources with --no-deps); skips otherwise. Our scenes are converted into the objects NAVSIM's
metric cache holds: interpolated DetectionsTracks, a PDMObservation with red on-route connectors, a PDMDrivableMap,
the route PDMPath and the past human trajectory.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pdm_scorer = pytest.importorskip("navsim.planning.simulation.planner.pdm_planner.scoring.pdm_scorer")
pdm_simulator = pytest.importorskip("navsim.planning.simulation.planner.pdm_planner.simulation.pdm_simulator")

from navsim.common.dataclasses import Trajectory  # noqa: E402
from navsim.evaluate.pdm_score import get_trajectory_as_array, transform_trajectory  # noqa: E402
from navsim.planning.simulation.planner.pdm_planner.observation.pdm_observation import PDMObservation  # noqa: E402
from navsim.planning.simulation.planner.pdm_planner.observation.pdm_occupancy_map import PDMDrivableMap  # noqa: E402
from navsim.planning.simulation.planner.pdm_planner.scoring.pdm_comfort_metrics import (  # noqa: E402
    ego_is_comfortable,
    ego_is_two_frame_extended_comfort,
)
from navsim.planning.simulation.planner.pdm_planner.utils.pdm_path import PDMPath  # noqa: E402
from nuplan.common.actor_state.agent import Agent  # noqa: E402
from nuplan.common.actor_state.ego_state import EgoState  # noqa: E402
from nuplan.common.actor_state.oriented_box import OrientedBox  # noqa: E402
from nuplan.common.actor_state.scene_object import SceneObjectMetadata  # noqa: E402
from nuplan.common.actor_state.state_representation import StateSE2, StateVector2D, TimePoint  # noqa: E402
from nuplan.common.actor_state.static_object import StaticObject  # noqa: E402
from nuplan.common.actor_state.tracked_objects import TrackedObjects  # noqa: E402
from nuplan.common.actor_state.tracked_objects_types import TrackedObjectType  # noqa: E402
from nuplan.common.actor_state.vehicle_parameters import get_pacifica_parameters  # noqa: E402
from nuplan.common.maps.maps_datatypes import (  # noqa: E402
    SemanticMapLayer,
    TrafficLightStatusData,
    TrafficLightStatusType,
)
from nuplan.planning.simulation.observation.observation_type import DetectionsTracks  # noqa: E402
from nuplan.planning.simulation.trajectory.interpolated_trajectory import InterpolatedTrajectory  # noqa: E402
from nuplan.planning.simulation.trajectory.trajectory_sampling import TrajectorySampling  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from epdms_fixtures import agent_track, ego_log, junction, straight_plan, straight_road  # noqa: E402

from irlvla.shared_data import shared_path  # noqa: E402
from navsim_eval.comfort import comfort_flags, history_states, two_frame_extended_comfort  # noqa: E402
from navsim_eval.config import METRIC_NAMES, ScorerConfig  # noqa: E402
from navsim_eval.mapquery import MapQueries, proximal  # noqa: E402
from navsim_eval.observation import build_observation, on_route_lane_ids  # noqa: E402
from navsim_eval.scorer import normalise_progress, score_states  # noqa: E402
from navsim_eval.simulation import initial_state_from_scene, simulate_plans  # noqa: E402
from navsim_eval.traffic import log_replay  # noqa: E402
from sim.scene import AgentType, Scene, TrafficLightState  # noqa: E402

SAMPLING = TrajectorySampling(num_poses=40, interval_length=0.1)
ANCHORS = shared_path("data", "navsim", "trajectory_anchors_256.npy")
_TYPES = {
    AgentType.VEHICLE: TrackedObjectType.VEHICLE,
    AgentType.PEDESTRIAN: TrackedObjectType.PEDESTRIAN,
    AgentType.BICYCLE: TrackedObjectType.BICYCLE,
    AgentType.TRAFFIC_CONE: TrackedObjectType.TRAFFIC_CONE,
    AgentType.BARRIER: TrackedObjectType.BARRIER,
    AgentType.CZONE_SIGN: TrackedObjectType.CZONE_SIGN,
    AgentType.GENERIC_OBJECT: TrackedObjectType.GENERIC_OBJECT,
}


def _ego_state(scene: Scene, step: int) -> EgoState:
    e = scene.ego[step]
    return EgoState.build_from_rear_axle(
        rear_axle_pose=StateSE2(e[0], e[1], e[2]),
        rear_axle_velocity_2d=StateVector2D(e[3], e[4]),
        rear_axle_acceleration_2d=StateVector2D(e[5], e[6]),
        tire_steering_angle=0.0,
        time_point=TimePoint(int(round(scene.timestamps[step] * 1e6)) + 10**12),
        vehicle_parameters=get_pacifica_parameters(),
    )


def _official_states(scene: Scene, plans: np.ndarray) -> np.ndarray:
    ego = _ego_state(scene, scene.current_index)
    rows = [get_trajectory_as_array(transform_trajectory(Trajectory(p), ego), SAMPLING, ego.time_point) for p in plans]
    return pdm_simulator.PDMSimulator(SAMPLING).simulate_proposals(np.stack(rows), ego)


def _metric_cache_objects(scene: Scene, replay: bool = True):
    """The metric cache's objects; `replay=False` keeps tracks overlapping the ego at t = 0 (the official log-replay
    policy removes them itself)."""
    cfg = ScorerConfig()
    init = initial_state_from_scene(scene)
    obs = build_observation(scene, 41, 0.1, True)
    if replay:
        obs = log_replay(obs, init, scene.ego_params)
    tracks = []
    for t in range(41):
        objs = []
        for a, tok in enumerate(obs.ids):
            if not obs.present[a, t]:
                continue
            x, y, h, vx, vy = obs.states[a, t]
            box = OrientedBox(StateSE2(x, y, h), obs.sizes[a, 0], obs.sizes[a, 1], obs.sizes[a, 2])
            meta = SceneObjectMetadata(0, tok, a, tok)
            typ = _TYPES[AgentType(int(obs.types[a]))]
            if AgentType(int(obs.types[a])).is_road_user:
                objs.append(Agent(typ, box, StateVector2D(vx, vy), meta))
            else:
                objs.append(StaticObject(typ, box, meta))
        tracks.append(DetectionsTracks(TrackedObjects(objs)))
    route = on_route_lane_ids(scene)
    route_dict = {lid: scene.map.lanes[lid] for lid in route}
    lights = []
    hold = scene.current_index + (np.arange(41) // 5) * 5
    for t in range(41):
        lights.append(
            [
                TrafficLightStatusData(
                    TrafficLightStatusType.RED
                    if tl.states[hold[t]] == TrafficLightState.RED
                    else TrafficLightStatusType.GREEN,
                    cid,
                    0,
                )
                for tl in scene.traffic_lights
                for cid in tl.connector_ids
            ]
        )
    observation = PDMObservation(SAMPLING, SAMPLING, 100, observation_sample_res=1, extend_observation_for_ttc=False)
    observation.update_detections_tracks(tracks, lights, route_dict, compute_traffic_light_data=True)
    # the metric cache's drivable map (nuPlan's 100 m proximity square) and PDM-Closed's Dijkstra centreline
    mq = MapQueries.of(scene)
    tokens, types, geoms = [], [], []
    m = scene.map
    for lid in mq.lane_ids:
        tokens.append(lid)
        types.append(SemanticMapLayer.LANE_CONNECTOR if m.lanes[lid].is_connector else SemanticMapLayer.LANE)
        geoms.append(m.lanes[lid].polygon)
    layers = ((m.roadblocks, SemanticMapLayer.ROADBLOCK), (m.intersections, SemanticMapLayer.INTERSECTION))
    for layer, typ in (*layers, (m.carparks, SemanticMapLayer.CARPARK_AREA)):
        areas = list(layer.values())
        for area, near in zip(areas, proximal([a.polygon for a in areas], mq.centre, mq.map_radius)):
            if near:
                tokens.append(area.id)
                types.append(typ)
                geoms.append(area.polygon)
    drivable = PDMDrivableMap(tokens, types, np.array(geoms, dtype=object))
    centerline = PDMPath([StateSE2(*p) for p in mq.centerline.poses])
    past = InterpolatedTrajectory([_ego_state(scene, scene.current_index + d) for d in (-15, -10, -5, 0)])
    return cfg, obs, observation, centerline, list(route), drivable, past


def _scenes() -> list[tuple[Scene, np.ndarray]]:
    v = AgentType.VEHICLE
    plans = np.stack(
        [straight_plan(10.0), straight_plan(10.0, y=-2.5), straight_plan(10.0, accel=-5.0), straight_plan(12.0, y=3.5)]
    )
    if ANCHORS.is_file():
        plans = np.concatenate([plans, np.load(ANCHORS)[::8].astype(np.float64)])
    out = [
        (straight_road([("car", v, (5.0, 2.0), agent_track(25.0, 0.0, 0.0))]), plans),
        (straight_road([("f", v, (5.0, 2.0), agent_track(-12.0, 0.0, 15.0))], ego=ego_log(5.0)), plans),
        (straight_road([("cone", AgentType.TRAFFIC_CONE, (0.5, 0.5), agent_track(20.0, 3.5, 0.0))]), plans),
        (junction(TrafficLightState.RED), plans),
    ]
    try:
        from sim.scenarios import generate_scenes

        out += [(s, plans) for s in generate_scenes(6, 3)]
    except Exception:  # the generator is optional here
        pass
    return out


@pytest.mark.parametrize("case", range(10))
def test_simulation_and_scores_match_the_official_scorer(case):
    scenes = _scenes()
    if case >= len(scenes):
        pytest.skip("no such scene")
    scene, plans = scenes[case]
    theirs = _official_states(scene, plans)
    ours = simulate_plans(plans, scene)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)

    cfg, obs, observation, centerline, route, drivable, past = _metric_cache_objects(scene)
    scorer = pdm_scorer.PDMScorer(SAMPLING, pdm_scorer.PDMScorerConfig(human_penalty_filter=False))
    rows = scorer.score_proposals(theirs, observation, centerline, route, drivable, human_past_trajectory=past)
    cols = list(METRIC_NAMES[:8])
    official = np.array([[float(r[c].iloc[0]) for c in cols] for r in rows])
    fs = score_states(ours, obs, MapQueries.of(scene), cfg, scene.ego_params, 0.1, history_states(scene, cfg))
    ep = normalise_progress(fs.progress, fs.multiplicative, 0.0, cfg.progress_distance_threshold, "batch")
    mine = np.stack([fs.nc, fs.dac, fs.ddc, fs.tlc, ep, fs.ttc, fs.lk, fs.hc], axis=1)
    mismatch = np.argwhere(~np.isclose(mine, official, atol=1e-6))
    assert mismatch.size == 0, f"{scene.token}: (proposal, metric) mismatches {mismatch[:10].tolist()}"


def test_comfort_matches_the_official_functions():
    rng = np.random.default_rng(0)
    states = simulate_plans(
        np.load(ANCHORS)[:32].astype(np.float64) if ANCHORS.is_file() else np.stack([straight_plan(8.0)] * 2),
        straight_road(),
    )
    states[..., 5] += rng.normal(0, 1.0, states.shape[:2])
    t = np.arange(states.shape[1]) * 0.1
    np.testing.assert_array_equal(comfort_flags(states, ScorerConfig(), 1.461), ego_is_comfortable(states, t))
    cur, prev = states[:, :-5], states[::-1, 5:]
    off = np.concatenate([np.zeros_like(prev[:, :5]), prev], axis=1)
    ours = two_frame_extended_comfort(np.concatenate([cur, cur[:, -5:]], axis=1), off, ScorerConfig(), 1.461)
    theirs = ego_is_two_frame_extended_comfort(cur, prev, np.arange(cur.shape[1]) * 0.1)
    np.testing.assert_array_equal(ours.astype(bool), theirs)


def _ego_states_from_array(states: np.ndarray, t0_us: int) -> list:
    out = []
    for i, s in enumerate(states):
        out.append(
            EgoState.build_from_rear_axle(
                rear_axle_pose=StateSE2(s[0], s[1], s[2]),
                rear_axle_velocity_2d=StateVector2D(s[3], s[4]),
                rear_axle_acceleration_2d=StateVector2D(s[5], s[6]),
                tire_steering_angle=s[7],
                time_point=TimePoint(t0_us + i * 100_000),
                vehicle_parameters=get_pacifica_parameters(),
                angular_vel=s[9],
                angular_accel=s[10],
            )
        )
    return out


@pytest.mark.parametrize("case", range(10))
def test_pdm_score_pipeline_with_human_filter_matches(case):
    """`pdm_score` (log replay, human filter, EP against the reference) per plan vs one batched `score_proposals`."""
    from navsim.common.enums import SceneFrameType
    from navsim.evaluate.pdm_score import pdm_score
    from navsim.planning.metric_caching.metric_cache import MetricCache
    from navsim.traffic_agents_policies.log_replay_traffic_agents import LogReplayTrafficAgents

    from navsim_eval import score_proposals

    scenes = _scenes()
    if case >= len(scenes):
        pytest.skip("no such scene")
    scene, plans = scenes[case]
    plans = plans[:12]
    ours = score_proposals(scene, plans)  # stage one: human filter on, pair EP normalisation
    cfg, obs, observation, centerline, route, drivable, past = _metric_cache_objects(scene, replay=False)
    ego = _ego_state(scene, scene.current_index)
    ref = InterpolatedTrajectory(_ego_states_from_array(ours.reference_plan, ego.time_point.time_us))
    cache = MetricCache(
        file_path=None,
        log_name="x",
        timepoint=ego.time_point,
        scene_type=SceneFrameType.ORIGINAL,
        trajectory=ref,
        human_trajectory=Trajectory(scene.human_trajectory()),
        past_human_trajectory=past,
        ego_state=ego,
        observation=observation,
        centerline=centerline,
        route_lane_ids=route,
        drivable_area_map=drivable,
        past_detections_tracks=[],
        current_tracked_objects=[],
        future_tracked_objects=[],
        map_parameters=None,
    )
    simulator = pdm_simulator.PDMSimulator(SAMPLING)
    scorer = pdm_scorer.PDMScorer(SAMPLING, pdm_scorer.PDMScorerConfig(human_penalty_filter=True))
    policy = LogReplayTrafficAgents(SAMPLING)
    cols = list(METRIC_NAMES[:8])
    for i, plan in enumerate(plans):
        result = pdm_score(cache, Trajectory(plan), SAMPLING, simulator, scorer, policy)
        row = result[0] if isinstance(result, tuple) else result
        official = np.array([float(row[c].iloc[0]) for c in cols])
        np.testing.assert_allclose(ours.table[i, :8], official, atol=1e-6, err_msg=f"{scene.token} plan {i}")
        # the official score without EC: multipliers x weighted metrics (EC excluded, /14)
        w = np.asarray(row["weighted_metrics"].iloc[0])[:4]
        expected = float(row["multiplicative_metrics_prod"].iloc[0]) * float(w @ [5, 5, 2, 2]) / 14
        assert ours.epdms[i] == pytest.approx(expected, abs=1e-9)
