"""The leaderboard stand-in: run one route with any leaderboard agent and score it as the leaderboard does.

    result = run_route(spec, "expert", RunnerConfig(), on_tick=callback)
    result.record          # the leaderboard checkpoint record (route_id, status, infractions, scores, meta, ...)

Per route, in the Bench2Drive evaluator's order: the agent class from its file (`get_entry_point()`) or a reference
name; `cls(host, port, debug)`; the hero actor attached (the B2D fork's `get_hero()`); `set_global_plan(gps, world)`
with the dense 1 m plan (the agent's base class downsamples it); `setup(config string + "+" + save_name)`, the string
growing by one `+save_name` per route when the caller threads it through (`RouteRun.config_string`); sensor
validation with the leaderboard's rules; then at 20 Hz: sensors -> `run_step(input_data, timestamp)` ->
`VehicleControl` -> vehicle dynamics -> world tick -> criteria; finally `destroy()`.

Failure isolation: an exception or a non-finite control from the agent ends the route as `Failed - Agent crashed`
(the route keeps the completion and penalties it earned so far), a failing constructor or `setup` is
`Failed - Agent couldn't be set up`, an invalid sensor suite `Failed - Agent's sensors were invalid`, and anything
failing in our own code `Failed - Simulation crashed` (never the agent's score: a resumed run retries it).

`on_tick(TickInfo)` is called after every tick with the world state and the agent's control, for HUDs and
recorders; returning False from it stops the route (status `Failed - Simulation crashed` is not used for that: the
route ends as the criteria stand).
"""

from __future__ import annotations

import logging
import math
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sim.closed_loop import criteria as C
from sim.closed_loop import shims
from sim.closed_loop.agents import AgentLoadError, PrivilegedView, load_agent_class
from sim.closed_loop.dynamics import MKZ2020, DynamicsConfig, VehicleState, step_vehicle
from sim.closed_loop.route import DEFAULT_GEOREFERENCE, Route, RouteSpec, build_route
from sim.closed_loop.sensors import HeroActor, SensorRig, SensorSuite
from sim.closed_loop.world import LivingWorld, WorldConfig, WorldSnapshot

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunnerConfig:
    """One closed-loop run's settings. `track` is the leaderboard track the agent must declare; `sensor_noise` the
    leaderboard's GNSS/IMU noise; `georeference` the (lat, lon) GNSS reference; `save_path` is exported as
    `SAVE_PATH` while an agent runs (agents write their outputs under it; it also lifts the mount-radius limit to
    100 m, as in the leaderboard) and holds the per-route `metric_info.json`."""

    dt: float = 0.05
    track: str = "SENSORS"
    sensor_noise: bool = True
    nan_compass_ticks: int = 0
    georeference: tuple[float, float] = DEFAULT_GEOREFERENCE
    save_path: str | None = None
    criteria: C.CriteriaConfig = field(default_factory=C.CriteriaConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    dynamics: DynamicsConfig = MKZ2020
    host: str = "localhost"
    port: int = 2000

    def __post_init__(self) -> None:
        from agent.validation import require_positive

        require_positive("RunnerConfig", dt=self.dt)
        if self.track not in ("SENSORS", "MAP", "SENSORS_QUALIFIER", "MAP_QUALIFIER"):
            raise ValueError(f"RunnerConfig.track: unknown track {self.track!r}")
        if self.nan_compass_ticks < 0:
            raise ValueError("RunnerConfig.nan_compass_ticks must be >= 0")


@dataclass
class TickInfo:
    """One tick as `on_tick` sees it."""

    route: Route
    world: LivingWorld
    tick: int
    time_s: float
    ego: VehicleState
    snapshot: WorldSnapshot
    control: object
    input_data: dict
    criteria: C.RouteCriteria


@dataclass
class RouteResult:
    record: dict
    ticks: int
    metric_info: list[dict]
    error: str | None = None  # traceback of an agent or simulation failure
    config_string: str = ""  # the agent config string after this route (pass it to the next route)


def save_name_for(spec: RouteSpec, scenario_type: str, when: float | None = None) -> str:
    """`<route_id>_<town>_<scenario_name>_<weather_id>_<MM_DD_HH_MM_SS>`, the leaderboard's per-route save name."""
    stamp = time.strftime("%m_%d_%H_%M_%S", time.localtime(when))
    return f"{spec.leaderboard_id}_{spec.town}_{scenario_type}_1_{spec.weather_id}_{stamp}"


def _record(spec: RouteSpec, scenario_type: str, save_name: str, status: str, crit: C.RouteCriteria | None,
            length: float, game_s: float, system_s: float) -> dict:  # fmt: skip
    from bench2drive_eval.records import INFRACTION_KEYS

    events = crit.events if crit is not None else {k: [] for k in INFRACTION_KEYS}
    scores = crit.scores() if crit is not None else {"score_route": 0.0, "score_penalty": 1.0, "score_composed": 0.0}
    return {
        "index": -1,
        "route_id": spec.leaderboard_id,
        "scenario_name": f"{scenario_type}_1",
        "weather_id": str(spec.weather_id),
        "save_name": save_name,
        "status": status,
        "num_infractions": sum(len(v) for v in events.values()),
        "infractions": {k: list(events.get(k, [])) for k in INFRACTION_KEYS},
        "scores": {k: round(float(v), 6) for k, v in scores.items()},
        "meta": {
            "route_length": round(float(length), 3),
            "duration_game": round(game_s, 3),
            "duration_system": round(system_s, 3),
        },  # fmt: skip
        "town_name": spec.town,
        "family": spec.family,
        "seed": spec.seed,
    }


class _SaveEnv:
    """SAVE_PATH exported while the agent lives (restored afterwards)."""

    def __init__(self, path: str | None) -> None:
        self.path, self.old = path, None

    def __enter__(self):
        if self.path is not None:
            self.old = os.environ.get("SAVE_PATH")
            os.environ["SAVE_PATH"] = str(self.path)
        return self

    def __exit__(self, *exc):
        if self.path is not None:
            if self.old is None:
                os.environ.pop("SAVE_PATH", None)
            else:
                os.environ["SAVE_PATH"] = self.old
        return False


def run_route(
    spec: RouteSpec | Route,
    agent: str | type,
    config: RunnerConfig | None = None,
    agent_config: str = "",
    on_tick: Callable[[TickInfo], bool | None] | None = None,
    save_name: str | None = None,
    validate: bool = True,
) -> RouteResult:
    """Run one route with `agent` (a reference name, an agent file, or an agent class); never raises for agent or
    simulation failures (they become the record's status)."""
    cfg = config or RunnerConfig()
    carla = shims.install()
    t_wall = time.perf_counter()
    route: Route | None = spec if isinstance(spec, Route) else None
    rspec = route.spec if route is not None else spec
    try:
        if route is None:
            route = build_route(rspec, cfg.dynamics)
    except Exception:
        tb = traceback.format_exc()
        logger.error("route %s could not be built:\n%s", rspec.route_id, tb)
        name = save_name or save_name_for(rspec, "Unknown")
        rec = _record(rspec, "Unknown", name, C.FAILED_SIM_CRASHED, None, 0.0, 0.0, time.perf_counter() - t_wall)
        return RouteResult(rec, 0, [], tb, agent_config)
    name = save_name or save_name_for(rspec, route.scenario_type)
    grown = agent_config + "+" + name  # the evaluator's `args.agent_config` grows by one +save_name per route

    def finish(status: str, crit, ticks: int, metric: list, error: str | None = None) -> RouteResult:
        if crit is not None:
            crit.finish()
        rec = _record(rspec, route.scenario_type, name, status, crit, route.length, ticks * cfg.dt,
                      time.perf_counter() - t_wall)  # fmt: skip
        return RouteResult(rec, ticks, metric, error, grown)

    with _SaveEnv(cfg.save_path):
        # ---- agent construction, as the evaluator does it
        try:
            cls = load_agent_class(agent) if isinstance(agent, str) else agent
            instance = cls(cfg.host, cfg.port, 0)
            hero = HeroActor(carla, cfg.dynamics)
            hero.state = route.start_state()
            instance.hero_actor = hero
            lat_ref, lon_ref = cfg.georeference
            gps, world_plan = route.global_plan(carla, lat_ref, lon_ref)
            instance.set_global_plan(gps, world_plan)
            instance.setup(grown)
        except (AgentLoadError, Exception):
            tb = traceback.format_exc()
            logger.error("agent could not be set up for route %s:\n%s", rspec.route_id, tb)
            return finish(C.FAILED_SETUP, None, 0, [], tb)
        try:
            return _drive(route, instance, hero, cfg, on_tick, finish, validate)
        finally:
            try:
                instance.destroy()
            except Exception:
                logger.exception("agent.destroy() failed on route %s", rspec.route_id)


def _drive(route: Route, agent, hero: HeroActor, cfg: RunnerConfig, on_tick, finish, validate: bool) -> RouteResult:
    from team_code.sensors import SensorConfigurationInvalid, validate_sensors

    spec = route.spec
    try:
        sensors = agent.sensors()
        if validate:
            validate_sensors(sensors, cfg.track, agent_track=getattr(agent, "track", None),
                             save_path_set=bool(os.environ.get("SAVE_PATH")))  # fmt: skip
        rig = SensorRig.from_sensors(sensors)
    except (SensorConfigurationInvalid, KeyError, TypeError, ValueError):
        tb = traceback.format_exc()
        logger.error("route %s: the agent's sensors are invalid:\n%s", spec.route_id, tb)
        return finish(C.FAILED_SENSORS, None, 0, [], tb)
    if rig.unsupported:
        logger.warning("the embedded world produces no data for %s", sorted({s["type"] for s in rig.unsupported}))
    try:
        world = LivingWorld(route.scene, route.build, cfg.dt, cfg.world, cfg.dynamics)
        crit = C.RouteCriteria(world, route.points, route.headings, route.path, cfg.criteria)
        suite = SensorSuite(rig, cfg.georeference[0], cfg.georeference[1], noise=cfg.sensor_noise, seed=spec.seed,
                            nan_compass_ticks=cfg.nan_compass_ticks, dynamics=cfg.dynamics)  # fmt: skip
    except Exception:
        tb = traceback.format_exc()
        return finish(C.FAILED_SIM_CRASHED, None, 0, [], tb)
    ego = route.start_state()
    hero.state = ego
    state = {"ego": ego, "snap": None}
    if getattr(agent, "PRIVILEGED", False) and hasattr(agent, "privileged_world"):
        agent.privileged_world(PrivilegedView(world, route, lambda: state["ego"], lambda: state["snap"]))
    metric: list[dict] = []
    from team_code.metric_log import metric_info_from_actor

    tick = 0
    frame = 1000
    snap = world.snapshot(ego)
    state["snap"] = snap
    while True:
        try:
            data = suite.read(frame + tick, tick, ego, lambda e=ego, s=snap: world.scene_at(e, s))
        except Exception:
            return finish(C.FAILED_SIM_CRASHED, crit, tick, metric, traceback.format_exc())
        try:
            control = agent.run_step(data, tick * cfg.dt)
            if control is None:
                raise TypeError("run_step returned None instead of a carla.VehicleControl")
            control.manual_gear_shift = False
            for k in ("throttle", "steer", "brake"):
                if not math.isfinite(float(getattr(control, k))):
                    raise ValueError(f"run_step returned a non-finite {k}: {getattr(control, k)!r}")
        except Exception:
            tb = traceback.format_exc()
            logger.error("route %s: the agent failed at tick %d:\n%s", spec.route_id, tick, tb)
            return finish(C.FAILED_AGENT_CRASHED, crit, tick, metric, tb)
        try:
            ego = step_vehicle(ego, control, cfg.dt, cfg.dynamics)
            state["ego"] = ego
            hero.state = ego
            world.tick(ego, snap)
            snap = world.snapshot(ego)
            state["snap"] = snap
            failure = crit.update(tick, ego, snap, cfg.dt)
            metric.append(metric_info_from_actor(hero))
        except Exception:
            return finish(C.FAILED_SIM_CRASHED, crit, tick, metric, traceback.format_exc())
        tick += 1
        if on_tick is not None:
            keep = on_tick(TickInfo(route, world, tick, tick * cfg.dt, ego, snap, control, data, crit))
            if keep is False:
                return finish(C.final_status(None, crit.completion, crit.events), crit, tick, metric)
        if failure == "done":
            return finish(C.final_status(None, crit.completion, crit.events), crit, tick, metric)
        if failure is not None:
            return finish(failure, crit, tick, metric)


def write_metric_info(root: str | os.PathLike, save_name: str, samples: list[dict]) -> Path | None:
    """`root/<save_name>/metric_info.json` in Bench2Drive's layout, unless the agent already wrote one."""
    from irlvla.atomic import atomic_write_json

    path = Path(root) / save_name / "metric_info.json"
    if path.exists() or not samples:
        return None
    atomic_write_json(path, {str(i): s for i, s in enumerate(samples)})
    return path
