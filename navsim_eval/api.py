"""`score_proposals`: NAVSIM v2.2 EPDMS of K candidate plans on one scene, in one batched call.

Pipeline per call (as `pdm_score.py`, but all K proposals at once): interpolate the (K, 8, 3) rear-axle plans to 41
states, simulate them with the LQR tracker and bicycle model, move background traffic (log replay, or IDM reacting to
each proposal), score the eight per-frame sub-metrics, normalise EP against the PDM-Closed reference, apply the human
filter on original (stage-one) scenes, add EC when the previous frame's simulated states are given, and aggregate.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np

from agent import geometry
from agent.epdms_metrics import DAC, DDC, EC, EP, HC, LK, NC, TLC, TTC, epdms_from_table
from navsim_eval.aggregate import apply_human_filter
from navsim_eval.cache import SceneCache
from navsim_eval.comfort import history_comfort, two_frame_extended_comfort
from navsim_eval.config import METRIC_NAMES, EpdmsConfig
from navsim_eval.mapquery import MapQueries
from navsim_eval.observation import Observation
from navsim_eval.scorer import FrameScores, normalise_progress, score_states
from navsim_eval.simulation import interpolate_plans, simulate
from navsim_eval.traffic import idm_reactive
from sim.scene import EgoParams, Scene

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


def _traffic(cache: SceneCache, states: np.ndarray) -> Observation:
    config, scene = cache.config, cache.scene
    if config.reactive:
        return idm_reactive(
            scene, cache.observation, states, scene.ego_params, config.traffic, config.simulation.interval, cache.memo
        )
    return cache.observation


def _ref_multiplicative(
    ref: np.ndarray, traffic: Observation, mq: MapQueries, config: EpdmsConfig, params: EgoParams, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reference raw progress x multipliers, against the traffic each proposal produced ((K,) when reactive)."""
    sc, dt = config.scorer, config.simulation.interval
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
    cache: SceneCache | None = None,
) -> EpdmsResult:
    """Score K plans (K, 8, 3) — poses at 0.5 s .. 4 s in the current rear-axle frame — on one scene.

    previous: the simulated states (41, 11) or (K, 41, 11) of the frame 0.5 s earlier (or its EpdmsResult with one
    proposal or K), for EC; None leaves EC NaN. stage_one: apply the human filter (default: unless the scene's
    metadata marks it synthetic). cache: the scene's `SceneCache` (build it once and pass it to every call on the
    scene; it also carries a given reference and centreline); None builds a throw-away one (config from the cache
    when config is None).
    """
    if cache is None:
        config = config or EpdmsConfig()
        cache = SceneCache.build(scene, config)
    else:
        config = config or cache.config
        cache.check(scene, config)
    return score_cache(cache, proposals, previous, stage_one)


def score_cache(
    cache: SceneCache,
    proposals,
    previous: np.ndarray | EpdmsResult | None = None,
    stage_one: bool | None = None,
) -> EpdmsResult:
    """`score_proposals` on a prepared `SceneCache`, which holds everything the scorer reads: a scene's, or a NAVSIM
    metric cache's (`navsim_eval.metric_cache.cache_from_metric_cache`, no scene at all)."""
    config = cache.config
    sc, sim_cfg = config.scorer, config.simulation
    plans = validate_proposals(proposals, int(round(sim_cfg.num_poses * sim_cfg.interval / sim_cfg.plan_interval)))
    k = plans.shape[0]
    dt = sim_cfg.interval
    params = cache.ego_params
    init = cache.init
    apply_filter = sc.human_penalty_filter and (stage_one if stage_one is not None else not cache.synthetic)

    # one simulation for the proposals and whatever the cache still lacks (human, reference)
    need_ref = cache.reference_states is None
    need_human = apply_filter and "human" not in cache.memo
    if need_human and cache.human_plan is None:
        raise ValueError(f"token {cache.token}: the human filter needs the logged human trajectory, which is missing")
    local = [plans]
    if need_human:
        local.append(cache.human_plan[None])
    poses = interpolate_plans(np.concatenate(local) if need_human else plans, init[:3], sim_cfg)
    if need_ref:  # order: proposals, human, reference
        poses = np.concatenate([poses, cache.reference_plan[None, :, :3]])
    simulated = simulate(poses, init, sim_cfg, params.wheelbase)
    states = simulated[:k]
    human_states = simulated[k] if need_human else None
    if need_ref:
        cache.reference_states = simulated[-1]
    ref = cache.reference_states

    if config.reactive:
        if cache.scene is None:
            raise ValueError(
                f"token {cache.token}: reactive traffic needs the scene's map and logs; a metric cache has neither"
            )
        traffic = _traffic(cache, states)
        fs = score_states(states, traffic, cache.map_queries, sc, params, dt, history=cache.history)
        ref_best, _ = _ref_multiplicative(ref, traffic, cache.map_queries, config, params, k)
        if need_human:
            cache.get("human", lambda: _human_scores(cache, human_states))
    else:
        fs, ref_best = _score_log_replay(cache, states, human_states)
    ep = normalise_progress(
        fs.progress, fs.multiplicative, ref_best, sc.progress_distance_threshold, sc.ep_normalisation
    )
    table = _table(fs, ep)

    human_row = None
    if apply_filter:
        human_row = cache.memo["human"]
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
        token=cache.token,
        table=table,
        epdms=aggregate_epdms(table, config),
        states=states,
        reference_states=ref,
        reference_plan=cache.reference_plan,
        end_points=ends,
        start_pose=init[:3].copy(),
        timestamp=cache.timestamp,
        human=human_row,
        centre_offset=params.rear_axle_to_center,
    )


def _score_log_replay(
    cache: SceneCache, states: np.ndarray, human_states: np.ndarray | None
) -> tuple[FrameScores, np.ndarray]:
    """Score the proposals (K, T, 11) under log replay, with the reference and the human in the same batch.

    Against log replay the traffic does not depend on the proposal, so the rows the cache still lacks (the
    reference's progress x multipliers, the human filter's row) are scored in ONE `score_states` call with the
    proposals (a cold token pays one pass over the metrics, not three). HC needs the ego history and applies to the
    proposals only; the human's HC is 1 (scored without history, as `pdm_score` scores it alone).
    """
    config, mq, obs = cache.config, cache.map_queries, cache.observation
    sc, params, dt = config.scorer, cache.ego_params, config.simulation.interval
    k = states.shape[0]
    rows = [states]
    need_ref = "ref_best" not in cache.memo
    if need_ref:
        rows.append(cache.reference_states[None])
    if human_states is not None:
        rows.append(human_states[None])
    batch = np.concatenate(rows) if len(rows) > 1 else states
    fs = score_states(batch, obs, mq, sc, params, dt, history=None)
    i = k
    if need_ref:
        cache.memo["ref_best"] = (fs.progress[i : i + 1] * fs.multiplicative[i : i + 1], fs.multiplicative[i : i + 1])
        i += 1
    if human_states is not None:
        human = _take(fs, slice(i, i + 1))
        ep = normalise_progress(human.progress, human.multiplicative, 0.0, sc.progress_distance_threshold, "pair")
        cache.memo["human"] = _table(human, ep)[0]
    out = _take(fs, slice(0, k))
    out.hc = history_comfort(states, cache.history, sc, params.rear_axle_to_center)
    return out, cache.memo["ref_best"][0]


def _take(fs: FrameScores, rows: slice) -> FrameScores:
    return FrameScores(*(None if v is None else v[rows] for v in (getattr(fs, f.name) for f in dataclasses.fields(fs))))


def _human_scores(cache: SceneCache, states: np.ndarray) -> np.ndarray:
    """The logged human plan scored like a proposal (same traffic policy, no history, so HC = 1).

    `pdm_score.py` scores the human alone, without the PDM-Closed reference, so its EP is normalised by its own
    masked progress and is never 0: a human who waits while the reference drives must not filter the agent's EP.
    """
    scene, config = cache.scene, cache.config
    sc, sim_cfg, params = config.scorer, config.simulation, scene.ego_params
    states = states[None]  # the human plan's simulation (41, 11)
    traffic = _traffic(cache, states)
    fs = score_states(states, traffic, cache.map_queries, sc, params, sim_cfg.interval, history=None)
    ep = normalise_progress(fs.progress, fs.multiplicative, 0.0, sc.progress_distance_threshold, "pair")
    return _table(fs, ep)[0]
