"""Trajectory anchors for the truncated-diffusion planner: load from a file, k-means a vocabulary, or a built-in fan.

Anchors are (K, P, 3) arrays of future poses (x, y, heading) at the planning interval in the rear-axle frame, the same
layout as NAVSIM's `trajectory_anchors_{32,256,8192}.npy`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


def _check_trajs(trajs: np.ndarray, name: str) -> np.ndarray:
    trajs = np.asarray(trajs, dtype=np.float64)
    if trajs.ndim != 3 or trajs.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (N, P, 3) = x, y, heading; got {trajs.shape}")
    if not np.all(np.isfinite(trajs)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return trajs


def kmeans_anchors(trajs: np.ndarray, k: int, seed: int = 0, iters: int = 50) -> np.ndarray:
    """K-means (k-means++ initialisation, Lloyd iterations) of trajectories (N, P, 3) on their (x, y) waypoints.

    Returns (k, P, 3) centroids sorted by final x then y so the result does not depend on cluster numbering; headings
    are circular means. Deterministic for a given seed.
    """
    trajs = _check_trajs(trajs, "trajs")
    n = trajs.shape[0]
    if not (1 <= k <= n):
        raise ValueError(f"kmeans_anchors: k must be in [1, {n}] for {n} trajectories, got {k}")
    rng = np.random.default_rng(seed)
    feats = trajs[..., :2].reshape(n, -1)
    centers = np.empty((k, feats.shape[1]))
    centers[0] = feats[rng.integers(n)]
    d2 = ((feats - centers[0]) ** 2).sum(-1)
    for i in range(1, k):
        total = d2.sum()
        idx = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
        centers[i] = feats[idx]
        d2 = np.minimum(d2, ((feats - centers[i]) ** 2).sum(-1))
    labels = np.zeros(n, dtype=np.int64)
    for it in range(iters):
        dist = (feats**2).sum(-1)[:, None] - 2.0 * feats @ centers.T + (centers**2).sum(-1)[None]
        new = dist.argmin(-1)
        if it > 0 and np.array_equal(new, labels):
            break
        labels = new
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros_like(centers)
        np.add.at(sums, labels, feats)
        empty = counts == 0
        centers[~empty] = sums[~empty] / counts[~empty, None]
        if empty.any():  # re-seed empty clusters at the worst-fitted points
            worst = np.argsort(dist[np.arange(n), labels])[::-1][: int(empty.sum())]
            centers[empty] = feats[worst]
    dist = (feats**2).sum(-1)[:, None] - 2.0 * feats @ centers.T + (centers**2).sum(-1)[None]
    labels = dist.argmin(-1)
    out = np.zeros((k, trajs.shape[1], 3))
    out[..., :2] = centers.reshape(k, -1, 2)
    for c in range(k):
        members = trajs[labels == c]
        if len(members):
            out[c, :, 2] = np.arctan2(np.sin(members[..., 2]).mean(0), np.cos(members[..., 2]).mean(0))
        else:
            d = np.diff(np.concatenate([np.zeros((1, 2)), out[c, :, :2]]), axis=0)
            out[c, :, 2] = np.arctan2(d[:, 1], d[:, 0])
    order = np.lexsort((out[:, -1, 1], out[:, -1, 0]))
    return out[order]


def procedural_anchors(k: int, num_poses: int = 8, interval: float = 0.5) -> np.ndarray:
    """A deterministic fan of constant-speed, constant-yaw-rate trajectories (K, P, 3) for untrained models.

    Farthest-point sampling over a (speed, yaw rate) grid, starting from standing still, so any K covers stopping,
    straight driving at several speeds and turns both ways. A trained model ships its own anchors in its checkpoint.
    """
    if k < 1:
        raise ValueError(f"procedural_anchors needs k >= 1, got {k}")
    speeds = np.linspace(0.0, 14.0, 8)
    yaw_rates = np.linspace(-0.6, 0.6, 13)
    t = interval * np.arange(1, num_poses + 1)
    cands = []
    for v in speeds:
        for w in yaw_rates:
            if v == 0.0 and w != 0.0:
                continue
            h = w * t
            if abs(w) < 1e-9:
                x, y = v * t, np.zeros_like(t)
            else:
                x, y = v / w * np.sin(h), v / w * (1.0 - np.cos(h))
            cands.append(np.stack([x, y, np.where(v > 0, h, 0.0)], axis=-1))
    cands_arr = np.stack(cands)
    if k > len(cands_arr):
        raise ValueError(f"procedural_anchors supports at most {len(cands_arr)} anchors, got {k}")
    feats = cands_arr[..., :2].reshape(len(cands_arr), -1)
    chosen = [0]  # standing still
    d2 = ((feats - feats[0]) ** 2).sum(-1)
    for _ in range(1, k):
        i = int(d2.argmax())
        chosen.append(i)
        d2 = np.minimum(d2, ((feats - feats[i]) ** 2).sum(-1))
    return cands_arr[chosen]


def load_anchors(path: str | Path, k: int, num_poses: int = 8, seed: int = 0) -> np.ndarray:
    """Anchors from an (N, P, 3) .npy file; N > k is reduced to k by k-means, N < k is an error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"anchor file {path} does not exist")
    trajs = _check_trajs(np.load(path, allow_pickle=False), f"anchors in {path}")
    if trajs.shape[1] != num_poses:
        raise ValueError(f"anchors in {path} have {trajs.shape[1]} poses, the planner expects {num_poses}")
    if trajs.shape[0] < k:
        raise ValueError(f"anchors in {path}: {trajs.shape[0]} trajectories, the planner needs {k}")
    if trajs.shape[0] > k:
        logger.info("reducing %d anchors from %s to %d by k-means", trajs.shape[0], path, k)
        trajs = kmeans_anchors(trajs, k, seed=seed)
    return trajs


def nearest_anchor(anchors: np.ndarray, traj: np.ndarray) -> int:
    """Index of the anchor with the smallest mean (x, y) L2 distance to `traj` (DiffusionDrive's positive mode)."""
    d = np.linalg.norm(np.asarray(anchors)[..., :2] - np.asarray(traj)[None, :, :2], axis=-1).mean(-1)
    return int(d.argmin())


__all__ = ["kmeans_anchors", "load_anchors", "nearest_anchor", "procedural_anchors"]
