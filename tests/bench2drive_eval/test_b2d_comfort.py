"""Comfort windows whose pass/fail is derived by hand.

Savitzky-Golay smoothing of order 2 reproduces constants and straight lines exactly, and its first derivative of a
straight line is the slope / dt, so for the signals below every smoothed value is known without running the filter.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench2drive_eval.comfort import ComfortConfig, Kinematics, comfort, route_comfort, windows_pass

OFFICIAL = ComfortConfig()
CORRECTED = ComfortConfig.corrected()


def kin(lon: np.ndarray | list[float], lat: float | np.ndarray = 0.0, yaw_rate: float | np.ndarray = 0.0) -> Kinematics:
    lon = np.asarray(lon, dtype=float)
    t = len(lon)
    acc = np.zeros((t, 3))
    acc[:, 0] = lon
    acc[:, 1] = lat
    ang = np.zeros((t, 3))
    ang[:, 2] = yaw_rate
    fwd = np.tile([1.0, 0.0, 0.0], (t, 1))
    right = np.tile([0.0, 1.0, 0.0], (t, 1))
    return Kinematics(acc, ang, fwd, right)


def test_windows_of_twenty_and_tail_dropped() -> None:
    # 45 samples -> two full windows; the last 5 (absurd values) are dropped as in the official tool
    lon = [1.0] * 20 + [3.0] * 20 + [100.0] * 5  # window 1: 1.0 inside (-4.05, 2.40); window 2: 3.0 above 2.40
    assert windows_pass(kin(lon), OFFICIAL).tolist() == [True, False]
    assert route_comfort(kin(lon)) == 0.5


def test_short_route_is_one_check() -> None:
    assert route_comfort(kin([1.0] * 10)) == 1.0
    assert route_comfort(kin([1.0] * 10, lat=5.0)) == 0.0  # |lat| 5.0 > 4.89
    with pytest.raises(ValueError, match="too few"):
        route_comfort(kin([1.0, 1.0]))


def test_bounds_are_strict() -> None:
    assert route_comfort(kin([2.40] * 20)) == 0.0  # value == bound fails (strict inequality)
    assert route_comfort(kin([-4.0] * 20)) == 1.0


def test_yaw_rate_unit_quirk() -> None:
    # 1.0 deg/s (0.0175 rad/s) is checked against 0.95 "rad/s" officially: fails; the corrected unit passes
    assert route_comfort(kin([0.0] * 40, yaw_rate=1.0), OFFICIAL) == 0.0
    assert route_comfort(kin([0.0] * 40, yaw_rate=1.0), CORRECTED) == 1.0
    # 0.9 < 0.95 and the "yaw acceleration" (the rate itself) 0.9 < 1.93: passes officially
    assert route_comfort(kin([0.0] * 40, yaw_rate=0.9), OFFICIAL) == 1.0


def test_phase_unwrap_applies_to_rates() -> None:
    # alternating 0.5 and 0.5 + 2*pi unwraps to a constant 0.5 < 0.95
    z = np.where(np.arange(20) % 2 == 0, 0.5, 0.5 + 2 * np.pi)
    assert route_comfort(kin([0.0] * 20, yaw_rate=z), OFFICIAL) == 1.0


def test_time_step_quirk_on_jerk() -> None:
    # lon acc ramps -3.5 -> 2.2 by 0.3 per sample (inside the acc bounds). Jerk = 0.3 / dt:
    # 3.0 with the official dt 0.1 (< 4.13 passes), 6.0 with the real 0.05 s step (> 4.13 fails).
    ramp = -3.5 + 0.3 * np.arange(20)
    assert route_comfort(kin(ramp), OFFICIAL) == 1.0
    assert route_comfort(kin(ramp), CORRECTED) == 0.0


def test_metric_info_files_and_missing(tmp_path: Path) -> None:
    def steps(lon: list[float]) -> dict:
        return {
            str(i): {
                "acceleration": [a, 0.0, 9.8],
                "angular_velocity": [0.0, 0.0, 0.0],
                "forward_vector": [1, 0, 0],
                "right_vector": [0, 1, 0],
                "location": [0, 0, 0],
                "rotation": [0, 0, 0],
            }
            for i, a in enumerate(lon)
        }

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "metric_info.json").write_text(json.dumps(steps([1.0] * 20 + [3.0] * 20)))  # 0.5
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "metric_info.json").write_text(json.dumps(steps([1.0] * 60)))  # 1.0
    # a file straight in the folder must not be taken for the route without a save_name
    (tmp_path / "metric_info.json").write_text(json.dumps(steps([1.0] * 60)))
    records = [
        {"route_id": f"RouteScenario_{i}_rep0", "save_name": s} for i, s in ((1, "a"), (2, "b"), (3, "c"), (4, ""))
    ]
    res = comfort(records, tmp_path)
    assert res.value == pytest.approx(0.75)
    assert res.per_route == {"RouteScenario_1_rep0": 0.5, "RouteScenario_2_rep0": 1.0}
    assert list(res.skipped) == ["RouteScenario_3_rep0", "RouteScenario_4_rep0"]
    assert res.skipped["RouteScenario_4_rep0"] == "record has no save_name"
    # a list of steps carries the same data; a file of another shape is skipped with its reason, not a crash
    (tmp_path / "b" / "metric_info.json").write_text(json.dumps(list(steps([1.0] * 60).values())))
    assert comfort(records, tmp_path).per_route == res.per_route
    (tmp_path / "b" / "metric_info.json").write_text('"not steps"')
    res = comfort(records, tmp_path)
    assert res.per_route == {"RouteScenario_1_rep0": 0.5}
    assert "keyed by step" in res.skipped["RouteScenario_2_rep0"]


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="polyorder"):
        ComfortConfig(window=2, polyorder=2)
    with pytest.raises(ValueError, match="shape"):
        Kinematics(np.zeros((5, 3)), np.zeros((4, 3)), np.zeros((5, 3)), np.zeros((5, 3)))


def test_fast_parser_matches_json_layouts(tmp_path: Path) -> None:
    from bench2drive_eval.comfort import _fast_parse, _load

    rng = np.random.default_rng(0)
    steps = {
        str(i): {
            "acceleration": rng.normal(size=3).tolist(),
            "angular_velocity": [0.0, 0.0, 1e-3 * i],
            "forward_vector": [1.0, 0.0, 0.0],
            "right_vector": [0.0, 1.0, 0.0],
            "location": [1, 2, 3],
            "rotation": [0, 0, 0],
        }
        for i in range(30)
    }
    for kw in ({}, {"indent": 4}, {"separators": (",", ":")}):
        data = json.dumps(steps, **kw).encode()
        fast = _fast_parse(data)
        assert fast is not None
        np.testing.assert_array_equal(fast.acceleration, [s["acceleration"] for s in steps.values()])
        np.testing.assert_array_equal(fast.angular_velocity[:, 2], [s["angular_velocity"][2] for s in steps.values()])
    # a layout the text scan cannot trust (a 2-vector) falls back to json, which then rejects it clearly
    steps["3"]["forward_vector"] = [1.0, 0.0]
    (tmp_path / "m.json").write_text(json.dumps(steps))
    assert _fast_parse((tmp_path / "m.json").read_bytes()) is None
    with pytest.raises(ValueError, match="malformed metric_info"):
        _load(tmp_path / "m.json")
