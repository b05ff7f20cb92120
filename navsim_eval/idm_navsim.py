"""NAVSIM's reactive traffic as it runs in the official scorer (`NavsimIDMTrafficAgents` over nuPlan's IDM agents).

Read line by line from navsim `traffic_agents_policies/navsim_IDM_traffic_agents.py`,
`planning/simulation/observation/navsim_idm_agents.py`, `navsim_idm/*` and nuPlan's `observation/idm/*`:

- Only vehicles are simulated; every other type is replayed from the log (no overlap filtering). Frame 0 is the log.
- IDM vehicles: see `navsim_eval.idm_agents` (lane or connector under the centre, snap within 3 m, no overlap with the
  ego or an earlier snapped box). Their path is that one segment: the metric cache carries no traffic-light status, so
  `plan_route` never appends successors and no red stop line is ever inserted.
- Other vehicles present at t = 0 are kept, frozen at their t = 0 state, only when parked (speed < 0.1 m/s, centre in
  no lane and no intersection) or farther than the snap threshold from their segment, and clear of every IDM box at
  that frame; all others vanish. Vehicles absent at t = 0 never appear.
- Frame t >= 1: one update against the simulated ego state t - 1, whose box nuPlan centres on the rear axle. Agents
  farther than the radius from that point are dropped for good. In order, each agent looks for the geometry nearest
  (polygon distance from its own occupancy) among those touching its path-to-go corridor (half width, flat caps): the
  ego box, other agents' occupancy (the snapped box before their first update, then box plus the path ahead to
  length / 2 + speed x headway, clamped to the path), already moved for earlier agents. Leader speed is |v| cos of the
  heading difference (ego: rear-axle speed); with none, the path end stands at progress-to-go with rear length
  length / 2. IDM exponent 4, forward Euler, gap clamped at the minimum gap, acceleration clipped, speed >= 0.
- Geometry here is exact for straight segments; on curves the corridor and footprints are rectangles in the agent's
  local frame.
"""

from __future__ import annotations

import logging

import numpy as np

from agent.boxes import boxes_overlap, centre_boxes, corners
from navsim_eval.config import IDMTrafficConfig
from navsim_eval.idm_agents import IdmAgentSetup, sample_paths, setup_idm_agents
from navsim_eval.observation import Observation
from navsim_eval.simulation import S_HEADING, S_VX, S_X, S_Y
from sim.idm import NUPLAN_AGENT_IDM_EXPONENT, idm_acceleration
from sim.scene import AgentType, EgoParams, Scene

logger = logging.getLogger(__name__)


def _rect(pose: np.ndarray, lon_min, lon_max, half_w) -> np.ndarray:
    """Corners (..., 4, 2) of rectangles spanning [lon_min, lon_max] x [-half_w, half_w] in the frame of pose."""
    return corners(pose[..., 0], pose[..., 1], pose[..., 2], lon_max, -np.asarray(lon_min), half_w)


def _quads_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.broadcast_arrays(a, b)
    return boxes_overlap(a.reshape(-1, 4, 2), b.reshape(-1, 4, 2)).reshape(a.shape[:-2])


def _quads_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Polygon distance of convex quads (..., 4, 2): 0 when they touch, else the least corner-to-edge distance."""
    a, b = np.broadcast_arrays(a, b)
    out = np.full(a.shape[:-2], np.inf)
    for p, q in ((a, b), (b, a)):
        q0 = q
        q1 = np.roll(q, -1, axis=-2)
        e = q1 - q0  # (..., 4, 2)
        rel = p[..., :, None, :] - q0[..., None, :, :]  # (..., 4 corners, 4 edges, 2)
        t = np.clip((rel * e[..., None, :, :]).sum(-1) / np.maximum((e * e).sum(-1)[..., None, :], 1e-12), 0, 1)
        d = np.hypot(*np.moveaxis(rel - t[..., None] * e[..., None, :, :], -1, 0))
        out = np.minimum(out, d.min(axis=(-1, -2)))
    return np.where(_quads_overlap(a, b), 0.0, out)


def _setup(
    scene: Scene, obs: Observation, ego_box: np.ndarray, cfg: IDMTrafficConfig, memo: dict | None = None
) -> IdmAgentSetup:
    """`setup_idm_agents`, memoised in the caller's `memo` by scene content (it does not depend on the proposals)."""
    key = (
        "_idm_setup",
        scene.token,
        scene.current_index,
        cfg.target_velocity,
        cfg.idm_snap_threshold,
        obs.ids,
        hash((obs.states[:, 0].tobytes(), obs.present[:, 0].tobytes(), ego_box.tobytes())),
    )
    store = {} if memo is None else memo
    if key not in store:
        store[key] = setup_idm_agents(scene, obs, ego_box, cfg.target_velocity, cfg.idm_snap_threshold)
    return store[key]


def idm_reactive_navsim(
    scene: Scene,
    obs: Observation,
    ego_states: np.ndarray,
    params: EgoParams,
    config: IDMTrafficConfig | None = None,
    dt: float = 0.1,
    memo: dict | None = None,
) -> Observation:
    """Reactive traffic for each of K simulated ego rollouts (K, T, 11): an observation with a leading K axis.

    As `NavsimIDMTrafficAgents`: frame 0 is the log; non-vehicles are replayed; at frame t >= 1 the IDM vehicles
    (`setup_idm_agents`) have been stepped once against the ego state t - 1, whose box nuPlan centres on the rear
    axle; vehicles IDM does not drive appear held at their t = 0 state only when parked off the lanes or farther than
    the snap threshold from their lane and clear of every IDM vehicle, else not at all.
    """
    cfg = config or IDMTrafficConfig()
    k, t_n = ego_states.shape[:2]
    states = np.broadcast_to(obs.states, (k,) + obs.states.shape).copy()
    present = np.broadcast_to(obs.present, (k,) + obs.present.shape).copy()
    vehicle = obs.types == int(AgentType.VEHICLE)
    present[:, vehicle, 1:] = False  # vehicles exist only as IDM agents or parked additions
    if not vehicle.any():
        return Observation(
            obs.ids, obs.types, obs.sizes, states, present, obs.first_speed, obs.red_polygons, obs.red_masks
        )
    ego0 = ego_states[0, 0]
    d_c = params.rear_axle_to_center
    centre0 = np.array(
        [ego0[S_X] + d_c * np.cos(ego0[S_HEADING]), ego0[S_Y] + d_c * np.sin(ego0[S_HEADING]), ego0[S_HEADING]]
    )
    setup = _setup(scene, obs, centre_boxes(centre0, params.length, params.width), cfg, memo)
    ctrl = setup.controlled
    n = ctrl.size
    hl = obs.sizes[ctrl, 0] / 2
    hw = obs.sizes[ctrl, 1] / 2
    ends = np.array([c[-1] for c in setup.cums])
    s = np.broadcast_to(setup.progress0, (k, n)).copy()
    v = np.broadcast_to(setup.speed0, (k, n)).copy()
    active = np.ones((k, n), dtype=bool)
    pose = sample_paths(setup, s) if n else np.zeros((k, 0, 3))
    # occupancy geometry per agent: the snapped box until its first update, then its projected footprint
    occ = np.broadcast_to(_rect(setup.snapped, -hl, hl, hw), (k, n, 4, 2)).copy()
    parked = np.flatnonzero(
        vehicle & obs.present[:, 0] & (setup.stationary_off_lane | (setup.deviation > cfg.idm_snap_threshold))
    )
    parked = parked[np.isfinite(setup.deviation[parked]) | setup.stationary_off_lane[parked]]
    parked_boxes = centre_boxes(obs.states[parked, 0], obs.sizes[parked, 0], obs.sizes[parked, 1])
    ar = np.arange(k)
    idx = np.arange(n)
    max_decel = max(cfg.accel_max, cfg.decel_max)

    def _update(cols: np.ndarray, gap: np.ndarray, v_lead: np.ndarray) -> None:
        """nuPlan's forward Euler IDM step of agents `cols` against leaders at gap / v_lead (K, c); then the new
        pose and projected footprint (box plus the path ahead up to length/2 + speed x headway, clamped)."""
        vi = v[:, cols]
        acc = idm_acceleration(
            vi, setup.target[cols], gap, v_lead, accel_max=cfg.accel_max, decel=cfg.decel_max,
            min_gap=cfg.min_gap_to_lead_agent, headway=cfg.headway_time, gap_floor=cfg.min_gap_to_lead_agent,
            exponent=NUPLAN_AGENT_IDM_EXPONENT,
        )  # fmt: skip
        acc = np.clip(acc, -cfg.decel_max, cfg.accel_max)
        upd = active[:, cols]
        s[:, cols] = np.where(upd, s[:, cols] + dt * vi, s[:, cols])
        v[:, cols] = np.where(upd, np.maximum(vi + dt * acc, 0.0), vi)
        pose[:, cols] = np.where(upd[..., None], sample_paths(setup, s[:, cols], cols), pose[:, cols])
        sc = np.clip(s[:, cols], 0.0, ends[cols])
        front = np.clip(s[:, cols] + hl[cols] + v[:, cols] * cfg.headway_time, 0.0, ends[cols]) - sc
        foot = _rect(pose[:, cols], -hl[cols], np.maximum(front, hl[cols]), hw[cols])
        occ[:, cols] = np.where(upd[..., None, None], foot, occ[:, cols])

    def _step(t: int, ego_box: np.ndarray, ego_speed: np.ndarray, ego_heading: np.ndarray) -> None:
        """One `propagate_agents` call: agents in order, each against the geometry of the others as it stands
        (already moved for earlier agents). Agents whose corridor nothing can reach this step, even after the
        others move, take the free-road case together; the rest go one by one."""
        occ_old, pose_old, v_old = occ.copy(), pose.copy(), v.copy()
        ok_all = np.concatenate([active, np.ones((k, 1), bool)], axis=1)
        cand = np.concatenate([occ, ego_box[:, None]], axis=1)
        sc = np.clip(s, 0.0, ends)
        lon, lat = _local(cand[:, None], pose[:, :, None])  # (K, n, n+1, 4)
        m = dt * (float(v.max()) + 1.5 * max_decel) + 0.1
        maybe = ok_all[:, None, :] & (lon.max(-1) >= -m) & (lon.min(-1) <= (ends - sc)[..., None] + m)
        maybe &= (lat.max(-1) >= -hw[None, :, None] - m) & (lat.min(-1) <= hw[None, :, None] + m)
        maybe[:, idx, idx] = False
        # agent i must see the moved geometry of every earlier agent j < i that can reach its corridor: process the
        # agents in dependency levels, each level vectorised (within a level nobody depends on another)
        dep = maybe.any(axis=0)[:, :n] & (idx[None, :] < idx[:, None])
        level = np.zeros(n, dtype=np.int64)
        for i in np.flatnonzero(dep.any(axis=1)):
            level[i] = level[dep[i]].max() + 1
        for lv in range(int(level.max()) + 1 if n else 0):
            group = np.flatnonzero(level == lv)
            dist = np.full((k, group.size), np.inf)
            lead = np.full((k, group.size), n)
            kk, li, jj = np.nonzero(maybe[:, group])
            if kk.size:
                ii = group[li]
                is_ag = jj < n
                jn = np.minimum(jj, n - 1)
                geom = np.where(((jj < ii) & is_ag)[:, None, None], occ[kk, jn], occ_old[kk, jn])
                geom = np.where(is_ag[:, None, None], geom, ego_box[kk])
                own = pose[kk, ii]
                room = ends[ii] - np.clip(s[kk, ii], 0.0, ends[ii])
                lon, lat = _local(geom, own)
                hit = (lon.max(-1) >= -1e-9) & (lon.min(-1) <= room + 1e-9)
                hit &= (lat.max(-1) >= -hw[ii] - 1e-9) & (lat.min(-1) <= hw[ii] + 1e-9)
                hit &= _quads_overlap(_rect(own, 0.0, room, hw[ii]), geom)
                kk, li, jj, geom, ii = kk[hit], li[hit], jj[hit], geom[hit], ii[hit]
                d = _quads_distance(occ[kk, ii], geom)
                np.minimum.at(dist, (kk, li), d)
                win = d <= dist[kk, li]
                order = np.argsort(-jj[win], kind="stable")  # ties: the lowest index wins (written last)
                lead[kk[win][order], li[win][order]] = jj[win][order]
            has = np.isfinite(dist)
            is_ag = lead < n
            ln = np.minimum(lead, n - 1)
            moved = ln < group[None, :]
            lead_h = np.where(
                is_ag, np.where(moved, pose[ar[:, None], ln, 2], pose_old[ar[:, None], ln, 2]), ego_heading[:, None]
            )
            lead_spd = np.where(is_ag, np.where(moved, v[ar[:, None], ln], v_old[ar[:, None], ln]), ego_speed[:, None])
            v_lead = np.where(has, lead_spd * np.cos(lead_h - pose[:, group, 2]), 0.0)
            gap = np.where(has, dist, ends[group] - s[:, group] - hl[group])
            _update(group, gap, v_lead)

    for t in range(1, t_n):
        e = ego_states[:, t - 1]
        ego_pose = np.stack([e[:, S_X], e[:, S_Y], e[:, S_HEADING]], -1)  # nuPlan centres this box on the rear axle
        ego_box = _rect(ego_pose, -params.length / 2, params.length / 2, params.width / 2)
        ego_speed = np.hypot(e[:, S_VX], e[:, S_VX + 1])
        if n:
            active &= np.hypot(pose[..., 0] - e[:, None, S_X], pose[..., 1] - e[:, None, S_Y]) <= cfg.radius
            _step(t, ego_box, ego_speed, e[:, S_HEADING])
        if n:
            states[:, ctrl, t, :3] = pose
            states[:, ctrl, t, 3] = v * np.cos(pose[..., 2])
            states[:, ctrl, t, 4] = v * np.sin(pose[..., 2])
            present[:, ctrl, t] = active
        if parked.size:
            clear = np.ones((k, parked.size), dtype=bool)
            if n:
                boxes = _rect(pose, -hl, hl, hw)  # (K, n, 4, 2)
                hit = _quads_overlap(parked_boxes[None, :, None], boxes[:, None]) & active[:, None]
                clear = ~hit.any(axis=-1)
            states[:, parked, t] = obs.states[parked, 0]
            present[:, parked, t] = clear
    return Observation(obs.ids, obs.types, obs.sizes, states, present, obs.first_speed, obs.red_polygons, obs.red_masks)


def _local(points: np.ndarray, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longitudinal and lateral coordinates of points (..., 4, 2) in the frames of poses (..., 3)."""
    rel = points - pose[..., None, :2]
    c, sn = np.cos(pose[..., 2])[..., None], np.sin(pose[..., 2])[..., None]
    return rel[..., 0] * c + rel[..., 1] * sn, rel[..., 1] * c - rel[..., 0] * sn
