"""`irlvla train` is registered; open-loop evaluation scores every policy on the same samples."""

from __future__ import annotations

from irlvla.cli import build_parser
from training.evaluate import evaluate_open_loop, spread


def test_train_subcommands_registered():
    parser = build_parser(["train", "--help"])
    sub = next(a for a in parser._actions if getattr(a, "choices", None) and "train" in a.choices)
    stages = sub.choices["train"]._subparsers._group_actions[0].choices
    assert {"data", "anchors", "il", "rwm-labels", "rwm", "rl", "vlm", "export"} <= set(stages)


def test_open_loop_evaluation(tiny_data, tiny_il):
    assert spread(10, 3) == [0, 4, 9] and spread(4, 0) == [0, 1, 2, 3]
    res = evaluate_open_loop(tiny_data, {"imitation": (str(tiny_il), False), "il+rwm": (str(tiny_il), True)}, 2)
    r = res["results"]
    assert res["samples"] == 2 and set(r) == {"constant_velocity", "expert", "imitation", "il+rwm"}
    for d in r.values():
        assert 0.0 <= d["epdms"] <= 1.0 and len(d["per_sample"]) == 2
