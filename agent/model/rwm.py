"""Reward world model: predicts the nine EPDMS sub-metrics of a candidate trajectory and the EPDMS they imply.

Input is the scene as the perception trunk sees it (BEV map, agent, map and ego/command tokens), detached so reward
training never moves the policy trunk, plus candidate trajectories (B, K, P, 3). NC and DDC take values {0, 0.5, 1}
and are 3-way classifications; DAC, TLC, TTC, LK, HC, EC are Bernoulli probabilities; EP is a value in [0, 1].
The predicted EPDMS is built from EXPECTED values: E[NC] E[DAC] E[DDC] E[TLC] (5 EP + 5 TTC + 2 LK + 2 HC + 2 EC) / 16,
never from the winning class's confidence (DiffVLA's `conf()` quirk).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from agent.config import PlannerConfig, RWMConfig
from agent.epdms_metrics import DAC, DDC, EPDMS_METRICS, EPDMS_WEIGHTS, NC, TLC
from agent.model.heads import mlp
from agent.model.planner import GridSampleBEVAttention

#: the Bernoulli sub-metrics, in the order of the binary head's outputs
BINARY_METRICS = ("dac", "tlc", "ttc", "lk", "hc", "ec")
_THREE_LEVELS = (0.0, 0.5, 1.0)


def expected_submetrics(
    nc_logits: torch.Tensor, ddc_logits: torch.Tensor, binary_logits: torch.Tensor, ep_logit: torch.Tensor
) -> torch.Tensor:
    """Head outputs -> expected sub-metric values (..., 9) in EPDMS_METRICS order."""
    levels = torch.tensor(_THREE_LEVELS, dtype=nc_logits.dtype, device=nc_logits.device)
    nc = (nc_logits.softmax(-1) * levels).sum(-1)
    ddc = (ddc_logits.softmax(-1) * levels).sum(-1)
    binary = dict(zip(BINARY_METRICS, torch.sigmoid(binary_logits).unbind(-1)))
    values = {"nc": nc, "ddc": ddc, "ep": torch.sigmoid(ep_logit), **binary}
    return torch.stack([values[m] for m in EPDMS_METRICS], dim=-1)


def epdms_from_submetrics(metrics: torch.Tensor) -> torch.Tensor:
    """EPDMS (...,) from sub-metric values (..., 9): product of the multipliers times the weighted average."""
    if metrics.shape[-1] != len(EPDMS_METRICS):
        raise ValueError(f"expected (..., {len(EPDMS_METRICS)}) sub-metrics, got {tuple(metrics.shape)}")
    idx = {m: i for i, m in enumerate(EPDMS_METRICS)}
    mult = metrics[..., NC] * metrics[..., DAC] * metrics[..., DDC] * metrics[..., TLC]
    total = sum(EPDMS_WEIGHTS.values())
    avg = sum(w * metrics[..., idx[m]] for m, w in EPDMS_WEIGHTS.items()) / total
    return mult * avg


class RewardWorldModel(nn.Module):
    def __init__(
        self, cfg: RWMConfig, planner_cfg: PlannerConfig, d_model: int, num_heads: int, range_m: float
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_poses = planner_cfg.num_poses
        lo = torch.tensor([planner_cfg.x_range[0], planner_cfg.y_range[0], planner_cfg.heading_range[0]])
        hi = torch.tensor([planner_cfg.x_range[1], planner_cfg.y_range[1], planner_cfg.heading_range[1]])
        self.register_buffer("norm_lo", lo, persistent=False)
        self.register_buffer("norm_hi", hi, persistent=False)
        self.traj_encoder = mlp(self.num_poses * 3, d_model, d_model)
        self.bev_attn = GridSampleBEVAttention(d_model, self.num_poses, range_m)
        layer = nn.TransformerDecoderLayer(d_model, num_heads, cfg.ffn_dim, dropout=0.0, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, cfg.num_layers)
        self.nc_head = mlp(d_model, d_model, 3)
        self.ddc_head = mlp(d_model, d_model, 3)
        self.binary_head = mlp(d_model, d_model, len(BINARY_METRICS))
        self.ep_head = mlp(d_model, d_model, 1)

    def forward(
        self, trajectories: torch.Tensor, bev: torch.Tensor, scene_tokens: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """trajectories (B, K, P, 3) metres, bev (B, d, S, S), scene_tokens (B, T, d) -> per-candidate predictions."""
        if trajectories.dim() != 4 or trajectories.shape[-2:] != (self.num_poses, 3):
            raise ValueError(f"RWM expects trajectories (B, K, {self.num_poses}, 3), got {tuple(trajectories.shape)}")
        if self.cfg.detach_inputs:
            trajectories, bev, scene_tokens = trajectories.detach(), bev.detach(), scene_tokens.detach()
        b, k = trajectories.shape[:2]
        norm = 2.0 * (trajectories - self.norm_lo) / (self.norm_hi - self.norm_lo) - 1.0
        q = self.traj_encoder(norm.reshape(b, k, -1))
        q = q + self.bev_attn(q, trajectories[..., :2], bev)
        q = self.decoder(q, scene_tokens)
        out = {
            "nc_logits": self.nc_head(q),
            "ddc_logits": self.ddc_head(q),
            "binary_logits": self.binary_head(q),
            "ep_logit": self.ep_head(q).squeeze(-1),
        }
        out["metrics"] = expected_submetrics(out["nc_logits"], out["ddc_logits"], out["binary_logits"], out["ep_logit"])
        out["epdms"] = epdms_from_submetrics(out["metrics"])
        return out


def rwm_loss(pred: dict[str, torch.Tensor], targets: torch.Tensor, cfg: RWMConfig, mask: torch.Tensor | None = None):
    """Reward loss against simulator labels (B, K, 9) in EPDMS_METRICS order: CE for NC/DDC, BCE for the Bernoulli
    metrics (soft targets allowed), MSE for EP; weighted by `cfg.metric_weights`. Returns (total, per-metric dict)."""
    if targets.shape != pred["metrics"].shape:
        raise ValueError(f"RWM targets {tuple(targets.shape)} do not match predictions {tuple(pred['metrics'].shape)}")
    idx = {m: i for i, m in enumerate(EPDMS_METRICS)}
    valid = torch.ones(targets.shape[:-1], device=targets.device) if mask is None else mask.float()
    denom = valid.sum().clamp_min(1.0)
    parts: dict[str, torch.Tensor] = {}
    for name, key in (("nc", "nc_logits"), ("ddc", "ddc_logits")):
        cls = torch.round(targets[..., idx[name]] * 2.0).long().clamp(0, 2)
        ce = F.cross_entropy(pred[key].flatten(0, -2), cls.flatten(), reduction="none").view_as(valid)
        parts[name] = (ce * valid).sum() / denom
    for j, name in enumerate(BINARY_METRICS):
        bce = F.binary_cross_entropy_with_logits(
            pred["binary_logits"][..., j], targets[..., idx[name]], reduction="none"
        )
        parts[name] = (bce * valid).sum() / denom
    mse = (torch.sigmoid(pred["ep_logit"]) - targets[..., idx["ep"]]) ** 2
    parts["ep"] = (mse * valid).sum() / denom
    total = sum(w * parts[m] for m, w in zip(EPDMS_METRICS, cfg.metric_weights))
    return cfg.loss_weight * total, parts
