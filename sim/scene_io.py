"""Versioned on-disk scene format (`*.scene.json.gz`) with a validating loader.

The file is gzip-compressed JSON (gzip mtime 0, sorted keys) so the same scene always gives the same bytes. Arrays
are stored as {"dtype", "shape", "b64"} with little-endian raw bytes, which round-trips floats exactly. The loader
checks the version, every required field and every shape, and names the offending field in its error.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from irlvla.atomic import atomic_write_bytes
from sim.scene import Agents, Area, EgoParams, Lane, MapData, MarkingType, Route, Scene, TrafficLight

FORMAT_NAME = "irlvla-scene"
FORMAT_VERSION = 1
SUFFIX = ".scene.json.gz"


class SceneFormatError(ValueError):
    """A scene file is malformed, truncated, of an unknown version, or inconsistent."""


# ---- encoding ----
def _arr(a: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(a)
    dt = a.dtype.newbyteorder("<") if a.dtype.byteorder not in ("|", "<", "=") else a.dtype
    return {"dtype": dt.str, "shape": list(a.shape), "b64": base64.b64encode(a.astype(dt).tobytes()).decode("ascii")}


def _lane(lane: Lane) -> dict[str, Any]:
    return {
        "id": lane.id,
        "centerline": _arr(lane.centerline),
        "left_boundary": _arr(lane.left_boundary),
        "right_boundary": _arr(lane.right_boundary),
        "roadblock_id": lane.roadblock_id,
        "speed_limit": lane.speed_limit,
        "successors": list(lane.successors),
        "predecessors": list(lane.predecessors),
        "is_connector": lane.is_connector,
        "left_neighbor": lane.left_neighbor,
        "right_neighbor": lane.right_neighbor,
        "left_marking": int(lane.left_marking),
        "right_marking": int(lane.right_marking),
        "traffic_light_id": lane.traffic_light_id,
    }


def _area(a: Area) -> dict[str, Any]:
    return {"id": a.id, "polygon_xy": _arr(a.polygon_xy), "lane_ids": list(a.lane_ids)}


_AREA_LAYERS = ("roadblocks", "intersections", "crosswalks", "carparks", "walkways", "stop_lines")


def scene_to_dict(scene: Scene) -> dict[str, Any]:
    m = scene.map
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "token": scene.token,
        "scenario": scene.scenario,
        "seed": int(scene.seed),
        "timestamps": _arr(scene.timestamps),
        "current_index": int(scene.current_index),
        "map": {
            "lanes": [_lane(lane) for lane in m.lanes.values()],
            **{layer: [_area(a) for a in getattr(m, layer).values()] for layer in _AREA_LAYERS},
        },
        "agents": {
            "ids": list(scene.agents.ids),
            "types": _arr(scene.agents.types),
            "sizes": _arr(scene.agents.sizes),
            "states": _arr(scene.agents.states),
            "valid": _arr(scene.agents.valid),
        },
        "traffic_lights": [
            {
                "id": tl.id,
                "connector_ids": list(tl.connector_ids),
                "states": _arr(tl.states),
                "position": _arr(tl.position),
                "facing": tl.facing,
            }
            for tl in scene.traffic_lights
        ],
        "ego": _arr(scene.ego),
        "ego_params": {
            k: getattr(scene.ego_params, k) for k in ("width", "front_length", "rear_length", "wheelbase", "height")
        },
        "route": {"lane_ids": list(scene.route.lane_ids), "centerline": _arr(scene.route.centerline)},
        "metadata": scene.metadata,
    }


def scene_to_bytes(scene: Scene) -> bytes:
    text = json.dumps(scene_to_dict(scene), sort_keys=True, separators=(",", ":"), allow_nan=False)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=6) as gz:
        gz.write(text.encode("utf-8"))
    return buf.getvalue()


def save_scene(scene: Scene, path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.name.endswith(SUFFIX):
        path = path.with_name(path.name + SUFFIX)
    atomic_write_bytes(path, scene_to_bytes(scene))
    return path


# ---- decoding with validation ----
class _Reader:
    def __init__(self, data: Any, where: str) -> None:
        self.data, self.where = data, where

    def _get(self, key: str) -> Any:
        if not isinstance(self.data, dict):
            raise SceneFormatError(f"{self.where}: expected an object, got {type(self.data).__name__}")
        if key not in self.data:
            raise SceneFormatError(f"{self.where}.{key}: missing required field")
        return self.data[key]

    def sub(self, key: str) -> _Reader:
        return _Reader(self._get(key), f"{self.where}.{key}")

    def items(self, key: str) -> list[_Reader]:
        v = self._get(key)
        if not isinstance(v, list):
            raise SceneFormatError(f"{self.where}.{key}: expected a list, got {type(v).__name__}")
        return [_Reader(x, f"{self.where}.{key}[{i}]") for i, x in enumerate(v)]

    def typed(self, key: str, types: type | tuple[type, ...], optional: bool = False) -> Any:
        v = self._get(key) if not optional else (self.data.get(key) if isinstance(self.data, dict) else None)
        if v is None and optional:
            return None
        if isinstance(v, bool) and types in (int, float, (int, float)):
            raise SceneFormatError(f"{self.where}.{key}: expected a number, got a boolean")
        if not isinstance(v, types):
            raise SceneFormatError(f"{self.where}.{key}: expected {types}, got {type(v).__name__}")
        return v

    def array(self, key: str, ndim: int | None = None, last: int | None = None) -> np.ndarray:
        v = self._get(key)
        where = f"{self.where}.{key}"
        if not isinstance(v, dict) or not {"dtype", "shape", "b64"} <= set(v):
            raise SceneFormatError(f"{where}: expected an encoded array with dtype, shape and b64")
        try:
            dt = np.dtype(v["dtype"])
            shape = tuple(int(s) for s in v["shape"])
            raw = base64.b64decode(v["b64"], validate=True)
            arr = np.frombuffer(raw, dtype=dt).reshape(shape).astype(dt.newbyteorder("="))
        except (TypeError, ValueError) as exc:
            raise SceneFormatError(f"{where}: cannot decode array ({exc})") from None
        if ndim is not None and arr.ndim != ndim:
            raise SceneFormatError(f"{where}: expected {ndim} dimensions, got shape {arr.shape}")
        if last is not None and arr.shape[-1] != last:
            raise SceneFormatError(f"{where}: expected last dimension {last}, got shape {arr.shape}")
        return arr


def _read_lane(r: _Reader) -> Lane:
    return Lane(
        id=r.typed("id", str),
        centerline=r.array("centerline", 2, 2),
        left_boundary=r.array("left_boundary", 2, 2),
        right_boundary=r.array("right_boundary", 2, 2),
        roadblock_id=r.typed("roadblock_id", str),
        speed_limit=float(r.typed("speed_limit", (int, float))),
        successors=tuple(r.typed("successors", list)),
        predecessors=tuple(r.typed("predecessors", list)),
        is_connector=bool(r.typed("is_connector", bool)),
        left_neighbor=r.typed("left_neighbor", str, optional=True),
        right_neighbor=r.typed("right_neighbor", str, optional=True),
        left_marking=MarkingType(r.typed("left_marking", int)),
        right_marking=MarkingType(r.typed("right_marking", int)),
        traffic_light_id=r.typed("traffic_light_id", str, optional=True),
    )


def _read_area(r: _Reader) -> Area:
    return Area(r.typed("id", str), r.array("polygon_xy", 2, 2), tuple(r.typed("lane_ids", list)))


def _wrap(where: str, fn, *args):
    try:
        return fn(*args)
    except SceneFormatError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise SceneFormatError(f"{where}: {exc}") from None


def scene_from_dict(data: Any, source: str = "scene") -> Scene:
    r = _Reader(data, source)
    fmt = r.typed("format", str)
    if fmt != FORMAT_NAME:
        raise SceneFormatError(f"{source}.format: expected {FORMAT_NAME!r}, got {fmt!r}")
    version = r.typed("version", int)
    if version != FORMAT_VERSION:
        raise SceneFormatError(
            f"{source}.version: unknown scene format version {version} (this build reads version {FORMAT_VERSION})"
        )
    mr = r.sub("map")
    lanes = {}
    for lr in mr.items("lanes"):
        lane = _wrap(lr.where, _read_lane, lr)
        if lane.id in lanes:
            raise SceneFormatError(f"{lr.where}.id: duplicate lane id {lane.id!r}")
        lanes[lane.id] = lane
    layers = {}
    for layer in _AREA_LAYERS:
        layers[layer] = {}
        for ar in mr.items(layer):
            a = _wrap(ar.where, _read_area, ar)
            layers[layer][a.id] = a
    map_data = _wrap(f"{source}.map", lambda: MapData(lanes, **layers))
    ar = r.sub("agents")
    agents = _wrap(
        ar.where,
        Agents,
        tuple(ar.typed("ids", list)),
        ar.array("types", 1),
        ar.array("sizes", 2, 3),
        ar.array("states", 3, 5),
        ar.array("valid", 2),
    )
    lights = []
    for tr in r.items("traffic_lights"):
        lights.append(
            _wrap(
                tr.where,
                TrafficLight,
                tr.typed("id", str),
                tuple(tr.typed("connector_ids", list)),
                tr.array("states", 1),
                tr.array("position", 1),
                float(tr.typed("facing", (int, float))),
            )
        )
    epr = r.sub("ego_params")
    ego_params = _wrap(
        epr.where,
        EgoParams,
        *(float(epr.typed(k, (int, float))) for k in ("width", "front_length", "rear_length", "wheelbase", "height")),
    )
    rr = r.sub("route")
    route = _wrap(rr.where, Route, tuple(rr.typed("lane_ids", list)), rr.array("centerline", 2, 3))
    return _wrap(
        source,
        Scene,
        r.typed("token", str),
        r.typed("scenario", str),
        int(r.typed("seed", int)),
        r.array("timestamps", 1),
        int(r.typed("current_index", int)),
        map_data,
        agents,
        tuple(lights),
        r.array("ego", 2, 8),
        route,
        ego_params,
        dict(r.typed("metadata", dict)),
    )


def scene_from_bytes(data: bytes, source: str = "scene") -> Scene:
    try:
        text = gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise SceneFormatError(
            f"{source}: not a complete gzip file ({exc}); the file is truncated or corrupt"
        ) from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SceneFormatError(f"{source}: malformed JSON ({exc})") from None
    return scene_from_dict(obj, source)


def load_scene(path: str | os.PathLike) -> Scene:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scene file not found: {path}")
    return scene_from_bytes(path.read_bytes(), source=path.name)


def list_scene_files(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"scene folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.name.endswith(SUFFIX))
