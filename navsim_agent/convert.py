"""NAVSIM inputs into our types: cameras (intrinsics, sensor-to-lidar) into camera specs, ego status and the 4-way
driving command into an `Observation`, and a metric cache's reference and centreline into a `SceneCache`.

NAVSIM names each camera's pose `sensor2lidar_*`, but in the OpenScene data NAVSIM reads it is the nuPlan camera
extrinsic, which is relative to the ego vehicle frame, and NAVSIM's ego pose is the rear axle. Sources: OpenScene's
`DriveEngine/process_data/helpers/nuplan_cameras_utils.py::get_cam_info_from_lidar_pc` (OpenDriveLab/OpenScene
436e7e5) stores the nuPlan `camera` table's `translation`/`rotation` under `sensor2lidar_translation`/`_rotation`;
nuplan-devkit `docs/nuplan_schema.md` defines them as "the extrinsic translation/rotation of the camera relative to the
ego vehicle coordinate frame" (the lidar has its own, nonzero extrinsic in the `lidar` table, stored separately as
`lidar2ego_*`); navsim `navsim_scenario_utils.ego_status_to_ego_state` builds the ego with
`EgoState.build_from_rear_axle(ego_pose)`. So `lidar_to_ego` (4x4, the named option for another rig) defaults to the
identity: the given poses already are in our rear-axle ego frame, and applying the real lidar extrinsic would move
every camera by the lidar's mounting offset. Our `CameraSpec` is an ideal
pinhole (square pixels, centred principal point): the horizontal fov comes from fx, and a principal point more than
`max_principal_offset` (fraction of the image) off centre is refused rather than silently mis-projected.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from agent import geometry
from agent.types import CameraRig, CameraSpec, EgoStatus, NavigationCommand, Observation
from navsim_eval.metric_cache import metric_cache_inputs

#: NAVSIM camera -> the model's camera (the six the agent asks for, mapped onto the Bench2Drive-ordered model rig).
NAVSIM_TO_MODEL_CAMERAS: dict[str, str] = {
    "cam_f0": "CAM_FRONT",
    "cam_l0": "CAM_FRONT_LEFT",
    "cam_r0": "CAM_FRONT_RIGHT",
    "cam_b0": "CAM_BACK",
    "cam_l1": "CAM_BACK_LEFT",
    "cam_r1": "CAM_BACK_RIGHT",
}


def camera_spec(
    name: str,
    intrinsics,
    sensor2lidar_rotation,
    sensor2lidar_translation,
    width: int,
    height: int,
    lidar_to_ego=None,
    max_principal_offset: float = 0.05,
) -> CameraSpec:
    """A NAVSIM camera as our `CameraSpec` (mount in the rear-axle frame, fov from fx)."""
    k = np.asarray(intrinsics, dtype=np.float64)
    r = np.asarray(sensor2lidar_rotation, dtype=np.float64)
    t = np.asarray(sensor2lidar_translation, dtype=np.float64).reshape(3)
    if k.shape != (3, 3) or r.shape != (3, 3) or not (np.isfinite(k).all() and np.isfinite(r).all()):
        raise ValueError(f"camera {name}: intrinsics and sensor2lidar_rotation must be finite 3x3 matrices")
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-4):
        raise ValueError(f"camera {name}: sensor2lidar_rotation is not a rotation matrix")
    dx, dy = k[0, 2] / width - 0.5, k[1, 2] / height - 0.5
    if max(abs(dx), abs(dy)) > max_principal_offset:
        raise ValueError(f"camera {name}: principal point ({k[0, 2]:.1f}, {k[1, 2]:.1f}) is far off the image centre")
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = r, t
    if lidar_to_ego is not None:
        m = np.asarray(lidar_to_ego, dtype=np.float64) @ m
    body = m[:3, :3] @ geometry._OPTICAL_TO_BODY.T  # optical -> camera body (x along the axis, y left, z up)
    yaw = math.atan2(body[1, 0], body[0, 0])
    pitch = math.asin(float(np.clip(body[2, 0], -1.0, 1.0)))
    roll = math.atan2(body[2, 1], body[2, 2])
    fov = math.degrees(2.0 * math.atan(width / (2.0 * k[0, 0])))
    x, y, z = m[:3, 3]
    return CameraSpec(name, float(x), float(y), float(z), yaw, fov, int(width), int(height), pitch, roll)


def yaw_rate_from_history(ego_statuses: list) -> float:
    """Yaw rate (rad/s) from the last two history poses (NAVSIM's ego status has none; frames are 0.5 s apart)."""
    if len(ego_statuses) < 2:
        return 0.0
    h0 = float(np.asarray(ego_statuses[-2].ego_pose)[2])
    h1 = float(np.asarray(ego_statuses[-1].ego_pose)[2])
    return float(geometry.wrap_angle(h1 - h0)) / 0.5


def ego_status(status: Any, yaw_rate: float = 0.0) -> EgoStatus:
    """NAVSIM `EgoStatus` (velocity and acceleration in the ego frame, 4-way one-hot command) as ours."""
    cmd = np.asarray(status.driving_command, dtype=np.float64).reshape(-1)
    if cmd.shape != (4,):
        raise ValueError(f"driving_command must be a 4-way one-hot (left, straight, right, unknown), got {cmd.shape}")
    command = NavigationCommand(int(np.argmax(cmd))) if cmd.max() > 0 else NavigationCommand.UNKNOWN
    return EgoStatus(
        np.asarray(status.ego_velocity, dtype=np.float64),
        np.asarray(status.ego_acceleration, dtype=np.float64),
        yaw_rate,
        command,
    )


def observation_from_agent_input(
    agent_input: Any,
    camera_map: dict[str, str] | None = None,
    lidar_to_ego=None,
    token: str = "",
) -> Observation:
    """NAVSIM `AgentInput` (current frame = last entry) -> our `Observation` with the model's camera names."""
    camera_map = camera_map or NAVSIM_TO_MODEL_CAMERAS
    if not agent_input.ego_statuses or not agent_input.cameras:
        raise ValueError("AgentInput has no ego status or no cameras for the current frame")
    cams = agent_input.cameras[-1]
    specs, images = [], {}
    for navsim_name, ours in camera_map.items():
        cam = getattr(cams, navsim_name, None)
        img = None if cam is None else getattr(cam, "image", None)
        if img is None:
            raise ValueError(f"AgentInput: camera {navsim_name} has no image in the current frame (sensor config?)")
        img = np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
        h, w = img.shape[:2]
        specs.append(
            camera_spec(
                ours, cam.intrinsics, cam.sensor2lidar_rotation, cam.sensor2lidar_translation, w, h, lidar_to_ego
            )
        )
        images[ours] = img
    ego = ego_status(agent_input.ego_statuses[-1], yaw_rate_from_history(agent_input.ego_statuses))
    return Observation(images, CameraRig("navsim", tuple(specs)), ego, token=token)


def scene_cache_from_metric_cache(scene, metric_cache: Any, config=None):
    """`SceneCache` of our scene with the metric cache's own reference trajectory and centreline used as given."""
    from navsim_eval.cache import SceneCache

    ref, line = metric_cache_inputs(metric_cache)
    return SceneCache.build(scene, config, reference=ref, centerline=line)
