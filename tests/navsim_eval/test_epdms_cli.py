"""`irlvla epdms score` end to end on hand-made scenes: CSV layout, failed tokens, two-stage mapping."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from epdms_fixtures import agent_track, ego_log, straight_plan, straight_road

from irlvla.cli import main
from navsim_eval.aggregate import CSV_COLUMNS
from sim.scene import AgentType
from sim.scene_io import save_scene


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_score_writes_navsim_csv_and_survives_bad_tokens(tmp_path, caplog):
    scenes = tmp_path / "scenes"
    save_scene(straight_road(token="ok"), scenes / "ok")
    save_scene(straight_road(token="ok_bad_shape"), scenes / "ok_bad_shape")  # a scene, so the shape is what fails
    save_scene(
        # the logged human brakes at 4 m/s^2 and stops 12.5 m on (front at 16.5 m), short of the car at 22.5 m:
        # the human filter does not apply
        straight_road(
            [("car", AgentType.VEHICLE, (5.0, 2.0), agent_track(25.0, 0.0, 0.0))],
            ego=ego_log(10.0, brake=4.0),
            token="crash",
        ),
        scenes / "crash",
    )
    traj = {
        "ok": straight_plan(10.0).tolist(),
        "crash": straight_plan(10.0).tolist(),
        "nan": np.full((8, 3), np.nan).tolist(),  # no scene and NaN poses
        "ok_bad_shape": [[1.0, 2.0]],
    }
    tpath = tmp_path / "traj.json"
    tpath.write_text(json.dumps(traj))
    out = tmp_path / "out" / "scores.csv"
    rc = main(["epdms", "score", "--scenes", str(scenes), "--trajectories", str(tpath), "--out", str(out)])
    assert rc == 1  # some tokens failed, the CSV is still written
    rows = _read(out)
    assert list(rows[0].keys()) == ["", *CSV_COLUMNS]
    by = {r["token"]: r for r in rows}
    assert by["ok"]["valid"] == "True" and float(by["crash"]["no_at_fault_collisions_stage_one"]) == 0.0
    assert by["nan"]["valid"] == "False" and by["nan"]["score"] == ""
    assert by["ok_bad_shape"]["valid"] == "False"
    # EC is missing without a previous frame: the ok token scores (5 EP + 5 + 2 + 2) / 14
    ep = float(by["ok"]["ego_progress_stage_one"])
    assert math.isclose(float(by["ok"]["score"]), (5 * ep + 9) / 14, rel_tol=1e-12)
    s1 = by["extended_pdm_score_stage_one"]
    assert math.isclose(float(s1["score"]), (float(by["ok"]["score"]) + 0.0) / 2)
    failures = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert failures == [
        "token nan failed: token nan: the trajectory contains NaN or infinite values",  # the plan is checked first
        "token ok_bad_shape failed: token ok_bad_shape: the trajectory must have shape (8, 3) x, y, heading, "
        "got (1, 2)",
    ]


def test_two_stage_mapping(tmp_path):
    scenes = tmp_path / "scenes"
    for tok in ("now", "prev"):
        save_scene(straight_road(token=tok), scenes / tok)
    for tok in ("syn_now_a", "syn_prev_a"):
        save_scene(straight_road(token=tok, synthetic=True), scenes / tok)
    plans = {t: straight_plan(10.0) for t in ("now", "prev", "syn_now_a", "syn_prev_a")}
    np.savez(tmp_path / "traj.npz", **plans)
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps([["now", "prev", [["syn_now_a", "syn_prev_a"]]]]))
    out = tmp_path / "s.csv"
    rc = main(
        [
            "epdms",
            "score",
            "--scenes",
            str(scenes),
            "--trajectories",
            str(tmp_path / "traj.npz"),
            "--out",
            str(out),
            "--two-stage",
            str(mapping),
        ]
    )
    assert rc == 0
    by = {r["token"]: r for r in _read(out)}
    # identical plans on identical scenes: EC 1 for both frames of each pair
    assert by["now"]["two_frame_extended_comfort_stage_one"] == "1.0"
    assert by["syn_prev_a"]["two_frame_extended_comfort_stage_two"] == "1.0"
    s_now, s_prev = float(by["now"]["score"]), float(by["prev"]["score"])
    s2_now, s2_prev = float(by["syn_now_a"]["score"]), float(by["syn_prev_a"]["score"])
    # one follow-up per side: its weight is 1
    assert math.isclose(float(by["extended_pdm_score_combined"]["score"]), (s_now * s2_now + s_prev * s2_prev) / 2)
    assert math.isclose(float(by["extended_pdm_score_stage_two"]["score"]), (s2_now + s2_prev) / 2)


@pytest.mark.parametrize(
    "name, content, flag, msg",
    [
        ("t.npz", b"garbage", None, "not a readable .npz"),
        ("t.json", b"{not json", None, "not valid JSON"),
        ("t.json", b"[1, 2]", None, "JSON object"),
        ("map.json", b'[["a", "b", 5]]', "--two-stage", "entry 0 must be"),
        ("map.json", b'[["a", "b", [["x"]]]]', "--two-stage", "malformed follow-up pair"),
    ],
)
def test_unreadable_inputs_exit_2_with_a_message_and_no_csv(tmp_path, caplog, name, content, flag, msg):
    scenes = tmp_path / "scenes"
    save_scene(straight_road(token="ok"), scenes / "ok")
    bad = tmp_path / name
    bad.write_bytes(content)
    traj = tmp_path / "good.json"
    traj.write_text(json.dumps({"ok": straight_plan(10.0).tolist()}))
    args = ["epdms", "score", "--scenes", str(scenes), "--out", str(tmp_path / "s.csv")]
    args += ["--trajectories", str(traj), flag, str(bad)] if flag else ["--trajectories", str(bad)]
    assert main(args) == 2
    assert msg in caplog.text
    assert not (tmp_path / "s.csv").exists()


def test_two_stage_group_with_a_failed_follow_up_is_left_out(tmp_path):
    # group g1 is complete; group g2's follow-up `g2_syn_now` has no scene, so its row is NaN and the group drops out
    # of the combined mean (as NaN does in the official weighted average); the summary rows say valid=False.
    scenes = tmp_path / "scenes"
    toks = ["g1_now", "g1_prev", "g1_syn_now", "g1_syn_prev", "g2_now", "g2_prev", "g2_syn_prev"]
    for tok in toks:
        save_scene(straight_road(token=tok, synthetic="syn" in tok), scenes / tok)
    plans = {t: straight_plan(10.0).tolist() for t in [*toks, "g2_syn_now"]}
    (tmp_path / "traj.json").write_text(json.dumps(plans))
    mapping = [
        ["g1_now", "g1_prev", [["g1_syn_now", "g1_syn_prev"]]],
        ["g2_now", "g2_prev", [["g2_syn_now", "g2_syn_prev"]]],
    ]
    (tmp_path / "map.json").write_text(json.dumps(mapping))
    out = tmp_path / "s.csv"
    args = ["epdms", "score", "--scenes", str(scenes), "--trajectories", str(tmp_path / "traj.json")]
    assert main([*args, "--out", str(out), "--two-stage", str(tmp_path / "map.json")]) == 1
    by = {r["token"]: r for r in _read(out)}
    assert by["g2_syn_now"]["valid"] == "False"
    g1 = (float(by["g1_now"]["score"]) * float(by["g1_syn_now"]["score"])) + (
        float(by["g1_prev"]["score"]) * float(by["g1_syn_prev"]["score"])
    )
    assert math.isclose(float(by["extended_pdm_score_combined"]["score"]), g1 / 2)
    assert all(by[t]["valid"] == "False" for t in ("extended_pdm_score_stage_one", "extended_pdm_score_combined"))


def test_baseline_trajectory_files_score_end_to_end(tmp_path):
    """`epdms baseline` writes plans the scorer reads; the logged expert scores perfectly on the hard constraints."""
    from irlvla.cli import main
    from sim.scenarios import generate_scene
    from sim.scene_io import save_scene

    scenes = tmp_path / "scenes"
    for family, seed in (("straight_road", 0), ("curve", 1)):
        save_scene(generate_scene(family, seed), scenes / f"{family}_{seed}")
    (scenes / "broken.scene.json.gz").write_bytes(b"not gzip")  # skipped with a warning, not fatal
    for agent in ("human", "constant_velocity"):
        traj = tmp_path / f"{agent}.npz"
        assert main(["epdms", "baseline", "--scenes", str(scenes), "--agent", agent, "--out", str(traj)]) == 0
        plans = np.load(traj)
        assert len(plans.files) == 2 and all(plans[k].shape == (8, 3) for k in plans.files)
        out = tmp_path / f"{agent}.csv"
        assert main(["epdms", "score", "--scenes", str(scenes), "--trajectories", str(traj), "--out", str(out)]) == 0
    cv = np.load(tmp_path / "constant_velocity.npz")
    for k in cv.files:  # straight ahead, evenly spaced: x_i = v * 0.5 * i
        np.testing.assert_allclose(cv[k][:, 1:], 0.0)
        np.testing.assert_allclose(np.diff(cv[k][:, 0]), cv[k][0, 0])
    rows = (tmp_path / "human.csv").read_text().splitlines()
    header = rows[0].split(",")
    for row in rows[1:3]:
        cells = dict(zip(header, row.split(",")))
        for m in ("no_at_fault_collisions", "drivable_area_compliance", "traffic_light_compliance"):
            assert float(cells[f"{m}_stage_one"]) == 1.0
    assert main(["epdms", "baseline", "--scenes", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.npz")]) == 2


@pytest.mark.parametrize("model", ["navsim", "logged_path"])
def test_reactive_scoring_with_either_traffic_model(tmp_path, model):
    from irlvla.cli import main
    from sim.scenarios import generate_scene
    from sim.scene_io import save_scene

    scenes = tmp_path / "scenes"
    save_scene(generate_scene("cut_in", 0), scenes / "cut_in_0")
    traj = tmp_path / "human.npz"
    assert main(["epdms", "baseline", "--scenes", str(scenes), "--agent", "human", "--out", str(traj)]) == 0
    out = tmp_path / "reactive.csv"
    args = ["epdms", "score", "--scenes", str(scenes), "--trajectories", str(traj), "--out", str(out)]
    assert main([*args, "--reactive", "--reactive-model", model]) == 0
    header, row = out.read_text().splitlines()[:2]
    cells = dict(zip(header.split(","), row.split(",")))
    assert cells["valid"] == "True" and 0.0 <= float(cells["score"]) <= 1.0
