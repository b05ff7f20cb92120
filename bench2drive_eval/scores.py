"""Driving score, success rate and infractions per km, as the official merge and statistics manager compute them."""

from __future__ import annotations

from collections.abc import Sequence

from bench2drive_eval.records import INFRACTION_KEYS, SUCCESS_STATUSES

OFFICIAL_NUM_ROUTES = 220  # hard-coded denominator of tools/merge_route_json.py

#: Bench2Drive's per-event penalty factors (`statistics_manager.py` PENALTY_VALUE_DICT), by record infraction key.
#: Each event multiplies the route's penalty; `outside_route_lanes` is applied by percentage instead
#: (P x (1 - pct/100)), and min-speed events are logged but unused in Bench2Drive.
PENALTY_FACTORS: dict[str, float] = {
    "collisions_pedestrian": 0.50,
    "collisions_vehicle": 0.60,
    "collisions_layout": 0.65,
    "red_light": 0.70,
    "stop_infraction": 0.80,
    "scenario_timeouts": 0.70,
    "yield_emergency_vehicle_infractions": 0.70,
}


def route_penalty(infractions: dict[str, list], outside_lanes_pct: float = 0.0) -> float:
    """The route's penalty multiplier as Bench2Drive's statistics manager computes it."""
    p = 1.0
    for key, factor in PENALTY_FACTORS.items():
        p *= factor ** len(infractions.get(key, []))
    if infractions.get("outside_route_lanes"):
        p *= 1.0 - outside_lanes_pct / 100.0
    return p


def is_success(rec: dict) -> bool:
    """Completed or Perfect, and no infraction other than the always-logged min-speed events."""
    if rec["status"] not in SUCCESS_STATUSES:
        return False
    return all(len(v) == 0 for k, v in rec["infractions"].items() if k != "min_speed_infractions")


def driving_score(records: Sequence[dict], denominator: int = OFFICIAL_NUM_ROUTES) -> float:
    """Sum of ``score_composed`` over ``denominator`` routes (0-100); missing routes count as zero."""
    if denominator < 1:
        raise ValueError(f"denominator must be >= 1, got {denominator}")
    return sum(float(r["scores"]["score_composed"]) for r in records) / denominator


def success_rate(records: Sequence[dict], denominator: int = OFFICIAL_NUM_ROUTES) -> float:
    """Successful routes over ``denominator``, in percent."""
    if denominator < 1:
        raise ValueError(f"denominator must be >= 1, got {denominator}")
    return 100.0 * sum(is_success(r) for r in records) / denominator


def _outside_lanes_km(messages: list[str]) -> float:
    """Metres from "... for about X meters (...)" (token 8 of the first message, as the leaderboard reads it)."""
    if not messages:
        return 0.0
    try:
        return float(messages[0].split(" ")[8]) / 1000.0
    except (IndexError, ValueError):
        return 0.0


def infractions_per_km(records: Sequence[dict]) -> dict[str, float]:
    """Per-km infraction counts over the km actually driven (route length x completion), floored at 1 m.

    As in the leaderboard's global record, ``outside_route_lanes`` is the km driven outside lanes, not a rate.
    """
    km = sum(
        float(r.get("meta", {}).get("route_length", 0.0)) / 1000 * float(r["scores"]["score_route"]) / 100
        for r in records
    )
    km = max(km, 0.001)
    out: dict[str, float] = {}
    for key in INFRACTION_KEYS:
        if key == "outside_route_lanes":
            out[key] = sum(_outside_lanes_km(r["infractions"].get(key, [])) for r in records)
        else:
            out[key] = sum(len(r["infractions"].get(key, [])) for r in records) / km
    out["km_driven"] = km
    return out
