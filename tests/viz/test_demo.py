"""`irlvla demo` on one short route: our CARLA agent in the closed-loop world, HUD video, report equal to the JSON."""

from __future__ import annotations

import json
import math
import re

import pytest

pytest.importorskip("pygame")  # the `viz` extra

from irlvla.cli import main


@pytest.mark.slow
def test_demo_one_short_route_report_matches_metrics(tmp_path):
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--routes", "1", "--max-seconds", "0.5", "--hud-every", "2"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["trained"] is (metrics["model"]["checkpoint"] is not None)
    (route,) = metrics["routes"]
    assert route["error"] is None, route
    for key in ("driving_score", "route_completion", "infraction_penalty"):
        assert math.isfinite(route[key])
    assert route["predicted_epdms"]["steps"] == 10  # one plan per 20 Hz tick over 0.5 s
    assert 0.0 <= route["predicted_epdms"]["min"] <= route["predicted_epdms"]["mean"] <= route["predicted_epdms"]["max"]
    assert (out / route["video"]).stat().st_size > 0 and (out / route["picture"]).is_file()
    report = (out / "report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith(f"| {route['route_id']} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[3]) == pytest.approx(route["driving_score"], abs=0.005)
    assert float(cells[4]) == pytest.approx(route["route_completion"], abs=0.005)
    assert float(cells[5]) == pytest.approx(route["infraction_penalty"], abs=0.0005)
    mean, lo, hi, steps = re.match(r"([\d.]+) \(([\d.]+)-([\d.]+), (\d+)\)", cells[8]).groups()
    e = route["predicted_epdms"]
    assert (float(mean), float(lo), float(hi), int(steps)) == pytest.approx(
        (e["mean"], e["min"], e["max"], e["steps"]), abs=5e-4
    )
    if not metrics["model"]["trained"]:
        assert "UNTRAINED" in report
