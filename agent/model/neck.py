"""FPN neck: fuses the backbone's stride-16 and stride-32 maps into one stride-16 map for the BEV lift.

Lateral 1x1 projections, a top-down pathway (nearest upsampling + add) and a 3x3 output convolution on the finest
level; only that level is returned because the LSS lift works at a single stride (DiffVLA's LSS-FPN does the same).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from agent.config import NeckConfig


class FPNNeck(nn.Module):
    def __init__(self, in_channels: tuple[int, ...], cfg: NeckConfig) -> None:
        super().__init__()
        if not in_channels:
            raise ValueError("FPNNeck needs at least one input level")
        c = cfg.out_channels
        self.lateral = nn.ModuleList(nn.Conv2d(ci, c, 1) for ci in in_channels)
        self.output = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.out_channels = c

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        if len(feats) != len(self.lateral):
            raise ValueError(f"FPNNeck expects {len(self.lateral)} feature maps, got {len(feats)}")
        x = self.lateral[-1](feats[-1])
        for lat, f in zip(reversed(self.lateral[:-1]), reversed(feats[:-1])):
            x = lat(f) + F.interpolate(x, size=f.shape[-2:], mode="nearest")
        return self.output(x)
