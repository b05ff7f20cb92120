"""Checks on a whole set of records before it is scored, and the named options that relax them.

A record that would falsify the numbers (a NaN or out-of-range score, a status the leaderboard never writes, a second
record for the same route and repetition, a route the route file does not have) is an error that names the record.
The official tools accept all of these silently (`merge_route_json.py` counts a duplicated route twice); each
`--allow-...` option says instead how such a record is treated, and what was done is listed in the output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bench2drive_eval.records import RecordError, record_value_problems, route_number
from bench2drive_eval.routes import Route

INVALID_POLICIES = ("error", "drop")
DUPLICATE_POLICIES = ("error", "keep-first", "count-all")
UNKNOWN_ROUTE_POLICIES = ("error", "drop", "keep")


@dataclass(frozen=True)
class RecordPolicy:
    """How to treat each kind of bad record; ``error`` (the default for all three) stops with a message.

    ``invalid``: ``drop`` leaves out records with non-finite or out-of-range scores or an unknown status.
    ``duplicates``: ``keep-first`` scores the first record of a route and repetition; ``count-all`` counts every one,
    as the official merge does. ``unknown_routes`` (only with a route file): ``drop`` leaves out records of routes
    the file does not have, ``keep`` scores them anyway.
    """

    invalid: str = "error"
    duplicates: str = "error"
    unknown_routes: str = "error"

    def __post_init__(self) -> None:
        for name, allowed in (
            ("invalid", INVALID_POLICIES),
            ("duplicates", DUPLICATE_POLICIES),
            ("unknown_routes", UNKNOWN_ROUTE_POLICIES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"RecordPolicy.{name} must be one of {allowed}, got {getattr(self, name)!r}")


@dataclass
class CheckedRecords:
    """The records to score and what was left out (``{"record", "route_id", "reason"}`` each) or tolerated."""

    records: list[dict]
    dropped: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_records(
    records: Sequence[dict],
    routes: Sequence[Route] | None = None,
    policy: RecordPolicy | None = None,
    names: Sequence[str] | None = None,
) -> CheckedRecords:
    """Validate every record (structurally valid ones, see `records.validate_record`) and apply ``policy``.

    ``names`` says where each record comes from (``"merged.json: record 3"``); errors and the dropped list use it.
    Raises `RecordError` naming the first bad record when its kind is not allowed.
    """
    policy = policy or RecordPolicy()
    names = list(names) if names is not None else [f"record {i}" for i in range(len(records))]
    if len(names) != len(records):
        raise ValueError(f"{len(names)} names for {len(records)} records")
    out = CheckedRecords(records=[])
    known = {r.id for r in routes} if routes is not None else None
    seen: dict[str, str] = {}
    counted_twice: list[str] = []
    for rec, name in zip(records, names):
        rid = rec["route_id"]
        problems = record_value_problems(rec)
        if problems:
            reason = "; ".join(problems)
            if policy.invalid == "error":
                raise RecordError(f"{name} ({rid}): {reason} (--allow-invalid-records drop leaves such records out)")
            out.dropped.append({"record": name, "route_id": rid, "reason": reason})
            continue
        if known is not None and route_number(rid) not in known:
            reason = "route id not in the route file"
            if policy.unknown_routes == "error":
                raise RecordError(
                    f"{name} ({rid}): {reason} (--allow-unknown-routes drop|keep says how to treat such records)"
                )
            if policy.unknown_routes == "drop":
                out.dropped.append({"record": name, "route_id": rid, "reason": reason})
                continue
            out.notes.append(f"{name} ({rid}) is not in the route file and was scored anyway")
        if rid in seen:
            reason = f"second record for {rid} (first: {seen[rid]})"
            if policy.duplicates == "error":
                raise RecordError(
                    f"{name}: {reason} (--allow-duplicate-records keep-first|count-all says how to treat duplicates)"
                )
            if policy.duplicates == "keep-first":
                out.dropped.append({"record": name, "route_id": rid, "reason": reason})
                continue
            counted_twice.append(rid)
        else:
            seen[rid] = name
        out.records.append(rec)
    if counted_twice:
        out.notes.append(f"{len(counted_twice)} duplicate record(s) counted again, as the official merge does")
    if out.dropped:
        out.notes.append(f"{len(out.dropped)} record(s) left out (see dropped_records)")
    return out
