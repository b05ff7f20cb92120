"""Scripted leaderboard agents with known behaviour for the closed-loop tests (privileged: they read the world).

`blind_follower(...)` returns an agent class that follows a line at a fixed speed and ignores everything else (other
actors, lights, signs): it drives into what stands in its way, runs red lights, and stops for good where told.
"""

from __future__ import annotations

import numpy as np

from sim.closed_loop import shims
from sim.closed_loop.agents import SPEEDOMETER, longitudinal_controls, pure_pursuit_steer
from sim.closed_loop.world import path_pose
from sim.traffic import build_path

shims.install()
from team_code.base_agent import LocalAutonomousAgent, Track  # noqa: E402


def blind_follower(speed: float = 8.0, follow: str = "route", stop_at_fraction: float | None = None, sensors=None):
    """An agent class: follows the route path (`follow="route"`) or the lane it starts on (`"lane"`) at `speed`,
    braking to a stop once its rear axle passes `stop_at_fraction` of the route."""

    class BlindFollower(LocalAutonomousAgent):
        PRIVILEGED = True

        def setup(self, path_to_conf_file):
            self.track = Track.SENSORS
            self.config_string = path_to_conf_file

        def sensors(self):
            return list(sensors) if sensors is not None else [dict(SPEEDOMETER)]

        def privileged_world(self, view):
            self.view = view
            route = view.route
            if follow == "route":
                self.path = route.path
            else:
                start = route.points[0]
                lanes = view.world.map.lanes_containing(start[None])[0]
                lane = next(lid for lid in lanes if not view.world.map.lanes[lid].is_connector)
                self.path = build_path(view.world.map.lanes, [lane])
            self.stop_s = None
            if stop_at_fraction is not None:
                self.stop_s = route.s_start + stop_at_fraction * (route.s_end - route.s_start)

        def run_step(self, input_data, timestamp):
            carla = shims.install()
            ego = self.view.ego_state()
            v = float(input_data["SPEED"][1]["speed"])
            s = float(self.path.locate(ego.pose[None, :2])[0][0])
            target = speed
            if self.stop_s is not None:
                rs = float(self.view.route.path.locate(ego.pose[None, :2])[0][0])
                room = self.stop_s - rs
                target = 0.0 if room <= 0 else min(speed, float(np.sqrt(2 * 2.0 * room)))
            a = float(np.clip(1.5 * (target - v), -4.0, 2.0))
            throttle, brake = longitudinal_controls(a, v)
            if target == 0.0:
                throttle, brake = 0.0, 1.0
            steer = pure_pursuit_steer(self.path, s, ego.pose, v)
            return carla.VehicleControl(throttle=throttle, steer=steer, brake=brake)

    return BlindFollower


class RaisingAgent(LocalAutonomousAgent):
    """Raises on its fifth step."""

    def setup(self, path_to_conf_file):
        self.track = Track.SENSORS
        self.n = 0

    def sensors(self):
        return [dict(SPEEDOMETER)]

    def run_step(self, input_data, timestamp):
        self.n += 1
        if self.n == 5:
            raise RuntimeError("model exploded")
        return shims.install().VehicleControl(throttle=0.3)


class NaNAgent(RaisingAgent):
    def run_step(self, input_data, timestamp):
        return shims.install().VehicleControl(throttle=float("nan"))


class BadSensorsAgent(RaisingAgent):
    """Asks for a camera 5 m from the vehicle origin (the leaderboard allows 3 m without SAVE_PATH)."""

    def sensors(self):
        return [{"type": "sensor.camera.rgb", "id": "far", "x": 5.0, "y": 0.0, "z": 1.6, "roll": 0.0, "pitch": 0.0,
                 "yaw": 0.0, "width": 64, "height": 36, "fov": 90.0}]  # fmt: skip


__all__ = ["BadSensorsAgent", "NaNAgent", "RaisingAgent", "blind_follower", "path_pose"]
