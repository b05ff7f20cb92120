"""The agent's sensor suite as leaderboard sensor dicts, generated from the one shared Bench2Drive rig spec. The
leaderboard's own rules that check it live in `bench2drive_eval.sensor_rules` (so an invalid suite fails in our tests
and at `setup`, not on route 1).

The camera mounts come from `agent.types.B2D_CAMERA_MOUNTS` (the table the `sim` renderer's rig is built from), so the
cameras the model was trained on and the cameras CARLA spawns cannot drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agent.types import B2D_CAMERA_MOUNTS, B2D_CAMERA_Z, B2D_IMAGE_SIZE, B2D_REAR_AXLE_OFFSET, CameraRig

#: sensor ids of the non-camera sensors (the Zoo agents' names, so logs and tools read the same).
GNSS_ID = "GPS"
IMU_ID = "IMU"
SPEED_ID = "SPEED"
#: GNSS and IMU mount in the CARLA vehicle frame (Bench2Drive Zoo agents).
GNSS_IMU_MOUNT = (-1.4, 0.0, 0.0)
SPEEDOMETER_FREQUENCY = 20


@dataclass(frozen=True)
class SensorSuiteConfig:
    """Which sensors to request. Cameras are always the Bench2Drive six (names and mounts from the shared table)."""

    width: int = B2D_IMAGE_SIZE[0]
    height: int = B2D_IMAGE_SIZE[1]
    speedometer_frequency: float = SPEEDOMETER_FREQUENCY

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"SensorSuiteConfig: resolution must be positive, got {self.width}x{self.height}")
        if not self.speedometer_frequency > 0:
            raise ValueError("SensorSuiteConfig.speedometer_frequency must be positive")


def camera_ids() -> tuple[str, ...]:
    return tuple(m[0] for m in B2D_CAMERA_MOUNTS)


def build_sensors(cfg: SensorSuiteConfig | None = None) -> list[dict]:
    """The leaderboard `sensors()` list: six RGB cameras, IMU, GNSS and speedometer (CARLA frame, degrees)."""
    cfg = cfg or SensorSuiteConfig()
    out: list[dict] = []
    for name, x, y, yaw, fov in B2D_CAMERA_MOUNTS:
        out.append(
            {
                "type": "sensor.camera.rgb",
                "x": float(x),
                "y": float(y),
                "z": float(B2D_CAMERA_Z),
                "roll": 0.0,
                "pitch": 0.0,
                "yaw": float(yaw),
                "width": int(cfg.width),
                "height": int(cfg.height),
                "fov": float(fov),
                "id": name,
            }
        )
    gx, gy, gz = GNSS_IMU_MOUNT
    out.append({"type": "sensor.other.imu", "x": gx, "y": gy, "z": gz, "roll": 0.0, "pitch": 0.0, "yaw": 0.0,
                "sensor_tick": 0.05, "id": IMU_ID})  # fmt: skip
    out.append({"type": "sensor.other.gnss", "x": gx, "y": gy, "z": gz, "roll": 0.0, "pitch": 0.0, "yaw": 0.0,
                "sensor_tick": 0.01, "id": GNSS_ID})  # fmt: skip
    out.append({"type": "sensor.speedometer", "reading_frequency": float(cfg.speedometer_frequency), "id": SPEED_ID})
    return out


def sensors_from_rig(rig: CameraRig, rear_axle_offset: float = B2D_REAR_AXLE_OFFSET) -> list[dict]:
    """Camera sensor dicts for any `CameraRig` in our ego frame (the inverse of `geometry.carla_mount_to_ego`):
    x_carla = x - offset, y_carla = -y, yaw_carla = -yaw in degrees; roll and pitch keep their values."""
    out = []
    for cam in rig.cameras:
        out.append(
            {
                "type": "sensor.camera.rgb",
                "x": round(cam.x - rear_axle_offset, 9),
                "y": round(-cam.y, 9) + 0.0,
                "z": round(cam.z, 9),
                "roll": round(math.degrees(cam.roll), 9),
                "pitch": round(math.degrees(cam.pitch), 9),
                "yaw": round(-math.degrees(cam.yaw), 9) + 0.0,
                "width": int(cam.width),
                "height": int(cam.height),
                "fov": float(cam.fov_deg),
                "id": cam.name,
            }
        )
    return out
