"""What the scorer sees of the world over the 41 scoring steps: agent boxes, red on-route connectors, map masks.

`build_observation` reproduces the metric cache: agents are read at 2 Hz (t = 0, 0.5, ..., 4 s) and linearly
interpolated to 0.1 s with unwrapped headings; a track seen at one 2 Hz sample only is held at that state for every
step; traffic-light states are sample-and-hold over each 0.5 s frame; only red connectors of on-route roadblocks count.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from agent.boxes import centre_boxes
from sim.scene import AG_HEADING, AG_VX, AG_VY, AG_X, AG_Y, AgentType, Scene, TrafficLightState

logger = logging.getLogger(__name__)

NAVSIM_SAMPLE_S = 0.5


@dataclass
class Observation:
    """Tracks over the scoring horizon. `states` may carry a leading proposal axis for reactive traffic.

    states: ([K,] A, T, 5) centre x, y, heading, vx, vy; present: ([K,] A, T) bool.
    first_speed is each track's speed at its first appearance (NAVSIM's `unique_objects`), which decides
    "track stopped" for collision typing; static object types always count as stopped.
    """

    ids: tuple[str, ...]
    types: np.ndarray  # (A,) int8
    sizes: np.ndarray  # (A, 3)
    states: np.ndarray
    present: np.ndarray
    first_speed: np.ndarray  # ([K,] A)
    red_polygons: tuple  # shapely polygons of on-route connectors that are red at some step
    red_masks: np.ndarray  # (R, T) bool

    def __post_init__(self) -> None:
        a = len(self.ids)
        if self.states.shape[-3] != a or self.states.shape[-1] != 5:
            raise ValueError(f"observation.states: expected (..., {a}, T, 5), got {self.states.shape}")
        if self.present.shape != self.states.shape[:-1]:
            raise ValueError(f"observation.present: expected {self.states.shape[:-1]}, got {self.present.shape}")
        if self.red_masks.shape != (len(self.red_polygons), self.num_steps):
            raise ValueError(f"observation.red_masks: expected ({len(self.red_polygons)}, {self.num_steps})")

    @property
    def num_steps(self) -> int:
        return int(self.states.shape[-2])

    @property
    def is_road_user(self) -> np.ndarray:
        return np.isin(self.types, [int(AgentType.VEHICLE), int(AgentType.PEDESTRIAN), int(AgentType.BICYCLE)])

    def track_stopped(self, stopped_speed: float) -> np.ndarray:
        return (~self.is_road_user) | (self.first_speed <= stopped_speed)

    def corners(self) -> np.ndarray:
        return centre_boxes(self.states, self.sizes[:, 0, None], self.sizes[:, 1, None])

    def subset(self, keep: np.ndarray) -> Observation:
        keep = np.asarray(keep, dtype=bool)
        return Observation(
            tuple(i for i, k in zip(self.ids, keep) if k),
            self.types[keep],
            self.sizes[keep],
            self.states[..., keep, :, :],
            self.present[..., keep, :],
            self.first_speed[..., keep],
            self.red_polygons,
            self.red_masks,
        )


def on_route_lane_ids(scene: Scene) -> set[str]:
    """Every lane and connector of the route's roadblocks (NAVSIM's `route_lane_dict`)."""
    blocks = {scene.map.lanes[i].roadblock_id for i in scene.route.lane_ids}
    return {lid for lid, lane in scene.map.lanes.items() if lane.roadblock_id in blocks}


def _sample_indices(scene: Scene, num_steps: int, dt: float, two_hz: bool) -> tuple[np.ndarray, np.ndarray]:
    """Scene indices of the samples used and their times (s) relative to the current frame."""
    stride_f = (NAVSIM_SAMPLE_S if two_hz else dt) / scene.dt
    stride = int(round(stride_f))
    if stride < 1 or abs(stride - stride_f) > 1e-6:
        raise ValueError(f"scene dt {scene.dt} s does not divide the sample interval")
    horizon = (num_steps - 1) * dt
    n = int(round(horizon / (stride * scene.dt))) + 1
    idx = scene.current_index + stride * np.arange(n)
    if idx[-1] >= scene.num_steps:
        raise ValueError(
            f"scene {scene.token}: needs {horizon:.1f} s of future, has {scene.future_steps * scene.dt:.1f} s"
        )
    return idx, np.arange(n) * stride * scene.dt


def interpolate_tracks(
    times: np.ndarray, states: np.ndarray, valid: np.ndarray, query: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-track linear interpolation (A, S, 5) at `times` -> (A, Q, 5) at `query`, NAVSIM's StateInterpolator.

    A track is present between its first and last valid sample (gaps are bridged); with a single sample it is held at
    that state everywhere. Returns states, present mask and the speed at the first valid sample.
    """
    a, s, _ = states.shape
    q_n = len(query)
    out = np.zeros((a, q_n, 5))
    present = np.zeros((a, q_n), dtype=bool)
    first_speed = np.zeros(a)
    count = valid.sum(axis=1)
    if a == 0 or not count.any():
        return out, present, first_speed
    rows = np.arange(a)[:, None]
    pos = np.arange(s)
    last_valid = np.maximum.accumulate(np.where(valid, pos, -1), axis=1)  # last valid sample <= each position
    next_valid = np.minimum.accumulate(np.where(valid, pos, s)[:, ::-1], axis=1)[:, ::-1]  # first valid >= it
    # samples filled from their valid neighbours: unwrapping them equals unwrapping the valid samples alone
    filled = states[rows, np.where(last_valid >= 0, last_valid, next_valid).clip(0, s - 1)]
    filled[..., 2] = np.unwrap(filled[..., 2], axis=1)
    first = np.argmax(valid, axis=1)
    first_speed = np.where(count > 0, np.hypot(filled[np.arange(a), first, 3], filled[np.arange(a), first, 4]), 0.0)
    # np.interp over each track's valid samples: the bracketing valid samples L <= q <= R
    lo = np.clip(np.searchsorted(times, query, side="right") - 1, 0, s - 1)
    hi = np.clip(np.searchsorted(times, query, side="left"), 0, s - 1)
    left, right = last_valid[:, lo], next_valid[:, hi]  # (A, Q)
    left = np.where(left < 0, right, left)  # before the first sample: clamp
    right = np.where(right >= s, left, right)  # after the last: clamp
    left, right = left.clip(0, s - 1), right.clip(0, s - 1)  # tracks with no sample (never present)
    fl, fr = filled[rows, left], filled[rows, right]
    tl, tr = times[left], times[right]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (fr - fl) / (tr - tl)[..., None]
        interp = np.where((left == right)[..., None], fl, slope * (query[None, :, None] - tl[..., None]) + fl)
    interp[..., 2] = np.arctan2(np.sin(interp[..., 2]), np.cos(interp[..., 2]))
    last = s - 1 - np.argmax(valid[:, ::-1], axis=1)
    t_first, t_last = times[first][:, None], times[last][:, None]
    present = (count[:, None] > 1) & (query[None] >= t_first - 1e-9) & (query[None] <= t_last + 1e-9)
    out[present] = interp[present]
    single = count == 1  # a single sample: held everywhere, as recorded
    out[single] = states[np.flatnonzero(single), first[single]][:, None, :]
    present[single] = True
    return out, present, first_speed


def build_observation(scene: Scene, num_steps: int = 41, dt: float = 0.1, two_hz: bool = True) -> Observation:
    """Log-replay observation of the scene's agents and red on-route connectors over `num_steps` at `dt`."""
    agents = scene.agents
    idx, times = _sample_indices(scene, num_steps, dt, two_hz)
    query = np.arange(num_steps) * dt
    st = agents.states[:, idx][..., [AG_X, AG_Y, AG_HEADING, AG_VX, AG_VY]].copy()
    valid = agents.valid[:, idx]
    road_user = np.isin(agents.types, [int(AgentType.VEHICLE), int(AgentType.PEDESTRIAN), int(AgentType.BICYCLE)])
    st[~road_user, :, 3:] = 0.0  # NAVSIM keeps velocity only for AGENT_TYPES
    if len(agents):
        states, present, first_speed = interpolate_tracks(times, st, valid, query)
    else:
        states, present, first_speed = np.zeros((0, num_steps, 5)), np.zeros((0, num_steps), bool), np.zeros(0)
    # traffic lights: sample-and-hold over each 0.5 s frame (or per step with native 10 Hz)
    route_lanes = on_route_lane_ids(scene)
    hold = int(round((NAVSIM_SAMPLE_S if two_hz else dt) / dt))
    light_idx = scene.current_index + np.round((np.arange(num_steps) // hold) * hold * dt / scene.dt).astype(int)
    polys, masks = [], []
    for tl in scene.traffic_lights:
        red = tl.states[light_idx] == int(TrafficLightState.RED)
        if not red.any():
            continue
        for cid in tl.connector_ids:
            if cid in route_lanes:
                polys.append(scene.map.lanes[cid].polygon)
                masks.append(red)
    red_masks = np.array(masks, dtype=bool).reshape(len(masks), num_steps)
    return Observation(
        tuple(agents.ids),
        agents.types.copy(),
        agents.sizes.copy(),
        states,
        present,
        first_speed,
        tuple(polys),
        red_masks,
    )


def ego_footprint_overlaps(obs: Observation, ego_corners: np.ndarray, step: int = 0) -> np.ndarray:
    """Tracks (A,) whose box at `step` touches the ego box (4, 2): log replay drops them for the whole horizon."""
    from agent.boxes import boxes_overlap

    if len(obs.ids) == 0:
        return np.zeros(0, dtype=bool)
    st = obs.states[:, step] if obs.states.ndim == 3 else obs.states[0, :, step]  # (A, 5) at `step` only
    c = centre_boxes(st, obs.sizes[:, 0], obs.sizes[:, 1])
    # broad phase: only boxes whose axis-aligned extents meet the ego's (1 mm margin) get the separating-axis test
    lo, hi = ego_corners.min(axis=0) - 1e-3, ego_corners.max(axis=0) + 1e-3
    near = np.flatnonzero(((c.max(axis=1) >= lo) & (c.min(axis=1) <= hi)).all(axis=-1))
    hit = np.zeros(len(c), dtype=bool)
    if near.size:
        hit[near] = boxes_overlap(c[near], np.broadcast_to(ego_corners, c[near].shape))
    pres = obs.present[..., step] if obs.present.ndim == 2 else obs.present[0, :, step]
    return hit & pres
