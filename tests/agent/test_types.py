"""Boundary types: command vocabulary, rigs with derived calibration, shape and finiteness checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent.types import (
    PATH_PLAN_COMMANDS,
    SPEED_PLAN_COMMANDS,
    CameraRig,
    CameraSpec,
    EgoStatus,
    NavigationCommand,
    Observation,
    PathPlan,
    SpeedPlan,
    Trajectory,
    bench2drive_rig,
    model_rig,
    navsim_rig,
)

# The supplementary's Sec. 3.2, typed again here on purpose (not imported) so a typo in the code is caught.
SEED_SPEED = (
    "Emergency Decel, Full Stop, Creeping, Regenerative Braking, Controlled Decel, Mild Decel Linear, Mild Decel, "
    "Mild Accel, Mild Accel NonLinear, Mild Accel Linear, Aggressive Accel, Constant Speed Loose, Constant Speed Strict"
)
SEED_PATH = (
    "Swerving, Sharp Left Turn, Slight Left Turn, Sharp Right Turn, Slight Right Turn, Straight Strict, "
    "Left LaneChange, Lane Micro Adjust, Right LaneChange"
)


def test_command_vocabulary_matches_the_seed():
    assert SPEED_PLAN_COMMANDS == tuple(SEED_SPEED.split(", "))
    assert PATH_PLAN_COMMANDS == tuple(SEED_PATH.split(", "))
    assert len(SpeedPlan) == 13 and len(PathPlan) == 9
    assert SPEED_PLAN_COMMANDS[SpeedPlan.MILD_ACCEL_NONLINEAR] == "Mild Accel NonLinear"
    assert PATH_PLAN_COMMANDS[PathPlan.RIGHT_LANECHANGE] == "Right LaneChange"


def test_navigation_command_from_carla_road_option():
    assert NavigationCommand.from_carla_road_option(1) is NavigationCommand.LEFT
    assert NavigationCommand.from_carla_road_option(2) is NavigationCommand.RIGHT
    assert NavigationCommand.from_carla_road_option(3) is NavigationCommand.STRAIGHT
    assert NavigationCommand.from_carla_road_option(4) is NavigationCommand.STRAIGHT
    assert NavigationCommand.from_carla_road_option(-1) is NavigationCommand.UNKNOWN
    with pytest.raises(ValueError, match="RoadOption"):
        NavigationCommand.from_carla_road_option(9)
    np.testing.assert_array_equal(NavigationCommand.RIGHT.one_hot(), [0, 0, 1, 0])


def test_bench2drive_rig_focal_lengths_and_mounts():
    rig = bench2drive_rig()
    assert rig.names == (
        "CAM_FRONT",
        "CAM_FRONT_LEFT",
        "CAM_FRONT_RIGHT",
        "CAM_BACK",
        "CAM_BACK_LEFT",
        "CAM_BACK_RIGHT",
    )
    k = rig["CAM_FRONT"].intrinsics
    assert k[0, 0] == pytest.approx(1142.52, abs=0.01)  # 1600 / (2 tan 35 deg)
    assert (k[0, 2], k[1, 2]) == (800.0, 450.0)
    assert rig["CAM_BACK"].intrinsics[0, 0] == pytest.approx(560.17, abs=0.01)
    # CARLA's y right / yaw right become our y left / yaw left: the front-left camera sits left and looks left.
    fl = rig["CAM_FRONT_LEFT"]
    assert fl.y == pytest.approx(0.55) and fl.yaw == pytest.approx(math.radians(55))
    # The camera's optical axis (z) points along its yaw in the ego frame.
    axis = rig["CAM_FRONT_RIGHT"].cam_to_ego[:3, 2]
    np.testing.assert_allclose(axis, [math.cos(math.radians(-55)), math.sin(math.radians(-55)), 0.0], atol=1e-9)


def test_rigs_resize_keeps_fov():
    rig = model_rig()
    assert {(c.width, c.height) for c in rig.cameras} == {(704, 256)}
    assert rig["CAM_FRONT"].intrinsics[0, 0] == pytest.approx(704 / (2 * math.tan(math.radians(35))))
    assert len(navsim_rig()) == 8


def test_camera_spec_rejects_bad_values():
    with pytest.raises(ValueError, match="fov"):
        CameraSpec("c", 0, 0, 1, 0, 190.0, 10, 10)
    with pytest.raises(ValueError, match="resolution"):
        CameraSpec("c", 0, 0, 1, 0, 60.0, 0, 10)
    with pytest.raises(ValueError, match="duplicate"):
        cam = CameraSpec("c", 0, 0, 1, 0, 60.0, 10, 10)
        CameraRig("r", (cam, cam))


def test_trajectory_checks_shape_and_finiteness():
    Trajectory(np.zeros((8, 3)))
    with pytest.raises(ValueError, match="shape"):
        Trajectory(np.zeros((6, 3)))
    bad = np.zeros((8, 3))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Trajectory(bad)


def test_ego_status_and_observation_validation():
    ego = EgoStatus(velocity=[3.0, 4.0], acceleration=[0, 0], command=NavigationCommand.LEFT)
    assert ego.speed == pytest.approx(5.0)
    assert ego.as_vector().shape == (9,)
    with pytest.raises(ValueError, match="shape"):
        EgoStatus(velocity=[1.0, 2.0, 3.0], acceleration=[0, 0])
    with pytest.raises(ValueError, match="NaN"):
        EgoStatus(velocity=[np.inf, 0], acceleration=[0, 0])
    rig = bench2drive_rig(64, 32)
    images = {n: np.zeros((32, 64, 3), np.uint8) for n in rig.names}
    obs = Observation(images, rig, ego, target_point=[10.0, 0.0])
    assert obs.image_stack().shape == (6, 32, 64, 3)
    with pytest.raises(ValueError, match="missing camera"):
        Observation({k: v for k, v in images.items() if k != "CAM_BACK"}, rig, ego)
    wrong = dict(images, CAM_FRONT=np.zeros((32, 64, 4), np.uint8))
    with pytest.raises(ValueError, match="CAM_FRONT"):
        Observation(wrong, rig, ego)
