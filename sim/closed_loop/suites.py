"""Versioned, seeded route suites and the seed ranges reserved for evaluation.

Training must never see an evaluation scene: data sets draw their scene seeds outside `RESERVED_SEED_RANGES`
(check with `is_reserved`). A suite is a Bench2Drive-format route XML (`routes/<name>_v<VERSION>.xml`, shipped with
the package) whose `<route>` elements also carry our `family`, `seed` and `abilities` attributes; the scene is
regenerated from (family, seed) at run time, and the stored waypoints (CARLA frame, every 5 m) let a run check that
it drives the same route the file was written with. Bump `SUITE_VERSION` whenever the world or the scenario
generator changes what a (family, seed) produces, and rewrite the files:

    python -m sim.closed_loop.suites --write
"""

from __future__ import annotations

import argparse
import logging
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from sim.closed_loop.route import RouteSpec, build_route

logger = logging.getLogger(__name__)

SUITE_VERSION = 2  # 2: Give Way (yield_emergency) replaces lane_change in dev and joins the held-out suite
#: scene seeds of the dev suite (10 routes, runs in CI) and of the held-out suite; training seeds avoid both.
DEV_SEEDS = range(2_000_000_000, 2_000_000_100)
HELDOUT_SEEDS = range(2_000_001_000, 2_000_002_000)
RESERVED_SEED_RANGES: tuple[range, ...] = (DEV_SEEDS, HELDOUT_SEEDS)

#: the dev suite's families, one route each: the five Bench2Drive abilities all appear (Give Way through
#: yield_emergency, which took the place of lane_change, a second Overtaking route, in version 2).
DEV_FAMILIES = (
    "cut_in",
    "hard_brake",
    "pedestrian_crossing",
    "red_light",
    "intersection",
    "t_junction",
    "static_obstacle",
    "yield_emergency",
    "merge",
    "curve",
)
#: held-out families in their version-1 order (so their seeds are unchanged), the new ones appended.
HELDOUT_FAMILIES = (*DEV_FAMILIES[:7], "lane_change", *DEV_FAMILIES[8:], "straight_road", "yield_emergency")
HELDOUT_PER_FAMILY = 4
SUITES = ("dev", "heldout")
SUITE_DIR = Path(__file__).resolve().parent / "routes"
WAYPOINT_SPACING_M = 5.0


def is_reserved(seed: int) -> bool:
    """True if `seed` belongs to an evaluation suite (training data must not use it)."""
    return any(int(seed) in r for r in RESERVED_SEED_RANGES)


def suite_specs(name: str) -> list[RouteSpec]:
    """The routes of a named suite (ids 9000+ for dev, 9100+ for held-out)."""
    if name == "dev":
        return [RouteSpec(9000 + i, fam, DEV_SEEDS[i]) for i, fam in enumerate(DEV_FAMILIES)]
    if name == "heldout":
        out = []
        for i, fam in enumerate(HELDOUT_FAMILIES):
            for k in range(HELDOUT_PER_FAMILY):
                n = i * HELDOUT_PER_FAMILY + k
                out.append(RouteSpec(9100 + n, fam, HELDOUT_SEEDS[n]))
        return out
    raise ValueError(f"unknown suite {name!r}; choose from {SUITES} or give a route XML")


def suite_path(name: str) -> Path:
    return SUITE_DIR / f"{name}_v{SUITE_VERSION}.xml"


def _abilities(stype: str) -> list[str]:
    from bench2drive_eval.abilities import ABILITY_TYPES

    return [a for a, types in ABILITY_TYPES.items() if stype in types]


def suite_xml(name: str, specs: list[RouteSpec]) -> bytes:
    """The route file of `specs`: Bench2Drive's XML layout plus family / seed / abilities attributes."""
    root = ET.Element("routes", {"suite": name, "version": str(SUITE_VERSION)})
    for spec in specs:
        route = build_route(spec)
        stype = route.scenario_type
        el = ET.SubElement(
            root,
            "route",
            {
                "id": str(spec.route_id),
                "town": spec.town,
                "family": spec.family,
                "seed": str(spec.seed),
                "max_length": f"{spec.max_length_m:g}",
                "abilities": ",".join(_abilities(stype)),
            },
        )
        weathers = ET.SubElement(el, "weathers")
        for pct in ("0", "100"):
            ET.SubElement(weathers, "weather", {"route_percentage": pct, "cloudiness": "5.0", "precipitation": "0.0",
                                                 "sun_altitude_angle": "45.0"})  # fmt: skip
        wps = ET.SubElement(el, "waypoints")
        step = max(int(round(WAYPOINT_SPACING_M)), 1)
        idx = list(range(0, len(route.points), step))
        if idx[-1] != len(route.points) - 1:
            idx.append(len(route.points) - 1)
        for i in idx:
            x, y = route.points[i]
            ET.SubElement(wps, "position", {"x": f"{x:.3f}", "y": f"{-y:.3f}", "z": "0.000"})
        scen = ET.SubElement(el, "scenarios")
        sc = ET.SubElement(scen, "scenario", {"name": f"{stype}_1", "type": stype})
        x, y = route.points[0]
        ET.SubElement(sc, "trigger_point", {"x": f"{x:.3f}", "y": f"{-y:.3f}", "z": "0.000",
                                            "yaw": f"{-np.degrees(route.headings[0]):.3f}"})  # fmt: skip
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def load_suite(name_or_path: str) -> tuple[list[RouteSpec], Path, dict[int, np.ndarray]]:
    """(route specs, route file, stored waypoints per route id in our frame) of a suite name or route XML.

    Raises `bench2drive_eval.routes.RouteFileError` for a file that does not parse or lacks family / seed."""
    from bench2drive_eval.routes import RouteFileError, parse_routes

    path = suite_path(name_or_path) if name_or_path in SUITES else Path(name_or_path)
    routes = parse_routes(path)
    specs, waypoints = [], {}
    for r in routes:
        fam, seed = r.element.get("family"), r.element.get("seed")
        if not fam or seed is None or not seed.strip().isdigit():
            raise RouteFileError(f"{path}: route {r.id} needs 'family' and an integer 'seed' attribute")
        try:
            spec = RouteSpec(int(r.id), fam, int(seed), float(r.element.get("max_length", 250.0)), r.town)
        except ValueError as e:
            raise RouteFileError(f"{path}: route {r.id}: {e}") from None
        specs.append(spec)
        wp = r.waypoints[:, :2].copy()
        wp[:, 1] = -wp[:, 1]
        waypoints[spec.route_id] = wp
    ids = [s.route_id for s in specs]
    if len(set(ids)) != len(ids):
        raise RouteFileError(f"{path}: duplicate route ids")
    return specs, path, waypoints


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write the closed-loop route suites")
    parser.add_argument("--write", action="store_true", help="regenerate routes/<name>_v<VERSION>.xml")
    parser.add_argument("--suites", nargs="+", default=list(SUITES))
    args = parser.parse_args(argv)
    if not args.write:
        parser.print_help()
        return 2
    from irlvla.atomic import atomic_write_bytes

    for name in args.suites:
        path = suite_path(name)
        atomic_write_bytes(path, suite_xml(name, suite_specs(name)))
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
