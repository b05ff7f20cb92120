"""metric_info.json: journal + atomic materialisation in the comfort tool's format."""

from __future__ import annotations

import json

import carla
import pytest

from bench2drive_eval import comfort
from team_code.metric_log import MetricLogger, materialize, metric_info_from_actor, read_journal


def _rec(i):
    return {
        "acceleration": [i, 0.0, 0.0],
        "angular_velocity": [0.0, 0.0, 1.0],
        "forward_vector": [1.0, 0.0, 0.0],
        "right_vector": [0.0, 1.0, 0.0],
        "location": [float(i), 2.0, 0.0],
        "rotation": [0.0, 0.0, 90.0],
    }


def test_incremental_and_final_files(tmp_path):
    ml = MetricLogger(tmp_path / "route", flush_every=2)
    ml.append(0, _rec(0))
    assert not (tmp_path / "route" / "metric_info.json").exists()
    ml.append(1, _rec(1))
    first = json.loads((tmp_path / "route" / "metric_info.json").read_text())
    assert list(first) == ["0", "1"]
    for i in range(2, 5):
        ml.append(i, _rec(i))
    ml.close()
    data = json.loads((tmp_path / "route" / "metric_info.json").read_text())
    assert list(data) == ["0", "1", "2", "3", "4"]
    assert data["3"]["location"] == [3.0, 2.0, 0.0] and data["4"]["rotation"] == [0.0, 0.0, 90.0]
    assert len((tmp_path / "route" / "metric_info.jsonl").read_text().splitlines()) == 5
    assert not list((tmp_path / "route").glob("*.tmp"))
    with pytest.raises(RuntimeError):
        ml.append(5, _rec(5))


def test_journal_survives_a_torn_line_and_rebuilds(tmp_path):
    ml = MetricLogger(tmp_path, flush_every=100)
    for i in range(3):
        ml.append(i, _rec(i))
    ml._journal.write('{"step": 3, "info": {"accel')  # killed mid-write
    ml._journal.flush()
    assert list(read_journal(tmp_path / "metric_info.jsonl")) == ["0", "1", "2"]
    out = materialize(tmp_path / "metric_info.jsonl")
    assert list(json.loads(out.read_text())) == ["0", "1", "2"]


def test_record_validation(tmp_path):
    ml = MetricLogger(tmp_path)
    with pytest.raises(ValueError, match="missing"):
        ml.append(0, {"acceleration": [0, 0, 0]})
    bad = _rec(0)
    bad["location"] = [1.0, 2.0]
    with pytest.raises(ValueError, match="3 values"):
        ml.append(0, bad)


def test_readable_by_comfort_metric(tmp_path):
    ml = MetricLogger(tmp_path, flush_every=10)
    for i in range(30):
        ml.append(i, _rec(0))
    ml.close()
    k = comfort.Kinematics.from_metric_info(json.loads((tmp_path / "metric_info.json").read_text()))
    assert len(k) == 30


class _Actor:
    def get_transform(self):
        return carla.Transform(carla.Location(1.0, 2.0, 0.5), carla.Rotation(pitch=0.0, yaw=90.0, roll=0.0))

    def get_acceleration(self):
        return carla.Vector3D(0.5, -0.25, 0.0)

    def get_angular_velocity(self):
        return carla.Vector3D(0.0, 0.0, 12.0)


def test_metric_info_from_actor():
    info = metric_info_from_actor(_Actor())
    assert info["location"] == [1.0, 2.0, 0.5]
    assert info["rotation"] == [0.0, 0.0, 90.0]
    assert info["forward_vector"] == pytest.approx([0.0, 1.0, 0.0], abs=1e-6)
    assert info["right_vector"] == pytest.approx([-1.0, 0.0, 0.0], abs=1e-6)  # yaw 90: right of +y is -x (CARLA)
    assert info["acceleration"] == [0.5, -0.25, 0.0] and info["angular_velocity"] == [0.0, 0.0, 12.0]
