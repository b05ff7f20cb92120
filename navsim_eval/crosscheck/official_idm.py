"""Run NAVSIM's reactive traffic (`NavsimIDMTrafficAgents`, nuPlan's IDM agents) on our scenes (cross-check only).

The official policy loads a nuPlan map with `get_maps_api(map_root, map_version, map_name)`; here that call is
answered by `SceneIdmMapApi`, which extends the PDM-Closed stand-in with what the IDM agents ask: `is_in_layer` and
`get_all_map_objects` for LANE / INTERSECTION / LANE_CONNECTOR, nuPlan's own polyline baseline paths (nearest pose,
arc length, discrete path, curvature), speed limits, successors, `has_traffic_lights` and `stop_lines`.
Parameters are `navsim_IDM_traffic_agents.yaml`'s `reactive` entry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from shapely.geometry import LineString, Point

from navsim_eval.crosscheck.metric_cache import require_navsim
from navsim_eval.crosscheck.official_pdm_closed import SceneMapApi
from navsim_eval.crosscheck.official_scorer import OfficialScores, official_score
from sim.scene import Scene

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OfficialIdmConfig:
    """`navsim_IDM_traffic_agents.yaml` (reactive): the values navhard scores with."""

    target_velocity: float = 10.0
    min_gap_to_lead_agent: float = 1.0
    headway_time: float = 1.5
    accel_max: float = 1.0
    decel_max: float = 2.0
    minimum_path_length: float = 20.0
    radius: float = 100.0
    add_open_loop_parked_vehicles: bool = True
    idm_snap_threshold: float = 3.0

    def __post_init__(self) -> None:
        vals = (self.target_velocity, self.headway_time, self.accel_max, self.decel_max, self.radius)
        if min(vals) <= 0 or self.min_gap_to_lead_agent < 0 or self.idm_snap_threshold < 0:
            raise ValueError("OfficialIdmConfig: speeds, times, accelerations and radius must be positive")


class _StopLine:
    def __init__(self, sid: str, polygon: Any) -> None:
        self.id = sid
        self.polygon = polygon


class SceneIdmMapApi(SceneMapApi):
    """`SceneMapApi` plus the lane-graph queries of nuPlan's IDM agents, with nuPlan's polyline baselines."""

    def __init__(self, scene: Scene, connector_roadblocks_drivable: bool = True) -> None:
        super().__init__(scene, connector_roadblocks_drivable)
        import pandas as pd
        from nuplan.common.maps.nuplan_map.polyline_map_object import NuPlanPolylineMapObject

        m = scene.map
        signalled = {cid for tl in scene.traffic_lights for cid in tl.connector_ids}
        for lid, lane in m.lanes.items():
            edge = self.lanes[lid]
            edge.baseline_path = NuPlanPolylineMapObject(
                pd.Series({"fid": lid, "geometry": LineString(lane.centerline)})
            )
            edge.is_connector = lane.is_connector
            has_lights = lid in signalled
            edge.has_traffic_lights = lambda flag=has_lights: flag
            # a connector's stop lines: the stop-line areas of the lanes that feed it
            edge.stop_lines = (
                [_StopLine(a.id, a.polygon) for a in m.stop_lines.values() if set(a.lane_ids) & set(lane.predecessors)]
                if has_lights
                else []
            )
        self._intersection_polys = [a.polygon for a in m.intersections.values()]

    def _edges(self, layer: Any) -> list:
        if layer == self._layer.LANE:
            return [e for e in self.lanes.values() if not e.is_connector]
        if layer == self._layer.LANE_CONNECTOR:
            return [e for e in self.lanes.values() if e.is_connector]
        return []

    def is_in_layer(self, point: Any, layer: Any) -> bool:
        p = Point(point.x, point.y)
        if layer == self._layer.INTERSECTION:
            return any(poly.contains(p) for poly in self._intersection_polys)
        return any(e.polygon.contains(p) for e in self._edges(layer))

    def get_all_map_objects(self, point: Any, layer: Any) -> list:
        p = Point(point.x, point.y)
        return [e for e in self._edges(layer) if e.polygon.contains(p)]


@contextmanager
def _patched_maps_api(map_api: Any) -> Iterator[None]:
    """`navsim_IDM_traffic_agents.get_maps_api` answers with our map for the duration of one scoring run."""
    import navsim.traffic_agents_policies.navsim_IDM_traffic_agents as mod

    original = mod.get_maps_api
    mod.get_maps_api = lambda *args, **kwargs: map_api
    try:
        yield
    finally:
        mod.get_maps_api = original


def official_idm_policy(config: OfficialIdmConfig | None = None) -> Any:
    """The official reactive traffic policy with the yaml's parameters."""
    from navsim.planning.simulation.observation.navsim_idm_agents import NavsimIDMAgents
    from navsim.traffic_agents_policies.navsim_IDM_traffic_agents import NavsimIDMTrafficAgents
    from nuplan.planning.simulation.trajectory.trajectory_sampling import TrajectorySampling

    cfg = config or OfficialIdmConfig()
    agents = NavsimIDMAgents(
        target_velocity=cfg.target_velocity,
        min_gap_to_lead_agent=cfg.min_gap_to_lead_agent,
        headway_time=cfg.headway_time,
        accel_max=cfg.accel_max,
        decel_max=cfg.decel_max,
        open_loop_detections_types=[],
        minimum_path_length=cfg.minimum_path_length,
        radius=cfg.radius,
        add_open_loop_parked_vehicles=cfg.add_open_loop_parked_vehicles,
        idm_snap_threshold=cfg.idm_snap_threshold,
    )
    return NavsimIDMTrafficAgents(TrajectorySampling(num_poses=40, interval_length=0.1), agents)


def official_reactive_score(
    metric_cache: Any, scene: Scene, proposals: np.ndarray, human_filter: bool = True
) -> OfficialScores:
    """Official sub-scores of plans (K, 8, 3) with the reactive IDM traffic, one `pdm_score` call per plan."""
    with _patched_maps_api(SceneIdmMapApi(scene)):
        return official_score(metric_cache, proposals, human_filter, traffic=official_idm_policy())


def official_reactive_tracks(metric_cache: Any, scene: Scene, ego_states: np.ndarray) -> list:
    """The official policy's 41 frames of detections for one simulated ego rollout (41, 11), for debugging."""
    require_navsim()
    with _patched_maps_api(SceneIdmMapApi(scene)):
        return official_idm_policy().simulate_environment(np.asarray(ego_states, dtype=np.float64), metric_cache)
