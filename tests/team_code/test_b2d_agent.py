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
from bench2drive_eval.agent_api import downsample_route
from bench2drive_eval.sensor_rules import validate_sensors


class _StraightPolicy(H.StatelessPlanner):
    """Drives straight ahead at 4 m/s (2 m gaps at 0.5 s)."""

    def __init__(self):
        self.observations = []

    def step(self, obs):
        if obs.token != agent_module.SETUP_CHECK_TOKEN:
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


def _setup(tmp_path, policy, save_names=("route_a",), extra_yaml="", line=None):
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"policy_entry_point: 'b2d_harness:current_policy'\nsave_path: '{tmp_path / 'out'}'\n{extra_yaml}")
    H.CURRENT_POLICY[0] = policy
    if line is None:
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
    (agent,), _ = _setup(tmp_path, policy, extra_yaml="setup_check: false\n")
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


@pytest.mark.parametrize("plan_every", [1, 3])
def test_plans_every_nth_tick_and_follows_the_held_plan_between(tmp_path, plan_every):
    policy = _StraightPolicy()
    (agent,), _ = _setup(tmp_path, policy, extra_yaml=f"plan_every: {plan_every}\n")
    log, veh = _drive(agent, steps=12)
    assert [o.token for o in policy.observations] == [f"route_a:{k}" for k in range(0, 12, plan_every)]
    assert agent.failures == 0 and veh.x > 0.3  # the held ticks drive on the same 4 m/s plan (from rest)
    held = [k for k in range(12) if k % plan_every]
    assert agent.held_steps == len(held)
    assert all(log.controls[k][1] > 0 and log.controls[k][2] == 0.0 for k in held if k > 2)
    agent.destroy()


def test_a_failed_planning_tick_is_not_covered_by_an_older_plan(tmp_path):
    policy = _CurveThenFail(good=1)
    (agent,), _ = _setup(tmp_path, policy, extra_yaml="plan_every: 2\n")
    log, _ = _drive(agent, steps=6)
    # tick 0 plans, 1 holds it, 2 fails (brake), 3, 4 and 5 try to plan again and fail: no stale plan is followed
    assert policy.calls == 5 and agent.failures == 4
    assert [c[2] for c in log.controls] == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
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

    import bench2drive_eval.agent_api as base_agent

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


# ------------------------------------------------------------------------------- robustness (issue 9 item 6)
def _tick(agent, veh, sensors, k, t, frames=None, **overrides):
    data = sensors.read(veh, k, frames or H.synthetic_frames(160, 90, k), frame_id=1000 + k)
    data.update(overrides)
    control = agent.run_step(data, t)
    veh.apply(control, 0.05)
    return control


@pytest.mark.parametrize("bad", ["nan_timestamp", "nan_gnss", "missing_speed", "backwards_timestamp"])
def test_recovers_on_the_next_good_tick(tmp_path, bad):
    policy = _StraightPolicy()
    (agent,), _ = _setup(tmp_path, policy)
    agent.hero_actor = None
    veh = H.KinematicVehicle(0.0, 0.0, 0.0)
    sensors = H.SensorModel(LAT_REF, LON_REF, nan_compass_steps=0)
    for k in range(6):
        _tick(agent, veh, sensors, k, k * 0.05)
    good_before = agent.failures
    data = sensors.read(veh, 6, H.synthetic_frames(160, 90, 6), frame_id=1006)
    t = 6 * 0.05
    if bad == "nan_timestamp":
        t = float("nan")
    elif bad == "backwards_timestamp":
        t = 0.0
    elif bad == "nan_gnss":
        data["GPS"] = (1006, np.array([float("nan"), float("nan"), 0.0]))
    else:
        del data["SPEED"]
    agent.run_step(data, t)
    bad_failed = agent.failures - good_before
    assert bad_failed == (1 if bad in ("nan_gnss", "missing_speed") else 0)  # a usable tick is not wasted
    for k in range(7, 12):
        truth = (veh.x, veh.y)  # the rear axle the sensors read at this tick
        _tick(agent, veh, sensors, k, k * 0.05)
    assert agent.failures == good_before + bad_failed  # every later tick is good again
    pose = policy.observations[-1].extras["world_pose"]
    assert np.all(np.isfinite(pose)) and policy.observations[-1].token == "route_a:11"
    assert pose[:2] == pytest.approx(truth, abs=0.15)  # the filter's dead reckoning across the bad tick
    assert agent._last_timestamp == pytest.approx(11 * 0.05)
    agent.destroy()


class _CurveThenFail(H.StatelessPlanner):
    """Plans a left curve for `good` ticks, then raises."""

    def __init__(self, good: int):
        self.good, self.calls = good, 0

    def step(self, obs):
        if obs.token == agent_module.SETUP_CHECK_TOKEN:
            return _StraightPolicy().step(obs)
        self.calls += 1
        if self.calls > self.good:
            raise RuntimeError("model exploded")
        t = np.arange(1, 9) * 2.0
        poses = np.stack([t, 0.04 * t**2, np.zeros(8)], axis=-1)
        return PlanResult(Trajectory(poses))


def test_emergency_brake_keeps_the_last_good_steering(tmp_path):
    a = np.linspace(0.0, math.pi / 2, 100)
    left_arc = np.stack([20.0 * np.sin(a), 20.0 * (1.0 - np.cos(a))], axis=-1)  # a left turn from the start
    (agent,), _ = _setup(tmp_path, _CurveThenFail(good=5), line=H.resample(left_arc, 1.0))
    log, _ = _drive(agent, steps=8)
    last_good = log.controls[4][0]
    assert last_good < -0.02  # steering left (CARLA: negative)
    assert [c[2] for c in log.controls[5:]] == [1.0, 1.0, 1.0] and agent.failures == 3
    assert all(c[0] == last_good for c in log.controls[5:])  # the wheels stay where they were
    agent.destroy()


@pytest.mark.parametrize("policy", [_Raising(), _NaN()], ids=["raising", "nan"])
def test_a_broken_policy_fails_setup(tmp_path, policy):
    with pytest.raises(RuntimeError, match="setup check: the policy cannot plan on a blank frame"):
        _setup(tmp_path, policy)


def test_a_pretrained_vlm_without_model_path_fails_setup(tmp_path):
    """The `full` preset's mistake in small: a checkpoint whose VLM is `pretrained` with no `model_path`."""
    import torch

    from agent.checkpoint import save_checkpoint
    from agent.config import load_preset
    from agent.model.irlvla import build_model

    torch.manual_seed(0)
    cfg = load_preset("tiny", vlm={"backend": "pretrained", "model_path": None})
    ckpt = save_checkpoint(build_model(cfg), tmp_path / "w" / "vlm.safetensors")
    yaml = tmp_path / "agent.yaml"
    yaml.write_text(f"checkpoint: '{ckpt}'\ndevice: cpu\nreuse_policy: false\n")
    line = np.stack([np.linspace(0.0, 100.0, 101), np.zeros(101)], axis=-1)
    gps, world = H.build_global_plan(line, LAT_REF, LON_REF)
    with pytest.raises(FileNotFoundError, match="backend='pretrained' needs model_path"):  # the policy builds its VLM
        H.construct_agent(agent_module, str(yaml), "route", gps, world)


class _StopWith(H.StatelessPlanner):
    """Plans to stand still and reports `detections` as given (None: the planner reports no perception)."""

    def __init__(self, detections):
        self.detections = detections

    def step(self, obs):
        return PlanResult(Trajectory(np.zeros((8, 3))), detections=self.detections)


def _one_box(box, score):
    return Detections(np.array([box], dtype=np.float64), np.array([score]), np.zeros(1, dtype=int), ("car",))


@pytest.mark.parametrize(
    "detections",
    [
        None,
        _one_box([np.nan, 0.0, 0.0, 4.5, 1.9, 0.0, 0.0], 0.9),
        _one_box([30.0, 0.0, 0.0, 4.5, 1.9, 0.0, 0.0], np.nan),
    ],
    ids=["absent", "nan_box", "nan_score"],
)
def test_unknown_detections_stop_the_creep(tmp_path, detections):
    yaml = "controller: {stuck_seconds: 1.0, creep_seconds: 0.5}\n"
    (agent,), _ = _setup(tmp_path, _StopWith(detections), extra_yaml=yaml)
    _, veh = _drive(agent, steps=40)
    agent.destroy()
    assert agent.controller.creeps == 0 and veh.x == 0.0 and agent.failures == 0


def test_the_resolved_device_is_logged(monkeypatch, caplog):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.INFO, logger="team_code.irlvla_b2d_agent"):
        assert agent_module.resolve_device("auto") == "cpu"
        assert agent_module.resolve_device("cpu") == "cpu"
    assert "policy device: cpu (auto: CUDA is not available, falling back to the CPU)" in caplog.text
    assert "policy device: cpu" in caplog.text.splitlines()[-1]
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        agent_module.resolve_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert agent_module.resolve_device("auto") == "cuda" and agent_module.resolve_device("cuda:0") == "cuda:0"
    with pytest.raises(RuntimeError, match="only 1 GPU"):
        agent_module.resolve_device("cuda:1")


def test_localises_on_a_0916_server(tmp_path, caplog):
    """Plan GNSS from the leaderboard's Mercator, sensor GNSS from 0.9.16's transverse Mercator, 20 km out."""
    from agent import geometry

    def tmerc(x_carla, y_carla):
        lat, lon = geometry.world_to_gnss_tmerc(x_carla, -y_carla, LAT_REF, LON_REF)
        return float(lat), float(lon)

    policy = _StraightPolicy()
    cfg = tmp_path / "agent.yaml"
    cfg.write_text("policy_entry_point: 'b2d_harness:current_policy'\nlocalization: {filter: none}\n")
    H.CURRENT_POLICY[0] = policy
    x0, y0 = 12345.6, 9876.5
    line = np.stack([np.linspace(x0, x0 + 100.0, 101), np.full(101, y0)], axis=-1)
    gps, world = H.build_global_plan(line, LAT_REF, LON_REF)
    with caplog.at_level(logging.INFO, logger="team_code.localization"):
        agent, _ = H.construct_agent(agent_module, str(cfg), "r", gps, world)
        veh = H.KinematicVehicle(x0 - 1.39, y0, 0.0)  # rear axle behind the spawn point (the box centre)
        sensors = H.SensorModel(LAT_REF, LON_REF, gnss=tmerc)
        log = H.drive(agent, veh, sensors, 4, lambda k, v: H.synthetic_frames(160, 90, k))
    assert agent.geo_calibration.model.kind == "mercator" and agent.localizer.model.kind == "tmerc"
    assert "switching" in caplog.text
    pose = policy.observations[-1].extras["world_pose"]
    assert pose[:2] == pytest.approx(log.poses[-2][:2], abs=0.01)
    assert agent.failures == 0
    agent.destroy()


@pytest.mark.parametrize("rerank", [True, False])
def test_rerank_switch_sets_the_selection_reward_weight(tmp_path, monkeypatch, rerank):
    from agent.config import load_preset
    from agent.policy import DrivingPolicy
    from team_code.config import AgentConfig

    model_cfg = load_preset("tiny")
    fake = SimpleNamespace(cfg=model_cfg)
    monkeypatch.setattr(DrivingPolicy, "from_checkpoint", classmethod(lambda cls, *a, **k: fake))
    ckpt = tmp_path / "m.safetensors"
    ckpt.write_bytes(b"")
    policy = agent_module.load_policy(AgentConfig(checkpoint=str(ckpt), device="cpu", rerank=rerank))
    weight = policy.cfg.selection.reward_weight
    assert weight == (model_cfg.selection.reward_weight if rerank else 0.0)
    assert model_cfg.selection.reward_weight > 0  # the model's own config is left alone
    assert policy.cfg.selection.confidence_weight == model_cfg.selection.confidence_weight
    key = agent_module._policy_key(AgentConfig(checkpoint=str(ckpt), rerank=rerank))
    assert key != agent_module._policy_key(AgentConfig(checkpoint=str(ckpt), rerank=not rerank))
