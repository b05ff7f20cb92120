"""Leaderboard checkpoint records: structural checks, the checkpoint document layout, and JSON reading.

Records stay plain dicts so files round-trip byte-for-byte through the official tools; this module only checks the
fields the metrics read and gives them names.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

INFRACTION_KEYS: tuple[str, ...] = (
    "collisions_layout",
    "collisions_pedestrian",
    "collisions_vehicle",
    "red_light",
    "stop_infraction",
    "outside_route_lanes",
    "min_speed_infractions",
    "yield_emergency_vehicle_infractions",
    "scenario_timeouts",
    "route_dev",
    "vehicle_blocked",
    "route_timeout",
)
SUCCESS_STATUSES = frozenset({"Completed", "Perfect"})
# Statuses the official resume reruns (route_indexer.py); every other failure is a final result.
RETRYABLE_STATUSES = frozenset({"Failed", "Failed - Simulation crashed", "Failed - Agent crashed"})
# Every status the leaderboard's statistics manager writes: "Perfect"/"Completed" at 100 % route completion, else
# "Failed", with " - <message>" when something ended the route (FAILURE_MESSAGES, the criteria, the B2D tick cap).
KNOWN_STATUSES = SUCCESS_STATUSES | {
    "Failed",
    "Failed - Simulation crashed",
    "Failed - Agent crashed",
    "Failed - Agent couldn't be set up",
    "Failed - Agent's sensors were invalid",
    "Failed - Agent timed out",
    "Failed - Agent deviated from the route",
    "Failed - Agent got blocked",
    "Failed - TickRuntime",
}
# Ranges of the route scores as the statistics manager computes them (completion in percent, penalty a factor).
SCORE_RANGES: dict[str, tuple[float, float]] = {
    "score_route": (0.0, 100.0),
    "score_penalty": (0.0, 1.0),
    "score_composed": (0.0, 100.0),
}


class RecordError(ValueError):
    """A checkpoint or record that lacks what the metrics need."""


def read_json(path: str | os.PathLike) -> Any:
    """Load JSON with an error that names the file."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}: invalid JSON: {exc}") from None


def route_number(route_id: str) -> str:
    """``RouteScenario_1711_rep0`` -> ``1711``: the key the ability tool matches XML routes with."""
    parts = route_id.split("_")
    if len(parts) < 2:
        raise RecordError(f"route_id {route_id!r} is not of the form RouteScenario_<id>_rep<k>")
    return parts[1]


def validate_record(rec: Any, where: str) -> dict:
    """Check the fields the metrics read; returns the record unchanged."""
    if not isinstance(rec, dict):
        raise RecordError(f"{where}: record is not an object")
    for key in ("route_id", "status", "scores", "infractions"):
        if key not in rec:
            raise RecordError(f"{where}: record lacks '{key}'")
    rid = rec["route_id"]
    if not isinstance(rid, str):
        raise RecordError(f"{where}: route_id must be a string")
    route_number(rid)
    scores = rec["scores"]
    for key in ("score_route", "score_penalty", "score_composed"):
        if not isinstance(scores, dict) or not isinstance(scores.get(key), (int, float)):
            raise RecordError(f"{where}: record {rid} lacks numeric scores.{key}")
    if not isinstance(rec["infractions"], dict):
        raise RecordError(f"{where}: record {rid} infractions must be an object")
    for key, val in rec["infractions"].items():
        if not isinstance(val, list):
            raise RecordError(f"{where}: record {rid} infractions.{key} must be a list")
    return rec


def record_value_problems(rec: dict) -> list[str]:
    """What is wrong with the values of a structurally valid record (see `validate_record`): non-finite or
    out-of-range scores, an unknown status. Empty when the record can be scored."""
    problems = []
    for key, (lo, hi) in SCORE_RANGES.items():
        val = rec["scores"][key]
        if isinstance(val, bool) or not math.isfinite(val):
            problems.append(f"scores.{key} is {val!r}, not a finite number")
        elif not lo <= val <= hi:
            problems.append(f"scores.{key} = {val!r} is outside [{lo:g}, {hi:g}]")
    if rec["status"] not in KNOWN_STATUSES:
        problems.append(f"unknown status {rec['status']!r}")
    return problems


def is_checkpoint_document(doc: Any) -> bool:
    """True for leaderboard checkpoints and merged files (both hold ``_checkpoint.records``)."""
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("_checkpoint"), dict)
        and isinstance(doc["_checkpoint"].get("records"), list)
    )


def records_of(doc: Any, where: str) -> list[dict]:
    if not is_checkpoint_document(doc):
        raise RecordError(f"{where}: not a leaderboard checkpoint (no _checkpoint.records list)")
    return [validate_record(r, f"{where}: record {i}") for i, r in enumerate(doc["_checkpoint"]["records"])]


def load_records(path: str | os.PathLike) -> list[dict]:
    return records_of(read_json(path), str(path))


def checkpoint_document(records: list[dict], total: int, entry_status: str = "Finished") -> dict:
    """A leaderboard-style checkpoint, so the official merge tool reads our shard files too."""
    out = []
    for i, rec in enumerate(records):
        rec = dict(rec)
        rec["index"] = i
        out.append(rec)
    return {
        "_checkpoint": {"global_record": {}, "progress": [len(out), total], "records": out},
        "entry_status": entry_status,
        "eligible": entry_status == "Finished",
        "sensors": [],
        "values": [],
        "labels": [],
    }
