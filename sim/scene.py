"""The embedded world's scene model: map, agents, traffic lights, the logged ego and its route.

A `Scene` is what NAVSIM calls a scene plus its metric cache: everything the renderer, the EPDMS scorer, the
closed-loop runner and the data sets need. Coordinates are a right-handed world frame (x east-ish, y left, heading CCW);
the ego pose is its rear axle. Time is sampled at `DT` = 0.1 s; `current_index` marks t = 0.

Array layouts (all float64 unless said):
- `Agents.states` (A, T, 5): box centre x, y, heading, and world-frame velocity vx, vy; `Agents.valid` (A, T) bool.
- `Scene.ego` (T, 8): rear-axle x, y, heading; ego-frame vx, vy; ego-frame ax, ay; yaw rate.
- `TrafficLight.states` (T,) int8 of `TrafficLightState`, aligned with `Scene.timestamps`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry import Polygon

from agent import geometry
from agent.boxes import box_corners
from agent.vehicles import (
    PACIFICA_FRONT_LENGTH,
    PACIFICA_HEIGHT,
    PACIFICA_REAR_LENGTH,
    PACIFICA_WHEELBASE,
    PACIFICA_WIDTH,
)

DT = 0.1

# Ego state columns.
EGO_X, EGO_Y, EGO_HEADING, EGO_VX, EGO_VY, EGO_AX, EGO_AY, EGO_YAW_RATE = range(8)
EGO_DIM = 8
# Agent state columns.
AG_X, AG_Y, AG_HEADING, AG_VX, AG_VY = range(5)
AGENT_DIM = 5


class AgentType(enum.IntEnum):
    VEHICLE = 0
    PEDESTRIAN = 1
    BICYCLE = 2
    TRAFFIC_CONE = 3
    BARRIER = 4
    CZONE_SIGN = 5
    GENERIC_OBJECT = 6

    @property
    def is_road_user(self) -> bool:
        """nuPlan's AGENT_TYPES: a collision with one of these scores NC 0; any other object scores 0.5."""
        return self in (AgentType.VEHICLE, AgentType.PEDESTRIAN, AgentType.BICYCLE)


class TrafficLightState(enum.IntEnum):
    GREEN = 0
    YELLOW = 1
    RED = 2
    UNKNOWN = 3


class MarkingType(enum.IntEnum):
    """Painted lane boundary, for rendering and lane-change legality."""

    NONE = 0
    DASHED = 1
    SOLID = 2
    DOUBLE_SOLID = 3


@dataclass(frozen=True)
class EgoParams:
    """Ego vehicle geometry; defaults are NAVSIM's (nuPlan Chrysler Pacifica). Lengths are from the rear axle."""

    width: float = PACIFICA_WIDTH
    front_length: float = PACIFICA_FRONT_LENGTH
    rear_length: float = PACIFICA_REAR_LENGTH
    wheelbase: float = PACIFICA_WHEELBASE
    height: float = PACIFICA_HEIGHT

    def __post_init__(self) -> None:
        for k in ("width", "front_length", "rear_length", "wheelbase", "height"):
            if not (getattr(self, k) > 0):
                raise ValueError(f"EgoParams.{k} must be positive, got {getattr(self, k)}")

    @property
    def length(self) -> float:
        return self.front_length + self.rear_length

    @property
    def rear_axle_to_center(self) -> float:
        return (self.front_length - self.rear_length) / 2.0


def _as_points(name: str, value, min_points: int = 2) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < min_points:
        raise ValueError(f"{name}: expected an (N>={min_points}, 2) array of points, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite coordinates")
    return arr


def polyline_headings(points: np.ndarray) -> np.ndarray:
    """Heading of each vertex of a polyline (forward difference, last vertex repeats)."""
    d = np.diff(points, axis=0)
    h = np.arctan2(d[:, 1], d[:, 0])
    return np.concatenate([h, h[-1:]])


def polyline_arclength(points: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])


#: Urban speed limits (m/s) as map files store them, rounded to 0.01: 40, 50 and 60 km/h. 50 km/h is the default.
SPEED_LIMIT_40_KMH = 11.11
SPEED_LIMIT_50_KMH = 13.89
SPEED_LIMIT_60_KMH = 16.67


@dataclass
class Lane:
    """A lane (or, with `is_connector`, a lane connector inside an intersection), in its direction of travel."""

    id: str
    centerline: np.ndarray
    left_boundary: np.ndarray
    right_boundary: np.ndarray
    roadblock_id: str
    speed_limit: float = SPEED_LIMIT_50_KMH
    successors: tuple[str, ...] = ()
    predecessors: tuple[str, ...] = ()
    is_connector: bool = False
    left_neighbor: str | None = None
    right_neighbor: str | None = None
    left_marking: MarkingType = MarkingType.DASHED
    right_marking: MarkingType = MarkingType.SOLID
    traffic_light_id: str | None = None

    def __post_init__(self) -> None:
        self.centerline = _as_points(f"lane {self.id}.centerline", self.centerline)
        self.left_boundary = _as_points(f"lane {self.id}.left_boundary", self.left_boundary)
        self.right_boundary = _as_points(f"lane {self.id}.right_boundary", self.right_boundary)
        if not (self.speed_limit > 0):
            raise ValueError(f"lane {self.id}.speed_limit must be positive, got {self.speed_limit}")
        self.successors = tuple(self.successors)
        self.predecessors = tuple(self.predecessors)
        self.left_marking = MarkingType(int(self.left_marking))
        self.right_marking = MarkingType(int(self.right_marking))

    @cached_property
    def polygon(self) -> Polygon:
        return shapely.make_valid(Polygon(np.concatenate([self.left_boundary, self.right_boundary[::-1]])))

    @cached_property
    def headings(self) -> np.ndarray:
        return polyline_headings(self.centerline)

    @cached_property
    def length(self) -> float:
        return float(polyline_arclength(self.centerline)[-1])


@dataclass
class Area:
    """A named polygon: roadblock, intersection, crosswalk, car park, walkway or stop line."""

    id: str
    polygon_xy: np.ndarray
    lane_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.polygon_xy = _as_points(f"area {self.id}.polygon_xy", self.polygon_xy, min_points=3)
        self.lane_ids = tuple(self.lane_ids)

    @cached_property
    def polygon(self) -> Polygon:
        return shapely.make_valid(Polygon(self.polygon_xy))


@dataclass
class TrafficLight:
    """A signal head controlling lane connectors; `states` is sampled at the scene's timestamps."""

    id: str
    connector_ids: tuple[str, ...]
    states: np.ndarray
    position: np.ndarray  # (3,) x, y, z of the signal head, for rendering
    facing: float = 0.0  # heading the light faces (towards approaching traffic)

    def __post_init__(self) -> None:
        self.connector_ids = tuple(self.connector_ids)
        self.states = np.asarray(self.states, dtype=np.int8).reshape(-1)
        if self.states.size and (self.states.min() < 0 or self.states.max() > int(TrafficLightState.UNKNOWN)):
            raise ValueError(f"traffic light {self.id}.states: values must be TrafficLightState codes 0..3")
        self.position = np.asarray(self.position, dtype=np.float64).reshape(-1)
        if self.position.shape != (3,):
            raise ValueError(f"traffic light {self.id}.position: expected shape (3,), got {self.position.shape}")
        if not (np.isfinite(self.position).all() and np.isfinite(self.facing)):
            raise ValueError(f"traffic light {self.id}: position and facing must be finite")


@dataclass
class MapData:
    """Vector map with the layers NAVSIM's scorer uses, and vectorised spatial queries."""

    lanes: dict[str, Lane]
    roadblocks: dict[str, Area]
    intersections: dict[str, Area] = field(default_factory=dict)
    crosswalks: dict[str, Area] = field(default_factory=dict)
    carparks: dict[str, Area] = field(default_factory=dict)
    walkways: dict[str, Area] = field(default_factory=dict)
    stop_lines: dict[str, Area] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for lane in self.lanes.values():
            if lane.roadblock_id not in self.roadblocks:
                raise ValueError(f"lane {lane.id}: roadblock_id {lane.roadblock_id!r} is not in the map's roadblocks")
            for ref in (*lane.successors, *lane.predecessors, lane.left_neighbor, lane.right_neighbor):
                if ref is not None and ref not in self.lanes:
                    raise ValueError(f"lane {lane.id}: references unknown lane {ref!r}")

    # ---- derived geometry (cached) ----
    @cached_property
    def lane_ids(self) -> tuple[str, ...]:
        return tuple(self.lanes)

    @cached_property
    def lane_polygons(self) -> np.ndarray:
        return np.array([self.lanes[i].polygon for i in self.lane_ids], dtype=object)

    @cached_property
    def lane_tree(self) -> STRtree:
        return STRtree(self.lane_polygons)

    @cached_property
    def drivable_area(self):
        """Union of roadblock, intersection and car-park polygons: NAVSIM's drivable area (lanes alone are not)."""
        polys = [a.polygon for layer in (self.roadblocks, self.intersections, self.carparks) for a in layer.values()]
        area = shapely.union_all(polys)
        shapely.prepare(area)
        return area

    @cached_property
    def intersection_area(self):
        area = shapely.union_all([a.polygon for a in self.intersections.values()]) if self.intersections else None
        if area is not None:
            shapely.prepare(area)
        return area

    # ---- queries (vectorised over points) ----
    def in_drivable_area(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64)
        return shapely.contains_xy(self.drivable_area, xy[..., 0], xy[..., 1]) | shapely.intersects_xy(
            self.drivable_area.boundary, xy[..., 0], xy[..., 1]
        )

    def in_intersection(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64)
        if self.intersection_area is None:
            return np.zeros(xy.shape[:-1], dtype=bool)
        return shapely.intersects_xy(self.intersection_area, xy[..., 0], xy[..., 1])

    def lanes_containing(self, xy: np.ndarray) -> list[list[str]]:
        """For each point of (N, 2), the ids of the lanes/connectors whose polygon contains it."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        pts = shapely.points(xy)
        pi, li = self.lane_tree.query(pts, predicate="intersects")
        out: list[list[str]] = [[] for _ in range(len(xy))]
        for p, lane_idx in zip(pi.tolist(), li.tolist()):
            out[p].append(self.lane_ids[lane_idx])
        return out

    def nearest_lane(
        self, x: float, y: float, heading: float | None = None, max_heading_diff: float = np.pi / 2
    ) -> str:
        """The lane whose centreline is closest to (x, y), among lanes heading within `max_heading_diff`."""
        best, best_d = None, np.inf
        for lane in self.lanes.values():
            d = np.hypot(lane.centerline[:, 0] - x, lane.centerline[:, 1] - y)
            i = int(np.argmin(d))
            if heading is not None and abs(geometry.wrap_angle(lane.headings[i] - heading)) > max_heading_diff:
                continue
            if d[i] < best_d:
                best, best_d = lane.id, d[i]
        if best is None:
            raise ValueError(f"no lane near ({x:.1f}, {y:.1f}) with a compatible heading")
        return best


@dataclass
class Agents:
    """Other road users and static objects, as a struct of arrays so checks vectorise over agents and time."""

    ids: tuple[str, ...]
    types: np.ndarray  # (A,) int8 AgentType
    sizes: np.ndarray  # (A, 3) length, width, height
    states: np.ndarray  # (A, T, 5)
    valid: np.ndarray  # (A, T) bool

    def __post_init__(self) -> None:
        self.ids = tuple(self.ids)
        a = len(self.ids)
        self.types = np.asarray(self.types, dtype=np.int8).reshape(-1)
        self.sizes = np.asarray(self.sizes, dtype=np.float64)
        self.states = np.asarray(self.states, dtype=np.float64)
        self.valid = np.asarray(self.valid, dtype=bool)
        if self.types.shape != (a,):
            raise ValueError(f"agents.types: expected shape ({a},), got {self.types.shape}")
        if self.sizes.shape != (a, 3):
            raise ValueError(f"agents.sizes: expected shape ({a}, 3), got {self.sizes.shape}")
        if self.states.ndim != 3 or self.states.shape[0] != a or self.states.shape[2] != AGENT_DIM:
            raise ValueError(f"agents.states: expected shape ({a}, T, {AGENT_DIM}), got {self.states.shape}")
        if self.valid.shape != self.states.shape[:2]:
            raise ValueError(f"agents.valid: expected shape {self.states.shape[:2]}, got {self.valid.shape}")
        if len(set(self.ids)) != a:
            raise ValueError("agents.ids: duplicate ids")
        if a and (self.types.min() < 0 or self.types.max() > max(AgentType)):
            raise ValueError("agents.types: values must be AgentType codes")
        if a and not np.all(self.sizes > 0):
            raise ValueError("agents.sizes: every length, width and height must be positive")
        if not np.all(np.isfinite(self.states[self.valid])):
            raise ValueError("agents.states: NaN or infinite values at valid steps")

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls, num_steps: int) -> Agents:
        return cls((), np.zeros(0), np.zeros((0, 3)), np.zeros((0, num_steps, AGENT_DIM)), np.zeros((0, num_steps)))

    def corners(self, step: int | slice | np.ndarray) -> np.ndarray:
        """Box corners (A, [S,] 4, 2) at the given step(s), counter-clockwise from front-left."""
        st = self.states[:, step]
        half_l = self.sizes[:, 0] / 2
        half_w = self.sizes[:, 1] / 2
        if st.ndim == 3:
            half_l, half_w = half_l[:, None], half_w[:, None]
        return box_corners(st[..., AG_X], st[..., AG_Y], st[..., AG_HEADING], half_l * 2, half_w * 2)


@dataclass
class Route:
    """The ego's mission: ordered on-route lane/connector ids and a dense centreline (x, y, heading) along them."""

    lane_ids: tuple[str, ...]
    centerline: np.ndarray  # (M, 3)

    def __post_init__(self) -> None:
        self.lane_ids = tuple(self.lane_ids)
        if not self.lane_ids:
            raise ValueError("route.lane_ids: a route needs at least one lane")
        self.centerline = np.asarray(self.centerline, dtype=np.float64)
        if self.centerline.ndim != 2 or self.centerline.shape[1] != 3 or self.centerline.shape[0] < 2:
            raise ValueError(f"route.centerline: expected shape (M>=2, 3), got {self.centerline.shape}")
        if not np.all(np.isfinite(self.centerline)):
            raise ValueError("route.centerline: NaN or infinite values")

    @cached_property
    def arclength(self) -> np.ndarray:
        return polyline_arclength(self.centerline[:, :2])

    def project(self, xy: np.ndarray) -> np.ndarray:
        """Arc length of the closest centreline point for each (…, 2) point (segment projection, vectorised)."""
        xy = np.asarray(xy, dtype=np.float64)
        flat = xy.reshape(-1, 2)
        a = self.centerline[:-1, :2]
        ab = self.centerline[1:, :2] - a
        seg_len2 = np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12)
        rel = flat[:, None, :] - a[None]
        t = np.clip(np.einsum("pij,ij->pi", rel, ab) / seg_len2, 0.0, 1.0)
        closest = a[None] + t[..., None] * ab[None]
        d2 = np.sum((flat[:, None, :] - closest) ** 2, axis=-1)
        k = np.argmin(d2, axis=1)
        s = self.arclength[k] + t[np.arange(len(flat)), k] * np.sqrt(seg_len2[k])
        return s.reshape(xy.shape[:-1])


@dataclass
class Scene:
    """One scenario instance: map, agents, lights, the logged (expert) ego over past and future, and the route."""

    token: str
    scenario: str
    seed: int
    timestamps: np.ndarray  # (T,)
    current_index: int
    map: MapData
    agents: Agents
    traffic_lights: tuple[TrafficLight, ...]
    ego: np.ndarray  # (T, 8)
    route: Route
    ego_params: EgoParams = field(default_factory=EgoParams)
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64).reshape(-1)
        t = self.timestamps.size
        if t < 2 or not np.all(np.diff(self.timestamps) > 0):
            raise ValueError("scene.timestamps: need at least two strictly increasing timestamps")
        if not (0 <= self.current_index < t):
            raise ValueError(f"scene.current_index: {self.current_index} is outside 0..{t - 1}")
        self.ego = np.asarray(self.ego, dtype=np.float64)
        if self.ego.shape != (t, EGO_DIM):
            raise ValueError(f"scene.ego: expected shape ({t}, {EGO_DIM}), got {self.ego.shape}")
        if not np.all(np.isfinite(self.ego)):
            raise ValueError("scene.ego: NaN or infinite values")
        if self.agents.states.shape[1] != t:
            raise ValueError(f"scene.agents.states: expected {t} time steps, got {self.agents.states.shape[1]}")
        self.traffic_lights = tuple(self.traffic_lights)
        for tl in self.traffic_lights:
            if tl.states.shape != (t,):
                raise ValueError(f"traffic light {tl.id}.states: expected shape ({t},), got {tl.states.shape}")
            for cid in tl.connector_ids:
                if cid not in self.map.lanes:
                    raise ValueError(f"traffic light {tl.id}: controls unknown connector {cid!r}")
        for lid in self.route.lane_ids:
            if lid not in self.map.lanes:
                raise ValueError(f"route.lane_ids: unknown lane {lid!r}")

    # ---- time ----
    @property
    def num_steps(self) -> int:
        return int(self.timestamps.size)

    @property
    def dt(self) -> float:
        return float(self.timestamps[1] - self.timestamps[0])

    def step_at(self, t: float) -> int:
        """Index of relative time t (seconds from the current frame)."""
        i = self.current_index + int(round(t / self.dt))
        if not (0 <= i < self.num_steps):
            raise IndexError(f"t = {t} s is outside the scene ({self.num_steps} steps, current {self.current_index})")
        return i

    @property
    def future_steps(self) -> int:
        return self.num_steps - 1 - self.current_index

    # ---- ego ----
    def ego_pose(self, step: int | None = None) -> np.ndarray:
        """Rear-axle pose (x, y, heading) in the world frame."""
        return self.ego[self.current_index if step is None else step, :3].copy()

    def human_trajectory(self, num_poses: int = 8, interval: float = 0.5, step: int | None = None) -> np.ndarray:
        """The logged future as (num_poses, 3) poses in the rear-axle frame at `step` (the planning target)."""
        step = self.current_index if step is None else step
        stride = int(round(interval / self.dt))
        idx = step + stride * np.arange(1, num_poses + 1)
        if idx[-1] >= self.num_steps:
            raise ValueError(f"scene {self.token}: not enough future for {num_poses} poses at {interval} s")
        return geometry.absolute_to_relative(self.ego[step, :3], self.ego[idx, :3])

    def traffic_light_states(self, step: int) -> dict[str, TrafficLightState]:
        """Connector id -> light state at `step`."""
        out: dict[str, TrafficLightState] = {}
        for tl in self.traffic_lights:
            for cid in tl.connector_ids:
                out[cid] = TrafficLightState(int(tl.states[step]))
        return out

    def red_connectors(self, step: int) -> list[str]:
        return [cid for cid, s in self.traffic_light_states(step).items() if s == TrafficLightState.RED]
