"""Closed-loop test helpers for the CARLA agent, built on the product's leaderboard stand-in (`sim.closed_loop`).

The evaluator's construction order, the dense global plan with RoadOptions, the Lincoln MKZ 2020 dynamics, the hero
actor and the sensors (GNSS, IMU, speedometer with the leaderboard's frames, units and noise) all come from
`sim.closed_loop`; this module only adds what these tests need beyond a scene route: arbitrary centrelines, a frame
source of their choice, and a policy with known behaviour (`RouteFollowingPolicy`).

Frames: our right-handed world (x, y, heading CCW) for the vehicle state; the sensors and the hero actor speak CARLA.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import carla  # the real wheel or the product's stand-in (see conftest.py)
import numpy as np

from agent.contract import PlanResult
from agent.geometry import absolute_to_relative
from agent.types import Trajectory
from sim.closed_loop.dynamics import MKZ2020, VehicleState, step_vehicle
from sim.closed_loop.route import RoadOption, global_plan
from sim.closed_loop.sensors import HeroActor, SensorRig, SensorSuite

R_EARTH = 6378137.0


def location_to_gps(lat_ref: float, lon_ref: float, x_carla: float, y_carla: float) -> tuple[float, float]:
    """CARLA's Mercator projection as documented for `_location_to_gps`, written out independently of the product
    (a test oracle for the agent's localisation)."""
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
    """The leaderboard's dense (1 m) plan of a centreline: [({'lat','lon','z'}, RoadOption)] and
    [(carla.Transform, RoadOption)], built by the product (`sim.closed_loop.route.global_plan`)."""
    pts = resample(centreline, 1.0)
    s = arclength(pts)
    d = np.diff(pts, axis=0)
    heading = np.append(np.arctan2(d[:, 1], d[:, 0]), math.atan2(d[-1, 1], d[-1, 0]))
    opts = [RoadOption(options(si) if options else RoadOption.LANEFOLLOW) for si in s]
    return global_plan(pts, heading, opts, carla, lat_ref, lon_ref)


# ------------------------------------------------------------------------------------------------ vehicle model
class KinematicVehicle:
    """The product's Lincoln MKZ 2020 model (`sim.closed_loop.dynamics`) behind a mutable handle, rear-axle pose."""

    def __init__(self, x: float, y: float, heading: float, speed: float = 0.0) -> None:
        self.state = VehicleState(x, y, heading, speed)

    def apply(self, control, dt: float) -> None:
        self.state = step_vehicle(self.state, control, dt, MKZ2020)

    x = property(lambda self: self.state.x)
    y = property(lambda self: self.state.y)
    heading = property(lambda self: self.state.heading)
    speed = property(lambda self: self.state.speed)
    pose = property(lambda self: self.state.pose)


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
    """The product's GNSS / IMU / speedometer for the agent's declared non-camera sensors; camera frames come from the
    test (`frames_fn` of `drive`). `gnss_noise_deg` > 0 turns on the leaderboard's noise."""

    lat_ref: float
    lon_ref: float
    gnss_noise_deg: float = 0.0
    nan_compass_steps: int = 2
    seed: int = 0
    #: CARLA (x, y) -> (lat, lon) of the server's GNSS sensor; None: the <= 0.9.15 Mercator (`location_to_gps`)
    gnss: Callable[[float, float], tuple[float, float]] | None = None

    def __post_init__(self) -> None:
        from team_code.sensors import build_sensors

        rig = SensorRig.from_sensors([s for s in build_sensors() if s["type"] != "sensor.camera.rgb"])
        self.suite = SensorSuite(rig, self.lat_ref, self.lon_ref, noise=self.gnss_noise_deg > 0, seed=self.seed,
                                 nan_compass_ticks=self.nan_compass_steps)  # fmt: skip

    def read(self, vehicle: KinematicVehicle, step: int, frames: dict[str, np.ndarray], frame_id: int) -> dict:
        data = self.suite.read(frame_id, step, vehicle.state)
        if self.gnss is not None:  # another server's GNSS model, at the antenna 0.01 m behind the rear axle
            from team_code.sensors import GNSS_ID

            v = vehicle.state
            back = 1.4 - MKZ2020.centre_ahead_of_rear_axle
            lat, lon = self.gnss(v.x - back * math.cos(v.heading), -(v.y - back * math.sin(v.heading)))
            if self.gnss_noise_deg:
                lat += self.suite.rng.normal(0.0, self.gnss_noise_deg)
                lon += self.suite.rng.normal(0.0, self.gnss_noise_deg)
            data[GNSS_ID] = (frame_id, np.array([lat, lon, 0.0]))
        data.update({name: (frame_id, img) for name, img in frames.items()})
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
    hero = HeroActor(carla, MKZ2020)
    agent.hero_actor = hero
    log = RunLog()
    for k in range(steps):
        hero.state = vehicle.state
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
        front_overhang: float = MKZ2020.front_length,
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
