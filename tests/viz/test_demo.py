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


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--routes", "0"], "--routes must be in 1..3"),
        (["--routes", "4"], "--routes must be in 1..3"),
        (["--max-seconds", "0"], "--max-seconds must be > 0"),
        (["--hud-every", "0"], "--hud-every >= 1"),
    ],
)
def test_demo_bad_options_are_refused_before_anything_runs(tmp_path, capsys, argv, message):
    assert main(["demo", "--out", str(tmp_path / "d"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_demo_live_without_a_display_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert main(["demo", "--live", "--out", str(tmp_path / "d")]) == 2
    assert "needs a display" in capsys.readouterr().err
