"""The sub-metrics of NAVSIM v2.2's PDMScorer, vectorised over K simulated proposals (K, T, 11).

Semantics follow `pdm_scorer.py` / `pdm_scorer_utils.py`: per track, only the first contact decides (a track hit
without fault is ignored afterwards), TTC compares the ego projected 0/0.3/0.6/0.9 s ahead at step t with the agents at
step t + 3/6/9, and hits while the ego is below 5e-3 m/s are skipped without being remembered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely

from agent.boxes import FL, FR, corners, obb_overlap, segment_intersects_box
from navsim_eval.config import ScorerConfig
from navsim_eval.mapquery import MapQueries
from navsim_eval.observation import Observation
from navsim_eval.simulation import S_HEADING, S_VX, S_VY, S_X, S_Y
from sim.scene import EgoParams


@dataclass
class EgoFrames:
    """Ego geometry over time: corners (K, T, 4, 2), centre and rear axle (K, T, 2), speed (K, T)."""

    corners: np.ndarray
    centre: np.ndarray
    rear: np.ndarray
    heading: np.ndarray
    speed: np.ndarray

    @classmethod
    def from_states(cls, states: np.ndarray, params: EgoParams) -> EgoFrames:
        x, y, h = states[..., S_X], states[..., S_Y], states[..., S_HEADING]
        c = corners(x, y, h, params.front_length, params.rear_length, params.width / 2.0)
        d = params.rear_axle_to_center
        centre = np.stack([x + d * np.cos(h), y + d * np.sin(h)], axis=-1)
        speed = np.hypot(states[..., S_VX], states[..., S_VY])
        return cls(c, centre, np.stack([x, y], axis=-1), h, speed)


@dataclass
class EgoAreas:
    """NAVSIM's EgoAreaIndex flags per (K, T), plus the intersection tests the metrics need."""

    multiple_lanes: np.ndarray
    non_drivable: np.ndarray
    oncoming: np.ndarray
    centre_in_intersection: np.ndarray
    rear_in_intersection: np.ndarray


def ego_areas(ego: EgoFrames, mq: MapQueries) -> EgoAreas:
    """The area flags of every (k, t) from one polygon query of the 4 corners, the centre and the rear axle."""
    k, t = ego.centre.shape[:2]
    pts = np.concatenate([ego.corners, ego.centre[..., None, :], ego.rear[..., None, :]], axis=-2).reshape(-1, 2)
    hits = mq.contained(pts)  # point index = kt * 6 + which (0-3 corners, 4 centre, 5 rear axle)
    pi, li = hits["lane"]
    n_lanes = len(mq.lane_ids)
    kt, which = pi // 6, pi % 6
    corner = which < 4
    # per (kt, lane): number of corners inside
    counts = np.zeros((k * t, max(n_lanes, 1)), dtype=np.int8)
    np.add.at(counts, (kt[corner], li[corner]), 1)
    multi = ((counts > 0).sum(axis=1) > 1) & np.all(counts != 4, axis=1)
    on_route = np.zeros(k * t, dtype=bool)
    on_route[kt[(which == 4) & mq.on_route[li]]] = True
    # non-drivable: some corner in no drivable polygon
    di = np.unique(hits["drivable"][0])
    corners_in = np.zeros(k * t * 6, dtype=bool)
    corners_in[di] = True
    corners_in = corners_in.reshape(k * t, 6)[:, :4]
    inter = np.zeros(k * t * 6, dtype=bool)
    inter[hits["intersection"][0]] = True
    inter = inter.reshape(k, t, 6)
    return EgoAreas(
        multiple_lanes=multi.reshape(k, t),
        non_drivable=~corners_in.all(axis=-1).reshape(k, t),
        oncoming=~on_route.reshape(k, t),
        centre_in_intersection=inter[..., 4],
        rear_in_intersection=inter[..., 5],
    )


def drivable_area_compliance(areas: EgoAreas) -> np.ndarray:
    return np.where(areas.non_drivable.any(axis=1), 0.0, 1.0)


def driving_direction_compliance(ego: EgoFrames, areas: EgoAreas, cfg: ScorerConfig, dt: float) -> np.ndarray:
    step = np.zeros(ego.centre.shape[:2])
    step[:, 1:] = np.linalg.norm(np.diff(ego.centre, axis=1), axis=-1)
    step[~areas.oncoming | areas.centre_in_intersection] = 0.0
    horizon = int(cfg.driving_direction_horizon / dt)
    c = np.concatenate([np.zeros((step.shape[0], 1)), np.cumsum(step, axis=1)], axis=1)
    t = np.arange(step.shape[1])
    window = c[:, t + 1] - c[:, np.maximum(0, t - horizon)]
    worst = window.max(axis=1)
    return np.where(
        worst < cfg.driving_direction_compliance_threshold,
        1.0,
        np.where(worst < cfg.driving_direction_violation_threshold, 0.5, 0.0),
    )


def traffic_light_compliance(ego: EgoFrames, obs: Observation) -> np.ndarray:
    k, t = ego.centre.shape[:2]
    score = np.ones(k)
    if not obs.red_polygons:
        return score
    lo, hi = ego.corners.min(axis=-2), ego.corners.max(axis=-2)  # (K, T, 2)
    for poly, red in zip(obs.red_polygons, obs.red_masks):
        x0, y0, x1, y1 = poly.bounds
        cand = red[None, :] & (hi[..., 0] >= x0) & (lo[..., 0] <= x1) & (hi[..., 1] >= y0) & (lo[..., 1] <= y1)
        kk, tt = np.nonzero(cand & (score[:, None] > 0))
        if kk.size == 0:
            continue
        hit = shapely.intersects(shapely.polygons(ego.corners[kk, tt]), poly)
        score[np.unique(kk[hit])] = 0.0
    return score


def _relative_angle_deg(ego_xy: np.ndarray, ego_heading: np.ndarray, agent_xy: np.ndarray) -> np.ndarray:
    """nuPlan's get_agent_relative_angle in degrees (NaN when the points coincide)."""
    v = agent_xy - ego_xy
    n = np.linalg.norm(v, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dot = (np.cos(ego_heading) * v[..., 0] + np.sin(ego_heading) * v[..., 1]) / n
        return np.degrees(np.arccos(dot))


def _agent_arrays(obs: Observation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Agent centres, headings and present mask with a proposal axis ([1 or K], A, T, ...)."""
    states, present = obs.states, obs.present
    if states.ndim == 3:
        states, present = states[None], present[None]
    return states[..., :2], states[..., 2], present


_CHUNK_ELEMENTS = 2_000_000


def _candidate_hits(
    ego_centre: np.ndarray,
    ego_heading: np.ndarray,
    ego_half: tuple[float, float],
    ag_centre: np.ndarray,
    ag_heading: np.ndarray,
    ag_present: np.ndarray,
    ag_half: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (k, a, j) whose boxes touch, over every time slot j at once.

    ego: box centres (K, J, 2) and headings (K, J); agents: centres (Kb, A, J, 2), headings and present (Kb, A, J)
    with Kb in {1, K}; half lengths/widths. Broad phase: centre distance (float32, 1 cm margin) against the sum of
    bounding radii; narrow phase: the separating-axis test in float64. Chunked over K to bound memory.
    """
    k_n, j_n = ego_centre.shape[:2]
    a_n = ag_centre.shape[1]
    chunk = max(1, _CHUNK_ELEMENTS // max(a_n * j_n, 1))
    ego_r = math.hypot(*ego_half)
    reach = np.hypot(ag_half[0], ag_half[1]) + ego_r + 0.01
    reach2 = (reach**2).astype(np.float32)[:, None]  # (A, 1)
    shared = ag_centre.shape[0] == 1
    ego_c32 = ego_centre.astype(np.float32)
    ag_c32 = ag_centre.astype(np.float32)
    out_k, out_a, out_j = [], [], []
    for k0 in range(0, k_n, chunk):
        k1 = min(k_n, k0 + chunk)
        ac = ag_c32 if shared else ag_c32[k0:k1]
        ap = ag_present if shared else ag_present[k0:k1]
        dx = ego_c32[k0:k1, None, :, 0] - ac[..., 0]
        dy = ego_c32[k0:k1, None, :, 1] - ac[..., 1]
        near = (dx * dx + dy * dy <= reach2) & ap
        kk, aa, jj = np.nonzero(near)
        if kk.size == 0:
            continue
        kk = kk + k0
        kb = np.zeros_like(kk) if shared else kk
        hit = obb_overlap(
            ego_centre[kk, jj],
            ego_heading[kk, jj],
            ego_half[0],
            ego_half[1],
            ag_centre[kb, aa, jj],
            ag_heading[kb, aa, jj],
            ag_half[0][aa],
            ag_half[1][aa],
        )
        out_k.append(kk[hit])
        out_a.append(aa[hit])
        out_j.append(jj[hit])
    if not out_k:
        e = np.zeros(0, dtype=np.int64)
        return e, e, e
    return np.concatenate(out_k), np.concatenate(out_a), np.concatenate(out_j)


def _first_per_pair(kk: np.ndarray, aa: np.ndarray, order: np.ndarray, n_agents: int) -> np.ndarray:
    """Indices of the earliest hit (smallest `order`) of each (k, a) pair."""
    key = kk.astype(np.int64) * max(n_agents, 1) + aa
    srt = np.lexsort((order, key))
    first = np.ones(srt.size, dtype=bool)
    first[1:] = key[srt][1:] != key[srt][:-1]
    return srt[first]


def no_at_fault_collisions(
    ego: EgoFrames, areas: EgoAreas, obs: Observation, cfg: ScorerConfig, ego_params: EgoParams
) -> np.ndarray:
    k = ego.centre.shape[0]
    score = np.ones(k)
    if len(obs.ids) == 0:
        return score
    ag_xy, ag_h, present = _agent_arrays(obs)
    half = (obs.sizes[:, 0] / 2, obs.sizes[:, 1] / 2)
    ego_half = (ego_params.length / 2, ego_params.width / 2)
    kk, aa, tt = _candidate_hits(ego.centre, ego.heading, ego_half, ag_xy, ag_h, present, half)
    if kk.size == 0:
        return score
    first = _first_per_pair(kk, aa, tt, len(obs.ids))
    kk, aa, tt = kk[first], aa[first], tt[first]
    kb = kk if ag_xy.shape[0] > 1 else np.zeros_like(kk)
    stopped = obs.track_stopped(cfg.collision_stopped_speed_threshold)
    track_stopped = stopped[kb, aa] if stopped.ndim == 2 else stopped[aa]
    ego_stopped = ego.speed[kk, tt] <= cfg.collision_stopped_speed_threshold
    centroid = ag_xy[kb, aa, tt]
    behind = _relative_angle_deg(ego.rear[kk, tt], ego.heading[kk, tt], centroid) > cfg.behind_angle_deg
    track_box = corners(centroid[:, 0], centroid[:, 1], ag_h[kb, aa, tt], half[0][aa], half[0][aa], half[1][aa])
    front = segment_intersects_box(ego.corners[kk, tt, FL], ego.corners[kk, tt, FR], track_box)
    lateral_fault = areas.multiple_lanes[kk, tt] | areas.non_drivable[kk, tt]
    at_fault = ~ego_stopped & (track_stopped | (~behind & (front | lateral_fault)))
    value = np.where(obs.is_road_user[aa], 0.0, 0.5)
    np.minimum.at(score, kk[at_fault], value[at_fault])
    return score


def time_to_collision(
    ego: EgoFrames, areas: EgoAreas, obs: Observation, cfg: ScorerConfig, ego_params: EgoParams, dt: float
) -> np.ndarray:
    k, t_n = ego.centre.shape[:2]
    score = np.ones(k)
    if len(obs.ids) == 0:
        return score
    ag_xy, ag_h, present = _agent_arrays(obs)
    half = (obs.sizes[:, 0] / 2, obs.sizes[:, 1] / 2)
    offsets = np.arange(0, int(cfg.future_collision_horizon_window * 10), cfg.ttc_projection_stride)
    n_s = len(offsets)
    n_eval = (t_n - 1) - int(offsets.max())
    t_idx = np.arange(n_eval + 1)
    # slot j = t * n_s + s_index: ego at t moved ahead by speed * s * dt, agents at t + s
    shift = (np.stack([np.cos(ego.heading), np.sin(ego.heading)], axis=-1) * ego.speed[..., None])[:, t_idx]
    shift = (shift[:, :, None, :] * (offsets * dt)[None, None, :, None]).reshape(k, -1, 2)  # (K, J, 2)
    slot_t = np.repeat(t_idx, n_s)
    e_centre = ego.centre[:, slot_t] + shift

    ag_t = (t_idx[:, None] + offsets[None]).reshape(-1)
    moving = ego.speed[:, t_idx] >= cfg.stopped_speed_threshold  # (K, n_eval+1)
    ego_half = (ego_params.length / 2, ego_params.width / 2)
    kk, aa, jj = _candidate_hits(
        e_centre, ego.heading[:, slot_t], ego_half, ag_xy[:, :, ag_t], ag_h[:, :, ag_t], present[:, :, ag_t], half
    )
    tt, si = jj // n_s, jj % n_s
    keep = moving[kk, tt]
    kk, aa, jj, tt, si = kk[keep], aa[keep], jj[keep], tt[keep], si[keep]
    if kk.size == 0:
        return score
    first = _first_per_pair(kk, aa, jj, len(obs.ids))
    kk, aa, tt, si = kk[first], aa[first], tt[first], si[first]
    kb = kk if ag_xy.shape[0] > 1 else np.zeros_like(kk)
    centroid = ag_xy[kb, aa, tt + offsets[si]]
    angle = _relative_angle_deg(ego.rear[kk, tt], ego.heading[kk, tt], centroid)
    ahead = angle < cfg.ahead_angle_deg
    behind = angle > cfg.behind_angle_deg
    risky = areas.multiple_lanes[kk, tt] | areas.non_drivable[kk, tt] | areas.rear_in_intersection[kk, tt]
    fail = ahead | (risky & ~behind)
    score[kk[fail]] = 0.0
    return score


def progress_raw(ego: EgoFrames, mq: MapQueries) -> np.ndarray:
    """Raw progress (m): centreline arc length from the first to the last centre, never negative."""
    return progress_from(mq.project(ego.centre[:, [0, -1]])[0])


def progress_from(along: np.ndarray) -> np.ndarray:
    """`progress_raw` from the centres' arc lengths (K, T >= 2) along the centreline."""
    return np.clip(along[:, -1] - along[:, 0], 0.0, None)


def lane_keeping(ego: EgoFrames, areas: EgoAreas, mq: MapQueries, cfg: ScorerConfig, dt: float) -> np.ndarray:
    """LK from the ego centres (see `lane_keeping_from`)."""
    return lane_keeping_from(mq.project(ego.centre)[1], areas, cfg, dt)


def lane_keeping_from(dist: np.ndarray, areas: EgoAreas, cfg: ScorerConfig, dt: float) -> np.ndarray:
    """0 where the centre stays more than the deviation limit off the centreline for the horizon window in a row.

    dist: each centre's distance (K, T) to the centreline. Steps with the centre in an intersection neither count
    nor reset the run (they hold it), as the official per-step counter does; the run length is computed for all
    steps at once from cumulative counts.
    """
    skip = areas.centre_in_intersection
    exceed = (dist > cfg.lane_keeping_deviation_limit) & ~skip
    reset = ~(dist > cfg.lane_keeping_deviation_limit) & ~skip
    required = int(np.ceil(cfg.lane_keeping_horizon_window / dt))
    counted = np.cumsum(exceed, axis=1)
    at_reset = np.maximum.accumulate(np.where(reset, counted, 0), axis=1)
    failed = ((counted - at_reset) >= required).any(axis=1)
    return np.where(failed, 0.0, 1.0)
