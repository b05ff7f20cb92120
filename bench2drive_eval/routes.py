"""Leaderboard route XML: parse, validate and split into shards.

Route files are edited by hand (removing a route that always crashes is the official workaround), so every error
names the file and the line of the offending ``<route>``.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import xml.etree.ElementTree as ET
import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from irlvla.atomic import atomic_write_bytes

log = logging.getLogger(__name__)


class RouteFileError(ValueError):
    """A route file that the leaderboard would reject or misread."""


@dataclass(frozen=True)
class Scenario:
    """One ``<scenario>`` of a route: the ability tables key on ``type``."""

    name: str
    type: str


@dataclass(frozen=True, eq=False)
class Route:
    """One validated ``<route>``; ``element`` is kept so shards are written back unchanged."""

    id: str
    town: str
    waypoints: np.ndarray
    scenarios: tuple[Scenario, ...]
    weathers: tuple[dict[str, float], ...]
    line: int
    element: ET.Element = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.waypoints.ndim != 2 or self.waypoints.shape[1] != 3:
            raise ValueError(f"route {self.id}: waypoints must have shape (N, 3), got {self.waypoints.shape}")

    @property
    def scenario_type(self) -> str | None:
        """Type of the first scenario: the one the official ability tool reads."""
        return self.scenarios[0].type if self.scenarios else None

    @property
    def length_m(self) -> float:
        """Polyline length through the keypoints (the leaderboard interpolates at 1 m, so this is a lower bound)."""
        return float(np.linalg.norm(np.diff(self.waypoints, axis=0), axis=1).sum())


def _route_lines(data: bytes) -> list[int]:
    """Line number of every ``<route>`` start tag, in document order (ElementTree keeps no line numbers)."""
    lines: list[int] = []
    parser = xml.parsers.expat.ParserCreate()

    def start(tag: str, _attrs: dict) -> None:
        if tag == "route":
            lines.append(parser.CurrentLineNumber)

    parser.StartElementHandler = start
    parser.Parse(data, True)
    return lines


def _float_attr(el: ET.Element, name: str, where: str) -> float:
    raw = el.get(name)
    if raw is None:
        raise RouteFileError(f"{where}: <{el.tag}> lacks attribute '{name}'")
    try:
        return float(raw)
    except ValueError:
        raise RouteFileError(f"{where}: <{el.tag}> attribute {name}={raw!r} is not a number") from None


def _parse_route(el: ET.Element, where: str) -> Route:
    rid = el.get("id")
    if not rid:
        raise RouteFileError(f"{where}: <route> lacks attribute 'id'")
    if not rid.strip().isdigit():
        raise RouteFileError(f"{where}: route id {rid!r} is not a non-negative integer")
    town = el.get("town")
    if not town:
        raise RouteFileError(f"{where}: route {rid} lacks attribute 'town'")
    wps_el = el.find("waypoints")
    if wps_el is None:
        raise RouteFileError(f"{where}: route {rid} has no <waypoints>")
    pts = [[_float_attr(p, k, where) for k in ("x", "y", "z")] for p in wps_el.findall("position")]
    if len(pts) < 2:
        raise RouteFileError(f"{where}: route {rid} needs at least 2 waypoints, got {len(pts)}")
    waypoints = np.asarray(pts, dtype=np.float64)
    if not np.isfinite(waypoints).all():
        raise RouteFileError(f"{where}: route {rid} has non-finite waypoint coordinates")
    scenarios = []
    sc_el = el.find("scenarios")
    for s in sc_el.findall("scenario") if sc_el is not None else []:
        name, stype = s.get("name"), s.get("type")
        if not name or not stype:
            raise RouteFileError(f"{where}: route {rid} has a <scenario> without 'name' or 'type'")
        scenarios.append(Scenario(name=name, type=stype))
    weathers = []
    w_el = el.find("weathers")
    for w in w_el.findall("weather") if w_el is not None else []:
        weathers.append({k: _float_attr(w, k, where) for k in w.attrib})
    return Route(
        id=rid.strip(),
        town=town,
        waypoints=waypoints,
        scenarios=tuple(scenarios),
        weathers=tuple(weathers),
        line=0,
        element=el,
    )


def parse_routes(path: str | os.PathLike, data: bytes | None = None) -> list[Route]:
    """Parse and validate a route file; raises `RouteFileError` naming file and line."""
    path = Path(path)
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise RouteFileError(f"{path}: cannot read route file: {exc}") from None
    try:
        root = ET.parse(io.BytesIO(data)).getroot()
    except ET.ParseError as exc:
        line, col = exc.position
        raise RouteFileError(f"{path}:{line}:{col}: malformed XML: {exc}") from None
    if root.tag != "routes":
        raise RouteFileError(f"{path}:1: root element must be <routes>, got <{root.tag}>")
    elements = root.findall("route")
    lines = _route_lines(data)
    if len(lines) != len(elements):  # nested <route> tags somewhere other than directly under <routes>
        raise RouteFileError(f"{path}: found <route> elements outside the top level of <routes>")
    routes: list[Route] = []
    seen: dict[str, int] = {}
    for el, line in zip(elements, lines):
        where = f"{path}:{line}"
        route = _parse_route(el, where)
        if route.id in seen:
            raise RouteFileError(f"{where}: duplicate route id {route.id} (first defined at line {seen[route.id]})")
        seen[route.id] = line
        routes.append(
            Route(route.id, route.town, route.waypoints, route.scenarios, route.weathers, line, route.element)
        )
    if not routes:
        raise RouteFileError(f"{path}: no <route> elements")
    return routes


def split_routes(routes: list[Route], num_shards: int) -> list[list[Route]]:
    """Contiguous near-equal chunks, the official ``split_xml`` order (the first ``len % n`` shards get one more)."""
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    num_shards = min(num_shards, len(routes))
    k, m = divmod(len(routes), num_shards)
    return [routes[i * k + min(i, m) : (i + 1) * k + min(i + 1, m)] for i in range(num_shards)]


def routes_to_xml(routes: list[Route]) -> bytes:
    """Serialise routes under a fresh ``<routes>`` root (elements deep-copied, attributes unchanged)."""
    root = ET.Element("routes")
    for r in routes:
        el = copy.deepcopy(r.element)
        el.tail = "\n"
        root.append(el)
    root.text = "\n"
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def write_routes(routes: list[Route], path: str | os.PathLike) -> Path:
    """Write a route file atomically."""
    path = Path(path)
    atomic_write_bytes(path, routes_to_xml(routes))
    return path
