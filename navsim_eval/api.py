"""`score_proposals`: NAVSIM v2.2 EPDMS of K candidate plans on one scene, in one batched call.

Pipeline per call (as `pdm_score.py`, but all K proposals at once): interpolate the (K, 8, 3) rear-axle plans to 41
states, simulate them with the LQR tracker and bicycle model, move background traffic (log replay, or IDM reacting to
each proposal), score the eight per-frame sub-metrics, normalise EP against the PDM-Closed reference, apply the human
filter on original (stage-one) scenes, add EC when the previous frame's simulated states are given, and aggregate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from agent import geometry
from agent.epdms_metrics import DAC, DDC, EC, EP, HC, LK, NC, TLC, TTC, epdms_from_table
from navsim_eval.aggregate import apply_human_filter
from navsim_eval.comfort import history_states, two_frame_extended_comfort
from navsim_eval.config import METRIC_NAMES, EpdmsConfig
from navsim_eval.mapquery import MapQueries
from navsim_eval.observation import Observation, build_observation
from navsim_eval.pdm_closed import pdm_closed_reference
from navsim_eval.scorer import FrameScores, normalise_progress, pdm_score, score_states
from navsim_eval.simulation import initial_state_from_scene, interpolate_plans, simulate
from navsim_eval.traffic import idm_reactive, log_replay
from sim.scene import Scene

logger = logging.getLogger(__name__)


@dataclass
class EpdmsResult:
    """K x 9 sub-score table (columns `METRIC_NAMES`), EPDMS per proposal, and what later stages need.

    `states` (K, 41, 11) are the simulated states (the next frame's EC compares against them); `end_points` (K, 3)
    are the raw last plan poses in world coordinates and `start_pose` the ego rear axle, for two-stage weights.
    EC is NaN where no previous frame was given; EPDMS then uses the remaining weights (denominator 14).
    """

    token: str
    table: np.ndarray
    epdms: np.ndarray
    states: np.ndarray
    reference_states: np.ndarray
    end_points: np.ndarray
    start_pose: np.ndarray
    timestamp: float = 0.0
    human: np.ndarray | None = None
    reference_plan: np.ndarray | None = None  # PDM-Closed's IDM trajectory (the metric cache's), unsimulated
    centre_offset: float = 1.461  # rear axle to box centre (m), for comfort features
    columns: tuple[str, ...] = field(default=METRIC_NAMES)

    def __post_init__(self) -> None:
        k = self.table.shape[0]
        if self.table.shape != (k, len(self.columns)):
            raise ValueError(f"EpdmsResult.table: expected ({k}, {len(self.columns)}), got {self.table.shape}")
        if self.epdms.shape != (k,) or self.states.shape[0] != k or self.end_points.shape != (k, 3):
            raise ValueError("EpdmsResult: epdms, states and end_points must have one entry per proposal")

    def __len__(self) -> int:
        return int(self.table.shape[0])

    @property
    def multiplicative(self) -> np.ndarray:
        return np.prod(self.table[:, :4], axis=1)

    def structured(self) -> np.ndarray:
        """The table plus `score` as a numpy structured array (one record per proposal)."""
        dtype = [(c, "f8") for c in self.columns] + [("score", "f8")]
        out = np.empty(len(self), dtype=dtype)
        for i, c in enumerate(self.columns):
            out[c] = self.table[:, i]
        out["score"] = self.epdms
        return out

    def row(self, i: int) -> dict[str, float]:
        return {**{c: float(self.table[i, j]) for j, c in enumerate(self.columns)}, "score": float(self.epdms[i])}


def aggregate_epdms(table: np.ndarray, config: EpdmsConfig | None = None) -> np.ndarray:
    """EPDMS from a K x 9 table: NC*DAC*DDC*TLC x weighted mean of EP, TTC, LK, HC and EC (EC dropped where NaN)."""
    return epdms_from_table(table, (config or EpdmsConfig()).scorer.weights)


def validate_proposals(proposals, num_poses: int = 8) -> np.ndarray:
    arr = np.asarray(proposals, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (num_poses, 3) or arr.shape[0] < 1:
        raise ValueError(f"proposals must have shape (K, {num_poses}, 3) (x, y, heading), got {arr.shape}")
    bad = ~np.isfinite(arr).all(axis=(1, 2))
    if bad.any():
        raise ValueError(
            f"proposals contain NaN or infinite values (proposal indices {np.flatnonzero(bad)[:10].tolist()})"
        )
    return arr


def _check_scene(scene: Scene) -> None:
    if not isinstance(scene, Scene):
        raise TypeError(f"scene must be a sim.scene.Scene, got {type(scene).__name__}")
    if not scene.map.lanes or not scene.map.roadblocks:
        raise ValueError(f"scene {scene.token}: has no map (no lanes or roadblocks)")
    if scene.route is None or not scene.route.lane_ids:
        raise ValueError(f"scene {scene.token}: has no route")


def _cached(scene: Scene, name: str, config: EpdmsConfig, compute):
    """Per-scene memo for everything that does not depend on the proposals (reference, human row).

    Stored on the scene's map object, keyed by the token, current index, ego log, agents, lights, route and config,
    so repeated calls on one scene (many proposal batches, RL) pay for the reference planner and the human filter
    once, while scenes sharing one map (what-if variants) or edited in place never see each other's results.
    """
    content = (
        scene.ego.tobytes(),
        scene.agents.states.tobytes(),
        scene.agents.valid.tobytes(),
        scene.agents.types.tobytes(),
        scene.agents.sizes.tobytes(),
        tuple((tl.id, tl.connector_ids, np.asarray(tl.states).tobytes()) for tl in scene.traffic_lights),
        scene.route.lane_ids,
        scene.route.centerline.tobytes(),
    )
    key = ("_epdms", name, scene.token, scene.current_index, hash(content), hash(config))
    store = scene.map.__dict__.setdefault("_epdms_memo", {})
    if key not in store:
        store[key] = compute()
    return store[key]


def _reference(scene: Scene, obs: Observation, init: np.ndarray, config: EpdmsConfig) -> tuple[np.ndarray, np.ndarray]:
    """PDM-Closed's IDM trajectory (41, 11; what the metric cache stores) and its simulation, which is scored."""
    return _cached(scene, "reference", config, lambda: _compute_reference(scene, obs, init, config))


def _compute_reference(
    scene: Scene, obs: Observation, init: np.ndarray, config: EpdmsConfig
) -> tuple[np.ndarray, np.ndarray]:
    mq = MapQueries.of(scene, config.scorer.drivable_map_radius)
    sc = config.scorer
    params = scene.ego_params
    dt = config.simulation.interval

    def rank(states: np.ndarray, forecast: Observation) -> np.ndarray:
        fs = score_states(states, forecast, mq, sc, params, dt)
        ep = normalise_progress(fs.progress, fs.multiplicative, 0.0, sc.progress_distance_threshold, "batch")
        return pdm_score(fs, sc, ep)

    best = pdm_closed_reference(scene, obs, init, config, rank)
    return best, simulate(best[None, :, :3], init, config.simulation, params.wheelbase)[0]


def _traffic(scene: Scene, obs: Observation, states: np.ndarray, config: EpdmsConfig) -> Observation:
    if config.reactive:
        return idm_reactive(scene, obs, states, scene.ego_params, config.traffic, config.simulation.interval)
    return obs


def _ref_multiplicative(
    ref: np.ndarray, traffic: Observation, mq: MapQueries, config: EpdmsConfig, scene: Scene, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reference raw progress x multipliers, against the traffic each proposal produced ((K,) when reactive)."""
    sc, params, dt = config.scorer, scene.ego_params, config.simulation.interval
    if traffic.states.ndim == 4 and traffic.states.shape[0] > 1:
        fs = score_states(np.repeat(ref[None], k, axis=0), traffic, mq, sc, params, dt, multiplicative_only=True)
    else:
        fs = score_states(ref[None], traffic, mq, sc, params, dt, multiplicative_only=True)
    return fs.progress * fs.multiplicative, fs.multiplicative


def _table(fs: FrameScores, ep: np.ndarray) -> np.ndarray:
    t = np.full((len(fs.nc), 9), np.nan)
    t[:, NC], t[:, DAC], t[:, DDC], t[:, TLC] = fs.nc, fs.dac, fs.ddc, fs.tlc
    t[:, EP], t[:, TTC], t[:, LK], t[:, HC] = ep, fs.ttc, fs.lk, fs.hc
    return t


def score_proposals(
    scene: Scene,
    proposals,
    config: EpdmsConfig | None = None,
    previous: np.ndarray | EpdmsResult | None = None,
    stage_one: bool | None = None,
) -> EpdmsResult:
    """Score K plans (K, 8, 3) — poses at 0.5 s .. 4 s in the current rear-axle frame — on one scene.

    previous: the simulated states (41, 11) or (K, 41, 11) of the frame 0.5 s earlier (or its EpdmsResult with one
    proposal or K), for EC; None leaves EC NaN. stage_one: apply the human filter (default: unless the scene's
    metadata marks it synthetic).
    """
    config = config or EpdmsConfig()
    _check_scene(scene)
    sc, sim_cfg = config.scorer, config.simulation
    plans = validate_proposals(proposals, int(round(sim_cfg.num_poses * sim_cfg.interval / sim_cfg.plan_interval)))
    k = plans.shape[0]
    dt = sim_cfg.interval
    params = scene.ego_params
    mq = MapQueries.of(scene, sc.drivable_map_radius)
    init = initial_state_from_scene(scene)
    obs, history = _cached(
        scene,
        "observation",
        config,
        lambda: (
            log_replay(build_observation(scene, sim_cfg.num_poses + 1, dt, sc.navsim_2hz_agents), init, params),
            history_states(scene, sc, dt),
        ),
    )
    ref_plan, ref = _reference(scene, obs, init, config)

    states = simulate(interpolate_plans(plans, init[:3], sim_cfg), init, sim_cfg, params.wheelbase)
    traffic = _traffic(scene, obs, states, config)
    fs = score_states(states, traffic, mq, sc, params, dt, history=history)
    if config.reactive:
        ref_best, _ = _ref_multiplicative(ref, traffic, mq, config, scene, k)
    else:
        ref_best, _ = _cached(
            scene, "ref_best", config, lambda: _ref_multiplicative(ref, traffic, mq, config, scene, 1)
        )
    ep = normalise_progress(
        fs.progress, fs.multiplicative, ref_best, sc.progress_distance_threshold, sc.ep_normalisation
    )
    table = _table(fs, ep)

    synthetic = bool(scene.metadata.get("synthetic", False)) if isinstance(scene.metadata, dict) else False
    apply_filter = sc.human_penalty_filter and (stage_one if stage_one is not None else not synthetic)
    human_row = None
    if apply_filter:
        human_row = _cached(scene, "human", config, lambda: _human_scores(scene, obs, init, config, mq))
        table = apply_human_filter(table, human_row)

    if previous is not None:
        prev = previous.states if isinstance(previous, EpdmsResult) else np.asarray(previous, dtype=np.float64)
        if prev.ndim == 2:
            prev = prev[None]
        if prev.shape[1:] != states.shape[1:] or prev.shape[0] not in (1, k):
            raise ValueError(
                f"previous states must have shape (41, 11), (1, 41, 11) or ({k}, 41, 11), got {prev.shape}"
            )
        table[:, EC] = two_frame_extended_comfort(states, prev, sc, params.rear_axle_to_center, dt)

    ends = geometry.relative_to_absolute(init[:3], plans[:, -1:, :])[:, 0]
    return EpdmsResult(
        token=scene.token,
        table=table,
        epdms=aggregate_epdms(table, config),
        states=states,
        reference_states=ref,
        reference_plan=ref_plan,
        end_points=ends,
        start_pose=init[:3].copy(),
        timestamp=float(scene.timestamps[scene.current_index]),
        human=human_row,
        centre_offset=params.rear_axle_to_center,
    )


def _human_scores(scene: Scene, obs: Observation, init: np.ndarray, config: EpdmsConfig, mq: MapQueries) -> np.ndarray:
    """The logged human plan scored like a proposal (same traffic policy, no history, so HC = 1).

    `pdm_score.py` scores the human alone, without the PDM-Closed reference, so its EP is normalised by its own
    masked progress and is never 0: a human who waits while the reference drives must not filter the agent's EP.
    """
    sc, sim_cfg, params = config.scorer, config.simulation, scene.ego_params
    human = scene.human_trajectory(8, sim_cfg.plan_interval)
    states = simulate(interpolate_plans(human[None], init[:3], sim_cfg), init, sim_cfg, params.wheelbase)
    traffic = _traffic(scene, obs, states, config)
    fs = score_states(states, traffic, mq, sc, params, sim_cfg.interval, history=None)
    ep = normalise_progress(fs.progress, fs.multiplicative, 0.0, sc.progress_distance_threshold, "pair")
    return _table(fs, ep)[0]
