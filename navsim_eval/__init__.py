"""NAVSIM v2.2 EPDMS, reimplemented batched over candidate trajectories (see docs/epdms.md)."""

from navsim_eval.api import EpdmsResult, aggregate_epdms, score_cache, score_proposals
from navsim_eval.config import (
    METRIC_NAMES,
    EpdmsConfig,
    IDMTrafficConfig,
    PDMClosedConfig,
    ScorerConfig,
    SimulationConfig,
)
from navsim_eval.simulation import KinematicBicycle, LQRTracker, simulate, simulate_plans

__all__ = [
    "METRIC_NAMES",
    "EpdmsConfig",
    "EpdmsResult",
    "IDMTrafficConfig",
    "KinematicBicycle",
    "LQRTracker",
    "PDMClosedConfig",
    "ScorerConfig",
    "SimulationConfig",
    "aggregate_epdms",
    "score_cache",
    "score_proposals",
    "simulate",
    "simulate_plans",
]
