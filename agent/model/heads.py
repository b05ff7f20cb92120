"""Perception heads on the BEV: agent detection (30 agents + the ego query), vectorised map, BEV segmentation.

The detection and map heads are DETR-style query decoders over the flattened BEV tokens (DiffVLA: 3 layers, 8 heads,
ffn 512). Their output embeddings condition the planner and the reward world model; their explicit outputs (boxes
with velocities, polylines, the semantic raster) feed the policy's collision and drivable-area checks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from agent.config import DetectionConfig, MapConfig, SegConfig

#: agent box layout in every (..., 7) box tensor: centre x, y (m, ego frame), heading (rad), length, width (m), vx, vy
BOX_FIELDS = ("x", "y", "heading", "length", "width", "vx", "vy")


def mlp(d_in: int, d_hidden: int, d_out: int, layers: int = 2) -> nn.Sequential:
    mods: list[nn.Module] = []
    d = d_in
    for _ in range(layers - 1):
        mods += [nn.Linear(d, d_hidden), nn.ReLU(inplace=True)]
        d = d_hidden
    mods.append(nn.Linear(d, d_out))
    return nn.Sequential(*mods)


def sinusoidal_2d(size: int, d_model: int) -> torch.Tensor:
    """Fixed 2-D sine/cosine positional encoding of an (size, size) raster: (size * size, d_model), row-major."""
    if d_model % 4:
        raise ValueError(f"sinusoidal_2d needs d_model divisible by 4, got {d_model}")
    quarter = d_model // 4
    freqs = torch.exp(-math.log(10000.0) * torch.arange(quarter, dtype=torch.float32) / quarter)
    pos = torch.arange(size, dtype=torch.float32)
    rows = pos[:, None] * freqs[None]  # (size, quarter)
    enc_r = torch.cat([rows.sin(), rows.cos()], dim=-1)  # (size, d/2)
    grid_r = enc_r[:, None, :].expand(size, size, d_model // 2)
    grid_c = enc_r[None, :, :].expand(size, size, d_model // 2)
    return torch.cat([grid_r, grid_c], dim=-1).reshape(size * size, d_model)


def query_decoder(d_model: int, num_heads: int, ffn_dim: int, num_layers: int) -> nn.TransformerDecoder:
    layer = nn.TransformerDecoderLayer(d_model, num_heads, ffn_dim, dropout=0.0, batch_first=True, norm_first=False)
    return nn.TransformerDecoder(layer, num_layers)


class DetectionHead(nn.Module):
    """1 ego + A agent queries -> ego token, agent tokens, existence and class logits, boxes (x, y, h, l, w, vx, vy)."""

    def __init__(self, cfg: DetectionConfig, d_model: int, num_heads: int, bev_range_m: float) -> None:
        super().__init__()
        self.cfg = cfg
        self.half_range = bev_range_m / 2.0
        self.queries = nn.Embedding(1 + cfg.num_agents, d_model)
        self.decoder = query_decoder(d_model, num_heads, cfg.ffn_dim, cfg.num_layers)
        self.existence = nn.Linear(d_model, 1)
        self.classes = nn.Linear(d_model, len(cfg.class_names))
        self.box = mlp(d_model, d_model, 8)  # x, y, sin, cos, length, width, vx, vy

    def forward(self, bev_tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        b = bev_tokens.shape[0]
        q = self.queries.weight.unsqueeze(0).expand(b, -1, -1)
        out = self.decoder(q, bev_tokens)
        ego, agents = out[:, 0], out[:, 1:]
        raw = self.box(agents)
        boxes = torch.stack(
            [
                torch.tanh(raw[..., 0]) * self.half_range,
                torch.tanh(raw[..., 1]) * self.half_range,
                torch.atan2(raw[..., 2], raw[..., 3] + 1e-6),
                F.softplus(raw[..., 4]) + 0.1,
                F.softplus(raw[..., 5]) + 0.1,
                torch.tanh(raw[..., 6]) * self.cfg.max_speed,
                torch.tanh(raw[..., 7]) * self.cfg.max_speed,
            ],
            dim=-1,
        )
        return {
            "ego_token": ego,
            "agent_tokens": agents,
            "agent_logits": self.existence(agents).squeeze(-1),
            "agent_class_logits": self.classes(agents),
            "agent_boxes": boxes,
            "agent_heading_vec": raw[..., 2:4],
        }


class MapHead(nn.Module):
    """M map queries -> map tokens, existence and class logits, polylines (M, P, 2) in the ego frame."""

    def __init__(self, cfg: MapConfig, d_model: int, num_heads: int, bev_range_m: float) -> None:
        super().__init__()
        self.cfg = cfg
        self.half_range = bev_range_m / 2.0
        self.queries = nn.Embedding(cfg.num_queries, d_model)
        self.decoder = query_decoder(d_model, num_heads, cfg.ffn_dim, cfg.num_layers)
        self.existence = nn.Linear(d_model, 1)
        self.classes = nn.Linear(d_model, len(cfg.class_names))
        self.points = mlp(d_model, d_model, cfg.num_points * 2)

    def forward(self, bev_tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        b = bev_tokens.shape[0]
        q = self.queries.weight.unsqueeze(0).expand(b, -1, -1)
        out = self.decoder(q, bev_tokens)
        pts = torch.tanh(self.points(out)).view(b, self.cfg.num_queries, self.cfg.num_points, 2) * self.half_range
        return {
            "map_tokens": out,
            "map_logits": self.existence(out).squeeze(-1),
            "map_class_logits": self.classes(out),
            "map_points": pts,
        }


class SegHead(nn.Module):
    """BEV features (B, C, S, S) -> semantic logits (B, classes, S*u, S*u) in the BEV raster convention."""

    def __init__(self, cfg: SegConfig, in_channels: int) -> None:
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden_channels
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, h, 3, padding=1, bias=False),
            nn.BatchNorm2d(h),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Conv2d(h, len(cfg.class_names), 1)

    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        x = self.body(bev)
        if self.cfg.upsample > 1:
            x = F.interpolate(x, scale_factor=self.cfg.upsample, mode="bilinear", align_corners=False)
        return self.classifier(x)
