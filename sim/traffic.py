"""Lane-following traffic: paths along lane chains, a vectorised IDM simulator, and traffic-light cycles.

Every moving vehicle (background traffic, scripted actors and the expert ego) follows a fixed `Path` (a lane chain,
optionally with a lateral-offset profile for lane changes) and only chooses its speed. `simulate_followers` integrates
IDM for many followers at once: they see each other through shared lanes (with a look-back before merges), already
committed trajectories through a corridor projection onto their path, and conditional stops (red lights, stop signs,
crosswalks). Acceleration is jerk-limited so the result stays inside NAVSIM's comfort bounds.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import shapely
from scipy.interpolate import CubicSpline
from scipy.spatial import cKDTree

from sim.idm import idm_acceleration
from sim.scene import TrafficLightState, polyline_arclength

logger = logging.getLogger(__name__)

PATH_SPACING = 0.5
STOP_GAP = 1.0  # metres between the front bumper and a stop line when stopped
#: smallest gap (m) the IDM and ACC terms divide by: stop lines are approached to within STOP_GAP, so the minimum gap
#: cannot be the floor as it is in nuPlan's IDM
IDM_GAP_FLOOR = 0.05


# ---- paths ----
@dataclass
class Path:
    """A dense drivable path: points every ~0.5 m with arc length, heading, curvature and the speed limit."""

    lane_ids: tuple[str, ...]
    lane_start: dict[str, float]  # lane id -> arc length where it starts on this path
    lane_end: dict[str, float]
    xy: np.ndarray  # (M, 2)
    s: np.ndarray  # (M,)
    heading: np.ndarray  # (M,) unwrapped
    kappa: np.ndarray  # (M,)
    speed_limit: np.ndarray  # (M,)

    def __post_init__(self) -> None:
        m = self.xy.shape[0]
        if self.xy.shape != (m, 2) or m < 2:
            raise ValueError(f"path: expected (M>=2, 2) points, got {self.xy.shape}")
        for k in ("s", "heading", "kappa", "speed_limit"):
            if getattr(self, k).shape != (m,):
                raise ValueError(f"path.{k}: expected shape ({m},), got {getattr(self, k).shape}")

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def pose_at(self, s: np.ndarray) -> np.ndarray:
        """(…, 3) poses x, y, heading (wrapped) at arc lengths `s` (clamped to the path).

        A cubic spline through the vertices keeps positions smooth between them, so finite-difference
        accelerations of a trajectory along the path show no vertex kinks; heading is the spline's tangent.
        """
        s = np.clip(np.asarray(s, dtype=np.float64), 0.0, self.s[-1])
        xy = self.spline(s)
        d = self.spline(s, 1)
        return np.concatenate([xy, np.arctan2(d[..., 1], d[..., 0])[..., None]], axis=-1)

    @property
    def spline(self) -> CubicSpline:
        sp = self.__dict__.get("_spline")
        if sp is None:
            sp = self.__dict__["_spline"] = CubicSpline(self.s, self.xy, bc_type="natural")
        return sp

    def locate(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Arc length, signed lateral offset (left +) and distance to the nearest vertex for points (…, 2)."""
        xy = np.asarray(xy, dtype=np.float64)
        dist, idx = self.tree.query(xy.reshape(-1, 2))
        d = xy.reshape(-1, 2) - self.xy[idx]
        c, s_ = np.cos(self.heading[idx]), np.sin(self.heading[idx])
        along = d[:, 0] * c + d[:, 1] * s_
        lat = -d[:, 0] * s_ + d[:, 1] * c
        shape = xy.shape[:-1]
        return (self.s[idx] + along).reshape(shape), lat.reshape(shape), dist.reshape(shape)

    @property
    def tree(self) -> cKDTree:
        t = self.__dict__.get("_tree")
        if t is None:
            t = self.__dict__["_tree"] = cKDTree(self.xy)
        return t


def smoothstep5(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * t * (10 - 15 * t + 6 * t * t)


def build_path(lanes: dict, lane_ids, offsets: list[tuple[float, float, float, float]] | None = None) -> Path:
    """Concatenate lane centrelines into a 0.5 m path; `offsets` adds lateral shifts (s0, s1, d0, d1) blended with a
    quintic smoothstep (a lane change is d0 = ±lane width -> 0 over [s0, s1])."""
    lane_ids = tuple(lane_ids)
    if not lane_ids:
        raise ValueError("build_path: empty lane chain")
    pieces, starts, ends = [], {}, {}
    total = 0.0
    for k, lid in enumerate(lane_ids):
        if lid not in lanes:
            raise ValueError(f"build_path: unknown lane {lid!r}")
        c = lanes[lid].centerline
        if k and lid not in lanes[lane_ids[k - 1]].successors:
            raise ValueError(f"build_path: lane {lid!r} does not follow {lane_ids[k - 1]!r}")
        if pieces:
            c = c[1:] if np.hypot(*(c[0] - pieces[-1][-1])) < 1e-6 else c
        seg = polyline_arclength(np.concatenate([pieces[-1][-1:], c]) if pieces else c)
        starts[lid] = total if not pieces else total
        total += float(seg[-1])
        ends[lid] = total
        pieces.append(c)
    xy = np.concatenate(pieces)
    s = polyline_arclength(xy)
    keep = np.concatenate([[True], np.diff(s) > 1e-6])
    xy, s = xy[keep], s[keep]
    n = max(int(math.ceil(s[-1] / PATH_SPACING)), 1) + 1
    q = np.linspace(0.0, s[-1], n)
    xy = np.stack([np.interp(q, s, xy[:, 0]), np.interp(q, s, xy[:, 1])], axis=-1)
    limits = np.full(n, lanes[lane_ids[-1]].speed_limit)
    for lid in lane_ids[::-1]:
        limits[q <= ends[lid] + 1e-9] = lanes[lid].speed_limit
    if offsets:
        tang = np.gradient(xy, axis=0)
        tang /= np.maximum(np.linalg.norm(tang, axis=1, keepdims=True), 1e-12)
        normal = np.stack([-tang[:, 1], tang[:, 0]], axis=-1)
        d = np.zeros(n)
        for s0, s1, d0, d1 in offsets:
            d += np.where(q < s0, d0, 0.0) + np.where(q >= s0, d0 + (d1 - d0) * smoothstep5((q - s0) / (s1 - s0)), 0)
        xy = xy + normal * d[:, None]
        # re-parametrise by arc length of the shifted curve
        s2 = polyline_arclength(xy)
        n2 = max(int(math.ceil(s2[-1] / PATH_SPACING)), 1) + 1
        q2 = np.linspace(0.0, s2[-1], n2)
        limits = np.interp(q2, s2, limits)
        xy = np.stack([np.interp(q2, s2, xy[:, 0]), np.interp(q2, s2, xy[:, 1])], axis=-1)
        scale = s2[-1] / max(q[-1], 1e-9)
        starts = {k: v * scale for k, v in starts.items()}
        ends = {k: v * scale for k, v in ends.items()}
        q = q2
    d = np.gradient(xy, axis=0)
    heading = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
    kappa = np.gradient(heading) / np.maximum(np.gradient(q), 1e-9)
    kappa = np.convolve(np.pad(kappa, 2, mode="edge"), np.ones(5) / 5, mode="valid")
    return Path(lane_ids, starts, ends, xy, q, heading, kappa, limits)


def curvature_speed(path: Path, lat_acc: float = 2.0, yaw_rate: float = 0.5) -> np.ndarray:
    """Speed cap along the path from the speed limit, lateral acceleration and yaw rate."""
    k = np.maximum(np.abs(path.kappa), 1e-6)
    return np.minimum(path.speed_limit, np.minimum(np.sqrt(lat_acc / k), yaw_rate / k))


# ---- traffic lights ----
@dataclass(frozen=True)
class SignalPlan:
    """A fixed-time plan of protected phases; each phase lists the light ids it turns green."""

    phases: tuple[tuple[str, ...], ...]
    green_s: float = 10.0
    yellow_s: float = 3.0
    all_red_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.phases:
            raise ValueError("SignalPlan.phases: need at least one phase")
        for k in ("green_s", "yellow_s", "all_red_s"):
            if not (getattr(self, k) >= 0):
                raise ValueError(f"SignalPlan.{k} must be non-negative")
        if self.green_s <= 0:
            raise ValueError("SignalPlan.green_s must be positive")

    @property
    def cycle_s(self) -> float:
        return len(self.phases) * (self.green_s + self.yellow_s + self.all_red_s)

    def states(self, light_id: str, times: np.ndarray, offset_s: float = 0.0) -> np.ndarray:
        """State codes (int8) of one light at absolute `times` (cycle position = time + offset)."""
        period = self.green_s + self.yellow_s + self.all_red_s
        tc = np.mod(np.asarray(times, dtype=np.float64) + offset_s, self.cycle_s)
        phase = np.minimum((tc // period).astype(int), len(self.phases) - 1)
        within = tc - phase * period
        mine = np.array([light_id in p for p in self.phases])[phase]
        out = np.full(tc.shape, int(TrafficLightState.RED), dtype=np.int8)
        out[mine & (within < self.green_s)] = int(TrafficLightState.GREEN)
        out[mine & (within >= self.green_s) & (within < self.green_s + self.yellow_s)] = int(TrafficLightState.YELLOW)
        return out

    def phase_start(self, light_id: str) -> float:
        """Cycle time at which `light_id` turns green."""
        period = self.green_s + self.yellow_s + self.all_red_s
        for k, p in enumerate(self.phases):
            if light_id in p:
                return k * period
        raise ValueError(f"light {light_id!r} is in no phase")


def four_way_plan(green_s: float = 10.0) -> SignalPlan:
    """Protected phases for `roads.junction`'s lights: arms 0+2 through, 0+2 left, 1+3 through, 1+3 left."""
    return SignalPlan(
        (("tl0_main", "tl2_main"), ("tl0_left", "tl2_left"), ("tl1_main", "tl3_main"), ("tl1_left", "tl3_left")),
        green_s=green_s,
    )


# ---- follower simulation ----
@dataclass
class IDMParams:
    """Intelligent Driver Model parameters (per follower); defaults are calm urban driving."""

    accel: float = 1.4
    decel: float = 2.0
    headway: float = 1.4
    min_gap: float = 2.5
    delta: float = 4.0
    max_brake: float = 4.0
    max_jerk: float = 3.8
    emergency_brake: float = 8.0
    stop_rate: float = 2.0  # near standstill |a| <= stop_rate * v, so stops end softly

    def __post_init__(self) -> None:
        for k in ("accel", "decel", "headway", "min_gap", "max_brake", "max_jerk", "emergency_brake", "stop_rate"):
            if not (getattr(self, k) > 0):
                raise ValueError(f"IDMParams.{k} must be positive, got {getattr(self, k)}")


@dataclass
class Stop:
    """A conditional stop at arc length `s` (the front must stay behind it): `red` (T,) always binding, `yellow`
    (T,) binding only while the follower can still stop at `decel`; `stop_sign` needs a full stop, then `clear` (T,)."""

    s: float
    red: np.ndarray
    yellow: np.ndarray | None = None
    stop_sign: bool = False
    clear: np.ndarray | None = None


@dataclass
class Follower:
    path: Path
    s0: float
    v0: float
    front: float  # reference point -> front bumper along the path
    rear: float
    width: float
    desired_speed_factor: float = 1.0
    idm: IDMParams = field(default_factory=IDMParams)
    stops: list[Stop] = field(default_factory=list)
    accel_override: np.ndarray | None = None  # (T,) NaN where IDM decides


@dataclass
class Committed:
    """Trajectories others must avoid: centres/headings/speeds (C, T, ...) with sizes and validity."""

    xy: np.ndarray  # (C, T, 2)
    heading: np.ndarray  # (C, T)
    speed: np.ndarray  # (C, T) signed speed along heading
    length: np.ndarray  # (C,)
    width: np.ndarray  # (C,)
    valid: np.ndarray  # (C, T)

    @classmethod
    def empty(cls, t: int) -> Committed:
        return cls(
            np.zeros((0, t, 2)), np.zeros((0, t)), np.zeros((0, t)), np.zeros(0), np.zeros(0), np.zeros((0, t), bool)
        )

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    def concat(self, other: Committed) -> Committed:
        return Committed(
            *(
                np.concatenate([getattr(self, k), getattr(other, k)])
                for k in ("xy", "heading", "speed", "length", "width", "valid")
            )
        )


def _project_committed(f: Follower, com: Committed, margin: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per committed object and step: arc length of its rear face on `f`'s path, its speed along the path, and
    whether it blocks `f`'s corridor (C, T)."""
    c, t = com.valid.shape
    if c == 0:
        z = np.zeros((0, t))
        return z, z, z.astype(bool)
    s, lat, dist = f.path.locate(com.xy)
    idx = np.clip(np.searchsorted(f.path.s, s), 0, len(f.path.s) - 1)
    dh = com.heading - f.path.heading[idx]
    cos_, sin_ = np.abs(np.cos(dh)), np.abs(np.sin(dh))
    along_ext = cos_ * com.length[:, None] / 2 + sin_ * com.width[:, None] / 2
    lat_ext = sin_ * com.length[:, None] / 2 + cos_ * com.width[:, None] / 2
    blocks = com.valid & (np.abs(lat) < f.width / 2 + lat_ext + margin) & (dist < 12.0)
    return s - along_ext, com.speed * np.cos(dh), blocks


def _shared_offsets(fs: list[Follower], lookback: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """delta[i, j]: add to j's arc length to get i's; valid while j's arc length is within [lo, hi]."""
    n = len(fs)
    delta = np.zeros((n, n))
    lo = np.full((n, n), np.inf)
    hi = np.full((n, n), -np.inf)
    ok = np.zeros((n, n), bool)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            shared = [lid for lid in fs[j].path.lane_ids if lid in fs[i].path.lane_start]
            if not shared:
                continue
            first, last = shared[0], shared[-1]
            delta[i, j] = fs[i].path.lane_start[first] - fs[j].path.lane_start[first]
            lo[i, j] = fs[j].path.lane_start[first] - lookback
            hi[i, j] = fs[j].path.lane_end[last]
            ok[i, j] = True
    return delta, lo, hi, ok


def simulate_followers(
    followers: list[Follower],
    num_steps: int,
    dt: float,
    committed: Committed | None = None,
    corridor_margin: float = 0.4,
    merge_lookback: float = 50.0,
    lookahead_m: float = 80.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integrate IDM (ACC-blended, jerk-limited) for all followers at once from step 0.

    Leads are, per step, the nearest of: another follower ahead on a shared lane (or within `merge_lookback` m
    before a shared lane, so merging vehicles zip), a committed object whose box is within `corridor_margin` of
    the follower's width around its path, and a binding conditional stop. Speed caps from curvature and speed
    limits within `lookahead_m` are anticipated by braking just enough to meet them.
    Returns arc length, speed and acceleration, each (N, T).
    """
    n = len(followers)
    if n == 0:
        z = np.zeros((0, num_steps))
        return z, z, z
    committed = committed if committed is not None else Committed.empty(num_steps)
    if committed.valid.shape[1] != num_steps:
        raise ValueError(f"committed trajectories have {committed.valid.shape[1]} steps, expected {num_steps}")
    get = lambda k: np.array([getattr(f, k) for f in followers], dtype=np.float64)  # noqa: E731
    front, rear = get("front"), get("rear")
    p = {k: np.array([getattr(f.idm, k) for f in followers]) for k in IDMParams.__dataclass_fields__}
    # speed caps along a look-ahead window (curvature, speed limits)
    win = int(lookahead_m / PATH_SPACING)
    m = max(len(f.path.s) for f in followers)
    vcap = np.empty((n, m + win))
    length = np.empty(n)
    for i, f in enumerate(followers):
        cap = curvature_speed(f.path) * f.desired_speed_factor
        vcap[i, : len(cap)] = cap
        vcap[i, len(cap) :] = cap[-1]
        length[i] = f.path.length
    win_idx = np.arange(0, win, 2)  # every metre of the window
    ahead_d = win_idx * PATH_SPACING
    # committed obstacles per follower
    obs_s, obs_v, obs_on = [], [], []
    for f in followers:
        a, b, c = _project_committed(f, committed, corridor_margin)
        obs_s.append(a)
        obs_v.append(b)
        obs_on.append(c)
    obs_s, obs_v, obs_on = np.array(obs_s), np.array(obs_v), np.array(obs_on)  # (N, C, T)
    if obs_on.size:  # keep only objects that ever block someone (most pedestrians and parked cars never do)
        keep = obs_on.any(axis=(0, 2))
        obs_s, obs_v, obs_on = obs_s[:, keep], obs_v[:, keep], obs_on[:, keep]
    delta, lo, hi, shared_ok = _shared_offsets(followers, merge_lookback)
    override = np.full((n, num_steps), np.nan)
    for i, f in enumerate(followers):
        if f.accel_override is not None:
            override[i] = f.accel_override
    n_stops = max((len(f.stops) for f in followers), default=0)
    stop_s = np.full((n, n_stops), np.inf)
    stop_red = np.zeros((n, n_stops, num_steps), bool)
    stop_yellow = np.zeros((n, n_stops, num_steps), bool)
    stop_sign = np.zeros((n, n_stops), bool)
    stop_clear = np.ones((n, n_stops, num_steps), bool)
    for i, f in enumerate(followers):
        for k, st in enumerate(f.stops):
            stop_s[i, k] = st.s
            stop_red[i, k] = st.red
            if st.yellow is not None:
                stop_yellow[i, k] = st.yellow
            stop_sign[i, k] = st.stop_sign
            if st.clear is not None:
                stop_clear[i, k] = st.clear
    waited = np.zeros((n, n_stops))  # seconds stopped at each stop sign

    s = get("s0")
    v = get("v0")
    a_prev = np.zeros(n)
    out_s = np.empty((n, num_steps))
    out_v = np.empty((n, num_steps))
    out_a = np.empty((n, num_steps))
    rows = np.arange(n)
    for t in range(num_steps):
        out_s[:, t], out_v[:, t] = s, v
        # free-road desired speed
        k0 = np.clip((s / PATH_SPACING).astype(int), 0, m - 1)
        caps = vcap[rows[:, None], k0[:, None] + win_idx[None]]
        v_des = np.maximum(caps[:, 0], 0.1)
        # braking needed to reach every speed cap ahead in time (curves, lower limits)
        a_curve = np.min((caps**2 - (v**2)[:, None]) / (2 * np.maximum(ahead_d[None], 1.0)), axis=1)
        gap = np.full(n, np.inf)
        v_lead = np.zeros(n)
        a_lead = np.zeros(n)
        # other followers through shared lanes
        sj = s[None, :] + delta
        on = shared_ok & (s[None, :] >= lo) & (s[None, :] <= hi) & (sj > s[:, None])
        g = np.where(on, sj - rear[None, :] - (s + front)[:, None], np.inf)
        j = np.argmin(g, axis=1)
        gj = g[rows, j]
        better = gj < gap
        gap = np.where(better, gj, gap)
        v_lead = np.where(better, v[j], v_lead)
        a_lead = np.where(better, a_prev[j], a_lead)
        # committed obstacles
        if obs_s.shape[1]:
            os_ = obs_s[:, :, t]
            centre_ahead = os_ > s[:, None] - 0.5
            g = np.where(obs_on[:, :, t] & centre_ahead, os_ - (s + front)[:, None], np.inf)
            c = np.argmin(g, axis=1)
            gc = g[rows, c]
            better = gc < gap
            gap = np.where(better, gc, gap)
            v_lead = np.where(better, np.maximum(obs_v[rows, c, t], 0.0), v_lead)
            if t:
                a_lead = np.where(better, (obs_v[rows, c, t] - obs_v[rows, c, t - 1]) / dt, a_lead)
        # conditional stops (red/yellow lights, stop signs, crosswalks), vectorised over followers x stops
        if n_stops:
            gs = stop_s - (s + front)[:, None]
            yellow_ok = stop_yellow[:, :, t] & ((v**2)[:, None] / (2 * np.maximum(gs, 0.1)) < 3.0)
            waited += np.where(stop_sign & (v < 0.2)[:, None] & (gs < 4.0), dt, 0.0)
            sign_holds = stop_sign & ((waited < 1.0) | ~stop_clear[:, :, t])
            binding = (gs >= -0.5) & (stop_red[:, :, t] | yellow_ok | sign_holds)
            # IDM keeps min_gap to a lead; a stop line is approached to within STOP_GAP
            g = np.where(binding, gs + p["min_gap"][:, None] - STOP_GAP, np.inf).min(axis=1)
            better = g < gap
            gap = np.where(better, g, gap)
            v_lead = np.where(better, 0.0, v_lead)
            a_lead = np.where(better, 0.0, a_lead)
        a = follower_acceleration(v, v_des, gap, v_lead, a_lead, a_curve, a_prev, p, dt)
        ov = override[:, t]
        a = np.where(np.isfinite(ov), ov, a)
        v_new = v + a * dt
        stopped = v_new < 0
        v_new = np.where(stopped, 0.0, v_new)
        a = np.where(stopped, -v / dt, a)
        out_a[:, t] = a
        s = s + 0.5 * (v + v_new) * dt
        v = v_new
        a_prev = np.where(stopped, 0.0, a)
    return out_s, out_v, out_a


def idm_params_arrays(params: list[IDMParams]) -> dict[str, np.ndarray]:
    """Per-field arrays of many followers' IDM parameters (the layout `idm_acceleration` takes)."""
    return {k: np.array([getattr(q, k) for q in params], dtype=np.float64) for k in IDMParams.__dataclass_fields__}


def follower_acceleration(
    v, v_des, gap, v_lead, a_lead, a_curve, a_prev, p: dict[str, np.ndarray], dt: float
) -> np.ndarray:
    """One step of the followers' longitudinal law, vectorised: IDM (`sim.idm`, Treiber's clamped form) blended with
    ACC's constant-acceleration heuristic, braking for speed caps ahead (`a_curve` < 0), emergency braking beyond
    `max_brake`, a jerk limit against `a_prev`, and soft stops. `gap` is inf where there is no lead; `p` holds
    `idm_params_arrays`. `simulate_followers` and the closed-loop world (`sim.closed_loop`) both step with it."""
    a = idm_acceleration(
        v, v_des, gap, v_lead, accel_max=p["accel"], decel=p["decel"], min_gap=p["min_gap"], headway=p["headway"],
        gap_floor=IDM_GAP_FLOOR, exponent=p["delta"], clamp_dynamic_gap=True,
    )  # fmt: skip
    a = _acc_blend(a, v, v_lead, np.minimum(a_lead, p["accel"]), gap, p["decel"])
    a = np.where(a_curve < 0, np.minimum(a, 1.15 * a_curve - 0.1), a)
    emergency = a < -p["max_brake"] - 0.5
    a = np.clip(a, np.where(emergency, -p["emergency_brake"], -p["max_brake"]), p["accel"])
    jerk = np.where(emergency, 3 * p["max_jerk"], p["max_jerk"]) * dt
    a = np.clip(a, a_prev - jerk, a_prev + jerk)
    return np.maximum(a, np.where(emergency, -np.inf, -p["stop_rate"] * v - 0.05))


def _acc_blend(a_idm, v, v_lead, a_lead, gap, b, coolness: float = 0.99) -> np.ndarray:
    """Treiber & Kesting's ACC model: blend IDM with the constant-acceleration heuristic so a vehicle that cuts in
    ahead but drives away does not trigger IDM's over-reaction (no effect without a lead)."""
    has_lead = np.isfinite(gap)
    g = np.where(has_lead, np.maximum(gap, IDM_GAP_FLOOR), 1e6)
    free = v_lead * (v - v_lead) <= -2 * g * a_lead
    denom = v_lead**2 - 2 * g * a_lead
    ok = denom > 1e-6
    cah_a = np.where(ok, v**2 * a_lead / np.where(ok, denom, 1.0), a_lead)
    cah_b = a_lead - np.maximum(v - v_lead, 0.0) ** 2 / (2 * g)
    cah = np.where(free, cah_a, cah_b)
    blended = (1 - coolness) * a_idm + coolness * (cah + b * np.tanh((a_idm - cah) / b))
    use = has_lead & (a_idm < cah)
    return np.where(use, blended, a_idm)


# ---- stops derived from the map ----
def first_entry_s(path: Path, polygon) -> float | None:
    """Arc length where the path first touches `polygon` (shapely), or None if it never does.

    Computed on the path's polyline, not its samples: a stop line as deep as the sample spacing can fall between
    samples or exactly on their grid (boundary points are not "contained"), and the stop would silently vanish.
    """
    line = shapely.LineString(path.xy)
    hit = shapely.intersection(line, polygon)
    if hit.is_empty:
        return None
    along = shapely.line_locate_point(line, shapely.points(shapely.get_coordinates(hit)))
    return float(path.s[0] + along.min())


def light_stops(
    path: Path,
    map_data,
    lights,
) -> list[Stop]:
    """One stop per signalised connector on the path, at the stop line of the lane that feeds it."""
    by_id = {tl.id: tl for tl in lights}
    stops = []
    for s_line, light_id in light_stop_positions(path, map_data):
        if light_id not in by_id:
            continue
        states = by_id[light_id].states
        stops.append(Stop(s_line, states == int(TrafficLightState.RED), states == int(TrafficLightState.YELLOW)))
    return stops


def light_stop_positions(path: Path, map_data) -> list[tuple[float, str]]:
    """(arc length of the stop line, light id) for each signalised connector on the path: the stop line of the lane
    feeding it, or 1 m before the connector when the map has none."""
    out = []
    for k, lid in enumerate(path.lane_ids):
        lane = map_data.lanes[lid]
        if not lane.is_connector or lane.traffic_light_id is None:
            continue
        s_line = None
        prev = path.lane_ids[k - 1] if k else None
        for area in map_data.stop_lines.values():
            if prev is not None and prev in area.lane_ids:
                s_line = first_entry_s(path, area.polygon)
                break
        if s_line is None:
            s_line = path.lane_start[lid] - 1.0
        out.append((s_line, lane.traffic_light_id))
    return out


def crosswalk_stops(
    path: Path, map_data, pedestrians: Committed, dt: float, horizon_s: float = 4.0, buffer_m: float = 0.0
) -> list[Stop]:
    """Yield before each crosswalk on the path while a pedestrian is on it, or will be within `horizon_s`."""
    stops = []
    if len(pedestrians) == 0:
        return stops
    num_steps = pedestrians.valid.shape[1]
    for area in map_data.crosswalks.values():
        poly = area.polygon.buffer(buffer_m) if buffer_m else area.polygon
        s_in = first_entry_s(path, poly)
        if s_in is None:
            continue
        occ = shapely.contains_xy(poly, pedestrians.xy[..., 0], pedestrians.xy[..., 1]) & pedestrians.valid
        occ_t = occ.any(axis=0)
        k = int(round(horizon_s / dt))
        # active at t if occupied anywhere in [t, t + horizon]
        cs = np.concatenate([[0], np.cumsum(occ_t)])
        idx = np.arange(num_steps)
        active = (cs[np.minimum(idx + k + 1, num_steps)] - cs[idx]) > 0
        if active.any():
            stops.append(Stop(max(s_in - 0.5, 0.0), active))
    return stops


def gap_clear(
    path: Path,
    s_line: float,
    front: float,
    rear: float,
    width: float,
    committed: Committed,
    dt: float,
    accel: float = 1.2,
    v_target: float = 9.0,
    margin: float = 2.5,
    horizon_s: float = 7.0,
) -> np.ndarray:
    """clear[t]: starting from rest at the stop line at step t, accelerating at `accel` to `v_target`, the
    follower stays `margin` metres (circle approximation) from every committed object over `horizon_s`."""
    num_steps = committed.valid.shape[1]
    h = int(round(horizon_s / dt))
    tt = np.arange(h) * dt
    t_acc = v_target / accel
    d = np.where(tt < t_acc, 0.5 * accel * tt**2, 0.5 * accel * t_acc**2 + v_target * (tt - t_acc))
    poses = path.pose_at(s_line - front + d)  # (h, 3) reference point
    offs = np.linspace(-rear + width / 2, front - width / 2, 3)
    ego_c = poses[:, None, :2] + offs[None, :, None] * np.stack([np.cos(poses[:, 2]), np.sin(poses[:, 2])], -1)[:, None]
    clear = np.ones(num_steps, bool)
    # only objects that ever come near the swept path matter
    reach = np.hypot(*(committed.xy[:, :, None, :] - poses[None, None, ::5, :2]).transpose(3, 0, 1, 2)).min(axis=(1, 2))
    near = reach < committed.length / 2 + front + rear + margin + 1.0
    if not near.any():
        return clear
    com = Committed(*(getattr(committed, k)[near] for k in ("xy", "heading", "speed", "length", "width", "valid")))
    lo = np.linspace(-0.5, 0.5, 3)
    oc = (
        com.xy[:, :, None, :]
        + (lo[None, None, :, None] * np.maximum(com.length - com.width, 0)[:, None, None, None])
        * np.stack([np.cos(com.heading), np.sin(com.heading)], -1)[:, :, None, :]
    )  # (C, T, 3, 2)
    # steps (t + k) of every start t against the k-th pose of the go manoeuvre
    # (every other step of the manoeuvre: 0.2 s moves at most ~2.5 m, inside the margin)
    ks = np.arange(0, h, 2)
    abs_t = np.arange(num_steps)[:, None] + ks[None, :]  # (T, K)
    inside = abs_t < num_steps
    abs_t = np.minimum(abs_t, num_steps - 1)
    o = oc[:, abs_t].astype(np.float32)  # (C, T, K, 3, 2)
    diff = o[:, :, :, :, None, :] - ego_c[ks][None, None, :, None, :, :].astype(np.float32)
    d2 = np.einsum("...i,...i->...", diff, diff).min(axis=(3, 4))
    thr = (com.width[:, None, None] / 2 + width / 2 + margin) ** 2
    bad = (d2 < thr) & com.valid[:, abs_t] & inside[None]
    return ~bad.any(axis=(0, 2))
