"""Closed-loop routes: a scenario family and seed, the ego's route through its scene, and the leaderboard's plans.

A route is named by (family, seed): `build_route` regenerates the scene deterministically and takes the ego's lane
path from its start to the end of the path (capped at `max_length_m`); a family whose manoeuvre the agent must decide
on itself (yielding to an emergency vehicle) gives the route its own lane path and keeps the expert's for
privileged agents (`Route.drive_path`). The leaderboard hands agents that route as a
dense plan, one point per metre, with a `RoadOption` per point (`global_plan`): LANEFOLLOW on lanes, LEFT / RIGHT /
STRAIGHT through junction connectors, CHANGELANELEFT / CHANGELANERIGHT where the path moves across lanes.

Route ids are integers (the Bench2Drive route-file rule); the family maps to the Bench2Drive scenario type whose
ability it exercises (`B2D_SCENARIO_TYPES`), so the ability tool scores our suites as it scores the 220 routes.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from agent import geometry
from sim.closed_loop.dynamics import MKZ2020, DynamicsConfig, VehicleState
from sim.scene import Scene, polyline_arclength
from sim.traffic import Path

#: the Bench2Drive scenario type each family stands for (ability tables key on it); junction families depend on the
#: movement and are resolved in `scenario_type`.
B2D_SCENARIO_TYPES: dict[str, str] = {
    "straight_road": "ParkingExit",
    "curve": "ControlLoss",
    "intersection": "SignalizedJunctionLeftTurn",
    "t_junction": "NonSignalizedJunctionLeftTurn",
    "lane_change": "ParkedObstacle",
    "merge": "MergerIntoSlowTraffic",
    "static_obstacle": "ConstructionObstacle",
    "cut_in": "HighwayCutIn",
    "pedestrian_crossing": "PedestrianCrossing",
    "hard_brake": "HardBreakRoute",
    "red_light": "VanillaSignalizedTurnEncounterRedLight",
    "yield_emergency": "YieldToEmergencyVehicle",
}

#: CARLA's default georeference (lat, lon), used when a map has none (`agent.geometry.parse_opendrive_georeference`).
DEFAULT_GEOREFERENCE = (42.0, 2.0)


class RoadOption(enum.IntEnum):
    """CARLA's `agents.navigation.local_planner.RoadOption` values."""

    VOID = -1
    LEFT = 1
    RIGHT = 2
    STRAIGHT = 3
    LANEFOLLOW = 4
    CHANGELANELEFT = 5
    CHANGELANERIGHT = 6


def scenario_type(family: str, metadata: dict) -> str:
    """The Bench2Drive scenario type of a scene (junction families by their movement)."""
    movement = metadata.get("movement")
    if family == "intersection":
        return {
            "left": "SignalizedJunctionLeftTurn",
            "right": "SignalizedJunctionRightTurn",
            "straight": "VanillaSignalizedTurnEncounterGreenLight",
        }.get(movement, "SignalizedJunctionLeftTurn")
    if family == "t_junction":
        return "NonSignalizedJunctionRightTurn" if movement == "right" else "NonSignalizedJunctionLeftTurn"
    return B2D_SCENARIO_TYPES[family]


@dataclass(frozen=True)
class RouteSpec:
    """One route of a suite: integer id, scenario family and seed (the scene is regenerated from them)."""

    route_id: int
    family: str
    seed: int
    max_length_m: float = 250.0
    town: str = "EmbeddedWorld"
    weather_id: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.route_id, bool) or not isinstance(self.route_id, int) or self.route_id < 0:
            raise ValueError(f"RouteSpec.route_id must be a non-negative integer, got {self.route_id!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"RouteSpec.seed must be a non-negative integer, got {self.seed!r}")
        if self.family not in B2D_SCENARIO_TYPES:
            raise ValueError(
                f"RouteSpec.family: unknown family {self.family!r}; choose from {sorted(B2D_SCENARIO_TYPES)}"
            )
        if not (20.0 <= self.max_length_m <= 2000.0):
            raise ValueError(f"RouteSpec.max_length_m must be in [20, 2000], got {self.max_length_m}")

    @property
    def leaderboard_id(self) -> str:
        """`RouteScenario_<id>_rep0`, the record's `route_id`."""
        return f"RouteScenario_{self.route_id}_rep0"


@dataclass
class Route:
    """A built route: its scene, the ego's path and start, and the dense route the criteria measure against."""

    spec: RouteSpec
    scene: Scene
    build: object  # sim.scenarios.build.SceneBuild
    path: Path
    s_start: float  # rear-axle arc length of the ego's start on `path`
    s_end: float
    v_start: float
    points: np.ndarray  # (P, 2) dense route, 1 m apart, rear axle on the path
    headings: np.ndarray  # (P,)
    options: list[RoadOption]
    scenario_type: str
    #: the path the scene's expert drives when it differs from the route (e.g. the lane change of a yield); None: the
    #: route's path. Only privileged agents read it.
    drive_path: Path | None = None

    @property
    def length(self) -> float:
        return float(polyline_arclength(self.points)[-1])

    @property
    def expert_path(self) -> Path:
        return self.drive_path if self.drive_path is not None else self.path

    def start_state(self) -> VehicleState:
        p = self.expert_path.pose_at(np.array([self.s_start]))[0]
        return VehicleState(float(p[0]), float(p[1]), float(p[2]), speed=self.v_start)

    def global_plan(self, carla, lat_ref: float, lon_ref: float) -> tuple[list, list]:
        """The leaderboard's dense plans: [({'lat','lon','z'}, RoadOption)] and [(carla.Transform, RoadOption)].

        Transforms are CARLA's frame (y negated, yaw in degrees turning right) at the route point; RoadOption members
        are this module's `RoadOption` (an IntEnum with CARLA's values; agents compare `.value` or the int).
        """
        return global_plan(self.points, self.headings, self.options, carla, lat_ref, lon_ref)


def global_plan(points: np.ndarray, headings: np.ndarray, options, carla, lat_ref: float, lon_ref: float):
    """Dense plans of a route given in our frame (see `Route.global_plan`)."""
    points = np.asarray(points, dtype=np.float64)
    lat, lon = geometry.world_to_gnss(points[:, 0], points[:, 1], lat_ref, lon_ref)
    lat, lon = np.atleast_1d(lat), np.atleast_1d(lon)
    xyz = geometry.world_to_carla_location(np.column_stack([points, np.zeros(len(points))]))
    yaw = np.atleast_1d(geometry.heading_to_carla_yaw(np.asarray(headings, dtype=np.float64)))
    gps, world = [], []
    for i, opt in enumerate(options):
        gps.append(({"lat": float(lat[i]), "lon": float(lon[i]), "z": 0.0}, opt))
        tf = carla.Transform(
            carla.Location(float(xyz[i, 0]), float(xyz[i, 1]), float(xyz[i, 2])), carla.Rotation(yaw=float(yaw[i]))
        )
        world.append((tf, opt))
    return gps, world


def build_route(spec: RouteSpec, dynamics: DynamicsConfig = MKZ2020) -> Route:
    """Regenerate the scene of `spec` and lay the route along the ego's path from its first logged pose."""
    from sim.scenarios import build_scene

    scene, b = build_scene(spec.family, spec.seed)
    path = b.route_path if b.route_path is not None else b.ego_path
    s_start = float(b.ego_s0)
    # end a little before the path's end so the whole ego box stays on mapped road at the goal
    s_end = min(path.length - dynamics.front_length - 1.0, s_start + spec.max_length_m)
    if s_end - s_start < 20.0:
        raise ValueError(f"route {spec.route_id}: ego path too short ({s_end - s_start:.1f} m)")
    n = int(math.floor(s_end - s_start)) + 1
    s = s_start + np.arange(n, dtype=np.float64)
    if s[-1] < s_end - 1e-6:
        s = np.append(s, s_end)
    poses = path.pose_at(s)
    options = road_options(path, s, scene)
    return Route(
        spec=spec,
        scene=scene,
        build=b,
        path=path,
        s_start=s_start,
        s_end=s_end,
        v_start=float(b.ego_v0),
        points=poses[:, :2],
        headings=poses[:, 2],
        options=options,
        scenario_type=scenario_type(spec.family, scene.metadata),
        drive_path=b.ego_path if b.route_path is not None else None,
    )


def road_options(path: Path, s: np.ndarray, scene: Scene) -> list[RoadOption]:
    """RoadOption per route point: the turn through a junction connector, a lane change where the path crosses
    lanes (its offset from the lane centreline changes), LANEFOLLOW elsewhere."""
    lanes = scene.map.lanes
    out = [RoadOption.LANEFOLLOW] * len(s)
    # lateral offset of the path from the centreline of the lane it belongs to at each point
    xy = path.pose_at(s)[:, :2]
    offset = np.zeros(len(s))
    lane_at = []
    for i, si in enumerate(s):
        lid = path.lane_ids[-1]
        for cand in path.lane_ids:
            if path.lane_start[cand] <= si <= path.lane_end[cand]:
                lid = cand
                break
        lane_at.append(lid)
        cl = lanes[lid].centerline
        d = np.hypot(*(cl - xy[i]).T)
        k = int(np.argmin(d))
        k2 = min(k + 1, len(cl) - 1) if k + 1 < len(cl) else k - 1
        seg = cl[k2] - cl[k] if k2 > k else cl[k] - cl[k2]
        cross = seg[0] * (xy[i, 1] - cl[k, 1]) - seg[1] * (xy[i, 0] - cl[k, 0])
        offset[i] = math.copysign(d[k], cross)
    rate = np.gradient(offset, s) if len(s) > 2 else np.zeros(len(s))
    for i, lid in enumerate(lane_at):
        lane = lanes[lid]
        if lane.is_connector:
            h = lane.headings
            turn = geometry.wrap_angle(float(h[-1] - h[0]))
            out[i] = RoadOption.STRAIGHT if abs(turn) < 0.5 else (RoadOption.LEFT if turn > 0 else RoadOption.RIGHT)
        elif abs(rate[i]) > 0.02:
            out[i] = RoadOption.CHANGELANELEFT if rate[i] > 0 else RoadOption.CHANGELANERIGHT
    return out
