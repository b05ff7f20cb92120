from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bench2drive_eval.routes import RouteFileError, parse_routes, routes_to_xml, split_routes, write_routes
from irlvla.shared_data import shared_path

DATA = shared_path("data", "bench2drive")

ROUTE = """  <route id="{id}" town="{town}">
    <waypoints>
      <position x="0.0" y="0.0" z="0.0" />
      <position x="3.0" y="4.0" z="0.0" />
      <position x="3.0" y="10.0" z="0.0" />
    </waypoints>
    <scenarios>
      <scenario name="{stype}_1" type="{stype}">
        <trigger_point x="0.0" y="0.0" yaw="0.0" z="0.0" />
      </scenario>
    </scenarios>
    <weathers>
      <weather route_percentage="0" cloudiness="5.0" />
      <weather route_percentage="100" cloudiness="5.0" />
    </weathers>
  </route>
"""


def xml(*routes: tuple[str, str, str]) -> bytes:
    body = "".join(ROUTE.format(id=i, town=t, stype=s) for i, t, s in routes)
    return f"<routes>\n{body}</routes>\n".encode()


def test_parse_small_file_fields() -> None:
    routes = parse_routes("x.xml", xml(("7", "Town01", "Accident"), ("9", "Town02", "ParkingExit")))
    assert [r.id for r in routes] == ["7", "9"]
    assert routes[0].town == "Town01" and routes[0].scenario_type == "Accident"
    assert routes[0].waypoints.shape == (3, 3)
    assert routes[0].length_m == pytest.approx(5.0 + 6.0)  # 3-4-5 triangle, then 6 m straight
    assert routes[0].weathers[1] == {"route_percentage": 100.0, "cloudiness": 5.0}
    assert routes[0].line == 2 and routes[1].line == 2 + ROUTE.count("\n")


def test_duplicate_id_names_both_lines() -> None:
    # line 1 is <routes>, the first route spans lines 2-17 (16 lines), so the second starts at line 18
    with pytest.raises(RouteFileError, match=r"x.xml:18: duplicate route id 7 \(first defined at line 2\)"):
        parse_routes("x.xml", xml(("7", "Town01", "Accident"), ("7", "Town02", "ParkingExit")))


def test_malformed_xml_gives_line() -> None:
    bad = xml(("7", "Town01", "Accident")).replace(b"</waypoints>", b"</waypoint>")
    with pytest.raises(RouteFileError, match=r"x.xml:7:\d+: malformed XML"):
        parse_routes("x.xml", bad)


@pytest.mark.parametrize(
    ("old", "new", "msg"),
    [
        (b'town="Town01"', b"", "lacks attribute 'town'"),
        (b'x="3.0" y="4.0"', b'x="abc" y="4.0"', "x='abc' is not a number"),
        (b'id="7"', b'id="r7"', "not a non-negative integer"),
    ],
)
def test_invalid_route_fields(old: bytes, new: bytes, msg: str) -> None:
    with pytest.raises(RouteFileError, match=msg):
        parse_routes("x.xml", xml(("7", "Town01", "Accident")).replace(old, new))


def test_split_is_contiguous_and_balanced() -> None:
    routes = parse_routes("x.xml", xml(*[(str(i), "Town01", "Accident") for i in range(10)]))
    shards = split_routes(routes, 3)
    assert [[r.id for r in s] for s in shards] == [["0", "1", "2", "3"], ["4", "5", "6"], ["7", "8", "9"]]
    assert len(split_routes(routes[:2], 5)) == 2  # never an empty shard


def test_write_round_trip(tmp_path: Path) -> None:
    routes = parse_routes("x.xml", xml(("7", "Town01", "Accident"), ("9", "Town02", "ParkingExit")))
    path = write_routes(routes[1:], tmp_path / "s.xml")
    again = parse_routes(path)
    assert [r.id for r in again] == ["9"]
    np.testing.assert_allclose(again[0].waypoints, routes[1].waypoints)
    assert routes_to_xml(again).startswith(b"<?xml")


@pytest.mark.skipif(not (DATA / "bench2drive220.xml").is_file(), reason="shared data absent")
def test_official_220_file() -> None:
    routes = parse_routes(DATA / "bench2drive220.xml")
    assert len(routes) == 220
    types = Counter(r.scenario_type for r in routes)
    assert len(types) == 44 and set(types.values()) == {5}
    towns = Counter(r.town for r in routes)
    assert towns["Town12"] == 104 and towns["Town13"] == 47
    dev = {r.id for r in parse_routes(DATA / "drivetransformer_bench2drive_dev10.xml")}
    assert len(dev) == 10 and dev <= {r.id for r in routes}
