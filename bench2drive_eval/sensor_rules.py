"""The leaderboard's sensor rules (`agent_wrapper.validate_sensor_configuration` and `_preprocess_sensor_spec`).

One copy, used by the CARLA adapter's own check at `setup` (`team_code/sensors.py`) and by the closed-loop world's
leaderboard stand-in (`sim/closed_loop/`), so an agent rejected by one is rejected by the other with the same message.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

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
