"""`irlvla b2d metrics` refuses records that would falsify the numbers, unless an --allow-... option says otherwise.

Expected values by hand: three routes scoring 100, 50 and 20 (route 2 failing) over a denominator of 3.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest

from bench2drive_eval.records import INFRACTION_KEYS, RecordError
from bench2drive_eval.validation import RecordPolicy, check_records
from irlvla.cli import main


def rec(rid: int, composed: float, status: str = "Completed", rep: int = 0) -> dict:
    return {
        "route_id": f"RouteScenario_{rid}_rep{rep}",
        "scenario_name": "Accident_1",
        "save_name": f"s{rid}",
        "status": status,
        "infractions": {k: [] for k in INFRACTION_KEYS},
        "scores": {"score_route": 100.0, "score_penalty": composed / 100.0, "score_composed": composed},
        "meta": {"route_length": 100.0, "duration_game": 1.0, "duration_system": 1.0},
    }


GOOD = [rec(1, 100.0), rec(2, 50.0, "Failed - Agent got blocked"), rec(3, 20.0)]


@pytest.fixture
def files(tmp_path: Path):
    routes = tmp_path / "routes.xml"
    routes.write_text(
        "<routes>"
        + "".join(
            f'<route id="{i}" town="Town01"><waypoints><position x="0" y="0" z="0"/><position x="10" y="0" z="0"/>'
            f'</waypoints><scenarios><scenario name="Accident_{i}" type="Accident"/></scenarios></route>'
            for i in (1, 2, 3)
        )
        + "</routes>"
    )

    def merged(records: list[dict]) -> Path:
        path = tmp_path / "merged.json"
        # json.dumps writes NaN as the bare token NaN, as Python-written result files do
        path.write_text(json.dumps({"_checkpoint": {"records": records}}))
        return path

    return tmp_path, routes, merged


def run_metrics(tmp_path: Path, routes: Path, merged: Path, *extra: str) -> tuple[int, dict | None]:
    out = tmp_path / "m.json"
    out.unlink(missing_ok=True)
    args = ["b2d", "metrics", "--merged", str(merged), "--routes", str(routes), "--json", str(out)]
    rc = main([*args, "--denominator", "3", "--no-plot", *extra])
    if not out.exists():
        return rc, None

    def no_constants(name: str):
        raise AssertionError(f"{name} written into JSON")

    return rc, json.loads(out.read_text(), parse_constant=no_constants)


def test_good_records_score_as_by_hand(files) -> None:
    tmp_path, routes, merged = files
    rc, m = run_metrics(tmp_path, routes, merged(GOOD))
    assert rc == 0
    assert m["driving_score"] == pytest.approx(170 / 3)
    assert m["success_rate"] == pytest.approx(200 / 3)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("score_composed", math.nan, "scores.score_composed is nan, not a finite number"),
        ("score_composed", math.inf, "scores.score_composed is inf, not a finite number"),
        ("score_composed", 250.0, "scores.score_composed = 250.0 is outside [0, 100]"),
        ("score_route", -1.0, "scores.score_route = -1.0 is outside [0, 100]"),
        ("score_penalty", 1.5, "scores.score_penalty = 1.5 is outside [0, 1]"),
        ("status", "Done", "unknown status 'Done'"),
    ],
)
def test_bad_record_is_an_error_naming_it(files, caplog: pytest.LogCaptureFixture, key: str, value, message: str):
    tmp_path, routes, merged = files
    bad = rec(3, 20.0)
    if key == "status":
        bad["status"] = value
    else:
        bad["scores"][key] = value
    records = [*GOOD[:2], bad]
    rc, m = run_metrics(tmp_path, routes, merged(records))
    assert rc == 2 and m is None
    assert f"merged.json: record 2 (RouteScenario_3_rep0): {message}" in caplog.text
    # told how to go on anyway: the bad record is left out and listed
    rc, m = run_metrics(tmp_path, routes, merged(records), "--allow-invalid-records", "drop")
    assert rc == 0 and m["driving_score"] == pytest.approx(150 / 3) and m["num_routes"] == 2
    assert [d["route_id"] for d in m["dropped_records"]] == ["RouteScenario_3_rep0"]


def test_duplicate_route_is_an_error_unless_allowed(files, caplog: pytest.LogCaptureFixture) -> None:
    tmp_path, routes, merged = files
    records = [*GOOD, rec(2, 50.0, "Failed - Agent got blocked")]
    rc, _ = run_metrics(tmp_path, routes, merged(records))
    assert rc == 2 and "record 3: second record for RouteScenario_2_rep0 (first: " in caplog.text
    rc, m = run_metrics(tmp_path, routes, merged(records), "--allow-duplicate-records", "keep-first")
    assert rc == 0 and m["driving_score"] == pytest.approx(170 / 3) and m["num_routes"] == 3
    # the official merge counts a duplicated route twice
    rc, m = run_metrics(tmp_path, routes, merged(records), "--allow-duplicate-records", "count-all")
    assert rc == 0 and m["driving_score"] == pytest.approx(220 / 3) and m["num_routes"] == 4


def test_repetitions_are_not_duplicates(files) -> None:
    tmp_path, routes, merged = files
    rc, m = run_metrics(tmp_path, routes, merged([*GOOD, rec(1, 80.0, rep=1)]), "--actual-count")
    assert rc == 0 and m["num_routes"] == 4 and m["driving_score"] == pytest.approx(250 / 4)


def test_route_not_in_the_route_file(files, caplog: pytest.LogCaptureFixture) -> None:
    tmp_path, routes, merged = files
    records = [*GOOD, rec(9, 100.0)]
    rc, _ = run_metrics(tmp_path, routes, merged(records))
    assert rc == 2 and "(RouteScenario_9_rep0): route id not in the route file" in caplog.text
    rc, m = run_metrics(tmp_path, routes, merged(records), "--allow-unknown-routes", "drop")
    assert rc == 0 and m["driving_score"] == pytest.approx(170 / 3)
    rc, m = run_metrics(tmp_path, routes, merged(records), "--allow-unknown-routes", "keep")
    assert rc == 0 and m["driving_score"] == pytest.approx(270 / 3)


def test_missing_metric_info_folder_is_an_error(files, caplog: pytest.LogCaptureFixture) -> None:
    tmp_path, routes, merged = files
    rc, m = run_metrics(tmp_path, routes, merged(GOOD), "--metric-info", "/nonexistent")
    assert rc == 2 and m is None and "--metric-info /nonexistent: no such folder" in caplog.text


def test_duplicates_across_shard_files_are_caught(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    res = tmp_path / "results"
    res.mkdir()
    for i, part in enumerate((GOOD, GOOD[1:2])):
        (res / f"shard_{i:02d}.json").write_text(json.dumps({"_checkpoint": {"records": part}}))
    caplog.set_level(logging.ERROR)
    args = ["b2d", "metrics", "--results", str(res), "--json", str(tmp_path / "m.json"), "--no-plot"]
    assert main(args) == 2
    assert "shard_01.json: record 0: second record for RouteScenario_2_rep0" in caplog.text
    assert main([*args, "--allow-duplicate-records", "count-all", "--denominator", "3"]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["driving_score"] == pytest.approx(220 / 3)


def test_check_records_policy_values() -> None:
    with pytest.raises(ValueError, match="RecordPolicy.duplicates"):
        RecordPolicy(duplicates="sum")
    with pytest.raises(RecordError, match="record 0"):
        check_records([rec(1, math.nan)])
