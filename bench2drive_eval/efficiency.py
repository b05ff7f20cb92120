"""Driving efficiency: ego speed as a percentage of surrounding traffic, from the min-speed infraction messages."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

log = logging.getLogger(__name__)

_PERCENT = re.compile(r"\b\d+\.?\d*%")  # the official tool's pattern: unsigned number directly followed by '%'
MAX_PERCENT = 1000.0  # larger values (near-empty traffic) are dropped by the official tool


def route_efficiency(messages: Sequence[str]) -> float | None:
    """Mean percentage over a route's min-speed events; None when there are no usable events."""
    values = []
    for msg in messages:
        m = _PERCENT.search(msg)
        if m is None:
            continue
        v = float(m.group()[:-1])
        if v > MAX_PERCENT:
            continue
        values.append(v)
    return sum(values) / len(values) if values else None


def efficiency(records: Sequence[dict]) -> float | None:
    """Mean over routes of the per-route mean; routes without min-speed events are skipped, as officially.

    A route whose every event exceeds 1000 % crashes the official tool (division by zero); it is skipped here.
    """
    per_route = []
    for rec in records:
        msgs = rec["infractions"].get("min_speed_infractions", [])
        if not msgs:
            continue
        v = route_efficiency(msgs)
        if v is None:
            log.warning(
                "route %s: no min-speed event under %.0f %%; skipped for efficiency", rec["route_id"], MAX_PERCENT
            )
            continue
        per_route.append(v)
    return sum(per_route) / len(per_route) if per_route else None
