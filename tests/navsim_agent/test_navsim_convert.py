"""NAVSIM inputs -> our types: camera specs from intrinsics + sensor-to-lidar, ego status, driving command."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from agent.types import CameraSpec, NavigationCommand
from navsim_agent.convert import camera_spec, ego_status, metric_cache_inputs, yaw_rate_from_history


def test_a_camera_round_trips_through_navsim_intrinsics_and_sensor2lidar():
    spec = CameraSpec("CAM_FRONT_LEFT", 1.55, 0.45, 1.6, math.radians(55.0), 63.7, 704, 396, 0.05, -0.02)
    m = spec.cam_to_ego
    got = camera_spec("CAM_FRONT_LEFT", spec.intrinsics, m[:3, :3], m[:3, 3], 704, 396)
    np.testing.assert_allclose(got.cam_to_ego, m, atol=1e-12)
    np.testing.assert_allclose(got.intrinsics, spec.intrinsics, atol=1e-9)
    assert got.fov_deg == pytest.approx(63.7, abs=1e-9)


def test_navsim_camera_poses_are_taken_as_rear_axle_poses_by_default():
    # OpenScene's `sensor2lidar_*` are nuPlan's camera extrinsics relative to the ego (rear-axle) frame, not to the
    # lidar (mounted elsewhere, with its own `lidar2ego_*`): by default the translation is the mount, unchanged
    r = CameraSpec("CAM_FRONT", 0.0, 0.0, 0.0, 0.0, 70.0, 640, 360).cam_to_ego[:3, :3]
    got = camera_spec(
        "CAM_FRONT", CameraSpec("x", 0, 0, 0, 0, 70.0, 640, 360).intrinsics, r, [1.7, -0.1, 1.9], 640, 360
    )
    assert (got.x, got.y, got.z) == pytest.approx((1.7, -0.1, 1.9))
    assert got.yaw == pytest.approx(0.0) and got.pitch == pytest.approx(0.0)


def test_the_lidar_pose_moves_cameras_into_the_rear_axle_frame():
    spec = CameraSpec("CAM_FRONT", 0.0, 0.0, 0.3, 0.0, 70.0, 640, 360)
    m = spec.cam_to_ego
    lidar_to_ego = np.eye(4)
    lidar_to_ego[:3, 3] = (1.5, 0.0, 1.8)  # a lidar 1.5 m ahead of the rear axle and 1.8 m up
    got = camera_spec("CAM_FRONT", spec.intrinsics, m[:3, :3], m[:3, 3], 640, 360, lidar_to_ego)
    assert (got.x, got.y, got.z) == pytest.approx((1.5, 0.0, 2.1))


def test_bad_cameras_are_refused():
    spec = CameraSpec("c", 0, 0, 1, 0, 70, 640, 360)
    k = spec.intrinsics.copy()
    k[0, 2] = 400.0  # principal point 80 px (12.5 %) right of centre: our ideal pinhole cannot represent it
    with pytest.raises(ValueError, match="principal point"):
        camera_spec("c", k, spec.cam_to_ego[:3, :3], np.zeros(3), 640, 360)
    with pytest.raises(ValueError, match="not a rotation"):
        camera_spec("c", spec.intrinsics, 2 * np.eye(3), np.zeros(3), 640, 360)


def test_ego_status_command_and_yaw_rate():
    st = SimpleNamespace(ego_velocity=[5.0, 0.2], ego_acceleration=[0.5, 0.0], driving_command=[0, 0, 1, 0])
    ego = ego_status(st, yaw_rate=0.2)
    assert ego.command == NavigationCommand.RIGHT and ego.speed == pytest.approx(math.hypot(5.0, 0.2))
    unknown = ego_status(SimpleNamespace(ego_velocity=[0, 0], ego_acceleration=[0, 0], driving_command=[0, 0, 0, 0]))
    assert unknown.command == NavigationCommand.UNKNOWN
    with pytest.raises(ValueError, match="4-way"):
        ego_status(SimpleNamespace(ego_velocity=[0, 0], ego_acceleration=[0, 0], driving_command=[1, 0, 0]))
    # the previous frame (0.5 s ago) had heading -0.1 in the current frame: turning left at 0.2 rad/s
    hist = [SimpleNamespace(ego_pose=np.array([-2.0, 0.1, -0.1])), SimpleNamespace(ego_pose=np.zeros(3))]
    assert yaw_rate_from_history(hist) == pytest.approx(0.2)


def test_metric_cache_reference_and_centreline_are_read_as_given():
    pose = lambda x, y, h: SimpleNamespace(x=x, y=y, heading=h)  # noqa: E731
    cache = SimpleNamespace(
        trajectory=SimpleNamespace(
            get_sampled_trajectory=lambda: [SimpleNamespace(rear_axle=pose(i, 0, 0)) for i in range(3)]
        ),
        centerline=SimpleNamespace(discrete_path=[pose(0, 0, 0), pose(5, 1, 0.2)]),
    )
    ref, line = metric_cache_inputs(cache)
    np.testing.assert_array_equal(ref, [[0, 0, 0], [1, 0, 0], [2, 0, 0]])
    np.testing.assert_array_equal(line, [[0, 0, 0], [5, 1, 0.2]])
