"""The living world of a closed-loop route: a procedural scene kept alive around an ego that someone else drives.

A route starts from a scenario family's scene at its first logged step (`sim.scenarios.build_scene`) and keeps what
made the scene: the map, the traffic-light plan (cycling for as long as the route lasts), static objects (parked cars,
cones, barriers), pedestrians on their scripted walks, and every vehicle on its lane path. Vehicles are re-simulated
online each tick with the scene generator's IDM law (`sim.traffic.follower_acceleration`): their leads are whatever
occupies their path corridor ahead (other vehicles, pedestrians, static objects and the ego, which they see like any
other car), red and yellow lights at stop lines, and stop signs (a full stop, then go). Scripted actors keep their
scripts (a cut-in's lane-change path, a lead's hard-brake profile) and fall back to IDM once the script ends.

Frames: our world frame (x, y, heading CCW); the ego is a `dynamics.VehicleState` at its rear axle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim.closed_loop.dynamics import MKZ2020, DynamicsConfig, VehicleState
from sim.scenarios.build import SceneBuild, boxes_overlap
from sim.scene import (
    AGENT_DIM,
    EGO_DIM,
    Agents,
    AgentType,
    EgoParams,
    Scene,
    TrafficLight,
    TrafficLightState,
    box_corners,
)
from sim.traffic import (
    PATH_SPACING,
    STOP_GAP,
    IDMParams,
    Path,
    curvature_speed,
    follower_acceleration,
    idm_params_arrays,
    light_stop_positions,
)

#: objects that count as CARLA "static" props in a collision (`collisions_layout`); vehicles and bicycles are
#: CARLA vehicles, pedestrians are walkers.
LAYOUT_TYPES = frozenset({AgentType.TRAFFIC_CONE, AgentType.BARRIER, AgentType.CZONE_SIGN, AgentType.GENERIC_OBJECT})
#: CARLA-like type ids for collision messages.
CARLA_TYPE_IDS = {
    AgentType.VEHICLE: "vehicle.lincoln.mkz_2017",
    AgentType.PEDESTRIAN: "walker.pedestrian.0001",
    AgentType.BICYCLE: "vehicle.bh.crossbike",
    AgentType.TRAFFIC_CONE: "static.prop.trafficcone01",
    AgentType.BARRIER: "static.prop.streetbarrier",
    AgentType.CZONE_SIGN: "static.prop.constructioncone",
    AgentType.GENERIC_OBJECT: "static.prop.box01",
}


@dataclass(frozen=True)
class WorldConfig:
    """How the world's actors behave.

    corridor_margin: metres added to a vehicle's half-width when deciding that an object is in its path;
    pedestrian_margin: the same for pedestrians (drivers keep more room); stop_sign_wait_s: how long background
    vehicles stand at a stop sign; lookahead_m: how far vehicles anticipate curves and lower speed limits.
    """

    corridor_margin: float = 0.4
    pedestrian_margin: float = 0.5
    stop_sign_wait_s: float = 1.5
    lookahead_m: float = 60.0

    def __post_init__(self) -> None:
        from agent.validation import require_non_negative, require_positive

        require_non_negative("WorldConfig", corridor_margin=self.corridor_margin)
        require_positive(
            "WorldConfig",
            pedestrian_margin=self.pedestrian_margin,
            stop_sign_wait_s=self.stop_sign_wait_s,
            lookahead_m=self.lookahead_m,
        )


def ego_params_of(cfg: DynamicsConfig = MKZ2020) -> EgoParams:
    """The ego box in the scene model's terms (lengths from the rear axle)."""
    return EgoParams(
        width=2 * cfg.half_width,
        front_length=cfg.front_length,
        rear_length=cfg.rear_length,
        wheelbase=cfg.wheelbase,
        height=cfg.height,
    )


def path_pose(path: Path, s: float) -> np.ndarray:
    """(x, y, heading) at arc length `s`, linear between the path's 0.5 m vertices (cheaper than its spline)."""
    s = min(max(float(s), 0.0), float(path.s[-1]))
    return np.array([np.interp(s, path.s, path.xy[:, 0]), np.interp(s, path.s, path.xy[:, 1]),
                     np.interp(s, path.s, path.heading)])  # fmt: skip


@dataclass
class Obstacles:
    """Actors as obstacles: box centres, headings, signed speeds along heading, box sizes, and flags."""

    xy: np.ndarray
    heading: np.ndarray
    speed: np.ndarray
    length: np.ndarray
    width: np.ndarray
    valid: np.ndarray
    is_pedestrian: np.ndarray
    is_vehicle: np.ndarray


def corridor_lead(
    path: Path,
    s: float,
    front: float,
    width: float,
    obs: Obstacles,
    mask: np.ndarray,
    margin: float,
    pedestrian_margin: float,
    radius: float = 60.0,
) -> tuple[float, float, int]:
    """The nearest obstacle ahead in a follower's corridor (its width plus a margin around its path).

    `s` is the follower's reference point on `path`, `front` the distance from it to its front bumper. Returns the
    bumper-to-obstacle gap along the path (inf if none), the obstacle's speed along the path (>= 0), and its index
    (-1 if none). A stopped vehicle crossing the path is not a lead (it waits for us; this breaks junction deadlocks).
    """
    p0 = path_pose(path, s)
    near = mask & (np.abs(obs.xy[:, 0] - p0[0]) < radius) & (np.abs(obs.xy[:, 1] - p0[1]) < radius)
    if not near.any():
        return math.inf, 0.0, -1
    j = np.nonzero(near)[0]
    s_o, lat, dist = path.locate(obs.xy[j])
    k = np.clip(np.searchsorted(path.s, s_o), 0, len(path.s) - 1)
    dh = obs.heading[j] - path.heading[k]
    c, sn = np.abs(np.cos(dh)), np.abs(np.sin(dh))
    along = c * obs.length[j] / 2 + sn * obs.width[j] / 2
    lat_ext = sn * obs.length[j] / 2 + c * obs.width[j] / 2
    m = np.where(obs.is_pedestrian[j], pedestrian_margin, margin)
    blocks = (np.abs(lat) < width / 2 + lat_ext + m) & (dist < 12.0) & (s_o > s)
    blocks &= ~(obs.is_vehicle[j] & (c < 0.7) & (np.abs(obs.speed[j]) < 0.3))
    if not blocks.any():
        return math.inf, 0.0, -1
    g = np.where(blocks, s_o - along - (s + front), np.inf)
    b = int(np.argmin(g))
    return float(g[b]), max(float(obs.speed[j[b]] * math.cos(dh[b])), 0.0), int(j[b])


@dataclass
class _Vehicles:
    """Online followers, struct of arrays (N vehicles)."""

    ids: list[str]
    types: np.ndarray
    sizes: np.ndarray  # (N, 3)
    paths: list[Path]
    s: np.ndarray
    v: np.ndarray
    a: np.ndarray
    active: np.ndarray  # still on their path
    scripted: np.ndarray
    speed_factor: np.ndarray
    idm: dict[str, np.ndarray]
    override: list[np.ndarray | None]  # per vehicle, accelerations at the scene's dt (NaN: IDM decides)
    light_stops: list[list[tuple[float, str]]]
    sign_stops: list[list[float]]
    sign_waited: list[np.ndarray]
    vcap: np.ndarray  # (N, M + window) speed caps every PATH_SPACING metres


@dataclass
class WorldSnapshot:
    """Everything about the world at one tick, in plain arrays (what `on_tick` callbacks, recorders and privileged
    agents read). Object arrays cover every actor: vehicles, pedestrians and static objects."""

    time_s: float
    ego: VehicleState
    ids: tuple[str, ...]
    types: np.ndarray  # (M,) AgentType codes
    xy: np.ndarray  # (M, 2) box centres
    heading: np.ndarray  # (M,)
    speed: np.ndarray  # (M,) signed speed along heading
    sizes: np.ndarray  # (M, 3)
    valid: np.ndarray  # (M,)
    background: np.ndarray  # (M,) background traffic (role 'background' in CARLA)
    light_states: dict[str, TrafficLightState] = field(default_factory=dict)


class LivingWorld:
    """One route's world. `tick(ego_state)` advances everything but the ego by `dt`; `snapshot()` describes it."""

    def __init__(
        self,
        scene: Scene,
        build: SceneBuild,
        dt: float = 0.05,
        config: WorldConfig | None = None,
        dynamics: DynamicsConfig = MKZ2020,
    ) -> None:
        self.scene = scene
        self.build = build
        self.map = scene.map
        self.dt = float(dt)
        self.cfg = config or WorldConfig()
        self.dynamics = dynamics
        self.ego_params = ego_params_of(dynamics)
        self.time_s = 0.0
        self.scene_dt = scene.dt
        self._lights = {tl.id: tl for tl in scene.traffic_lights}
        self._plan = build.signal_plan
        self._plan_offset = build.signal_offset_s
        kept = set(scene.agents.ids)
        # scripted walkers and static objects: their logged rows of the scene
        moving_ids = {m.id for m in build.moving}
        self._kin_idx = np.array([i for i, aid in enumerate(scene.agents.ids) if aid not in moving_ids], dtype=int)
        self._init_walk_modes()
        self._vehicles = self._init_vehicles([m for m in build.moving if m.id in kept])
        self.light_ids = tuple(self._lights)

    # ------------------------------------------------------------------------------------------------ set-up
    def _init_walk_modes(self) -> None:
        """How scripted walkers go on after the logged horizon: standing still (static objects, walks that ended),
        walking on at constant velocity until 2 m off the road (a crossing still in progress), or walking their
        logged sidewalk stretch back and forth (everyone else)."""
        ag, idx = self.scene.agents, self._kin_idx
        last = ag.states[idx, -1]
        speed = np.hypot(last[:, 3], last[:, 4])
        on_road = self.map.in_drivable_area(last[:, :2]) if len(idx) else np.zeros(0, bool)
        self._walk_mode = np.where(speed < 0.1, 0, np.where(on_road, 1, 2))
        self._walk_off_s = np.zeros(len(idx))
        for r in np.nonzero(self._walk_mode == 1)[0]:
            v = last[r, 3:5]
            t = np.arange(1, 301) * 0.1
            pts = last[r, :2] + t[:, None] * v
            off = ~self.map.in_drivable_area(pts)
            k = int(np.argmax(off)) if off.any() else len(t) - 1
            self._walk_off_s[r] = t[k] + 2.0 / max(float(np.hypot(*v)), 0.1)

    def _kinematic_states(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(xy, heading, speed, valid) of the scripted walkers and static objects now."""
        ag, idx = self.scene.agents, self._kin_idx
        t_end = self.scene.num_steps - 1
        k = self.time_s / self.scene_dt
        if k <= t_end:
            st = ag.states[idx, int(round(k))]
            return st[:, :2], st[:, 2], np.hypot(st[:, 3], st[:, 4]), ag.valid[idx, int(round(k))]
        extra = (k - t_end) * self.scene_dt
        last = ag.states[idx, -1]
        xy, heading = last[:, :2].copy(), last[:, 2].copy()
        speed = np.zeros(len(idx))
        valid = ag.valid[idx, -1].copy()
        walk_on = self._walk_mode == 1
        if walk_on.any():
            tt = np.minimum(extra, self._walk_off_s[walk_on])
            xy[walk_on] = last[walk_on, :2] + tt[:, None] * last[walk_on, 3:5]
            speed[walk_on] = np.where(extra < self._walk_off_s[walk_on], np.hypot(*last[walk_on, 3:5].T), 0.0)
        back = self._walk_mode == 2
        if back.any():
            phase = int(round(extra / self.scene_dt)) % (2 * t_end)
            i = t_end - phase if phase < t_end else phase - t_end
            st = ag.states[idx[back], i]
            xy[back] = st[:, :2]
            heading[back] = st[:, 2] + (np.pi if phase < t_end else 0.0)
            speed[back] = np.hypot(st[:, 3], st[:, 4])
        return xy, heading, speed, valid

    def _init_vehicles(self, moving) -> _Vehicles:
        n = len(moving)
        win = int(self.cfg.lookahead_m / PATH_SPACING)
        m_max = max((len(m.follower.path.s) for m in moving), default=1)
        vcap = np.zeros((n, m_max + win))
        sign_stops, light_stops = [], []
        for i, m in enumerate(moving):
            f = m.follower
            cap = curvature_speed(f.path) * f.desired_speed_factor
            vcap[i, : len(cap)] = cap
            vcap[i, len(cap) :] = cap[-1]
            light_stops.append(light_stop_positions(f.path, self.map))
            sign_stops.append([st.s for st in self.build._stop_sign_stops(f.path, None)])
        return _Vehicles(
            ids=[m.id for m in moving],
            types=np.array([int(m.type) for m in moving], dtype=np.int8),
            sizes=np.array([m.size for m in moving]).reshape(n, 3),
            paths=[m.follower.path for m in moving],
            s=np.array([m.follower.s0 for m in moving], dtype=np.float64),
            v=np.array([m.follower.v0 for m in moving], dtype=np.float64),
            a=np.zeros(n),
            active=np.ones(n, bool),
            scripted=np.array([m.group == "scripted" for m in moving], bool),
            speed_factor=np.array([m.follower.desired_speed_factor for m in moving]),
            idm=idm_params_arrays([m.follower.idm for m in moving]) if n else idm_params_arrays([IDMParams()]),
            override=[m.follower.accel_override for m in moving],
            light_stops=light_stops,
            sign_stops=sign_stops,
            sign_waited=[np.zeros(len(x)) for x in sign_stops],
            vcap=vcap,
        )

    # ------------------------------------------------------------------------------------------------ state
    @property
    def scene_step(self) -> int:
        """The logged step that scripted walkers and static objects are at (held at the last one afterwards)."""
        return min(int(round(self.time_s / self.scene_dt)), self.scene.num_steps - 1)

    def light_state(self, light_id: str) -> TrafficLightState:
        cache = self.__dict__.setdefault("_light_cache", {})
        if cache.get("t") != self.time_s:
            cache.clear()
            cache["t"] = self.time_s
        state = cache.get(light_id)
        if state is None:
            state = cache[light_id] = self._light_state(light_id)
        return state

    def _light_state(self, light_id: str) -> TrafficLightState:
        if self._plan is not None:
            return TrafficLightState(int(self._plan.states(light_id, np.array([self.time_s]), self._plan_offset)[0]))
        tl = self._lights[light_id]
        return TrafficLightState(int(tl.states[self.scene_step]))

    def light_states(self) -> dict[str, TrafficLightState]:
        return {lid: self.light_state(lid) for lid in self._lights}

    def _vehicle_poses(self) -> np.ndarray:
        """Vehicles' centre poses, linearly interpolated on their 0.5 m paths (cached until they move)."""
        veh = self._vehicles
        cached = self.__dict__.get("_poses")
        if cached is not None and cached[0] is veh.s:
            return cached[1]
        out = np.zeros((len(veh.ids), 3))
        for i, p in enumerate(veh.paths):
            out[i] = path_pose(p, veh.s[i])
        self._poses = (veh.s, out)
        return out

    def snapshot(self, ego: VehicleState) -> WorldSnapshot:
        ag = self.scene.agents
        idx = self._kin_idx
        kin_xy, kin_h, kin_speed, kin_valid = self._kinematic_states()
        veh = self._vehicles
        poses = self._vehicle_poses()
        n_k, n_v = len(idx), len(veh.ids)
        return WorldSnapshot(
            time_s=self.time_s,
            ego=ego,
            ids=tuple(ag.ids[i] for i in idx) + tuple(veh.ids),
            types=np.concatenate([ag.types[idx], veh.types]).astype(np.int8),
            xy=np.concatenate([kin_xy, poses[:, :2]]).reshape(n_k + n_v, 2),
            heading=np.concatenate([kin_h, poses[:, 2]]),
            speed=np.concatenate([kin_speed, veh.v]),
            sizes=np.concatenate([ag.sizes[idx], veh.sizes]).reshape(n_k + n_v, 3),
            valid=np.concatenate([kin_valid, veh.active]),
            background=np.concatenate([np.zeros(n_k, bool), ~veh.scripted]),
            light_states=self.light_states(),
        )

    # ------------------------------------------------------------------------------------------------ tick
    def tick(self, ego: VehicleState, snap: WorldSnapshot | None = None) -> None:
        """Advance vehicles (seeing `ego` at its current state), walkers and lights by one `dt`; `snap` is this
        tick's snapshot when the caller already has it."""
        veh = self._vehicles
        n = len(veh.ids)
        if n:
            self._step_vehicles(snap if snap is not None else self.snapshot(ego), ego)
        self.time_s += self.dt

    def _step_vehicles(self, snap: WorldSnapshot, ego: VehicleState) -> None:
        veh, cfg, dt = self._vehicles, self.cfg, self.dt
        n = len(veh.ids)
        n_k = len(snap.ids) - n
        objects = self.obstacles(snap, ego)
        obj_ok = objects.valid
        gap = np.full(n, np.inf)
        v_lead = np.zeros(n)
        a_lead = np.zeros(n)
        front = veh.sizes[:, 0] / 2
        for i in range(n):
            if not veh.active[i]:
                continue
            mask = obj_ok.copy()
            mask[n_k + i] = False
            gap[i], v_lead[i], _ = corridor_lead(
                veh.paths[i], veh.s[i], front[i], veh.sizes[i, 1], objects, mask, cfg.corridor_margin,
                cfg.pedestrian_margin,
            )  # fmt: skip
        # stops: lights (red; yellow while we can still stop) and stop signs (full stop, then go)
        for i in range(n):
            if not veh.active[i]:
                continue
            f_s = veh.s[i] + front[i]
            for s_line, light in veh.light_stops[i]:
                g = s_line - f_s
                if g < -0.5:
                    continue
                state = self.light_state(light)
                binding = state == TrafficLightState.RED or (
                    state == TrafficLightState.YELLOW and veh.v[i] ** 2 / (2 * max(g, 0.1)) < 3.0
                )
                if binding:
                    gs = g + veh.idm["min_gap"][i] - STOP_GAP
                    if gs < gap[i]:
                        gap[i], v_lead[i], a_lead[i] = gs, 0.0, 0.0
            for k, s_line in enumerate(veh.sign_stops[i]):
                g = s_line - f_s
                if g < -0.5:
                    continue
                if veh.v[i] < 0.2 and g < 4.0:
                    veh.sign_waited[i][k] += dt
                if veh.sign_waited[i][k] < cfg.stop_sign_wait_s:
                    gs = g + veh.idm["min_gap"][i] - STOP_GAP
                    if gs < gap[i]:
                        gap[i], v_lead[i], a_lead[i] = gs, 0.0, 0.0
        # free-road speed and curve anticipation
        rows = np.arange(n)
        win_idx = np.arange(0, int(self.cfg.lookahead_m / PATH_SPACING), 2)
        k0 = np.clip((veh.s / PATH_SPACING).astype(int), 0, veh.vcap.shape[1] - win_idx[-1] - 1)
        caps = veh.vcap[rows[:, None], k0[:, None] + win_idx[None]]
        v_des = np.maximum(caps[:, 0], 0.1)
        ahead = np.maximum(win_idx * PATH_SPACING, 1.0)
        a_curve = np.min((caps**2 - (veh.v**2)[:, None]) / (2 * ahead[None]), axis=1)
        a = follower_acceleration(veh.v, v_des, gap, v_lead, a_lead, a_curve, veh.a, veh.idm, dt)
        step = int(self.time_s / self.scene_dt)
        for i, ov in enumerate(veh.override):
            if ov is not None and step < len(ov) and np.isfinite(ov[step]):
                a[i] = ov[step]
        v_new = veh.v + a * dt
        stopped = v_new < 0
        v_new = np.where(stopped, 0.0, v_new)
        a = np.where(stopped, -veh.v / dt, a)
        veh.s = np.where(veh.active, veh.s + 0.5 * (veh.v + v_new) * dt, veh.s)
        veh.v = np.where(veh.active, v_new, 0.0)
        veh.a = np.where(stopped, 0.0, a)
        lengths = np.array([p.length for p in veh.paths])
        veh.active &= veh.s <= lengths - 0.5

    # ------------------------------------------------------------------------------------------------ queries
    def obstacles(self, snap: WorldSnapshot, ego: VehicleState | None = None) -> Obstacles:
        """Every actor of `snap` as an obstacle, plus the ego box last when `ego` is given."""
        types = snap.types
        xy, h, v = snap.xy, snap.heading, snap.speed
        ln, wd, ok = snap.sizes[:, 0], snap.sizes[:, 1], snap.valid
        ped = types == int(AgentType.PEDESTRIAN)
        veh = np.isin(types, (int(AgentType.VEHICLE), int(AgentType.BICYCLE)))
        if ego is not None:
            e = self.ego_params
            xy = np.concatenate([xy, ego.centre(self.dynamics)[None]])
            h, v = np.append(h, ego.heading), np.append(v, ego.speed)
            ln, wd, ok = np.append(ln, e.length), np.append(wd, e.width), np.append(ok, True)
            ped, veh = np.append(ped, False), np.append(veh, False)
        return Obstacles(xy, h, v, ln, wd, ok, ped, veh)

    def ego_overlaps(self, ego: VehicleState, snap: WorldSnapshot) -> np.ndarray:
        """Indices (into `snap`) of the objects whose box overlaps the ego's box."""
        e = self.ego_params
        c = ego.centre(self.dynamics)
        near = snap.valid & (
            np.hypot(*(snap.xy - c).T)
            < (np.hypot(snap.sizes[:, 0], snap.sizes[:, 1]) + math.hypot(e.length, e.width)) / 2
        )
        idx = np.nonzero(near)[0]
        if not idx.size:
            return idx
        ego_c = box_corners(c[0], c[1], ego.heading, e.length, e.width)
        obj_c = box_corners(snap.xy[idx, 0], snap.xy[idx, 1], snap.heading[idx], snap.sizes[idx, 0], snap.sizes[idx, 1])
        hit = boxes_overlap(obj_c, np.broadcast_to(ego_c, obj_c.shape))
        return idx[hit]

    def scene_at(self, ego: VehicleState, snap: WorldSnapshot | None = None) -> Scene:
        """A two-step scene of the current instant (for the renderers): the actors and lights as they are now, the
        ego at `ego`'s pose."""
        snap = snap or self.snapshot(ego)
        m = len(snap.ids)
        st = np.zeros((m, 2, AGENT_DIM))
        st[:, :, 0:2] = snap.xy[:, None]
        st[:, :, 2] = snap.heading[:, None]
        st[:, :, 3] = (snap.speed * np.cos(snap.heading))[:, None]
        st[:, :, 4] = (snap.speed * np.sin(snap.heading))[:, None]
        valid = np.repeat(snap.valid[:, None], 2, axis=1)
        agents = Agents(snap.ids, snap.types, snap.sizes, st, valid) if m else Agents.empty(2)
        lights = tuple(
            TrafficLight(tl.id, tl.connector_ids, np.full(2, int(snap.light_states[tl.id])), tl.position, tl.facing)
            for tl in self._lights.values()
        )
        ego_rows = np.zeros((2, EGO_DIM))
        ego_rows[:, 0:3] = ego.pose
        ego_rows[:, 3] = ego.speed
        return Scene(
            token=self.scene.token,
            scenario=self.scene.scenario,
            seed=self.scene.seed,
            timestamps=np.array([0.0, self.scene_dt]),
            current_index=0,
            map=self.map,
            agents=agents,
            traffic_lights=lights,
            ego=ego_rows,
            route=self.scene.route,
            ego_params=self.ego_params,
            metadata=self.scene.metadata,
        )
