"""The golden file of official NAVSIM v2.2 scores (tests/navsim_eval/golden), checked in every run without the devkit.

It was produced once with the unmodified devkit (commits in the file) by `python -m navsim_eval.crosscheck.golden
make`: 11 scene families, stage one and stage two, 13 proposals each with EC from the frame 0.5 s earlier, the
official PDM-Closed reference and centreline. Our scorer must reproduce every sub-score and EPDMS to 1e-6.
"""

from __future__ import annotations

import json
from pathlib import Path

from navsim_eval.crosscheck.golden import GOLDEN_FILE, check

GOLDEN = Path(__file__).resolve().parent / "golden"


def test_the_golden_file_names_its_devkit_and_exercises_every_metric():
    doc = json.loads((GOLDEN / GOLDEN_FILE).read_text())
    assert set(doc["devkit"]) == {"navsim", "nuplan-devkit"}
    assert all(len(sha) == 40 for sha in doc["devkit"].values())
    below = [0] * 10
    for case in doc["cases"]:
        for row, epdms in zip(case["official"], case["official_epdms"]):
            for j, v in enumerate([*row, epdms]):
                below[j] += v < 1.0 - 1e-6
    assert all(n > 0 for n in below), f"a metric never fails in the golden file: {below}"


def test_our_scorer_reproduces_the_official_golden_scores():
    n, bad = check(GOLDEN)
    assert n == 286
    assert bad == [], f"{len(bad)} disagreements, first: {bad[:3]}"
