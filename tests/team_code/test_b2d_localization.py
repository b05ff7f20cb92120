"""GNSS + compass -> rear-axle pose, and the exact georeference solve."""

from __future__ import annotations

import math

import numpy as np
import pytest
from b2d_harness import location_to_gps

from team_code.config import LocalizationConfig
from team_code.localization import GeoModel, ImuReading, Localizer, solve_georeference

LAT_REF, LON_REF = 49.0123, 8.4
GEO = GeoModel("mercator", LAT_REF, LON_REF)


def _gps_of_rear_axle(x, y, heading, mount_back=0.01):
    """GNSS of the antenna 0.01 m behind the rear axle (1.4 m behind the centre, centre 1.39 m ahead)."""
    ax, ay = x - mount_back * math.cos(heading), y - mount_back * math.sin(heading)
    return location_to_gps(LAT_REF, LON_REF, ax, -ay)


@pytest.mark.parametrize("x, y", [(1234.5, -987.6), (-4000.0, 5200.0), (3.0, 0.0)])
def test_solve_georeference_recovers_the_reference(x, y):
    lat, lon = location_to_gps(LAT_REF, LON_REF, x, -y)  # our y is CARLA's -y
    lat_ref, lon_ref = solve_georeference(lat, lon, x, y)
    assert lat_ref == pytest.approx(LAT_REF, abs=1e-9)
    assert lon_ref == pytest.approx(LON_REF, abs=1e-9)


def test_localizer_exact_pose_without_filter():
    loc = Localizer(LocalizationConfig(filter="none"), GEO)
    heading = 0.3
    lat, lon = _gps_of_rear_axle(100.0, 50.0, heading)
    pose = loc.update([lat, lon, 0.0], math.pi / 2 - heading)
    assert pose.heading_valid
    assert (pose.x, pose.y, pose.heading) == pytest.approx((100.0, 50.0, 0.3), abs=1e-6)


def test_compass_nan_uses_hint_then_holds_last_valid():
    loc = Localizer(LocalizationConfig(filter="none"), GEO, initial_heading=1.0)
    lat, lon = _gps_of_rear_axle(0.0, 0.0, 1.0)
    p = loc.update([lat, lon, 0.0], float("nan"))
    assert not p.heading_valid and p.heading == pytest.approx(1.0)
    p = loc.update([lat, lon, 0.0], math.pi / 2 - (-2.0))  # compass for heading -2.0 (wraps)
    assert p.heading_valid and p.heading == pytest.approx(-2.0)
    p = loc.update([lat, lon, 0.0], float("nan"))
    assert p.heading == pytest.approx(-2.0)
    no_hint = Localizer(LocalizationConfig(filter="none"), GEO)
    assert no_hint.update([lat, lon, 0.0], float("nan")).heading == 0.0


def test_complementary_filter_reduces_gnss_noise():
    rng = np.random.default_rng(0)
    raw = Localizer(LocalizationConfig(filter="none"), GEO)
    filt = Localizer(LocalizationConfig(filter="complementary", gnss_gain=0.1), GEO)
    err_raw, err_f = [], []
    v, dt = 8.0, 0.05
    for k in range(400):
        x = v * dt * k
        lat, lon = _gps_of_rear_axle(x, 0.0, 0.0)
        noisy = [lat + rng.normal(0, 5e-6), lon + rng.normal(0, 5e-6), 0.0]
        compass = math.pi / 2
        pr, pf = raw.update(noisy, compass, v, dt), filt.update(noisy, compass, v, dt)
        if k > 50:
            err_raw.append(math.hypot(pr.x - x, pr.y))
            err_f.append(math.hypot(pf.x - x, pf.y))
    assert np.sqrt(np.mean(np.square(err_f))) < 0.5 * np.sqrt(np.mean(np.square(err_raw)))


def test_filter_resets_on_a_jump():
    loc = Localizer(LocalizationConfig(filter="complementary", gnss_gain=0.1, reset_distance=5.0), GEO)
    lat, lon = _gps_of_rear_axle(0.0, 0.0, 0.0)
    loc.update([lat, lon, 0], math.pi / 2, 0.0)
    lat, lon = _gps_of_rear_axle(50.0, 0.0, 0.0)
    p = loc.update([lat, lon, 0], math.pi / 2, 0.0)
    assert p.x == pytest.approx(50.0, abs=1e-6)


def test_imu_reading_to_our_frame_and_errors():
    r = ImuReading.from_leaderboard([1.0, 2.0, 9.8, 0.1, 0.2, 0.3, 1.0])
    assert r.accel.tolist() == [1.0, -2.0] and r.yaw_rate == -0.3 and r.compass == 1.0
    with pytest.raises(ValueError, match="7 values"):
        ImuReading.from_leaderboard([1.0, 2.0])
    loc = Localizer(LocalizationConfig(), GEO)
    with pytest.raises(ValueError, match="finite"):
        loc.update([float("nan"), 1.0, 0.0], 0.0)
