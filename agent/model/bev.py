"""Camera-to-BEV lifting, Lift-Splat-Shoot style, in pure PyTorch (no custom CUDA op, exportable).

Each feature pixel predicts a categorical depth distribution over D bins and a context vector; their outer product is
a frustum of features that is placed in the ego frame with the camera intrinsics (adjusted for the resize/crop) and
extrinsics, then summed into the BEV raster with one `scatter_add_`. The raster follows `agent.geometry`'s convention:
row 0 is farthest ahead (+x), column 0 leftmost (+y), ego (rear axle) at the centre.
"""

from __future__ import annotations

import torch
from torch import nn

from agent.config import BEVConfig


class ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=1, bias=False),
            nn.BatchNorm2d(c),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class LSSBEV(nn.Module):
    """Image features (B*N, C_in, h, w) + intrinsics (B, N, 3, 3) + cam_to_ego (B, N, 4, 4) -> BEV (B, C, S, S)."""

    def __init__(self, in_channels: int, cfg: BEVConfig, feature_hw: tuple[int, int], feature_stride: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_bins = cfg.num_depth_bins
        self.lift_channels = cfg.lift_channels
        self.depth_net = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, self.num_bins + cfg.lift_channels, 1),
        )
        h, w = feature_hw
        depths = cfg.depth_min + (torch.arange(self.num_bins, dtype=torch.float32) + 0.5) * cfg.depth_step
        # feature cell (i, j) covers image pixels [j*s, (j+1)*s) x [i*s, (i+1)*s); its centre in pixel coordinates
        us = (torch.arange(w, dtype=torch.float32) + 0.5) * feature_stride
        vs = (torch.arange(h, dtype=torch.float32) + 0.5) * feature_stride
        d, v, u = torch.meshgrid(depths, vs, us, indexing="ij")
        # homogeneous pixel rays scaled by depth: (u d, v d, d), so K^-1 of it is the optical-frame point
        self.register_buffer("frustum", torch.stack([u * d, v * d, d], dim=-1), persistent=False)  # (D, h, w, 3)
        layers: list[nn.Module] = [
            nn.Conv2d(cfg.lift_channels, cfg.out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(cfg.out_channels),
            nn.ReLU(inplace=True),
        ]
        layers += [ResBlock(cfg.out_channels) for _ in range(cfg.encoder_blocks)]
        self.encoder = nn.Sequential(*layers)

    def ego_points(self, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor) -> torch.Tensor:
        """Frustum points in the ego frame: (B, N, D, h, w, 3)."""
        k_inv = torch.linalg.inv(intrinsics.float())  # (B, N, 3, 3)
        rot = cam_to_ego[..., :3, :3].float() @ k_inv  # optical ray -> ego direction
        trans = cam_to_ego[..., :3, 3].float()
        pts = torch.einsum("bnij,dhwj->bndhwi", rot, self.frustum)
        return pts + trans[:, :, None, None, None, :]

    def cell_index(self, pts: torch.Tensor) -> torch.Tensor:
        """Flat BEV cell index per point, batch-offset; points outside the raster or z range go to one dump slot."""
        cfg = self.cfg
        b = pts.shape[0]
        s = cfg.size
        res = cfg.resolution
        row = torch.floor((cfg.range_m / 2.0 - pts[..., 0]) / res).long()
        col = torch.floor((cfg.range_m / 2.0 - pts[..., 1]) / res).long()
        z = pts[..., 2]
        valid = (row >= 0) & (row < s) & (col >= 0) & (col < s) & (z >= cfg.z_min) & (z < cfg.z_max)
        batch = torch.arange(b, device=pts.device).view(b, *([1] * (pts.dim() - 2)))
        flat = batch * (s * s) + row * s + col
        return torch.where(valid, flat, torch.full_like(flat, b * s * s))

    def forward(
        self, feats: torch.Tensor, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the encoded BEV (B, C_out, S, S) and the depth distribution (B*N, D, h, w)."""
        b, n = intrinsics.shape[:2]
        if feats.shape[0] != b * n:
            raise ValueError(f"LSSBEV: {feats.shape[0]} feature maps for {b} samples x {n} cameras")
        return self.splat(feats, self.geometry_index(intrinsics, cam_to_ego), b)

    def geometry_index(self, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor) -> torch.Tensor:
        """Flat BEV cell index (B*N*D*h*w,) of every frustum point: a function of the camera geometry only, so an
        inference runtime computes it once per rig, outside the static graph (`torch.linalg.inv` neither exports to
        standard ONNX nor captures in a CUDA graph)."""
        return self.cell_index(self.ego_points(intrinsics, cam_to_ego)).reshape(-1)

    def splat(self, feats: torch.Tensor, index: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B*N, C_in, h, w) + `geometry_index` -> encoded BEV (B, C_out, S, S) and depth (B*N, D, h, w)."""
        if tuple(feats.shape[-2:]) != tuple(self.frustum.shape[1:3]):
            raise ValueError(
                f"LSSBEV: feature map {tuple(feats.shape[-2:])} does not match "
                f"the frustum {tuple(self.frustum.shape[1:3])}"
            )
        if index.shape != (feats.shape[0] * self.frustum[..., 0].numel(),):
            raise ValueError(f"LSSBEV: geometry index {tuple(index.shape)} does not fit {feats.shape[0]} feature maps")
        x = self.depth_net(feats)
        depth = x[:, : self.num_bins].softmax(dim=1)
        context = x[:, self.num_bins :]
        # (B*N, D, h, w, C): every depth bin of every pixel carries depth-weighted context
        volume = depth.unsqueeze(-1) * context.permute(0, 2, 3, 1).unsqueeze(1)
        c = volume.shape[-1]
        s = self.cfg.size
        # scatter_add (not index_add_): the ONNX exporter turns it into ScatterElements(reduction="add"), while
        # index_add_ becomes a plain ScatterElements that keeps one of several points per cell instead of their sum
        pooled = volume.new_zeros(b * s * s + 1, c).scatter_add_(0, index[:, None].expand(-1, c), volume.reshape(-1, c))
        bev = pooled[:-1].view(b, s, s, c).permute(0, 3, 1, 2).contiguous()
        return self.encoder(bev), depth
