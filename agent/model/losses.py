"""Training losses of the IRL-VLA model: imitation (planner), detection, vectorised map, BEV segmentation.

The reward-model loss lives with the reward model (`agent.model.rwm.rwm_loss`). Set-prediction heads (agents, map
elements) are matched to ground truth one-to-one with the Hungarian algorithm (scipy) on a detached cost.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from agent.config import DetectionConfig, MapConfig, PlannerConfig


def wrapped_abs(d: torch.Tensor) -> torch.Tensor:
    """|angle difference| wrapped into [0, pi]."""
    return torch.atan2(torch.sin(d), torch.cos(d)).abs()


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Mean sigmoid focal loss (Lin et al.), as DiffusionDrive's mode classification."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.mean()


def positive_modes(anchors: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Index (B,) of the anchor (K, P, 3) closest to each expert trajectory (B, P, 3) by mean (x, y) L2."""
    d = torch.linalg.norm(anchors[None, :, :, :2] - gt[:, None, :, :2], dim=-1).mean(-1)
    return d.argmin(-1)


def imitation_loss(
    layers: list[tuple[torch.Tensor, torch.Tensor]], anchors: torch.Tensor, gt: torch.Tensor, cfg: PlannerConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Focal classification of the nearest anchor + L1 on that mode's trajectory, summed over cascade layers."""
    if gt.dim() != 3 or gt.shape[1:] != anchors.shape[1:]:
        raise ValueError(f"expert trajectory must be (B, {anchors.shape[1]}, 3), got {tuple(gt.shape)}")
    pos = positive_modes(anchors, gt)
    b = gt.shape[0]
    total_cls = gt.new_zeros(())
    total_reg = gt.new_zeros(())
    for traj, logits in layers:
        target = F.one_hot(pos, logits.shape[1]).float()
        total_cls = total_cls + sigmoid_focal_loss(logits, target, cfg.focal_alpha, cfg.focal_gamma)
        chosen = traj[torch.arange(b, device=traj.device), pos]  # (B, P, 3)
        reg = (chosen[..., :2] - gt[..., :2]).abs().mean() * (2.0 / 3.0) + wrapped_abs(
            chosen[..., 2] - gt[..., 2]
        ).mean() * (1.0 / 3.0)
        total_reg = total_reg + reg
    total = cfg.cls_weight * total_cls + cfg.reg_weight * total_reg
    return total, {"plan_cls": total_cls.detach(), "plan_reg": total_reg.detach()}


def _hungarian(cost: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = linear_sum_assignment(cost.detach().cpu().numpy())
    return rows, cols


def detection_loss(
    pred: dict[str, torch.Tensor],
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_mask: torch.Tensor,
    cfg: DetectionConfig,
    range_m: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Set loss for agents: gt_boxes (B, G, 7) = x, y, heading, length, width, vx, vy; labels (B, G); mask (B, G)."""
    b, a = pred["agent_logits"].shape
    exist_target = torch.zeros_like(pred["agent_logits"])
    box_terms, cls_terms = [], []
    scale = range_m / 2.0
    for i in range(b):
        valid = gt_mask[i].bool()
        boxes, labels = gt_boxes[i][valid], gt_labels[i][valid].long()
        if boxes.shape[0] == 0:
            continue
        pb = pred["agent_boxes"][i]
        cost = (
            torch.cdist(pb[:, :2] / scale, boxes[:, :2] / scale, p=1) - torch.sigmoid(pred["agent_logits"][i])[:, None]
        )
        rows, cols = _hungarian(cost)
        rows_t = torch.as_tensor(rows, device=pb.device)
        cols_t = torch.as_tensor(cols, device=pb.device)
        exist_target[i, rows_t] = 1.0
        pm, gm = pb[rows_t], boxes[cols_t]
        box = (
            (pm[:, :2] - gm[:, :2]).abs().sum(-1)
            + wrapped_abs(pm[:, 2] - gm[:, 2])
            + (pm[:, 3:5] - gm[:, 3:5]).abs().sum(-1)
            + 0.5 * (pm[:, 5:7] - gm[:, 5:7]).abs().sum(-1)
        )
        box_terms.append(box)
        cls_terms.append(F.cross_entropy(pred["agent_class_logits"][i, rows_t], labels[cols_t], reduction="none"))
    exist = F.binary_cross_entropy_with_logits(pred["agent_logits"], exist_target)
    zero = pred["agent_boxes"].sum() * 0.0
    box_loss = torch.cat(box_terms).mean() if box_terms else zero
    cls_loss = torch.cat(cls_terms).mean() if cls_terms else zero + pred["agent_class_logits"].sum() * 0.0
    total = cfg.cls_weight * (exist + cls_loss) + cfg.box_weight * box_loss
    return total, {"det_exist": exist.detach(), "det_cls": cls_loss.detach(), "det_box": box_loss.detach()}


def map_loss(
    pred: dict[str, torch.Tensor],
    gt_points: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_mask: torch.Tensor,
    cfg: MapConfig,
    range_m: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Set loss for map polylines: gt_points (B, G, P, 2) metres, labels (B, G), mask (B, G); direction-agnostic L1."""
    b, m = pred["map_logits"].shape
    exist_target = torch.zeros_like(pred["map_logits"])
    pts_terms, cls_terms = [], []
    scale = range_m / 2.0
    for i in range(b):
        valid = gt_mask[i].bool()
        pts, labels = gt_points[i][valid] / scale, gt_labels[i][valid].long()
        if pts.shape[0] == 0:
            continue
        pp = pred["map_points"][i] / scale  # (M, P, 2)
        fwd = (pp[:, None] - pts[None]).abs().mean((-1, -2))
        rev = (pp[:, None] - pts.flip(1)[None]).abs().mean((-1, -2))
        dist = torch.minimum(fwd, rev)
        cost = dist - pred["map_class_logits"][i].softmax(-1)[:, labels]
        rows, cols = _hungarian(cost)
        rows_t = torch.as_tensor(rows, device=pp.device)
        cols_t = torch.as_tensor(cols, device=pp.device)
        exist_target[i, rows_t] = 1.0
        pts_terms.append(dist[rows_t, cols_t])
        cls_terms.append(F.cross_entropy(pred["map_class_logits"][i, rows_t], labels[cols_t], reduction="none"))
    exist = F.binary_cross_entropy_with_logits(pred["map_logits"], exist_target)
    zero = pred["map_points"].sum() * 0.0 + pred["map_class_logits"].sum() * 0.0
    pts_loss = torch.cat(pts_terms).mean() if pts_terms else zero
    cls_loss = torch.cat(cls_terms).mean() if cls_terms else zero
    total = cfg.cls_weight * (exist + cls_loss) + cfg.pts_weight * pts_loss
    return total, {"map_exist": exist.detach(), "map_cls": cls_loss.detach(), "map_pts": pts_loss.detach()}


def seg_loss(logits: torch.Tensor, target: torch.Tensor, weight: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cross-entropy of BEV semantic logits (B, C, H, W) against class indices (B, H, W)."""
    if target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"BEV semantic target {tuple(target.shape)} does not match logits {tuple(logits.shape)}")
    ce = F.cross_entropy(logits, target.long())
    return weight * ce, {"seg_ce": ce.detach()}


__all__ = [
    "detection_loss",
    "imitation_loss",
    "map_loss",
    "positive_modes",
    "seg_loss",
    "sigmoid_focal_loss",
]
