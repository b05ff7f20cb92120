"""IRL-VLA agent for the Bench2Drive leaderboard: `leaderboard_evaluator.py --agent team_code/irlvla_b2d_agent.py`.

A thin adapter around a pure planner (an `agent.contract.Planner`: `step(Observation) -> PlanResult`): it decodes the
sensors, localises from GNSS + compass, follows the global plan, calls the policy, and turns the trajectory into a
`carla.VehicleControl` with PID controllers. A failing or non-finite step brakes instead of ending the route.

Evaluator call order (Bench2Drive fork): `get_entry_point()` -> `cls(host, port, debug)` -> `set_global_plan(gps,
world)` -> `setup(agent_config + "+" + save_name)`, where the config string grows by one `+save_name` per route, so
the YAML path is the first `+` field and the save name the last.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import math
import os
import time
import traceback
from pathlib import Path

import numpy as np

from agent import geometry
from agent.contract import Planner, PlanResult
from agent.types import (
    PLANNING_SAMPLING,
    CameraRig,
    EgoStatus,
    NavigationCommand,
    Observation,
    Trajectory,
    bench2drive_rig,
)
from bench2drive_eval.agent_api import AgentTrack, BaseAgent
from bench2drive_eval.metric_info import metric_info_from_actor
from team_code.config import AgentConfig
from team_code.controllers import ControlCommand, TrajectoryController, hazard_ahead, held_waypoints
from team_code.images import ImagePreprocessor
from team_code.localization import GEO_MODELS, GnssModelSelector, ImuReading, Localizer, calibrate_georeference
from team_code.metric_log import MetricLogger
from team_code.route import RoutePlanner, RouteTracker, road_option_value
from team_code.sensors import GNSS_ID, IMU_ID, SPEED_ID, build_sensors, camera_ids

logger = logging.getLogger(__name__)

#: the leaderboard ticks at 20 Hz.
DEFAULT_DT = 0.05
#: `Observation.token` of the planning step `setup` runs on blank frames (`AgentConfig.setup_check`).
SETUP_CHECK_TOKEN = "setup_check"


def get_entry_point() -> str:
    return "IrlVlaB2DAgent"


def parse_agent_config_string(value: str) -> tuple[str, str | None]:
    """`"cfg.yaml+route_a+route_b"` -> ("cfg.yaml", "route_b"); no `+` -> (value, None)."""
    if not isinstance(value, str):
        raise TypeError(f"agent config must be a string, got {type(value).__name__}")
    parts = value.split("+")
    save_name = parts[-1] if len(parts) > 1 and parts[-1] else None
    return parts[0], save_name


def load_policy(cfg: AgentConfig) -> Planner:
    """Build the planner named by the config (entry point, checkpoint, or preset; see `AgentConfig`).

    An entry point `module:factory` is called with the `AgentConfig` and must return an `agent.contract.Planner`.
    """
    if cfg.policy_entry_point:
        module_name, _, attr = cfg.policy_entry_point.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        policy = factory(cfg)
        if not isinstance(policy, Planner):
            raise TypeError(
                f"policy_entry_point {cfg.policy_entry_point!r} returned {type(policy).__name__}, which is not an "
                "agent.contract.Planner (step, reset, close)"
            )
        return policy
    from agent.policy import DrivingPolicy  # torch and the model: only when this adapter builds the planner itself

    device = resolve_device(cfg.device)
    if cfg.checkpoint:
        if not Path(cfg.checkpoint).exists():
            raise FileNotFoundError(f"checkpoint {cfg.checkpoint!r} does not exist")
        policy = DrivingPolicy.from_checkpoint(
            cfg.checkpoint, device=device, runtime=cfg.runtime, vlm_checkpoint=cfg.vlm_checkpoint
        )
    else:
        from agent.config import load_preset

        logger.warning("no checkpoint configured: using an untrained %r preset policy", cfg.preset)
        policy = DrivingPolicy.from_config(
            load_preset(cfg.preset), device=device, runtime=cfg.runtime, vlm_checkpoint=cfg.vlm_checkpoint
        )
    if not cfg.rerank:
        # the same selection without the reward world model's term (training/evaluate.py's "imitation only")
        policy.cfg = dataclasses.replace(
            policy.cfg, selection=dataclasses.replace(policy.cfg.selection, reward_weight=0.0)
        )
        logger.info("RWM reranking off: candidates selected by confidence and the collision / off-road checks")
    return policy


#: policies kept across routes (the evaluator constructs one agent per route in the same process).
_POLICY_CACHE: dict[tuple, Planner] = {}


def _policy_key(cfg: AgentConfig) -> tuple:
    return (cfg.policy_entry_point, cfg.checkpoint, cfg.vlm_checkpoint, cfg.preset, cfg.device, cfg.runtime, cfg.rerank)


def get_policy(cfg: AgentConfig) -> Planner:
    """`load_policy`, or the policy an earlier route of this process loaded with the same settings (reset first)."""
    if not cfg.reuse_policy or cfg.policy_entry_point:
        return load_policy(cfg)
    key = _policy_key(cfg)
    policy = _POLICY_CACHE.get(key)
    if policy is None:
        _POLICY_CACHE.clear()  # one model in memory at a time
        policy = _POLICY_CACHE[key] = load_policy(cfg)
    else:
        logger.info("reusing the policy loaded by an earlier route")
        policy.reset()
    return policy


def resolve_device(device: str) -> str:
    """ "auto" -> "cuda" when CUDA is usable, else "cpu" (a warning: a CPU policy misses the 20 Hz budget); an explicit
    "cuda[:N]" that this machine cannot serve is an error at setup, not a crash at the first tick. Always logged."""
    if device == "cpu":
        logger.info("policy device: cpu")
        return device
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            logger.info("policy device: cuda (auto)")
            return "cuda"
        logger.warning("policy device: cpu (auto: CUDA is not available, falling back to the CPU)")
        return "cpu"
    if not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} is configured but CUDA is not available on this machine")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise RuntimeError(f"device {device!r} is configured but only {torch.cuda.device_count()} GPU(s) are visible")
    logger.info("policy device: %s", device)
    return device


def _plan_trajectory(plan: PlanResult) -> Trajectory:
    """The trajectory to drive, or an error saying what is wrong with the planner's output."""
    if not isinstance(plan, PlanResult):
        raise TypeError(f"policy.step returned {type(plan).__name__}, not an agent.contract.PlanResult")
    traj = plan.trajectory  # a validated Trajectory: finite (P, 3) poses
    if traj.poses.shape[0] < 2:
        raise ValueError(f"policy trajectory must have at least 2 poses, got {traj.poses.shape[0]}")
    return traj


def policy_image_width(policy: Planner) -> int | None:
    """The width the policy's own preprocessing resizes a Bench2Drive camera to (None for a planner without a model
    config): preprocessing straight to it spares the policy a second resample."""
    pre = getattr(getattr(policy, "cfg", None), "preprocess", None)
    if pre is None:
        return None
    from agent.preprocess import image_transform

    cam = next(s for s in build_sensors() if "width" in s)
    return image_transform(int(cam["width"]), int(cam["height"]), pre).resized_w


@dataclasses.dataclass(frozen=True)
class _HeldPlan:
    """The last plan and where and when it was made (`AgentConfig.plan_every`)."""

    plan: PlanResult
    trajectory: Trajectory
    pose: np.ndarray  # localised world pose (x, y, heading) at the planning tick
    time_s: float  # the agent's clock at the planning tick
    step: int


def _vehicle_control(cmd: ControlCommand):
    try:
        import carla
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the CARLA Python API is required to drive: pip install 'irlvla[carla]'") from e
    return carla.VehicleControl(
        throttle=float(cmd.throttle), steer=float(cmd.steer), brake=float(cmd.brake), hand_brake=False, reverse=False
    )


def _plan_world_xy(plan) -> np.ndarray:
    """[(carla.Transform, RoadOption)] -> (N, 2) in our world frame."""
    xyz = np.array([[tf.location.x, tf.location.y, tf.location.z] for tf, _ in plan], dtype=np.float64)
    return geometry.carla_location_to_world(xyz)[:, :2]


class IrlVlaB2DAgent(BaseAgent):
    """The IRL-VLA planner on Bench2Drive's SENSORS track: six cameras, GNSS, IMU, speedometer."""

    #: set by `setup` (or directly by tests before the first step) to override the configured policy.
    policy: Planner | None = None

    # ---------------------------------------------------------------------------------------------- leaderboard API
    def set_global_plan(self, global_plan_gps, global_plan_world_coord) -> None:
        self._dense_plan_world = list(global_plan_world_coord)
        super().set_global_plan(global_plan_gps, global_plan_world_coord)
        self._route_ready = False

    def setup(self, path_to_conf_file: str) -> None:
        self.track = AgentTrack.SENSORS
        config_path, self.save_name = parse_agent_config_string(path_to_conf_file)
        self.config = AgentConfig.from_yaml(config_path) if config_path else AgentConfig()
        cfg = self.config
        logger.info("IRL-VLA agent: config %s, save name %s", config_path or "<defaults>", self.save_name)
        self._rigs: dict[tuple[int, int], CameraRig] = {}
        self.controller = TrajectoryController(cfg.controller, interval=PLANNING_SAMPLING.interval)
        self.policy = get_policy(cfg)
        self.preprocessor = ImagePreprocessor(cfg.images, width=policy_image_width(self.policy))
        self._held: _HeldPlan | None = None
        self.held_steps = 0  # ticks driven on a held plan (`plan_every` > 1)
        self.step_count = 0
        self.failures = 0
        self.slow_steps = 0
        self.last_timings: dict[str, float] = {}
        self._last_timestamp: float | None = None
        self._last_steer = 0.0
        self._route_ready = False
        if self._global_plan_world_coord:  # the evaluator sets the plan before setup(): pay the route set-up here
            self._init_route()
        if cfg.setup_check:
            self._check_policy()
        self.metric_logger = self._open_metric_logger()
        self.hud = None
        if cfg.hud or cfg.hud_record:  # optional pygame HUD (viz extra), imported only when asked for
            from viz.agent_hud import AgentHud

            self.hud = AgentHud.for_agent(cfg, os.environ.get("SAVE_PATH") or cfg.save_path, self.save_name)

    def sensors(self) -> list[dict]:
        return build_sensors()

    def run_step(self, input_data: dict, timestamp: float):
        """One tick; never raises: an exception or non-finite output becomes a full brake, logged and counted."""
        t0 = time.perf_counter()
        step = self.step_count
        self.step_count += 1
        try:
            cmd = self._step(input_data, float(timestamp))
        except Exception as e:
            self.failures += 1
            cmd = ControlCommand.emergency_brake(f"{type(e).__name__}: {e}", steer=self._last_steer)
            n = self.failures
            if n <= self.config.max_logged_tracebacks or n % 100 == 0:
                logger.error("step %d failed (failure #%d), braking:\n%s", step, n, traceback.format_exc())
            else:
                logger.error("step %d failed (failure #%d), braking: %s: %s", step, n, type(e).__name__, e)
        self._log_metrics(step)
        elapsed_ms = (time.perf_counter() - t0) * 1e3
        self.last_timings["total_ms"] = elapsed_ms
        if elapsed_ms > self.config.latency_budget_ms:
            self.slow_steps += 1
            logger.warning(
                "step %d took %.1f ms (budget %.0f ms): %s",
                step,
                elapsed_ms,
                self.config.latency_budget_ms,
                {k: round(v, 2) for k, v in self.last_timings.items()},
            )
        self._last_steer = cmd.steer
        self.last_command = cmd
        return _vehicle_control(cmd)

    def destroy(self) -> None:
        logger.info(
            "IRL-VLA agent done: %d steps (%d on a held plan), %d failed steps, %d over the latency budget, %d creeps",
            getattr(self, "step_count", 0),
            getattr(self, "held_steps", 0),
            getattr(self, "failures", 0),
            getattr(self, "slow_steps", 0),
            getattr(getattr(self, "controller", None), "creeps", 0),
        )
        ml = getattr(self, "metric_logger", None)
        if ml is not None:
            try:
                ml.close()
            except OSError:
                logger.exception("could not write the final metric_info.json")
        pre = getattr(self, "preprocessor", None)
        if pre is not None:
            pre.close()
        if getattr(self, "hud", None) is not None:
            self.hud.close()
        cached = any(p is self.policy for p in _POLICY_CACHE.values())
        if self.policy is not None and not cached:
            try:
                self.policy.close()
            except Exception:
                logger.exception("policy.close() failed")
        self.policy = None

    # ------------------------------------------------------------------------------------------------- internals
    def _open_metric_logger(self) -> MetricLogger | None:
        root = os.environ.get("SAVE_PATH") or self.config.save_path
        if not root:
            logger.info("no SAVE_PATH / save_path: metric_info.json is not written")
            return None
        name = self.save_name or time.strftime("route_%m_%d_%H_%M_%S")
        return MetricLogger(Path(root) / name, flush_every=self.config.metric_flush_every)

    def _log_metrics(self, step: int) -> None:
        if self.metric_logger is None:
            return
        actor = getattr(self, "hero_actor", None)
        if actor is None:
            try:
                from srunner.scenariomanager.carla_data_provider import CarlaDataProvider

                actor = self.hero_actor = CarlaDataProvider.get_hero_actor()
            except Exception:
                return
            if actor is None:
                return
        try:
            self.metric_logger.append(step, metric_info_from_actor(actor))
        except Exception:
            logger.exception("metric_info logging failed at step %d", step)

    def _init_route(self) -> None:
        plan = self._global_plan_world_coord
        if not plan:
            raise RuntimeError("no global plan: set_global_plan must be called before the first step")
        sparse_xy = _plan_world_xy(plan)
        dense = getattr(self, "_dense_plan_world", None) or plan
        dense_xy = _plan_world_xy(dense)
        gps_plan = self._plan_gps_HACK if self._plan_gps_HACK is not None else self._global_plan
        gps = [g[0] if isinstance(g, (tuple, list)) else g for g in gps_plan]
        loc = self.config.localization
        self.geo_calibration = calibrate_georeference(
            gps,
            dense_xy if len(gps) == len(dense_xy) else sparse_xy,
            kinds=GEO_MODELS if loc.projection == "auto" else (loc.projection,),
            max_residual_m=loc.max_plan_residual,
        )
        lat_ref, lon_ref = self.lat_ref, self.lon_ref = (
            self.geo_calibration.model.lat_ref,
            self.geo_calibration.model.lon_ref,
        )
        initial = None
        if len(dense_xy) > 1:
            d = dense_xy[min(5, len(dense_xy) - 1)] - dense_xy[0]
            initial = math.atan2(d[1], d[0]) if np.hypot(*d) > 1e-6 else None
        selector = GnssModelSelector(self.geo_calibration.candidates, dense_xy, tolerance_m=loc.model_check_tolerance)
        self.localizer = Localizer(loc, selector, initial_heading=initial)
        self.route_planner = RoutePlanner(self.config.route, sparse_xy, [o for _, o in plan])
        self.route_tracker = RouteTracker(dense_xy, num_points=self.config.route.route_points)
        self._route_ready = True
        logger.info(
            "route: %d plan points (%d dense), georeference (%.8f, %.8f)", len(plan), len(dense), lat_ref, lon_ref
        )

    def _time_step(self, timestamp: float) -> float:
        """Seconds since the last tick that updated the pose; a NaN timestamp or one that goes backwards counts as
        one nominal tick (logged), so one bad timestamp never poisons the estimate of the ticks after it."""
        last = self._last_timestamp
        if not math.isfinite(timestamp):
            logger.warning("timestamp %r is not finite: assuming one tick (%.2f s) passed", timestamp, DEFAULT_DT)
            return DEFAULT_DT
        if last is None:
            return DEFAULT_DT
        dt = timestamp - last
        if dt <= 0.0:
            logger.warning("timestamp %.3f does not advance past %.3f: assuming one tick", timestamp, last)
            return DEFAULT_DT
        return max(dt, 1e-3)

    def _check_policy(self) -> None:
        """One planning step on blank frames at the sensors' resolution, then a policy reset (`setup_check`)."""
        frames = {s["id"]: np.zeros((s["height"], s["width"], 4), np.uint8) for s in build_sensors() if "width" in s}
        images = self.preprocessor({name: frames[name] for name in camera_ids()})
        h, w = images[camera_ids()[0]].shape[:2]
        rig = self._rigs.setdefault((w, h), bench2drive_rig(w, h))
        n = self.config.route.route_points
        obs = Observation(
            images=images,
            rig=rig,
            ego=EgoStatus(
                velocity=np.zeros(2),
                acceleration=np.zeros(2),
                command=NavigationCommand.from_carla_road_option(4),  # LANEFOLLOW
            ),
            timestamp=0.0,
            target_point=np.array([10.0, 0.0]),
            route=np.stack([np.linspace(2.0, 2.0 * n, n), np.zeros(n)], axis=-1),
            token=SETUP_CHECK_TOKEN,
            extras={"world_pose": np.zeros(3), "heading_valid": False, "road_option": 4, "lat_lon_ref": (0.0, 0.0)},
        )
        try:
            _plan_trajectory(self.policy.step(obs))
        except Exception as e:
            raise RuntimeError(
                f"setup check: the policy cannot plan on a blank frame ({type(e).__name__}: {e}); fix the "
                "configuration or set setup_check: false"
            ) from e
        self.policy.reset()
        logger.info("setup check: the policy planned on blank frames")

    def _step(self, input_data: dict, timestamp: float) -> ControlCommand:
        timings = self.last_timings = {}
        tick = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal tick
            now = time.perf_counter()
            timings[name] = (now - tick) * 1e3
            tick = now

        if not self._route_ready:
            self._init_route()
        dt = self._time_step(timestamp)

        missing = [k for k in (*camera_ids(), GNSS_ID, IMU_ID, SPEED_ID) if k not in input_data]
        if missing:
            raise KeyError(f"input_data lacks sensor(s) {missing}")
        speed = float(input_data[SPEED_ID][1]["speed"])
        if not math.isfinite(speed):
            raise ValueError(f"speedometer reading is not finite: {speed}")
        imu = ImuReading.from_leaderboard(input_data[IMU_ID][1])
        pose = self.localizer.update(input_data[GNSS_ID][1], imu.compass, speed, dt)
        # the estimate now covers the time up to this tick (a NaN or backwards timestamp counts as one nominal tick)
        last = self._last_timestamp
        advances = math.isfinite(timestamp) and (last is None or timestamp > last)
        self._last_timestamp = timestamp if advances else (last or 0.0) + dt
        pose_arr = pose.array
        target = self.route_planner.run_step(pose_arr)
        route_ahead = self.route_tracker.update(pose_arr)
        lap("localize_route_ms")

        held = self._held
        step = self.step_count - 1
        if held is not None and step - held.step < self.config.plan_every:
            # between planning ticks: follow the held plan, re-timed and re-expressed in the current ego frame
            traj = held.trajectory
            elapsed = self._last_timestamp - held.time_s
            wp = held_waypoints(traj.poses, traj.sampling.interval, held.pose, pose_arr, elapsed)
            hazard = hazard_ahead(held.plan, self.config.controller)
            cmd = self.controller.step(wp[:, :2], speed, target.ego_xy, dt=dt, hazard=hazard)
            self.held_steps += 1
            lap("control_ms")
            return cmd
        self._held = None  # a failing planning step must not leave an older plan to follow

        images = self.preprocessor({name: input_data[name][1] for name in camera_ids()})
        h, w = images[camera_ids()[0]].shape[:2]
        rig = self._rigs.get((w, h))
        if rig is None:
            rig = self._rigs[(w, h)] = bench2drive_rig(w, h)
        lap("images_ms")

        obs = Observation(
            images=images,
            rig=rig,
            ego=EgoStatus(
                velocity=np.array([speed, 0.0]),
                acceleration=imu.accel,
                yaw_rate=imu.yaw_rate,
                command=target.command,
                steer=self._last_steer,
            ),
            timestamp=timestamp,
            target_point=target.ego_xy,
            route=route_ahead,
            token=f"{self.save_name or 'route'}:{self.step_count - 1}",
            extras={
                "world_pose": pose_arr,
                "heading_valid": pose.heading_valid,
                "road_option": road_option_value(target.road_option),
                "lat_lon_ref": (self.lat_ref, self.lon_ref),
            },
        )
        plan = self.policy.step(obs)
        lap("policy_ms")

        traj = _plan_trajectory(plan)
        if traj.sampling.interval != self.controller.interval:
            self.controller.interval = traj.sampling.interval
        if self.config.plan_every > 1:
            self._held = _HeldPlan(plan, traj, pose_arr, self._last_timestamp, step)
        hazard = hazard_ahead(plan, self.config.controller)
        cmd = self.controller.step(traj.poses[:, :2], speed, target.ego_xy, dt=dt, hazard=hazard)
        lap("control_ms")
        for k, v in plan.timings.items():
            timings[f"policy.{k}"] = float(v)
        hud = getattr(self, "hud", None)
        if hud is not None:
            hud.show(obs, plan, cmd)
        return cmd
