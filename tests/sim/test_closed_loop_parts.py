"""Closed-loop building blocks: vehicle dynamics, sensors, criteria details, suites and the CLI."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from agent import geometry
from sim.closed_loop.dynamics import MKZ2020, DynamicsConfig, VehicleState, step_vehicle
from sim.closed_loop.sensors import SensorRig, SensorSuite


def _ctrl(throttle=0.0, steer=0.0, brake=0.0, **kw):
    return SimpleNamespace(throttle=throttle, steer=steer, brake=brake, **kw)


def _run(state, control, seconds, dt=0.05):
    for _ in range(int(round(seconds / dt))):
        state = step_vehicle(state, control, dt)
    return state


def test_full_brake_stops_at_the_calibrated_deceleration():
    s = _run(VehicleState(0.0, 0.0, 0.0, speed=10.0), _ctrl(brake=1.0), 3.0)
    assert s.speed == 0.0
    # 10 m/s at 4.95 m/s^2 (+ coasting losses): 10^2 / (2 * 5.3) ~ 9.4 m, never less than the brake alone allows
    assert 8.5 < s.x < 10.2


def test_full_throttle_from_rest_and_no_reversing_through_a_brake():
    s = _run(VehicleState(0.0, 0.0, 0.0), _ctrl(throttle=1.0), 1.0)
    assert s.speed == pytest.approx(MKZ2020.throttle_accel_max - MKZ2020.drag(s.speed), abs=0.05)
    s = _run(s, _ctrl(brake=1.0), 3.0)
    assert s.speed == 0.0 and s.x > 0
    held = _run(s, _ctrl(), 1.0)
    assert held.speed == 0.0 and held.x == s.x


def test_steady_turn_radius_and_carla_sign():
    """CARLA steer > 0 turns right (clockwise, negative yaw rate here); the radius is L / tan(steer x 70 deg x k)."""
    cfg = DynamicsConfig(max_lateral_accel=100.0, coast_decel=0.0, drag_coefficient=0.0)
    s = VehicleState(0.0, 0.0, 0.0, speed=5.0)
    for _ in range(100):
        s = step_vehicle(s, _ctrl(steer=0.1), 0.05, cfg)
    assert s.yaw_rate < 0
    expected = cfg.wheelbase / math.tan(0.1 * cfg.steer_gain(5.0))
    assert 5.0 / abs(s.yaw_rate) == pytest.approx(expected, rel=1e-3)
    assert cfg.steer_gain(0.0) == pytest.approx(math.radians(70.0)) and cfg.steer_gain(20 / 3.6) == pytest.approx(
        math.radians(63.0)
    )


def test_grip_caps_lateral_acceleration_and_bad_controls_raise():
    s = _run(VehicleState(0.0, 0.0, 0.0, speed=15.0), _ctrl(steer=1.0, throttle=0.5), 1.0)
    assert abs(s.yaw_rate * s.speed) <= MKZ2020.max_lateral_accel + 1e-9
    with pytest.raises(ValueError, match="throttle"):
        step_vehicle(s, _ctrl(throttle=float("nan")), 0.05)
    with pytest.raises(ValueError, match="steering_curve"):
        DynamicsConfig(steering_curve=((20.0, 0.9), (0.0, 1.0)))


def test_sensors_in_the_leaderboard_formats():
    sensors = [
        {"type": "sensor.other.gnss", "x": -1.4, "y": 0.0, "z": 0.0, "id": "GPS"},
        {"type": "sensor.other.imu", "x": -1.4, "y": 0.0, "z": 0.0, "roll": 0, "pitch": 0, "yaw": 0, "id": "IMU"},
        {"type": "sensor.speedometer", "reading_frequency": 20, "id": "SPEED"},
        {"type": "sensor.lidar.ray_cast", "x": 0, "y": 0, "z": 2.5, "roll": 0, "pitch": 0, "yaw": 0, "id": "LIDAR"},
    ]
    rig = SensorRig.from_sensors(sensors)
    assert rig.cameras is None and [s["id"] for s in rig.unsupported] == ["LIDAR"]
    suite = SensorSuite(rig, 42.0, 2.0, noise=False, nan_compass_ticks=1)
    ego = VehicleState(100.0, 50.0, 0.5, speed=7.0, accel=1.0, yaw_rate=0.2)
    first = suite.read(5, 0, ego)
    assert set(first) == {"GPS", "IMU", "SPEED"} and all(v[0] == 5 for v in first.values())
    assert math.isnan(first["IMU"][1][6])
    data = suite.read(6, 1, ego)
    x, y = geometry.gnss_to_world(data["GPS"][1][0], data["GPS"][1][1], 42.0, 2.0)
    # the antenna: 1.4 m behind the box centre, which is 1.39 m ahead of the rear axle
    assert x == pytest.approx(100.0 - 0.01 * math.cos(0.5), abs=1e-6)
    assert y == pytest.approx(50.0 - 0.01 * math.sin(0.5), abs=1e-6)
    imu = data["IMU"][1]
    assert imu.dtype == np.float64 and imu.shape == (7,)
    assert imu[0] == pytest.approx(1.0) and imu[1] == pytest.approx(-7.0 * 0.2) and imu[2] == pytest.approx(9.81)
    assert imu[5] == pytest.approx(-0.2)  # CARLA yaw rate turns right
    assert geometry.compass_to_heading(imu[6]) == pytest.approx(0.5)
    assert data["SPEED"][1] == {"speed": 7.0}


def test_cameras_render_bgra_at_the_declared_size():
    from sim.closed_loop import RouteSpec, build_route
    from sim.closed_loop.world import LivingWorld

    cam = {"type": "sensor.camera.rgb", "x": 0.8, "y": 0.0, "z": 1.6, "roll": 0.0, "pitch": 0.0, "yaw": 0.0,
           "width": 96, "height": 48, "fov": 70.0, "id": "CAM_FRONT"}  # fmt: skip
    route = build_route(RouteSpec(1, "straight_road", 0, max_length_m=60.0))
    world = LivingWorld(route.scene, route.build)
    ego = route.start_state()
    suite = SensorSuite(SensorRig.from_sensors([cam]), 42.0, 2.0)
    img = suite.read(0, 0, ego, lambda: world.scene_at(ego))["CAM_FRONT"][1]
    assert img.shape == (48, 96, 4) and img.dtype == np.uint8 and (img[..., 3] == 255).all()
    from sim.render import render_cameras

    rgb = render_cameras(world.scene_at(ego), 0, SensorRig.from_sensors([cam]).cameras, ego_pose=ego.pose)
    assert np.array_equal(img[..., 2::-1], rgb["CAM_FRONT"])  # BGRA of the same picture


def test_cli_bad_inputs(tmp_path, capsys):
    from irlvla.cli import main

    bad = tmp_path / "routes.xml"
    bad.write_text("<routes><route id='x'")
    assert main(["drive", "--agent", "expert", "--suite", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "bad --suite" in capsys.readouterr().err
    assert main(["drive", "--agent", "nope", "--suite", "dev", "--out", str(tmp_path / "o")]) == 2
    assert main(["drive", "--agent", "brake", "--suite", "dev", "--routes", "1", "--out", str(tmp_path / "o")]) == 2


def test_record_writes_a_video(tmp_path):
    from sim.closed_loop import RouteSpec, RunnerConfig
    from sim.closed_loop.criteria import CriteriaConfig
    from sim.closed_loop.evaluate import run_suite

    out = tmp_path / "run"
    cfg = RunnerConfig(criteria=CriteriaConfig(tick_cap=30))
    run_suite([RouteSpec(1, "curve", 0, max_length_m=60.0)], "constant-velocity", out, cfg, record=True, progress=False)
    videos = list((out / "videos").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    frames = imageio_ffmpeg.count_frames_and_secs(str(videos[0]))[0]
    assert frames == 16  # 31 ticks at 20 Hz recorded at 10 fps
    assert not list((out / "videos").glob(".*"))  # the streamed temporary file got its final name


def test_a_recording_failure_keeps_the_route_score(tmp_path, monkeypatch, caplog):
    import sim.closed_loop.record as record
    from sim.closed_loop import RouteSpec, RunnerConfig
    from sim.closed_loop.criteria import CriteriaConfig
    from sim.closed_loop.evaluate import run_suite

    def no_encoder(*a, **k):
        raise ImportError("MP4 recording needs imageio-ffmpeg")

    monkeypatch.setattr(record, "VideoWriter", no_encoder)
    out = tmp_path / "run"
    cfg = RunnerConfig(criteria=CriteriaConfig(tick_cap=30))
    summary = run_suite([RouteSpec(1, "curve", 0, max_length_m=60.0)], "constant-velocity", out, cfg, record=True,
                        progress=False)  # fmt: skip
    assert len(summary.records) == 1 and summary.records[0]["status"] != "Failed - Simulation crashed"
    assert "could not write the video" in caplog.text and "imageio-ffmpeg" in caplog.text
    assert not (out / "videos").exists() or not list((out / "videos").iterdir())


def test_min_speed_checkpoints_as_bench2drive_makes_them():
    """A 100 m route with points every metre: sections are 5 m and a checkpoint closes when the index is strictly
    more than 5 m past the last one, so at 6, 12, ..., 96 m (16 events), plus one at the end past 95 %."""
    from sim.closed_loop.criteria import MinimumSpeedTest

    test = MinimumSpeedTest(np.arange(101.0), 20)
    traffic = np.array([8.0, 12.0])  # mean 10 m/s
    for index in range(101):
        # 0..5 m at 5 m/s, then no traffic (these ticks are skipped), then 20 m/s
        speed, seen = (5.0, traffic) if index <= 5 else ((3.0, np.zeros(0)) if index <= 11 else (20.0, traffic))
        test.update(index, speed, seen)
    test.finish(100)
    assert len(test.events) == 17
    assert test.events[0] == "Average speed is 50.0% of the surrounding traffic's one"
    assert test.events[1] == "Average speed is 100% of the surrounding traffic's one"  # no samples: the integer 100
    assert test.events[2] == "Average speed is 200.0% of the surrounding traffic's one"
    short = MinimumSpeedTest(np.arange(101.0), 20)
    short.update(50, 5.0, traffic)
    short.finish(50)  # abandoned at half the route: no final event
    assert len(short.events) == 1


def _ev_snapshot(t: float, ev_x: float):
    """The emergency vehicle alone on a road along +x, at `ev_x`."""
    return SimpleNamespace(ids=("ev",), valid=np.array([True]), xy=np.array([[ev_x, 0.0]]), heading=np.array([0.0]),
                           sizes=np.array([[5.0, 2.0, 2.0]]), time_s=t)  # fmt: skip


def test_yield_test_end_conditions_and_event():
    from sim.closed_loop.criteria import YieldToEmergencyVehicleTest

    ego = VehicleState(0.0, 0.0, 0.0)
    centre = np.array([0.0, 0.0])
    # the ego never lets it by: within 50 m from the start, so the scenario ends after 10 s more, ego ahead -> event
    events: list[str] = []
    test = YieldToEmergencyVehicleTest("ev", 2.45, events)
    t = 0.0
    while not test.ended:
        test.update(ego, centre, _ev_snapshot(t, -30.0 + min(t, 2.0)))
        t = round(t + 0.05, 2)
    assert t == pytest.approx(10.05 + 0.05) and events == ["Agent failed to yield to an emergency vehicle"]
    test.finish()  # terminate runs once
    assert len(events) == 1
    # it passes: once in front (past 2.45 + 2.5 m ahead of the ego, within 10 m) it drives 50 m and the scenario ends
    events = []
    test = YieldToEmergencyVehicleTest("ev", 2.45, events)
    x, t = -30.0, 0.0
    while not test.ended:
        test.update(ego, centre + np.array([0.0, -3.5]), _ev_snapshot(t, x))
        x, t = x + 1.0, t + 0.05
    assert events == [] and 4.95 + 50.0 < x < 4.95 + 10.0 + 52.0 and t < 10.0
