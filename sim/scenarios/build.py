"""Scene assembly shared by every scenario family: actors, background traffic, simulation order, safety checks.

Simulation order decides who reacts to whom, because each stage sees the earlier stages as fixed trajectories:
static objects and pedestrians, then scripted vehicles (lead that brakes, cut-in, slow lead), then background traffic
that has priority over the ego (ahead of it in its direction, or on a major road), then the expert ego, then all other
background traffic, which therefore yields to the ego. Finally every pair of boxes is checked and background agents
that still overlap anything are removed, so no two boxes ever overlap at a valid step.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field

import numpy as np

from sim.expert import ExpertConfig, ego_committed, is_comfortable, plan_expert
from sim.roads import RoadMap
from sim.scene import Agents, AgentType, EgoParams, Route, Scene, TrafficLight, box_corners, polyline_arclength
from sim.traffic import (
    Committed,
    Follower,
    IDMParams,
    Path,
    SignalPlan,
    Stop,
    build_path,
    crosswalk_stops,
    curvature_speed,
    first_entry_s,
    gap_clear,
    light_stops,
    simulate_followers,
)

logger = logging.getLogger(__name__)


class ScenarioFailed(RuntimeError):
    """This random draw produced an unsafe expert; the generator retries with the next attempt."""


def scene_token(family: str, seed: int) -> str:
    return hashlib.sha1(f"{family}:{seed}".encode()).hexdigest()[:16]


def vehicle_size(rng: np.random.Generator, truck_prob: float = 0.08) -> np.ndarray:
    if rng.random() < truck_prob:
        return np.array([rng.uniform(7.0, 10.0), rng.uniform(2.4, 2.55), rng.uniform(3.0, 3.6)])
    return np.array([rng.uniform(4.0, 5.1), rng.uniform(1.75, 2.05), rng.uniform(1.45, 1.9)])


STATIC_SIZES = {
    AgentType.TRAFFIC_CONE: (0.4, 0.4, 0.7),
    AgentType.BARRIER: (0.5, 2.0, 1.0),
    AgentType.CZONE_SIGN: (0.6, 0.6, 1.5),
    AgentType.GENERIC_OBJECT: (1.0, 1.0, 1.0),
}


@dataclass
class _Moving:
    id: str
    type: AgentType
    size: np.ndarray
    follower: Follower
    group: str  # "scripted", "A" (before the ego) or "B" (after the ego)
    s: np.ndarray | None = None
    v: np.ndarray | None = None


@dataclass
class _Kinematic:
    id: str
    type: AgentType
    size: np.ndarray
    xy: np.ndarray  # (T, 2)
    heading: np.ndarray  # (T,)
    speed: np.ndarray  # (T,)
    valid: np.ndarray  # (T,)
    droppable: bool = False  # background walkers may be removed by the overlap check


@dataclass
class SceneBuild:
    """Mutable recipe a family fills in; `finish()` simulates and returns a validated Scene."""

    family: str
    seed: int
    rng: np.random.Generator
    road: RoadMap | None
    num_steps: int
    current_index: int
    dt: float
    ego_params: EgoParams = field(default_factory=EgoParams)
    moving: list[_Moving] = field(default_factory=list)
    kinematic: list[_Kinematic] = field(default_factory=list)
    lights: list[TrafficLight] = field(default_factory=list)
    ego_path: Path | None = None
    #: the route the leaderboard hands the agent when it differs from the path the expert drives (a family whose
    #: manoeuvre the agent must decide on itself, e.g. yielding to an emergency vehicle); None: the ego path
    route_path: Path | None = None
    ego_s0: float = 0.0
    ego_v0: float = 0.0
    ego_cfg: ExpertConfig = field(default_factory=ExpertConfig)
    route_lane_ids: tuple[str, ...] = ()
    priority_lanes: set[str] = field(default_factory=set)  # background starting here is simulated before the ego
    banned_lanes: set[str] = field(default_factory=set)  # connectors background traffic must not take
    no_spawn: list[tuple[str, float, float]] = field(default_factory=list)  # (lane id, s_from, s_to)
    metadata: dict = field(default_factory=dict)
    signal_plan: SignalPlan | None = None  # the fixed-time plan behind `lights` (None: no signals)
    signal_offset_s: float = 0.0
    _n: int = 0
    _paths: dict = field(default_factory=dict)

    # ---- helpers for families ----
    @property
    def map(self):
        return self.road.map

    @property
    def times(self) -> np.ndarray:
        return np.arange(self.num_steps) * self.dt

    def next_id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n:03d}"

    def path(self, lane_ids, offsets=None) -> Path:
        return build_path(self.map.lanes, lane_ids, offsets)

    def set_lights(self, plan: SignalPlan, offset_s: float) -> None:
        self.lights = []
        for light_id, conn in self.road.light_groups.items():
            lane = self.map.lanes[conn[0]]
            # signal head above the far-right corner of the feeding lane's stop line
            feed = self.map.lanes[lane.predecessors[0]]
            end, d = feed.centerline[-1], feed.centerline[-1] - feed.centerline[-2]
            h = math.atan2(d[1], d[0])
            pos = end + np.array([-math.sin(h), math.cos(h)]) * (-2.5 if light_id.endswith("main") else 1.0)
            self.lights.append(
                TrafficLight(
                    light_id,
                    tuple(conn),
                    plan.states(light_id, self.times, offset_s),
                    np.array([*pos, 5.0]),
                    h + math.pi,
                )
            )
        self.metadata["signal_offset_s"] = round(float(offset_s), 3)
        self.signal_plan, self.signal_offset_s = plan, float(offset_s)

    def set_ego(self, path: Path, s0: float, v0: float, route_lane_ids, cfg: ExpertConfig | None = None) -> None:
        self.ego_path, self.ego_s0, self.ego_v0 = path, float(s0), float(v0)
        self.route_lane_ids = tuple(route_lane_ids)
        if cfg is not None:
            self.ego_cfg = cfg

    def add_static(self, kind: AgentType, x: float, y: float, heading: float, size=None) -> str:
        size = np.asarray(size if size is not None else STATIC_SIZES[kind], dtype=np.float64)
        aid = self.next_id("obj" if kind != AgentType.VEHICLE else "veh")
        t = self.num_steps
        self.kinematic.append(
            _Kinematic(aid, kind, size, np.tile([x, y], (t, 1)), np.full(t, heading), np.zeros(t), np.ones(t, bool))
        )
        return aid

    def add_walker(
        self, kind: AgentType, xy: np.ndarray, heading: np.ndarray, speed: np.ndarray, size=None, droppable=False
    ) -> str:
        if size is None:
            size = (
                np.array([self.rng.uniform(0.5, 0.7), self.rng.uniform(0.5, 0.7), self.rng.uniform(1.55, 1.9)])
                if kind == AgentType.PEDESTRIAN
                else np.array([1.8, 0.65, 1.7])
            )
        aid = self.next_id("ped" if kind == AgentType.PEDESTRIAN else "bike")
        self.kinematic.append(
            _Kinematic(aid, kind, np.asarray(size), xy, heading, speed, np.ones(self.num_steps, bool), droppable)
        )
        return aid

    def walk_polyline(self, line: np.ndarray, s0: float, speed: float, start_step: int = 0) -> tuple:
        """Positions along a polyline at constant speed from `start_step` (standing before), clamped at its end."""
        s_line = polyline_arclength(line)
        tt = np.maximum(np.arange(self.num_steps) - start_step, 0) * self.dt
        s = np.clip(s0 + speed * tt, 0.0, s_line[-1])
        xy = np.stack([np.interp(s, s_line, line[:, 0]), np.interp(s, s_line, line[:, 1])], -1)
        seg = np.diff(line, axis=0)
        seg_heading = np.arctan2(seg[:, 1], seg[:, 0])
        heading = seg_heading[np.clip(np.searchsorted(s_line, s, side="right") - 1, 0, len(seg) - 1)]
        sp = np.gradient(s, self.dt)
        return xy, heading, sp

    def add_vehicle(
        self,
        path: Path,
        s0: float,
        v0: float,
        group: str,
        size=None,
        kind: AgentType = AgentType.VEHICLE,
        speed_factor: float = 1.0,
        accel_override: np.ndarray | None = None,
        idm: IDMParams | None = None,
    ) -> str:
        size = np.asarray(size if size is not None else vehicle_size(self.rng), dtype=np.float64)
        aid = self.next_id("veh" if kind == AgentType.VEHICLE else "bike")
        f = Follower(
            path,
            float(s0),
            float(v0),
            front=size[0] / 2,
            rear=size[0] / 2,
            width=float(size[1]),
            desired_speed_factor=speed_factor,
            idm=idm or IDMParams(),
            accel_override=accel_override,
        )
        self.moving.append(_Moving(aid, kind, size, f, group))
        return aid

    def sidewalk_pedestrians(self, count: int) -> None:
        """Pedestrians walking along sidewalks (never on the road)."""
        from sim.roads import SIDEWALK_WIDTH, offset_polyline

        roads = list(self.road.roads.values())
        for _ in range(count):
            r = roads[int(self.rng.integers(len(roads)))]
            side = -1.0 if self.rng.random() < 0.5 else 1.0
            n = len(r.fwd) if side < 0 else len(r.bwd)
            if n == 0 or f"{r.name}_walk_{'f' if side < 0 else 'b'}" not in self.map.walkways:
                continue
            lat = side * (n * r.lane_width + SIDEWALK_WIDTH / 2 + self.rng.uniform(-0.7, 0.7))
            line = offset_polyline(r.ref, lat)
            if self.rng.random() < 0.5:
                line = line[::-1].copy()
            total = polyline_arclength(line)[-1]
            s0 = self.rng.uniform(0.0, max(total - 10.0, 1.0))
            xy, h, sp = self.walk_polyline(line, s0, self.rng.uniform(0.9, 1.6))
            self.add_walker(AgentType.PEDESTRIAN, xy, h, sp, droppable=True)

    # ---- background traffic ----
    def spawn_background(self, count: int, max_tries: int | None = None) -> None:
        """Vehicles on random lane chains, spaced from each other, the ego and every actor at step 0."""
        rng = self.rng
        lanes = [lane for lane in self.map.lanes.values() if not lane.is_connector]
        weights = np.array([lane.length for lane in lanes])
        weights /= weights.sum()
        ego_pose = self.ego_path.pose_at(self.ego_s0)
        c = self.ego_params.rear_axle_to_center
        occupied = [
            (
                ego_pose[0] + c * math.cos(ego_pose[2]),
                ego_pose[1] + c * math.sin(ego_pose[2]),
                ego_pose[2],
                self.ego_params.length,
                self.ego_v0,
            )
        ]
        for k in self.kinematic:
            occupied.append((k.xy[0, 0], k.xy[0, 1], k.heading[0], k.size[0], 0.0))
        for m in self.moving:
            p = m.follower.path.pose_at(m.follower.s0)
            occupied.append((p[0], p[1], p[2], m.size[0], m.follower.v0))
        placed = 0
        tries = max_tries or 25 * max(count, 1)
        horizon = self.num_steps * self.dt
        for _ in range(tries):
            if placed >= count:
                break
            lane = lanes[int(rng.choice(len(lanes), p=weights))]
            chain = [lane.id]
            total = lane.length
            while total < 25.0 * horizon and self.map.lanes[chain[-1]].successors:
                succ = [x for x in self.map.lanes[chain[-1]].successors if x not in self.banned_lanes]
                if not succ:
                    break
                nxt = succ[int(rng.integers(len(succ)))]
                chain.append(nxt)
                total += self.map.lanes[nxt].length
            s0 = rng.uniform(2.0, max(lane.length - 6.0, 2.5))
            if any(lid == lane.id and a <= s0 <= b for lid, a, b in self.no_spawn):
                continue
            truck = rng.random() < 0.08
            bike = (not truck) and lane.right_neighbor is None and rng.random() < 0.06
            size = np.array([1.8, 0.65, 1.7]) if bike else vehicle_size(rng, 1.0 if truck else 0.0)
            v0 = rng.uniform(3.5, 5.5) if bike else lane.speed_limit * rng.uniform(0.55, 0.9)
            arc = polyline_arclength(lane.centerline)
            pose = np.array(
                [
                    np.interp(s0, arc, lane.centerline[:, 0]),
                    np.interp(s0, arc, lane.centerline[:, 1]),
                    lane.headings[min(int(np.searchsorted(arc, s0)), len(arc) - 1)],
                ]
            )
            if not self._free(pose, size[0], v0, occupied):
                continue
            key = tuple(chain)
            if key not in self._paths:
                self._paths[key] = build_path(self.map.lanes, chain)
            path = self._paths[key]
            cap = curvature_speed(path)
            v0 = min(v0, float(cap[min(int(s0 / 0.5), len(cap) - 1)]))
            stops = self._stops_for(path)
            for st in stops:
                gap = st.s - (s0 + size[0] / 2)
                if gap > -0.5 and (st.red[0] or st.stop_sign or (st.yellow is not None and st.yellow[0])):
                    v0 = min(v0, math.sqrt(2 * 1.2 * max(gap - 4.0, 0.0)))
            group = "A" if self._has_priority(lane.id, pose) else "B"
            aid = self.add_vehicle(
                path,
                s0,
                v0,
                group,
                size=size,
                kind=AgentType.BICYCLE if bike else AgentType.VEHICLE,
                speed_factor=(0.4 if bike else rng.uniform(0.8, 1.0)),
            )
            self.moving[-1].follower.stops = stops
            occupied.append((pose[0], pose[1], pose[2], size[0], v0))
            placed += 1
            logger.debug("spawned %s on %s", aid, lane.id)
        self.metadata["background_requested"] = int(count)

    def _free(self, pose: np.ndarray, length: float, v: float, occupied: list) -> bool:
        c, s = math.cos(pose[2]), math.sin(pose[2])
        for x, y, h, ln, vo in occupied:
            dx, dy = x - pose[0], y - pose[1]
            lon, lat = dx * c + dy * s, -dx * s + dy * c
            same_dir = math.cos(h - pose[2]) > 0.5
            if abs(lat) < 2.8 and same_dir:
                need = (length + ln) / 2 + 4.0 + 1.3 * max(v, vo)  # bumper gap + ~1.3 s headway
                if abs(lon) < need:
                    return False
            elif abs(lat) < 3.2 and abs(lon) < (length + ln) / 2 + 2.0:
                return False
            elif math.hypot(dx, dy) < (length + ln) / 2 + 1.0:
                return False
        return True

    def _has_priority(self, lane_id: str, pose: np.ndarray) -> bool:
        if lane_id in self.priority_lanes:
            return True
        if lane_id not in self.ego_path.lane_start:
            return False
        s, _, _ = self.ego_path.locate(pose[None, :2])
        return bool(s[0] > self.ego_s0)

    def _stops_for(self, path: Path) -> list[Stop]:
        return light_stops(path, self.map, self.lights) + self._stop_sign_stops(path, None)

    def _stop_sign_stops(self, path: Path, committed: Committed | None, front=2.5, rear=2.5, width=2.0) -> list[Stop]:
        """Stop lines on the path not governed by a light: a full stop, then gap acceptance against `committed`."""
        stops = []
        lit = {lid for lid in path.lane_ids if self.map.lanes[lid].traffic_light_id}
        for area in self.map.stop_lines.values():
            if not set(area.lane_ids) & set(path.lane_ids):
                continue
            if any(lid in lit for lane in area.lane_ids for lid in self.map.lanes[lane].successors):
                continue
            s_line = first_entry_s(path, area.polygon)
            if s_line is None:
                continue
            clear = None
            if committed is not None:
                clear = gap_clear(path, s_line, front, rear, width, committed, self.dt)
            stops.append(Stop(s_line, np.zeros(self.num_steps, bool), stop_sign=True, clear=clear))
        return stops

    # ---- simulation ----
    def _committed_kinematic(self) -> Committed:
        if not self.kinematic:
            return Committed.empty(self.num_steps)
        k = self.kinematic
        return Committed(
            np.stack([a.xy for a in k]),
            np.stack([a.heading for a in k]),
            np.stack([a.speed for a in k]),
            np.array([a.size[0] for a in k]),
            np.array([a.size[1] for a in k]),
            np.stack([a.valid for a in k]),
        )

    def _simulate(self, group: list[_Moving], committed: Committed, pedestrians: Committed) -> Committed:
        for m in group:
            m.follower.stops = list(m.follower.stops) + crosswalk_stops(m.follower.path, self.map, pedestrians, self.dt)
        s, v, _ = simulate_followers([m.follower for m in group], self.num_steps, self.dt, committed)
        if not group:
            return committed
        xy, h, sp, valid = [], [], [], []
        for i, m in enumerate(group):
            m.s, m.v = s[i], v[i]
            poses = m.follower.path.pose_at(s[i])
            xy.append(poses[:, :2])
            h.append(poses[:, 2])
            sp.append(v[i])
            valid.append(s[i] <= m.follower.path.length - 0.5)
        return committed.concat(
            Committed(
                np.stack(xy),
                np.stack(h),
                np.stack(sp),
                np.array([m.size[0] for m in group]),
                np.array([m.size[1] for m in group]),
                np.stack(valid),
            )
        )

    def finish(self) -> Scene:
        if self.ego_path is None:
            raise RuntimeError("scenario family did not set the ego")
        peds = self._committed_kinematic()
        ped_only = _select(peds, [k.type in (AgentType.PEDESTRIAN, AgentType.BICYCLE) for k in self.kinematic])
        committed = self._committed_kinematic()
        for grp in ("scripted", "A"):
            members = [m for m in self.moving if m.group == grp]
            committed = self._simulate(members, committed, ped_only)
        # the expert
        p = self.ego_params
        stops = (
            light_stops(self.ego_path, self.map, self.lights)
            + crosswalk_stops(self.ego_path, self.map, ped_only, self.dt)
            + self._stop_sign_stops(self.ego_path, committed, p.front_length, p.rear_length, p.width)
        )
        res = plan_expert(
            self.ego_path, self.ego_s0, self.ego_v0, self.num_steps, self.dt, committed, stops, p, self.ego_cfg
        )
        ego = res.ego
        committed = committed.concat(ego_committed(ego, p))
        members = [m for m in self.moving if m.group == "B"]
        for m in members:
            m.follower.stops = [st for st in m.follower.stops if not st.stop_sign] + self._stop_sign_stops(
                m.follower.path, committed, m.size[0] / 2, m.size[0] / 2, m.size[1]
            )
        self._simulate(members, committed, ped_only)
        agents = self._assemble_agents()
        droppable = np.array([k.droppable for k in self.kinematic] + [m.group != "scripted" for m in self.moving], bool)
        agents = _remove_overlaps(agents, ego, p, droppable)
        self._check_expert(ego, agents, stops)
        return self._scene(agents, ego)

    def _assemble_agents(self) -> Agents:
        ids, types, sizes, states, valid = [], [], [], [], []
        t = self.num_steps
        for k in self.kinematic:
            st = np.zeros((t, 5))
            st[:, 0:2] = k.xy
            st[:, 2] = k.heading
            st[:, 3] = k.speed * np.cos(k.heading)
            st[:, 4] = k.speed * np.sin(k.heading)
            ids.append(k.id), types.append(int(k.type)), sizes.append(k.size), states.append(st), valid.append(k.valid)
        for m in self.moving:
            poses = m.follower.path.pose_at(m.s)
            st = np.zeros((t, 5))
            st[:, 0:3] = poses
            st[:, 3] = m.v * np.cos(poses[:, 2])
            st[:, 4] = m.v * np.sin(poses[:, 2])
            ok = m.s <= m.follower.path.length - 0.5
            ids.append(m.id), types.append(int(m.type)), sizes.append(m.size), states.append(st), valid.append(ok)
        if not ids:
            return Agents.empty(t)
        return Agents(tuple(ids), np.array(types), np.stack(sizes), np.stack(states), np.stack(valid))

    def _check_expert(self, ego: np.ndarray, agents: Agents, stops: list[Stop]) -> None:
        p = self.ego_params
        corners = ego_corners(ego, p)
        inside = self.map.in_drivable_area(corners.reshape(-1, 2)).reshape(corners.shape[:2])
        if not inside[self.current_index :].all():
            raise ScenarioFailed("expert leaves the drivable area")
        # NAVSIM's history comfort looks 1.5 s back; collisions are checked over the same window and the future
        first = max(self.current_index - int(round(1.5 / self.dt)), 0)
        if not self.ego_cfg.hard_brake_ok and not is_comfortable(ego[first:], self.dt):
            raise ScenarioFailed("expert is not comfortable")
        if len(agents):
            hit = ego_overlaps(ego, p, agents)
            if hit[:, first:].any():
                raise ScenarioFailed("expert collides with " + agents.ids[int(np.argmax(hit.any(axis=1)))])

    def _scene(self, agents: Agents, ego: np.ndarray) -> Scene:
        path = self.ego_path
        m = max(int(math.ceil(path.length / 0.5)), 1) + 1
        q = np.linspace(0.0, path.length, m)
        cl = path.pose_at(q)
        meta = {"family": self.family, **self.metadata}
        return Scene(
            token=scene_token(self.family, self.seed),
            scenario=self.family,
            seed=int(self.seed),
            timestamps=self.times,
            current_index=self.current_index,
            map=self.map,
            agents=agents,
            traffic_lights=tuple(self.lights),
            ego=ego,
            route=Route(self.route_lane_ids, cl),
            ego_params=self.ego_params,
            metadata=meta,
        )


def _select(c: Committed, mask) -> Committed:
    mask = np.asarray(mask, bool)
    if len(c) == 0:
        return c
    return Committed(c.xy[mask], c.heading[mask], c.speed[mask], c.length[mask], c.width[mask], c.valid[mask])


# ---- box overlap (separating axis theorem, vectorised) ----
def boxes_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(K, 4, 2) x (K, 4, 2) corner sets -> (K,) True where the convex quads overlap."""
    out = np.ones(a.shape[0], bool)
    for poly in (a, b):
        edges = np.roll(poly, -1, axis=1) - poly
        axes = np.stack([-edges[..., 1], edges[..., 0]], -1)  # (K, 4, 2)
        pa = np.einsum("kcd,kad->kac", a, axes)
        pb = np.einsum("kcd,kad->kac", b, axes)
        sep = (pa.max(-1) < pb.min(-1)) | (pb.max(-1) < pa.min(-1))
        out &= ~sep.any(-1)
    return out


def ego_corners(ego: np.ndarray, p: EgoParams) -> np.ndarray:
    h = ego[:, 2]
    off = p.rear_axle_to_center
    return box_corners(ego[:, 0] + off * np.cos(h), ego[:, 1] + off * np.sin(h), h, p.length, p.width)


def ego_overlaps(ego: np.ndarray, p: EgoParams, agents: Agents) -> np.ndarray:
    """(A, T) True where agent a's box overlaps the ego's at a valid step."""
    ec = ego_corners(ego, p)  # (T, 4, 2)
    ac = agents.corners(slice(None))  # (A, T, 4, 2)
    a, t = agents.valid.shape
    near = agents.valid & (
        np.hypot(*(agents.states[:, :, :2] - ec.mean(1)[None]).transpose(2, 0, 1))
        < (np.hypot(*agents.sizes[:, :2].T)[:, None] + math.hypot(p.length, p.width)) / 2
    )
    out = np.zeros((a, t), bool)
    idx = np.nonzero(near)
    if idx[0].size:
        out[idx] = boxes_overlap(ac[idx], ec[idx[1]])
    return out


def _remove_overlaps(agents: Agents, ego: np.ndarray, p: EgoParams, droppable: np.ndarray) -> Agents:
    """Drop background agents overlapping the ego or another agent (later agents, i.e. lower priority, go first).

    Scripted actors are never dropped: if one of them overlaps something that cannot be dropped, the draw fails.
    """
    n = len(agents)
    if n == 0:
        return agents
    drop = ego_overlaps(ego, p, agents).any(axis=1) & droppable
    corners = agents.corners(slice(None))
    centre = agents.states[:, :, :2]
    radius = np.hypot(*agents.sizes[:, :2].T) / 2
    for j in range(n - 1, 0, -1):
        if drop[j]:
            continue
        others = np.arange(j)
        others = others[~drop[others]]
        if not others.size:
            continue
        both = agents.valid[others] & agents.valid[j][None]
        dist = np.hypot(*(centre[others] - centre[j][None]).transpose(2, 0, 1))
        idx = np.nonzero(both & (dist < (radius[others] + radius[j])[:, None]))
        if not idx[0].size:
            continue
        hit = boxes_overlap(corners[others][idx], corners[j][idx[1]])
        if not hit.any():
            continue
        if droppable[j]:
            drop[j] = True
            continue
        culprits = np.unique(others[idx[0][hit]])
        if not droppable[culprits].all():
            raise ScenarioFailed(f"scripted actors {agents.ids[j]} and {agents.ids[int(culprits[0])]} overlap")
        drop[culprits] = True
    if drop.any():
        logger.debug("dropping %d overlapping agents", int(drop.sum()))
    keep = ~drop
    return Agents(
        tuple(i for i, k in zip(agents.ids, keep) if k),
        agents.types[keep],
        agents.sizes[keep],
        agents.states[keep],
        agents.valid[keep],
    )
