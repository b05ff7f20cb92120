"""All Bench2Drive metrics of one evaluation in one JSON-ready dict."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench2drive_eval.abilities import SEMANTICS, abilities
from bench2drive_eval.comfort import ComfortConfig, comfort
from bench2drive_eval.efficiency import efficiency
from bench2drive_eval.routes import Route
from bench2drive_eval.scores import OFFICIAL_NUM_ROUTES, driving_score, infractions_per_km, success_rate


@dataclass(frozen=True)
class MetricsConfig:
    """Denominator, comfort quirks and ability semantics; defaults reproduce the official tools."""

    denominator: int | None = OFFICIAL_NUM_ROUTES  # None: the number of records actually present
    comfort: ComfortConfig = ComfortConfig()
    ability_semantics: str = "v0.0.4"

    def __post_init__(self) -> None:
        if self.denominator is not None and self.denominator < 1:
            raise ValueError(f"denominator must be >= 1 or None, got {self.denominator}")
        if self.ability_semantics not in SEMANTICS:
            raise ValueError(f"ability_semantics must be one of {SEMANTICS}, got {self.ability_semantics!r}")


def compute_metrics(
    records: Sequence[dict],
    routes: Sequence[Route] | None = None,
    metric_dir: str | os.PathLike | None = None,
    junction_fractions: Mapping[str, float] | None = None,
    cfg: MetricsConfig | None = None,
) -> dict:
    """Driving score and success rate (percent), efficiency, comfort (percent), abilities, infractions per km.

    Comfort needs ``metric_dir`` and abilities need ``routes``; without them the value is None and ``notes`` says why.
    """
    cfg = cfg or MetricsConfig()
    if not records:
        raise ValueError("no route records to score")
    denom = cfg.denominator or len(records)
    notes: list[str] = []
    if cfg.denominator is not None and len(records) != cfg.denominator:
        notes.append(f"{len(records)} records scored over a denominator of {cfg.denominator} routes")
    out: dict = {
        "driving_score": driving_score(records, denom),
        "success_rate": success_rate(records, denom),
        "efficiency": efficiency(records),
        "comfort": None,
        "abilities": None,
        "num_routes": len(records),
        "denominator": denom,
        "infractions_per_km": infractions_per_km(records),
    }
    if metric_dir is not None:
        c = comfort(records, metric_dir, cfg.comfort)
        out["comfort"] = None if c.value is None else 100.0 * c.value
        out["comfort_routes"] = len(c.per_route)
        if c.skipped:
            out["comfort_skipped"] = c.skipped
            notes.append(f"comfort left out {len(c.skipped)} route(s) without usable metric_info.json")
        if cfg.comfort != ComfortConfig():
            notes.append("comfort uses corrected units/time step, not the official quirks")
    else:
        notes.append("comfort not computed: no metric-info folder given")
    if routes is not None:
        ab = abilities(records, routes, junction_fractions, cfg.ability_semantics)
        out["abilities"] = ab.as_dict()
        out["ability_counts"] = {k: list(v) for k, v in ab.counts.items()}
        out["ability_semantics"] = ab.semantics
        out["crashed"] = [list(c) for c in ab.crashed]
        if ab.traffic_signs_strict_only:
            notes.append("Traffic_Signs counts strict successes only (no junction-fraction data)")
    else:
        notes.append("abilities not computed: no route file given")
    out["notes"] = notes
    return out
