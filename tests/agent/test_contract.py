"""The agent contract (`agent/contract.py`) and the shared EPDMS definition (`agent/epdms_metrics.py`)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from agent.contract import CommandResult, Detections, Planner, PlanResult
from agent.epdms_metrics import EC, EP, EPDMS_COLUMNS, EPDMS_METRICS, EPDMS_WEIGHTS, NC, epdms_from_table
from agent.model.rwm import epdms_from_submetrics
from agent.types import PathPlan, SpeedPlan, Trajectory
from navsim_eval import METRIC_NAMES, aggregate_epdms

STRAIGHT = np.stack([2.0 * np.arange(1, 9), np.zeros(8), np.zeros(8)], axis=-1)


def test_a_plan_with_only_a_trajectory():
    """A planner without alternatives (route follower, expert): one candidate with score 1, no model outputs."""
    r = PlanResult(Trajectory(STRAIGHT))
    assert r.candidates.shape == (1, 8, 3) and np.array_equal(r.candidates[0], STRAIGHT)
    assert r.scores.tolist() == [1.0] and r.selected == 0
    assert r.rewards is None and r.commands is None and r.detections is None and r.hazard is None
    assert math.isnan(r.reward)
    record = json.loads(json.dumps(r.as_dict()))
    assert record["rewards"] is None and record["submetrics_selected"] is None and "speed_command" not in record


def test_plan_result_rejects_inconsistent_shapes():
    traj = Trajectory(STRAIGHT)
    cands = np.stack([STRAIGHT, STRAIGHT])
    with pytest.raises(ValueError, match="candidates given without scores"):
        PlanResult(traj, candidates=cands)
    with pytest.raises(ValueError, match=r"rewards must have shape \(2,\)"):
        PlanResult(traj, candidates=cands, scores=np.ones(2), rewards=np.ones(3))
    with pytest.raises(ValueError, match=r"submetrics must be \(2, 9\)"):
        PlanResult(traj, candidates=cands, scores=np.ones(2), submetrics=np.ones((2, 8)))
    with pytest.raises(ValueError, match="out of range"):
        PlanResult(traj, candidates=cands, scores=np.ones(2), selected=2)
    with pytest.raises(ValueError, match="penalties"):
        PlanResult(traj, candidates=cands, scores=np.ones(2), penalties={"collision": np.zeros(3, bool)})
    with pytest.raises(TypeError, match="Trajectory"):
        PlanResult(STRAIGHT)
    with pytest.raises(TypeError, match="milliseconds"):
        PlanResult(traj, timings={"total": "fast"})


def test_plan_result_record_of_a_model_plan():
    cands = np.stack([STRAIGHT, 0.5 * STRAIGHT])
    sub = np.ones((2, 9))
    sub[1, EP] = 0.5
    cmd = CommandResult.certain(SpeedPlan.MILD_DECEL, PathPlan.SLIGHT_LEFT_TURN, "generation", 3.0, 7)
    r = PlanResult(
        Trajectory(cands[1]), cands, np.array([0.2, 0.9]), selected=1, rewards=np.array([1.0, 0.84375]),
        submetrics=sub, penalties={"collision": np.array([True, False])}, commands=cmd, timings={"total": 12.5},
    )  # fmt: skip
    rec = json.loads(json.dumps(r.as_dict()))
    assert r.reward == 0.84375
    assert rec["submetrics_selected"]["ep"] == 0.5 and rec["collision"] == [True, False]
    assert rec["speed_command"] == "Mild Decel" and rec["path_command"] == "Slight Left Turn"
    assert rec["command_source"] == "generation" and rec["timings_ms"] == {"total": 12.5}
    assert cmd.speed_probs[SpeedPlan.MILD_DECEL] == 1.0 and cmd.path_probs.sum() == 1.0


def test_hazard_detections_and_planner_protocol():
    det = Detections(np.zeros((2, 7)), np.ones(2), np.zeros(2, int), ("car",))
    assert PlanResult(Trajectory(STRAIGHT), detections=det, hazard=1).hazard is True
    with pytest.raises(ValueError, match="Detections"):
        Detections(np.zeros((2, 7)), np.ones(3), np.zeros(2, int), ("car",))

    class StepOnly:
        def step(self, observation): ...

    class Full(StepOnly):
        def reset(self): ...

        def close(self): ...

    assert isinstance(Full(), Planner) and not isinstance(StepOnly(), Planner)


# ------------------------------------------------------------------------------------------------ EPDMS definition
def test_epdms_order_groups_and_weights_are_navsims():
    assert EPDMS_METRICS == ("nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc", "ec")
    assert METRIC_NAMES == EPDMS_COLUMNS and EPDMS_COLUMNS[EC] == "two_frame_extended_comfort"
    assert EPDMS_COLUMNS[NC] == "no_at_fault_collisions"
    assert EPDMS_WEIGHTS == {"ep": 5.0, "ttc": 5.0, "lk": 2.0, "hc": 2.0, "ec": 2.0}  # navsim.md: sum 16


def test_epdms_by_hand_and_the_same_in_scorer_and_reward_model():
    # NC 1, DAC 1, DDC 0.5, TLC 1; EP 0.5, TTC 1, LK 0, HC 1, EC 1:
    # 0.5 * (5 * 0.5 + 5 * 1 + 2 * 0 + 2 * 1 + 2 * 1) / 16 = 0.5 * 11.5 / 16 = 0.359375
    row = np.array([1.0, 1.0, 0.5, 1.0, 0.5, 1.0, 0.0, 1.0, 1.0])
    no_ec = row.copy()
    no_ec[EC] = np.nan  # no previous frame: EC drops out, 0.5 * 9.5 / 14
    table = np.stack([row, no_ec])
    expected = [0.359375, 0.5 * 9.5 / 14]
    assert epdms_from_table(table).tolist() == pytest.approx(expected, abs=1e-15)
    assert aggregate_epdms(table).tolist() == pytest.approx(expected, abs=1e-15)
    rwm = epdms_from_submetrics(torch.tensor(row[None], dtype=torch.float64))
    assert rwm.item() == pytest.approx(expected[0], abs=1e-15)
    with pytest.raises(ValueError, match="9"):
        epdms_from_table(np.ones((2, 8)))
