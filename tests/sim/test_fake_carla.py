"""The closed-loop runner's `carla` stand-in (`sim.closed_loop.fake_carla`) behaves as the real client wheel.

Agents get the stand-in wherever the wheel is not installed, and the tests under `tests/team_code` use the wheel
where it is; this contract keeps the two interchangeable: every data type the stand-in offers exists in the wheel
with the same constructor (positional and keyword), defaults, vectors and arithmetic. The wheel stores float32,
hence the tolerances. Skips without the wheel (it is in the `dev` extra on Linux x86-64).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import numpy as np
import pytest

from sim.closed_loop import fake_carla as fake

F32 = 1e-6  # the wheel's float32 storage, relative to values of order one


@pytest.fixture(scope="module")
def real() -> types.ModuleType:
    """The real wheel, even where `tests/team_code/conftest.py` put the stand-in in `sys.modules`."""
    current = sys.modules.get("carla")
    if current is not None and not getattr(current, "FAKE", False):
        return current
    saved = sys.modules.pop("carla", None)
    try:
        if importlib.util.find_spec("carla") is None:
            pytest.skip("the carla client wheel is not installed")
        return importlib.import_module("carla")
    finally:
        if saved is not None:
            sys.modules["carla"] = saved


def _xyz(v) -> tuple[float, float, float]:
    return (v.x, v.y, v.z)


def test_every_stand_in_type_exists_in_the_wheel(real):
    names = [n for n, v in vars(fake).items() if isinstance(v, type) and v.__module__ == fake.__name__]
    assert sorted(names) == ["Location", "Rotation", "Transform", "Vector3D", "VehicleControl"]
    for name in names:
        assert isinstance(getattr(real, name, None), type), f"carla.{name} is missing from the wheel"


@pytest.mark.parametrize("name", ["Vector3D", "Location"])
def test_vectors_construct_and_compute_alike(real, name):
    for mod in (real, fake):
        cls = getattr(mod, name)
        assert _xyz(cls()) == (0.0, 0.0, 0.0)
        assert _xyz(cls(1.5, -2.0, 3.0)) == _xyz(cls(x=1.5, y=-2.0, z=3.0)) == (1.5, -2.0, 3.0)
        assert cls(1.0, 2.0, 3.0) == cls(1.0, 2.0, 3.0) and not cls(1.0, 2.0, 3.0) == cls(1.0, 2.0, 4.0)
        assert _xyz(cls(1.0, 2.0, 3.0) + cls(1.0, 1.0, 1.0)) == (2.0, 3.0, 4.0)
        assert _xyz(cls(1.0, 2.0, 3.0) - cls(1.0, 1.0, 1.0)) == (0.0, 1.0, 2.0)
        assert (cls(1.0, 2.0, 3.0) - cls(1.0, 1.0, 1.0)).length() == pytest.approx(5**0.5, rel=F32)
    assert real.Location(1.0, 2.0, 3.0).distance(real.Location(4.0, 6.0, 3.0)) == 5.0
    assert fake.Location(1.0, 2.0, 3.0).distance(fake.Location(4.0, 6.0, 3.0)) == 5.0


def test_rotation_and_transform_vectors_match_the_wheel(real):
    rng = np.random.default_rng(3)
    for pitch, yaw, roll in rng.uniform(-180.0, 180.0, (50, 3)):
        r_real, r_fake = real.Rotation(pitch, yaw, roll), fake.Rotation(pitch=pitch, yaw=yaw, roll=roll)
        angles = (r_real.pitch, r_real.yaw, r_real.roll)
        assert (r_fake.pitch, r_fake.yaw, r_fake.roll) == pytest.approx(angles, abs=1e-4)
        for method in ("get_forward_vector", "get_right_vector"):
            got, want = _xyz(getattr(r_fake, method)()), _xyz(getattr(r_real, method)())
            assert got == pytest.approx(want, abs=F32), (method, pitch, yaw, roll)
        t_real = real.Transform(real.Location(1.0, 2.0, 3.0), r_real)
        t_fake = fake.Transform(fake.Location(1.0, 2.0, 3.0), r_fake)
        assert _xyz(t_fake.get_forward_vector()) == pytest.approx(_xyz(t_real.get_forward_vector()), abs=F32)
        assert _xyz(t_fake.get_right_vector()) == pytest.approx(_xyz(t_real.get_right_vector()), abs=F32)
        assert _xyz(t_fake.location) == _xyz(t_real.location)
    for mod in (real, fake):
        t = mod.Transform()
        assert _xyz(t.location) == (0.0, 0.0, 0.0) and (t.rotation.pitch, t.rotation.yaw, t.rotation.roll) == (0, 0, 0)
        assert _xyz(mod.Rotation(yaw=90.0).get_forward_vector()) == pytest.approx((0.0, 1.0, 0.0), abs=F32)


def test_vehicle_control_fields_and_defaults_match_the_wheel(real):
    fields = ("throttle", "steer", "brake", "hand_brake", "reverse", "manual_gear_shift", "gear")

    def values(c):
        return tuple(getattr(c, f) for f in fields)

    assert values(fake.VehicleControl()) == values(real.VehicleControl()) == (0.0, 0.0, 0.0, False, False, False, 0)
    kwargs = dict(throttle=0.3, steer=-0.1, brake=0.25, hand_brake=True, reverse=True, manual_gear_shift=True, gear=2)
    assert values(fake.VehicleControl(**kwargs)) == pytest.approx(values(real.VehicleControl(**kwargs)), abs=F32)
    positional = (0.3, -0.1, 0.25, False, True, False, 3)  # the wheel's argument order
    assert values(fake.VehicleControl(*positional)) == pytest.approx(values(real.VehicleControl(*positional)), abs=F32)
