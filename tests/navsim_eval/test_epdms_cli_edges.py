"""`irlvla epdms score` / `baseline` edge cases: clear errors or counted failures, internal errors fail the run,
nothing existing is overwritten by an empty or failed run, and the per-token runner (processes, journal resume)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from epdms_fixtures import straight_plan, straight_road

import navsim_eval.api
from irlvla.cli import main
from navsim_eval.runner import read_journal, score_tokens
from sim.scene_io import save_scene

OLD = "previous results\n"


@pytest.fixture()
def setup(tmp_path):
    scenes = tmp_path / "scenes"
    for tok in ("a", "b"):
        save_scene(straight_road(token=tok), scenes / tok)
    out = tmp_path / "scores.csv"
    out.write_text(OLD)
    return scenes, out


def _score(scenes, traj, out, *extra) -> int:
    return main(["epdms", "score", "--scenes", str(scenes), "--trajectories", str(traj), "--out", str(out), *extra])


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {r["token"]: r for r in csv.DictReader(f)}


@pytest.mark.parametrize("name, content", [("t.json", "{}"), ("t.npz", None)])
def test_an_empty_trajectory_file_is_an_error_and_keeps_the_old_csv(setup, tmp_path, caplog, name, content):
    scenes, out = setup
    traj = tmp_path / name
    if content is None:
        np.savez(traj)
    else:
        traj.write_text(content)
    assert _score(scenes, traj, out) == 2
    assert "holds no trajectories" in caplog.text
    assert out.read_text() == OLD


def test_mapping_tokens_without_a_trajectory_are_counted_failures(setup, tmp_path, caplog):
    scenes, out = setup
    traj = tmp_path / "t.json"
    traj.write_text(json.dumps({"a": straight_plan(10.0).tolist(), "b": straight_plan(10.0).tolist()}))
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps([["a", "b", [["ghost_now", "ghost_prev"]]]]))
    assert _score(scenes, traj, out, "--two-stage", str(mapping)) == 1
    rows = _rows(out)
    assert rows["ghost_now"]["valid"] == "False" and rows["ghost_prev"]["valid"] == "False"
    assert rows["extended_pdm_score_combined"]["valid"] == "False"
    assert "ghost_now of the two-stage mapping has no trajectory" in caplog.text
    assert "2 failed" in caplog.text
    # a mapping none of whose tokens has a trajectory is a clear error, and the CSV above stays
    mapping.write_text(json.dumps([["x", "y", [["z", "w"]]]]))
    before = out.read_text()
    assert _score(scenes, traj, out, "--two-stage", str(mapping)) == 2
    assert "none of its 4 tokens has a trajectory" in caplog.text
    assert out.read_text() == before


def test_out_an_existing_directory_is_a_clear_error(setup, tmp_path, caplog):
    scenes, _ = setup
    traj = tmp_path / "t.json"
    traj.write_text(json.dumps({"a": straight_plan(10.0).tolist()}))
    (tmp_path / "dir.csv").mkdir()
    assert _score(scenes, traj, tmp_path / "dir.csv") == 2
    assert "is a directory" in caplog.text


def test_text_and_ragged_trajectories_fail_their_token_with_what_is_wrong(setup, tmp_path, caplog):
    scenes, out = setup
    ragged = straight_plan(10.0).tolist()
    ragged[3] = [1.0, 2.0]
    traj = tmp_path / "t.json"
    traj.write_text(json.dumps({"a": "straight ahead", "b": ragged}))
    assert _score(scenes, traj, out) == 1
    rows = _rows(out)
    assert rows["a"]["valid"] == "False" and rows["b"]["valid"] == "False"
    assert "token a: the trajectory holds text" in caplog.text
    assert "token b: the trajectory is ragged" in caplog.text
    assert "2 failed" in caplog.text
    npz = tmp_path / "t.npz"
    np.savez(npz, a=np.array([["x"] * 3] * 8), b=straight_plan(10.0))
    assert _score(scenes, npz, out) == 1
    assert _rows(out)["b"]["valid"] == "True"


def test_a_scorer_exception_fails_the_run_with_its_traceback_and_writes_nothing(setup, tmp_path, caplog, monkeypatch):
    scenes, out = setup
    traj = tmp_path / "t.json"
    traj.write_text(json.dumps({"a": straight_plan(10.0).tolist(), "b": straight_plan(10.0).tolist()}))
    real = navsim_eval.api.score_cache

    def buggy(cache, *args, **kwargs):
        if cache.token == "b":
            raise IndexError("index 41 is out of bounds")  # a bug, not bad input
        return real(cache, *args, **kwargs)

    monkeypatch.setattr(navsim_eval.api, "score_cache", buggy)
    assert _score(scenes, traj, out) == 3
    assert "Traceback" in caplog.text and "index 41 is out of bounds" in caplog.text
    assert "failed on 1 token(s) with valid input" in caplog.text
    assert out.read_text() == OLD


def test_baseline_format_follows_the_extension_or_is_refused(setup, tmp_path, caplog):
    scenes, out = setup
    plans_json = tmp_path / "plans.json"
    assert main(["epdms", "baseline", "--scenes", str(scenes), "--agent", "human", "--out", str(plans_json)]) == 0
    data = json.loads(plans_json.read_text())
    assert sorted(data) == ["a", "b"] and np.asarray(data["a"]).shape == (8, 3)
    assert _score(scenes, plans_json, out) == 0
    assert main(["epdms", "baseline", "--scenes", str(scenes), "--out", str(tmp_path / "plans.txt")]) == 2
    assert "must end in .npz or .json" in caplog.text
    assert not (tmp_path / "plans.txt").exists()


def test_process_pool_equals_serial_and_a_journal_resumes(setup, tmp_path, monkeypatch):
    scenes, _ = setup
    plans = {"a": straight_plan(10.0), "b": straight_plan(5.0), "missing": straight_plan(1.0)}
    stages = dict.fromkeys(plans, 1)
    serial = score_tokens(scenes, plans, stages)
    pooled = score_tokens(scenes, plans, stages, workers=2, backend="process")
    for t in ("a", "b"):
        np.testing.assert_array_equal(serial[t].table, pooled[t].table)
        np.testing.assert_array_equal(serial[t].states, pooled[t].states)
    assert not serial["missing"].ok and not serial["missing"].internal
    journal = tmp_path / "j.jsonl"
    first = score_tokens(scenes, {"a": plans["a"]}, stages, journal=journal)
    assert list(read_journal(journal)) == ["a"]

    def must_not_score_again(scenes, token, *args):
        assert token == "b", f"{token} was already in the journal"
        return real(scenes, token, *args)

    import navsim_eval.runner as runner

    real = runner.score_token
    monkeypatch.setattr(runner, "score_token", must_not_score_again)
    second = score_tokens(scenes, {"a": plans["a"], "b": plans["b"]}, stages, journal=journal)
    np.testing.assert_allclose(second["a"].table, first["a"].table, rtol=0, atol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(second["b"].table, serial["b"].table)
    assert sorted(read_journal(journal)) == ["a", "b"]


def test_ray_backend_scores_like_serial_on_a_local_cluster(setup):
    ray = pytest.importorskip("ray")  # optional: pip extra `distributed`
    scenes, _ = setup
    plans = {"a": straight_plan(10.0), "b": straight_plan(5.0)}
    stages = dict.fromkeys(plans, 1)
    serial = score_tokens(scenes, plans, stages)
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    try:
        remote = score_tokens(scenes, plans, stages, workers=2, backend="ray")
    finally:
        ray.shutdown()
    for t in plans:
        np.testing.assert_array_equal(serial[t].table, remote[t].table)
