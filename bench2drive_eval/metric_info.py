"""Bench2Drive's per-route `metric_info.json` record: the six signals its `get_metric_info()` reads from the hero.

One definition for the CARLA adapter's metric log (`team_code/metric_log.py`) and the closed-loop world's recorder
(`sim/closed_loop/`), which both write these records for `bench2drive_eval.comfort` to read.
"""

from __future__ import annotations

#: the keys of one step's record, in Bench2Drive's order (vectors as [x, y, z], rotation as [roll, pitch, yaw]).
METRIC_KEYS = ("acceleration", "angular_velocity", "forward_vector", "right_vector", "location", "rotation")


def metric_info_from_actor(actor) -> dict[str, list[float]]:
    """The six signals of Bench2Drive's `get_metric_info()`, read from a CARLA vehicle (or any look-alike)."""

    def vec(v) -> list[float]:
        return [float(v.x), float(v.y), float(v.z)]

    tf = actor.get_transform()
    rot = tf.rotation
    return {
        "acceleration": vec(actor.get_acceleration()),
        "angular_velocity": vec(actor.get_angular_velocity()),
        "forward_vector": vec(tf.get_forward_vector()),
        "right_vector": vec(tf.get_right_vector()),
        "location": vec(tf.location),
        "rotation": [float(rot.roll), float(rot.pitch), float(rot.yaw)],
    }
