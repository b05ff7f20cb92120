"""The agent's sensor suite as leaderboard sensor dicts, generated from the one shared Bench2Drive rig spec, and a
local validator applying the leaderboard's own rules (so an invalid suite fails in our tests, not on route 1).

The camera mounts come from `agent.types.B2D_CAMERA_MOUNTS` (the table the `sim` renderer's rig is built from), so the
cameras the model was trained on and the cameras CARLA spawns cannot drift apart.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent.types import B2D_CAMERA_MOUNTS, B2D_CAMERA_Z, B2D_IMAGE_SIZE, B2D_REAR_AXLE_OFFSET, CameraRig

#: sensor ids of the non-camera sensors (the Zoo agents' names, so logs and tools read the same).
GNSS_ID = "GPS"
IMU_ID = "IMU"
SPEED_ID = "SPEED"
#: GNSS and IMU mount in the CARLA vehicle frame (Bench2Drive Zoo agents).
GNSS_IMU_MOUNT = (-1.4, 0.0, 0.0)
SPEEDOMETER_FREQUENCY = 20

#: leaderboard `agent_wrapper.py` limits per track family.
SENSOR_LIMITS: dict[str, int] = {
    "sensor.camera.rgb": 8,
    "sensor.lidar.ray_cast": 2,
    "sensor.other.radar": 4,
    "sensor.other.gnss": 1,
    "sensor.other.imu": 1,
    "sensor.opendrive_map": 1,
    "sensor.speedometer": 1,
}
QUALIFIER_SENSOR_LIMITS: dict[str, int] = {
    "sensor.camera.rgb": 4,
    "sensor.lidar.ray_cast": 1,
    "sensor.other.radar": 2,
    "sensor.other.gnss": 1,
    "sensor.other.imu": 1,
    "sensor.opendrive_map": 1,
    "sensor.speedometer": 1,
}
TRACKS = ("SENSORS", "MAP", "SENSORS_QUALIFIER", "MAP_QUALIFIER")
#: keys `_preprocess_sensor_spec` reads for each type (a missing one is a KeyError inside the evaluator).
_POSE = ("x", "y", "z", "roll", "pitch", "yaw")
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "sensor.camera.rgb": (*_POSE, "width", "height", "fov"),
    "sensor.lidar.ray_cast": _POSE,
    "sensor.other.radar": (*_POSE, "horizontal_fov", "vertical_fov"),
    "sensor.other.gnss": ("x", "y", "z"),
    "sensor.other.imu": _POSE,
    "sensor.opendrive_map": ("reading_frequency",),
    "sensor.speedometer": (),
}
MAX_SENSOR_RADIUS = 3.0
MAX_SENSOR_RADIUS_SAVE_PATH = 100.0


class SensorConfigurationInvalid(ValueError):
    """The suite would be rejected by the leaderboard ("Agent's sensors were invalid")."""


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


def validate_sensors(
    sensors: Iterable[Mapping],
    track: str = "SENSORS",
    agent_track: str | None = None,
    save_path_set: bool = False,
) -> dict[str, int]:
    """Apply the leaderboard's sensor rules and return the count per type; raise `SensorConfigurationInvalid`.

    Rules (`agent_wrapper.validate_sensor_configuration` plus `_preprocess_sensor_spec`'s required keys): the agent's
    track equals the selected one; ids unique; only the seven allowed types; no OpenDRIVE map on SENSORS tracks; mount
    radius sqrt(x^2+y^2+z^2) <= 3 m (100 m when SAVE_PATH is set); per-type counts within the track's limits.
    """
    track = _track_name(track)
    if agent_track is not None and _track_name(agent_track) != track:
        raise SensorConfigurationInvalid(f"agent is on track {_track_name(agent_track)} but the run selects {track}")
    limits = QUALIFIER_SENSOR_LIMITS if track.endswith("QUALIFIER") else SENSOR_LIMITS
    max_radius = MAX_SENSOR_RADIUS_SAVE_PATH if save_path_set else MAX_SENSOR_RADIUS
    seen: set[str] = set()
    counts: Counter[str] = Counter()
    for i, s in enumerate(sensors):
        if not isinstance(s, Mapping):
            raise SensorConfigurationInvalid(f"sensor #{i} must be a dict, got {type(s).__name__}")
        if "id" not in s or "type" not in s:
            raise SensorConfigurationInvalid(f"sensor #{i} needs 'id' and 'type' keys, got {sorted(s)}")
        sid, stype = s["id"], s["type"]
        if sid in seen:
            raise SensorConfigurationInvalid(f"duplicated sensor id {sid!r}")
        seen.add(sid)
        if stype.startswith("sensor.opendrive_map") and track.startswith("SENSORS"):
            raise SensorConfigurationInvalid(f"sensor {sid!r}: sensor.opendrive_map is not allowed on track {track}")
        if stype not in limits:
            raise SensorConfigurationInvalid(
                f"sensor {sid!r}: type {stype!r} is not allowed; allowed: {sorted(limits)}"
            )
        missing = [k for k in REQUIRED_KEYS[stype] if k not in s]
        if missing:
            raise SensorConfigurationInvalid(f"sensor {sid!r} ({stype}) is missing key(s) {missing}")
        if all(k in s for k in ("x", "y", "z")):
            vals = [float(s[k]) for k in ("x", "y", "z")]
            if not all(math.isfinite(v) for v in vals):
                raise SensorConfigurationInvalid(f"sensor {sid!r}: non-finite mount {vals}")
            radius = math.sqrt(sum(v * v for v in vals))
            if radius > max_radius:
                raise SensorConfigurationInvalid(
                    f"sensor {sid!r}: mount radius {radius:.2f} m exceeds the allowed {max_radius:g} m"
                )
        if stype == "sensor.camera.rgb":
            if int(s["width"]) <= 0 or int(s["height"]) <= 0 or not (0 < float(s["fov"]) < 180):
                raise SensorConfigurationInvalid(f"sensor {sid!r}: invalid camera size or fov")
        counts[stype] += 1
    for stype, n in counts.items():
        if n > limits[stype]:
            raise SensorConfigurationInvalid(f"too many {stype}: {n} requested, track {track} allows {limits[stype]}")
    return dict(counts)


def _track_name(track) -> str:
    name = getattr(track, "value", track)
    name = str(name).upper()
    if name not in TRACKS:
        raise SensorConfigurationInvalid(f"unknown track {track!r}; expected one of {TRACKS}")
    return name
