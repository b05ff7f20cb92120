"""The leaderboard's `input_data` from our world: cameras, GNSS, IMU, speedometer (and the hero actor's readings).

Formats (Bench2Drive `envs/sensor_interface.py`): `{sensor id: (frame, data)}` with cameras as (H, W, 4) uint8 BGRA
rendered by `sim.render` at each sensor's declared mount, fov and resolution; GNSS float64 [lat, lon, alt] from
CARLA's Mercator projection about the route's georeference; IMU float64 [ax, ay, az, gx, gy, gz, compass] in CARLA's
left-handed sensor frame (y right, gravity on +z, yaw rate positive turning right, compass 0 = north = CARLA -y,
clockwise); speedometer `{'speed': m/s}` along the heading. Noise follows the leaderboard's fixed settings when
enabled: GNSS 5e-6 deg, accelerometer std (0.001, 0.001, 0.015), gyroscope 0.001.

Sensors that need something our world does not have (LiDAR, radar, the OpenDRIVE map) are accepted by validation
but deliver nothing; `SensorRig.unsupported` lists them so the runner can warn once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from agent import geometry
from agent.types import B2D_REAR_AXLE_OFFSET, CameraRig, CameraSpec
from sim.closed_loop.dynamics import MKZ2020, DynamicsConfig, VehicleState

G = 9.81
GNSS_NOISE_DEG = 5e-6
ACCEL_NOISE = (0.001, 0.001, 0.015)
GYRO_NOISE = 0.001


@dataclass
class SensorRig:
    """The agent's declared sensors, grouped by what we produce for them."""

    cameras: CameraRig | None
    gnss: list[dict]
    imu: list[dict]
    speedometer: list[dict]
    unsupported: list[dict]

    @classmethod
    def from_sensors(cls, sensors: list[dict]) -> SensorRig:
        cams, gnss, imu, speed, other = [], [], [], [], []
        for s in sensors:
            t = s["type"]
            if t == "sensor.camera.rgb":
                x, y, z, roll, pitch, yaw = geometry.carla_mount_to_ego(
                    float(s["x"]), float(s["y"]), float(s["z"]), float(s["roll"]), float(s["pitch"]), float(s["yaw"]),
                    B2D_REAR_AXLE_OFFSET,
                )  # fmt: skip
                cams.append(
                    CameraSpec(
                        str(s["id"]), x, y, z, yaw, float(s["fov"]), int(s["width"]), int(s["height"]), pitch, roll
                    )
                )
            elif t == "sensor.other.gnss":
                gnss.append(s)
            elif t == "sensor.other.imu":
                imu.append(s)
            elif t == "sensor.speedometer":
                speed.append(s)
            else:
                other.append(s)
        rig = CameraRig("agent", tuple(cams)) if cams else None
        return cls(rig, gnss, imu, speed, other)


@dataclass
class SensorSuite:
    """Produces `input_data` each tick for a `SensorRig`."""

    rig: SensorRig
    lat_ref: float
    lon_ref: float
    noise: bool = True
    seed: int = 0
    nan_compass_ticks: int = 0
    dynamics: DynamicsConfig = MKZ2020

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def read(self, frame: int, tick: int, ego: VehicleState, render_scene=None) -> dict:
        """`input_data` for this tick; `render_scene()` builds the scene to render (called only if cameras exist)."""
        data: dict = {}
        if self.rig.cameras is not None:
            from sim.render import render_cameras_bgra

            scene = render_scene()
            for name, img in render_cameras_bgra(scene, 0, self.rig.cameras, ego_pose=ego.pose).items():
                data[name] = (frame, img)
        for s in self.rig.gnss:
            data[s["id"]] = (frame, self._gnss(ego, s))
        for s in self.rig.imu:
            data[s["id"]] = (frame, self._imu(ego, tick))
        for s in self.rig.speedometer:
            data[s["id"]] = (frame, {"speed": float(ego.speed)})
        return data

    def _mount_world(self, ego: VehicleState, s: dict) -> tuple[float, float]:
        """World position of a sensor mounted at CARLA (x, y) in the vehicle frame (rotation ignored, as CARLA's
        GNSS position is)."""
        fx = float(s.get("x", 0.0)) + self.dynamics.centre_ahead_of_rear_axle
        fy = -float(s.get("y", 0.0))
        c, sn = math.cos(ego.heading), math.sin(ego.heading)
        return ego.x + fx * c - fy * sn, ego.y + fx * sn + fy * c

    def _gnss(self, ego: VehicleState, s: dict) -> np.ndarray:
        x, y = self._mount_world(ego, s)
        lat, lon = geometry.world_to_gnss(x, y, self.lat_ref, self.lon_ref)
        if self.noise:
            lat += self.rng.normal(0.0, GNSS_NOISE_DEG)
            lon += self.rng.normal(0.0, GNSS_NOISE_DEG)
        return np.array([float(lat), float(lon), float(s.get("z", 0.0))], dtype=np.float64)

    def _imu(self, ego: VehicleState, tick: int) -> np.ndarray:
        compass = (math.pi / 2.0 - ego.heading) % (2.0 * math.pi)
        if tick < self.nan_compass_ticks:
            compass = math.nan
        acc = np.array([ego.accel, -ego.lateral_accel, G])
        gyro = np.array([0.0, 0.0, -ego.yaw_rate])
        if self.noise:
            acc = acc + self.rng.normal(0.0, ACCEL_NOISE)
            gyro = gyro + self.rng.normal(0.0, GYRO_NOISE, 3)
        return np.array([*acc, *gyro, compass], dtype=np.float64)


class HeroActor:
    """The `hero_actor` look-alike (CARLA frame: y negated, degrees, angular velocity in deg/s) that Bench2Drive's
    agents read `get_metric_info()` from; it reads the runner's current ego state."""

    def __init__(self, carla, dynamics: DynamicsConfig = MKZ2020) -> None:
        self._carla = carla
        self.dynamics = dynamics
        self.state = VehicleState(0.0, 0.0, 0.0)
        self.id = 0
        self.type_id = "vehicle.lincoln.mkz_2020"
        self.attributes = {"role_name": "hero"}

    def get_transform(self):
        carla, v = self._carla, self.state
        c = v.centre(self.dynamics)
        return carla.Transform(
            carla.Location(float(c[0]), float(-c[1]), 0.0),
            carla.Rotation(yaw=float(geometry.heading_to_carla_yaw(v.heading))),
        )

    def get_location(self):
        return self.get_transform().location

    def get_velocity(self):
        v = self.state
        return self._carla.Vector3D(v.speed * math.cos(v.heading), -v.speed * math.sin(v.heading), 0.0)

    def get_acceleration(self):
        v = self.state
        ax = v.accel * math.cos(v.heading) - v.lateral_accel * math.sin(v.heading)
        ay = v.accel * math.sin(v.heading) + v.lateral_accel * math.cos(v.heading)
        return self._carla.Vector3D(ax, -ay, 0.0)

    def get_angular_velocity(self):
        return self._carla.Vector3D(0.0, 0.0, -math.degrees(self.state.yaw_rate))
