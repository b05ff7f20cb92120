"""Per-scene map queries the scorer needs, vectorised over many points and cached on the map."""

from __future__ import annotations

import numpy as np
import shapely
from scipy.spatial import cKDTree

from sim.epdms.observation import on_route_lane_ids
from sim.scene import Scene


class MapQueries:
    """Prepared lane polygons (with bounding boxes), drivable and intersection areas and the route centreline."""

    def __init__(self, scene: Scene) -> None:
        m = scene.map
        self.lane_ids = list(m.lanes)
        self.lane_polys = [m.lanes[i].polygon for i in self.lane_ids]
        for p in self.lane_polys:
            shapely.prepare(p)
        self.lane_bounds = np.array([p.bounds for p in self.lane_polys]).reshape(-1, 4)
        route = on_route_lane_ids(scene)
        self.on_route = np.array([i in route for i in self.lane_ids], dtype=bool)
        polys = [a.polygon for layer in (m.roadblocks, m.intersections, m.carparks) for a in layer.values()]
        self.drivable = shapely.union_all(polys) if polys else shapely.Polygon()
        shapely.prepare(self.drivable)
        self.intersection = m.intersection_area
        line = scene.route.centerline[:, :2]
        keep = np.concatenate([[True], np.hypot(*np.diff(line, axis=0).T) > 1e-9])
        self.line = line[keep]
        self.arclength = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(self.line, axis=0).T))])
        self.tree = cKDTree(self.line)

    @classmethod
    def of(cls, scene: Scene) -> MapQueries:
        cache = scene.map.__dict__.get("_epdms_queries")
        if cache is None or cache[0] is not scene.route:
            cache = (scene.route, cls(scene))
            scene.map.__dict__["_epdms_queries"] = cache
        return cache[1]

    def _lane_cells(self) -> dict[int, list[int]]:
        """Grid cell key -> indices of lanes whose bounding box overlaps the cell."""
        cells: dict[int, list[int]] = {}
        c = self.CELL
        for j, (x0, y0, x1, y1) in enumerate(self.lane_bounds):
            for cx in range(int(np.floor(x0 / c)), int(np.floor(x1 / c)) + 1):
                for cy in range(int(np.floor(y0 / c)), int(np.floor(y1 / c)) + 1):
                    cells.setdefault(self._key(cx, cy), []).append(j)
        return cells

    CELL = 10.0
    _OFFSET = 1 << 20

    @classmethod
    def _key(cls, cx, cy):
        return (cx + cls._OFFSET) * (2 * cls._OFFSET) + (cy + cls._OFFSET)

    def lane_membership(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sparse (point index, lane index) pairs of points (N, 2) strictly inside lane polygons.

        Points are bucketed on a 10 m grid; each bucket is tested only against the lanes whose bounding box overlaps
        that cell, with GEOS's prepared point-in-polygon (`contains_xy`).
        """
        if self.__dict__.get("_cells") is None:
            self._cells = self._lane_cells()
        cx = np.floor(xy[:, 0] / self.CELL).astype(np.int64)
        cy = np.floor(xy[:, 1] / self.CELL).astype(np.int64)
        keys = self._key(cx, cy)
        order = np.argsort(keys, kind="stable")
        sk = keys[order]
        starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
        ends = np.r_[starts[1:], len(sk)]
        pts, lanes = [], []
        for a, b in zip(starts.tolist(), ends.tolist()):
            lane_list = self._cells.get(int(sk[a]))
            if not lane_list:
                continue
            idx = order[a:b]
            px, py = xy[idx, 0], xy[idx, 1]
            for j in lane_list:
                inside = shapely.contains_xy(self.lane_polys[j], px, py)
                if inside.any():
                    pts.append(idx[inside])
                    lanes.append(np.full(int(inside.sum()), j))
        if not pts:
            return np.zeros(0, int), np.zeros(0, int)
        return np.concatenate(pts), np.concatenate(lanes)

    def in_drivable(self, xy: np.ndarray) -> np.ndarray:
        return shapely.contains_xy(self.drivable, xy[..., 0], xy[..., 1])

    def in_intersection(self, xy: np.ndarray) -> np.ndarray:
        if self.intersection is None:
            return np.zeros(xy.shape[:-1], dtype=bool)
        return shapely.contains_xy(self.intersection, xy[..., 0], xy[..., 1])  # STRtree "within"

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
