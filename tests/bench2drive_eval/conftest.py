"""The launcher tests' run fixture (helpers and constants live in b2d_launcher_support)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from b2d_launcher_support import AGENT, EVALUATOR, IDS, SERVER

from bench2drive_eval.launcher.config import LaunchConfig


@pytest.fixture
def run_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("FAKE_B2D_STATE", str(state))
    monkeypatch.setenv("FAKE_CARLA_STATE", str(state))
    monkeypatch.setenv("FAKE_B2D_ROUTE_SECONDS", "0.02")
    body = "".join(
        f'<route id="{i}" town="Town01"><waypoints><position x="0" y="0" z="0"/><position x="10" y="0" z="0"/>'
        f'</waypoints><scenarios><scenario name="Accident_{i}" type="Accident"/></scenarios></route>\n'
        for i in IDS
    )
    routes = tmp_path / "routes.xml"
    routes.write_text(f"<routes>\n{body}</routes>\n")
    (tmp_path / "agent.py").write_text(AGENT)
    (tmp_path / "cfg.yaml").write_text("preset: tiny\n")
    cfg = LaunchConfig(
        routes=routes,
        agent=tmp_path / "agent.py",
        agent_config=str(tmp_path / "cfg.yaml"),
        out=tmp_path / "out",
        gpus=(0, 1),
        evaluator_cmd=EVALUATOR,
        server_cmd=SERVER,
        base_port=31000 + (os.getpid() % 500) * 30,
        base_tm_port=52000,
        server_mode="own",
        route_timeout_s=60.0,
        server_startup_s=10.0,
        evaluator_startup_s=30.0,
        poll_s=0.05,
        progress_s=0.2,
        kill_grace_s=1.0,
        max_route_attempts=3,
    )
    return cfg, state
