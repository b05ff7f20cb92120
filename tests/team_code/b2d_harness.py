"""A stand-in for the Bench2Drive leaderboard, for closed-loop tests of the agent without CARLA.

It plays the evaluator: builds the agent as `leaderboard_evaluator.py` does (entry point, `cls(host, port, debug)`,
`set_global_plan(gps, world)`, `setup(config + "+" + save_name)` with the string growing per route), then each tick
produces the leaderboard's `input_data` (BGRA cameras, GNSS from CARLA's projection written out independently here,
IMU, speedometer), calls the agent, and applies its `carla.VehicleControl` to a kinematic bicycle with a simple
throttle / brake response.

Frames: our right-handed world (x, y, heading CCW) for the vehicle state; the sensors and the hero actor speak CARLA
(y negated, yaw in degrees turning right).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import carla  # the real wheel or tests/team_code/fake_carla (see conftest.py)
import numpy as np

from agent.contract import PlanResult
from agent.geometry import absolute_to_relative
from agent.types import Trajectory
from agent.vehicles import MKZ_REAR_AXLE_TO_CENTER, MKZ_WHEELBASE

R_EARTH = 6378137.0
#: CARLA vehicle origin (box centre) ahead of the Lincoln MKZ's rear axle.
CENTRE_AHEAD_OF_REAR_AXLE = MKZ_REAR_AXLE_TO_CENTER
#: GNSS antenna behind the box centre (Bench2Drive mount x = -1.4).
ANTENNA_BEHIND_CENTRE = 1.4


class RoadOption(enum.IntEnum):
    """Values of CARLA's `agents.navigation.local_planner.RoadOption`."""

    VOID = -1
    LEFT = 1
    RIGHT = 2
    STRAIGHT = 3
    LANEFOLLOW = 4
    CHANGELANELEFT = 5
    CHANGELANERIGHT = 6


# ------------------------------------------------------------------------------------------------ GNSS (CARLA's)
def location_to_gps(lat_ref: float, lon_ref: float, x_carla: float, y_carla: float) -> tuple[float, float]:
    """CARLA's Mercator projection as documented for `_location_to_gps` (written out here, independent of the agent)."""
    scale = math.cos(lat_ref * math.pi / 180.0)
    mx = scale * lon_ref * math.pi * R_EARTH / 180.0 + x_carla
    my = scale * R_EARTH * math.log(math.tan((90.0 + lat_ref) * math.pi / 360.0)) - y_carla
    lon = mx * 180.0 / (math.pi * R_EARTH * scale)
    lat = 360.0 * math.atan(math.exp(my / (R_EARTH * scale))) / math.pi - 90.0
    return lat, lon


# ----------------------------------------------------------------------------------------------- route geometry
def resample(points: np.ndarray, spacing: float = 1.0) -> np.ndarray:
    """Polyline (N, 2) -> points every `spacing` metres of arc length (end point included)."""
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])
    s = np.append(np.arange(0.0, arc[-1], spacing), arc[-1])
    return np.stack([np.interp(s, arc, points[:, 0]), np.interp(s, arc, points[:, 1])], axis=-1)


def curve_centreline(radius: float = 30.0, angle_deg: float = 90.0, straight: float = 20.0) -> np.ndarray:
    """Straight, then a left arc of `radius` through `angle_deg`, then straight; starts at the origin heading +x."""
    a = np.linspace(0.0, math.radians(angle_deg), 200)
    pre = np.stack([np.linspace(-straight, 0.0, 50), np.zeros(50)], axis=-1)
    arc = np.stack([radius * np.sin(a), radius * (1.0 - np.cos(a))], axis=-1)
    end = arc[-1]
    h = math.radians(angle_deg)
    post = end + np.outer(np.linspace(0.0, straight, 50), [math.cos(h), math.sin(h)])
    return resample(np.concatenate([pre, arc[1:], post[1:]]), 0.25)


def arclength(points: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])


def project(points: np.ndarray, xy: np.ndarray) -> tuple[float, float]:
    """(arc length, signed lateral offset, left positive) of `xy` on a dense polyline."""
    a = points[:-1]
    ab = points[1:] - a
    t = np.clip(np.einsum("ij,ij->i", xy - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12), 0.0, 1.0)
    closest = a + t[:, None] * ab
    d = np.hypot(*(xy - closest).T)
    k = int(np.argmin(d))
    cross = ab[k, 0] * (xy[1] - a[k, 1]) - ab[k, 1] * (xy[0] - a[k, 0])
    return float(arclength(points)[k] + t[k] * np.hypot(*ab[k])), float(math.copysign(d[k], cross))


def build_global_plan(
    centreline: np.ndarray, lat_ref: float, lon_ref: float, options: Callable[[float], int] | None = None
) -> tuple[list, list]:
    """The leaderboard's dense (1 m) plan: [({'lat','lon','z'}, RoadOption)] and [(carla.Transform, RoadOption)]."""
    pts = resample(centreline, 1.0)
    s = arclength(pts)
    d = np.diff(pts, axis=0)
    heading = np.arctan2(d[:, 1], d[:, 0])
    heading = np.append(heading, heading[-1])
    gps, world = [], []
    for (x, y), h, si in zip(pts, heading, s):
        opt = RoadOption(options(si) if options else RoadOption.LANEFOLLOW)
        lat, lon = location_to_gps(lat_ref, lon_ref, x, -y)
        gps.append(({"lat": lat, "lon": lon, "z": 0.0}, opt))
        world.append((carla.Transform(carla.Location(x, -y, 0.0), carla.Rotation(yaw=-math.degrees(h))), opt))
    return gps, world


# ------------------------------------------------------------------------------------------------ vehicle model
@dataclass
class VehicleParams:
    wheelbase: float = MKZ_WHEELBASE
    max_steer: float = math.radians(70.0)
    steer_rate: float = 4.0  # steering command units per second (first-order limit)
    max_accel: float = 4.0  # m/s^2 at full throttle, fading towards v_max
    v_max: float = 30.0
    brake_decel: float = 7.0  # m/s^2 at full brake
    drag: float = 0.2  # m/s^2 rolling resistance when moving


@dataclass
class KinematicVehicle:
    """Kinematic bicycle about the rear axle with first-order steering and a throttle / brake acceleration model."""

    x: float
    y: float
    heading: float
    speed: float = 0.0
    params: VehicleParams = field(default_factory=VehicleParams)
    steer: float = 0.0
    accel: float = 0.0
    yaw_rate: float = 0.0

    def apply(self, control, dt: float) -> None:
        p = self.params
        target = float(np.clip(control.steer, -1.0, 1.0))
        self.steer += float(np.clip(target - self.steer, -p.steer_rate * dt, p.steer_rate * dt))
        a = p.max_accel * float(control.throttle) * max(0.0, 1.0 - self.speed / p.v_max)
        a -= p.brake_decel * float(control.brake) + (p.drag if self.speed > 0 else 0.0)
        v_new = max(0.0, self.speed + a * dt)
        self.accel = (v_new - self.speed) / dt
        delta = -self.steer * p.max_steer  # CARLA steer > 0 turns right = negative heading rate here
        self.yaw_rate = v_new * math.tan(delta) / p.wheelbase
        v_mid = 0.5 * (self.speed + v_new)
        h_mid = self.heading + 0.5 * self.yaw_rate * dt
        self.x += v_mid * math.cos(h_mid) * dt
        self.y += v_mid * math.sin(h_mid) * dt
        self.heading = math.atan2(
            math.sin(self.heading + self.yaw_rate * dt), math.cos(self.heading + self.yaw_rate * dt)
        )
        self.speed = v_new

    @property
    def pose(self) -> np.ndarray:
        return np.array([self.x, self.y, self.heading])

    def front_centre(self, ahead: float = 3.9) -> np.ndarray:
        return np.array([self.x + ahead * math.cos(self.heading), self.y + ahead * math.sin(self.heading)])


class HeroActor:
    """The `hero_actor` look-alike the agent's metric log reads (CARLA frame: y negated, degrees)."""

    def __init__(self, vehicle: KinematicVehicle) -> None:
        self.v = vehicle

    def get_transform(self):
        v = self.v
        cx = v.x + CENTRE_AHEAD_OF_REAR_AXLE * math.cos(v.heading)
        cy = v.y + CENTRE_AHEAD_OF_REAR_AXLE * math.sin(v.heading)
        return carla.Transform(carla.Location(cx, -cy, 0.0), carla.Rotation(yaw=-math.degrees(v.heading)))

    def get_acceleration(self):
        v = self.v
        ax = v.accel * math.cos(v.heading) - v.speed * v.yaw_rate * math.sin(v.heading)
        ay = v.accel * math.sin(v.heading) + v.speed * v.yaw_rate * math.cos(v.heading)
        return carla.Vector3D(ax, -ay, 0.0)

    def get_angular_velocity(self):
        return carla.Vector3D(0.0, 0.0, -math.degrees(self.v.yaw_rate))


# --------------------------------------------------------------------------------------------------- sensors
def synthetic_frames(width: int, height: int, step: int) -> dict[str, np.ndarray]:
    """Cheap BGRA frames (a gradient that moves with the step) when no renderer is used."""
    from team_code.sensors import camera_ids

    row = (np.arange(width, dtype=np.uint16) + step) % 256
    frame = np.empty((height, width, 4), dtype=np.uint8)
    frame[..., 0] = row[None, :]
    frame[..., 1] = 90
    frame[..., 2] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    frame[..., 3] = 255
    return {name: frame for name in camera_ids()}


@dataclass
class SensorModel:
    lat_ref: float
    lon_ref: float
    gnss_noise_deg: float = 0.0
    nan_compass_steps: int = 2
    seed: int = 0
    #: CARLA (x, y) -> (lat, lon) of the server's GNSS sensor; None: the <= 0.9.15 Mercator (`location_to_gps`)
    gnss: Callable[[float, float], tuple[float, float]] | None = None

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def read(self, vehicle: KinematicVehicle, step: int, frames: dict[str, np.ndarray], frame_id: int) -> dict:
        from team_code.sensors import GNSS_ID, IMU_ID, SPEED_ID

        back = ANTENNA_BEHIND_CENTRE - CENTRE_AHEAD_OF_REAR_AXLE
        ax_ = vehicle.x - back * math.cos(vehicle.heading)
        ay_ = vehicle.y - back * math.sin(vehicle.heading)
        if self.gnss is None:
            lat, lon = location_to_gps(self.lat_ref, self.lon_ref, ax_, -ay_)
        else:
            lat, lon = self.gnss(ax_, -ay_)
        if self.gnss_noise_deg:
            lat += self.rng.normal(0.0, self.gnss_noise_deg)
            lon += self.rng.normal(0.0, self.gnss_noise_deg)
        # CARLA compass: 0 = north = CARLA -y = our +y, turning clockwise; in [0, 2 pi).
        compass = (math.pi / 2.0 - vehicle.heading) % (2.0 * math.pi)
        if step < self.nan_compass_steps:
            compass = float("nan")
        lat_acc = vehicle.speed * vehicle.yaw_rate
        imu = np.array([vehicle.accel, -lat_acc, 9.81, 0.0, 0.0, -vehicle.yaw_rate, compass])
        data = {name: (frame_id, img) for name, img in frames.items()}
        data[GNSS_ID] = (frame_id, np.array([lat, lon, 0.0]))
        data[IMU_ID] = (frame_id, imu)
        data[SPEED_ID] = (frame_id, {"speed": vehicle.speed})
        return data


# ------------------------------------------------------------------------------------------------ the evaluator
def construct_agent(agent_module, agent_config: str, save_name: str, gps_plan, world_plan, host="localhost", port=2000):
    """As `leaderboard_evaluator.py` (Bench2Drive fork): entry point, constructor, global plan, then setup with the
    config string grown by `+save_name`. Returns (agent, the grown config string for the next route)."""
    cls = getattr(agent_module, agent_module.get_entry_point())
    agent = cls(host, port, 0)
    agent.set_global_plan(gps_plan, world_plan)
    grown = agent_config + "+" + save_name
    agent.setup(grown)
    return agent, grown


@dataclass
class RunLog:
    poses: list = field(default_factory=list)
    speeds: list = field(default_factory=list)
    controls: list = field(default_factory=list)
    times: list = field(default_factory=list)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array(self.poses), np.array(self.speeds)


def drive(
    agent,
    vehicle: KinematicVehicle,
    sensors: SensorModel,
    steps: int,
    frames_fn: Callable[[int, KinematicVehicle], dict[str, np.ndarray]],
    dt: float = 0.05,
    stop_when: Callable[[KinematicVehicle], bool] | None = None,
) -> RunLog:
    """Tick the agent `steps` times at `dt`, applying each control to `vehicle`; the agent sees `hero_actor`."""
    agent.hero_actor = HeroActor(vehicle)
    log = RunLog()
    for k in range(steps):
        data = sensors.read(vehicle, k, frames_fn(k, vehicle), frame_id=1000 + k)
        control = agent.run_step(data, k * dt)  # what the base class's __call__ does after reading the sensors
        vehicle.apply(control, dt)
        log.poses.append(vehicle.pose)
        log.speeds.append(vehicle.speed)
        log.controls.append((control.steer, control.throttle, control.brake))
        log.times.append(agent.last_timings.get("total_ms", float("nan")))
        if stop_when is not None and stop_when(vehicle):
            break
    return log


# -------------------------------------------------------------------------------------------- a known policy
class StatelessPlanner:
    """The `agent.contract.Planner` lifecycle for test planners that keep no episode state."""

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass


class RouteFollowingPolicy(StatelessPlanner):
    """A privileged planner with known behaviour: follows a centreline at `target_speed` (acceleration-limited) and
    stops `stop_margin` metres before `stop_s` (its front bumper's arc length) while `red(t)` is true.

    It reads the agent's own localisation (`observation.extras["world_pose"]`), so a wrong GNSS conversion or frame
    would put its plan off the road: the closed-loop tests check the adapter end to end.
    """

    def __init__(
        self,
        centreline: np.ndarray,
        target_speed: float = 6.0,
        accel: float = 2.0,
        decel: float = 2.5,
        stop_s: float | None = None,
        red: Callable[[float], bool] | None = None,
        front_overhang: float = 3.9,
        stop_margin: float = 1.0,
    ) -> None:
        self.centreline = np.asarray(centreline, dtype=np.float64)
        self.arc = arclength(self.centreline)
        self.target_speed = target_speed
        self.accel, self.decel = accel, decel
        self.stop_s, self.red = stop_s, red
        self.front_overhang, self.stop_margin = front_overhang, stop_margin
        self.calls = 0

    def step(self, observation):
        self.calls += 1
        pose = np.asarray(observation.extras["world_pose"], dtype=np.float64)
        s0, _ = project(self.centreline, pose[:2])
        limit = self.arc[-1]
        if self.stop_s is not None and self.red is not None and self.red(observation.timestamp):
            limit = min(limit, self.stop_s - self.front_overhang - self.stop_margin)
        v = observation.ego.speed
        s = s0
        out = []
        for _ in range(8):  # 0.5 s steps, integrated at 0.1 s
            for _ in range(5):
                room = max(limit - s, 0.0)
                v_cap = min(self.target_speed, math.sqrt(2.0 * self.decel * room))
                v = min(v + self.accel * 0.1, v_cap) if v < v_cap else max(v - self.decel * 2 * 0.1, v_cap)
                s = min(s + v * 0.1, max(limit, s0))
            out.append(s)
        s_arr = np.array(out)
        xs = np.interp(s_arr, self.arc, self.centreline[:, 0])
        ys = np.interp(s_arr, self.arc, self.centreline[:, 1])
        ds = 0.5
        hx = np.interp(s_arr + ds, self.arc, self.centreline[:, 0]) - np.interp(
            s_arr - ds, self.arc, self.centreline[:, 0]
        )
        hy = np.interp(s_arr + ds, self.arc, self.centreline[:, 1]) - np.interp(
            s_arr - ds, self.arc, self.centreline[:, 1]
        )
        world = np.stack([xs, ys, np.arctan2(hy, hx)], axis=-1)
        return PlanResult(Trajectory(absolute_to_relative(pose, world)))


#: the policy the `policy_entry_point` of harness configs returns (set by the test before constructing the agent).
CURRENT_POLICY: list = [None]


def current_policy(cfg):
    if CURRENT_POLICY[0] is None:
        raise RuntimeError("test did not set b2d_harness.CURRENT_POLICY")
    return CURRENT_POLICY[0]
