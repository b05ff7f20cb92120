"""Value checks shared by every config dataclass's `__post_init__`, so errors read the same everywhere."""

from __future__ import annotations

import math


def require_positive(owner: str, **values: float) -> None:
    """Raise `ValueError` naming `owner.field` unless every value is a positive finite number."""
    for name, v in values.items():
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{owner}.{name} must be a positive finite number, got {v!r}")


def require_non_negative(owner: str, **values: float) -> None:
    """Raise `ValueError` naming `owner.field` unless every value is a non-negative finite number."""
    for name, v in values.items():
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{owner}.{name} must be a non-negative finite number, got {v!r}")
