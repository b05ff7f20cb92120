"""Robust extraction of the speed and path commands from free VLM text (the second path after likelihood scoring).

Matching is on whole words with separators ignored, so "Mild Accel NonLinear", "MILD_ACCEL_NONLINEAR",
"mild-accel-non-linear" and "MildAccelNonLinear" are the same command, while a short label is never found inside a
longer one: at each word the longest command that ends on a word boundary wins ("Mild Accel Linear" is not read as
"Mild Accel"), and "Mild Acceleration" matches nothing. This avoids Senna's `if key in answer` substring bug.
"""

from __future__ import annotations

import logging
import re

from agent.types import PATH_PLAN_COMMANDS, SPEED_PLAN_COMMANDS, PathPlan, SpeedPlan

log = logging.getLogger(__name__)

#: What the planner gets when the text names no valid command of a kind.
FALLBACK_SPEED = SpeedPlan.CONSTANT_SPEED_STRICT
FALLBACK_PATH = PathPlan.STRAIGHT_STRICT

_WORD = re.compile(r"[a-z0-9]+")


def _key(text: str) -> str:
    """Separator- and case-free form of a command name."""
    return "".join(_WORD.findall(text.lower()))


#: Separator-free key -> command; speed and path keys are disjoint.
_TABLE: dict[str, SpeedPlan | PathPlan] = {_key(n): SpeedPlan(i) for i, n in enumerate(SPEED_PLAN_COMMANDS)}
_TABLE.update({_key(n): PathPlan(i) for i, n in enumerate(PATH_PLAN_COMMANDS)})
assert len(_TABLE) == len(SPEED_PLAN_COMMANDS) + len(PATH_PLAN_COMMANDS), "command keys must be unique"
_MAX_KEY = max(len(k) for k in _TABLE)


def find_commands(text: str) -> list[SpeedPlan | PathPlan]:
    """Every command named in `text`, in order of appearance, longest match first at each word."""
    words = _WORD.findall(text.lower())
    found: list[SpeedPlan | PathPlan] = []
    i = 0
    while i < len(words):
        best: tuple[int, int] | None = None  # (key length, end word index)
        concat = ""
        for j in range(i, len(words)):
            concat += words[j]
            if len(concat) > _MAX_KEY:
                break
            if concat in _TABLE and (best is None or len(concat) > best[0]):
                best = (len(concat), j + 1)
        if best is None:
            i += 1
            continue
        found.append(_TABLE["".join(words[i : best[1]])])
        i = best[1]
    return found


def parse_commands(text: str) -> tuple[SpeedPlan | None, PathPlan | None]:
    """The first speed and the first path command named in `text` (either order); None for a kind not found."""
    if not isinstance(text, str):
        raise TypeError(f"parse_commands expects a str, got {type(text).__name__}")
    speed: SpeedPlan | None = None
    path: PathPlan | None = None
    for cmd in find_commands(text):
        if isinstance(cmd, SpeedPlan):
            speed = cmd if speed is None else speed
        else:
            path = cmd if path is None else path
    return speed, path


def resolve_commands(text: str) -> tuple[SpeedPlan, PathPlan, bool]:
    """`parse_commands` with the fallback applied per kind; the bool says a fallback was used (and it is logged)."""
    speed, path = parse_commands(text)
    used = speed is None or path is None
    if used:
        log.warning(
            "VLM answer %r lacks a valid %s command; falling back to %s",
            text[:200],
            " and ".join(k for k, v in (("speed", speed), ("path", path)) if v is None),
            ", ".join(
                name
                for name, v in (
                    (SPEED_PLAN_COMMANDS[FALLBACK_SPEED], speed),
                    (PATH_PLAN_COMMANDS[FALLBACK_PATH], path),
                )
                if v is None
            ),
        )
    return (FALLBACK_SPEED if speed is None else speed), (FALLBACK_PATH if path is None else path), used
