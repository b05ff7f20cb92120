"""Per-scene map queries the scorer needs, vectorised over many points (held by the caller's `SceneCache`).

Two things follow NAVSIM's metric cache rather than our whole scene:
- The drivable map is `PDMDrivableMap.from_simulation(map_api, ego_state, 100)`: nuPlan's
  `get_proximal_map_objects` keeps roadblocks, intersections and car parks whose polygon intersects the axis-aligned
  square of half-side `map_radius` around the ego box centre at t = 0 (a square, not a disc), and the lanes are the
  interior lanes of the kept roadblocks (whatever their own extent). DAC, DDC (on-route lanes), the multiple-lanes
  test and every intersection test read this map only.
- The centreline (EP projection, LK distance and PDM-Closed's paths) is PDM-Closed's `_get_discrete_centerline`:
  a Dijkstra search over lane successors restricted to on-route lanes, from the starting lane to the last route
  roadblock of a 30-roadblock window, concatenating the lanes' centreline points. It never changes lanes inside a
  roadblock, unlike the scene route. Our `MapData` has the lane graph nuPlan's search needs (lane successors and
  `roadblock_id`); the route's roadblocks in driving order stand for `route_roadblock_ids`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from scipy.spatial import cKDTree

from agent.boxes import corners
from sim.scene import Scene

DEFAULT_MAP_RADIUS = 100.0  # MetricCacheProcessor._map_radius
DIJKSTRA_SEARCH_DEPTH = 30  # AbstractPDMPlanner._get_discrete_centerline


def _wrap(a):
    """navsim's `normalize_angle` (arctan2 of sin and cos: (-pi, pi])."""
    a = np.asarray(a)
    return np.arctan2(np.sin(a), np.cos(a))


def ego_box_centre(scene: Scene) -> np.ndarray:
    """The ego's box centre (2,) at the current frame (rear axle moved forward by `rear_axle_to_center`)."""
    x, y, h = scene.ego_pose()
    d = scene.ego_params.rear_axle_to_center
    return np.array([x + d * math.cos(h), y + d * math.sin(h)])


def proximal(polygons: list, centre: np.ndarray, radius: float | None) -> np.ndarray:
    """nuPlan's proximity test: which polygons intersect the square [centre +- radius] (all when radius is None)."""
    if radius is None or not polygons:
        return np.ones(len(polygons), dtype=bool)
    patch = shapely.box(centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius)
    return shapely.intersects(np.array(polygons, dtype=object), patch)


def route_roadblock_ids(scene: Scene) -> list[str]:
    """The route's roadblocks in driving order (NAVSIM's `route_roadblock_ids`, duplicates dropped)."""
    return list(dict.fromkeys(scene.map.lanes[i].roadblock_id for i in scene.route.lane_ids))


def route_lane_ids(scene: Scene) -> list[str]:
    """PDM-Closed's `route_lane_dict` order: route roadblocks in order, each with its lanes in map order."""
    by_block: dict[str, list[str]] = {}
    for lid, lane in scene.map.lanes.items():
        by_block.setdefault(lane.roadblock_id, []).append(lid)
    return [lid for rb in route_roadblock_ids(scene) for lid in by_block.get(rb, [])]


@dataclass(frozen=True)
class DiscretePath:
    """NAVSIM's `PDMPath`: poses (N, 3) with unwrapped headings, cumulative progress and a shapely line.

    Consecutive lanes share their end points, so progress may repeat; `interpolate` follows scipy's `interp1d`
    (left `searchsorted`), which never divides by a repeated progress value for distances inside the path.
    """

    poses: np.ndarray  # (N, 3) x, y, unwrapped heading
    progress: np.ndarray  # (N,)

    @classmethod
    def of(cls, poses: np.ndarray) -> DiscretePath:
        poses = np.array(poses, dtype=np.float64)
        if poses.ndim != 2 or poses.shape[1] != 3 or len(poses) < 2:
            raise ValueError(f"DiscretePath needs poses of shape (N >= 2, 3), got {poses.shape}")
        poses[:, 2] = np.unwrap(poses[:, 2])
        step = np.linalg.norm(np.diff(poses[:, :2], axis=0), axis=-1)
        return cls(poses, np.cumsum(np.r_[0.0, step]))

    @property
    def length(self) -> float:
        return float(self.progress[-1])

    def linestring(self) -> shapely.LineString:
        cached = self.__dict__.get("_line")
        if cached is None:
            cached = shapely.linestrings(self.poses[:, :2])
            object.__setattr__(self, "_line", cached)
        return cached

    def project(self, xy: np.ndarray) -> np.ndarray:
        """shapely `line_locate_point` of points (..., 2)."""
        xy = np.asarray(xy, dtype=np.float64)
        return shapely.line_locate_point(self.linestring(), shapely.points(xy.reshape(-1, 2))).reshape(xy.shape[:-1])

    def interpolate(self, distances: np.ndarray) -> np.ndarray:
        """Poses (..., 3) at the given progress values, clipped to [1e-5, length], headings wrapped to [-pi, pi)."""
        d = np.clip(np.asarray(distances, dtype=np.float64), 1e-5, self.length)
        hi = np.clip(np.searchsorted(self.progress, d, side="left"), 1, len(self.progress) - 1)
        lo = hi - 1
        x0, x1 = self.progress[lo], self.progress[hi]
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = (self.poses[hi] - self.poses[lo]) / (x1 - x0)[..., None]
            out = slope * (d - x0)[..., None] + self.poses[lo]
        out[..., 2] = _wrap(out[..., 2])
        out[np.isnan(out)] = 0.0
        return out

    def offset(self, lateral: float) -> DiscretePath:
        """`parallel_discrete_path`: every pose moved `lateral` m to its left, headings kept."""
        p = self.poses.copy()
        p[:, 0] += np.cos(p[:, 2] + np.pi / 2) * lateral
        p[:, 1] += np.sin(p[:, 2] + np.pi / 2) * lateral
        return DiscretePath.of(p)

    def substring(self, start: float, end: float) -> shapely.LineString:
        """`PDMPath.substring`: the vertices with progress in [start, end], or shapely's substring if < 2 of them."""
        start = float(np.clip(start, 0.0, self.length))
        end = float(np.clip(end, 0.0, self.length))
        keep = (start <= self.progress) & (self.progress <= end)
        if keep.sum() > 1:
            return shapely.LineString(self.poses[keep, :2])
        from shapely.ops import substring

        return substring(self.linestring(), start, end)


def starting_lane(scene: Scene, kept_lanes: list[str], route_lanes: list[str]) -> str:
    """`_get_starting_lane`: the on-route lane under the rear axle with the lowest heading error, else the on-route
    lane containing the box centre or closest to the ego footprint."""
    m = scene.map
    x, y, h = scene.ego_pose()
    on_route = set(route_lanes)
    best, best_err = None, np.inf
    for lid in kept_lanes:
        lane = m.lanes[lid]
        if lid not in on_route or not shapely.intersects_xy(lane.polygon, x, y):
            continue
        i = int(np.argmin(np.hypot(lane.centerline[:, 0] - x, lane.centerline[:, 1] - y)))
        err = abs(float(_wrap(lane.headings[i] - h)))
        if err < best_err:
            best, best_err = lid, err
    if best is not None:
        return best
    centre = ego_box_centre(scene)
    p = scene.ego_params
    foot = shapely.Polygon(corners(x, y, h, p.front_length, p.rear_length, p.width / 2.0))
    closest = np.inf
    for lid in route_lanes:
        poly = m.lanes[lid].polygon
        if shapely.contains_xy(poly, centre[0], centre[1]):
            return lid
        d = float(poly.distance(foot))
        if d < closest:
            best, closest = lid, d
    if best is None:
        raise ValueError(f"scene {scene.token}: the route has no lanes to start PDM-Closed's centreline from")
    return best


def dijkstra_lanes(scene: Scene, start: str, target_roadblock: str, candidates: list[str]) -> list[str]:
    """nuPlan/PDM `Dijkstra.search`: cheapest successor chain (cost = lane length, start cost 1) from `start` to any
    lane of `target_roadblock` over `candidates`; if none reaches it, the cheapest of the deepest expanded lanes."""
    m = scene.map
    allowed = set(candidates)
    queue, dist, depth = [start], [1.0], [1]
    parent: dict[str, str | None] = {start: None}
    expanded: list[tuple[str, float, int]] = []
    expanded_ids: set[str] = set()
    end = None
    while queue:
        i = min(range(len(dist)), key=lambda j: (dist[j], j))
        lid, d, dep = queue.pop(i), dist.pop(i), depth.pop(i)
        if m.lanes[lid].roadblock_id == target_roadblock:
            end = lid
            break
        expanded.append((lid, d, dep))
        expanded_ids.add(lid)
        for nxt in m.lanes[lid].successors:
            if nxt not in allowed:
                continue
            alt = d + m.lanes[nxt].length
            if nxt not in expanded_ids and nxt not in queue:
                parent[nxt] = lid
                queue.append(nxt)
                dist.append(alt)
                depth.append(dep + 1)
            elif nxt in queue:
                j = queue.index(nxt)
                if alt < dist[j]:
                    parent[nxt] = lid
                    dist[j] = alt
                    depth[j] = dep + 1
    if end is None:
        deepest = max(e[2] for e in expanded)
        at_depth = [e for e in expanded if e[2] == deepest]
        end = min(range(len(at_depth)), key=lambda j: (at_depth[j][1], j))
        end = at_depth[end][0]
    path = [end]
    while parent[path[-1]] is not None:
        path.append(parent[path[-1]])
    return path[::-1]


def pdm_centerline(scene: Scene, kept_lanes: list[str]) -> tuple[DiscretePath, str]:
    """PDM-Closed's discrete centreline and its starting lane (see the module docstring)."""
    route_lanes = route_lane_ids(scene)
    start = starting_lane(scene, kept_lanes, route_lanes)
    blocks = route_roadblock_ids(scene)
    rb = scene.map.lanes[start].roadblock_id
    i0 = blocks.index(rb) if rb in blocks else 0
    window = blocks[i0 : i0 + DIJKSTRA_SEARCH_DEPTH]
    lanes = dijkstra_lanes(scene, start, window[-1], route_lanes)
    poses = np.concatenate(
        [np.column_stack([scene.map.lanes[i].centerline, scene.map.lanes[i].headings]) for i in lanes]
    )
    return DiscretePath.of(poses), start


def given_centerline(poses) -> np.ndarray:
    """A given centreline (N >= 2, 3) as float64, checked (`DiscretePath.of` unwraps its headings as `PDMPath`)."""
    arr = np.array(poses, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3 or len(arr) < 2:
        raise ValueError(f"a given centreline must have shape (N >= 2, 3) x, y, heading, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("a given centreline contains NaN or infinite values")
    return arr


class MapQueries:
    """Prepared lane, drivable and intersection polygons (one point query for all) and the PDM centreline.

    map_radius: half-side of nuPlan's proximity square around the ego box centre at t = 0 (None: the whole map).
    centerline: a given route centreline (N, 3) x, y, heading in world coordinates, e.g. a NAVSIM metric cache's
    `centerline`, used as is instead of PDM-Closed's Dijkstra search over our lane graph.
    """

    def __init__(
        self, scene: Scene, map_radius: float | None = DEFAULT_MAP_RADIUS, centerline: np.ndarray | None = None
    ) -> None:
        if map_radius is not None and not (math.isfinite(map_radius) and map_radius > 0):
            raise ValueError(f"MapQueries: map_radius must be a positive number or None, got {map_radius!r}")
        m = scene.map
        centre = ego_box_centre(scene)
        rb_ids = list(m.roadblocks)
        kept_rb = {
            i for i, k in zip(rb_ids, proximal([m.roadblocks[i].polygon for i in rb_ids], centre, map_radius)) if k
        }
        # the drivable map lists lanes roadblock by roadblock (PDMDrivableMap.from_simulation)
        lanes_of: dict[str, list[str]] = {}
        for lid, ln in m.lanes.items():
            lanes_of.setdefault(ln.roadblock_id, []).append(lid)
        lane_ids = [lid for rb in rb_ids if rb in kept_rb for lid in lanes_of.get(rb, ())]
        inter = [a.polygon for a in m.intersections.values()]
        inter = [p for p, k in zip(inter, proximal(inter, centre, map_radius)) if k]
        parks = [a.polygon for a in m.carparks.values()]
        parks = [p for p, k in zip(parks, proximal(parks, centre, map_radius)) if k]
        drivable = [m.roadblocks[i].polygon for i in rb_ids if i in kept_rb] + inter + parks
        if centerline is None:
            path, start = pdm_centerline(scene, lane_ids)
        else:
            path, start = DiscretePath.of(given_centerline(centerline)), None
        self._setup(lane_ids, [m.lanes[i].polygon for i in lane_ids], set(route_lane_ids(scene)), drivable, inter, path)
        self.map_radius, self.centre = map_radius, centre
        self._scene, self._starting_lane = scene, start

    @classmethod
    def from_parts(
        cls,
        lane_ids: list[str],
        lane_polygons: list,
        route_lane_ids: list[str],
        drivable_polygons: list,
        intersection_polygons: list,
        centerline: np.ndarray,
    ) -> MapQueries:
        """Map queries from a drivable map given as polygons (e.g. a NAVSIM metric cache's `drivable_area_map`,
        already cut to its proximity square) and a given centreline (N, 3); no scene, so no starting lane."""
        self = cls.__new__(cls)
        path = DiscretePath.of(given_centerline(centerline))
        self._setup(
            list(lane_ids),
            list(lane_polygons),
            set(route_lane_ids),
            list(drivable_polygons),
            list(intersection_polygons),
            path,
        )
        self.map_radius, self.centre = None, None
        self._scene, self._starting_lane = None, None
        return self

    def _setup(
        self,
        lane_ids: list[str],
        lane_polys: list,
        route: set[str],
        drivable: list,
        inter: list,
        centerline: DiscretePath,
    ) -> None:
        self.lane_ids = lane_ids
        self.lane_polys = lane_polys
        self.on_route = np.array([i in route for i in lane_ids], dtype=bool)
        # one array of every polygon a point query asks about: lanes, drivable polygons, intersections
        self._polys = np.array(lane_polys + drivable + inter, dtype=object)
        shapely.prepare(self._polys)
        n_l, n_d = len(lane_polys), len(drivable)
        self._groups = {"lane": (0, n_l), "drivable": (n_l, n_l + n_d), "intersection": (n_l + n_d, len(self._polys))}
        self.centerline = centerline
        line = self.centerline.poses[:, :2]
        keep = np.concatenate([[True], np.hypot(*np.diff(line, axis=0).T) > 1e-9])
        self.line = line[keep]
        self.arclength = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(self.line, axis=0).T))])
        self.tree = cKDTree(self.line)

    @classmethod
    def of(cls, scene: Scene, map_radius: float | None = DEFAULT_MAP_RADIUS) -> MapQueries:
        """A fresh instance (nothing is cached on the scene; a `SceneCache` holds one per scene for reuse)."""
        return cls(scene, map_radius)

    @property
    def starting_lane(self) -> str:
        """PDM-Closed's starting lane (`starting_lane`), found on first use when the centreline was given."""
        if self._starting_lane is None:
            if self._scene is None:
                raise ValueError("MapQueries.from_parts has no lane graph to find PDM-Closed's starting lane in")
            self._starting_lane = starting_lane(self._scene, self.lane_ids, route_lane_ids(self._scene))
        return self._starting_lane

    def contained(self, xy: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Which polygons strictly contain which of the points (N, 2), per group ("lane", "drivable",
        "intersection"): sparse (point index, polygon index within the group) pairs.

        This is `PDMOccupancyMap.points_in_polygons` (GEOS `contains` per polygon, so a point on the edge shared by
        two polygons is in neither) as one STRtree query: the points go into the tree and every prepared polygon
        asks for the points it contains.
        """
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        empty = np.zeros(0, dtype=np.int64)
        if len(self._polys) == 0 or len(xy) == 0:
            return {g: (empty, empty) for g in self._groups}
        poly_i, pt_i = shapely.STRtree(shapely.points(xy)).query(self._polys, predicate="contains")
        out = {}
        for g, (lo, hi) in self._groups.items():
            sel = (poly_i >= lo) & (poly_i < hi)
            out[g] = (pt_i[sel], poly_i[sel] - lo)
        return out

    def lane_membership(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sparse (point index, lane index) pairs of points (N, 2) strictly inside lane polygons."""
        return self.contained(xy)["lane"]

    def _any(self, xy: np.ndarray, group: str) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64)
        inside = np.zeros(int(np.prod(xy.shape[:-1])), dtype=bool)
        inside[self.contained(xy)[group][0]] = True
        return inside.reshape(xy.shape[:-1])

    def in_drivable(self, xy: np.ndarray) -> np.ndarray:
        """Points (..., 2) strictly inside some drivable polygon (roadblock, intersection or car park)."""
        return self._any(xy, "drivable")

    def in_intersection(self, xy: np.ndarray) -> np.ndarray:
        """Points (..., 2) strictly inside some intersection polygon (nuPlan's `is_in_layer`, STRtree "within")."""
        return self._any(xy, "intersection")

    def project(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Arc length along and distance to the route centreline of points (..., 2), via the nearest segments."""
        shape = xy.shape[:-1]
        p = xy.reshape(-1, 2)
        _, j = self.tree.query(p)
        n = len(self.line)
        best_d = np.full(len(p), np.inf)
        best_s = np.zeros(len(p))
        for off in (-2, -1, 0, 1):
            i = np.clip(j + off, 0, n - 2)
            a, b = self.line[i], self.line[i + 1]
            ab = b - a
            l2 = np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12)
            t = np.clip(np.einsum("ij,ij->i", p - a, ab) / l2, 0.0, 1.0)
            d = np.hypot(*(a + t[:, None] * ab - p).T)
            better = d < best_d
            best_d = np.where(better, d, best_d)
            best_s = np.where(better, self.arclength[i] + t * np.sqrt(l2), best_s)
        return best_s.reshape(shape), best_d.reshape(shape)
