"""Stand-ins shaped like NAVSIM's `MetricCache` (the attributes and methods `navsim_eval.metric_cache` reads), built
from one of our scenes so that CI can drive the conversion without navsim or nuplan-devkit.

The field types follow navsim/planning/metric_caching/metric_cache.py: an nuPlan `EgoState` (rear axle, dynamic car
state, steering angle, car footprint with vehicle parameters, time point), `InterpolatedTrajectory`s
(`get_sampled_trajectory`, `start_time`, `end_time`, `get_state_at_times`), a `PDMPath` (`discrete_path`), a
`PDMDrivableMap` (`tokens`, `map_types`, `[token]`), a `PDMObservation` (`detections_tracks`, `red_light_token`,
`[step]` -> occupancy map with `tokens` and `[token]`) and a navsim `Trajectory` (`poses`).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from navsim_eval.cache import SceneCache
from navsim_eval.comfort import history_states
from navsim_eval.config import EpdmsConfig
from navsim_eval.mapquery import ego_box_centre, proximal, route_lane_ids
from navsim_eval.observation import build_observation
from navsim_eval.simulation import initial_state_from_scene
from sim.scene import AgentType, Scene

RED = "red_light"


def _pose(x, y, h):
    return SimpleNamespace(x=float(x), y=float(y), heading=float(h))


def _vec(x, y):
    return SimpleNamespace(x=float(x), y=float(y))


def ego_state(row: np.ndarray, scene: Scene, time_us: int = 0) -> SimpleNamespace:
    p = scene.ego_params
    return SimpleNamespace(
        rear_axle=_pose(*row[:3]),
        dynamic_car_state=SimpleNamespace(
            rear_axle_velocity_2d=_vec(row[3], row[4]),
            rear_axle_acceleration_2d=_vec(row[5], row[6]),
            tire_steering_rate=float(row[8]),
            angular_velocity=float(row[9]),
            angular_acceleration=float(row[10]),
        ),
        tire_steering_angle=float(row[7]),
        car_footprint=SimpleNamespace(
            vehicle_parameters=SimpleNamespace(
                width=p.width,
                front_length=p.front_length,
                rear_length=p.rear_length,
                wheel_base=p.wheelbase,
                height=p.height,
            )  # fmt: skip
        ),
        time_point=SimpleNamespace(time_us=time_us),
    )


class _Indexable(SimpleNamespace):
    def __getitem__(self, key):
        return self._get(key)


class _TimePoint(SimpleNamespace):
    def __init__(self, time_us: int) -> None:
        super().__init__(time_us=int(time_us))


def past_trajectory(scene: Scene, config: EpdmsConfig) -> SimpleNamespace:
    """The past at -1.5 .. 0 s whose `get_state_at_times` answers with our own history rows (-1.5 .. -0.2 s)."""
    rows = history_states(scene, config.scorer, config.simulation.interval)

    def at(times):
        return [ego_state(rows[int(round((t.time_us - start) / 1e5))], scene, t.time_us) for t in times]

    start = -1_500_000
    return SimpleNamespace(start_time=_TimePoint(start), end_time=_TimePoint(0), get_state_at_times=at)


def drivable_map(scene: Scene, radius: float = 100.0) -> _Indexable:
    """Roadblocks, lanes and connectors, intersections and car parks meeting the 100 m square, with layer names."""
    m, centre = scene.map, ego_box_centre(scene)
    tokens, layers, geoms = [], [], []
    blocks = list(m.roadblocks.values())
    for rb, k in zip(blocks, proximal([r.polygon for r in blocks], centre, radius)):
        if not k:
            continue
        tokens.append(rb.id), layers.append("ROADBLOCK"), geoms.append(rb.polygon)
        for lane in m.lanes.values():
            if lane.roadblock_id == rb.id:
                tokens.append(lane.id)
                layers.append("LANE_CONNECTOR" if lane.is_connector else "LANE")
                geoms.append(lane.polygon)
    for areas, layer in ((m.intersections, "INTERSECTION"), (m.carparks, "CARPARK_AREA")):
        polys = [a.polygon for a in areas.values()]
        for a, k in zip(areas.values(), proximal(polys, centre, radius)):
            if k:
                tokens.append(a.id), layers.append(layer), geoms.append(a.polygon)
    by_token = dict(zip(tokens, geoms))
    return _Indexable(tokens=tokens, map_types=[SimpleNamespace(name=n) for n in layers], _get=by_token.__getitem__)


def observation(scene: Scene, config: EpdmsConfig) -> _Indexable:
    """Tracks at 10 Hz (our log-replay observation's, as the official interpolation gives them) and red connectors."""
    sc, sim_cfg = config.scorer, config.simulation
    obs = build_observation(scene, sim_cfg.num_poses + 1, sim_cfg.interval, sc.navsim_2hz_agents)
    tracks = []
    for t in range(obs.num_steps):
        objs = []
        for a in np.flatnonzero(obs.present[:, t]):
            x, y, h, vx, vy = obs.states[a, t]
            kind = AgentType(int(obs.types[a]))
            length, width, height = obs.sizes[a]
            o = SimpleNamespace(
                track_token=obs.ids[a],
                tracked_object_type=SimpleNamespace(name=kind.name),
                box=SimpleNamespace(center=_pose(x, y, h), length=length, width=width, height=height),
            )
            if kind.is_road_user:
                o.velocity = _vec(vx, vy)
            objs.append(o)
        tracks.append(SimpleNamespace(tracked_objects=objs))
    red = {f"{RED}_{i}": p for i, p in enumerate(obs.red_polygons)}

    def occupancy(t):
        toks = [k for i, k in enumerate(red) if obs.red_masks[i, t]]
        return _Indexable(tokens=toks, _get=lambda k: red[k])

    return _Indexable(detections_tracks=tracks, red_light_token=RED, _get=occupancy)


def metric_cache_of(scene: Scene, config: EpdmsConfig | None = None, synthetic: bool = False, token: str = "tok"):
    """A stand-in metric cache of `scene` with our reference and centreline in it."""
    config = config or EpdmsConfig()
    built = SceneCache.build(scene, config)
    init = initial_state_from_scene(scene)
    ref = built.reference_plan
    return SimpleNamespace(
        file_path=Path("cache") / "log" / "type" / token / "metric_cache.pkl",
        timepoint=SimpleNamespace(time_us=1_600_000_000_000_000),
        scene_type=SimpleNamespace(name="SYNTHETIC" if synthetic else "ORIGINAL"),
        trajectory=SimpleNamespace(get_sampled_trajectory=lambda: [ego_state(r, scene) for r in ref]),
        human_trajectory=None if synthetic else SimpleNamespace(poses=scene.human_trajectory()),
        past_human_trajectory=past_trajectory(scene, config),
        ego_state=ego_state(init, scene),
        observation=observation(scene, config),
        centerline=SimpleNamespace(discrete_path=[_pose(*p) for p in built.map_queries.centerline.poses]),
        route_lane_ids=route_lane_ids(scene),
        drivable_area_map=drivable_map(scene, config.scorer.drivable_map_radius),
    )
