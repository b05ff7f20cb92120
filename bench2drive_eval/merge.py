"""Merge per-shard leaderboard checkpoints into one record list, flagging duplicates and missing routes.

Unlike the official merge, files in the folder that are not checkpoints (``merged_ability.json``, a previous
``merged.json``) are skipped instead of crashing or being counted twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench2drive_eval.records import (
    RecordError,
    is_checkpoint_document,
    read_json,
    records_of,
    route_number,
)
from bench2drive_eval.routes import Route
from bench2drive_eval.scores import OFFICIAL_NUM_ROUTES, driving_score, success_rate
from irlvla.atomic import atomic_write_json

log = logging.getLogger(__name__)


@dataclass
class MergeResult:
    """Records sorted as the official merge (route_id descending) and what was odd about the inputs."""

    records: list[dict]
    files: list[Path] = field(default_factory=list)
    ignored_files: dict[str, str] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # where each record came from: "<file>: record <i>"


_NOT_CHECKPOINT = "not a leaderboard checkpoint"
_MERGED_OUTPUT = "a merged result, not a shard checkpoint"


def _is_merged_output(doc: dict) -> bool:
    return "driving score" in doc or "eval num" in doc


def merge_records(
    record_lists: Sequence[tuple[str, list[dict]]],
    routes: Sequence[Route] | None = None,
    keep_duplicates: bool = False,
) -> MergeResult:
    """Concatenate, keep the first record of a duplicated route_id (every one with ``keep_duplicates``, for the
    record checks to judge), and compare with the route file if given."""
    seen: dict[str, str] = {}
    merged: list[tuple[dict, str]] = []
    duplicates: list[str] = []
    for source, recs in record_lists:
        for i, rec in enumerate(recs):
            rid = rec["route_id"]
            name = f"{source}: record {i}"
            if rid in seen:
                duplicates.append(rid)
                if not keep_duplicates:
                    log.warning("duplicate record for %s in %s (kept the one from %s)", rid, source, seen[rid])
                    continue
            else:
                seen[rid] = source
            merged.append(({k: v for k, v in rec.items() if k != "index"}, name))
    merged.sort(key=lambda pair: pair[0]["route_id"], reverse=True)  # stable: duplicates keep their file order
    result = MergeResult(records=[r for r, _ in merged], duplicates=duplicates, names=[n for _, n in merged])
    if routes is not None:
        have = {route_number(r["route_id"]) for r in result.records}
        want = {r.id for r in routes}
        result.missing = [r.id for r in routes if r.id not in have]
        result.unexpected = sorted(have - want)
        if result.missing:
            log.warning("%d route(s) of the route file have no record: %s", len(result.missing), result.missing[:10])
    return result


def merge_folder(
    folder: str | os.PathLike, routes: Sequence[Route] | None = None, keep_duplicates: bool = False
) -> MergeResult:
    """Merge every checkpoint ``*.json`` directly in ``folder``; other JSON files are listed as ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RecordError(f"{folder}: results folder does not exist")
    lists: list[tuple[str, list[dict]]] = []
    files: list[Path] = []
    ignored: dict[str, str] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            doc = read_json(path)
        except (RecordError, OSError) as exc:  # may be a torn shard checkpoint: its routes show up as missing
            log.warning("ignored %s: unreadable (%s)", path.name, exc)
            ignored[path.name] = str(exc)
            continue
        if not is_checkpoint_document(doc):
            ignored[path.name] = _NOT_CHECKPOINT
            continue
        if _is_merged_output(doc):
            ignored[path.name] = _MERGED_OUTPUT
            continue
        lists.append((path.name, records_of(doc, str(path))))
        files.append(path)
    for name, why in ignored.items():
        if why in (_NOT_CHECKPOINT, _MERGED_OUTPUT):  # expected neighbours; unreadable files were warned about
            log.info("ignored %s: %s", name, why)
    if not files:
        raise RecordError(f"{folder}: no leaderboard checkpoint JSON files found")
    result = merge_records(lists, routes, keep_duplicates)
    result.files = files
    result.ignored_files = ignored
    return result


def merged_document(records: list[dict], denominator: int = OFFICIAL_NUM_ROUTES) -> dict:
    """The official ``merged.json`` layout (success rate as a fraction, as the official file has it)."""
    return {
        "_checkpoint": {"records": records},
        "driving score": driving_score(records, denominator),
        "success rate": success_rate(records, denominator) / 100.0,
        "eval num": len(records),
    }


def write_merged(path: str | os.PathLike, records: list[dict], denominator: int = OFFICIAL_NUM_ROUTES) -> None:
    atomic_write_json(path, merged_document(records, denominator))
