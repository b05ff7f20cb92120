"""The leaderboard agent: construction as the evaluator does it, sensors, safety and latency handling."""

from __future__ import annotations

import json
import logging
import math
from types import SimpleNamespace

import b2d_harness as H
import numpy as np
import pytest

import team_code.irlvla_b2d_agent as agent_module
from agent.contract import Detections, PlanResult
from agent.types import Trajectory
from team_code.base_agent import downsample_route
from team_code.sensors import validate_sensors


class _StraightPolicy(H.StatelessPlanner):
    """Drives straight ahead at 4 m/s (2 m gaps at 0.5 s)."""

    def __init__(self):
        self.observations = []

    def step(self, obs):
        self.observations.append(obs)
        poses = np.stack([2.0 * np.arange(1, 9), np.zeros(8), np.zeros(8)], axis=-1)
        return PlanResult(Trajectory(poses), timings={"total": 1.0})


class _Raising(H.StatelessPlanner):
    def step(self, obs):
        raise RuntimeError("model exploded")


class _NaN(H.StatelessPlanner):
    def step(self, obs):
        return PlanResult(Trajectory(np.full((8, 3), np.nan)))


class _NotAPlan(H.StatelessPlanner):
    """Returns the pre-contract duck type: an object with a `.trajectory`."""

    def step(self, obs):
        return SimpleNamespace(trajectory=Trajectory(np.zeros((8, 3))))


LAT_REF, LON_REF = 45.5, 9.25


def _setup(tmp_path, policy, save_names=("route_a",), extra_yaml=""):
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"policy_entry_point: 'b2d_harness:current_policy'\nsave_path: '{tmp_path / 'out'}'\n{extra_yaml}")
    H.CURRENT_POLICY[0] = policy
    line = np.stack([np.linspace(0.0, 100.0, 101), np.zeros(101)], axis=-1)
    gps, world = H.build_global_plan(line, LAT_REF, LON_REF)
    config_string = str(cfg)
    agents = []
    for name in save_names:  # the string grows by one "+save_name" per route, as in the Bench2Drive evaluator
        agent, config_string = H.construct_agent(agent_module, config_string, name, gps, world)
        agents.append(agent)
    return agents, config_string


def _drive(agent, steps=5, size=(160, 90), **sensor_kw):
    veh = H.KinematicVehicle(0.0, 0.0, 0.0)
    sensors = H.SensorModel(LAT_REF, LON_REF, **sensor_kw)
    return H.drive(agent, veh, sensors, steps, lambda k, v: H.synthetic_frames(*size, k)), veh


def test_entry_point_growing_config_string_and_sensors(tmp_path, monkeypatch):
    monkeypatch.delenv("SAVE_PATH", raising=False)
    agents, grown = _setup(tmp_path, _StraightPolicy(), save_names=("r0_Town12", "r1_Town12", "r2_Town13"))
    assert agent_module.get_entry_point() == "IrlVlaB2DAgent"
    assert grown == f"{tmp_path / 'agent.yaml'}+r0_Town12+r1_Town12+r2_Town13"
    assert [a.save_name for a in agents] == ["r0_Town12", "r1_Town12", "r2_Town13"]
    assert agents[-1].track.value == "SENSORS"
    assert validate_sensors(agents[-1].sensors(), "SENSORS", agent_track=agents[-1].track)
    assert agent_module.parse_agent_config_string("cfg.yaml") == ("cfg.yaml", None)
    for a in agents:
        a.destroy()


def test_plan_is_downsampled_like_the_leaderboard(tmp_path):
    (agent,), _ = _setup(tmp_path, _StraightPolicy())
    # 101 points 1 m apart: keep 0, then the first point once more than 50 m were summed (52), then the last.
    assert len(agent._global_plan_world_coord) == 3 and len(agent._plan_gps_HACK) == 101
    line = np.stack([np.linspace(0.0, 200.0, 201), np.zeros(201)], axis=-1)
    _, world = H.build_global_plan(line, LAT_REF, LON_REF)
    assert downsample_route(world, 50) == [0, 52, 104, 156, 200]
    opts = lambda s: H.RoadOption.LEFT if 100 <= s < 120 else H.RoadOption.LANEFOLLOW  # noqa: E731
    _, world = H.build_global_plan(line, LAT_REF, LON_REF, options=opts)
    assert downsample_route(world, 50) == [0, 52, 100, 120, 172, 200]
    agent.destroy()


def test_observation_contents(tmp_path):
    policy = _StraightPolicy()
    (agent,), _ = _setup(tmp_path, policy)
    log, veh = _drive(agent, steps=4)
    obs = policy.observations[-1]
    assert set(obs.images) == {"CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK", "CAM_BACK_LEFT",
                               "CAM_BACK_RIGHT"}  # fmt: skip
    assert obs.images["CAM_FRONT"].shape == (396, 704, 3)  # 160x90 -> width 704, aspect kept
    assert obs.rig["CAM_FRONT"].width == 704 and obs.rig["CAM_FRONT"].height == 396
    pose = obs.extras["world_pose"]
    assert pose[:2] == pytest.approx(log.poses[-2][:2], abs=0.05)  # the pose the 4th tick was read at
    assert obs.target_point[0] > 0 and abs(obs.target_point[1]) < 0.1  # route ahead on +x
    assert obs.route.shape == (20, 2) and obs.route[1, 0] - obs.route[0, 0] == pytest.approx(2.0, abs=1e-6)
    assert int(obs.ego.command) == 1  # LANEFOLLOW -> STRAIGHT
    assert obs.extras["lat_lon_ref"] == pytest.approx((LAT_REF, LON_REF), abs=1e-9)
    assert log.controls[-1][1] > 0 and agent.failures == 0
    agent.destroy()


@pytest.mark.parametrize(
    "policy, message",
    [(_Raising(), "model exploded"), (_NaN(), "NaN"), (_NotAPlan(), "not an agent.contract.PlanResult")],
)
def test_failing_step_brakes_logs_and_counts(tmp_path, caplog, policy, message):
    (agent,), _ = _setup(tmp_path, policy)
    with caplog.at_level(logging.ERROR, logger="team_code.irlvla_b2d_agent"):
        log, _ = _drive(agent, steps=8)
    assert agent.failures == 8
    assert all(c == (0.0, 0.0, 1.0) for c in log.controls)
    assert "Traceback" in caplog.text and message in caplog.text
    tracebacks = caplog.text.count("Traceback")
    assert tracebacks == 5  # max_logged_tracebacks, then one-line errors
    agent.destroy()
    data = json.loads((tmp_path / "out" / "route_a" / "metric_info.json").read_text())
    assert len(data) == 8  # metric_info still logged on failed steps


def test_missing_sensor_brakes(tmp_path):
    (agent,), _ = _setup(tmp_path, _StraightPolicy())
    control = agent.run_step({"GPS": (0, np.zeros(3))}, 0.0)
    assert (control.throttle, control.brake) == (0.0, 1.0) and agent.failures == 1
    assert "lacks sensor" in agent.last_command.info["emergency"]
    agent.destroy()


def test_latency_budget_is_logged(tmp_path, caplog):
    (agent,), _ = _setup(tmp_path, _StraightPolicy(), extra_yaml="latency_budget_ms: 0.001\n")
    with caplog.at_level(logging.WARNING, logger="team_code.irlvla_b2d_agent"):
        _drive(agent, steps=3)
    assert agent.slow_steps == 3 and "budget" in caplog.text and "images_ms" in caplog.text
    agent.destroy()


def test_metric_info_written_with_save_path_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SAVE_PATH", str(tmp_path / "env_out"))
    (agent,), _ = _setup(tmp_path, _StraightPolicy(), extra_yaml="metric_flush_every: 3\n")
    _drive(agent, steps=7)
    agent.destroy()
    data = json.loads((tmp_path / "env_out" / "route_a" / "metric_info.json").read_text())
    assert list(data) == [str(i) for i in range(7)]
    rec = data["6"]
    assert set(rec) == {"acceleration", "angular_velocity", "forward_vector", "right_vector", "location", "rotation"}
    assert rec["forward_vector"] == pytest.approx([1.0, 0.0, 0.0], abs=1e-9)  # driving along +x, yaw 0
    assert rec["location"][0] > 1.39  # box centre ahead of the rear axle that started at x = 0


def test_nan_compass_at_start_and_default_policy_error(tmp_path):
    policy = _StraightPolicy()
    (agent,), _ = _setup(tmp_path, policy)
    _drive(agent, steps=3, nan_compass_steps=2)
    assert [o.extras["heading_valid"] for o in policy.observations] == [False, False, True]
    assert all(math.isfinite(o.extras["world_pose"][2]) for o in policy.observations)
    agent.destroy()


class _StopPolicy(H.StatelessPlanner):
    """Always plans to stand still; `detections` optionally reports a car 8 m ahead."""

    def __init__(self, obstacle: bool):
        boxes = np.array([[8.0, 0.0, 0.0, 4.5, 1.9, 0.0, 0.0]]) if obstacle else np.zeros((0, 7))
        self.detections = Detections(boxes, np.ones(len(boxes)), np.zeros(len(boxes), dtype=int), ("car",))

    def step(self, obs):
        return PlanResult(Trajectory(np.zeros((8, 3))), detections=self.detections)


@pytest.mark.parametrize("obstacle", [False, True])
def test_creeps_when_stuck_behind_nothing_only(tmp_path, obstacle):
    yaml = "controller: {stuck_seconds: 1.0, creep_seconds: 0.5}\n"
    (agent,), _ = _setup(tmp_path, _StopPolicy(obstacle), extra_yaml=yaml)
    log, veh = _drive(agent, steps=40)
    agent.destroy()
    if obstacle:
        assert agent.controller.creeps == 0 and veh.x == 0.0
    else:
        assert agent.controller.creeps >= 1 and veh.x > 0.1  # it moved on its own
        assert all(c[2] == 1.0 for c in log.controls[:19])  # braking for the first second


def test_policy_reused_across_routes_and_reset(monkeypatch):
    from team_code.config import AgentConfig

    built = []

    class Resettable:
        resets = 0

        def reset(self):
            self.resets += 1

    def fake_load(cfg):
        built.append(Resettable())
        return built[-1]

    monkeypatch.setattr(agent_module, "load_policy", fake_load)
    monkeypatch.setattr(agent_module, "_POLICY_CACHE", {})
    cfg = AgentConfig(checkpoint="a.safetensors")
    p1, p2 = agent_module.get_policy(cfg), agent_module.get_policy(cfg)
    assert p1 is p2 and len(built) == 1 and p1.resets == 1
    p3 = agent_module.get_policy(AgentConfig(checkpoint="b.safetensors"))
    assert p3 is not p1 and len(built) == 2 and list(agent_module._POLICY_CACHE.values()) == [p3]
    agent_module.get_policy(AgentConfig(checkpoint="b.safetensors", reuse_policy=False))
    assert len(built) == 3


def test_base_is_the_leaderboard_agent_when_importable(monkeypatch):
    import enum
    import importlib
    import sys
    import types

    import team_code.base_agent as base_agent

    class FakeTrack(enum.Enum):
        SENSORS = "SENSORS"

    class FakeAutonomousAgent:
        pass

    mod = types.ModuleType("leaderboard.autoagents.autonomous_agent")
    mod.AutonomousAgent, mod.Track = FakeAutonomousAgent, FakeTrack
    for name, m in {
        "leaderboard": types.ModuleType("leaderboard"),
        "leaderboard.autoagents": types.ModuleType("leaderboard.autoagents"),
        "leaderboard.autoagents.autonomous_agent": mod,
    }.items():
        monkeypatch.setitem(sys.modules, name, m)
    try:
        reloaded = importlib.reload(base_agent)
        assert reloaded.USING_LEADERBOARD and reloaded.BaseAgent is FakeAutonomousAgent
        assert reloaded.AgentTrack is FakeTrack
    finally:
        monkeypatch.undo()
        importlib.reload(base_agent)
    assert not base_agent.USING_LEADERBOARD and base_agent.BaseAgent is base_agent.LocalAutonomousAgent
