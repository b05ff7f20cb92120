"""The CARLA Python API's data types, for running leaderboard agents without the `carla` wheel.

The closed-loop runner registers this module as `carla` (see `sim.closed_loop.shims`) when the real wheel is not
installed, so an agent file's `import carla` and `carla.VehicleControl(...)` work unchanged. Only data types exist
here: Vector3D/Location, Rotation, Transform (with CARLA's forward and right vectors for a left-handed frame) and
VehicleControl; semantics follow the CARLA 0.9.x documentation.
"""

from __future__ import annotations

import math


class Vector3D:
    def __init__(self, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> None:
        self.x, self.y, self.z = float(x), float(y), float(z)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(x={self.x:.6f}, y={self.y:.6f}, z={self.z:.6f})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Vector3D) and (self.x, self.y, self.z) == (other.x, other.y, other.z)

    def __add__(self, o: Vector3D) -> Vector3D:
        return type(self)(self.x + o.x, self.y + o.y, self.z + o.z)

    def __sub__(self, o: Vector3D) -> Vector3D:
        return type(self)(self.x - o.x, self.y - o.y, self.z - o.z)

    def length(self) -> float:
        return math.sqrt(self.x * self.x + self.y * self.y + self.z * self.z)


class Location(Vector3D):
    def distance(self, other: Location) -> float:
        return (self - other).length()


class Rotation:
    """Degrees; CARLA's left-handed convention (yaw positive turns right seen from above)."""

    def __init__(self, pitch: float = 0.0, yaw: float = 0.0, roll: float = 0.0) -> None:
        self.pitch, self.yaw, self.roll = float(pitch), float(yaw), float(roll)

    def get_forward_vector(self) -> Vector3D:
        cp, sp = math.cos(math.radians(self.pitch)), math.sin(math.radians(self.pitch))
        cy, sy = math.cos(math.radians(self.yaw)), math.sin(math.radians(self.yaw))
        return Vector3D(cp * cy, cp * sy, sp)

    def get_right_vector(self) -> Vector3D:
        cp, sp = math.cos(math.radians(self.pitch)), math.sin(math.radians(self.pitch))
        cy, sy = math.cos(math.radians(self.yaw)), math.sin(math.radians(self.yaw))
        cr, sr = math.cos(math.radians(self.roll)), math.sin(math.radians(self.roll))
        return Vector3D(cy * sp * sr - sy * cr, sy * sp * sr + cy * cr, -cp * sr)

    def __repr__(self) -> str:
        return f"Rotation(pitch={self.pitch:.6f}, yaw={self.yaw:.6f}, roll={self.roll:.6f})"


class Transform:
    def __init__(self, location: Location | None = None, rotation: Rotation | None = None) -> None:
        self.location = location if location is not None else Location()
        self.rotation = rotation if rotation is not None else Rotation()

    def get_forward_vector(self) -> Vector3D:
        return self.rotation.get_forward_vector()

    def get_right_vector(self) -> Vector3D:
        return self.rotation.get_right_vector()


class VehicleControl:
    def __init__(
        self,
        throttle: float = 0.0,
        steer: float = 0.0,
        brake: float = 0.0,
        hand_brake: bool = False,
        reverse: bool = False,
        manual_gear_shift: bool = False,
        gear: int = 0,
    ) -> None:
        self.throttle = float(throttle)
        self.steer = float(steer)
        self.brake = float(brake)
        self.hand_brake = bool(hand_brake)
        self.reverse = bool(reverse)
        self.manual_gear_shift = bool(manual_gear_shift)
        self.gear = int(gear)

    def __repr__(self) -> str:
        return f"VehicleControl(throttle={self.throttle:.6f}, steer={self.steer:.6f}, brake={self.brake:.6f})"


FAKE = True
