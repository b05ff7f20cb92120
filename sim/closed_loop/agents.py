"""Reference agents that run through the leaderboard interface, selectable by name: `expert`, `constant-velocity`,
`brake`; and `load_agent_class` for any agent file (the leaderboard's `get_entry_point()` rule).

The expert is privileged: the runner hands it the world (`PRIVILEGED = True` agents get `privileged_world(...)`
before `setup`). It drives its route path with the scene generator's IDM law (leads in its corridor now and one
second ahead, red and yellow lights, stop signs with a full stop and gap acceptance, pedestrians about to cross) and
turns the acceleration into throttle / brake through the known vehicle model, and the path into steering with pure
pursuit. It declares only a speedometer, so runs with it render no cameras.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from dataclasses import dataclass
from pathlib import Path as FilePath

import numpy as np

from sim.closed_loop import shims
from sim.closed_loop.dynamics import MKZ2020, DynamicsConfig
from sim.closed_loop.world import Obstacles, corridor_lead, path_pose
from sim.expert import ExpertConfig
from sim.scene import TrafficLightState
from sim.traffic import STOP_GAP, curvature_speed, follower_acceleration, idm_params_arrays, light_stop_positions

SPEEDOMETER = {"type": "sensor.speedometer", "reading_frequency": 20, "id": "SPEED"}


class AgentLoadError(RuntimeError):
    """The agent file or name cannot give an agent class (the leaderboard's "Agent couldn't be set up")."""


def _base():
    shims.install()
    from bench2drive_eval.agent_api import LocalAutonomousAgent, Track

    return LocalAutonomousAgent, Track


_Base, _Track = _base()


def _control(throttle: float = 0.0, steer: float = 0.0, brake: float = 0.0):
    carla = shims.install()
    return carla.VehicleControl(throttle=float(throttle), steer=float(steer), brake=float(brake))


class BrakeAgent(_Base):
    """Always brakes fully: the lower bound (Bench2Drive ends its route with `Agent got blocked`)."""

    def setup(self, path_to_conf_file: str) -> None:
        self.track = _Track.SENSORS

    def sensors(self) -> list[dict]:
        return [dict(SPEEDOMETER)]

    def run_step(self, input_data, timestamp):
        return _control(brake=1.0)


class ConstantVelocityAgent(_Base):
    """Holds the speed it had at its first tick, steering straight (NAVSIM's constant-velocity baseline)."""

    def setup(self, path_to_conf_file: str) -> None:
        self.track = _Track.SENSORS
        self.target_speed: float | None = None

    def sensors(self) -> list[dict]:
        return [dict(SPEEDOMETER)]

    def run_step(self, input_data, timestamp):
        speed = float(input_data["SPEED"][1]["speed"])
        if self.target_speed is None:
            self.target_speed = speed
        err = self.target_speed - speed
        return _control(throttle=min(max(0.5 * err, 0.0), 1.0), brake=min(max(-0.5 * err, 0.0), 1.0))


@dataclass
class PrivilegedView:
    """What a privileged agent may read: the world, the route, and the ego's true state (a callable)."""

    world: object  # sim.closed_loop.world.LivingWorld
    route: object  # sim.closed_loop.route.Route
    ego_state: object  # () -> VehicleState
    snapshot: object  # () -> WorldSnapshot


def longitudinal_controls(a_des: float, speed: float, cfg: DynamicsConfig = MKZ2020) -> tuple[float, float]:
    """(throttle, brake) that make `dynamics.step_vehicle` accelerate at `a_des` from `speed` (its inverse)."""
    resist = cfg.coast_decel + cfg.drag(speed)
    if speed < 0.05 and a_des <= 0.0:
        return 0.0, 1.0  # hold at rest
    if a_des >= -resist:
        a_max = max(cfg.max_throttle_accel(speed), 1e-3)
        return min(max((a_des + resist) / (a_max + cfg.coast_decel), 0.0), 1.0), 0.0
    return 0.0, min(max((-a_des - cfg.drag(speed) - cfg.coast_decel) / cfg.brake_decel, 0.0), 1.0)


def pure_pursuit_steer(path, s_rear: float, pose: np.ndarray, speed: float, cfg: DynamicsConfig = MKZ2020) -> float:
    """CARLA steer in [-1, 1] that points the rear axle's pure-pursuit arc at the path `lookahead` metres ahead."""
    lookahead = min(max(3.0 + 0.55 * abs(speed), 4.0), 20.0)
    target = path_pose(path, s_rear + lookahead)
    dx, dy = target[0] - pose[0], target[1] - pose[1]
    alpha = math.atan2(dy, dx) - pose[2]
    ld = max(math.hypot(dx, dy), 1e-3)
    wheel = math.atan2(2.0 * cfg.wheelbase * math.sin(alpha), ld)
    return min(max(-wheel / cfg.steer_gain(speed), -1.0), 1.0)


class ExpertAgent(_Base):
    """The privileged rule-based expert (see the module docstring)."""

    PRIVILEGED = True

    def setup(self, path_to_conf_file: str) -> None:
        self.track = _Track.SENSORS
        self.cfg = ExpertConfig()
        self.view: PrivilegedView | None = None
        self._sign_waited: list[float] = []

    def sensors(self) -> list[dict]:
        return [dict(SPEEDOMETER)]

    def privileged_world(self, view: PrivilegedView) -> None:
        self.view = view
        route = view.route
        self.path = route.expert_path  # the scene's expert path (a yield's lane change), else the route's
        world = view.world
        self.dyn = world.dynamics
        self.idm = idm_params_arrays([self.cfg.idm])
        cap = curvature_speed(self.path) * self.cfg.desired_speed_factor
        self.vcap = cap
        self.lights = light_stop_positions(self.path, world.map)
        self.signs = [st.s for st in world.build._stop_sign_stops(self.path, None)]
        self._sign_waited = [0.0] * len(self.signs)
        self.a_prev = 0.0

    def run_step(self, input_data, timestamp):
        if self.view is None:
            raise RuntimeError("the expert is privileged: run it in sim.closed_loop (it needs the world)")
        ego = self.view.ego_state()
        snap = self.view.snapshot()
        world = self.view.world
        speed = float(input_data["SPEED"][1]["speed"])
        s_rear = float(self.path.locate(ego.pose[None, :2])[0][0])
        a = self._acceleration(world, snap, ego, s_rear, speed)
        self.a_prev = a
        throttle, brake = longitudinal_controls(a, speed, self.dyn)
        steer = pure_pursuit_steer(self.path, s_rear, ego.pose, speed, self.dyn)
        return _control(throttle=throttle, steer=steer, brake=brake)

    def _acceleration(self, world, snap, ego, s_rear: float, v: float) -> float:
        front = self.dyn.front_length
        width = 2 * self.dyn.half_width
        obs = world.obstacles(snap)
        gap, v_lead, _ = corridor_lead(self.path, s_rear, front, width, obs, obs.valid.copy(), 0.5, 0.6)
        # the same actors ahead in time (constant velocity): cut-ins early, and pedestrians about to cross
        horizon = np.where(obs.is_pedestrian, 2.5, 1.0)
        ahead = Obstacles(
            obs.xy + np.stack([np.cos(obs.heading), np.sin(obs.heading)], -1) * (obs.speed * horizon)[:, None],
            obs.heading, obs.speed, obs.length, obs.width, obs.valid, obs.is_pedestrian, obs.is_vehicle,
        )  # fmt: skip
        moving = ahead.valid & (np.abs(ahead.speed) > 0.3)
        g2, v2, _ = corridor_lead(self.path, s_rear, front, width, ahead, moving, 0.3, 0.6)
        if g2 < gap:
            gap, v_lead = g2, min(v_lead, v2) if math.isfinite(gap) else v2
        f_s = s_rear + front
        min_gap = float(self.idm["min_gap"][0])
        for s_line, light in self.lights:
            g = s_line - f_s
            if g < -0.5:
                continue
            state = world.light_state(light)
            if state == TrafficLightState.RED or (
                state == TrafficLightState.YELLOW and v * v / (2 * max(g, 0.1)) < 3.0
            ):
                gs = g + min_gap - STOP_GAP
                if gs < gap:
                    gap, v_lead = gs, 0.0
        for k, s_line in enumerate(self.signs):
            g = s_line - f_s
            if g < -0.5:
                continue
            if v < 0.05 and g < 4.0:
                self._sign_waited[k] += world.dt
            if self._sign_waited[k] < 1.0 or not self._junction_clear(world, snap, s_line):
                gs = g + min_gap - STOP_GAP
                if gs < gap:
                    gap, v_lead = gs, 0.0
        k0 = int(np.clip(s_rear / 0.5, 0, len(self.vcap) - 1))
        window = self.vcap[k0 : k0 + 120 : 2]
        dist = np.maximum(np.arange(len(window)) * 1.0, 1.0)
        a_curve = float(np.min((window**2 - v * v) / (2 * dist)))
        v_des = max(float(window[0]), 0.1)
        a = follower_acceleration(
            np.array([v]), np.array([v_des]), np.array([gap]), np.array([v_lead]), np.zeros(1), np.array([a_curve]),
            np.array([self.a_prev]), self.idm, world.dt,
        )  # fmt: skip
        return float(a[0])

    def _junction_clear(self, world, snap, s_line: float, horizon_s: float = 7.0, radius: float = 45.0) -> bool:
        """Gap acceptance at a stop sign: no moving vehicle would reach the junction ahead within `horizon_s`."""
        here = self.path.pose_at(np.array([s_line + 8.0]))[0, :2]
        moving = snap.valid & np.isin(snap.types, (0, 2)) & (np.abs(snap.speed) > 0.5)
        for j in np.nonzero(moving)[0]:
            d = here - snap.xy[j]
            dist = float(np.hypot(*d))
            if dist > radius:
                continue
            toward = d[0] * math.cos(snap.heading[j]) + d[1] * math.sin(snap.heading[j])
            if toward > 0 and dist / max(abs(float(snap.speed[j])), 0.1) < horizon_s:
                return False
        return True


#: reference agents by name.
NAMED_AGENTS = {"expert": ExpertAgent, "constant-velocity": ConstantVelocityAgent, "brake": BrakeAgent}


def load_agent_class(agent: str):
    """The agent class for a name of `NAMED_AGENTS` or a Python file (module-level `get_entry_point()` names the
    class, as the leaderboard requires). Raises `AgentLoadError` with the reason."""
    if agent in NAMED_AGENTS:
        return NAMED_AGENTS[agent]
    path = FilePath(agent)
    if not path.is_file():
        raise AgentLoadError(f"agent {agent!r} is neither a named agent ({', '.join(NAMED_AGENTS)}) nor a file")
    shims.install()
    name = f"irlvla_closed_loop_agent_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AgentLoadError(f"cannot import agent file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    parent = str(path.resolve().parent)
    if parent not in sys.path:
        sys.path.append(parent)  # the leaderboard puts the agent's folder on the path, as team_code does
    try:
        with shims.leaderboard_modules():
            spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(name, None)
        raise AgentLoadError(f"importing {path} failed: {type(e).__name__}: {e}") from e
    entry = getattr(module, "get_entry_point", None)
    if not callable(entry):
        raise AgentLoadError(f"{path} has no get_entry_point() function (the leaderboard's agent entry point)")
    cls_name = entry()
    cls = getattr(module, str(cls_name), None)
    if cls is None:
        raise AgentLoadError(f"{path}: get_entry_point() names {cls_name!r}, which the module does not define")
    return cls
