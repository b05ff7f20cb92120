"""`benchmarks/bench_policy.py`: both halves on tiny data with a (barely trained) tiny model, one short route."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from sim.closed_loop.compare import route_subset
from sim.closed_loop.route import RouteSpec
from sim.closed_loop.suites import load_suite

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_policy", ROOT / "benchmarks" / "bench_policy.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_route_subset_is_seeded_and_spreads_families():
    specs, _, _ = load_suite("heldout")
    k = len({s.family for s in specs})
    a, b = route_subset(specs, k, seed=3, suite="heldout"), route_subset(specs, k, seed=3, suite="heldout")
    assert [s.route_id for s in a.specs] == [s.route_id for s in b.specs]  # the same seed, the same routes
    assert len({s.family for s in a.specs}) == k  # as many routes as families: one of each
    assert a.name == f"heldout ({k} of {len(specs)} routes, seed 3)"
    assert [s.route_id for s in route_subset(specs, k, seed=4).specs] != [s.route_id for s in a.specs]
    assert route_subset(specs, None).specs == specs and route_subset(specs, 100).seed is None
    with pytest.raises(ValueError, match="at least 1"):
        route_subset(specs, 0)
    two = [RouteSpec(1, "curve", 0), RouteSpec(2, "curve", 1), RouteSpec(3, "merge", 2)]
    assert {s.family for s in route_subset(two, 2, seed=0).specs} == {"curve", "merge"}


def test_open_and_closed_loop_json(tiny_data, tiny_il, tmp_path):
    out = tmp_path / "bench.json"
    cl = tmp_path / "cl"
    argv = ["--data", str(tiny_data), "--max-samples", "1", "--il", str(tiny_il), "--rwm", str(tiny_il),
            "--closed-loop-routes", "1", "--closed-loop-suite", "dev", "--closed-loop-out", str(cl),
            "--closed-loop-tick-cap", "6", "--closed-loop-workers", "2", "--out", str(out)]  # fmt: skip
    assert _bench().main(argv) == 0
    doc = json.loads(out.read_text())
    assert set(doc["open_loop"]) == {"constant_velocity", "expert", "imitation", "imitation+rwm"}
    c = doc["closed_loop"]
    assert c["suite"] == "dev" and len(c["route_ids"]) == 1 and c["tick_cap"] == 6
    assert list(c["policies"]) == ["constant_velocity", "expert", "imitation", "imitation+rwm"]
    for name, r in c["policies"].items():
        assert r["num_routes"] == 1 and 0.0 <= r["driving_score"] <= 100.0, name
        # 6 ticks of a 250 m route: the tick cap ends it (our agent must not crash or fail to set up)
        assert list(r["statuses"]) == ["Failed - TickRuntime"], (name, r["statuses"])
        assert set(r["infractions"]) >= {"collisions_vehicle", "red_light", "route_dev"}
        assert (cl / r["run_dir"].split("/")[-1] / "simulation_results.json").is_file()
    cfg_off = (cl / "configs" / "imitation.yaml").read_text()
    cfg_on = (cl / "configs" / "imitation_plus_rwm.yaml").read_text()
    assert "rerank: false" in cfg_off and "rerank: true" in cfg_on and str(tiny_il.resolve()) in cfg_on
    assert c["policies"]["imitation"]["agent_config"].endswith("imitation.yaml")
    assert set(c["delta_driving_score"]) == {"constant_velocity", "expert", "imitation+rwm"}
    # a rerun resumes: every route is already in its run folder, nothing is driven again
    again = _bench().main(argv[:-2] + ["--no-open-loop"])
    assert again == 0


def test_closed_loop_needs_an_output_folder(tiny_il):
    with pytest.raises(SystemExit):
        _bench().main(["--no-open-loop", "--il", str(tiny_il), "--rwm", str(tiny_il), "--closed-loop-routes", "2"])
    with pytest.raises(SystemExit):
        _bench().main(["--il", str(tiny_il), "--rwm", str(tiny_il)])  # the open loop needs --data
