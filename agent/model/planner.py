"""Truncated-diffusion planner (DiffusionDrive-style) with a cascade decoder.

Training noises the K anchors at a small timestep t < `train_truncation` and asks every decoder layer to recover the
expert trajectory from its nearest anchor. Inference noises the anchors at `infer_start_timestep` and runs
`num_inference_steps` deterministic DDIM (eta = 0) steps; the network predicts the clean sample. The noise is an
explicit input so runs are reproducible and the graph exports with the noise as a tensor input.

Each cascade layer samples the BEV at its K x P waypoints (bilinear `grid_sample`, softmax-weighted over waypoints),
cross-attends to the agent tokens, the map tokens and the ego/command tokens, applies an FFN and a FiLM modulation
from the diffusion timestep, then predicts a confidence logit per mode and an offset per waypoint.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agent.config import PlannerConfig
from agent.model.heads import mlp


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of (B,) timesteps -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=-1)


def bev_grid_coords(xy: torch.Tensor, range_m: float) -> torch.Tensor:
    """Ego (x, y) metres -> `grid_sample` coordinates (u, v) in [-1, 1] for the BEV raster (align_corners=False).

    Row 0 is +x (far ahead) and column 0 is +y (left): u = -y / (R/2) picks the column, v = -x / (R/2) the row.
    """
    half = range_m / 2.0
    return torch.stack([-xy[..., 1] / half, -xy[..., 0] / half], dim=-1)


class GridSampleBEVAttention(nn.Module):
    """Query (B, K, d) + waypoints (B, K, P, 2) -> softmax-weighted BEV features sampled at the waypoints (B, K, d)."""

    def __init__(self, d_model: int, num_points: int, range_m: float) -> None:
        super().__init__()
        self.range_m = range_m
        self.weights = nn.Linear(d_model, num_points)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, query: torch.Tensor, xy: torch.Tensor, bev: torch.Tensor) -> torch.Tensor:
        b, k, p, _ = xy.shape
        grid = bev_grid_coords(xy, self.range_m)
        sampled = F.grid_sample(bev, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # (B, d, K, P)
        w = self.weights(query).softmax(dim=-1)  # (B, K, P)
        return self.out(torch.einsum("bdkp,bkp->bkd", sampled, w))


class CascadeLayer(nn.Module):
    def __init__(self, d_model: int, num_heads: int, ffn_dim: int, num_poses: int, range_m: float) -> None:
        super().__init__()
        self.num_poses = num_poses
        self.bev_attn = GridSampleBEVAttention(d_model, num_poses, range_m)
        self.agent_attn = nn.MultiheadAttention(d_model, num_heads, batch_first=True)
        self.map_attn = nn.MultiheadAttention(d_model, num_heads, batch_first=True)
        self.ego_attn = nn.MultiheadAttention(d_model, num_heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d_model, ffn_dim), nn.ReLU(inplace=True), nn.Linear(ffn_dim, d_model))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(5))
        self.time_mod = nn.Sequential(nn.Mish(), nn.Linear(d_model, 2 * d_model))
        self.cls_head = mlp(d_model, d_model, 1)
        self.reg_head = mlp(d_model, d_model, num_poses * 3)

    def forward(
        self,
        query: torch.Tensor,
        traj: torch.Tensor,
        bev: torch.Tensor,
        agents: torch.Tensor,
        map_tokens: torch.Tensor,
        ego: torch.Tensor,
        t_emb: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q = self.norms[0](query + self.bev_attn(query, traj[..., :2], bev))
        q = self.norms[1](q + self.agent_attn(q, agents, agents, need_weights=False)[0])
        q = self.norms[2](q + self.map_attn(q, map_tokens, map_tokens, need_weights=False)[0])
        q = self.norms[3](q + self.ego_attn(q, ego, ego, need_weights=False)[0])
        q = self.norms[4](q + self.ffn(q))
        scale, shift = self.time_mod(t_emb).unsqueeze(1).chunk(2, dim=-1)
        q = q * (1.0 + scale) + shift
        b, k = q.shape[:2]
        reg = self.reg_head(q).view(b, k, self.num_poses, 3)
        xy = traj[..., :2] + reg[..., :2]
        heading = torch.tanh(reg[..., 2:3]) * math.pi
        return q, torch.cat([xy, heading], dim=-1), self.cls_head(q).squeeze(-1)


class TruncatedDiffusionPlanner(nn.Module):
    """Scene tokens + explicit noise -> K candidate trajectories (B, K, P, 3) and confidence logits (B, K)."""

    def __init__(self, cfg: PlannerConfig, d_model: int, num_heads: int, range_m: float, anchors: np.ndarray) -> None:
        super().__init__()
        from diffusers import DDIMScheduler

        self.cfg = cfg
        anchors = np.asarray(anchors, dtype=np.float32)
        if anchors.shape != (cfg.num_anchors, cfg.num_poses, 3):
            raise ValueError(f"planner anchors must be ({cfg.num_anchors}, {cfg.num_poses}, 3), got {anchors.shape}")
        self.register_buffer("anchors", torch.from_numpy(anchors.copy()))
        scheduler = DDIMScheduler(
            num_train_timesteps=cfg.num_train_timesteps,
            beta_schedule=cfg.beta_schedule,
            prediction_type="sample",
            clip_sample=False,
            set_alpha_to_one=True,
        )
        # baked as a constant so the denoising loop has no Python-side scheduler state (export, determinism)
        self.register_buffer("alphas_cumprod", scheduler.alphas_cumprod.clone().float(), persistent=False)
        lo = torch.tensor([cfg.x_range[0], cfg.y_range[0], cfg.heading_range[0]], dtype=torch.float32)
        hi = torch.tensor([cfg.x_range[1], cfg.y_range[1], cfg.heading_range[1]], dtype=torch.float32)
        self.register_buffer("norm_lo", lo, persistent=False)
        self.register_buffer("norm_hi", hi, persistent=False)
        self.traj_encoder = mlp(cfg.num_poses * 3, d_model, d_model)
        self.time_mlp = nn.Sequential(nn.Linear(d_model, d_model), nn.Mish(), nn.Linear(d_model, d_model))
        self.layers = nn.ModuleList(
            CascadeLayer(d_model, num_heads, cfg.ffn_dim, cfg.num_poses, range_m) for _ in range(cfg.num_layers)
        )
        self.d_model = d_model

    # ------------------------------------------------------------------------------------------------ normalisation
    def normalize(self, traj: torch.Tensor) -> torch.Tensor:
        return 2.0 * (traj - self.norm_lo) / (self.norm_hi - self.norm_lo) - 1.0

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x + 1.0) / 2.0 * (self.norm_hi - self.norm_lo) + self.norm_lo

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """q(x_t | x_0) for normalised samples (B, K, P, 3) and per-sample timesteps (B,) (as diffusers' add_noise)."""
        ab = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        return ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise

    def ddim_step(self, x_t: torch.Tensor, x0: torch.Tensor, t: int, t_prev: int) -> torch.Tensor:
        """Deterministic DDIM update (eta = 0) from t to t_prev given the predicted clean sample; t_prev < 0 -> x0."""
        ab_t = self.alphas_cumprod[t]
        ab_prev = self.alphas_cumprod[t_prev] if t_prev >= 0 else torch.ones_like(ab_t)
        eps = (x_t - ab_t.sqrt() * x0) / (1.0 - ab_t).sqrt()
        return ab_prev.sqrt() * x0 + (1.0 - ab_prev).sqrt() * eps

    # ------------------------------------------------------------------------------------------------------ decoding
    def decode(
        self, x_t: torch.Tensor, t: torch.Tensor, scene: dict[str, torch.Tensor]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One cascade pass on normalised noisy trajectories -> [(trajectory (B,K,P,3) m, logits (B,K))] per layer."""
        b, k = x_t.shape[:2]
        traj = self.denormalize(x_t)
        query = self.traj_encoder(x_t.reshape(b, k, -1)) + scene["ego_status_token"].unsqueeze(1)
        t_emb = self.time_mlp(timestep_embedding(t, self.d_model))
        outputs = []
        for i, layer in enumerate(self.layers):
            query, traj_new, logits = layer(
                query, traj, scene["bev"], scene["agent_tokens"], scene["map_tokens"], scene["ego_tokens"], t_emb
            )
            outputs.append((traj_new, logits))
            # the next layer refines from this layer's waypoints; gradients stay within each layer (cascade)
            traj = traj_new.detach() if i + 1 < len(self.layers) else traj_new
        return outputs

    def forward_train(
        self, scene: dict[str, torch.Tensor], noise: torch.Tensor, timesteps: torch.Tensor
    ) -> dict[str, torch.Tensor | list]:
        b = scene["bev"].shape[0]
        x0 = self.normalize(self.anchors).unsqueeze(0).expand(b, -1, -1, -1)
        x_t = self.add_noise(x0, noise, timesteps).clamp(-1.0, 1.0)
        layers = self.decode(x_t, timesteps, scene)
        return {"trajectories": layers[-1][0], "confidence_logits": layers[-1][1], "layers": layers}

    def forward_infer(self, scene: dict[str, torch.Tensor], noise: torch.Tensor) -> dict[str, torch.Tensor | list]:
        b = scene["bev"].shape[0]
        steps = self.cfg.inference_timesteps
        x0 = self.normalize(self.anchors).unsqueeze(0).expand(b, -1, -1, -1)
        t0 = torch.full((b,), steps[0], dtype=torch.long, device=noise.device)
        x_t = self.add_noise(x0, noise, t0).clamp(-1.0, 1.0)
        layers: list = []
        for i, t in enumerate(steps):
            tt = torch.full((b,), t, dtype=torch.long, device=noise.device)
            layers = self.decode(x_t, tt, scene)
            pred = self.normalize(layers[-1][0]).clamp(-1.0, 1.0)
            t_prev = steps[i + 1] if i + 1 < len(steps) else -1
            x_t = self.ddim_step(x_t, pred, t, t_prev)
        return {"trajectories": layers[-1][0], "confidence_logits": layers[-1][1], "layers": layers}

    def sample_train_timesteps(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(0, self.cfg.train_truncation, (batch,), generator=generator, device=self.anchors.device)

    def noise_shape(self, batch: int) -> tuple[int, int, int, int]:
        return (batch, self.cfg.num_anchors, self.cfg.num_poses, 3)
