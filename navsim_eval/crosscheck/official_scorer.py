"""Score plans with the unmodified official NAVSIM v2.2 scorer on a converted metric cache (cross-check only).

One proposal per `pdm_score` call, exactly as `run_pdm_score_one_stage.py` does: PDMSimulator, PDMScorer with
`pdm_scorer.yaml`'s config (human filter on) and log-replay background traffic. EC comes from
`ego_is_two_frame_extended_comfort` over the 36-state overlap of two frames 0.5 s apart, as `SceneAggregator` does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from navsim_eval.config import METRIC_NAMES
from navsim_eval.crosscheck.metric_cache import require_navsim

logger = logging.getLogger(__name__)

SUB_METRICS: tuple[str, ...] = METRIC_NAMES[:8]  # all but EC, which comes from two frames


@dataclass
class OfficialScores:
    """Official per-proposal sub-scores (K, 8) in `SUB_METRICS` order and the simulated states (K, 41, 11).

    `multiplicative` (K,) and `weighted` (K, 5) are the result rows' `multiplicative_metrics_prod` and
    `weighted_metrics` (EP, TTC, LK, HC, EC slot), which `compute_final_scores` turns into the score.
    """

    table: np.ndarray
    states: np.ndarray
    multiplicative: np.ndarray
    weighted: np.ndarray

    def __post_init__(self) -> None:
        k = self.table.shape[0]
        if self.table.shape != (k, len(SUB_METRICS)) or self.states.shape[0] != k:
            raise ValueError("OfficialScores: table must be (K, 8) and states (K, 41, 11)")
        if self.multiplicative.shape != (k,) or self.weighted.shape != (k, 5):
            raise ValueError("OfficialScores: multiplicative must be (K,) and weighted (K, 5)")

    def epdms(self, ec: np.ndarray | None = None) -> np.ndarray:
        """`compute_final_scores`: multipliers x weighted mean with weights 5, 5, 2, 2, 2; EC dropped when None."""
        w = np.array([5.0, 5.0, 2.0, 2.0, 2.0])
        vals = self.weighted.copy()
        if ec is None:
            w = np.broadcast_to(np.where(np.arange(5) == 4, 0.0, w), vals.shape)
        else:
            vals[:, 4] = np.asarray(ec, dtype=np.float64)
        return self.multiplicative * (vals * w).sum(axis=1) / np.sum(w, axis=-1)


def official_score(metric_cache, proposals: np.ndarray, human_filter: bool = True, traffic=None) -> OfficialScores:
    """Official sub-scores of plans (K, 8, 3) in the rear-axle frame of the cache's ego state.

    traffic: the NAVSIM traffic-agents policy (default log replay, `LogReplayTrafficAgents`; the reactive cross-check
    passes `NavsimIDMTrafficAgents`)."""
    from navsim.common.dataclasses import Trajectory
    from navsim.evaluate.pdm_score import pdm_score
    from navsim.planning.simulation.planner.pdm_planner.scoring.pdm_scorer import PDMScorer, PDMScorerConfig
    from navsim.planning.simulation.planner.pdm_planner.simulation.pdm_simulator import PDMSimulator
    from navsim.traffic_agents_policies.log_replay_traffic_agents import LogReplayTrafficAgents
    from nuplan.planning.simulation.trajectory.trajectory_sampling import TrajectorySampling

    require_navsim()
    plans = np.asarray(proposals, dtype=np.float64)
    if plans.ndim != 3 or plans.shape[1:] != (8, 3):
        raise ValueError(f"proposals must have shape (K, 8, 3), got {plans.shape}")
    sampling = TrajectorySampling(num_poses=40, interval_length=0.1)
    simulator = PDMSimulator(sampling)
    scorer = PDMScorer(sampling, PDMScorerConfig(human_penalty_filter=human_filter))
    traffic = LogReplayTrafficAgents(sampling) if traffic is None else traffic
    rows, states, multi, weighted = [], [], [], []
    for plan in plans:
        df, simulated = pdm_score(metric_cache, Trajectory(plan), sampling, simulator, scorer, traffic)
        rows.append([float(df[m].iloc[0]) for m in SUB_METRICS])
        states.append(simulated)
        multi.append(float(df["multiplicative_metrics_prod"].iloc[0]))
        weighted.append(np.asarray(df["weighted_metrics"].iloc[0], dtype=np.float64))
    return OfficialScores(np.asarray(rows), np.asarray(states), np.asarray(multi), np.asarray(weighted))


def official_two_frame_comfort(current: np.ndarray, previous: np.ndarray, offset_steps: int = 5) -> np.ndarray:
    """Official EC of each current frame's simulated states (K, 41, 11) against the previous frame's (K, 41, 11)."""
    from navsim.planning.simulation.planner.pdm_planner.scoring.pdm_comfort_metrics import (
        ego_is_two_frame_extended_comfort,
    )

    require_navsim()
    cur = np.asarray(current, dtype=np.float64)[:, :-offset_steps]
    prev = np.asarray(previous, dtype=np.float64)[:, offset_steps:]
    if cur.shape != prev.shape:
        raise ValueError(f"current and previous states must match, got {current.shape} and {previous.shape}")
    t = np.arange(cur.shape[1]) * 0.1
    return np.array([float(ego_is_two_frame_extended_comfort(c[None], p[None], t)[0]) for c, p in zip(cur, prev)])
