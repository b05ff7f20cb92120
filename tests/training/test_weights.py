"""The shipped checkpoint: under 25 MB, its manifest's sha256 matches, and the CARLA agent's shipped config loads it."""

from __future__ import annotations

import json
from pathlib import Path

from agent.checkpoint import sha256_file
from team_code.config import AgentConfig
from team_code.irlvla_b2d_agent import load_policy

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = REPO / "weights" / "irlvla_b2d.safetensors"


def test_manifest_matches_the_shipped_checkpoint():
    manifest = json.loads((REPO / "weights" / "manifest.json").read_text())
    entry = manifest["irlvla_b2d"]
    assert WEIGHTS.stat().st_size <= 25 * 1024 * 1024 and entry["bytes"] == WEIGHTS.stat().st_size
    assert entry["sha256"] == sha256_file(WEIGHTS)
    assert entry["data"]["train"]["seed_range"][0] >= 100_000 and entry["commands"]


def test_carla_agent_config_starts_with_the_shipped_weights():
    cfg = AgentConfig.from_yaml(REPO / "configs" / "b2d_agent.yaml")
    assert Path(cfg.checkpoint).resolve() == WEIGHTS.resolve()
    cfg.device = "cpu"
    policy = load_policy(cfg)
    assert policy.cfg.name == "tiny"


def test_export_records_how_the_checkpoint_was_made(tiny_data, tiny_il, tmp_path):
    from training.export import export_weights

    run = tmp_path / "run"
    (run / "planner").mkdir(parents=True)
    (run / "data").mkdir()
    (run / "data" / "train").symlink_to(tiny_data, target_is_directory=True)
    (run / "commands.tsv").write_text(f"il\t12\tirlvla train il --out {run}/il\nplanner\t3\tirlvla train planner\n")
    (run / "pipeline.tsv").write_text("pipeline\t14\tcpu2\n")
    (run / "load.tsv").write_text("2026-12-05T00:00:00Z\t1.50 1.00 0.50\n2026-12-05T00:00:30Z\t2.50 1.20 0.60\n")
    errors = {"train": {"top1_ade": 1.0}}
    (run / "planner" / "summary.json").write_text(json.dumps({"errors_before": {}, "errors": errors}))
    (run / "bench_closed_loop.json").write_text(json.dumps({"closed_loop": {"expert": {"ds": 100.0}}}))
    out = tmp_path / "weights" / "shipped.safetensors"
    info = export_weights(run, tiny_il, out, "cpu2", note="test")
    assert info["stages"] == 2 and out.is_file()
    entry = json.loads((out.parent / "manifest.json").read_text())["shipped"]
    assert entry["sha256"] == sha256_file(out) and entry["profile"] == "cpu2" and entry["note"] == "test"
    assert [c["stage"] for c in entry["commands"]] == ["il", "planner"]
    assert entry["commands"][0]["command"] == "irlvla train il --out OUT/il"  # the run folder is not recorded
    assert entry["wall_s_stages_sum"] == 15 and entry["wall_s_elapsed"] == 14
    assert entry["load_average"]["mean_1min"] == 2.0 and entry["load_average"]["samples"] == 2
    assert entry["planner_displacement_errors"]["after"] == errors
    assert entry["benchmark_closed_loop"] == {"expert": {"ds": 100.0}}
    assert entry["benchmark_open_loop"] is None  # no open-loop benchmark in this run
    assert entry["data"]["train"]["samples"] == len(json.loads((tiny_data / "index.json").read_text())["samples"])
