"""PDMScorer over simulated states: the eight per-frame sub-metrics and EP normalisation (EC lives in comfort.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from navsim_eval import metrics
from navsim_eval.comfort import history_comfort
from navsim_eval.config import ScorerConfig
from navsim_eval.mapquery import MapQueries
from navsim_eval.observation import Observation
from sim.scene import EgoParams


@dataclass
class FrameScores:
    """Per-proposal sub-scores before EP normalisation; `progress` is the raw centreline progress in metres."""

    nc: np.ndarray
    dac: np.ndarray
    ddc: np.ndarray
    tlc: np.ndarray
    progress: np.ndarray
    ttc: np.ndarray | None = None
    lk: np.ndarray | None = None
    hc: np.ndarray | None = None

    @property
    def multiplicative(self) -> np.ndarray:
        return self.nc * self.dac * self.ddc * self.tlc


def score_states(
    states: np.ndarray,
    obs: Observation,
    mq: MapQueries,
    cfg: ScorerConfig,
    params: EgoParams,
    dt: float = 0.1,
    history: np.ndarray | None = None,
    multiplicative_only: bool = False,
) -> FrameScores:
    """Score simulated states (K, T, 11) against an observation (tracks may carry a K axis)."""
    ego = metrics.EgoFrames.from_states(states, params)
    areas = metrics.ego_areas(ego, mq)
    # one projection of every centre onto the centreline serves EP (first and last) and LK (all)
    along, off = mq.project(ego.centre if not multiplicative_only else ego.centre[:, [0, -1]])
    out = FrameScores(
        nc=metrics.no_at_fault_collisions(ego, areas, obs, cfg, params),
        dac=metrics.drivable_area_compliance(areas),
        ddc=metrics.driving_direction_compliance(ego, areas, cfg, dt),
        tlc=metrics.traffic_light_compliance(ego, obs),
        progress=metrics.progress_from(along),
    )
    if multiplicative_only:
        return out
    out.ttc = metrics.time_to_collision(ego, areas, obs, cfg, params, dt)
    out.lk = metrics.lane_keeping_from(off, areas, cfg, dt)
    out.hc = history_comfort(states, history, cfg, params.rear_axle_to_center)
    return out


def normalise_progress(
    progress: np.ndarray, multiplicative: np.ndarray, ref_best: np.ndarray | float, threshold: float, mode: str
) -> np.ndarray:
    """EP: raw / max(reference, proposal) of raw x multipliers when that exceeds `threshold` m, else 1.

    `ref_best` is the reference's raw progress x multipliers (scalar, or (K,) when traffic differs per proposal).
    mode "pair" pairs each proposal with the reference only (official); "batch" takes the best of all proposals.
    """
    masked = progress * multiplicative
    if mode == "pair":
        norm = np.maximum(masked, ref_best)
    else:
        norm = np.full_like(progress, max(float(np.max(masked)) if masked.size else 0.0, float(np.max(ref_best))))
    with np.errstate(divide="ignore", invalid="ignore"):
        ep = np.clip(progress / norm, 0.0, 1.0)
    return np.where(norm > threshold, ep, 1.0)


def pdm_score(scores: FrameScores, cfg: ScorerConfig, ep: np.ndarray) -> np.ndarray:
    """The scorer's own per-frame score (EC excluded): multipliers x (5 EP + 5 TTC + 2 LK + 2 HC) / 14."""
    w = cfg.weights
    weighted = (w[0] * ep + w[1] * scores.ttc + w[2] * scores.lk + w[3] * scores.hc) / sum(w[:4])
    return scores.multiplicative * weighted
