"""Every coordinate transform of the project, in one place (conventions: docs/coordinates.md).

Our frames are right-handed: x forward, y left, z up, headings counter-clockwise in radians; the ego origin is the rear
axle (NAVSIM). CARLA's left-handed frame (y right, yaw in degrees turning right) is converted here and nowhere else.
All functions are numpy-only, float64, and batched over leading dimensions.
"""

from __future__ import annotations

import logging
import math
import re

import numpy as np

from agent.vehicles import PACIFICA_REAR_AXLE_TO_CENTER

logger = logging.getLogger(__name__)

__all__ = [
    "CARLA_DEFAULT_LAT_REF",
    "CARLA_DEFAULT_LON_REF",
    "CARLA_TMERC_RADIUS",
    "EARTH_RADIUS_EQUA",
    "PACIFICA_REAR_AXLE_TO_CENTER",
    "absolute_to_relative",
    "bev_grid",
    "bev_pixel_to_ego",
    "camera_intrinsics",
    "camera_to_ego",
    "carla_angular_velocity_to_world",
    "carla_location_to_world",
    "carla_mount_to_ego",
    "carla_vector_to_world",
    "carla_yaw_to_heading",
    "center_to_rear_axle",
    "compass_to_heading",
    "gnss_to_world",
    "gnss_to_world_tmerc",
    "heading_to_carla_yaw",
    "interpolate_poses",
    "parse_opendrive_georeference",
    "points_to_global",
    "points_to_local",
    "project_points",
    "rear_axle_to_center",
    "relative_to_absolute",
    "resample_trajectory",
    "rotation_matrix",
    "se2_compose",
    "se2_inverse",
    "unwrap_headings",
    "world_to_bev_pixel",
    "world_to_carla_location",
    "world_to_gnss",
    "world_to_gnss_tmerc",
    "wrap_angle",
]

TWO_PI = 2.0 * math.pi
_DENSE_INTERP_LIMIT = 4096  # queries x samples below which interpolation uses a dense weight matrix


#: WGS84 equatorial radius used by CARLA's GNSS sensor and the leaderboard's `_location_to_gps`.
EARTH_RADIUS_EQUA = 6378137.0
#: CARLA's reference when an OpenDRIVE map carries no `+lat_0` / `+lon_0`.
CARLA_DEFAULT_LAT_REF = 42.0
CARLA_DEFAULT_LON_REF = 2.0
#: CARLA 0.9.16's transverse Mercator as its client wheel computes it: a sphere of radius EARTH_RADIUS_EQUA scaled by
#: 0.9996 on the central meridian (measured with `carla.Map(name, xodr).transform_to_geolocation`: 1 m north is
#: 1 / (6378137 * 0.9996) rad at every latitude, and the header's `+k`, `+x_0`, `+ellps` do not change it).
CARLA_TMERC_RADIUS = EARTH_RADIUS_EQUA * 0.9996

# Optical frame (z forward, x right, y down) -> camera body frame (x forward, y left, z up).
_OPTICAL_TO_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _check_last(arr: np.ndarray, size: int | tuple[int, ...], name: str) -> None:
    sizes = (size,) if isinstance(size, int) else size
    if arr.ndim == 0 or arr.shape[-1] not in sizes:
        want = " or ".join(str(s) for s in sizes)
        raise ValueError(f"{name} must have shape (..., {want}), got {arr.shape}")


def _scalar_or_array(a: np.ndarray):
    return a[()] if a.ndim == 0 else a


# --------------------------------------------------------------------------------------------------------------------
# Angles and SE(2)
# --------------------------------------------------------------------------------------------------------------------


def wrap_angle(a) -> np.ndarray:
    """Wrap angles (radians) into [-pi, pi)."""
    a = _f64(a)
    # floor-based wrap is ~4x faster than np.mod; rounding can land one ulp outside [-pi, pi), fixed below.
    out = np.asarray(a - TWO_PI * np.floor((a + math.pi) * (1.0 / TWO_PI)))
    out[out >= math.pi] -= TWO_PI
    out[out < -math.pi] += TWO_PI
    return _scalar_or_array(out)


def unwrap_headings(h, axis: int = -1) -> np.ndarray:
    """Remove 2*pi jumps along `axis` so that consecutive headings differ by less than pi (for interpolation)."""
    h = _f64(h)
    if h.ndim == 0:
        return h[()]
    h = np.moveaxis(h, axis, -1)
    if h.shape[-1] < 2:
        return np.moveaxis(h.copy(), -1, axis)
    d = np.diff(h, axis=-1)
    d -= TWO_PI * np.round(d * (1.0 / TWO_PI))
    out = np.empty_like(h)
    out[..., 0] = h[..., 0]
    np.cumsum(d, axis=-1, out=out[..., 1:])
    out[..., 1:] += h[..., :1]
    return np.moveaxis(out, -1, axis)


def rotation_matrix(theta) -> np.ndarray:
    """2-D rotation matrices (..., 2, 2) rotating vectors CCW by `theta`."""
    theta = _f64(theta)
    c, s = np.cos(theta), np.sin(theta)
    return np.stack([np.stack([c, -s], axis=-1), np.stack([s, c], axis=-1)], axis=-2)


def se2_compose(a, b) -> np.ndarray:
    """a ∘ b for poses (..., 3) = [x, y, heading]: `b` is given in `a`'s frame; the result is in `a`'s parent frame."""
    a, b = _f64(a), _f64(b)
    _check_last(a, 3, "a")
    _check_last(b, 3, "b")
    c, s = np.cos(a[..., 2]), np.sin(a[..., 2])
    x = a[..., 0] + c * b[..., 0] - s * b[..., 1]
    y = a[..., 1] + s * b[..., 0] + c * b[..., 1]
    h = wrap_angle(a[..., 2] + b[..., 2])
    return np.stack(np.broadcast_arrays(x, y, h), axis=-1)


def se2_inverse(p) -> np.ndarray:
    """Inverse pose: se2_compose(p, se2_inverse(p)) is the identity."""
    p = _f64(p)
    _check_last(p, 3, "p")
    c, s = np.cos(p[..., 2]), np.sin(p[..., 2])
    x = -(c * p[..., 0] + s * p[..., 1])
    y = -(-s * p[..., 0] + c * p[..., 1])
    return np.stack([x, y, wrap_angle(-p[..., 2])], axis=-1)


def relative_to_absolute(origin, poses) -> np.ndarray:
    """Poses (..., N, 3) expressed in `origin`'s frame (origin (..., 3)) -> the origin's parent (e.g. global) frame."""
    origin, poses = _f64(origin), _f64(poses)
    _check_last(origin, 3, "origin")
    _check_last(poses, 3, "poses")
    return se2_compose(origin[..., None, :], poses)


def absolute_to_relative(origin, poses) -> np.ndarray:
    """Inverse of `relative_to_absolute`: parent-frame poses (..., N, 3) -> poses in `origin`'s frame."""
    origin, poses = _f64(origin), _f64(poses)
    _check_last(origin, 3, "origin")
    _check_last(poses, 3, "poses")
    return se2_compose(se2_inverse(origin)[..., None, :], poses)


def points_to_global(origin, pts) -> np.ndarray:
    """Points (..., N, 2) in `origin`'s frame (origin (..., 3)) -> parent frame."""
    origin, pts = _f64(origin), _f64(pts)
    _check_last(origin, 3, "origin")
    _check_last(pts, 2, "pts")
    c, s = np.cos(origin[..., 2])[..., None], np.sin(origin[..., 2])[..., None]
    x = origin[..., 0, None] + c * pts[..., 0] - s * pts[..., 1]
    y = origin[..., 1, None] + s * pts[..., 0] + c * pts[..., 1]
    return np.stack([x, y], axis=-1)


def points_to_local(origin, pts) -> np.ndarray:
    """Points (..., N, 2) in the parent frame -> `origin`'s frame (origin (..., 3))."""
    origin, pts = _f64(origin), _f64(pts)
    _check_last(origin, 3, "origin")
    _check_last(pts, 2, "pts")
    c, s = np.cos(origin[..., 2])[..., None], np.sin(origin[..., 2])[..., None]
    dx = pts[..., 0] - origin[..., 0, None]
    dy = pts[..., 1] - origin[..., 1, None]
    return np.stack([c * dx + s * dy, -s * dx + c * dy], axis=-1)


def rear_axle_to_center(poses, offset: float = PACIFICA_REAR_AXLE_TO_CENTER) -> np.ndarray:
    """Move poses (..., 3) `offset` metres forward along their heading (rear axle -> box centre)."""
    poses = _f64(poses)
    _check_last(poses, 3, "poses")
    h = poses[..., 2]
    return np.stack([poses[..., 0] + offset * np.cos(h), poses[..., 1] + offset * np.sin(h), h], axis=-1)


def center_to_rear_axle(poses, offset: float = PACIFICA_REAR_AXLE_TO_CENTER) -> np.ndarray:
    """Inverse of `rear_axle_to_center`."""
    return rear_axle_to_center(poses, -offset)


# --------------------------------------------------------------------------------------------------------------------
# Trajectories
# --------------------------------------------------------------------------------------------------------------------


def interpolate_poses(times, poses, query_times, tol: float = 1e-9) -> np.ndarray:
    """Linear interpolation of poses (..., N, 3) sampled at strictly increasing `times` (N,) at `query_times` (M,).

    x, y and the unwrapped heading are interpolated linearly (as NAVSIM's InterpolatedTrajectory does); the returned
    heading is wrapped to [-pi, pi). Queries outside [times[0], times[-1]] by more than `tol` raise ValueError.
    Returns (..., M, 3).
    """
    t = _f64(times)
    q = _f64(query_times)
    poses = _f64(poses)
    if t.ndim != 1 or t.shape[0] < 2:
        raise ValueError(f"times must be 1-D with at least 2 samples, got shape {t.shape}")
    if q.ndim != 1:
        raise ValueError(f"query_times must be 1-D, got shape {q.shape}")
    if poses.ndim < 2 or poses.shape[-1] != 3 or poses.shape[-2] != t.shape[0]:
        raise ValueError(f"poses must have shape (..., {t.shape[0]}, 3) to match times, got {poses.shape}")
    if not np.all(np.isfinite(t)) or not np.all(np.diff(t) > 0):
        raise ValueError("times must be finite and strictly increasing")
    if q.size and (np.any(~np.isfinite(q)) or q.min() < t[0] - tol or q.max() > t[-1] + tol):
        raise ValueError(f"query_times must lie within [{t[0]}, {t[-1]}] (tolerance {tol}); got [{q.min()}, {q.max()}]")
    q = np.clip(q, t[0], t[-1])
    idx = np.clip(np.searchsorted(t, q, side="right") - 1, 0, t.shape[0] - 2)
    w = (q - t[idx]) / (t[idx + 1] - t[idx])
    vals = poses.copy()
    vals[..., 2] = unwrap_headings(vals[..., 2], axis=-1)
    if q.shape[0] * t.shape[0] <= _DENSE_INTERP_LIMIT:
        # Small grids (the 8 -> 41 planner case): one dense weight matrix and a batched matmul.
        weights = np.zeros((q.shape[0], t.shape[0]))
        rows = np.arange(q.shape[0])
        weights[rows, idx] = 1.0 - w
        weights[rows, idx + 1] += w
        out = np.ascontiguousarray(np.swapaxes(np.tensordot(vals, weights, axes=([-2], [1])), -1, -2))
    else:
        lo = vals[..., idx, :]
        out = lo + w[:, None] * (vals[..., idx + 1, :] - lo)
    out[..., 2] = wrap_angle(out[..., 2])
    return out


def resample_trajectory(poses, interval: float = 0.5, new_interval: float = 0.1, origin=None) -> np.ndarray:
    """Resample planned poses (..., N, 3) at `interval` spacing (first pose at t = interval) to `new_interval`.

    The origin pose (default zeros: the current rear-axle pose, for poses in the ego frame; shape (3,) or (..., 3))
    is prepended at t = 0, as NAVSIM does with InterpolatedTrajectory([initial_state] + poses): 8 poses at 0.5 s give
    41 states at 0.1 s over t = 0 ... 4.0 s inclusive. Returns (..., M, 3), M = round(N * interval / new_interval) + 1.
    """
    poses = _f64(poses)
    if poses.ndim < 2 or poses.shape[-1] != 3 or poses.shape[-2] < 1:
        raise ValueError(f"poses must have shape (..., N>=1, 3), got {poses.shape}")
    if not (interval > 0 and new_interval > 0):
        raise ValueError(f"interval and new_interval must be positive, got {interval}, {new_interval}")
    n = poses.shape[-2]
    horizon = n * interval
    steps = horizon / new_interval
    m = int(round(steps))
    if abs(steps - m) > 1e-6:
        raise ValueError(f"horizon {horizon} s is not a whole number of new_interval {new_interval} s steps")
    batch = poses.shape[:-2]
    if origin is None:
        start = np.zeros(batch + (1, 3))
    else:
        o = _f64(origin)
        _check_last(o, 3, "origin")
        start = np.broadcast_to(o, batch + (3,))[..., None, :]
    full = np.concatenate([start, poses], axis=-2)
    times = np.arange(n + 1) * interval
    query = np.arange(m + 1) * new_interval
    return interpolate_poses(times, full, query, tol=1e-6)


# --------------------------------------------------------------------------------------------------------------------
# CARLA (left-handed: x forward, y right, z up; yaw degrees, positive turns right) <-> ours
# --------------------------------------------------------------------------------------------------------------------


def _flip_y(xyz, name: str) -> np.ndarray:
    xyz = _f64(xyz)
    _check_last(xyz, (2, 3), name)
    out = xyz.copy()
    out[..., 1] = -out[..., 1]
    return out


def carla_location_to_world(xyz) -> np.ndarray:
    """CARLA locations (..., 3) or (..., 2) -> our right-handed frame (y negated)."""
    return _flip_y(xyz, "xyz")


def world_to_carla_location(xyz) -> np.ndarray:
    """Our right-handed locations (..., 3) or (..., 2) -> CARLA (y negated)."""
    return _flip_y(xyz, "xyz")


def carla_vector_to_world(v) -> np.ndarray:
    """CARLA velocity / acceleration vectors (..., 3) or (..., 2) -> our frame (y negated, like locations)."""
    return _flip_y(v, "v")


def carla_angular_velocity_to_world(w) -> np.ndarray:
    """CARLA angular velocity (..., 3) -> ours: z negated (CARLA yaw rate turns right, ours turns left).

    Only the yaw rate is used by the project; x and y are passed through unchanged.
    """
    w = _f64(w)
    _check_last(w, 3, "w")
    out = w.copy()
    out[..., 2] = -out[..., 2]
    return out


def carla_yaw_to_heading(yaw_deg) -> np.ndarray:
    """CARLA yaw (degrees, positive turns right) -> our heading (radians CCW, wrapped)."""
    return wrap_angle(-np.deg2rad(_f64(yaw_deg)))


def heading_to_carla_yaw(heading) -> np.ndarray:
    """Our heading (radians CCW) -> CARLA yaw in degrees, in [-180, 180)."""
    return _scalar_or_array(np.rad2deg(wrap_angle(-_f64(heading))))


def compass_to_heading(compass_rad) -> np.ndarray:
    """CARLA IMU compass (radians, 0 = north = CARLA -y = our +y, clockwise) -> our heading = pi/2 - compass.

    NaN (CARLA's compass occasionally reports it) stays NaN; the caller decides what to do with it.
    """
    return wrap_angle(math.pi / 2.0 - _f64(compass_rad))


def carla_mount_to_ego(
    x: float,
    y: float,
    z: float,
    roll_deg: float,
    pitch_deg: float,
    yaw_deg: float,
    rear_axle_offset: float,
) -> tuple[float, float, float, float, float, float]:
    """A CARLA sensor mount (vehicle-origin frame, left-handed, degrees) -> our ego-frame mount (radians).

    Our ego origin is the rear axle, `rear_axle_offset` metres *behind* the CARLA vehicle origin (same height), so
    x_ego = x + offset, y_ego = -y, z_ego = z. CARLA's rotation matrix Rz(yaw) Ry(-pitch) Rx(-roll) mirrors to
    Rz(-yaw) Ry(-pitch) Rx(roll) in our frame, so yaw is negated and roll / pitch keep their values (pitch > 0 = nose
    up in both). Returns (x, y, z, roll, pitch, yaw).
    """
    return (
        float(x) + float(rear_axle_offset),
        0.0 - float(y),  # 0.0 - y avoids a cosmetic -0.0
        float(z),
        math.radians(roll_deg),
        math.radians(pitch_deg),
        float(wrap_angle(0.0 - math.radians(yaw_deg))) + 0.0,
    )


# --------------------------------------------------------------------------------------------------------------------
# GNSS (CARLA's Mercator about the map's reference latitude / longitude, closed form both ways)
# --------------------------------------------------------------------------------------------------------------------


def _mercator_y(lat_deg: np.ndarray) -> np.ndarray:
    return np.log(np.tan((90.0 + lat_deg) * math.pi / 360.0))


def gnss_to_world(lat, lon, lat_ref, lon_ref) -> tuple[np.ndarray, np.ndarray]:
    """GNSS degrees -> (x, y) metres in OUR world frame (x = CARLA x, y = -CARLA y).

    Exact inverse of CARLA's `_location_to_gps` / GeoLocation::Transform:
    x = (lon - lon_ref) * pi * R * s / 180, y = s * R * (merc(lat) - merc(lat_ref)), with s = cos(lat_ref) and
    merc(lat) = ln tan((90 + lat) * pi / 360).
    """
    lat, lon, lat_ref, lon_ref = (_f64(v) for v in (lat, lon, lat_ref, lon_ref))
    scale = np.cos(np.deg2rad(lat_ref))
    x = (lon - lon_ref) * math.pi * EARTH_RADIUS_EQUA * scale / 180.0
    y = scale * EARTH_RADIUS_EQUA * (_mercator_y(lat) - _mercator_y(lat_ref))
    return _scalar_or_array(np.asarray(x)), _scalar_or_array(np.asarray(y))


def world_to_gnss(x, y, lat_ref, lon_ref) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) metres in our world frame -> GNSS (lat, lon) degrees, exactly as CARLA's GNSS sensor reports them."""
    x, y, lat_ref, lon_ref = (_f64(v) for v in (x, y, lat_ref, lon_ref))
    scale = np.cos(np.deg2rad(lat_ref))
    lon = lon_ref + x * 180.0 / (math.pi * EARTH_RADIUS_EQUA * scale)
    my = scale * EARTH_RADIUS_EQUA * _mercator_y(lat_ref) + y
    lat = 360.0 * np.arctan(np.exp(my / (EARTH_RADIUS_EQUA * scale))) / math.pi - 90.0
    return _scalar_or_array(np.asarray(lat)), _scalar_or_array(np.asarray(lon))


def gnss_to_world_tmerc(lat, lon, lat_0, lon_0, radius: float = CARLA_TMERC_RADIUS) -> tuple[np.ndarray, np.ndarray]:
    """GNSS degrees -> (x, y) metres in OUR world frame for CARLA 0.9.16's transverse Mercator (CARLA +y = north).

    Spherical transverse Mercator about (lat_0, lon_0) in closed form (Snyder, Map Projections, eqs. 8-1 and 8-3):
    east = R atanh(cos(lat) sin(dlon)), north = R (atan2(tan(lat), cos(dlon)) - lat_0). CARLA's (x, y) is
    (east, north), so our y = -CARLA y = -north: the mirror image of the 0.9.15 Mercator, where CARLA +y is south.
    """
    lat, lon, lat_0, lon_0 = (np.deg2rad(_f64(v)) for v in (lat, lon, lat_0, lon_0))
    dlon = np.arctan2(np.sin(lon - lon_0), np.cos(lon - lon_0))
    east = radius * np.arctanh(np.cos(lat) * np.sin(dlon))
    north = radius * (np.arctan2(np.tan(lat), np.cos(dlon)) - lat_0)
    return _scalar_or_array(np.asarray(east)), _scalar_or_array(np.asarray(-north))


def world_to_gnss_tmerc(x, y, lat_0, lon_0, radius: float = CARLA_TMERC_RADIUS) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) metres in our world frame -> GNSS (lat, lon) degrees, the inverse of `gnss_to_world_tmerc`.

    Snyder eqs. 8-6 and 8-7: D = north / R + lat_0, lat = asin(sin D / cosh(east / R)),
    lon = lon_0 + atan2(sinh(east / R), cos D).
    """
    x, y, lat_0, lon_0 = (_f64(v) for v in (x, y, lat_0, lon_0))
    east, north = x / radius, -y / radius
    d = north + np.deg2rad(lat_0)
    lat = np.rad2deg(np.arcsin(np.sin(d) / np.cosh(east)))
    lon = lon_0 + np.rad2deg(np.arctan2(np.sinh(east), np.cos(d)))
    return _scalar_or_array(np.asarray(lat)), _scalar_or_array(np.asarray(lon))


_GEOREF_RE = re.compile(r"<geoReference>(.*?)</geoReference>", re.DOTALL | re.IGNORECASE)
_LAT0_RE = re.compile(r"\+lat_0=([-+0-9.eE]+)")
_LON0_RE = re.compile(r"\+lon_0=([-+0-9.eE]+)")


def parse_opendrive_georeference(xodr_text: str) -> tuple[float, float]:
    """(lat_ref, lon_ref) from an OpenDRIVE map's geoReference `+lat_0=` / `+lon_0=` (CARLA's 42.0, 2.0 if absent).

    Mirrors the leaderboard's `_get_latlon_ref`, which reads the same two proj parameters from `world.get_map()`.
    """
    if not isinstance(xodr_text, str):
        raise TypeError(f"xodr_text must be str, got {type(xodr_text).__name__}")
    lat_ref, lon_ref = CARLA_DEFAULT_LAT_REF, CARLA_DEFAULT_LON_REF
    m = _GEOREF_RE.search(xodr_text)
    if m is None:
        logger.debug("no geoReference in OpenDRIVE text; using CARLA defaults (%s, %s)", lat_ref, lon_ref)
        return lat_ref, lon_ref
    text = m.group(1)
    for regex, which in ((_LAT0_RE, "lat"), (_LON0_RE, "lon")):
        found = regex.search(text)
        if found is None:
            continue
        try:
            value = float(found.group(1))
        except ValueError as e:
            raise ValueError(f"malformed +{which}_0 in geoReference: {found.group(0)!r}") from e
        if which == "lat":
            lat_ref = value
        else:
            lon_ref = value
    return lat_ref, lon_ref


# --------------------------------------------------------------------------------------------------------------------
# Cameras (optical frame: z forward, x right, y down)
# --------------------------------------------------------------------------------------------------------------------


def camera_intrinsics(width: int, height: int, fov_deg: float) -> np.ndarray:
    """3x3 pinhole K with square pixels from the horizontal fov: fx = fy = W / (2 tan(fov/2)), c = (W/2, H/2)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if not (0.0 < fov_deg < 180.0):
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    f = width / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def camera_to_ego(x: float, y: float, z: float, roll: float, pitch: float, yaw: float) -> np.ndarray:
    """4x4 matrix mapping optical-frame points (z fwd, x right, y down) to the ego frame.

    The camera body (x along the optical axis, y left, z up) is placed at (x, y, z) in the ego frame and rotated by
    R = Rz(yaw) Ry(-pitch) Rx(roll): yaw CCW (left positive), pitch positive = optical axis tilted up, roll positive
    = right-handed about the forward axis (the camera's right side goes down, its left side up).
    """
    r_body = _rot_z(yaw) @ _rot_y(-pitch) @ _rot_x(roll)
    m = np.eye(4)
    m[:3, :3] = r_body @ _OPTICAL_TO_BODY
    m[:3, 3] = (x, y, z)
    return m


def project_points(points_ego, K, cam_to_ego) -> tuple[np.ndarray, np.ndarray]:
    """Project ego-frame points (N, 3) through a pinhole camera.

    Returns uv (N, 2) in pixels (u right, v down; NaN where depth <= 0) and depth (N,) along the optical axis
    (<= 0 for points at or behind the camera plane). No clipping to the image bounds.
    """
    pts = _f64(points_ego)
    K = _f64(K)
    cam_to_ego = _f64(cam_to_ego)
    _check_last(pts, 3, "points_ego")
    if K.shape != (3, 3):
        raise ValueError(f"K must be 3x3, got {K.shape}")
    if cam_to_ego.shape != (4, 4):
        raise ValueError(f"cam_to_ego must be 4x4, got {cam_to_ego.shape}")
    rot = cam_to_ego[:3, :3]
    # Rigid inverse: p_cam = R^T (p - t).
    p_cam = (pts - cam_to_ego[:3, 3]) @ rot
    depth = p_cam[..., 2]
    pix = p_cam @ K.T
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = pix[..., :2] / pix[..., 2:3]
    uv = np.where((depth > 0)[..., None], uv, np.nan)
    return uv, depth


# --------------------------------------------------------------------------------------------------------------------
# BEV raster: row 0 = farthest ahead (+x), column 0 = leftmost (+y), ego (rear axle) at the centre
# --------------------------------------------------------------------------------------------------------------------


def _check_bev(size_cells: int, range_m: float) -> float:
    if int(size_cells) != size_cells or size_cells <= 0:
        raise ValueError(f"size_cells must be a positive integer, got {size_cells}")
    if not (range_m > 0 and math.isfinite(range_m)):
        raise ValueError(f"range_m must be positive and finite, got {range_m}")
    return range_m / size_cells


def bev_grid(size_cells: int, range_m: float) -> np.ndarray:
    """Cell-centre ego coordinates (size, size, 2) = (x, y) of the square BEV raster `range_m` metres on a side.

    Cell (i, j) centre: x = range/2 - (i + 0.5) * res, y = range/2 - (j + 0.5) * res, res = range / size.
    """
    res = _check_bev(size_cells, range_m)
    c = range_m / 2.0 - (np.arange(size_cells) + 0.5) * res
    xs, ys = np.meshgrid(c, c, indexing="ij")
    return np.stack([xs, ys], axis=-1)


def world_to_bev_pixel(points_ego, size_cells: int, range_m: float) -> np.ndarray:
    """Ego-frame points (..., 2) (or (..., 3), z ignored) -> continuous (row, col) (..., 2).

    Cell (i, j) spans [i, i+1) x [j, j+1), so its centre is (i + 0.5, j + 0.5) and `np.floor` gives the cell index;
    points outside the raster give rows / columns outside [0, size).
    """
    res = _check_bev(size_cells, range_m)
    p = _f64(points_ego)
    _check_last(p, (2, 3), "points_ego")
    row = (range_m / 2.0 - p[..., 0]) / res
    col = (range_m / 2.0 - p[..., 1]) / res
    return np.stack([row, col], axis=-1)


def bev_pixel_to_ego(pixels, size_cells: int, range_m: float) -> np.ndarray:
    """Continuous (row, col) (..., 2) -> ego-frame (x, y) (..., 2); inverse of `world_to_bev_pixel`."""
    res = _check_bev(size_cells, range_m)
    p = _f64(pixels)
    _check_last(p, 2, "pixels")
    return np.stack([range_m / 2.0 - p[..., 0] * res, range_m / 2.0 - p[..., 1] * res], axis=-1)
