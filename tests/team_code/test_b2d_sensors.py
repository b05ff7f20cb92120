"""Sensor suite: generated from the shared Bench2Drive rig table, and checked by the leaderboard's rules."""

from __future__ import annotations

import math

import pytest

from agent.types import bench2drive_rig
from bench2drive_eval.sensor_rules import SensorConfigurationInvalid, validate_sensors
from team_code.sensors import build_sensors

# The Bench2Drive Zoo camera table (spec section 2), typed here independently: name -> (x, y, yaw, fov).
ZOO_CAMERAS = {
    "CAM_FRONT": (0.80, 0.0, 0.0, 70.0),
    "CAM_FRONT_LEFT": (0.27, -0.55, -55.0, 70.0),
    "CAM_FRONT_RIGHT": (0.27, 0.55, 55.0, 70.0),
    "CAM_BACK": (-2.0, 0.0, 180.0, 110.0),
    "CAM_BACK_LEFT": (-0.32, -0.55, -110.0, 70.0),
    "CAM_BACK_RIGHT": (-0.32, 0.55, 110.0, 70.0),
}


def _by_id():
    return {s["id"]: s for s in build_sensors()}


def test_cameras_match_the_bench2drive_rig():
    sensors = _by_id()
    cams = [s for s in sensors.values() if s["type"] == "sensor.camera.rgb"]
    assert len(cams) == 6
    for name, (x, y, yaw, fov) in ZOO_CAMERAS.items():
        s = sensors[name]
        assert (s["x"], s["y"], s["z"], s["yaw"], s["fov"]) == (x, y, 1.60, yaw, fov)
        assert (s["width"], s["height"], s["roll"], s["pitch"]) == (1600, 900, 0.0, 0.0)


def test_sensor_mounts_agree_with_the_model_rig():
    # Our ego frame: rear axle 1.39 m behind the CARLA box centre, y to the left, yaw counter-clockwise.
    rig = bench2drive_rig()
    for name, (x, y, yaw, fov) in ZOO_CAMERAS.items():
        cam = rig[name]
        assert cam.x == pytest.approx(x + 1.39)
        assert cam.y == pytest.approx(-y)
        assert math.cos(cam.yaw) == pytest.approx(math.cos(math.radians(-yaw)), abs=1e-12)
        assert math.sin(cam.yaw) == pytest.approx(math.sin(math.radians(-yaw)), abs=1e-12)
        assert cam.fov_deg == fov


def test_other_sensors():
    s = _by_id()
    assert s["GPS"]["type"] == "sensor.other.gnss" and (s["GPS"]["x"], s["GPS"]["y"], s["GPS"]["z"]) == (-1.4, 0, 0)
    assert s["IMU"]["type"] == "sensor.other.imu" and (s["IMU"]["x"], s["IMU"]["y"], s["IMU"]["z"]) == (-1.4, 0, 0)
    assert s["SPEED"] == {"type": "sensor.speedometer", "reading_frequency": 20.0, "id": "SPEED"}


def test_suite_is_valid_on_sensors_track():
    counts = validate_sensors(build_sensors(), "SENSORS", agent_track="SENSORS")
    assert counts == {"sensor.camera.rgb": 6, "sensor.other.imu": 1, "sensor.other.gnss": 1, "sensor.speedometer": 1}


def _cam(i, **kw):
    base = {"type": "sensor.camera.rgb", "x": 0.0, "y": 0.0, "z": 1.6, "roll": 0.0, "pitch": 0.0, "yaw": 0.0,
            "width": 10, "height": 10, "fov": 90, "id": f"c{i}"}  # fmt: skip
    base.update(kw)
    return base


@pytest.mark.parametrize(
    "sensors, track, match",
    [
        ([_cam(0), _cam(0)], "SENSORS", "duplicated"),
        ([{"type": "sensor.opendrive_map", "reading_frequency": 1, "id": "map"}], "SENSORS", "not allowed on track"),
        ([{"type": "sensor.opendrive_map", "id": "map"}], "MAP", "reading_frequency"),
        ([{"type": "sensor.camera.depth", "id": "d", "x": 0, "y": 0, "z": 0}], "SENSORS", "not allowed"),
        ([_cam(i) for i in range(9)], "SENSORS", "too many"),
        ([_cam(i) for i in range(5)], "SENSORS_QUALIFIER", "too many"),
        ([_cam(0, z=3.01)], "SENSORS", "radius"),
        ([{k: v for k, v in _cam(0).items() if k != "fov"}], "SENSORS", "fov"),
        ([_cam(0)], "BOGUS", "unknown track"),
    ],
)
def test_invalid_suites_are_rejected(sensors, track, match):
    with pytest.raises(SensorConfigurationInvalid, match=match):
        validate_sensors(sensors, track)


def test_radius_limit_lifted_with_save_path_and_track_mismatch():
    bev = _cam(0, z=50.0, pitch=-90.0)
    assert validate_sensors([bev], "SENSORS", save_path_set=True) == {"sensor.camera.rgb": 1}
    assert validate_sensors([_cam(0, x=1.8, y=1.2, z=1.6)], "SENSORS")  # radius 2.69 m < 3 m
    with pytest.raises(SensorConfigurationInvalid, match="track"):
        validate_sensors([_cam(0)], "SENSORS", agent_track="MAP")
    assert validate_sensors([{"type": "sensor.opendrive_map", "reading_frequency": 1, "id": "m"}], "MAP")


def test_sensors_from_rig_inverts_the_mount_conversion():
    from team_code.sensors import sensors_from_rig

    direct = {s["id"]: s for s in build_sensors() if s["type"] == "sensor.camera.rgb"}
    for s in sensors_from_rig(bench2drive_rig()):
        d = direct[s["id"]]
        for k in ("x", "y", "z", "roll", "pitch", "yaw", "fov", "width", "height"):
            assert s[k] == pytest.approx(d[k], abs=1e-9), (s["id"], k)
    assert validate_sensors(sensors_from_rig(bench2drive_rig(800, 450)), "SENSORS")
