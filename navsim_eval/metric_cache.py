"""Real NAVSIM metric caches as the scorer's input: an official `MetricCache` becomes a `SceneCache` with no scene.

The official scorer (`navsim.evaluate.pdm_score`) reads nothing but the metric cache, so this conversion reads the
same fields and uses every one of them as given:

- `ego_state` -> the initial state row (as `ego_state_to_state_array`: rear-axle pose, velocity, acceleration, steering
  angle and rate, yaw rate and acceleration) and the ego's `EgoParams` (its vehicle parameters);
- `trajectory` (PDM-Closed's, planned when the cache was made) -> the reference, re-simulated like a proposal;
- `centerline` (`PDMPath`) -> EP's and LK's centreline; `route_lane_ids` -> the on-route lanes (DDC);
- `drivable_area_map` (`PDMDrivableMap`, already cut to its 100 m square) -> lanes and lane connectors, the drivable
  polygons (roadblocks, intersections, drivable and car-park areas) and the intersections, as `PDMScorer` picks them;
- `observation` (`PDMObservation`, tracks at 10 Hz and red on-route connectors per step) -> our log-replay
  `Observation`: each track's box centre, heading and velocity per step, its size and its speed when first seen;
- `past_human_trajectory` -> the HC history, sampled as `PDMScorer._calculate_history_comfort` samples it;
- `human_trajectory` (None for synthetic frames) -> the human filter's plan; `scene_type` -> stage one or two.

`map_parameters`, `past_detections_tracks`, `current_tracked_objects` and `future_tracked_objects` are not read: the
non-reactive official scorer does not read them either (its log-replay policy replays `observation`). Reactive
(IDM) traffic needs the map itself, which a cache does not hold, so it is refused for a converted cache.

Unpickling a cache needs navsim and nuplan-devkit importable (its objects are theirs): the pip extra `navsim` plus
both devkits from source (docs/navsim_crosscheck.md). Converting an already loaded cache uses only the objects'
attributes and methods, so no devkit module is imported here.
"""

from __future__ import annotations

import importlib
import lzma
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from navsim_eval.cache import SceneCache, given_reference
from navsim_eval.config import EpdmsConfig
from navsim_eval.mapquery import MapQueries
from navsim_eval.observation import Observation
from navsim_eval.simulation import STATE_DIM
from navsim_eval.traffic import log_replay
from sim.scene import AgentType, EgoParams

CACHE_FILE = "metric_cache.pkl"  # NAVSIM writes <cache root>/<log>/<scenario type>/<token>/metric_cache.pkl
DRIVABLE_LAYERS = ("ROADBLOCK", "INTERSECTION", "DRIVABLE_AREA", "CARPARK_AREA")  # PDMScorer's drivable_area_idcs
LANE_LAYERS = ("LANE", "LANE_CONNECTOR")


def require_devkit() -> None:
    """Fail with an error naming the `navsim` extra unless navsim and nuplan-devkit import."""
    try:
        importlib.import_module("nuplan.common.actor_state.ego_state")
        importlib.import_module("navsim.planning.metric_caching.metric_cache")
    except ImportError as exc:
        raise ImportError(
            "reading NAVSIM metric caches needs navsim and nuplan-devkit (pip extra `navsim`, then `pip install "
            f"--no-deps -e <navsim> -e <nuplan-devkit>` from their sources; see docs/navsim_crosscheck.md): {exc}"
        ) from exc


def load_metric_cache(path: str | Path) -> Any:
    """Unpickle one `metric_cache.pkl` (lzma-compressed, as `MetricCache.dump` writes it)."""
    require_devkit()
    path = Path(path)
    with lzma.open(path, "rb") as f:
        cache = pickle.load(f)
    for name in ("ego_state", "trajectory", "observation", "centerline", "drivable_area_map", "route_lane_ids"):
        if not hasattr(cache, name):
            raise ValueError(f"{path}: not a NAVSIM metric cache (no `{name}`)")
    return cache


class MetricCacheIndex:
    """The tokens of a metric-cache folder: `<token>/metric_cache.pkl` anywhere below it (NAVSIM's layout)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"metric cache folder not found: {self.root}")
        self.paths = {p.parent.name: p for p in sorted(self.root.rglob(CACHE_FILE))}

    @staticmethod
    def holds_caches(root: str | Path) -> bool:
        """Whether `root` is a metric-cache folder (some `metric_cache.pkl` below it)."""
        return Path(root).is_dir() and next(Path(root).rglob(CACHE_FILE), None) is not None

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, token: str) -> Any:
        if token not in self.paths:
            raise KeyError(f"no metric cache for token {token} in {self.root}")
        return load_metric_cache(self.paths[token])


def ego_state_row(ego_state: Any) -> np.ndarray:
    """An nuPlan `EgoState` as a state row (11,), the fields `ego_state_to_state_array` reads."""
    d = ego_state.dynamic_car_state
    ra = ego_state.rear_axle
    row = np.zeros(STATE_DIM)
    row[:] = [
        ra.x,
        ra.y,
        ra.heading,
        d.rear_axle_velocity_2d.x,
        d.rear_axle_velocity_2d.y,
        d.rear_axle_acceleration_2d.x,
        d.rear_axle_acceleration_2d.y,
        ego_state.tire_steering_angle,
        d.tire_steering_rate,
        d.angular_velocity,
        d.angular_acceleration,
    ]
    return row


def ego_params_of(ego_state: Any) -> EgoParams:
    """The ego's box and wheelbase from its `VehicleParameters` (NAVSIM: the Pacifica)."""
    v = ego_state.car_footprint.vehicle_parameters
    return EgoParams(
        width=float(v.width),
        front_length=float(v.front_length),
        rear_length=float(v.rear_length),
        wheelbase=float(v.wheel_base),
        height=float(v.height),
    )


def history_of(past_human_trajectory: Any, dt: float = 0.1) -> np.ndarray | None:
    """HC's history (N, 11): the past trajectory at `dt` from its start, the last sample dropped, as
    `PDMScorer._calculate_history_comfort` samples it (-1.5 .. -0.2 s for NAVSIM's 2 Hz past)."""
    if past_human_trajectory is None:
        return None
    t0, t1 = past_human_trajectory.start_time.time_us, past_human_trajectory.end_time.time_us
    times = np.clip(np.arange(t0, t1, int(dt * 1e6), dtype=np.int64), t0, t1)[:-1]
    if len(times) == 0:
        return None
    time_point = type(past_human_trajectory.start_time)
    states = past_human_trajectory.get_state_at_times([time_point(int(t)) for t in times])
    return np.stack([ego_state_row(s) for s in states])


def _agent_type(tracked_object: Any) -> AgentType:
    name = getattr(tracked_object.tracked_object_type, "name", "")
    return AgentType[name] if name in AgentType.__members__ else AgentType.GENERIC_OBJECT


def observation_of(pdm_observation: Any, num_steps: int) -> Observation:
    """A metric cache's `PDMObservation` (tracks at 10 Hz, red on-route connectors per step) as our `Observation`.

    Per step, each tracked object's box gives its centre and heading; road users (nuPlan's AGENT_TYPES) keep their
    velocity, other objects stand. A track's size and its speed are read where it is first seen (`unique_objects`,
    which the official scorer reads for the stopped-track test). Red lights are the occupancy maps' `red_light_*`
    polygons, with a per-step mask.
    """
    tracks = pdm_observation.detections_tracks
    if len(tracks) < num_steps:
        raise ValueError(f"the metric cache's observation covers {len(tracks)} steps, the scorer needs {num_steps}")
    index: dict[str, int] = {}
    types, sizes, first_speed = [], [], []
    rows: list[tuple[int, int, tuple]] = []
    for t in range(num_steps):
        for obj in tracks[t].tracked_objects:
            token = obj.track_token
            kind = _agent_type(obj)
            vel = getattr(obj, "velocity", None) if kind.is_road_user else None
            vx, vy = (float(vel.x), float(vel.y)) if vel is not None else (0.0, 0.0)
            if token not in index:
                index[token] = len(index)
                types.append(int(kind))
                sizes.append((obj.box.length, obj.box.width, obj.box.height))
                first_speed.append(float(np.hypot(vx, vy)))
            c = obj.box.center
            rows.append((index[token], t, (c.x, c.y, c.heading, vx, vy)))
    a = len(index)
    states = np.zeros((a, num_steps, 5))
    present = np.zeros((a, num_steps), dtype=bool)
    if rows:
        ai = np.array([r[0] for r in rows])
        ti = np.array([r[1] for r in rows])
        states[ai, ti] = np.array([r[2] for r in rows], dtype=np.float64)
        present[ai, ti] = True
    red_token = pdm_observation.red_light_token
    polys: dict[str, Any] = {}
    red_steps: dict[str, list[int]] = {}
    for t in range(num_steps):
        occupancy = pdm_observation[t]
        for token in occupancy.tokens:
            if red_token in token:
                polys.setdefault(token, occupancy[token])
                red_steps.setdefault(token, []).append(t)
    masks = np.zeros((len(polys), num_steps), dtype=bool)
    for i, token in enumerate(polys):
        masks[i, red_steps[token]] = True
    return Observation(
        tuple(index),
        np.array(types, dtype=np.int8).reshape(a),
        np.array(sizes, dtype=np.float64).reshape(a, 3),
        states,
        present,
        np.array(first_speed, dtype=np.float64).reshape(a),
        tuple(polys.values()),
        masks,
    )


def map_queries_of(metric_cache: Any) -> MapQueries:
    """`MapQueries` of the cache's drivable map, on-route lane ids and centreline (nothing else is needed)."""
    dam = metric_cache.drivable_area_map
    tokens = list(dam.tokens)
    layers = [getattr(m, "name", str(m)) for m in dam.map_types]
    geoms = [dam[t] for t in tokens]
    lanes = [i for i, m in enumerate(layers) if m in LANE_LAYERS]
    line = np.array([[p.x, p.y, p.heading] for p in metric_cache.centerline.discrete_path], dtype=np.float64)
    return MapQueries.from_parts(
        [tokens[i] for i in lanes],
        [geoms[i] for i in lanes],
        [str(i) for i in metric_cache.route_lane_ids],
        [g for g, m in zip(geoms, layers) if m in DRIVABLE_LAYERS],
        [g for g, m in zip(geoms, layers) if m == "INTERSECTION"],
        line,
    )


def reference_poses(metric_cache: Any) -> np.ndarray:
    """The cache's PDM-Closed trajectory as (T, 3) rear-axle poses at its own 0.1 s sampling (world frame)."""
    states = metric_cache.trajectory.get_sampled_trajectory()
    return np.array([[s.rear_axle.x, s.rear_axle.y, s.rear_axle.heading] for s in states], dtype=np.float64)


def metric_cache_inputs(metric_cache: Any) -> tuple[np.ndarray, np.ndarray]:
    """A cache's PDM-Closed trajectory (T, 3) and centreline (N, 3), world frame (to give `SceneCache.build` for a
    scene of our own that the cache was made from)."""
    line = np.array([[p.x, p.y, p.heading] for p in metric_cache.centerline.discrete_path], dtype=np.float64)
    return reference_poses(metric_cache), line


def token_of(metric_cache: Any) -> str:
    """NAVSIM's token of a cache: the folder its `metric_cache.pkl` lies in."""
    return Path(str(getattr(metric_cache, "file_path", ""))).parent.name


def is_synthetic(metric_cache: Any) -> bool:
    """A stage-two (synthetic) frame: `scene_type` SYNTHETIC, or no human trajectory."""
    kind = getattr(getattr(metric_cache, "scene_type", None), "name", "")
    return kind == "SYNTHETIC" or getattr(metric_cache, "human_trajectory", None) is None


def cache_from_metric_cache(
    metric_cache: Any, config: EpdmsConfig | None = None, token: str | None = None
) -> SceneCache:
    """The scorer's `SceneCache` of one NAVSIM metric cache (see the module docstring); no scene is involved.

    token: default the cache's folder name. Score it with `navsim_eval.api.score_cache` (log-replay traffic only).
    """
    config = config or EpdmsConfig()
    if config.reactive:
        raise ValueError("a metric cache holds no map for reactive (IDM) traffic; score it with log replay")
    sim_cfg = config.simulation
    num_states = sim_cfg.num_poses + 1
    init = ego_state_row(metric_cache.ego_state)
    params = ego_params_of(metric_cache.ego_state)
    obs = log_replay(observation_of(metric_cache.observation, num_states), init, params)
    human = getattr(metric_cache, "human_trajectory", None)
    human_plan = None if human is None else np.asarray(human.poses, dtype=np.float64)[:, :3]
    synthetic = is_synthetic(metric_cache)
    time_point = getattr(metric_cache, "timepoint", None) or metric_cache.ego_state.time_point
    return SceneCache(
        scene=None,
        config=config,
        map_queries=map_queries_of(metric_cache),
        init=init,
        observation=obs,
        history=history_of(getattr(metric_cache, "past_human_trajectory", None), sim_cfg.interval),
        reference_plan=given_reference(reference_poses(metric_cache), init, num_states),
        reference_source="given",
        token=token if token is not None else token_of(metric_cache),
        ego_params=params,
        human_plan=human_plan,
        synthetic=synthetic,
        timestamp=float(time_point.time_us) * 1e-6,
    )


__all__ = [
    "MetricCacheIndex",
    "cache_from_metric_cache",
    "load_metric_cache",
    "metric_cache_inputs",
    "observation_of",
    "require_devkit",
]
