"""The one strict config loader: every annotation kind it checks, and errors that name `owner.field`."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

import pytest

from irlvla.configload import ConfigError, load_config, load_config_file, to_plain, yaml_load
from navsim_eval.config import EpdmsConfig


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Inner:
    gain: float = 1.0
    steps: int = 2

    def __post_init__(self) -> None:
        if self.gain <= 0:
            raise ValueError(f"Inner.gain must be positive, got {self.gain}")


@dataclass(frozen=True)
class Outer:
    flag: bool = False
    name: str = "a"
    mode: Literal["fast", "exact"] = "fast"
    colour: Colour = Colour.RED
    pair: tuple[float, float] = (0.0, 1.0)
    names: tuple[str, ...] = ()
    limit: float | None = None
    inner: Inner = field(default_factory=Inner)


def test_a_full_mapping_loads_and_round_trips():
    data = {
        "flag": True,
        "name": "b",
        "mode": "exact",
        "colour": "blue",
        "pair": [1, 2.5],
        "names": ["x", "y"],
        "limit": 3,
        "inner": {"gain": 2, "steps": 5},
    }
    cfg = load_config(Outer, data)
    assert cfg == Outer(True, "b", "exact", Colour.BLUE, (1.0, 2.5), ("x", "y"), 3.0, Inner(2.0, 5))
    assert isinstance(cfg.pair[0], float) and isinstance(cfg.inner.gain, float)
    assert load_config(Outer, to_plain(cfg)) == cfg


@pytest.mark.parametrize(
    "data, message",
    [
        ({"flag": "no"}, "Outer.flag must be bool, got str 'no'"),
        ({"flag": "false"}, "Outer.flag must be bool, got str 'false'"),
        ({"flag": 1}, "Outer.flag must be bool, got int 1"),
        ({"inner": {"steps": 20.0}}, "Outer.inner.steps must be int, got float 20.0"),
        ({"inner": {"steps": True}}, "Outer.inner.steps must be int, got bool True"),
        ({"inner": {"gain": "1.0"}}, "Outer.inner.gain must be float, got str '1.0'"),
        ({"name": 3}, "Outer.name must be str, got int 3"),
        ({"mode": "slow"}, "Outer.mode must be one of ['fast', 'exact'], got 'slow'"),
        ({"colour": "green"}, "Outer.colour must be Colour, got str 'green'"),
        ({"pair": [1.0]}, "Outer.pair must have 2 items, got 1: [1.0]"),
        ({"pair": "1,2"}, "Outer.pair must be a list, got str '1,2'"),
        ({"names": ["x", 2]}, "Outer.names[1] must be str, got int 2"),
        ({"limit": "none"}, "Outer.limit must be float, got str 'none'"),
        ({"inner": {"gain": -1.0}}, "Outer.inner: Inner.gain must be positive, got -1.0"),
        ({"inner": [1, 2]}, "Outer.inner: expected a mapping for Inner, got list [1, 2]"),
        ({"inner": {"gian": 1.0}}, "Outer.inner: unknown field(s) ['gian'] for Inner (valid: ['gain', 'steps'])"),
    ],
)
def test_bad_values_are_errors_naming_the_field(data, message):
    with pytest.raises(ConfigError) as err:
        load_config(Outer, data)
    assert str(err.value) == message


def test_the_epdms_config_loads_strictly():
    cfg = load_config(EpdmsConfig, {"reactive": True, "scorer": {"ep_normalisation": "batch"}})
    assert cfg.reactive and cfg.scorer.ep_normalisation == "batch" and cfg.simulation == EpdmsConfig().simulation
    with pytest.raises(ConfigError, match=r"^EpdmsConfig.scorer.ttc_projection_stride must be int, got float 3.0"):
        load_config(EpdmsConfig, {"scorer": {"ttc_projection_stride": 3.0}})
    with pytest.raises(ConfigError, match=r"^EpdmsConfig.reactive must be bool, got str 'yes'"):
        load_config(EpdmsConfig, {"reactive": "yes"})


def test_files(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("inner: {gain: 1e-3}\nlimit: 5E2\n")
    cfg = load_config_file(Outer, p)
    assert (cfg.inner.gain, cfg.limit) == (1e-3, 500.0)
    p.write_text("inner: {gain: [\n")
    with pytest.raises(ConfigError, match="is malformed"):
        load_config_file(Outer, p)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(Outer, tmp_path / "missing.json")
    assert yaml_load("a: '1e-3'\nb: 1.5\nc: 7\n") == {"a": "1e-3", "b": 1.5, "c": 7}
