"""The HUD inside the CARLA agent: switched on by its config, records per route, never breaks driving."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pygame")  # the `viz` extra

from hud_fixtures import make_plan, make_view

from agent.types import EgoStatus, NavigationCommand, Observation
from team_code.config import AgentConfig
from team_code.controllers import ControlCommand
from viz.agent_hud import AgentHud, set_world_source


def _obs() -> Observation:
    v = make_view()
    return Observation(v.images, v.rig, EgoStatus(np.array([8.5, 0.0]), np.zeros(2), command=NavigationCommand.LEFT))


def test_agent_hud_records_video_picture_and_plans(tmp_path):
    cfg = AgentConfig.from_dict({"hud_record": True, "hud_every": 2})
    hud = AgentHud.for_agent(cfg, str(tmp_path), "route_a")
    set_world_source(lambda: {"info": {"route completion": "5.0 %"}})
    try:
        for _ in range(5):
            hud.show(_obs(), make_plan(), ControlCommand(0.1, 0.5, 0.0))
    finally:
        set_world_source(None)
    assert hud.viewer.frames_shown == 3  # steps 0, 2, 4
    assert hud.viewer.hud.values()["info.route completion"] == "5.0 %"
    assert hud.viewer.hud.values()["navigation"] == "LEFT"
    hud.close()
    folder = tmp_path / "route_a"
    assert (folder / "hud.mp4").stat().st_size > 0 and (folder / "hud.png").is_file()
    plans = json.loads((folder / "hud_plans.json").read_text())
    assert [p["step"] for p in plans] == [0, 1, 2, 3, 4]
    assert plans[0]["epdms"] == 0.93 and plans[0]["submetrics"]["ep"] == 0.731


def test_a_failing_hud_switches_itself_off(tmp_path):
    hud = AgentHud(False, None)
    hud.show(_obs(), object(), ControlCommand(0.0, 0.0, 1.0))  # not a PlanResult: the HUD fails, quietly
    assert hud.failed
    hud.show(_obs(), make_plan(), ControlCommand(0.0, 0.0, 1.0))
    assert hud.viewer.frames_shown == 0
    hud.close()


def test_config_needs_an_output_folder_to_record():
    with pytest.raises(ValueError, match="SAVE_PATH"):
        AgentHud.for_agent(AgentConfig.from_dict({"hud_record": True}), None, "r")
    with pytest.raises(ValueError, match="hud_every"):
        AgentConfig.from_dict({"hud_every": 0})
