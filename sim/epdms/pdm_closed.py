"""PDM-Closed, the reference planner of NAVSIM's metric cache, used to normalise ego progress (EP).

Structure as in `pdm_closed_planner.py` with the metric cache's parameters: centreline proposals at lateral offsets
0, -1 and +1 m, each driven by IDM at 0.2 .. 1.0 of the speed limit (fallback 15 m/s, gap 1 m, headway 1.5 s,
a_max 1.5, d_max 3.0) behind the leading object in a constant-velocity forecast of the current tracks and in front of
red on-route connectors; the 15 proposals are simulated with the LQR tracker and bicycle model, scored with the same
scorer (without EC), and the best one is the reference. Simplifications: the centreline is the scene route's (NAVSIM
builds it by a Dijkstra search over route roadblocks), and there is no emergency-brake fallback.
"""

from __future__ import annotations

import logging

import numpy as np
import shapely

from sim.epdms.config import EpdmsConfig, PDMClosedConfig
from sim.epdms.mapquery import MapQueries
from sim.epdms.observation import Observation
from sim.epdms.simulation import S_HEADING, S_VX, S_X, S_Y, simulate
from sim.scene import Scene

logger = logging.getLogger(__name__)


def constant_velocity_forecast(obs: Observation, dt: float = 0.1) -> Observation:
    """PDM-Closed's own forecast: every track present now moves on at its current velocity."""
    st0 = obs.states[:, 0]
    t = np.arange(obs.num_steps) * dt
    states = np.repeat(st0[:, None], obs.num_steps, axis=1)
    states[:, :, 0] += st0[:, None, 3] * t[None]
    states[:, :, 1] += st0[:, None, 4] * t[None]
    present = np.repeat(obs.present[:, :1], obs.num_steps, axis=1)
    return Observation(obs.ids, obs.types, obs.sizes, states, present, obs.first_speed, obs.red_polygons, obs.red_masks)


def _speed_limit(scene: Scene, mq: MapQueries, xy: np.ndarray, fallback: float) -> float:
    pi, li = mq.lane_membership(xy[None])
    route = [mq.lane_ids[j] for j in li if mq.on_route[j]]
    lane_id = route[0] if route else (mq.lane_ids[li[0]] if li.size else None)
    if lane_id is None:
        return fallback
    return float(scene.map.lanes[lane_id].speed_limit)


def _path_points(line: np.ndarray, arclen: np.ndarray, s: np.ndarray, offset: float) -> np.ndarray:
    i = np.clip(np.searchsorted(arclen, s, side="right") - 1, 0, len(line) - 2)
    seg = line[i + 1] - line[i]
    seg_len = np.maximum(np.hypot(seg[..., 0], seg[..., 1]), 1e-12)
    w = np.clip((s - arclen[i]) / seg_len, 0.0, None)
    h = np.arctan2(seg[..., 1], seg[..., 0])
    x = line[i, 0] + w * seg[..., 0] - offset * np.sin(h)
    y = line[i, 1] + w * seg[..., 1] + offset * np.cos(h)
    return np.stack([x, y, h], axis=-1)


def _leading_distance(
    line: np.ndarray,
    arclen: np.ndarray,
    s0: float,
    offset: float,
    obs: Observation,
    step: int,
    half_width: float,
    front: float,
) -> tuple[float, float]:
    """Free distance from the ego front to the first object on the offset path at `step`, and that object's speed."""
    ahead = s0 + np.arange(0.0, 80.0, 0.5)
    pts = _path_points(line, arclen, ahead, offset)
    best, best_v = np.inf, 0.0
    if len(obs.ids):
        st = obs.states[:, step]
        ok = obs.present[:, step]
        for a in np.flatnonzero(ok):
            rel = st[a, :2] - pts[:, :2]
            c, s = np.cos(pts[:, 2]), np.sin(pts[:, 2])
            lat = -rel[:, 0] * s + rel[:, 1] * c
            lon = rel[:, 0] * c + rel[:, 1] * s
            near = (np.abs(lat) < half_width + obs.sizes[a, 1] / 2) & (np.abs(lon) < 0.5)
            if near.any():
                d = ahead[np.argmax(near)] - s0 - front - obs.sizes[a, 0] / 2
                if d < best:
                    best, best_v = d, float(np.hypot(st[a, 3], st[a, 4]))
    for poly, red in zip(obs.red_polygons, obs.red_masks):
        if not red[step]:
            continue
        inside = shapely.contains_xy(poly, pts[:, 0], pts[:, 1])
        if inside.any():
            d = ahead[np.argmax(inside)] - s0 - front
            if d < best:
                best, best_v = d, 0.0
    return best, best_v


def idm_profiles(
    v0: float, targets: np.ndarray, lead_gap: float, lead_speed: float, cfg: PDMClosedConfig, steps: int, dt: float
) -> np.ndarray:
    """Arc-length progress (P, steps+1) of IDM rollouts for each target speed behind a constant-speed leader."""
    p = len(targets)
    s = np.zeros((p, steps + 1))
    v = np.full(p, v0)
    gap = np.full(p, lead_gap)
    b_term = 2.0 * np.sqrt(cfg.accel_max * cfg.decel_max)
    for t in range(steps):
        if np.isfinite(lead_gap):
            s_star = cfg.min_gap_to_lead_agent + v * cfg.headway_time + v * (v - lead_speed) / b_term
            inter = (np.maximum(s_star, 0.0) / np.maximum(gap, 1e-3)) ** 2
        else:
            inter = 0.0
        acc = cfg.accel_max * (1.0 - (v / targets) ** cfg.idm_exponent - inter)
        acc = np.clip(acc, -cfg.decel_max, cfg.accel_max)
        v_new = np.maximum(v + acc * dt, 0.0)
        ds = 0.5 * (v + v_new) * dt
        s[:, t + 1] = s[:, t] + ds
        gap = gap - ds + lead_speed * dt
        v = v_new
    return s


def pdm_closed_reference(scene: Scene, obs: Observation, init: np.ndarray, config: EpdmsConfig, score_fn) -> np.ndarray:
    """The reference simulated states (T, 11). `score_fn(states, obs) -> pdm_score (P,)` ranks the 15 proposals."""
    cfg = config.pdm_closed
    sim_cfg = config.simulation
    mq = MapQueries.of(scene)
    steps = sim_cfg.num_poses
    dt = sim_cfg.interval
    forecast = constant_velocity_forecast(obs, dt)
    line, arclen = mq.line, mq.arclength
    s0, _ = mq.project(init[None, :2])
    s0 = float(s0[0])
    limit = _speed_limit(scene, mq, init[:2], cfg.fallback_target_velocity)
    targets = np.asarray(cfg.speed_limit_fractions) * limit
    params = scene.ego_params
    offsets = (0.0, *cfg.lateral_offsets)
    refs = []
    for off in offsets:
        gap, lead_v = _leading_distance(line, arclen, s0, off, forecast, 0, params.width / 2, params.front_length)
        prog = idm_profiles(max(float(init[S_VX]), 0.0), targets, gap, lead_v, cfg, steps, dt)
        refs.append(_path_points(line, arclen, s0 + prog, off))
    refs = np.concatenate(refs, axis=0)
    # the first pose is the current ego pose, as PDM-Closed's proposals start from the ego state
    refs[:, 0] = init[[S_X, S_Y, S_HEADING]]
    states = simulate(refs, init, sim_cfg, params.wheelbase)
    scores = score_fn(states, forecast)
    best = int(np.argmax(scores))
    logger.debug("PDM-Closed picks proposal %d of %d (score %.3f)", best, len(scores), scores[best])
    return states[best]
