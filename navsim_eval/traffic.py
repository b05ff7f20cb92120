"""Background traffic for scoring: non-reactive log replay and reactive IDM vehicles, batched over proposals.

Log replay copies `LogReplayTrafficAgents`: the observation as cached, minus every track whose box touches the ego
footprint at t = 0. Reactive traffic follows `navsim_IDM_traffic_agents.yaml` (target 10 m/s, gap 1 m, headway 1.5 s,
a_max 1.0, d_max 2.0, 100 m radius): moving vehicles within the radius are driven by IDM along a path, every other
object (pedestrians, static objects, parked vehicles) is replayed open-loop. As nuPlan's `IDMAgent.propagate`, the
desired speed is the speed limit of the agent's lane (the configured 10 m/s only where there is none), and as
`IDMAgentManager`, the stop lines of red connectors on the agent's own path are obstacles at 0 m/s; the update is
nuPlan's forward Euler step with the gap clamped at the minimum gap. Deliberate difference: NAVSIM's IDM agents
follow lane-graph paths from the map; ours follow their own logged path (extended straight past its end), which keeps
them in lane without map routing and makes them react only in speed, as IDM does.
"""

from __future__ import annotations

import logging

import numpy as np
import shapely
from shapely.geometry import LineString

from agent.boxes import corners
from navsim_eval.config import IDMTrafficConfig
from navsim_eval.observation import Observation, ego_footprint_overlaps
from navsim_eval.simulation import S_HEADING, S_VX, S_X, S_Y
from sim.idm import NUPLAN_AGENT_IDM_EXPONENT, idm_acceleration
from sim.scene import AG_X, AG_Y, AgentType, EgoParams, Scene, TrafficLightState

logger = logging.getLogger(__name__)


def ego_corners_at(state: np.ndarray, params: EgoParams) -> np.ndarray:
    return corners(state[S_X], state[S_Y], state[S_HEADING], params.front_length, params.rear_length, params.width / 2)


def log_replay(obs: Observation, initial_state: np.ndarray, params: EgoParams) -> Observation:
    """Non-reactive traffic: drop tracks overlapping the ego at t = 0, replay the rest."""
    overlap = ego_footprint_overlaps(obs, ego_corners_at(initial_state, params), 0)
    if overlap.any():
        logger.debug("log replay drops %d tracks overlapping the ego at t=0", int(overlap.sum()))
    return obs.subset(~overlap)


def _agent_paths(scene: Scene, obs: Observation, idx: np.ndarray, extend: float = 200.0) -> list[np.ndarray]:
    """Each IDM vehicle's path: its logged centre positions from now on, extended straight ahead past the log end."""
    paths = []
    ids = {a: i for i, a in enumerate(scene.agents.ids)}
    for a in idx:
        src = ids[obs.ids[a]]
        valid = np.flatnonzero(scene.agents.valid[src, scene.current_index :]) + scene.current_index
        pts = scene.agents.states[src, valid][:, [AG_X, AG_Y]]
        start = obs.states[a, 0, :2]
        pts = np.concatenate([start[None], pts], axis=0)
        keep = np.concatenate([[True], np.hypot(*np.diff(pts, axis=0).T) > 0.05])
        pts = pts[keep]
        h = obs.states[a, 0, 2] if len(pts) < 2 else np.arctan2(*(pts[-1] - pts[-2])[::-1])
        end = pts[-1] + extend * np.array([np.cos(h), np.sin(h)])
        paths.append(np.concatenate([pts, end[None]], axis=0))
    return paths


def _target_speeds(scene: Scene, obs: Observation, idx: np.ndarray, fallback: float) -> np.ndarray:
    """Each IDM vehicle's desired speed: its lane's speed limit (nuPlan overrides the configured target with it)."""
    out = np.full(len(idx), fallback)
    for j, a in enumerate(idx):
        x, y, h = obs.states[a, 0, :3]
        try:
            limit = scene.map.lanes[scene.map.nearest_lane(float(x), float(y), float(h))].speed_limit
        except ValueError:  # no lane with a compatible heading nearby
            continue
        if limit > 0.0:
            out[j] = limit
    return out


def _red_stops(scene: Scene, paths: list[np.ndarray], num_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Per IDM vehicle: arc length (n,) where its path first enters the stop line of a signalised connector it
    drives through (inf if none), and whether that connector is red at each step (n, T).

    A connector counts as the vehicle's own when both ends of its centreline lie within 1 m of the vehicle's path;
    its stop line is the one whose lanes feed the connector (`IDMAgentManager._get_relevant_stop_lines`).
    """
    n = len(paths)
    stop_s = np.full(n, np.inf)
    red = np.zeros((n, num_steps), dtype=bool)
    if not scene.traffic_lights or not scene.map.stop_lines:
        return stop_s, red
    steps = np.minimum(scene.current_index + np.arange(num_steps), scene.num_steps - 1)
    lines = list(scene.map.stop_lines.values())
    for j, p in enumerate(paths):
        path = LineString(p)
        seg = np.hypot(*np.diff(p, axis=0).T)
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        dense_s = np.arange(0.0, cum[-1], 0.25)
        dense = np.stack([np.interp(dense_s, cum, p[:, 0]), np.interp(dense_s, cum, p[:, 1])], axis=-1)
        for tl in scene.traffic_lights:
            is_red = np.asarray(tl.states)[steps] == int(TrafficLightState.RED)
            if not is_red.any():
                continue
            for cid in tl.connector_ids:
                lane = scene.map.lanes.get(cid)
                if lane is None:
                    continue
                ends = shapely.points(lane.centerline[[0, -1]])
                if not (shapely.distance(path, ends) < 1.0).all():
                    continue
                for area in lines:
                    if not set(area.lane_ids) & set(lane.predecessors):
                        continue
                    inside = shapely.contains_xy(area.polygon, dense[:, 0], dense[:, 1])
                    if inside.any() and dense_s[int(np.argmax(inside))] < stop_s[j]:
                        stop_s[j] = dense_s[int(np.argmax(inside))]
                        red[j] = is_red
    return stop_s, red


def _agent_rules(
    scene: Scene,
    obs: Observation,
    idx: np.ndarray,
    paths: list[np.ndarray],
    fallback: float,
    num_steps: int,
    memo: dict | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Desired speeds and red stop lines of the IDM vehicles, memoised in the caller's `memo` (a `SceneCache`'s) by
    scene content: they do not depend on the proposals, and the map queries cost more than the IDM rollout itself."""
    key = (
        "_idm_rules",
        scene.token,
        scene.current_index,
        num_steps,
        fallback,
        tuple(obs.ids[a] for a in idx),
        hash((scene.agents.states.tobytes(), tuple(np.asarray(tl.states).tobytes() for tl in scene.traffic_lights))),
    )
    store = {} if memo is None else memo
    if key not in store:
        store[key] = (_target_speeds(scene, obs, idx, fallback), *_red_stops(scene, paths, num_steps))
    return store[key]


def _sample_paths(paths: list[np.ndarray], s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions (K, N, 2) and headings (K, N) at arc lengths s (K, N) along each of the N paths."""
    xy = np.empty(s.shape + (2,))
    hd = np.empty(s.shape)
    for j, p in enumerate(paths):
        seg = np.diff(p, axis=0)
        cum = np.concatenate([[0.0], np.cumsum(np.hypot(seg[:, 0], seg[:, 1]))])
        i = np.clip(np.searchsorted(cum, s[:, j], side="right") - 1, 0, len(seg) - 1)
        w = (s[:, j] - cum[i]) / np.maximum(cum[i + 1] - cum[i], 1e-12)
        xy[:, j] = p[i] + w[:, None] * seg[i]
        hd[:, j] = np.arctan2(seg[i, 1], seg[i, 0])
    return xy, hd


def idm_reactive(
    scene: Scene,
    obs: Observation,
    ego_states: np.ndarray,
    params: EgoParams,
    config: IDMTrafficConfig | None = None,
    dt: float = 0.1,
    memo: dict | None = None,
) -> Observation:
    """Reactive traffic for each of K simulated ego rollouts (K, T, 11): an observation with a leading K axis.

    `config.model == "navsim"` runs the official policy's algorithm (`navsim_eval.idm_navsim`) instead. `memo`: a
    per-scene dict (`SceneCache.memo`) for what does not depend on the proposals; None recomputes it.
    """
    cfg = config or IDMTrafficConfig()
    if cfg.model == "navsim":
        from navsim_eval.idm_navsim import idm_reactive_navsim

        return idm_reactive_navsim(scene, obs, ego_states, params, cfg, dt, memo)
    k, t_n = ego_states.shape[:2]
    a_n = len(obs.ids)
    states = np.broadcast_to(obs.states, (k,) + obs.states.shape).copy()
    present = np.broadcast_to(obs.present, (k,) + obs.present.shape).copy()
    if a_n == 0:
        return Observation(
            obs.ids, obs.types, obs.sizes, states, present, obs.first_speed, obs.red_polygons, obs.red_masks
        )
    ego0 = ego_states[0, 0]
    speed0 = np.hypot(obs.states[:, 0, 3], obs.states[:, 0, 4])
    dist0 = np.hypot(obs.states[:, 0, 0] - ego0[S_X], obs.states[:, 0, 1] - ego0[S_Y])
    ctrl = np.flatnonzero(
        (obs.types == int(AgentType.VEHICLE))
        & obs.present[:, 0]
        & (speed0 > cfg.parked_speed_threshold)
        & (dist0 <= cfg.radius)
    )
    if ctrl.size == 0:
        return Observation(
            obs.ids, obs.types, obs.sizes, states, present, obs.first_speed, obs.red_polygons, obs.red_masks
        )
    paths = _agent_paths(scene, obs, ctrl)
    n = ctrl.size
    target, stop_s, stop_red = _agent_rules(scene, obs, ctrl, paths, cfg.target_velocity, t_n, memo)
    s = np.zeros((k, n))
    v = np.broadcast_to(speed0[ctrl], (k, n)).copy()
    half_l = obs.sizes[ctrl, 0] / 2
    half_w = obs.sizes[ctrl, 1] / 2
    all_half_l = obs.sizes[:, 0] / 2
    all_half_w = obs.sizes[:, 1] / 2
    ego_half_l = params.length / 2
    ego_half_w = params.width / 2
    d_centre = params.rear_axle_to_center
    xy, hd = _sample_paths(paths, s)
    for t in range(t_n):
        states[:, ctrl, t, 0:2] = xy
        states[:, ctrl, t, 2] = hd
        states[:, ctrl, t, 3] = v * np.cos(hd)
        states[:, ctrl, t, 4] = v * np.sin(hd)
        present[:, ctrl, t] = True
        if t == t_n - 1:
            break
        # candidates: every track (open-loop or IDM) and the ego, in each controlled vehicle's frame
        e = ego_states[:, t]
        ego_xy = np.stack(
            [e[:, S_X] + d_centre * np.cos(e[:, S_HEADING]), e[:, S_Y] + d_centre * np.sin(e[:, S_HEADING])], -1
        )
        cand_xy = np.concatenate([states[:, :, t, :2], ego_xy[:, None]], axis=1)  # (K, A+1, 2)
        cand_v = np.concatenate(
            [
                states[:, :, t, 3:5],
                (e[:, S_VX, None] * np.stack([np.cos(e[:, S_HEADING]), np.sin(e[:, S_HEADING])], -1))[:, None],
            ],
            axis=1,
        )
        cand_ok = np.concatenate([present[:, :, t], np.ones((k, 1), bool)], axis=1)
        cand_hl = np.concatenate([all_half_l, [ego_half_l]])
        cand_hw = np.concatenate([all_half_w, [ego_half_w]])
        c, sn = np.cos(hd), np.sin(hd)  # (K, n)
        rel = cand_xy[:, None, :, :] - xy[:, :, None, :]  # (K, n, A+1, 2)
        lon = rel[..., 0] * c[..., None] + rel[..., 1] * sn[..., None]
        lat = -rel[..., 0] * sn[..., None] + rel[..., 1] * c[..., None]
        gap = lon - half_l[None, :, None] - cand_hl[None, None, :]
        lead = (
            cand_ok[:, None, :]
            & (lon > 0)
            & (np.abs(lat) < half_w[None, :, None] + cand_hw[None, None, :] + cfg.lead_lateral_margin)
        )
        lead[:, np.arange(n), ctrl] = False  # not itself
        gap = np.where(lead, gap, np.inf)
        j = np.argmin(gap, axis=-1)  # (K, n)
        g = np.take_along_axis(gap, j[..., None], -1)[..., 0]
        lead_v = cand_v[np.arange(k)[:, None], j]  # (K, n, 2)
        v_lead = lead_v[..., 0] * c + lead_v[..., 1] * sn
        # a red stop line still ahead of the vehicle's centre is a standing obstacle at the line
        to_line = stop_s[None, :] - s
        line_gap = np.where(stop_red[None, :, t] & (to_line > 0), np.maximum(to_line - half_l[None, :], 0.0), np.inf)
        at_line = line_gap < g
        g = np.where(at_line, line_gap, g)
        v_lead = np.where(at_line, 0.0, v_lead)
        acc = idm_acceleration(
            v, target[None, :], g, v_lead, accel_max=cfg.accel_max, decel=cfg.decel_max,
            min_gap=cfg.min_gap_to_lead_agent, headway=cfg.headway_time, gap_floor=cfg.min_gap_to_lead_agent,
            exponent=NUPLAN_AGENT_IDM_EXPONENT,
        )  # fmt: skip
        acc = np.clip(acc, -cfg.decel_max, cfg.accel_max)
        s = s + v * dt  # forward Euler as `solve_forward_euler_idm_policy`: progress with the old speed
        v = np.maximum(v + acc * dt, 0.0)
        xy, hd = _sample_paths(paths, s)
    return Observation(obs.ids, obs.types, obs.sizes, states, present, obs.first_speed, obs.red_polygons, obs.red_masks)
