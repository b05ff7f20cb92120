"""Ego pose from the leaderboard's GNSS and IMU compass, in our right-handed world frame (rear-axle origin).

GNSS -> metres uses the closed-form inverse of CARLA's projection (`agent.geometry.gnss_to_world`) about the map's
(lat_ref, lon_ref). The SENSORS track gives no map, so the reference is solved exactly from one global-plan point whose
GNSS and world coordinates are both known (`solve_georeference`): a 1-D root in lat_ref, then lon_ref in closed form.
This avoids the Zoo agents' `fsolve` with its extra x term that misplaces Town12 (Bench2Drive issue #62).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agent import geometry
from agent.types import B2D_REAR_AXLE_OFFSET
from team_code.config import LocalizationConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImuReading:
    """The leaderboard IMU vector in our frame: ego-frame (ax, ay) m/s^2 and yaw rate rad/s (CCW positive)."""

    accel: np.ndarray
    yaw_rate: float
    compass: float  # radians, may be NaN

    @classmethod
    def from_leaderboard(cls, data) -> ImuReading:
        """`[ax, ay, az, gx, gy, gz, compass]` in CARLA's left-handed sensor frame -> ours (y and yaw negated)."""
        v = np.asarray(data, dtype=np.float64).reshape(-1)
        if v.shape != (7,):
            raise ValueError(f"IMU data must have 7 values [ax, ay, az, gx, gy, gz, compass], got shape {v.shape}")
        accel = np.array([v[0], -v[1]])
        yaw_rate = -float(v[5])
        if not np.all(np.isfinite(accel)):
            accel = np.zeros(2)
        if not math.isfinite(yaw_rate):
            yaw_rate = 0.0
        return cls(accel, yaw_rate, float(v[6]))


@dataclass(frozen=True)
class LocalizedPose:
    """Rear-axle pose (x, y, heading) in our world frame; `heading_valid` is False until a compass reading arrived."""

    x: float
    y: float
    heading: float
    heading_valid: bool

    @property
    def array(self) -> np.ndarray:
        return np.array([self.x, self.y, self.heading])


def solve_georeference(lat: float, lon: float, x: float, y: float) -> tuple[float, float]:
    """(lat_ref, lon_ref) such that `geometry.gnss_to_world(lat, lon, lat_ref, lon_ref) == (x, y)` (our frame)."""
    from scipy.optimize import brentq

    for name, v in (("lat", lat), ("lon", lon), ("x", x), ("y", y)):
        if not math.isfinite(v):
            raise ValueError(f"solve_georeference: {name} must be finite, got {v}")
    if not -85.0 < lat < 85.0:
        raise ValueError(f"solve_georeference: latitude {lat} is outside the projection's usable range")

    def residual(lat_ref: float) -> float:
        return float(geometry.gnss_to_world(lat, 0.0, lat_ref, 0.0)[1]) - y

    if abs(y) < 1e-9:
        lat_ref = lat
    else:
        lo, hi = max(lat - 5.0, -89.0), min(lat + 5.0, 89.0)
        if residual(lo) * residual(hi) > 0:
            raise ValueError(f"solve_georeference: no reference latitude within 5 deg of {lat} explains y = {y} m")
        lat_ref = float(brentq(residual, lo, hi, xtol=1e-13, rtol=1e-15, maxiter=200))
    scale = math.cos(math.radians(lat_ref))
    lon_ref = lon - x * 180.0 / (math.pi * geometry.EARTH_RADIUS_EQUA * scale)
    return lat_ref, lon_ref


def georeference_from_plan(gps_points: Sequence[dict], world_xy: np.ndarray) -> tuple[float, float]:
    """(lat_ref, lon_ref) solved on the plan point with the largest |y|, checked on every point (warns on misfit)."""
    world_xy = np.asarray(world_xy, dtype=np.float64).reshape(-1, 2)
    if len(gps_points) != len(world_xy) or not len(world_xy):
        raise ValueError(f"need matching non-empty GNSS and world plans, got {len(gps_points)} and {len(world_xy)}")
    lat = np.array([float(p["lat"]) for p in gps_points])
    lon = np.array([float(p["lon"]) for p in gps_points])
    k = int(np.argmax(np.abs(world_xy[:, 1])))
    lat_ref, lon_ref = solve_georeference(lat[k], lon[k], world_xy[k, 0], world_xy[k, 1])
    fx, fy = geometry.gnss_to_world(lat, lon, lat_ref, lon_ref)
    err = float(np.max(np.hypot(fx - world_xy[:, 0], fy - world_xy[:, 1])))
    if err > 0.1:
        logger.warning("georeference (%.8f, %.8f) misfits the plan by up to %.2f m", lat_ref, lon_ref, err)
    return lat_ref, lon_ref


class Localizer:
    """GNSS + compass -> rear-axle pose; optionally a complementary filter with speed-driven dead reckoning.

    Compass NaN (CARLA reports it for the first frames) keeps the last valid heading, or `initial_heading` (the agent
    passes the route's first direction) before any valid reading.
    """

    def __init__(
        self,
        cfg: LocalizationConfig,
        lat_ref: float,
        lon_ref: float,
        rear_axle_offset: float = B2D_REAR_AXLE_OFFSET,
        initial_heading: float | None = None,
    ) -> None:
        self.cfg = cfg
        self.lat_ref = float(lat_ref)
        self.lon_ref = float(lon_ref)
        #: antenna position in the ego (rear-axle) frame: CARLA x from the box centre + the centre's offset.
        self._antenna_x = cfg.gnss_mount_x + rear_axle_offset
        self._heading: float | None = None if initial_heading is None else float(initial_heading)
        self._heading_valid = False
        self._xy: np.ndarray | None = None

    def gnss_to_xy(self, lat: float, lon: float) -> np.ndarray:
        x, y = geometry.gnss_to_world(lat, lon, self.lat_ref, self.lon_ref)
        return np.array([float(x), float(y)])

    def update(self, gnss, compass: float, speed: float = 0.0, dt: float = 0.05) -> LocalizedPose:
        """One tick: `gnss` = [lat, lon, alt] degrees, `compass` radians (NaN allowed), `speed` m/s, `dt` seconds."""
        g = np.asarray(gnss, dtype=np.float64).reshape(-1)
        if g.shape[0] < 2 or not np.all(np.isfinite(g[:2])):
            raise ValueError(f"GNSS reading must be finite [lat, lon, ...], got {g.tolist()}")
        previous = self._heading
        if math.isfinite(compass):
            self._heading = float(geometry.compass_to_heading(compass))
            self._heading_valid = True
        heading = 0.0 if self._heading is None else self._heading
        antenna = self.gnss_to_xy(g[0], g[1])
        c, s = math.cos(heading), math.sin(heading)
        fix = antenna - self._antenna_x * np.array([c, s])
        if self.cfg.filter == "none" or self._xy is None:
            xy = fix
        else:
            v = speed if math.isfinite(speed) else 0.0
            # dead reckoning along the mean heading of the interval (midpoint rule: exact on circular arcs)
            mid = heading if previous is None else previous + 0.5 * float(geometry.wrap_angle(heading - previous))
            pred = self._xy + v * dt * np.array([math.cos(mid), math.sin(mid)])
            innovation = fix - pred
            if float(np.hypot(*innovation)) > self.cfg.reset_distance:
                logger.warning(
                    "GNSS fix %.1f m from the prediction; resetting the filter", float(np.hypot(*innovation))
                )
                xy = fix
            else:
                xy = pred + self.cfg.gnss_gain * innovation
        self._xy = xy
        return LocalizedPose(float(xy[0]), float(xy[1]), heading, self._heading_valid)
