"""Submission pickle structure, refusal of privileged agents, and the embedded two-stage run's summary rows
recomputed by hand from its token rows (Gaussian weights of the follow-ups' start points)."""

from __future__ import annotations

import csv
import math
import pickle

import numpy as np
import pytest

import navsim_agent.cli as navsim_cli
from irlvla.cli import main
from navsim_agent.devkit import Trajectory, TrajectorySampling
from navsim_agent.embedded import make_two_stage_set
from navsim_agent.submission import TeamInfo, run_agent, write_submission
from sim.scene_io import load_scene


class ConstantVelocityAgent:
    """NAVSIM's constant-velocity baseline on an AgentInput: current speed held along the current heading."""

    requires_scene = False

    def name(self) -> str:
        return "cv"

    def compute_trajectory(self, agent_input):
        v = float(np.hypot(*agent_input.ego_statuses[-1].ego_velocity))
        t = 0.5 * np.arange(1, 9)
        sampling = TrajectorySampling(time_horizon=4, interval_length=0.5)
        return Trajectory(np.stack([v * t, np.zeros(8), np.zeros(8)], axis=1), sampling)


class PrivilegedAgent(ConstantVelocityAgent):
    requires_scene = True


TEAM = TeamInfo("team", ("A. Author",), "a@b.c", "Uni", "DE")


def test_submission_pickle_has_the_official_structure(tmp_path):
    first = {"tok1": np.zeros((8, 3))}
    second = {"syn1": np.ones((8, 3)), "syn2": np.full((8, 3), 2.0)}
    path = write_submission(tmp_path / "submission.pkl", TEAM, first, second)
    sub = pickle.loads(path.read_bytes())
    assert list(sub) == [
        "team_name", "authors", "email", "institution", "country / region",
        "first_stage_predictions", "second_stage_predictions",
    ]  # fmt: skip
    assert len(sub["first_stage_predictions"]) == 1 and len(sub["second_stage_predictions"]) == 1
    assert set(sub["second_stage_predictions"][0]) == {"syn1", "syn2"}
    traj = sub["first_stage_predictions"][0]["tok1"]
    assert isinstance(traj, Trajectory) and traj.poses.shape == (8, 3)
    with pytest.raises(ValueError, match="empty submission"):
        write_submission(tmp_path / "empty.pkl", TEAM, {}, second)
    with pytest.raises(ValueError, match="non-empty"):
        TeamInfo("", ("x",), "e", "i", "c")


def test_agents_needing_the_privileged_scene_are_refused():
    with pytest.raises(ValueError, match="requires the privileged scene"):
        run_agent(PrivilegedAgent(), ["t"], lambda t: None)


def test_submit_cli_on_an_embedded_set(tmp_path, monkeypatch):
    ts = make_two_stage_set(tmp_path / "set", ["straight_road"], [0], ((0.0, 0.0),))
    monkeypatch.setattr(navsim_cli, "_agent", lambda args: ConstantVelocityAgent())
    out = tmp_path / "submission.pkl"
    args = ["navsim", "submit", "--set", str(ts.folder), "--out", str(out), "--team-name", "t", "--authors", "a"]
    assert main([*args, "--email", "e@x", "--institution", "i", "--country", "c"]) == 0
    sub = pickle.loads(out.read_bytes())
    assert set(sub["first_stage_predictions"][0]) == set(ts.stage_one_tokens())
    assert set(sub["second_stage_predictions"][0]) == set(ts.stage_two_tokens())
    monkeypatch.setattr(navsim_cli, "_agent", lambda args: PrivilegedAgent())
    assert main([*args, "--email", "e@x", "--institution", "i", "--country", "c"]) == 2


def test_two_stage_summary_rows_equal_a_recomputation_from_the_token_rows(tmp_path):
    # two follow-ups per side: on the plan's path and 1 m to its left, so the Gaussian weights are not uniform
    ts = make_two_stage_set(tmp_path / "set", ["straight_road", "curve"], [0], ((0.0, 0.0), (0.0, 1.0)))
    agent = ConstantVelocityAgent()
    rows, path, failed = navsim_cli.evaluate(ts.folder, tmp_path / "s.csv", agent, reactive=False)
    assert failed == {}
    with open(path, newline="") as f:
        recs = {r["token"]: r for r in csv.DictReader(f)}
    score = {t: float(r["score"]) for t, r in recs.items()}

    def end_point(token):  # the constant-velocity plan's raw last pose in world coordinates
        sc = load_scene(ts.scenes / f"{token}.scene.json.gz")
        x, y, h = sc.ego_pose()
        v = float(np.hypot(*sc.ego[sc.current_index, 3:5]))
        return np.array([x + 4.0 * v * math.cos(h), y + 4.0 * v * math.sin(h)])

    def start(token):
        return load_scene(ts.scenes / f"{token}.scene.json.gz").ego_pose()[:2]

    combined, s1, s2 = [], [], []
    for now, prev, pairs in ts.mapping:
        sides = []
        for first, follow in ((now, [p[0] for p in pairs]), (prev, [p[1] for p in pairs])):
            d2 = np.array([np.sum((start(t) - end_point(first)) ** 2) for t in follow])
            w = np.exp(-d2 / (2 * 0.1))
            w = w / w.sum() if w.sum() > 1e-12 else np.full(len(follow), 1 / len(follow))
            stage_two = float(np.dot(w, [score[t] for t in follow]))
            sides.append((score[first], stage_two))
        combined.append((sides[0][0] * sides[0][1] + sides[1][0] * sides[1][1]) / 2)
        s1 += [sides[0][0], sides[1][0]]
        s2 += [sides[0][1], sides[1][1]]
    assert score["extended_pdm_score_combined"] == pytest.approx(np.mean(combined), abs=1e-12)
    assert score["extended_pdm_score_stage_one"] == pytest.approx(np.mean(s1), abs=1e-12)
    assert score["extended_pdm_score_stage_two"] == pytest.approx(np.mean(s2), abs=1e-12)
