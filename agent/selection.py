"""Candidate selection: confidence + predicted reward, with explicit collision and drivable-area checks.

All checks are numpy-vectorised over candidates x waypoints x agents. Collision: the ego footprint (an oriented box
around the box centre, `rear_axle_to_center` ahead of the rear axle) at every waypoint against every detected agent
forecast at constant velocity and heading to the same time, by the separating-axis theorem. Drivable area: the ego
footprint's centre and corners looked up in the predicted BEV segmentation (sum of drivable class probabilities).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from agent import geometry
from agent.boxes import box_corners, boxes_overlap
from agent.config import SelectionConfig

logger = logging.getLogger(__name__)


def ego_footprints(candidates: np.ndarray, cfg: SelectionConfig) -> np.ndarray:
    """Ego box corners (K, P, 4, 2) at every waypoint of candidates (K, P, 3) (rear-axle poses)."""
    h = candidates[..., 2]
    centers = candidates[..., :2] + cfg.rear_axle_to_center * np.stack([np.cos(h), np.sin(h)], -1)
    length, width = cfg.ego_length + 2 * cfg.safety_margin, cfg.ego_width + 2 * cfg.safety_margin
    return box_corners(centers[..., 0], centers[..., 1], h, length, width)


def forecast_agents(boxes: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Constant-velocity forecast of boxes (A, 7) = x, y, heading, length, width, vx, vy -> corners (A, T, 4, 2)."""
    centers = boxes[:, None, :2] + boxes[:, None, 5:7] * times[None, :, None]
    headings = np.broadcast_to(boxes[:, None, 2], centers.shape[:-1])
    return box_corners(centers[..., 0], centers[..., 1], headings, boxes[:, None, 3], boxes[:, None, 4])


def collision_check(
    candidates: np.ndarray, boxes: np.ndarray, times: np.ndarray, cfg: SelectionConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(K,) collides flag and (K,) index of the first colliding waypoint (-1 if none), up to the check horizon."""
    k, p = candidates.shape[:2]
    use = times <= cfg.check_horizon_s + 1e-9
    if boxes.shape[0] == 0 or not use.any():
        return np.zeros(k, dtype=bool), np.full(k, -1)
    ego = ego_footprints(candidates[:, use], cfg)  # (K, T, 4, 2)
    agents = forecast_agents(boxes, times[use])  # (A, T, 4, 2)
    hit = boxes_overlap(ego[:, :, None], agents.transpose(1, 0, 2, 3)[None]).any(-1)  # (K, T)
    first = np.where(hit.any(-1), hit.argmax(-1), -1)
    return hit.any(-1), first


def offroad_fraction(
    candidates: np.ndarray, drivable: np.ndarray, range_m: float, times: np.ndarray, cfg: SelectionConfig
) -> np.ndarray:
    """Fraction (K,) of footprint points (centre + 4 corners per waypoint) with drivable probability below threshold;
    points outside the BEV raster are unknown and not counted."""
    use = times <= cfg.check_horizon_s + 1e-9
    if not use.any():
        return np.zeros(candidates.shape[0])
    ego = ego_footprints(candidates[:, use], cfg)
    centers = ego.mean(-2, keepdims=True)
    pts = np.concatenate([centers, ego], axis=-2).reshape(candidates.shape[0], -1, 2)
    size = drivable.shape[0]
    rc = np.floor(geometry.world_to_bev_pixel(pts, size, range_m)).astype(np.int64)
    inside = (rc[..., 0] >= 0) & (rc[..., 0] < size) & (rc[..., 1] >= 0) & (rc[..., 1] < size)
    rows = np.clip(rc[..., 0], 0, size - 1)
    cols = np.clip(rc[..., 1], 0, size - 1)
    off = (drivable[rows, cols] < cfg.drivable_threshold) & inside
    return off.sum(-1) / np.maximum(inside.sum(-1), 1)


@dataclass
class Selection:
    scores: np.ndarray  # (K,)
    index: int
    collision: np.ndarray  # (K,) bool
    first_collision: np.ndarray  # (K,) waypoint index or -1
    offroad: np.ndarray  # (K,) fraction in [0, 1]


def select_candidate(
    candidates: np.ndarray,
    confidences: np.ndarray,
    rewards: np.ndarray,
    agent_boxes: np.ndarray,
    agent_scores: np.ndarray,
    drivable: np.ndarray | None,
    range_m: float,
    times: np.ndarray,
    cfg: SelectionConfig,
) -> Selection:
    """Score = w_c conf + w_r reward - P_col [collides] - P_off offroad_fraction; the argmax wins.

    With the default weights (conf, reward in [0, 1], P_col 10 > w_c + w_r) a colliding candidate never beats a
    collision-free one.
    """
    candidates = np.asarray(candidates, dtype=np.float64)
    k = candidates.shape[0]
    if confidences.shape != (k,) or rewards.shape != (k,):
        raise ValueError(f"select_candidate: confidences {confidences.shape} / rewards {rewards.shape} must be ({k},)")
    boxes = np.asarray(agent_boxes, dtype=np.float64).reshape(-1, 7)[
        np.asarray(agent_scores) >= cfg.detection_threshold
    ]
    collision, first = collision_check(candidates, boxes, times, cfg)
    offroad = offroad_fraction(candidates, drivable, range_m, times, cfg) if drivable is not None else np.zeros(k)
    scores = (
        cfg.confidence_weight * confidences
        + cfg.reward_weight * rewards
        - cfg.collision_penalty * collision
        - cfg.offroad_penalty * offroad
    )
    # NaN/inf outputs (a diverged checkpoint) must never win through np.argmax's NaN-first behaviour
    usable = np.isfinite(scores) & np.isfinite(candidates).all(axis=(1, 2))
    if not usable.any():
        raise ValueError("select_candidate: every candidate has non-finite poses or scores (NaN/inf model outputs)")
    if not usable.all():
        logger.warning("select_candidate: ignoring %d candidate(s) with non-finite poses or scores", (~usable).sum())
    idx = int(np.argmax(np.where(usable, scores, -np.inf)))
    if collision.all():
        logger.debug("every candidate collides with a forecast agent; taking the best-scored one")
    return Selection(scores, idx, collision, first, offroad)
