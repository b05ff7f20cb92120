from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench2drive_eval.abilities import abilities, load_junction_fractions
from bench2drive_eval.efficiency import efficiency, route_efficiency
from bench2drive_eval.merge import merge_folder, merged_document
from bench2drive_eval.metrics import MetricsConfig, compute_metrics
from bench2drive_eval.records import INFRACTION_KEYS, RecordError, checkpoint_document, load_records
from bench2drive_eval.routes import parse_routes
from bench2drive_eval.scores import driving_score, infractions_per_km, is_success, success_rate
from irlvla.shared_data import shared_path

DATA = shared_path("data", "bench2drive")
needs_data = pytest.mark.skipif(not (DATA / "UniAD-Base.merged.json").is_file(), reason="shared data absent")


def rec(rid: int, status: str = "Completed", composed: float = 100.0, route: float = 100.0, **infr: list) -> dict:
    infractions = {k: [] for k in INFRACTION_KEYS}
    infractions.update(infr)
    return {
        "route_id": f"RouteScenario_{rid}_rep0",
        "scenario_name": "X_1",
        "save_name": f"RouteScenario_{rid}_rep0_Town01_X_1_0_s",
        "status": status,
        "infractions": infractions,
        "scores": {
            "score_route": route,
            "score_penalty": composed / route if route else 1.0,
            "score_composed": composed,
        },
        "meta": {"route_length": 200.0, "duration_game": 1.0, "duration_system": 1.0},
    }


# ---- golden numbers of the published agents -------------------------------------------------------------------
@needs_data
@pytest.mark.parametrize(
    ("name", "ds", "sr", "eff"), [("UniAD-Base", 45.81, 16.36, 129.21), ("VAD", 42.35, 15.00, 157.9496)]
)
def test_golden_ds_sr_efficiency(name: str, ds: float, sr: float, eff: float) -> None:
    records = load_records(DATA / f"{name}.merged.json")
    assert round(driving_score(records), 2) == ds
    assert round(success_rate(records), 2) == sr
    digits = 4 if name == "VAD" else 2
    assert round(efficiency(records), digits) == eff


@needs_data
def test_golden_uniad_abilities() -> None:
    records = load_records(DATA / "UniAD-Base.merged.json")
    res = abilities(records, parse_routes(DATA / "bench2drive220.xml"))
    got = {k: round(v, 2) for k, v in res.ratios.items() if k != "Traffic_Signs"}
    assert got == {"Overtaking": 17.78, "Merging": 14.10, "Emergency_Brake": 21.67, "Give_Way": 10.00}
    # 218 records for 220 routes: the two missing are left out of the denominators (Merging 78 of 80)
    assert res.counts["Overtaking"] == (8, 45) and res.counts["Merging"][1] == 78
    assert len(res.crashed) == 2 and res.traffic_signs_strict_only


@needs_data
def test_golden_through_compute_metrics_actual_count() -> None:
    records = load_records(DATA / "VAD.merged.json")
    out = compute_metrics(records, cfg=MetricsConfig(denominator=None))
    assert out["num_routes"] == 213 and out["denominator"] == 213
    assert out["driving_score"] == pytest.approx(42.35073638636363 * 220 / 213)


# ---- hand-made records -------------------------------------------------------------------------------------
def test_success_rule() -> None:
    assert is_success(rec(1, min_speed_infractions=["Average speed is 50.0% of the surrounding traffic's one"]))
    assert is_success(rec(1, "Perfect"))
    assert not is_success(rec(1, red_light=["ran a red light"]))
    assert not is_success(rec(1, "Failed - TickRuntime"))


def test_ds_sr_use_the_220_denominator() -> None:
    records = [
        rec(1),
        rec(2, "Failed - Agent got blocked", 40.0, 50.0),
        rec(3, composed=70.0, collisions_vehicle=["x"]),
    ]
    assert driving_score(records) == pytest.approx((100 + 40 + 70) / 220)
    assert success_rate(records) == pytest.approx(100 / 220)
    assert driving_score(records, 3) == pytest.approx(70.0)
    assert success_rate(records, 3) == pytest.approx(100 / 3)


def test_efficiency_regex_and_quirks() -> None:
    msg = "Average speed is {}% of the surrounding traffic's one"
    assert route_efficiency([msg.format("80"), msg.format("120.5"), msg.format("1500")]) == pytest.approx(100.25)
    records = [
        rec(1, min_speed_infractions=[msg.format("80"), msg.format("100")]),  # route mean 90
        rec(2, min_speed_infractions=[msg.format("150")]),  # 150
        rec(3),  # no events: skipped, not counted as zero
    ]
    assert efficiency(records) == pytest.approx(120.0)


def test_infractions_per_km() -> None:
    off = "Agent went outside its route lanes for about 30.0 meters (5.0% of the completed route)"
    records = [rec(1, collisions_vehicle=["a", "b"]), rec(2, route=50.0, composed=50.0, outside_route_lanes=[off])]
    out = infractions_per_km(records)
    km = 0.2 + 0.1  # 200 m at 100 % and 200 m at 50 %
    assert out["km_driven"] == pytest.approx(km)
    assert out["collisions_vehicle"] == pytest.approx(2 / km)
    assert out["outside_route_lanes"] == pytest.approx(0.03)  # km outside lanes, as the leaderboard reports it


def _routes(tmp_path: Path, types: list[str]):
    body = "".join(
        f'<route id="{i}" town="Town01"><waypoints><position x="0" y="0" z="0"/><position x="1" y="0" z="0"/>'
        f'</waypoints><scenarios><scenario name="{t}_1" type="{t}"/></scenarios></route>'
        for i, t in enumerate(types, start=1)
    )
    p = tmp_path / "r.xml"
    p.write_text(f"<routes>{body}</routes>")
    return parse_routes(p)


def test_traffic_signs_junction_rule(tmp_path: Path) -> None:
    # four Traffic_Signs routes: 1 strict success, 2 failed past the junction, 3 failed before it, 4 ran a red light
    routes = _routes(tmp_path, ["T_Junction"] * 4)
    records = [
        rec(1),
        rec(2, "Failed - TickRuntime", 60.0, 60.0),
        rec(3, "Failed - TickRuntime", 30.0, 30.0),
        rec(4, "Failed - TickRuntime", 56.0, 80.0, red_light=["red"]),
    ]
    fr = tmp_path / "j.json"
    # route 2/3 as raw counts: (k + 8) / n = (32 + 8) / 100 = 0.40
    fr.write_text(json.dumps({"1": 0.4, "2": {"first_junction_index": 32, "num_waypoints": 100}, "3": 0.4, "4": 0.4}))
    fractions = load_junction_fractions(fr)
    assert fractions["2"] == pytest.approx(0.40)
    v4 = abilities(records, routes, fractions)
    assert v4.counts["Traffic_Signs"] == (2, 4)  # 1 strict + route 2 (0.6 > 0.4); 3 is short, 4 ran a red light
    assert not v4.traffic_signs_strict_only
    strict = abilities(records, routes)
    assert strict.counts["Traffic_Signs"] == (1, 4) and strict.traffic_signs_strict_only
    # v0.0.3: every route twice in the denominator, strict success and junction pass counted separately
    v3 = abilities(records, routes, fractions, semantics="v0.0.3")
    assert v3.counts["Traffic_Signs"] == (1 + 2, 8)
    # other abilities are unaffected: T_Junction belongs to Traffic_Signs only
    assert v4.counts["Merging"] == (0, 0) and v4.ratios["Merging"] is None and v4.mean is None


def test_bad_junction_file(tmp_path: Path) -> None:
    fr = tmp_path / "j.json"
    fr.write_text(json.dumps({"1": "far"}))
    with pytest.raises(RecordError, match="route 1"):
        load_junction_fractions(fr)


# ---- merge --------------------------------------------------------------------------------------------------
def test_merge_folder_ignores_unrelated_and_flags(tmp_path: Path) -> None:
    routes = _routes(tmp_path, ["Accident", "Accident", "Accident", "Accident"])
    res_dir = tmp_path / "res"
    res_dir.mkdir()
    (res_dir / "shard_0.json").write_text(json.dumps(checkpoint_document([rec(1), rec(2)], 2)))
    (res_dir / "shard_1.json").write_text(json.dumps(checkpoint_document([rec(2, composed=10.0), rec(3)], 2)))
    (res_dir / "merged_ability.json").write_text(json.dumps({"Overtaking": 0.1, "crashed": []}))
    (res_dir / "merged.json").write_text(json.dumps(merged_document([rec(9)])))
    (res_dir / "notes.json").write_text("{broken")
    out = merge_folder(res_dir, routes)
    assert [r["route_id"] for r in out.records] == [f"RouteScenario_{i}_rep0" for i in (3, 2, 1)]
    assert out.duplicates == ["RouteScenario_2_rep0"]
    assert out.missing == ["4"]
    assert set(out.ignored_files) == {"merged_ability.json", "merged.json", "notes.json"}
    assert all("index" not in r for r in out.records)
    doc = merged_document(out.records)
    assert doc["driving score"] == pytest.approx(300 / 220) and doc["eval num"] == 3


def test_record_validation_names_the_problem(tmp_path: Path) -> None:
    p = tmp_path / "c.json"
    bad = rec(1)
    del bad["scores"]["score_composed"]
    p.write_text(json.dumps({"_checkpoint": {"records": [bad]}}))
    with pytest.raises(RecordError, match="scores.score_composed"):
        load_records(p)


def test_atomic_write_leaves_no_temp_and_normal_mode(tmp_path: Path) -> None:
    import os

    from irlvla.atomic import atomic_write_json  # the one helper bench2drive_eval writes with

    atomic_write_json(tmp_path / "a" / "x.json", {"k": 1})
    assert json.loads((tmp_path / "a" / "x.json").read_text()) == {"k": 1}
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["x.json"]
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a" / "x.json").stat().st_mode & 0o777 == 0o666 & ~mask
