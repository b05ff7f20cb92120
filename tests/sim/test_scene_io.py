"""The on-disk scene format: exact round trips, stable bytes, atomic writes and errors that name the bad field."""

from __future__ import annotations

import base64
import gzip
import json

import numpy as np
import pytest

from sim.scenarios import generate_scene
from sim.scene_io import (
    FORMAT_VERSION,
    SUFFIX,
    SceneFormatError,
    list_scene_files,
    load_scene,
    save_scene,
    scene_from_bytes,
    scene_from_dict,
    scene_to_bytes,
    scene_to_dict,
)


@pytest.fixture(scope="module")
def scene():
    return generate_scene("intersection", 1)


def _gz(obj) -> bytes:
    return gzip.compress(json.dumps(obj).encode(), mtime=0)


def test_round_trip_is_exact(scene, tmp_path):
    path = save_scene(scene, tmp_path / scene.token)
    assert path.name == scene.token + SUFFIX
    back = load_scene(path)
    assert back.token == scene.token and back.scenario == scene.scenario and back.seed == scene.seed
    assert back.current_index == scene.current_index
    np.testing.assert_array_equal(back.timestamps, scene.timestamps)
    np.testing.assert_array_equal(back.ego, scene.ego)
    assert back.agents.ids == scene.agents.ids
    np.testing.assert_array_equal(back.agents.types, scene.agents.types)
    np.testing.assert_array_equal(back.agents.sizes, scene.agents.sizes)
    np.testing.assert_array_equal(back.agents.states, scene.agents.states)
    np.testing.assert_array_equal(back.agents.valid, scene.agents.valid)
    assert back.agents.valid.dtype == bool
    assert list(back.map.lanes) == list(scene.map.lanes)
    for lid, lane in scene.map.lanes.items():
        other = back.map.lanes[lid]
        np.testing.assert_array_equal(other.centerline, lane.centerline)
        np.testing.assert_array_equal(other.left_boundary, lane.left_boundary)
        assert other.successors == lane.successors and other.traffic_light_id == lane.traffic_light_id
        assert other.left_marking == lane.left_marking and other.is_connector == lane.is_connector
    for layer in ("roadblocks", "intersections", "crosswalks", "carparks", "walkways", "stop_lines"):
        a, b = getattr(scene.map, layer), getattr(back.map, layer)
        assert list(a) == list(b)
        for k in a:
            np.testing.assert_array_equal(a[k].polygon_xy, b[k].polygon_xy)
    assert [tl.id for tl in back.traffic_lights] == [tl.id for tl in scene.traffic_lights]
    for x, y in zip(scene.traffic_lights, back.traffic_lights):
        np.testing.assert_array_equal(x.states, y.states)
        assert x.connector_ids == y.connector_ids
    assert back.route.lane_ids == scene.route.lane_ids
    np.testing.assert_array_equal(back.route.centerline, scene.route.centerline)
    assert back.metadata == scene.metadata
    assert back.ego_params == scene.ego_params
    # re-saving the loaded scene gives the very same bytes
    assert scene_to_bytes(back) == path.read_bytes() == scene_to_bytes(scene)


def test_atomic_write_leaves_no_temporaries(scene, tmp_path):
    save_scene(scene, tmp_path / "a")
    save_scene(scene, tmp_path / "a")  # overwrite in place
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["a" + SUFFIX]
    assert list_scene_files(tmp_path) == [tmp_path / ("a" + SUFFIX)]


def test_truncated_file_is_reported(scene, tmp_path):
    data = scene_to_bytes(scene)
    path = tmp_path / ("cut" + SUFFIX)
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SceneFormatError, match="truncated"):
        load_scene(path)


def test_not_json_is_reported():
    with pytest.raises(SceneFormatError, match="malformed JSON"):
        scene_from_bytes(gzip.compress(b"{not json"))


def test_unknown_version_is_reported(scene):
    d = json.loads(json.dumps(scene_to_dict(scene)))
    d["version"] = FORMAT_VERSION + 41
    with pytest.raises(SceneFormatError, match=r"version.*unknown scene format version 42"):
        scene_from_bytes(_gz(d))


def test_wrong_format_name_is_reported(scene):
    d = json.loads(json.dumps(scene_to_dict(scene)))
    d["format"] = "something-else"
    with pytest.raises(SceneFormatError, match=r"\.format"):
        scene_from_dict(d)


def test_missing_field_is_named(scene):
    d = json.loads(json.dumps(scene_to_dict(scene)))
    del d["agents"]["states"]
    with pytest.raises(SceneFormatError, match=r"agents\.states: missing required field"):
        scene_from_dict(d)
    d = json.loads(json.dumps(scene_to_dict(scene)))
    del d["map"]["lanes"][3]["centerline"]
    with pytest.raises(SceneFormatError, match=r"map\.lanes\[3\]\.centerline"):
        scene_from_dict(d)


def test_wrong_shape_is_named(scene):
    d = json.loads(json.dumps(scene_to_dict(scene)))
    ego = scene.ego[:, :7].copy()
    d["ego"] = {"dtype": "<f8", "shape": list(ego.shape), "b64": base64.b64encode(ego.tobytes()).decode()}
    with pytest.raises(SceneFormatError, match=r"\.ego"):
        scene_from_dict(d)


def test_bad_array_payload_is_named(scene):
    d = json.loads(json.dumps(scene_to_dict(scene)))
    d["timestamps"]["b64"] = "!!!not base64!!!"
    with pytest.raises(SceneFormatError, match=r"timestamps: cannot decode"):
        scene_from_dict(d)
    d = json.loads(json.dumps(scene_to_dict(scene)))
    d["timestamps"]["shape"] = [7]  # does not match the payload length
    with pytest.raises(SceneFormatError, match=r"timestamps"):
        scene_from_dict(d)


def test_inconsistent_references_are_named(scene):
    d = json.loads(json.dumps(scene_to_dict(scene)))
    d["map"]["lanes"][0]["successors"] = ["no_such_lane"]
    with pytest.raises(SceneFormatError, match="no_such_lane"):
        scene_from_dict(d)
    d = json.loads(json.dumps(scene_to_dict(scene)))
    d["route"]["lane_ids"] = ["ghost"]
    with pytest.raises(SceneFormatError, match="ghost"):
        scene_from_dict(d)


def test_wrong_type_is_named(scene):
    d = json.loads(json.dumps(scene_to_dict(scene)))
    d["current_index"] = "twenty"
    with pytest.raises(SceneFormatError, match="current_index"):
        scene_from_dict(d)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_scene(tmp_path / "nope.scene.json.gz")
    with pytest.raises(FileNotFoundError):
        list_scene_files(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "field, message",
    [
        ("ego", "scene: scene.ego: NaN or infinite values"),
        ("agents.sizes", "scene.agents: agents.sizes: every length, width and height must be positive"),
        (
            "traffic_lights.0.position",
            "scene.traffic_lights[0]: traffic light tl0_main: position and facing must be",
        ),
        ("route.centerline", "scene.route: route.centerline: NaN or infinite values"),
    ],
)
def test_non_finite_numbers_are_named(scene, field, message):
    d = json.loads(json.dumps(scene_to_dict(scene)))
    node = d
    *parents, leaf = field.split(".")
    for k in parents:
        node = node[int(k)] if k.isdigit() else node[k]
    enc = node[leaf]
    a = np.frombuffer(base64.b64decode(enc["b64"]), dtype=enc["dtype"]).reshape(enc["shape"]).copy()
    a.flat[0] = np.nan
    node[leaf] = {"dtype": enc["dtype"], "shape": enc["shape"], "b64": base64.b64encode(a.tobytes()).decode()}
    with pytest.raises(SceneFormatError) as info:
        scene_from_dict(d)
    assert str(info.value).startswith(message)
