"""Aggregation: EPDMS formula, human filter, two-stage weights and groups, NAVSIM CSV (including the shared one)."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from irlvla.shared_data import shared_path
from navsim_eval.aggregate import (
    CSV_COLUMNS,
    TokenRow,
    TwoStageGroup,
    apply_human_filter,
    assign_weights,
    csv_text,
    pseudo_closed_loop_weights,
    read_navsim_csv,
    stage_one_only_summary,
    two_stage_scores,
)
from navsim_eval.api import aggregate_epdms
from navsim_eval.config import METRIC_NAMES

SHARED_CSV = shared_path("data", "navsim", "diffvla_navhard_two_stage_scores.csv")


def test_epdms_formula_with_and_without_ec():
    #            NC   DAC  DDC  TLC  EP   TTC  LK   HC   EC
    t = np.array(
        [
            [1.0, 1.0, 1.0, 1.0, 0.5, 1.0, 1.0, 1.0, 1.0],  # (2.5 + 5 + 2 + 2 + 2) / 16
            [0.5, 1.0, 0.5, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0],  # 0.25 * (5 + 0 + 2 + 0 + 0) / 16
            [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, np.nan],  # EC missing: (5 + 5 + 0 + 2) / 14
        ]
    )
    np.testing.assert_allclose(aggregate_epdms(t), [13.5 / 16, 0.25 * 7 / 16, 12 / 14])


def test_human_filter_only_on_exact_zeros_and_never_ec():
    agent = np.array([[0.0, 0.0, 0.5, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0]])
    human = np.array([0.5, 0.0, 0.5, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    out = apply_human_filter(agent, human)
    # DAC, TTC, LK set to 1 (human 0); NC not (human 0.5); DDC stays 0.5; EC untouched although the human has 0
    np.testing.assert_array_equal(out[0], [0.0, 1.0, 0.5, 0.0, 0.3, 1.0, 1.0, 0.0, 0.0])


def test_gaussian_weights_by_hand():
    # distances 0 and sqrt(0.2) m: exp(0) = 1 and exp(-0.2 / (2 * 0.1)) = e^-1
    w = pseudo_closed_loop_weights([1.0, 2.0], np.array([[1.0, 2.0], [1.0, 2.0 + math.sqrt(0.2)]]))
    e = math.exp(-1.0)
    np.testing.assert_allclose(w, [1 / (1 + e), e / (1 + e)])
    # everything 100 m away: the sum underflows to 0 -> uniform
    np.testing.assert_allclose(
        pseudo_closed_loop_weights([0, 0], np.array([[100.0, 0], [0, 100.0], [70, 70]])), [1 / 3] * 3
    )


def _row(token, stage, score, **metrics):
    vals = {m: metrics.get(m, 1.0) for m in METRIC_NAMES}
    vals["score"] = score
    return TokenRow(token, stage, vals)


def test_two_stage_group_by_hand():
    rows = {
        "now": _row("now", 1, 0.8, ego_progress=0.6),
        "prev": _row("prev", 1, 0.4, ego_progress=0.2),
        "s_now_a": _row("s_now_a", 2, 1.0),
        "s_prev_a": _row("s_prev_a", 2, 0.5),
        "s_now_b": _row("s_now_b", 2, 0.0),
        "s_prev_b": _row("s_prev_b", 2, 0.25),
    }
    group = TwoStageGroup("now", "prev", [("s_now_a", "s_prev_a"), ("s_now_b", "s_prev_b")])
    # stage-one endpoints: now ends at (0, 0), prev at (10, 0); starts: s_now_a at (0, 0) and s_now_b at
    # (0, sqrt(0.2)) -> weights 1/(1+e^-1), e^-1/(1+e^-1); both prev starts 100 m away -> uniform
    e = math.exp(-1.0)
    endpoints = {"now": (0.0, 0.0), "prev": (10.0, 0.0)}
    starts = {
        "s_now_a": (0.0, 0.0),
        "s_now_b": (0.0, math.sqrt(0.2)),
        "s_prev_a": (110.0, 0.0),
        "s_prev_b": (-90.0, 0.0),
    }
    assign_weights(rows, [group], endpoints, starts)
    assert math.isclose(rows["s_now_a"].weight, 1 / (1 + e)) and math.isclose(rows["s_prev_b"].weight, 0.5)
    combined, s1, s2 = two_stage_scores(rows, [group])
    s2_now = 1.0 / (1 + e) * 1.0 + e / (1 + e) * 0.0
    s2_prev = 0.5 * 0.5 + 0.5 * 0.25
    assert math.isclose(s1["score"], (0.8 + 0.4) / 2)
    assert math.isclose(s2["score"], (s2_now + s2_prev) / 2)
    assert math.isclose(combined["score"], (0.8 * s2_now + 0.4 * s2_prev) / 2)
    # every column is aggregated the same way: EP stage one (0.6 + 0.2) / 2, combined (0.6 * 1 + 0.2 * 1) / 2
    assert math.isclose(s1["ego_progress"], 0.4) and math.isclose(combined["ego_progress"], 0.4)


def test_csv_layout_and_round_trip(tmp_path):
    rows = [_row("a", 1, 0.5), TokenRow.invalid("b", 1, "boom"), _row("c", 2, 0.25)]
    s1 = stage_one_only_summary(rows[:2])
    text = csv_text(rows, s1, {c: 0.3 for c in (*METRIC_NAMES, "score")}, {c: 0.1 for c in (*METRIC_NAMES, "score")})
    lines = list(csv.reader(text.splitlines()))
    assert lines[0] == ["", *CSV_COLUMNS]
    assert [l[1] for l in lines[1:]] == [
        "a",
        "b",
        "c",
        "extended_pdm_score_stage_one",
        "extended_pdm_score_stage_two",
        "extended_pdm_score_combined",
    ]
    assert lines[2][2] == "False" and lines[2][3] == ""  # the failed token: valid False, NaN cells empty
    assert lines[3][3:12] == [""] * 9 and lines[3][12] == "1.0" and lines[3][-1] == "0.25"  # stage-two row
    p = tmp_path / "x.csv"
    p.write_text(text)
    back, summary = read_navsim_csv(p)
    assert [r.token for r in back] == ["a", "b", "c"] and back[2].stage == 2 and not back[1].valid
    assert summary["extended_pdm_score_combined"]["score"] == 0.1
    assert math.isclose(summary["extended_pdm_score_stage_one"]["score"], 0.5)


@pytest.mark.skipif(not SHARED_CSV.is_file(), reason="shared navhard CSV not available")
def test_stage_one_summary_of_the_shared_csv():
    rows, summary = read_navsim_csv(SHARED_CSV)
    assert len(rows) == 5912
    assert sum(r.stage == 1 for r in rows) == 450
    ours = stage_one_only_summary(rows)
    assert ours["score"] == pytest.approx(0.6776147376061762, abs=1e-15)
    ref = summary["extended_pdm_score_stage_one"]
    for m in METRIC_NAMES:
        assert ours[m] == pytest.approx(ref[f"{m}_stage_one"], abs=1e-12)


def test_failed_follow_up_drops_its_group_and_keeps_gaussian_weights():
    # group A: one of its two `now` follow-ups failed (NaN row, no start point). The surviving `now` follow-up gets
    # weight 1 (normalised among the known start points), the failed one NaN, and the NaN row makes group A's `now`
    # side NaN, so group A leaves the combined mean (pandas skips NaN). Group B is complete.
    rows = {
        "a_now": _row("a_now", 1, 0.8),
        "a_prev": _row("a_prev", 1, 0.6),
        "a_s_now_ok": _row("a_s_now_ok", 2, 0.5),
        "a_s_now_bad": TokenRow.invalid("a_s_now_bad", 2, "boom"),
        "a_s_prev_ok": _row("a_s_prev_ok", 2, 1.0),
        "a_s_prev_2": _row("a_s_prev_2", 2, 1.0),
        "b_now": _row("b_now", 1, 1.0),
        "b_prev": _row("b_prev", 1, 0.5),
        "b_s_now": _row("b_s_now", 2, 0.4),
        "b_s_prev": _row("b_s_prev", 2, 0.2),
    }
    groups = [
        TwoStageGroup("a_now", "a_prev", [("a_s_now_ok", "a_s_prev_ok"), ("a_s_now_bad", "a_s_prev_2")]),
        TwoStageGroup("b_now", "b_prev", [("b_s_now", "b_s_prev")]),
    ]
    endpoints = {t: (0.0, 0.0) for t in ("a_now", "a_prev", "b_now", "b_prev")}
    starts = {t: (0.0, 0.0) for t in rows if "_s_" in t and t != "a_s_now_bad"}
    assign_weights(rows, groups, endpoints, starts)
    assert rows["a_s_now_ok"].weight == 1.0 and math.isnan(rows["a_s_now_bad"].weight)
    assert rows["a_s_prev_ok"].weight == 0.5 and rows["a_s_prev_2"].weight == 0.5
    combined, s1, s2 = two_stage_scores(rows, groups)
    # only group B: (1.0 * 0.4 + 0.5 * 0.2) / 2
    assert math.isclose(combined["score"], 0.25)
    # stage one: all four stage-one sides are valid: (0.8 + 0.6 + 1.0 + 0.5) / 4
    assert math.isclose(s1["score"], 2.9 / 4)
    # stage two: sides A-now (NaN, skipped), A-prev 1.0, B-now 0.4, B-prev 0.2
    assert math.isclose(s2["score"], 1.6 / 3)
