from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import pytest

from bench2drive_eval.report import markdown_table, plot_metrics

METRICS = {
    "driving_score": 45.813164,
    "success_rate": 16.363636,
    "efficiency": 129.208444,
    "comfort": None,
    "abilities": {
        "Overtaking": 17.7777,
        "Merging": 14.1025,
        "Emergency_Brake": 21.6666,
        "Give_Way": 10.0,
        "Traffic_Signs": 4.2105,
        "mean": 13.5515,
    },
    "infractions_per_km": {"collisions_vehicle": 6.5, "red_light": 0.74, "outside_route_lanes": 0.63},
    "notes": ["Traffic_Signs counts strict successes only (no junction-fraction data)"],
}


def test_markdown_table_rounds_only_when_printing() -> None:
    table = markdown_table(METRICS, "UniAD-Base")
    assert "| UniAD-Base | 45.81 | 16.36 | 129.21 | - |" in table
    assert "| UniAD-Base | 17.78 | 14.10 | 21.67 | 10.00 | 4.21 | 13.55 |" in table
    assert "| Method | Overtaking | Merging | Emergency Brake | Give Way | Traffic Signs | Mean |" in table
    assert "- Traffic_Signs counts strict successes only" in table


def test_plot_skipped_without_matplotlib(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hide matplotlib (a None entry in sys.modules makes `import matplotlib` raise ImportError) whether or not it is
    installed: the report must still be written, the plot skipped with a warning naming the extra."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    caplog.set_level(logging.WARNING)
    assert plot_metrics(METRICS, tmp_path / "m.png") is None
    assert "irlvla[viz]" in caplog.text and not (tmp_path / "m.png").exists()


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib not installed")
def test_plot_writes_png(tmp_path: Path) -> None:
    path = plot_metrics(METRICS, tmp_path / "m.png")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
