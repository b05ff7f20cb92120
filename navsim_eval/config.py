"""Every number of NAVSIM v2.2's EPDMS pipeline, one validated dataclass per component.

Defaults are the official values (navsim `main`, `pdm_scorer.yaml`, `batch_lqr.py`, `batch_kinematic_bicycle.py`,
`navsim_IDM_traffic_agents.yaml`, `metric_cache_processor.py`); options that deliberately differ are named and off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from agent.epdms_metrics import EPDMS_COLUMNS, EPDMS_WEIGHTS
from agent.validation import require_positive

#: The scorer's K x 9 table columns: NAVSIM's CSV names in the one EPDMS order of `agent.epdms_metrics` (whose
#: NC ... EC are the column indices), the order the reward world model's outputs share.
METRIC_NAMES: tuple[str, ...] = EPDMS_COLUMNS


def _positive(obj: object, *names: str) -> None:
    require_positive(type(obj).__name__, **{n: getattr(obj, n) for n in names})


@dataclass(frozen=True)
class LQRConfig:
    """nuPlan/PDM batch LQR tracker (decoupled longitudinal and lateral one-step LQR)."""

    q_longitudinal: float = 10.0
    r_longitudinal: float = 1.0
    q_lateral: tuple[float, float, float] = (1.0, 10.0, 0.0)
    r_lateral: float = 1.0
    tracking_horizon: int = 10
    jerk_penalty: float = 1e-4
    curvature_rate_penalty: float = 1e-2
    initial_curvature_penalty: float = 1e-10
    stopping_proportional_gain: float = 0.5
    stopping_velocity: float = 0.2

    def __post_init__(self) -> None:
        _positive(self, "q_longitudinal", "r_longitudinal", "r_lateral", "jerk_penalty", "curvature_rate_penalty")
        _positive(self, "initial_curvature_penalty", "stopping_proportional_gain", "stopping_velocity")
        if len(self.q_lateral) != 3 or any(q < 0 for q in self.q_lateral):
            raise ValueError(f"LQRConfig.q_lateral must be three non-negative weights, got {self.q_lateral}")
        if not (isinstance(self.tracking_horizon, int) and self.tracking_horizon > 1):
            raise ValueError(f"LQRConfig.tracking_horizon must be an int > 1, got {self.tracking_horizon}")


@dataclass(frozen=True)
class BicycleConfig:
    """Kinematic bicycle with first-order lags on acceleration and steering (rear-axle reference)."""

    max_steering_angle: float = math.pi / 3
    accel_time_constant: float = 0.2
    steering_angle_time_constant: float = 0.05

    def __post_init__(self) -> None:
        _positive(self, "max_steering_angle", "accel_time_constant", "steering_angle_time_constant")


@dataclass(frozen=True)
class SimulationConfig:
    """Proposal sampling: 8 poses at 0.5 s become 41 states at 0.1 s (0 .. 4 s)."""

    num_poses: int = 40
    interval: float = 0.1
    plan_interval: float = 0.5
    lqr: LQRConfig = field(default_factory=LQRConfig)
    bicycle: BicycleConfig = field(default_factory=BicycleConfig)

    def __post_init__(self) -> None:
        _positive(self, "interval", "plan_interval")
        if not (isinstance(self.num_poses, int) and self.num_poses > 1):
            raise ValueError(f"SimulationConfig.num_poses must be an int > 1, got {self.num_poses}")


@dataclass(frozen=True)
class IDMTrafficConfig:
    """Reactive background traffic (`navsim_IDM_traffic_agents.yaml`)."""

    target_velocity: float = 10.0
    min_gap_to_lead_agent: float = 1.0
    headway_time: float = 1.5
    accel_max: float = 1.0
    decel_max: float = 2.0
    radius: float = 100.0
    idm_snap_threshold: float = 3.0
    parked_speed_threshold: float = 0.5  # below this a vehicle is replayed open-loop (parked)
    lead_lateral_margin: float = 0.5  # extra half-width of a follower's corridor when looking for its leader
    # "navsim" (default): the official `NavsimIDMTrafficAgents` algorithm (lane-segment rails, occupancy leaders,
    # parked vehicles, no traffic lights), cross-checked against the official code; "logged_path": our own faster
    # variant where vehicles follow their logged path, obey lane speed limits and red stop lines (see docs/epdms.md)
    model: str = "navsim"

    def __post_init__(self) -> None:
        _positive(self, "target_velocity", "min_gap_to_lead_agent", "headway_time", "accel_max", "decel_max", "radius")
        _positive(self, "idm_snap_threshold", "parked_speed_threshold", "lead_lateral_margin")
        if self.model not in ("logged_path", "navsim"):
            raise ValueError(f"IDMTrafficConfig.model must be 'logged_path' or 'navsim', got {self.model!r}")


@dataclass(frozen=True)
class PDMClosedConfig:
    """The metric cache's PDM-Closed reference planner (`metric_cache_processor.py`)."""

    speed_limit_fractions: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    fallback_target_velocity: float = 15.0
    min_gap_to_lead_agent: float = 1.0
    headway_time: float = 1.5
    accel_max: float = 1.5
    decel_max: float = 3.0
    lateral_offsets: tuple[float, ...] = (-1.0, 1.0)
    horizon_s: float = 5.0
    idm_exponent: float = 10.0  # `BatchIDMPolicy.propagate` hard-codes 10 (nuPlan's agent IDM uses 4)
    leading_agent_update_rate: int = 2  # `PDMGenerator`: leaders re-queried at every 2nd step only
    observation_sample_res: int = 2  # `PDMObservation`: the forecast moves every 2nd step, held in between
    map_radius: float = 100.0  # `PDMObservation`: objects whose centre is farther from the ego centre are ignored

    def __post_init__(self) -> None:
        _positive(self, "fallback_target_velocity", "min_gap_to_lead_agent", "headway_time", "accel_max", "decel_max")
        _positive(self, "horizon_s", "idm_exponent", "leading_agent_update_rate", "map_radius")
        for name in ("leading_agent_update_rate", "observation_sample_res"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) > 0):
                raise ValueError(f"PDMClosedConfig.{name} must be a positive int, got {getattr(self, name)!r}")
        if not self.speed_limit_fractions or any(not (0 < f <= 1.0) for f in self.speed_limit_fractions):
            raise ValueError(
                f"PDMClosedConfig.speed_limit_fractions must lie in (0, 1], got {self.speed_limit_fractions}"
            )


@dataclass(frozen=True)
class ScorerConfig:
    """PDMScorerConfig plus the comfort bounds of `pdm_comfort_metrics.py` and the harness options.

    Deliberate differences from the official scorer are opt-in and named:
    - `navsim_2hz_agents=False` uses our native 10 Hz agents and ego history instead of NAVSIM's 2 Hz samples.
    - `ep_normalisation="batch"` normalises EP by the best of all K proposals and the reference together (the
      PDM-Closed/Hydra style) instead of the official per-proposal pair [reference, proposal].
    """

    progress_weight: float = EPDMS_WEIGHTS["ep"]
    ttc_weight: float = EPDMS_WEIGHTS["ttc"]
    lane_keeping_weight: float = EPDMS_WEIGHTS["lk"]
    history_comfort_weight: float = EPDMS_WEIGHTS["hc"]
    two_frame_extended_comfort_weight: float = EPDMS_WEIGHTS["ec"]
    driving_direction_horizon: float = 1.0
    driving_direction_compliance_threshold: float = 2.0
    driving_direction_violation_threshold: float = 6.0
    stopped_speed_threshold: float = 5e-3  # ttc
    collision_stopped_speed_threshold: float = 5e-2  # get_collision_type / is_track_stopped
    future_collision_horizon_window: float = 1.0
    ttc_projection_stride: int = 3
    progress_distance_threshold: float = 5.0
    lane_keeping_deviation_limit: float = 0.5
    lane_keeping_horizon_window: float = 2.0
    ahead_angle_deg: float = 30.0
    behind_angle_deg: float = 150.0
    human_penalty_filter: bool = True
    navsim_2hz_agents: bool = True
    ep_normalisation: str = "pair"
    # history comfort bounds
    max_abs_mag_jerk: float = 8.37
    max_abs_lat_accel: float = 4.89
    max_lon_accel: float = 2.40
    min_lon_accel: float = -4.05
    max_abs_yaw_accel: float = 1.93
    max_abs_lon_jerk: float = 4.13
    max_abs_yaw_rate: float = 0.95
    # two-frame extended comfort RMS thresholds
    ec_acceleration_threshold: float = 0.7
    ec_jerk_threshold: float = 0.5
    ec_yaw_rate_threshold: float = 0.1
    ec_yaw_accel_threshold: float = 0.1
    ec_frame_offset_s: float = 0.5
    history_s: float = 1.5
    # the metric cache's drivable map: map objects meeting the square of this half-side around the ego centre at t = 0
    # (PDMDrivableMap.from_simulation with map_radius 100); None uses the whole map
    drivable_map_radius: float | None = 100.0

    def __post_init__(self) -> None:
        if self.drivable_map_radius is not None:
            _positive(self, "drivable_map_radius")
        _positive(self, "progress_weight", "ttc_weight", "lane_keeping_weight", "history_comfort_weight")
        _positive(self, "two_frame_extended_comfort_weight", "driving_direction_horizon", "stopped_speed_threshold")
        _positive(self, "driving_direction_compliance_threshold", "driving_direction_violation_threshold")
        _positive(self, "future_collision_horizon_window", "progress_distance_threshold", "history_s")
        _positive(self, "lane_keeping_deviation_limit", "lane_keeping_horizon_window", "ec_frame_offset_s")
        _positive(self, "max_abs_mag_jerk", "max_abs_lat_accel", "max_lon_accel", "max_abs_yaw_accel")
        _positive(self, "max_abs_lon_jerk", "max_abs_yaw_rate", "collision_stopped_speed_threshold")
        if self.min_lon_accel >= 0:
            raise ValueError(f"ScorerConfig.min_lon_accel must be negative, got {self.min_lon_accel}")
        if self.driving_direction_violation_threshold < self.driving_direction_compliance_threshold:
            raise ValueError("ScorerConfig: driving_direction_violation_threshold < compliance threshold")
        if self.ep_normalisation not in ("pair", "batch"):
            raise ValueError(f"ScorerConfig.ep_normalisation must be 'pair' or 'batch', got {self.ep_normalisation!r}")
        if not (isinstance(self.ttc_projection_stride, int) and self.ttc_projection_stride > 0):
            raise ValueError(
                f"ScorerConfig.ttc_projection_stride must be a positive int, got {self.ttc_projection_stride}"
            )

    @property
    def weights(self) -> tuple[float, float, float, float, float]:
        """Weights of EP, TTC, LK, HC, EC (sum 16)."""
        return (
            self.progress_weight,
            self.ttc_weight,
            self.lane_keeping_weight,
            self.history_comfort_weight,
            self.two_frame_extended_comfort_weight,
        )


@dataclass(frozen=True)
class EpdmsConfig:
    """Everything `score_proposals` needs: scorer, simulation, traffic and reference planner."""

    scorer: ScorerConfig = field(default_factory=ScorerConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    traffic: IDMTrafficConfig = field(default_factory=IDMTrafficConfig)
    pdm_closed: PDMClosedConfig = field(default_factory=PDMClosedConfig)
    reactive: bool = False

    def __post_init__(self) -> None:
        for name, typ in (
            ("scorer", ScorerConfig),
            ("simulation", SimulationConfig),
            ("traffic", IDMTrafficConfig),
            ("pdm_closed", PDMClosedConfig),
        ):
            if not isinstance(getattr(self, name), typ):
                raise TypeError(f"EpdmsConfig.{name} must be a {typ.__name__}")
