"""Leaderboard checkpoint records: validation, the checkpoint document layout, and atomic file writes.

Records stay plain dicts so files round-trip byte-for-byte through the official tools; this module only checks the
fields the metrics read and gives them names.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
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


class RecordError(ValueError):
    """A checkpoint or record that lacks what the metrics need."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone makes 0600 files


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write via a temp file in the same folder and ``os.replace``, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 4) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=indent).encode("utf-8"))


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
