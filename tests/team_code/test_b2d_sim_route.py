"""Our CARLA leaderboard agent, unchanged, on a closed-loop route of the embedded world (no CARLA)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.closed_loop import RouteSpec, RunnerConfig, run_route
from sim.closed_loop.criteria import CriteriaConfig

AGENT_FILE = Path(__file__).resolve().parents[2] / "team_code" / "irlvla_b2d_agent.py"


def test_tiny_untrained_agent_runs_a_route_end_to_end(tmp_path):
    pytest.importorskip("torch")
    from agent.checkpoint import save_checkpoint
    from agent.config import load_preset
    from agent.model.irlvla import build_model

    save_checkpoint(build_model(load_preset("tiny")), tmp_path / "ckpt" / "tiny.safetensors")
    cfg_file = tmp_path / "agent.yaml"
    cfg_file.write_text("checkpoint: ckpt/tiny.safetensors\ndevice: cpu\n")
    ticks = 3
    config = RunnerConfig(save_path=str(tmp_path / "out"), criteria=CriteriaConfig(tick_cap=ticks))
    seen = []
    res = run_route(
        RouteSpec(1, "straight_road", 0, max_length_m=60.0),
        str(AGENT_FILE),  # loaded by path through get_entry_point(), as the leaderboard does
        config,
        agent_config=str(cfg_file),
        on_tick=lambda info: seen.append(sorted(info.input_data)),
    )
    rec = res.record
    assert rec["status"] == "Failed - TickRuntime", res.error  # ran to the tick cap: no crash, no set-up failure
    assert res.ticks == ticks + 1
    # the leaderboard's input_data: six 1600x900 BGRA cameras, GNSS, IMU, speedometer
    assert seen[0] == sorted(["CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK", "CAM_BACK_LEFT",
                              "CAM_BACK_RIGHT", "GPS", "IMU", "SPEED"])  # fmt: skip
    # the agent logged Bench2Drive's metric_info itself under SAVE_PATH/<save_name>
    info = json.loads((tmp_path / "out" / rec["save_name"] / "metric_info.json").read_text())
    assert len(info) == ticks + 1
