"""The text panel's item grammar (after CARLA's `manual_control.py` HUD): `tick()` builds a list of these, `render()`
draws them top to bottom. Each item keeps its raw value next to the text drawn, so tests compare numbers, not pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Line:
    """One line of text; `key`/`value` name the number it shows (for tests and the JSON log), if any."""

    text: str
    key: str = ""
    value: float | str | None = None
    header: bool = False


@dataclass(frozen=True)
class Bar:
    """A labelled bar from `lo` to `hi` with the value printed beside it as `text`."""

    label: str
    value: float
    lo: float
    hi: float
    text: str
    key: str = ""


@dataclass(frozen=True)
class Check:
    """A labelled checkbox."""

    label: str
    on: bool
    key: str = ""


@dataclass(frozen=True)
class Spark:
    """A sparkline of recent values in [lo, hi]."""

    label: str
    values: tuple[float, ...]
    lo: float = 0.0
    hi: float = 1.0


@dataclass(frozen=True)
class Gap:
    """Vertical space."""

    height: int = 6


Item = Line | Bar | Check | Spark | Gap


@dataclass
class Notice:
    """A message that fades out after `seconds` (screenshots saved, pause, step)."""

    text: str
    seconds: float
    age: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def alpha(self) -> int:
        return max(0, min(255, int(255 * (1.0 - self.age / self.seconds) * 2)))

    @property
    def done(self) -> bool:
        return self.age >= self.seconds


def values_of(items: list[Item]) -> dict[str, float | str | bool]:
    """key -> raw value of every keyed item (what the panel shows, before formatting)."""
    out: dict[str, float | str | bool] = {}
    for it in items:
        key = getattr(it, "key", "")
        if not key:
            continue
        if isinstance(it, Line):
            out[key] = it.value
        elif isinstance(it, Bar):
            out[key] = it.value
        elif isinstance(it, Check):
            out[key] = it.on
    return out
