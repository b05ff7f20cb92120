"""Convert a `sim.scene.Scene` into the official NAVSIM v2.2 `MetricCache`, for cross-checking our EPDMS scorer.

The official scorer reads nothing but the metric cache, so a scene converted here is scored by the unmodified devkit
(`navsim.evaluate.pdm_score`) exactly as a real OpenScene token would be. The conversion mirrors
`MetricCacheProcessor.compute_metric_cache` with our scene standing in for the nuPlan scenario and map:

- the ego state at t = 0 from the log, with NAVSIM's Pacifica parameters and, as OpenScene's ego status has none,
  zero steering angle and yaw rate;
- the PDM-Closed reference from our own reference planner (`navsim_eval.pdm_closed`) unless one is given (e.g. the
  official planner's, `navsim_eval.crosscheck.official_pdm_closed`), so both scorers are given the same reference;
- tracks read at 2 Hz (t = 0, 0.5, ..., 4 s) and interpolated to 10 Hz by the official `MetricCacheProcessor` code,
  and traffic lights sample-and-hold per 0.5 s frame, through a small stand-in for `NavSimScenario`;
- the human future (8 poses at 0.5 s), the past human trajectory (-1.5 .. 0 s at 2 Hz), PDM-Closed's Dijkstra
  centreline (ours, `MapQueries.centerline`) as a `PDMPath`, the on-route lane ids (every lane of a route roadblock)
  and a `PDMDrivableMap` of our map layers within nuPlan's 100 m proximity square.

navsim and nuplan-devkit are imported lazily; they are not on PyPI (see docs/navsim_crosscheck.md).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from shapely.geometry import Point
from shapely.geometry import box as shapely_box

from sim.scene import (
    AG_HEADING,
    AG_VX,
    AG_VY,
    AG_X,
    AG_Y,
    EGO_AX,
    EGO_AY,
    EGO_HEADING,
    EGO_VX,
    EGO_VY,
    EGO_X,
    EGO_Y,
    AgentType,
    Scene,
    TrafficLightState,
)

logger = logging.getLogger(__name__)

TIME_ORIGIN_US = 1_600_000_000_000_000  # scene time 0 maps here: nuPlan time points are positive microseconds


# Every navsim / nuplan-devkit name the conversion uses, with its module.
_DEVKIT_NAMES: dict[str, str] = {
    "Trajectory": "navsim.common.dataclasses",
    "SceneFrameType": "navsim.common.enums",
    "MapParameters": "navsim.planning.metric_caching.metric_cache",
    "MetricCache": "navsim.planning.metric_caching.metric_cache",
    "MetricCacheProcessor": "navsim.planning.metric_caching.metric_cache_processor",
    "PDMDrivableMap": "navsim.planning.simulation.planner.pdm_planner.observation.pdm_occupancy_map",
    "state_array_to_ego_states": "navsim.planning.simulation.planner.pdm_planner.utils.pdm_array_representation",
    "PDMPath": "navsim.planning.simulation.planner.pdm_planner.utils.pdm_path",
    "Agent": "nuplan.common.actor_state.agent",
    "EgoState": "nuplan.common.actor_state.ego_state",
    "OrientedBox": "nuplan.common.actor_state.oriented_box",
    "SceneObjectMetadata": "nuplan.common.actor_state.scene_object",
    "StateSE2": "nuplan.common.actor_state.state_representation",
    "StateVector2D": "nuplan.common.actor_state.state_representation",
    "TimePoint": "nuplan.common.actor_state.state_representation",
    "StaticObject": "nuplan.common.actor_state.static_object",
    "TrackedObjects": "nuplan.common.actor_state.tracked_objects",
    "TrackedObjectType": "nuplan.common.actor_state.tracked_objects_types",
    "get_pacifica_parameters": "nuplan.common.actor_state.vehicle_parameters",
    "SemanticMapLayer": "nuplan.common.maps.maps_datatypes",
    "TrafficLightStatusData": "nuplan.common.maps.maps_datatypes",
    "TrafficLightStatusType": "nuplan.common.maps.maps_datatypes",
    "DetectionsTracks": "nuplan.planning.simulation.observation.observation_type",
    "InterpolatedTrajectory": "nuplan.planning.simulation.trajectory.interpolated_trajectory",
    "TrajectorySampling": "nuplan.planning.simulation.trajectory.trajectory_sampling",
}


def require_navsim() -> SimpleNamespace:
    """Import every navsim / nuplan-devkit name the conversion needs, or fail naming the `navsim` extra."""
    try:
        found = {name: getattr(importlib.import_module(mod), name) for name, mod in _DEVKIT_NAMES.items()}
    except ImportError as exc:
        raise ImportError(
            "the official NAVSIM cross-check needs navsim and nuplan-devkit, installed from their sources "
            "(pip extra `navsim` plus `pip install --no-deps -e <navsim> -e <nuplan-devkit>`; "
            f"see docs/navsim_crosscheck.md): {exc}"
        ) from exc
    return SimpleNamespace(**found)


@dataclass(frozen=True)
class MetricCacheConfig:
    """Sampling of the metric cache (NAVSIM's values) and how our map layers become nuPlan layers.

    `connector_roadblocks_drivable`: our maps list intersection roadblocks (those holding lane connectors) among the
    roadblocks and count them as drivable area (`MapData.drivable_area`); nuPlan calls them ROADBLOCK_CONNECTOR and
    leaves them out of the drivable polygons. True keeps our scene's own semantics so that the cross-check compares
    scorers, not map conventions.
    `map_radius`: like `PDMDrivableMap.from_simulation` in the metric cache (PDM-Closed's 100 m), only roadblocks
    (with all their lanes), intersections and car parks whose polygon meets the axis-aligned square of this half-side
    around the ego's box centre at t = 0 enter the drivable map (nuPlan's `get_proximal_map_objects`); None takes the
    whole map.
    """

    horizon_s: float = 4.0
    sample_s: float = 0.5  # NAVSIM's database interval: tracks, lights and the human trajectory are read at 2 Hz
    interval_s: float = 0.1  # proposal sampling of the scorer
    history_s: float = 1.5
    connector_roadblocks_drivable: bool = True
    map_radius: float | None = 100.0

    def __post_init__(self) -> None:
        if self.map_radius is not None and not (self.map_radius > 0):
            raise ValueError(f"MetricCacheConfig.map_radius must be positive or None, got {self.map_radius}")
        for name in ("horizon_s", "sample_s", "interval_s", "history_s"):
            if not (getattr(self, name) > 0):
                raise ValueError(f"MetricCacheConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("horizon_s", "history_s"):
            ratio = getattr(self, name) / self.sample_s
            if abs(ratio - round(ratio)) > 1e-9:
                raise ValueError(f"MetricCacheConfig.{name} must be a multiple of sample_s ({self.sample_s})")

    @property
    def num_poses(self) -> int:
        return int(round(self.horizon_s / self.interval_s))


def _time_point(ns: SimpleNamespace, scene: Scene, step: int) -> Any:
    rel = scene.timestamps[step] - scene.timestamps[scene.current_index]
    return ns.TimePoint(int(TIME_ORIGIN_US + round(rel * 1e6)))


def _stride(scene: Scene, seconds: float) -> int:
    stride = seconds / scene.dt
    if abs(stride - round(stride)) > 1e-6 or round(stride) < 1:
        raise ValueError(f"scene {scene.token}: dt {scene.dt} s does not divide {seconds} s")
    return int(round(stride))


def ego_state_at(ns: SimpleNamespace, scene: Scene, step: int) -> Any:
    """The logged ego at `step` as NAVSIM builds it from an ego status (rear axle; no steering or yaw rate)."""
    e = scene.ego[step]
    return ns.EgoState.build_from_rear_axle(
        rear_axle_pose=ns.StateSE2(e[EGO_X], e[EGO_Y], e[EGO_HEADING]),
        rear_axle_velocity_2d=ns.StateVector2D(e[EGO_VX], e[EGO_VY]),
        rear_axle_acceleration_2d=ns.StateVector2D(e[EGO_AX], e[EGO_AY]),
        tire_steering_angle=0.0,
        time_point=_time_point(ns, scene, step),
        vehicle_parameters=ns.get_pacifica_parameters(),
    )


def detections_at(ns: SimpleNamespace, scene: Scene, step: int) -> Any:
    """Detections at one scene step: road users as `Agent` (global velocity), everything else as `StaticObject`."""
    agents = scene.agents
    ts_us = _time_point(ns, scene, step).time_us
    objs = []
    for a in np.flatnonzero(agents.valid[:, step]):
        st = agents.states[a, step]
        kind = AgentType(int(agents.types[a]))
        obj_type = ns.TrackedObjectType[kind.name]
        length, width, height = agents.sizes[a]
        box = ns.OrientedBox(ns.StateSE2(st[AG_X], st[AG_Y], st[AG_HEADING]), length, width, height)
        meta = ns.SceneObjectMetadata(ts_us, token=f"{agents.ids[a]}@{step}", track_id=None, track_token=agents.ids[a])
        if kind.is_road_user:
            objs.append(ns.Agent(obj_type, box, ns.StateVector2D(st[AG_VX], st[AG_VY]), meta))
        else:
            objs.append(ns.StaticObject(obj_type, box, meta))
    return ns.DetectionsTracks(ns.TrackedObjects(objs))


class _SceneAsScenario:
    """The slice of `NavSimScenario` that `MetricCacheProcessor`'s interpolation helpers read, over our scene."""

    def __init__(self, ns: SimpleNamespace, scene: Scene, config: MetricCacheConfig, step: int) -> None:
        self._ns, self._scene, self._step = ns, scene, step
        self._stride = _stride(scene, config.sample_s)
        self.database_interval = config.sample_s
        needed = step + self._stride * int(round(config.horizon_s / config.sample_s))
        if needed >= scene.num_steps:
            raise ValueError(f"scene {scene.token}: needs {config.horizon_s} s of future after step {step}")

    def get_tracked_objects_at_iteration(self, iteration: int) -> Any:
        return detections_at(self._ns, self._scene, self._step + self._stride * iteration)

    def get_traffic_light_status_at_iteration(self, iteration: int) -> list:
        ns, step = self._ns, self._step + self._stride * iteration
        ts = _time_point(ns, self._scene, step).time_us
        out = []
        for tl in self._scene.traffic_lights:
            status = ns.TrafficLightStatusType[TrafficLightState(int(tl.states[step])).name]
            out.extend(ns.TrafficLightStatusData(status, cid, ts) for cid in tl.connector_ids)
        return out


def on_route_lane_ids(scene: Scene) -> list[str]:
    """Every lane and connector of the route's roadblocks, in map order (PDM-Closed's `route_lane_dict`)."""
    blocks = {scene.map.lanes[i].roadblock_id for i in scene.route.lane_ids}
    return [lid for lid, lane in scene.map.lanes.items() if lane.roadblock_id in blocks]


def drivable_area_map(ns: SimpleNamespace, scene: Scene, config: MetricCacheConfig, centre: Any = None) -> Any:
    """`PDMDrivableMap` of roadblocks, lanes, lane connectors, intersections and car parks near `centre`.

    centre: shapely point of the ego box centre at t = 0 for `config.map_radius` (None: the whole map).
    """
    layer = ns.SemanticMapLayer
    m = scene.map

    if centre is None or config.map_radius is None:
        patch = None
    else:
        r = config.map_radius
        patch = shapely_box(centre.x - r, centre.y - r, centre.x + r, centre.y + r)

    def near(poly) -> bool:  # nuPlan's get_proximal_map_objects: intersects the square [centre +- radius]
        return patch is None or poly.intersects(patch)

    connector_blocks = {lane.roadblock_id for lane in m.lanes.values() if lane.is_connector}
    kept_blocks = {rb.id for rb in m.roadblocks.values() if near(rb.polygon)}
    tokens, types, polys = [], [], []
    for rb in m.roadblocks.values():
        if rb.id not in kept_blocks or (rb.id in connector_blocks and not config.connector_roadblocks_drivable):
            continue
        tokens.append(rb.id)
        types.append(layer.ROADBLOCK)
        polys.append(rb.polygon)
    for lane in m.lanes.values():
        if lane.roadblock_id not in kept_blocks:
            continue
        tokens.append(lane.id)
        types.append(layer.LANE_CONNECTOR if lane.is_connector else layer.LANE)
        polys.append(lane.polygon)
    for areas, kind in ((m.intersections, layer.INTERSECTION), (m.carparks, layer.CARPARK_AREA)):
        for area in areas.values():
            if not near(area.polygon):
                continue
            tokens.append(area.id)
            types.append(kind)
            polys.append(area.polygon)
    return ns.PDMDrivableMap(tokens, types, np.array(polys, dtype=object))


def centerline_path(ns: SimpleNamespace, scene: Scene) -> Any:
    """Our PDM centreline (`MapQueries.centerline`: the Dijkstra path over lane successors) as a `PDMPath`."""
    from navsim_eval.mapquery import MapQueries

    poses = MapQueries.of(scene).centerline.poses
    return ns.PDMPath([ns.StateSE2(x, y, h) for x, y, h in poses])


def reference_states(scene: Scene, epdms_config: Any = None) -> np.ndarray:
    """PDM-Closed's chosen proposal (41, 11) as simulated by our reference planner, before the scorer re-simulates.

    This is what the official metric cache stores as `trajectory`; our `score_proposals` re-simulates these poses
    into its `reference_states`, as `pdm_score` does with the cached trajectory.
    """
    from navsim_eval.cache import SceneCache

    return SceneCache.build(scene, epdms_config).reference_plan


def scene_to_metric_cache(
    scene: Scene,
    reference: np.ndarray | None = None,
    config: MetricCacheConfig | None = None,
    step: int | None = None,
    synthetic: bool | None = None,
    file_path: str | Path = "metric_cache.pkl",
    centerline: Any = None,
) -> Any:
    """The official `MetricCache` of `scene` at `step` (default: its current frame).

    reference: PDM-Closed states (T >= 41, 11) at 0.1 s from t = 0 in world coordinates; default: our reference
    planner on the scene (only at the current frame). synthetic: mark the cache SYNTHETIC (no human filter, no human
    trajectory); default from `scene.metadata["synthetic"]`.
    """
    ns = require_navsim()
    cfg = config or MetricCacheConfig()
    if not isinstance(scene, Scene):
        raise TypeError(f"scene must be a sim.scene.Scene, got {type(scene).__name__}")
    step = scene.current_index if step is None else int(step)
    stride = _stride(scene, cfg.sample_s)
    n_hist = int(round(cfg.history_s / cfg.sample_s))
    if step - stride * n_hist < 0:
        raise ValueError(f"scene {scene.token}: needs {cfg.history_s} s of ego history before step {step}")
    if synthetic is None:
        synthetic = bool(scene.metadata.get("synthetic", False)) if isinstance(scene.metadata, dict) else False
    if reference is None:
        if step != scene.current_index:
            raise ValueError("a reference trajectory must be given for a step other than the scene's current frame")
        reference = reference_states(scene)
    reference = np.asarray(reference, dtype=np.float64)
    if reference.ndim != 2 or reference.shape[1] != 11 or reference.shape[0] < cfg.num_poses + 1:
        raise ValueError(f"reference must have shape (T >= {cfg.num_poses + 1}, 11), got {reference.shape}")
    if not np.all(np.isfinite(reference)):
        raise ValueError("reference contains NaN or infinite values")

    ego_state = ego_state_at(ns, scene, step)
    params = ego_state.car_footprint.vehicle_parameters
    times = [
        ns.TimePoint(ego_state.time_point.time_us + int(round(i * cfg.interval_s * 1e6))) for i in range(len(reference))
    ]
    ref_states = ns.state_array_to_ego_states(reference, times, params)
    pdm_trajectory = ns.InterpolatedTrajectory(list(ref_states))

    past_steps = [step - stride * i for i in range(n_hist, -1, -1)]
    past_human = ns.InterpolatedTrajectory([ego_state_at(ns, scene, s) for s in past_steps])

    human = None
    if not synthetic:
        n_future = int(round(cfg.horizon_s / cfg.sample_s))
        poses = scene.human_trajectory(n_future, cfg.sample_s, step=step)
        human = ns.Trajectory(poses, ns.TrajectorySampling(time_horizon=cfg.horizon_s, interval_length=cfg.sample_s))

    proposal_sampling = ns.TrajectorySampling(num_poses=cfg.num_poses, interval_length=cfg.interval_s)
    processor = ns.MetricCacheProcessor(None, False, proposal_sampling)
    scenario = _SceneAsScenario(ns, scene, cfg, step)
    route_ids = on_route_lane_ids(scene)
    route_lane_dict = {lid: SimpleNamespace(id=lid, polygon=scene.map.lanes[lid].polygon) for lid in route_ids}
    tracks = processor._interpolate_gt_observation(scenario)
    lights = processor._interpolate_traffic_light_status(scenario)
    observation = processor._build_pdm_observation(tracks, lights, route_lane_dict)

    return ns.MetricCache(
        file_path=Path(file_path),
        log_name=f"irlvla_{scene.scenario}",
        timepoint=ego_state.time_point,
        scene_type=ns.SceneFrameType.SYNTHETIC if synthetic else ns.SceneFrameType.ORIGINAL,
        trajectory=pdm_trajectory,
        human_trajectory=human,
        past_human_trajectory=past_human,
        ego_state=ego_state,
        observation=observation,
        centerline=centerline_path(ns, scene) if centerline is None else centerline,
        route_lane_ids=route_ids,
        drivable_area_map=drivable_area_map(ns, scene, cfg, Point(ego_state.center.x, ego_state.center.y)),
        past_detections_tracks=[detections_at(ns, scene, s) for s in past_steps[:-1]],
        current_tracked_objects=[detections_at(ns, scene, step)],
        future_tracked_objects=tracks[1:],
        map_parameters=ns.MapParameters(map_root="", map_version="irlvla-procedural", map_name=scene.scenario),
    )
