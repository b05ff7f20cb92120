"""Tests for agent.geometry: round trips, hand-computed values, batching (expected values derived by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent import geometry as g

PI = math.pi


# ---------------------------------------------------------------------------------------------------------------------
# Angles and SE(2)
# ---------------------------------------------------------------------------------------------------------------------


def test_wrap_angle_known_values():
    a = np.array([0.0, PI, -PI, 1.5 * PI, -1.5 * PI, 2 * PI, 7.0])
    expected = np.array([0.0, -PI, -PI, -0.5 * PI, 0.5 * PI, 0.0, 7.0 - 2 * PI])
    np.testing.assert_allclose(g.wrap_angle(a), expected, atol=1e-12)
    # Just below -pi must wrap to just below +pi... but never to +pi itself.
    w = g.wrap_angle(np.nextafter(-PI, -np.inf))
    assert -PI <= w < PI
    assert isinstance(g.wrap_angle(0.5), float)


def test_unwrap_headings_across_pi():
    h = np.array([[3.0, -3.0, -2.9], [0.0, 0.1, 0.2]])
    u = g.unwrap_headings(h)
    np.testing.assert_allclose(u[0], [3.0, 2 * PI - 3.0, 2 * PI - 2.9])
    np.testing.assert_allclose(u[1], h[1])
    u0 = g.unwrap_headings(h.T, axis=0)
    np.testing.assert_allclose(u0.T, u)


def test_se2_compose_90_degree_rotation():
    a = np.array([1.0, 2.0, PI / 2])
    np.testing.assert_allclose(g.se2_compose(a, [3.0, 0.0, 0.0]), [1.0, 5.0, PI / 2], atol=1e-12)
    np.testing.assert_allclose(g.se2_compose(a, [0.0, 1.0, PI / 2]), [0.0, 2.0, -PI], atol=1e-12)


def test_se2_inverse_round_trip_batched():
    rng = np.random.default_rng(0)
    p = rng.uniform(-50, 50, size=(5, 7, 3))
    p[..., 2] = rng.uniform(-PI, PI, size=(5, 7))
    ident = g.se2_compose(p, g.se2_inverse(p))
    np.testing.assert_allclose(ident, np.zeros_like(p), atol=1e-9)
    ident2 = g.se2_compose(g.se2_inverse(p), p)
    np.testing.assert_allclose(ident2, np.zeros_like(p), atol=1e-9)
    assert g.se2_compose(p[:, :1], p[:1]).shape == (5, 7, 3)


def test_relative_absolute_known_and_round_trip():
    origin = np.array([10.0, 0.0, PI / 2])
    rel = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    expected = np.array([[10.0, 1.0, PI / 2], [9.0, 0.0, PI / 2]])
    np.testing.assert_allclose(g.relative_to_absolute(origin, rel), expected, atol=1e-12)
    np.testing.assert_allclose(g.absolute_to_relative(origin, expected), rel, atol=1e-12)

    rng = np.random.default_rng(1)
    origins = rng.uniform(-100, 100, size=(4, 3))
    poses = rng.uniform(-30, 30, size=(4, 8, 3))
    poses[..., 2] = rng.uniform(-PI, PI, size=(4, 8))
    back = g.absolute_to_relative(origins, g.relative_to_absolute(origins, poses))
    assert back.shape == (4, 8, 3)
    np.testing.assert_allclose(back[..., :2], poses[..., :2], atol=1e-9)
    np.testing.assert_allclose(g.wrap_angle(back[..., 2] - poses[..., 2]), 0.0, atol=1e-9)


def test_points_global_local():
    origin = np.array([10.0, 0.0, PI / 2])
    pts = np.array([[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(g.points_to_global(origin, pts), [[10.0, 1.0], [8.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(g.points_to_local(origin, [[10.0, 1.0], [8.0, 0.0]]), pts, atol=1e-12)
    origins = np.zeros((2, 3))
    assert g.points_to_global(origins, np.ones((2, 5, 2))).shape == (2, 5, 2)


def test_rear_axle_center():
    assert g.PACIFICA_REAR_AXLE_TO_CENTER == pytest.approx(1.461)
    p = np.array([[0.0, 0.0, PI / 2], [1.0, 1.0, 0.0]])
    c = g.rear_axle_to_center(p)
    np.testing.assert_allclose(c, [[0.0, 1.461, PI / 2], [2.461, 1.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(g.center_to_rear_axle(c), p, atol=1e-12)
    np.testing.assert_allclose(g.rear_axle_to_center(p, 2.0)[1], [3.0, 1.0, 0.0])


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="shape"):
        g.se2_compose(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="pts"):
        g.points_to_global(np.zeros(3), np.zeros((4, 3)))


# ---------------------------------------------------------------------------------------------------------------------
# Interpolation and resampling
# ---------------------------------------------------------------------------------------------------------------------


def test_interpolate_poses_heading_across_pi():
    times = np.array([0.0, 1.0])
    poses = np.array([[0.0, 0.0, 3.0], [2.0, 4.0, -3.0]])  # heading turns left by 2*pi - 6 across +pi
    out = g.interpolate_poses(times, poses, [0.0, 0.25, 0.75, 1.0])
    step = 2 * PI - 6.0
    np.testing.assert_allclose(out[:, 0], [0.0, 0.5, 1.5, 2.0])
    np.testing.assert_allclose(out[:, 1], [0.0, 1.0, 3.0, 4.0])
    np.testing.assert_allclose(out[:, 2], [3.0, 3.0 + 0.25 * step, 3.0 + 0.75 * step - 2 * PI, -3.0], atol=1e-12)


def test_interpolate_poses_range_checks():
    times = np.array([0.0, 0.5, 1.0])
    poses = np.zeros((3, 3))
    g.interpolate_poses(times, poses, [-1e-10, 1.0 + 1e-10])  # within tolerance
    with pytest.raises(ValueError, match="query_times"):
        g.interpolate_poses(times, poses, [1.01])
    with pytest.raises(ValueError, match="query_times"):
        g.interpolate_poses(times, poses, [-0.01])
    with pytest.raises(ValueError, match="increasing"):
        g.interpolate_poses([0.0, 1.0, 0.5], poses, [0.2])
    with pytest.raises(ValueError, match="poses"):
        g.interpolate_poses(times, np.zeros((4, 3)), [0.2])


def test_resample_straight_constant_speed():
    # 10 m/s straight ahead: 8 poses at 0.5 s -> x = 5, 10, ..., 40.
    poses = np.zeros((8, 3))
    poses[:, 0] = 5.0 * np.arange(1, 9)
    out = g.resample_trajectory(poses)
    assert out.shape == (41, 3)
    np.testing.assert_allclose(out[:, 0], np.arange(41) * 1.0, atol=1e-9)  # 1 m per 0.1 s, starting at the origin
    np.testing.assert_allclose(out[:, 1:], 0.0, atol=1e-12)
    np.testing.assert_allclose(np.diff(out[:, 0]), 1.0, atol=1e-9)


def test_resample_hand_values_with_turn_and_origin():
    # First segment: origin (0, 0, 0) -> (2, 1, 0.5) at 0.5 s; 0.2 s is 40 % of the way.
    poses = np.array([[2.0, 1.0, 0.5], [4.0, 3.0, 1.0]])
    out = g.resample_trajectory(poses)
    assert out.shape == (11, 3)
    np.testing.assert_allclose(out[2], [0.8, 0.4, 0.2], atol=1e-12)
    np.testing.assert_allclose(out[5], [2.0, 1.0, 0.5], atol=1e-12)
    np.testing.assert_allclose(out[7], [2.8, 1.8, 0.7], atol=1e-12)
    # An explicit origin is the state at t = 0.
    origin = np.array([100.0, -5.0, PI - 0.05])
    glob = np.array([[101.0, -5.0, -PI + 0.05]])  # crosses +pi: heading rises by 0.1 over 0.5 s
    out2 = g.resample_trajectory(glob, origin=origin)
    np.testing.assert_allclose(out2[0], origin)
    np.testing.assert_allclose(out2[1], [100.2, -5.0, PI - 0.03], atol=1e-12)
    np.testing.assert_allclose(out2[-1, 2], -PI + 0.05, atol=1e-12)


def test_resample_batched_matches_loop():
    rng = np.random.default_rng(2)
    k = 8192
    poses = np.cumsum(rng.uniform(0, 3, size=(k, 8, 3)), axis=1)
    poses[..., 2] = g.wrap_angle(poses[..., 2])
    out = g.resample_trajectory(poses)
    assert out.shape == (k, 41, 3)
    assert out.dtype == np.float64
    for i in (0, 17, k - 1):
        np.testing.assert_allclose(out[i], g.resample_trajectory(poses[i]), atol=1e-12)
    # The 0.5 s grid points are the input poses exactly.
    np.testing.assert_allclose(out[:, 5::5], poses, atol=1e-9)
    out4 = g.resample_trajectory(poses.reshape(2, k // 2, 8, 3))
    assert out4.shape == (2, k // 2, 41, 3)


def test_resample_bad_input():
    with pytest.raises(ValueError, match="poses"):
        g.resample_trajectory(np.zeros((8, 2)))
    with pytest.raises(ValueError, match="whole number"):
        g.resample_trajectory(np.zeros((8, 3)), interval=0.5, new_interval=0.3)


# ---------------------------------------------------------------------------------------------------------------------
# CARLA frames
# ---------------------------------------------------------------------------------------------------------------------


def test_carla_location_and_vectors():
    np.testing.assert_array_equal(g.carla_location_to_world([1.0, 2.0, 3.0]), [1.0, -2.0, 3.0])
    np.testing.assert_array_equal(g.world_to_carla_location([[1.0, -2.0, 3.0]]), [[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(g.carla_vector_to_world([4.0, 5.0]), [4.0, -5.0])
    np.testing.assert_array_equal(g.carla_angular_velocity_to_world([0.1, 0.2, 0.3]), [0.1, 0.2, -0.3])


def test_carla_yaw_and_compass():
    assert g.carla_yaw_to_heading(90.0) == pytest.approx(-PI / 2)
    assert g.carla_yaw_to_heading(-90.0) == pytest.approx(PI / 2)
    assert g.carla_yaw_to_heading(180.0) == pytest.approx(-PI)
    assert g.heading_to_carla_yaw(PI / 2) == pytest.approx(-90.0)
    yaws = np.array([-179.0, -30.0, 0.0, 45.0, 170.0])
    np.testing.assert_allclose(g.heading_to_carla_yaw(g.carla_yaw_to_heading(yaws)), yaws, atol=1e-9)
    # Compass: 0 = north = CARLA -y = our +y; east (CARLA +x) is pi/2.
    assert g.compass_to_heading(0.0) == pytest.approx(PI / 2)
    assert g.compass_to_heading(PI / 2) == pytest.approx(0.0)
    assert g.compass_to_heading(PI) == pytest.approx(-PI / 2)
    assert math.isnan(g.compass_to_heading(float("nan")))


def test_carla_mount_to_ego_front_left():
    x, y, z, roll, pitch, yaw = g.carla_mount_to_ego(0.27, -0.55, 1.6, 0.0, 0.0, -55.0, 1.39)
    assert (x, y, z) == pytest.approx((1.66, 0.55, 1.6))
    assert (roll, pitch) == (0.0, 0.0)
    assert yaw == pytest.approx(math.radians(55.0))


# ---------------------------------------------------------------------------------------------------------------------
# GNSS
# ---------------------------------------------------------------------------------------------------------------------


def _carla_location_to_gps(lat_ref: float, lon_ref: float, x_carla: float, y_carla: float) -> tuple[float, float]:
    """CARLA's forward conversion written out for the test (leaderboard `_location_to_gps`)."""
    r = 6378137.0
    scale = math.cos(lat_ref * PI / 180.0)
    mx = scale * lon_ref * PI * r / 180.0 + x_carla
    my = scale * r * math.log(math.tan((90.0 + lat_ref) * PI / 360.0)) - y_carla
    lon = mx * 180.0 / (PI * r * scale)
    lat = 360.0 * math.atan(math.exp(my / (r * scale))) / PI - 90.0
    return lat, lon


def test_gnss_known_values_equator():
    # 1000 m east at the equator is 1000 / (pi R / 180) degrees of longitude.
    lat, lon = g.world_to_gnss(1000.0, 0.0, 0.0, 0.0)
    assert lon == pytest.approx(1000.0 * 180.0 / (PI * 6378137.0), abs=1e-12)
    assert lat == pytest.approx(0.0, abs=1e-12)
    # Our +y is north (CARLA -y).
    lat, lon = g.world_to_gnss(0.0, 1000.0, 0.0, 0.0)
    assert lat == pytest.approx(0.008983152841195, abs=1e-10)
    assert lon == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(("lat_ref", "lon_ref"), [(0.0, 0.0), (42.0, 2.0), (35.25, -101.87)])
def test_gnss_matches_carla_forward_and_round_trips(lat_ref, lon_ref):
    rng = np.random.default_rng(3)
    xs = rng.uniform(-2000.0, 2000.0, size=20)
    ys = rng.uniform(-2000.0, 2000.0, size=20)
    for xc, yc in zip(xs, ys):
        lat, lon = _carla_location_to_gps(lat_ref, lon_ref, xc, yc)
        x, y = g.gnss_to_world(lat, lon, lat_ref, lon_ref)
        assert abs(x - xc) < 1e-3 and abs(y - (-yc)) < 1e-3
    # Closed-form round trip, vectorised, points about 2 km away: well under 1 mm.
    lat, lon = g.world_to_gnss(xs, ys, lat_ref, lon_ref)
    x, y = g.gnss_to_world(lat, lon, lat_ref, lon_ref)
    assert np.max(np.abs(x - xs)) < 1e-6 and np.max(np.abs(y - ys)) < 1e-6
    assert x.shape == (20,)


def test_bench2drive_fsolve_reference_is_wrong_where_ours_is_exact():
    """The Zoo agents' reference solve (longitude equation with an extra lat_ref factor) misplaces Town12-like poses."""
    optimize = pytest.importorskip("scipy.optimize")
    r = 6378137.0
    lat_ref, lon_ref = 35.25, -101.875
    locx, locy = 1500.0, -800.0  # first route point, CARLA coordinates
    lat, lon = _carla_location_to_gps(lat_ref, lon_ref, locx, locy)

    def agent_equations(v):
        la, lo = v
        c = math.cos(la * PI / 180)
        return [
            lon * c - locx * la * 180 / (PI * r) - c * lo,
            math.log(math.tan((lat + 90) * PI / 360)) * r * c + locy - c * r * math.log(math.tan((90 + la) * PI / 360)),
        ]

    lat_b, lon_b = optimize.fsolve(agent_equations, [0.0, 0.0])
    x_b, _ = g.gnss_to_world(lat, lon, lat_b, lon_b)
    assert abs(x_b - locx) > 1000.0  # kilometres off
    x, y = g.gnss_to_world(lat, lon, lat_ref, lon_ref)
    assert abs(x - locx) < 1e-6 and abs(y + locy) < 1e-6


def test_parse_opendrive_georeference():
    xodr = (
        '<?xml version="1.0"?><OpenDRIVE><header revMajor="1"><geoReference><![CDATA[+proj=tmerc '
        "+lat_0=35.25 +lon_0=-101.875 +k=1 +x_0=0 +y_0=0 +datum=WGS84 +units=m]]></geoReference></header></OpenDRIVE>"
    )
    assert g.parse_opendrive_georeference(xodr) == (35.25, -101.875)
    assert g.parse_opendrive_georeference("<OpenDRIVE><header/></OpenDRIVE>") == (42.0, 2.0)
    only_lat = "<geoReference>+proj=tmerc +lat_0=1.5</geoReference>"
    assert g.parse_opendrive_georeference(only_lat) == (1.5, 2.0)
    with pytest.raises(ValueError, match="lat_0"):
        g.parse_opendrive_georeference("<geoReference>+lat_0=1.2.3</geoReference>")


# ---------------------------------------------------------------------------------------------------------------------
# Cameras
# ---------------------------------------------------------------------------------------------------------------------


def test_camera_intrinsics_focal():
    k70 = g.camera_intrinsics(1600, 900, 70.0)
    assert k70[0, 0] == pytest.approx(1142.52, abs=0.01)
    assert k70[1, 1] == k70[0, 0]
    assert (k70[0, 2], k70[1, 2]) == (800.0, 450.0)
    assert g.camera_intrinsics(1600, 900, 110.0)[0, 0] == pytest.approx(560.17, abs=0.01)
    with pytest.raises(ValueError, match="fov"):
        g.camera_intrinsics(1600, 900, 180.0)


def test_project_front_camera():
    k = g.camera_intrinsics(1600, 900, 70.0)
    f = k[0, 0]
    cam = g.camera_to_ego(1.5, 0.0, 1.6, 0.0, 0.0, 0.0)
    pts = np.array(
        [
            [11.5, 0.0, 1.6],  # straight ahead
            [11.5, 2.0, 1.6],  # 2 m left
            [11.5, 0.0, 2.6],  # 1 m up
            [-8.5, 0.0, 1.6],  # behind
        ]
    )
    uv, depth = g.project_points(pts, k, cam)
    np.testing.assert_allclose(depth, [10.0, 10.0, 10.0, -10.0])
    np.testing.assert_allclose(uv[0], [800.0, 450.0], atol=1e-9)
    np.testing.assert_allclose(uv[1], [800.0 - f * 0.2, 450.0], atol=1e-9)
    np.testing.assert_allclose(uv[2], [800.0, 450.0 - f * 0.1], atol=1e-9)
    assert np.all(np.isnan(uv[3]))


def test_camera_yaw_pitch_roll_conventions():
    k = g.camera_intrinsics(800, 600, 90.0)
    # Yawed 90 degrees CCW: looks along ego +y.
    uv, depth = g.project_points(np.array([[0.0, 10.0, 1.0]]), k, g.camera_to_ego(0.0, 0.0, 1.0, 0.0, 0.0, PI / 2))
    np.testing.assert_allclose(uv[0], [400.0, 300.0], atol=1e-9)
    assert depth[0] == pytest.approx(10.0)
    # Pitched up by 0.1 rad: a point 0.1 rad above the horizon is on the optical axis.
    p = np.array([[10 * math.cos(0.1), 0.0, 1.0 + 10 * math.sin(0.1)]])
    uv, depth = g.project_points(p, k, g.camera_to_ego(0.0, 0.0, 1.0, 0.0, 0.1, 0.0))
    np.testing.assert_allclose(uv[0], [400.0, 300.0], atol=1e-9)
    assert depth[0] == pytest.approx(10.0)
    # Rolled right side down: a point level and to the right appears right of and above the centre.
    uv, _ = g.project_points(np.array([[10.0, -2.0, 1.0]]), k, g.camera_to_ego(0.0, 0.0, 1.0, 0.1, 0.0, 0.0))
    assert uv[0, 0] > 400.0 and uv[0, 1] < 300.0


def test_camera_to_ego_is_rigid():
    m = g.camera_to_ego(0.3, -0.2, 1.5, 0.05, -0.1, 2.0)
    r = m[:3, :3]
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    np.testing.assert_array_equal(m[3], [0.0, 0.0, 0.0, 1.0])


def test_carla_top_down_camera_looks_down_with_forward_up():
    # Bench2Drive's BEV camera: CARLA (0, 0, 50), pitch -90.
    x, y, z, roll, pitch, yaw = g.carla_mount_to_ego(0.0, 0.0, 50.0, 0.0, -90.0, 0.0, 1.39)
    k = g.camera_intrinsics(512, 512, 50.0)
    cam = g.camera_to_ego(x, y, z, roll, pitch, yaw)
    pts = np.array([[1.39, 0.0, 0.0], [11.39, 0.0, 0.0], [1.39, 10.0, 0.0]])
    uv, depth = g.project_points(pts, k, cam)
    np.testing.assert_allclose(depth, 50.0)
    np.testing.assert_allclose(uv[0], [256.0, 256.0], atol=1e-9)
    assert uv[1, 1] < 256.0 and uv[1, 0] == pytest.approx(256.0)  # ahead = image top
    assert uv[2, 0] < 256.0 and uv[2, 1] == pytest.approx(256.0)  # left = image left


# ---------------------------------------------------------------------------------------------------------------------
# BEV raster
# ---------------------------------------------------------------------------------------------------------------------


def test_bev_grid_convention():
    grid = g.bev_grid(4, 8.0)
    assert grid.shape == (4, 4, 2)
    np.testing.assert_allclose(grid[:, 0, 0], [3.0, 1.0, -1.0, -3.0])  # row 0 farthest ahead
    np.testing.assert_allclose(grid[0, :, 1], [3.0, 1.0, -1.0, -3.0])  # column 0 leftmost
    np.testing.assert_allclose(
        g.world_to_bev_pixel(grid, 4, 8.0),
        np.stack(np.meshgrid(np.arange(4) + 0.5, np.arange(4) + 0.5, indexing="ij"), axis=-1),
    )


def test_bev_pixel_known_values_and_round_trip():
    np.testing.assert_allclose(g.world_to_bev_pixel([0.0, 0.0], 128, 64.0), [64.0, 64.0])
    np.testing.assert_allclose(g.world_to_bev_pixel([32.0, 32.0, 5.0], 128, 64.0), [0.0, 0.0])
    np.testing.assert_allclose(g.world_to_bev_pixel([-32.0, -32.0], 128, 64.0), [128.0, 128.0])
    pts = np.random.default_rng(4).uniform(-40, 40, size=(3, 10, 2))
    np.testing.assert_allclose(g.bev_pixel_to_ego(g.world_to_bev_pixel(pts, 128, 64.0), 128, 64.0), pts, atol=1e-9)
    with pytest.raises(ValueError, match="size_cells"):
        g.bev_grid(0, 64.0)
