"""PDM-Closed, the reference planner of NAVSIM's metric cache, used to normalise ego progress (EP).

Follows navsim's `PDMClosedPlanner` as `MetricCacheProcessor` runs it (one planning step at t = 0):
- Paths: PDM's Dijkstra centreline (`MapQueries.centerline`) and its parallels at -1 and +1 m.
- Forecast (`PDMObservation`): objects present at t = 0 whose centre lies within `map_radius` of the ego centre.
  Road users move on along their heading (flipped if they drive backwards) at their speed; everything else stands.
  Positions are updated every `observation_sample_res` steps and held in between. Red on-route connectors are
  obstacles for the whole horizon, with their state at t = 0. Objects the ego overlaps at t = 0 are "collided" and
  ignored, and so is a red connector that contains the ego.
- Unroll (`PDMGenerator` + `BatchIDMPolicy`): per path, 5 IDM policies at 0.2 .. 1.0 of the starting lane's speed
  limit. Forward Euler, acceleration exponent 10, acceleration clipped to [-d_max, a_max], speed unclamped.
  - Leader: re-read every `leading_agent_update_rate` steps and held in between. Step 1 holds the zero-initialised
    row, which clamps the gap to the 1 m minimum.
  - Candidates: objects of the forecast that meet the corridor (the path from the ego's progress over max target
    speed x 5 s, buffered by half the ego width with square caps) and whose centroid projects ahead of the proposal.
  - The nearest by polygon distance from the ego box at the previous pose is the leader. Its speed is |v| cos(heading
    difference), or 0 for static objects and red lights.
  - With nothing ahead, the path end stands with half the ego length as rear length.
- The 15 proposals (path-major, policy-minor) are simulated, scored by `score_fn` (the PDM scorer without EC), and the
  best one's IDM poses are the reference (what the metric cache stores; `pdm_score` simulates them once more).
There is no emergency brake in `PDMClosedPlanner`, so there is none here. The route-roadblock correction is skipped:
our routes start at the ego's roadblock.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import shapely

from agent.boxes import centre_boxes, corners
from navsim_eval.config import EpdmsConfig, PDMClosedConfig
from navsim_eval.mapquery import DiscretePath, MapQueries, ego_box_centre
from navsim_eval.observation import Observation
from navsim_eval.simulation import S_HEADING, S_VX, S_X, S_Y, STATE_DIM, simulate
from sim.idm import idm_acceleration
from sim.scene import AgentType, EgoParams, Scene

logger = logging.getLogger(__name__)


def _wrap(a):
    a = np.asarray(a)
    return np.arctan2(np.sin(a), np.cos(a))  # navsim's normalize_angle


@dataclass
class PlannerObservation:
    """`PDMObservation` after its update at t = 0, as arrays over the kept objects (A) and red connectors (R)."""

    obs: Observation  # the kept, non-collided objects as a scorer observation (piecewise-constant forecast)
    boxes: np.ndarray  # (A, 4, 2) corners at t = 0
    dxy: np.ndarray  # (A, 2) forecast velocity
    speed: np.ndarray  # (A,) |v| at t = 0
    heading: np.ndarray  # (A,) heading at t = 0
    road_user: np.ndarray  # (A,) bool: dynamic objects
    red_polygons: list  # red on-route connectors at t = 0 that do not contain the ego
    sample_res: int
    dt: float

    def polygons(self, t: int) -> np.ndarray:
        """Object boxes then red connectors at step t (positions of the forecast sample t // res * res)."""
        shift = (t // self.sample_res) * self.sample_res * self.dt
        objs = shapely.polygons(self.boxes + shift * self.dxy[:, None, :]) if len(self.boxes) else []
        return np.array([*objs, *self.red_polygons], dtype=object)


def planner_observation(
    obs: Observation, scene: Scene, init: np.ndarray, cfg: PDMClosedConfig, dt: float
) -> PlannerObservation:
    """PDM-Closed's own view of the tracks at t = 0 (see the module docstring)."""
    st0 = obs.states[:, 0]
    centre = ego_box_centre(scene)
    keep = obs.present[:, 0] & (np.hypot(st0[:, 0] - centre[0], st0[:, 1] - centre[1]) <= cfg.map_radius)
    road_user = obs.is_road_user
    speed = np.hypot(st0[:, 3], st0[:, 4])
    forward = np.abs(_wrap(st0[:, 2] - np.arctan2(st0[:, 4], st0[:, 3]))) < np.pi / 2
    track_heading = np.where(forward, st0[:, 2], _wrap(st0[:, 2] + np.pi))
    dxy = np.where(road_user[:, None], speed[:, None] * np.stack([np.cos(track_heading), np.sin(track_heading)], -1), 0)
    boxes = centre_boxes(st0, obs.sizes[:, 0], obs.sizes[:, 1])
    p = scene.ego_params
    ego = shapely.Polygon(corners(init[S_X], init[S_Y], init[S_HEADING], p.front_length, p.rear_length, p.width / 2))
    collided = np.zeros(len(keep), dtype=bool)
    if keep.any():
        collided[keep] = shapely.intersects(ego, shapely.polygons(boxes[keep]))
    keep &= ~collided
    red = [poly for poly, mask in zip(obs.red_polygons, obs.red_masks) if mask[0] and not ego.within(poly)]
    red_all = [poly for poly, mask in zip(obs.red_polygons, obs.red_masks) if mask[0]]
    # PDMObjectManager lists static objects, then vehicles, pedestrians and bicycles, each nearest first
    dist = np.hypot(st0[:, 0] - centre[0], st0[:, 1] - centre[1])
    rank = np.select(
        [obs.types == int(t) for t in (AgentType.VEHICLE, AgentType.PEDESTRIAN, AgentType.BICYCLE)], [1, 2, 3], 0
    )
    order = np.lexsort((dist, rank))
    idx = order[keep[order]]
    t_n = obs.num_steps
    steps = (np.arange(t_n) // cfg.observation_sample_res) * cfg.observation_sample_res * dt
    states = np.repeat(st0[idx, None], t_n, axis=1)
    states[:, :, :2] += steps[None, :, None] * dxy[idx, None, :]
    states[:, :, 3:5] = dxy[idx, None, :]
    red_masks = np.repeat(obs.red_masks[obs.red_masks[:, 0], :1], t_n, axis=1)  # the state at t = 0 throughout
    view = Observation(
        tuple(obs.ids[i] for i in idx),
        obs.types[idx],
        obs.sizes[idx],
        states,
        np.ones((len(idx), t_n), dtype=bool),
        obs.first_speed[idx],
        tuple(red_all),
        red_masks,
    )
    return PlannerObservation(
        view, boxes[idx], dxy[idx], speed[idx], st0[idx, 2], road_user[idx], red, cfg.observation_sample_res, dt
    )


def _ego_boxes(poses: np.ndarray, params: EgoParams) -> np.ndarray:
    c = corners(poses[:, 0], poses[:, 1], poses[:, 2], params.front_length, params.rear_length, params.width / 2)
    return shapely.polygons(c)


def leading_objects(
    po: PlannerObservation,
    t: int,
    path: DiscretePath,
    corridor,
    progress: np.ndarray,
    poses: np.ndarray,
    params: EgoParams,
) -> np.ndarray:
    """(P, 3) leader progress, projected speed and rear length at step t for proposals at `progress`/`poses` (t-1)."""
    n_red = len(po.red_polygons)
    dynamic = np.r_[po.road_user, np.zeros(n_red, dtype=bool)]
    red = np.r_[np.zeros(len(po.road_user), dtype=bool), np.ones(n_red, dtype=bool)]
    speed = np.r_[po.speed, np.zeros(n_red)]
    heading = np.r_[po.heading, np.zeros(n_red)]
    return _nearest_ahead(po.polygons(t), dynamic, red, speed, heading, path, corridor, progress, poses, params)


def _nearest_ahead(polys, dynamic, red, speed, heading, path, corridor, progress, poses, params) -> np.ndarray:
    """The generator's per-proposal leader loop. Like `PDMGenerator._update_leading_agents` it fills ONE row that
    carries over between the proposals of a path: free driving leaves the speed of an earlier proposal's leader, a
    leader leaves the rear length of an earlier free proposal, and a red light leaves the speed as well."""
    out = np.zeros((len(progress), 3))
    row = np.zeros(3)
    hit = np.flatnonzero(shapely.intersects(corridor, polys)) if len(polys) else np.zeros(0, int)
    obj_s = path.project(shapely.get_coordinates(shapely.centroid(polys[hit]))) if hit.size else np.zeros(0)
    ego = _ego_boxes(poses, params) if hit.size else None
    for p in range(len(progress)):
        ahead = hit[obj_s > progress[p]]
        if ahead.size:
            d = shapely.distance(ego[p], polys[ahead])
            j = int(ahead[int(np.argmin(d))])
            row[0] = progress[p] + float(d.min())
            if not red[j]:
                row[1] = float(speed[j] * math.cos(float(_wrap(heading[j] - poses[p, 2])))) if dynamic[j] else 0.0
        else:  # nothing ahead: the path end, with half the ego length as rear length
            row[0] = path.length
            row[2] = params.length / 2
        out[p] = row
    return out


def constant_velocity_forecast(obs: Observation, dt: float = 0.1) -> Observation:
    """Every track present now moves on at its current velocity vector (a plain forecast; PDM-Closed itself uses
    `planner_observation`, which moves road users along their heading)."""
    st0 = obs.states[:, 0]
    t = np.arange(obs.num_steps) * dt
    states = np.repeat(st0[:, None], obs.num_steps, axis=1)
    states[:, :, 0] += st0[:, None, 3] * t[None]
    states[:, :, 1] += st0[:, None, 4] * t[None]
    present = np.repeat(obs.present[:, :1], obs.num_steps, axis=1)
    return Observation(obs.ids, obs.types, obs.sizes, states, present, obs.first_speed, obs.red_polygons, obs.red_masks)


def _leaders(forecast, boxes, road_user, t, corridor, centre_line, line, arclen, x, offset, params) -> np.ndarray:
    """The leader search on a given forecast at step t (kept for tests written against the forecast directly).

    `line` is the path (offset by `offset` m); `centre_line` and `arclen` are accepted for the old call signature.
    """
    seg = np.arctan2(np.diff(line[:, 1]), np.diff(line[:, 0]))
    path = DiscretePath.of(np.column_stack([line, np.r_[seg, seg[-1]]]))
    if offset:
        path = path.offset(offset)
    t_obs = min(t, forecast.num_steps - 1)
    present = np.flatnonzero(forecast.present[:, t_obs])
    st = forecast.states[present, t_obs]
    red = [poly for poly, m in zip(forecast.red_polygons, forecast.red_masks) if m[t_obs]]
    polys = np.array([*shapely.polygons(boxes[present, t_obs]), *red], dtype=object)
    dynamic = np.r_[road_user[present], np.zeros(len(red), dtype=bool)]
    is_red = np.r_[np.zeros(len(present), dtype=bool), np.ones(len(red), dtype=bool)]
    speed = np.r_[np.hypot(st[:, 3], st[:, 4]), np.zeros(len(red))]
    heading = np.r_[st[:, 2], np.zeros(len(red))]
    poses = path.interpolate(np.asarray(x, dtype=np.float64))
    x = np.asarray(x, dtype=np.float64)
    return _nearest_ahead(polys, dynamic, is_red, speed, heading, path, corridor, x, poses, params)


def idm_unroll(
    path: DiscretePath,
    po: PlannerObservation,
    init: np.ndarray,
    targets: np.ndarray,
    cfg: PDMClosedConfig,
    params: EgoParams,
    steps: int,
    dt: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Poses (P, steps+1, 3) and speeds (P, steps+1) of the IDM policies `targets` along one path."""
    n = len(targets)
    s0 = float(path.project(init[None, [S_X, S_Y]])[0])
    x = np.full(n, s0)
    v = np.full(n, float(init[S_VX]))
    poses = np.zeros((n, steps + 1, 3))
    poses[:, 0] = path.interpolate(np.array([s0]))[0]
    speeds = np.zeros((n, steps + 1))
    speeds[:, 0] = v
    horizon = int(round(cfg.horizon_s / dt))
    corridor = shapely.buffer(
        path.substring(s0, s0 + abs(float(np.max(targets))) * horizon * dt), params.width / 2, cap_style="square"
    )
    lead = np.zeros((n, 3))
    for t in range(1, steps + 1):
        if t % cfg.leading_agent_update_rate == 0:
            lead = leading_objects(po, t, path, corridor, x, poses[:, t - 1], params)
        acc = idm_acceleration(
            v, targets, lead[:, 0] - x - lead[:, 2], lead[:, 1], accel_max=cfg.accel_max, decel=cfg.decel_max,
            min_gap=cfg.min_gap_to_lead_agent, headway=cfg.headway_time, gap_floor=cfg.min_gap_to_lead_agent,
            exponent=cfg.idm_exponent,
        )  # fmt: skip
        acc = np.clip(acc, -cfg.decel_max, cfg.accel_max)
        x, v = x + dt * v, v + dt * acc
        poses[:, t] = path.interpolate(x)
        speeds[:, t] = v
    return poses, speeds


def pdm_closed_reference(
    scene: Scene, obs: Observation, init: np.ndarray, config: EpdmsConfig, score_fn, mq: MapQueries | None = None
) -> np.ndarray:
    """PDM-Closed's trajectory (T, 11): the best proposal's IDM poses (and IDM speed), before any simulation.

    `score_fn(states, obs) -> pdm_score (P,)` ranks the simulated proposals against the planner's own forecast; `mq`
    the scene's map queries (built when not given).
    """
    cfg = config.pdm_closed
    sim_cfg = config.simulation
    params = scene.ego_params
    mq = mq or MapQueries(scene, config.scorer.drivable_map_radius)
    steps, dt = sim_cfg.num_poses, sim_cfg.interval
    po = planner_observation(obs, scene, init, cfg, dt)
    limit = float(scene.map.lanes[mq.starting_lane].speed_limit)
    targets = np.asarray(cfg.speed_limit_fractions) * limit
    paths = [mq.centerline, *(mq.centerline.offset(off) for off in cfg.lateral_offsets)]
    unrolled = [idm_unroll(path, po, init, targets, cfg, params, steps, dt) for path in paths]
    refs = np.concatenate([u[0] for u in unrolled], axis=0)
    speeds = np.concatenate([u[1] for u in unrolled], axis=0)
    states = simulate(refs, init, sim_cfg, params.wheelbase)
    scores = score_fn(states, po.obs)
    best = int(np.argmax(scores))
    logger.debug("PDM-Closed picks proposal %d of %d (score %.3f)", best, len(scores), scores[best])
    plan = np.zeros((steps + 1, STATE_DIM))
    plan[:, [S_X, S_Y, S_HEADING]] = refs[best]
    plan[:, S_VX] = speeds[best]
    return plan
