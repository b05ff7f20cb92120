"""`SceneCache`: everything `score_proposals` needs from one scene that does not depend on the proposals.

Built once per scene by the caller, passed to every `score_proposals` call on that scene (many proposal batches, RL,
two frames for EC) and dropped with it; nothing is stored on the scene. It holds the map queries, the ego's initial
state, the log-replay observation, the ego history for HC, the PDM-Closed reference (planned by
`navsim_eval.pdm_closed`, or GIVEN, as a NAVSIM metric cache carries it: `trajectory` and `centerline`), and lazily the
human filter's row, the reference's progress against log replay and the reactive traffic's per-scene set-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from navsim_eval.comfort import history_states
from navsim_eval.config import EpdmsConfig
from navsim_eval.mapquery import MapQueries
from navsim_eval.observation import Observation, build_observation
from navsim_eval.pdm_closed import pdm_closed_reference
from navsim_eval.scorer import normalise_progress, pdm_score, score_states
from navsim_eval.simulation import STATE_DIM, initial_state_from_scene
from navsim_eval.traffic import log_replay
from sim.scene import EgoParams, Scene


def check_scene(scene: Scene) -> None:
    """Refuse what cannot be scored: not a scene, no map, no route (bad input, not a scorer error)."""
    if not isinstance(scene, Scene):
        raise TypeError(f"scene must be a sim.scene.Scene, got {type(scene).__name__}")
    if not scene.map.lanes or not scene.map.roadblocks:
        raise ValueError(f"scene {scene.token}: has no map (no lanes or roadblocks)")
    if scene.route is None or not scene.route.lane_ids:
        raise ValueError(f"scene {scene.token}: has no route")


MAX_REFERENCE_START_OFFSET = 20.0  # m: a reference starting farther from the ego is in another frame or token


def given_reference(reference, init: np.ndarray, num_states: int) -> np.ndarray:
    """A given PDM-Closed trajectory as (num_states, 11) states: (T >= num_states, 3 or 11) x, y, heading (world, rear
    axle, 0.1 s from t = 0). Only the poses matter: the scorer re-simulates them from the ego's state, as `pdm_score`
    does with the metric cache's `trajectory`.

    The first pose need not be the ego's: PDM-Closed's proposals start at the point of their (laterally offset)
    centreline at the ego's progress, so a chosen +-1 m offset starts 1 m beside the ego, and the tracker starts from
    the ego state all the same. A first pose more than `MAX_REFERENCE_START_OFFSET` m away is refused: that reference
    is in another frame (e.g. local coordinates) or belongs to another token.
    """
    arr = np.asarray(reference, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] not in (3, STATE_DIM) or arr.shape[0] < num_states:
        raise ValueError(
            f"a given reference must have shape (T >= {num_states}, 3) or (T, {STATE_DIM}) at 0.1 s, got {arr.shape}"
        )
    if not np.isfinite(arr[:num_states, :3]).all():
        raise ValueError("a given reference contains NaN or infinite poses")
    d = float(np.hypot(*(arr[0, :2] - init[:2])))
    if d > MAX_REFERENCE_START_OFFSET:
        raise ValueError(
            f"a given reference must start near the ego (world frame); it starts {d:.1f} m away "
            f"(more than {MAX_REFERENCE_START_OFFSET:g} m: another frame or another token?)"
        )
    out = np.zeros((num_states, STATE_DIM))
    out[:, : arr.shape[1]] = arr[:num_states]
    return out


@dataclass
class SceneCache:
    """Per-scene, proposal-independent inputs of the scorer (see the module docstring).

    `reference_plan` (41, 11) is PDM-Closed's trajectory before simulation (what a metric cache stores) and
    `reference_states` its simulation, which is what the proposals' progress is normalised against; it is filled by
    the first `score_proposals` call, which simulates it in one batch with the proposals and the human (a cold
    single-proposal token then pays for one simulation, not three). `reference_source` is "planned" or "given".
    `memo` holds lazily computed rows and the reactive traffic's set-up.
    """

    scene: Scene | None  # None for a cache converted from a NAVSIM metric cache (`navsim_eval.metric_cache`)
    config: EpdmsConfig
    map_queries: MapQueries
    init: np.ndarray
    observation: Observation
    history: np.ndarray | None
    reference_plan: np.ndarray
    reference_states: np.ndarray | None = None
    reference_source: str = "planned"
    memo: dict = field(default_factory=dict)
    token: str = ""
    ego_params: EgoParams = field(default_factory=EgoParams)
    human_plan: np.ndarray | None = None  # (8, 3) logged future at 0.5 s in the current rear-axle frame
    synthetic: bool = False  # a stage-two (synthetic) frame: no human filter by default
    timestamp: float = 0.0

    @classmethod
    def build(
        cls,
        scene: Scene,
        config: EpdmsConfig | None = None,
        reference=None,
        centerline=None,
    ) -> SceneCache:
        """Prepare `scene` for scoring. reference: a given PDM-Closed trajectory (see `given_reference`); centerline:
        a given route centreline (N, 3) in world coordinates. Give both to score a NAVSIM metric cache as the official
        scorer does (its reference was planned along its own centreline); None plans them here."""
        config = config or EpdmsConfig()
        check_scene(scene)
        sc, sim_cfg = config.scorer, config.simulation
        dt = sim_cfg.interval
        mq = MapQueries(scene, sc.drivable_map_radius, centerline=centerline)
        init = initial_state_from_scene(scene)
        obs = log_replay(
            build_observation(scene, sim_cfg.num_poses + 1, dt, sc.navsim_2hz_agents), init, scene.ego_params
        )
        history = history_states(scene, sc, dt)
        if reference is None:

            def rank(states: np.ndarray, forecast: Observation) -> np.ndarray:
                fs = score_states(states, forecast, mq, sc, scene.ego_params, dt)
                ep = normalise_progress(fs.progress, fs.multiplicative, 0.0, sc.progress_distance_threshold, "batch")
                return pdm_score(fs, sc, ep)

            plan = pdm_closed_reference(scene, obs, init, config, rank, mq)
            source = "planned"
        else:
            plan = given_reference(reference, init, sim_cfg.num_poses + 1)
            source = "given"
        synthetic = bool(scene.metadata.get("synthetic", False)) if isinstance(scene.metadata, dict) else False
        return cls(
            scene,
            config,
            mq,
            init,
            obs,
            history,
            plan,
            None,
            source,
            token=scene.token,
            ego_params=scene.ego_params,
            human_plan=scene.human_trajectory(8, sim_cfg.plan_interval),
            synthetic=synthetic,
            timestamp=float(scene.timestamps[scene.current_index]),
        )

    def get(self, key, compute):
        """The memoised value of `key`, computed once by `compute()`."""
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]

    def check(self, scene: Scene | None, config: EpdmsConfig) -> None:
        """Refuse a cache built for another scene or another configuration (its reference would be wrong).
        scene None: whatever the cache was built from (a scene or a metric cache)."""
        if scene is not None and scene is not self.scene:
            raise ValueError(f"SceneCache was built for scene {self.scene.token!r}, not this {scene.token!r} object")
        if config != self.config:
            raise ValueError("SceneCache was built with another EpdmsConfig; build one per configuration")
