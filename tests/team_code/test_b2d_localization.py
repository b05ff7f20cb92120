"""GNSS + compass -> rear-axle pose, and the exact georeference solve."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from b2d_harness import location_to_gps

from agent import geometry
from team_code.config import LocalizationConfig
from team_code.localization import (
    GeoModel,
    GnssModelSelector,
    ImuReading,
    Localizer,
    calibrate_georeference,
    solve_georeference,
)

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


# --------------------------------------------------------------------------- GNSS models across CARLA versions
#: `carla.Map("t", xodr).transform_to_geolocation` of the carla 0.9.16 client wheel for a header `+lat_0=42 +lon_0=2`
#: (CARLA x, y) -> (lat, lon), read once from the wheel: north of the origin for +y, unlike 0.9.15.
WHEEL_0916 = {
    (0.0, 100.0): (42.000898674754, 2.0),
    (100.0, 0.0): (41.999999993654, 2.001209286162),
    (12345.6, -9876.5): (41.911145969483, 2.149085614384),
}
#: the same for the carla 0.9.15 wheel (CPython <= 3.10 only, read once with Python 3.10): CARLA +y to the south, the
#: scaled Mercator of `geometry.world_to_gnss` and of the leaderboard's plan.
WHEEL_0915 = {
    (0.0, 100.0): (41.999101678375126, 1.9999999999999998),
    (100.0, 0.0): (42.0, 2.0012088024478167),
    (12345.6, -9876.5): (42.08866025112087, 2.149233910275796),
}
XODR = (
    '<?xml version="1.0" standalone="yes"?><OpenDRIVE><header revMajor="1" revMinor="4" name="" version="1" '
    'north="0" south="0" east="0" west="0"><geoReference><![CDATA[{}]]></geoReference></header></OpenDRIVE>'
)


def _wheel_map(georeference: str = "+lat_0=42 +lon_0=2"):
    """The real carla client wheel's projection, built offline from an OpenDRIVE header; skips without the wheel."""
    import carla  # the real wheel, or the local fake (conftest.py) which has no Map

    if not hasattr(carla, "Map"):
        pytest.skip("the carla client wheel is not installed")
    carla_map = carla.Map("t", XODR.format(georeference))
    lat_0 = carla_map.transform_to_geolocation(carla.Location(x=0.0, y=0.0, z=0.0)).latitude
    if carla_map.transform_to_geolocation(carla.Location(x=0.0, y=100.0, z=0.0)).latitude < lat_0:
        pytest.skip("the installed carla wheel projects as 0.9.15 (+y south); these readings are 0.9.16's")

    def gnss(x_carla: float, y_carla: float) -> tuple[float, float]:
        g = carla_map.transform_to_geolocation(carla.Location(x=float(x_carla), y=float(y_carla), z=0.0))
        return g.latitude, g.longitude

    return gnss


def _tmerc_gnss(lat_0: float, lon_0: float):
    def gnss(x_carla: float, y_carla: float) -> tuple[float, float]:
        lat, lon = geometry.world_to_gnss_tmerc(x_carla, -y_carla, lat_0, lon_0)
        return float(lat), float(lon)

    return gnss


def test_tmerc_matches_the_0916_wheel_readings():
    for (xc, yc), (lat, lon) in WHEEL_0916.items():
        got = geometry.world_to_gnss_tmerc(np.float32(xc), -np.float32(yc), 42.0, 2.0)  # float32 as in CARLA
        assert got == pytest.approx((lat, lon), abs=1e-9)
        x, y = geometry.gnss_to_world_tmerc(lat, lon, 42.0, 2.0)
        assert math.hypot(x - xc, -y - yc) < 0.01  # the inverse lands within a centimetre
    # 0.9.15's Mercator puts CARLA +y to the south, so its inverse of the 0.9.16 reading is ~20 km off
    x, y = geometry.gnss_to_world(*WHEEL_0916[(12345.6, -9876.5)], 42.0, 2.0)
    assert math.hypot(x - 12345.6, -y + 9876.5) > 19000.0


def test_mercator_matches_the_0915_wheel_readings():
    for (xc, yc), (lat, lon) in WHEEL_0915.items():
        got = geometry.world_to_gnss(np.float32(xc), -np.float32(yc), 42.0, 2.0)  # float32 as in CARLA
        assert got == pytest.approx((lat, lon), abs=1e-12)
        assert location_to_gps(42.0, 2.0, xc, yc) == pytest.approx((lat, lon), abs=1e-8)  # the plan's formula
        x, y = geometry.gnss_to_world(lat, lon, 42.0, 2.0)
        assert math.hypot(x - xc, -y - yc) < 0.001
    assert WHEEL_0915[(0.0, 100.0)][0] < 42.0 < WHEEL_0916[(0.0, 100.0)][0]  # the two versions mirror CARLA y


def test_tmerc_against_the_wheel_where_installed():
    gnss = _wheel_map("+lat_0=35.25 +lon_0=-101.875")
    rng = np.random.default_rng(1)
    for xc, yc in rng.uniform(-15000.0, 15000.0, (50, 2)):
        lat, lon = gnss(xc, yc)
        x, y = geometry.gnss_to_world_tmerc(lat, lon, 35.25, -101.875)
        assert math.hypot(x - np.float32(xc), -y - np.float32(yc)) < 0.01  # the wheel computes in float32 metres
    assert gnss(0.0, 100.0)[0] > 35.25  # +y is north


def _plan(centre_xy, lat_ref=42.0, lon_ref=2.0, n=300, gnss=None):
    """A curving route around `centre_xy` (our frame): its leaderboard GNSS (Mercator unless `gnss`) and world xy."""
    s = np.linspace(0.0, 1.0, n)
    xy = np.stack([centre_xy[0] + 300.0 * s, centre_xy[1] + 80.0 * np.sin(3.0 * s)], axis=-1)
    to_gps = gnss or (lambda xc, yc: location_to_gps(lat_ref, lon_ref, xc, yc))
    pts = [dict(zip(("lat", "lon"), to_gps(x, -y))) for x, y in xy]
    return pts, xy


def test_calibration_chooses_the_model_that_explains_the_plan(caplog):
    gps, xy = _plan((12345.6, 9876.5))
    with caplog.at_level(logging.INFO, logger="team_code.localization"):
        cal = calibrate_georeference(gps, xy)
    assert cal.model.kind == "mercator"
    assert (cal.model.lat_ref, cal.model.lon_ref) == pytest.approx((42.0, 2.0), abs=1e-9)
    assert cal.residual_m < 1e-4 and cal.residuals["tmerc"] > 100.0
    assert [c.kind for c in cal.candidates] == ["mercator", "tmerc"]
    assert "GNSS model from the global plan: mercator" in caplog.text
    gps, xy = _plan((12345.6, 9876.5), gnss=_tmerc_gnss(42.0, 2.0))  # a plan written with the server's projection
    cal = calibrate_georeference(gps, xy)
    assert cal.model.kind == "tmerc" and cal.residual_m < 1e-4 and cal.residuals["mercator"] > 100.0
    assert (cal.model.lat_ref, cal.model.lon_ref) == pytest.approx((42.0, 2.0), abs=1e-9)


def test_calibration_is_robust_to_a_bad_point_and_refuses_an_unexplained_plan():
    gps, xy = _plan((-500.0, 2000.0), 49.0, 8.0)
    gps[0] = {"lat": gps[0]["lat"] + 1e-5, "lon": gps[0]["lon"]}  # one point 1.1 m off
    cal = calibrate_georeference(gps, xy, max_residual_m=2.0)
    assert cal.model.kind == "mercator"
    assert (cal.model.lat_ref, cal.model.lon_ref) == pytest.approx((49.0, 8.0), abs=1e-9)  # the median ignores it
    assert cal.residual_m == pytest.approx(1.11, abs=0.01)  # ...but the residual reports it
    with pytest.raises(ValueError, match="no GNSS model explains the global plan"):
        calibrate_georeference(gps, xy)
    with pytest.raises(ValueError, match="non-finite"):
        calibrate_georeference([{"lat": float("nan"), "lon": 8.0}], [[0.0, 0.0]])


@pytest.mark.parametrize("source", ["wheel", "formula"])
def test_sensor_on_0916_is_recognised_though_the_plan_is_mercator(source, caplog):
    """The leaderboard writes the plan's GNSS with the Mercator formula; a 0.9.16 sensor answers in tmerc."""
    gnss = _wheel_map() if source == "wheel" else _tmerc_gnss(42.0, 2.0)
    gps, xy = _plan((12345.6, 9876.5))
    cal = calibrate_georeference(gps, xy)
    assert cal.model.kind == "mercator"
    selector = GnssModelSelector(cal.candidates, xy, tolerance_m=5.0)
    loc = Localizer(LocalizationConfig(filter="none", gnss_mount_x=0.0), selector, rear_axle_offset=0.0)
    with caplog.at_level(logging.WARNING, logger="team_code.localization"):
        pose = loc.update([*gnss(xy[0, 0], -xy[0, 1]), 0.0], math.pi / 2)  # first fix at the route start
    assert selector.decided and loc.model.kind == "tmerc" and "switching" in caplog.text
    assert math.hypot(pose.x - xy[0, 0], pose.y - xy[0, 1]) < 0.01
    pose = loc.update([*gnss(12345.6, -9876.5), 0.0], math.pi / 2)
    assert math.hypot(pose.x - 12345.6, pose.y - 9876.5) < 0.01


def test_models_that_agree_near_the_reference_are_not_decided_early():
    # CARLA y = 0 from x = 0 to 150 m, then 60 m to CARLA +y: along y = 0 the two models coincide
    carla_xy = np.concatenate([np.stack([np.arange(0.0, 150.0), np.zeros(150)], -1), [[150.0, 20.0], [150.0, 60.0]]])
    gps = [dict(zip(("lat", "lon"), location_to_gps(42.0, 2.0, x, y))) for x, y in carla_xy]
    route = carla_xy * [1.0, -1.0]  # our frame
    cal = calibrate_georeference(gps, route)
    assert cal.model.kind == "mercator"  # the plan's bend decides it: 40 m in the wrong direction under tmerc
    sensor = _tmerc_gnss(42.0, 2.0)  # but the server is 0.9.16
    selector = GnssModelSelector(cal.candidates, route, tolerance_m=5.0)
    for x in (0.0, 50.0, 149.0):  # at the start and along y = 0 nothing can be decided
        assert selector.observe(*sensor(x, 0.0)) is cal.model and not selector.decided
    # 30 m up the last leg the models are 60 m apart: the one that keeps the fix on the route wins
    assert selector.observe(*sensor(150.0, 30.0)).kind == "tmerc" and selector.decided


def test_a_bad_tick_leaves_the_estimate_untouched():
    loc = Localizer(LocalizationConfig(filter="complementary", gnss_gain=0.1), GEO)
    lat, lon = _gps_of_rear_axle(10.0, 5.0, 0.0)
    first = loc.update([lat, lon, 0.0], math.pi / 2, 5.0, 0.05)
    for bad in (
        lambda: loc.update([lat, lon, 0.0], math.pi / 2, 5.0, float("nan")),
        lambda: loc.update([lat, lon, 0.0], math.pi / 2, 5.0, -0.05),
        lambda: loc.update([float("nan"), lon, 0.0], math.pi / 2, 5.0, 0.05),
    ):
        with pytest.raises(ValueError):
            bad()
    lat, lon = _gps_of_rear_axle(10.25, 5.0, 0.0)
    nxt = loc.update([lat, lon, 0.0], math.pi / 2, 5.0, 0.05)
    assert math.isfinite(nxt.x) and nxt.x == pytest.approx(first.x + 0.25, abs=1e-6)
