"""Closed-loop runner: infractions and scores as the leaderboard defines them, failure isolation, outputs, resume."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from closed_loop_agents import BadSensorsAgent, NaNAgent, RaisingAgent, blind_follower

from bench2drive_eval.scores import PENALTY_FACTORS, route_penalty
from sim.closed_loop import RouteSpec, RunnerConfig, build_route, run_route
from sim.closed_loop.criteria import CriteriaConfig
from sim.closed_loop.evaluate import CHECKPOINT_NAME, run_suite
from sim.closed_loop.suites import is_reserved

FAST = RunnerConfig(criteria=CriteriaConfig(blocked_time_s=3.0))


def _events(rec, key):
    return rec["infractions"][key]


def test_brake_agent_gets_blocked():
    res = run_route(RouteSpec(1, "straight_road", 0, max_length_m=120.0), "brake", RunnerConfig())
    rec = res.record
    assert rec["status"] == "Failed - Agent got blocked"
    assert len(_events(rec, "vehicle_blocked")) == 1 and _events(rec, "vehicle_blocked")[0].startswith(
        "Agent got blocked at (x="
    )
    # 60 s standing (Bench2Drive's AgentBlockedTest) after the ego rolled to a stop from its start speed
    assert 60.0 < rec["meta"]["duration_game"] < 66.0
    assert rec["scores"]["score_route"] < 10.0 and rec["scores"]["score_composed"] < 10.0


def test_parked_car_collision_counted_once_with_the_vehicle_factor():
    route = build_route(RouteSpec(2, "static_obstacle", 2, max_length_m=150.0))
    assert route.scene.metadata["obstacle"] == "parked_car"
    rec = run_route(route, blind_follower(speed=8.0, follow="lane"), FAST).record
    assert len(_events(rec, "collisions_vehicle")) == 1, rec["infractions"]
    assert not _events(rec, "collisions_layout") and not _events(rec, "collisions_pedestrian")
    msg = _events(rec, "collisions_vehicle")[0]
    assert msg.startswith("Agent collided against object with type=vehicle.") and " at (x=" in msg
    expected = PENALTY_FACTORS["collisions_vehicle"] * route_penalty({k: v for k, v in rec["infractions"].items()
                                                                       if not k.startswith("collisions")})  # fmt: skip
    assert rec["scores"]["score_penalty"] == pytest.approx(expected, abs=1e-6)
    assert rec["scores"]["score_composed"] == pytest.approx(rec["scores"]["score_route"] * expected, abs=1e-4)


def test_red_light_runner_gets_the_red_light_penalty():
    rec = run_route(RouteSpec(3, "red_light", 0, max_length_m=120.0), blind_follower(speed=8.0), FAST).record
    assert len(_events(rec, "red_light")) == 1, rec["infractions"]
    assert _events(rec, "red_light")[0].startswith("Agent ran a red light ")
    assert rec["scores"]["score_penalty"] == pytest.approx(route_penalty(rec["infractions"]), abs=1e-6)
    assert rec["scores"]["score_penalty"] <= PENALTY_FACTORS["red_light"] + 1e-9


def test_route_abandoned_halfway_completes_fifty_percent():
    rec = run_route(RouteSpec(4, "straight_road", 1, max_length_m=120.0), blind_follower(6.0, stop_at_fraction=0.5),
                    FAST).record  # fmt: skip
    assert rec["status"] == "Failed - Agent got blocked"
    assert abs(rec["scores"]["score_route"] - 50.0) <= 2.0


def test_expert_and_the_leaderboard_status_of_a_clean_route():
    rec = run_route(RouteSpec(5, "cut_in", 0, max_length_m=120.0), "expert", RunnerConfig()).record
    assert rec["status"] == "Completed"  # min-speed events are always logged, so never "Perfect"
    assert rec["scores"] == {"score_route": 100.0, "score_penalty": 1.0, "score_composed": 100.0}
    ms = _events(rec, "min_speed_infractions")
    # Bench2Drive's 20 sections of length/20, each closed one route point (<= 1 m) late, plus the final event.
    length = rec["meta"]["route_length"]
    assert length // (length / 20 + 1) + 1 <= len(ms) <= 21
    assert all(m.startswith("Average speed is ") and m.endswith("% of the surrounding traffic's one") for m in ms)


@pytest.mark.parametrize(
    ("agent", "status"),
    [
        (RaisingAgent, "Failed - Agent crashed"),
        (NaNAgent, "Failed - Agent crashed"),
        (BadSensorsAgent, "Failed - Agent's sensors were invalid"),
    ],
)
def test_agent_failures_get_the_leaderboard_status(agent, status):
    res = run_route(RouteSpec(6, "straight_road", 0, max_length_m=60.0), agent, RunnerConfig())
    assert res.record["status"] == status
    assert res.error


def test_agent_file_without_entry_point(tmp_path):
    bad = tmp_path / "no_entry.py"
    bad.write_text("class Agent:\n    pass\n")
    res = run_route(RouteSpec(7, "straight_road", 0, max_length_m=60.0), str(bad), RunnerConfig())
    assert res.record["status"] == "Failed - Agent couldn't be set up"
    assert "get_entry_point" in res.error


def test_run_folder_round_trips_through_b2d_metrics_and_resumes(tmp_path):
    from irlvla.cli import main

    specs = [RouteSpec(10, "straight_road", 0, max_length_m=60.0), RouteSpec(11, "curve", 0, max_length_m=60.0)]
    out = tmp_path / "run"
    first = run_suite(specs[:1], "brake", out, FAST, progress=False)
    assert len(first.records) == 1
    # an interrupted run resumes: the finished route is kept as it was, the other one runs
    with pytest.raises(Exception, match="not in this suite"):
        run_suite(specs[1:], "brake", out, FAST, progress=False)
    second = run_suite(specs, "brake", out, FAST, progress=False)
    assert [r["route_id"] for r in second.records] == ["RouteScenario_10_rep0", "RouteScenario_11_rep0"]
    assert second.records[0] == first.records[0]
    doc = json.loads((out / CHECKPOINT_NAME).read_text())
    assert doc["_checkpoint"]["progress"] == [2, 2] and doc["entry_status"] == "Finished"
    for r in doc["_checkpoint"]["records"]:
        assert (out / r["save_name"] / "metric_info.json").is_file()
    assert [p.name for p in out.glob("*.json")] == [CHECKPOINT_NAME]  # what merge_route_json.py -f DIR reads
    metrics = tmp_path / "metrics.json"
    rc = main(["b2d", "metrics", "--results", str(out), "--metric-info", str(out), "--actual-count",
               "--json", str(metrics), "--no-plot"])  # fmt: skip
    assert rc == 0
    got = json.loads(metrics.read_text())
    ds = np.mean([r["scores"]["score_composed"] for r in second.records])
    assert got["driving_score"] == pytest.approx(ds, abs=1e-6)


def test_grown_config_string_and_plan(tmp_path):
    seen = []

    class Probe(blind_follower()):
        def set_global_plan(self, gps, world):
            super().set_global_plan(gps, world)
            seen.append((len(gps), len(self._global_plan_world_coord), [int(o) for _, o in gps]))

        def setup(self, path_to_conf_file):
            super().setup(path_to_conf_file)
            seen.append(path_to_conf_file)

    cfg = replace(FAST, criteria=replace(FAST.criteria, tick_cap=5))
    specs = [RouteSpec(20, "intersection", 0, max_length_m=150.0), RouteSpec(21, "lane_change", 0, max_length_m=150.0)]
    summary = run_suite(specs, Probe, tmp_path / "run", cfg, agent_config="my.yaml", progress=False)
    names = [r["save_name"] for r in summary.records]
    assert seen[1] == f"my.yaml+{names[0]}" and seen[3] == f"my.yaml+{names[0]}+{names[1]}"
    n_dense, n_kept, opts = seen[0]
    assert n_kept < n_dense  # the base class downsampled the dense 1 m plan
    assert {1, 2, 3} & set(opts)  # a junction turn option (LEFT / RIGHT / STRAIGHT)
    assert {5, 6} & set(seen[2][2])  # the overtaking lane change


def test_evaluation_seeds_are_reserved():
    from sim.closed_loop.suites import DEV_SEEDS, HELDOUT_SEEDS, suite_specs

    assert not set(DEV_SEEDS) & set(HELDOUT_SEEDS)
    assert all(is_reserved(s.seed) for s in suite_specs("dev") + suite_specs("heldout"))
    assert not is_reserved(0) and not is_reserved(123456)


ZOO_STYLE_AGENT = """
import carla
from leaderboard.autoagents import autonomous_agent


def get_entry_point():
    return "ZooStyle"


class ZooStyle(autonomous_agent.AutonomousAgent):
    def setup(self, path_to_conf_file):
        self.track = autonomous_agent.Track.SENSORS
        self.conf = path_to_conf_file

    def sensors(self):
        return [
            {"type": "sensor.camera.rgb", "x": 0.80, "y": 0.0, "z": 1.60, "roll": 0.0, "pitch": 0.0, "yaw": 0.0,
             "width": 160, "height": 90, "fov": 70, "id": "CAM_FRONT"},
            {"type": "sensor.other.imu", "x": -1.4, "y": 0.0, "z": 0.0, "roll": 0.0, "pitch": 0.0, "yaw": 0.0,
             "sensor_tick": 0.05, "id": "IMU"},
            {"type": "sensor.other.gnss", "x": -1.4, "y": 0.0, "z": 0.0, "roll": 0.0, "pitch": 0.0, "yaw": 0.0,
             "sensor_tick": 0.01, "id": "GPS"},
            {"type": "sensor.speedometer", "reading_frequency": 20, "id": "SPEED"},
        ]

    def run_step(self, input_data, timestamp):
        frame, img = input_data["CAM_FRONT"]
        assert img.shape == (90, 160, 4) and img.dtype.name == "uint8" and (img[..., 3] == 255).all()
        lat, lon, alt = input_data["GPS"][1]
        assert input_data["IMU"][1].shape == (7,)
        LOG.append((timestamp, float(lat), float(lon), input_data["SPEED"][1]["speed"]))
        return carla.VehicleControl(throttle=0.0, steer=0.0, brake=1.0)


LOG = []
"""


def test_a_zoo_style_agent_file_runs_unchanged(tmp_path):
    """An agent file written for the Bench2Drive leaderboard (imports `carla` and `leaderboard.autoagents`) runs as
    is: loaded by path, entry point, BGRA camera at its declared size, GNSS / IMU / speedometer at 20 Hz."""
    import sys

    from agent import geometry

    path = tmp_path / "zoo_style_agent.py"
    path.write_text(ZOO_STYLE_AGENT)
    cfg = replace(FAST, criteria=replace(FAST.criteria, tick_cap=4), sensor_noise=False)
    spec = RouteSpec(30, "straight_road", 0, max_length_m=60.0)
    res = run_route(spec, str(path), cfg)
    assert res.record["status"] == "Failed - TickRuntime", res.error
    assert "leaderboard" not in sys.modules  # the stand-in module existed only while the file was imported
    log = sys.modules["irlvla_closed_loop_agent_zoo_style_agent"].LOG
    assert [round(t, 2) for t, *_ in log] == [0.0, 0.05, 0.1, 0.15, 0.2]
    # GNSS is the antenna (1.4 m behind the box centre) in CARLA's projection about the route's georeference
    route = build_route(spec)
    x, y = geometry.gnss_to_world(log[0][1], log[0][2], *cfg.georeference)
    start = route.start_state()
    assert np.hypot(x - (start.x - 0.01 * np.cos(start.heading)), y - (start.y - 0.01 * np.sin(start.heading))) < 0.01
    assert log[0][3] == pytest.approx(route.v_start)


def test_give_way_to_the_emergency_vehicle():
    """The expert yields (its path moves right while the route stays in the lane); an agent holding its lane is
    still ahead of the emergency vehicle when the scenario ends: one event, Bench2Drive's 0.7."""
    route = build_route(RouteSpec(30, "yield_emergency", 3, max_length_m=120.0))
    assert route.scenario_type == "YieldToEmergencyVehicle" and route.drive_path is not None
    assert {int(o) for o in route.options} == {4}  # LANEFOLLOW: the route does not tell the agent to yield
    expert = run_route(route, "expert", RunnerConfig()).record
    assert expert["status"] == "Completed" and not _events(expert, "yield_emergency_vehicle_infractions")
    assert expert["scores"]["score_penalty"] == 1.0
    stay = run_route(route, "constant-velocity", RunnerConfig()).record
    assert _events(stay, "yield_emergency_vehicle_infractions") == ["Agent failed to yield to an emergency vehicle"]
    assert stay["scores"]["score_penalty"] == pytest.approx(PENALTY_FACTORS["yield_emergency_vehicle_infractions"])
