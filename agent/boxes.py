"""Vectorised oriented-box geometry: corners, separating-axis overlap and segment tests (no shapely in hot paths).

The one home of these helpers: the scorer (`navsim_eval`), candidate selection (`agent.selection`) and the scene
model (`sim.scene`) all build and test boxes with them. Corner order is NAVSIM's `BBCoordsIndex`.
"""

from __future__ import annotations

import numpy as np

# Corner order (NAVSIM BBCoordsIndex): front-left, rear-left, rear-right, front-right.
FL, RL, RR, FR = range(4)


def corners(x, y, heading, front: np.ndarray | float, rear: np.ndarray | float, half_width) -> np.ndarray:
    """Corners (..., 4, 2) of boxes given a reference point, heading, extents ahead/behind it and half width."""
    x, y, heading = (np.asarray(v, dtype=np.float64) for v in (x, y, heading))
    c, s = np.cos(heading)[..., None], np.sin(heading)[..., None]
    front, rear, half_width = (np.asarray(v, dtype=np.float64) for v in (front, rear, half_width))
    lon = np.stack(np.broadcast_arrays(front, -rear, -rear, front), axis=-1)
    lat = np.stack(np.broadcast_arrays(half_width, half_width, -half_width, -half_width), axis=-1)
    cx = x[..., None] + lon * c - lat * s
    cy = y[..., None] + lon * s + lat * c
    return np.stack([cx, cy], axis=-1)


def box_corners(x, y, heading, length, width) -> np.ndarray:
    """Corners (..., 4, 2) of boxes centred at (x, y) (all arguments broadcast): FL, RL, RR, FR."""
    x, y, heading, length, width = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (x, y, heading, length, width))
    )
    return corners(x, y, heading, length / 2.0, length / 2.0, width / 2.0)


def centre_boxes(states: np.ndarray, length: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Corners (..., 4, 2) of centre-referenced boxes from (..., >=3) x, y, heading."""
    half_l = np.asarray(length) / 2.0
    return corners(states[..., 0], states[..., 1], states[..., 2], half_l, half_l, np.asarray(width) / 2.0)


def _project(c: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.einsum("...ij,...j->...i", c, axis)
    return p.min(axis=-1), p.max(axis=-1)


def boxes_overlap(a: np.ndarray, b: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    """Separating-axis test for rectangles a, b (..., 4, 2) (broadcast) -> bool (...); touching counts as overlap
    (shapely `intersects`), within `eps` scaled by the axis length."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    out = np.ones(a.shape[:-2], dtype=bool)
    for quad in (a, b):
        for i0, i1 in ((0, 1), (1, 2)):  # the two edge directions of a rectangle
            edge = quad[..., i1, :] - quad[..., i0, :]
            axis = np.stack([-edge[..., 1], edge[..., 0]], axis=-1)
            amin, amax = _project(a, axis)
            bmin, bmax = _project(b, axis)
            scale = np.maximum(np.abs(axis).sum(axis=-1), 1e-12)
            out &= (amax >= bmin - eps * scale) & (bmax >= amin - eps * scale)
    return out


def obb_overlap(
    c1: np.ndarray,
    h1: np.ndarray,
    hl1: np.ndarray,
    hw1: np.ndarray,
    c2: np.ndarray,
    h2: np.ndarray,
    hl2: np.ndarray,
    hw2: np.ndarray,
    eps: float = 1e-9,
) -> np.ndarray:
    """Separating-axis test for oriented rectangles given centres (N, 2), headings (N,), half lengths and widths.

    Each box's extent along an axis u is |hl (u . d)| + |hw (u . n)|, so no corners are built. Touching counts.
    """
    d1 = np.stack([np.cos(h1), np.sin(h1)], axis=-1)
    d2 = np.stack([np.cos(h2), np.sin(h2)], axis=-1)
    n1 = np.stack([-d1[:, 1], d1[:, 0]], axis=-1)
    n2 = np.stack([-d2[:, 1], d2[:, 0]], axis=-1)
    t = c2 - c1
    # cross terms shared by the four axes
    dd = np.abs(np.sum(d1 * d2, axis=-1))
    dn = np.abs(np.sum(d1 * n2, axis=-1))
    nd = np.abs(np.sum(n1 * d2, axis=-1))
    nn = np.abs(np.sum(n1 * n2, axis=-1))
    ok = np.abs(np.sum(t * d1, axis=-1)) <= hl1 + hl2 * dd + hw2 * dn + eps
    ok &= np.abs(np.sum(t * n1, axis=-1)) <= hw1 + hl2 * nd + hw2 * nn + eps
    ok &= np.abs(np.sum(t * d2, axis=-1)) <= hl2 + hl1 * dd + hw1 * nd + eps
    ok &= np.abs(np.sum(t * n2, axis=-1)) <= hw2 + hl1 * dn + hw1 * nn + eps
    return ok


def segment_intersects_box(p0: np.ndarray, p1: np.ndarray, quad: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    """Whether segments p0-p1 (N, 2) touch convex quads (N, 4, 2): SAT with the segment as a degenerate polygon."""
    seg = np.stack([p0, p1], axis=1)
    out = np.ones(p0.shape[0], dtype=bool)
    axes = [quad[:, 1] - quad[:, 0], quad[:, 2] - quad[:, 1], p1 - p0]
    for edge in axes:
        axis = np.stack([-edge[:, 1], edge[:, 0]], axis=-1)
        smin, smax = _project(seg, axis)
        qmin, qmax = _project(quad, axis)
        scale = np.maximum(np.abs(axis).sum(axis=-1), 1e-12)
        out &= (smax >= qmin - eps * scale) & (qmax >= smin - eps * scale)
    return out
