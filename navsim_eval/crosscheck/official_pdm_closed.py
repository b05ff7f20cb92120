"""Run the official PDM-Closed planner of NAVSIM's metric cache on our scenes, through a small nuPlan map stand-in.

`MetricCacheProcessor` runs `PDMClosedPlanner` (IDM at 0.2 .. 1.0 of the speed limit, lateral offsets of +-1 m) to
get the reference trajectory that normalises EP, and stores the planner's Dijkstra centreline for progress and lane
keeping. The planner reads the map through nuPlan's map API; `SceneMapApi` answers the few calls it makes (map
objects by id, proximal objects, lane graph edges, baseline paths and speed limits) from our `MapData`.

The planner's route-roadblock correction (a BFS over the roadblock graph that repairs logged routes starting behind
the ego) is skipped: our routes start at the ego's roadblock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from shapely.geometry import Point
from shapely.geometry import box as shapely_box

from navsim_eval.crosscheck.metric_cache import (
    MetricCacheConfig,
    detections_at,
    ego_state_at,
    require_navsim,
)
from sim.scene import Lane, Scene, TrafficLightState

logger = logging.getLogger(__name__)


@dataclass
class _BaselinePath:
    discrete_path: list
    length: float


@dataclass(eq=False)
class _LaneEdge:
    """The `LaneGraphEdgeMapObject` surface the planner uses."""

    id: str
    polygon: Any
    baseline_path: _BaselinePath
    speed_limit_mps: float
    roadblock_id: str
    outgoing_edges: list = field(default_factory=list)
    incoming_edges: list = field(default_factory=list)

    def get_roadblock_id(self) -> str:
        return self.roadblock_id

    def contains_point(self, point: Any) -> bool:
        return bool(self.polygon.contains(Point(point.x, point.y)))


@dataclass(eq=False)
class _Block:
    """A roadblock, roadblock connector, intersection or car park: id, polygon and its lanes."""

    id: str
    polygon: Any
    interior_edges: list = field(default_factory=list)


class SceneMapApi:
    """nuPlan `AbstractMap` stand-in over our `MapData`, for `PDMClosedPlanner` and `PDMDrivableMap.from_simulation`.

    connector_roadblocks_drivable: report intersection roadblocks under ROADBLOCK (their polygons then count as
    drivable area, as in our scene model) instead of ROADBLOCK_CONNECTOR (nuPlan's convention).
    """

    map_name = "irlvla-procedural"

    def __init__(self, scene: Scene, connector_roadblocks_drivable: bool = True) -> None:
        ns = require_navsim()
        self._layer = ns.SemanticMapLayer
        m = scene.map
        self.lanes: dict[str, _LaneEdge] = {lid: self._lane(ns, lane) for lid, lane in m.lanes.items()}
        for lid, lane in m.lanes.items():
            self.lanes[lid].outgoing_edges = [self.lanes[s] for s in lane.successors]
            self.lanes[lid].incoming_edges = [self.lanes[p] for p in lane.predecessors]
        connector_blocks = {lane.roadblock_id for lane in m.lanes.values() if lane.is_connector}
        self.blocks: dict[str, _Block] = {}
        self.connector_blocks: dict[str, _Block] = {}
        for rb in m.roadblocks.values():
            block = _Block(rb.id, rb.polygon, [e for e in self.lanes.values() if e.roadblock_id == rb.id])
            if rb.id in connector_blocks and not connector_roadblocks_drivable:
                self.connector_blocks[rb.id] = block
            else:
                self.blocks[rb.id] = block
        self.intersections = [_Block(a.id, a.polygon) for a in m.intersections.values()]
        self.carparks = [_Block(a.id, a.polygon) for a in m.carparks.values()]

    @staticmethod
    def _lane(ns: Any, lane: Lane) -> _LaneEdge:
        path = [ns.StateSE2(x, y, h) for (x, y), h in zip(lane.centerline, lane.headings)]
        return _LaneEdge(lane.id, lane.polygon, _BaselinePath(path, lane.length), lane.speed_limit, lane.roadblock_id)

    def get_map_object(self, object_id: str, layer: Any) -> Any:
        if layer in (self._layer.ROADBLOCK, self._layer.ROADBLOCK_CONNECTOR):
            return self.blocks.get(object_id) or self.connector_blocks.get(object_id)
        if layer in (self._layer.LANE, self._layer.LANE_CONNECTOR):
            return self.lanes.get(object_id)
        return None

    def get_proximal_map_objects(self, point: Any, radius: float, layers: list) -> dict:
        # NuPlanMap: objects whose geometry intersects the axis-aligned square of half-side `radius`
        patch = shapely_box(point.x - radius, point.y - radius, point.x + radius, point.y + radius)
        source = {
            self._layer.ROADBLOCK: list(self.blocks.values()),
            self._layer.ROADBLOCK_CONNECTOR: list(self.connector_blocks.values()),
            self._layer.INTERSECTION: self.intersections,
            self._layer.CARPARK_AREA: self.carparks,
        }
        return {layer: [o for o in source.get(layer, []) if o.polygon.intersects(patch)] for layer in layers}


def route_roadblock_ids(scene: Scene) -> list[str]:
    """The route's roadblocks in driving order (what `scenario.get_route_roadblock_ids()` gives)."""
    return list(dict.fromkeys(scene.map.lanes[i].roadblock_id for i in scene.route.lane_ids))


def official_pdm_closed(scene: Scene, config: MetricCacheConfig | None = None, step: int | None = None) -> tuple:
    """The official PDM-Closed trajectory (InterpolatedTrajectory) and centreline (PDMPath) of `scene` at `step`."""
    ns = require_navsim()
    from navsim.planning.simulation.planner.pdm_planner.pdm_closed_planner import PDMClosedPlanner
    from navsim.planning.simulation.planner.pdm_planner.proposal.batch_idm_policy import BatchIDMPolicy
    from nuplan.planning.simulation.history.simulation_history_buffer import SimulationHistoryBuffer
    from nuplan.planning.simulation.planner.abstract_planner import PlannerInitialization, PlannerInput
    from nuplan.planning.simulation.simulation_time_controller.simulation_iteration import SimulationIteration

    cfg = config or MetricCacheConfig()
    step = scene.current_index if step is None else int(step)
    proposal_sampling = ns.TrajectorySampling(num_poses=cfg.num_poses, interval_length=cfg.interval_s)
    future = ns.TrajectorySampling(
        num_poses=cfg.num_poses + int(round(1.0 / cfg.interval_s)), interval_length=cfg.interval_s
    )
    # the metric cache's planner (metric_cache_processor.py)
    planner = PDMClosedPlanner(
        trajectory_sampling=future,
        proposal_sampling=proposal_sampling,
        idm_policies=BatchIDMPolicy(
            speed_limit_fraction=[0.2, 0.4, 0.6, 0.8, 1.0],
            fallback_target_velocity=15.0,
            min_gap_to_lead_agent=1.0,
            headway_time=1.5,
            accel_max=1.5,
            decel_max=3.0,
        ),
        lateral_offsets=[-1.0, 1.0],
        map_radius=100,
    )
    planner._route_roadblock_correction = lambda ego_state: None  # our routes already start at the ego
    ego = ego_state_at(ns, scene, step)
    map_api = SceneMapApi(scene, cfg.connector_roadblocks_drivable)
    planner.initialize(PlannerInitialization(route_roadblock_ids(scene), ego.rear_axle, map_api))
    current = detections_at(ns, scene, step)
    history = SimulationHistoryBuffer.initialize_from_list(buffer_size=1, ego_states=[ego], observations=[current])
    lights = [
        ns.TrafficLightStatusData(
            ns.TrafficLightStatusType[TrafficLightState(int(tl.states[step])).name], cid, ego.time_point.time_us
        )
        for tl in scene.traffic_lights
        for cid in tl.connector_ids
    ]
    planner_input = PlannerInput(SimulationIteration(ego.time_point, 0), history, lights)
    trajectory = planner.compute_planner_trajectory(planner_input)
    return trajectory, planner._centerline


def official_reference_states(scene: Scene, config: MetricCacheConfig | None = None) -> tuple[np.ndarray, Any]:
    """Official PDM-Closed states (T, 11) at 0.1 s from t = 0 and its centreline, for `scene_to_metric_cache`."""
    from navsim.planning.simulation.planner.pdm_planner.utils.pdm_array_representation import (
        ego_states_to_state_array,
    )

    trajectory, centerline = official_pdm_closed(scene, config)
    return ego_states_to_state_array(trajectory.get_sampled_trajectory()), centerline
