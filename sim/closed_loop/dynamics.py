"""Ego vehicle dynamics: `carla.VehicleControl` (throttle, steer, brake, hand brake, reverse) to motion.

A kinematic bicycle about the rear axle with a first-order steering lag and a longitudinal force balance, calibrated to
the response of CARLA 0.9.15's default hero, the Lincoln MKZ 2020 (`vehicle.lincoln.mkz_2020`, Bench2Drive's ego).
The numbers and where they come from are in `MKZ2020` and `docs/closed_loop.md`:

- geometry: wheelbase 2.87 m, box 4.89 x 1.84 m centred 1.39 m ahead of the rear axle (`agent.vehicles`, the one
  place the project writes the MKZ's numbers);
- steering: road-wheel angle = steer x 70 deg (CARLA's front-wheel `max_steer_angle` for its cars) x the speed
  factor of CARLA's default `steering_curve` (1.0 at rest, 0.9 at 20 km/h, 0.8 at 60 km/h, 0.7 at 120 km/h, linear
  in between), with the lateral acceleration capped at 8 m/s^2 (tyre grip; beyond it the car understeers). The
  wheels follow the command with a 0.1 s first-order lag (PhysX turns them over a few ticks, not instantly).
  World on Rails (Chen et al., ICCV 2021) fitted a kinematic bicycle to CARLA's MKZ with a single gain of 0.368 rad
  per unit steer; that fit is dominated by large random steering, where PhysX's tyres saturate, and it makes the
  Bench2Drive Zoo PID (tuned on CARLA) miss a 30 m curve by 1.5 m, so it is not the default; set
  `steer_gain_rad=0.36848336, steering_curve=((0.0, 1.0),)` to use it;
- braking: a full brake decelerates at 4.95 m/s^2, the same fit's brake acceleration; the hand brake adds a locked
  rear axle (6.0 m/s^2 total);
- throttle: full throttle gives 3.2 m/s^2 (about 0-100 km/h in 9 s, as CARLA's MKZ does on flat ground), capped
  above about 30 m/s by engine power (181 kW, the MKZ 2.0 L turbo, over CARLA's 1845 kg mass); coasting loses
  0.35 m/s^2 to engine braking and rolling resistance; aerodynamic drag 0.5 rho Cd A v^2 / m with Cd 0.3 (CARLA's
  default `drag_coefficient`) and A 2.3 m^2.

Reverse drives backwards at a third of the forward throttle response. The model never turns a brake into backwards
motion: speed is clamped at zero when braking through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from agent.validation import require_non_negative, require_positive
from agent.vehicles import MKZ_LENGTH, MKZ_REAR_AXLE_TO_CENTER, MKZ_WHEELBASE, MKZ_WIDTH

G = 9.81


@dataclass(frozen=True)
class DynamicsConfig:
    """Vehicle response parameters (defaults: CARLA 0.9.15's Lincoln MKZ 2020, see the module docstring)."""

    wheelbase: float = MKZ_WHEELBASE
    centre_ahead_of_rear_axle: float = MKZ_REAR_AXLE_TO_CENTER
    half_length: float = MKZ_LENGTH / 2
    half_width: float = MKZ_WIDTH / 2
    height: float = 1.52
    steer_gain_rad: float = 1.2217304763960306  # 70 deg
    steering_curve: tuple[tuple[float, float], ...] = ((0.0, 1.0), (20.0, 0.9), (60.0, 0.8), (120.0, 0.7))  # km/h
    max_lateral_accel: float = 8.0
    steer_time_constant_s: float = 0.1
    brake_decel: float = 4.952399
    hand_brake_decel: float = 6.0
    throttle_accel_max: float = 3.2
    engine_power_w: float = 181_000.0
    mass_kg: float = 1845.0
    coast_decel: float = 0.35
    drag_coefficient: float = 0.3
    frontal_area_m2: float = 2.3
    air_density: float = 1.2
    reverse_factor: float = 1.0 / 3.0

    def __post_init__(self) -> None:
        require_positive(
            "DynamicsConfig",
            **{
                k: getattr(self, k)
                for k in (
                    "wheelbase", "half_length", "half_width", "height", "steer_gain_rad", "steer_time_constant_s",
                    "max_lateral_accel", "brake_decel", "hand_brake_decel", "throttle_accel_max", "engine_power_w",
                    "mass_kg", "frontal_area_m2", "air_density", "reverse_factor",
                )
            },
        )  # fmt: skip
        require_non_negative("DynamicsConfig", coast_decel=self.coast_decel, drag_coefficient=self.drag_coefficient)
        speeds = [p[0] for p in self.steering_curve]
        if not self.steering_curve or speeds != sorted(speeds) or any(not (0 < p[1] <= 1) for p in self.steering_curve):
            raise ValueError("DynamicsConfig.steering_curve: (km/h, factor in (0, 1]) pairs sorted by speed")

    def steer_gain(self, speed: float) -> float:
        """Road-wheel radians per unit of CARLA steer at `speed` (m/s): max angle x steering-curve factor."""
        kmh = [p[0] for p in self.steering_curve]
        factor = float(np.interp(abs(speed) * 3.6, kmh, [p[1] for p in self.steering_curve]))
        return self.steer_gain_rad * factor

    @property
    def front_length(self) -> float:
        """Rear axle to front bumper."""
        return self.centre_ahead_of_rear_axle + self.half_length

    @property
    def rear_length(self) -> float:
        """Rear axle to rear bumper."""
        return self.half_length - self.centre_ahead_of_rear_axle

    def max_throttle_accel(self, speed: float) -> float:
        """Full-throttle acceleration at `speed` before drag: traction-limited at low speed, power-limited above."""
        return min(self.throttle_accel_max, self.engine_power_w / (self.mass_kg * max(abs(speed), 1e-3)))

    def drag(self, speed: float) -> float:
        return 0.5 * self.air_density * self.drag_coefficient * self.frontal_area_m2 * speed * speed / self.mass_kg


MKZ2020 = DynamicsConfig()


@dataclass
class VehicleState:
    """The ego's state: rear-axle pose in our world frame (x, y, heading CCW), signed speed along the heading,
    road-wheel angle (left positive), and the last step's longitudinal acceleration and yaw rate."""

    x: float
    y: float
    heading: float
    speed: float = 0.0
    wheel_angle: float = 0.0
    accel: float = 0.0
    yaw_rate: float = 0.0

    @property
    def pose(self) -> np.ndarray:
        return np.array([self.x, self.y, self.heading])

    def centre(self, cfg: DynamicsConfig = MKZ2020) -> np.ndarray:
        c = cfg.centre_ahead_of_rear_axle
        return np.array([self.x + c * math.cos(self.heading), self.y + c * math.sin(self.heading)])

    @property
    def lateral_accel(self) -> float:
        return self.speed * self.yaw_rate


def _finite(value, name: str) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"VehicleControl.{name} is not finite ({value!r})")
    return v


def step_vehicle(state: VehicleState, control, dt: float, cfg: DynamicsConfig = MKZ2020) -> VehicleState:
    """Advance `state` by `dt` under `control` (anything with CARLA's VehicleControl fields); returns a new state.

    Inputs are clipped to CARLA's ranges (throttle, brake in [0, 1], steer in [-1, 1]); CARLA's steer > 0 turns
    right, which is a negative road-wheel angle in our frame. A non-finite input raises `ValueError` (the runner
    records it as the agent's failure).
    """
    throttle = min(max(_finite(control.throttle, "throttle"), 0.0), 1.0)
    brake = min(max(_finite(control.brake, "brake"), 0.0), 1.0)
    steer = min(max(_finite(control.steer, "steer"), -1.0), 1.0)
    hand_brake = bool(getattr(control, "hand_brake", False))
    reverse = bool(getattr(control, "reverse", False))

    target_wheel = -steer * cfg.steer_gain(state.speed)
    alpha = 1.0 - math.exp(-dt / cfg.steer_time_constant_s)
    wheel = state.wheel_angle + alpha * (target_wheel - state.wheel_angle)

    v = state.speed
    direction = -1.0 if reverse else 1.0
    drive = throttle * max(cfg.max_throttle_accel(v), 0.0) * (cfg.reverse_factor if reverse else 1.0) * direction
    resist = cfg.coast_decel * (1.0 - throttle) + cfg.drag(v)
    stopping = brake * cfg.brake_decel + (cfg.hand_brake_decel if hand_brake else 0.0)
    if abs(v) < 1e-6:
        # at rest: brakes and resistance only hold the car; it moves if the drive overcomes them
        net = drive - math.copysign(min(abs(drive), stopping + resist), drive) if drive else 0.0
        v_new = net * dt
    else:
        sign = math.copysign(1.0, v)
        v_new = v + (drive - sign * (resist + stopping)) * dt
        if (v_new > 0) != (v > 0) and (stopping + resist) * dt >= abs(v) and abs(drive) < stopping + resist:
            v_new = 0.0  # braking or coasting through zero stops the car, never reverses it
    yaw_rate = v_new * math.tan(wheel) / cfg.wheelbase
    if abs(v_new) > 1e-3 and abs(yaw_rate * v_new) > cfg.max_lateral_accel:  # grip limit: the car understeers
        yaw_rate = math.copysign(cfg.max_lateral_accel / abs(v_new), yaw_rate)
    v_mid = 0.5 * (v + v_new)
    h_mid = state.heading + 0.5 * yaw_rate * dt
    heading = state.heading + yaw_rate * dt
    return VehicleState(
        x=state.x + v_mid * math.cos(h_mid) * dt,
        y=state.y + v_mid * math.sin(h_mid) * dt,
        heading=math.atan2(math.sin(heading), math.cos(heading)),
        speed=v_new,
        wheel_angle=wheel,
        accel=(v_new - v) / dt,
        yaw_rate=yaw_rate,
    )
