"""The IRL-VLA model: images -> BEV -> perception -> truncated-diffusion planner -> reward world model.

`IRLVLA.forward(batch)` takes tensors only (preprocessed images, camera geometry, ego vector, command probabilities,
explicit noise) and returns a dict of tensors; `IRLVLA.loss(outputs, batch)` computes every training loss. The VLM
runs outside the model (its commands enter as probability vectors, embedded here), at its own rate.

Batch keys (B samples, N cameras):
  images (B, N, 3, H, W) normalised; intrinsics (B, N, 3, 3) for the preprocessed images; cam_to_ego (B, N, 4, 4);
  ego (B, ego_dim); speed_probs (B, 13); path_probs (B, 9); optional noise (B, K, P, 3) and, in training mode,
  timesteps (B,), rwm_trajectories (B, M, P, 3). Loss targets: gt_trajectory (B, P, 3); agent_boxes (B, G, 7),
  agent_labels (B, G), agent_mask (B, G); map_points (B, G, P, 2), map_labels, map_mask; bev_semantic (B, H, W);
  rwm_targets (B, M or K, 9) in EPDMS_METRICS order (scoring rwm_trajectories when given, else the candidates).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from agent.config import ModelConfig
from agent.model.anchors import load_anchors, procedural_anchors
from agent.model.backbone import VoVNetBackbone
from agent.model.bev import LSSBEV
from agent.model.heads import DetectionHead, MapHead, SegHead, mlp, sinusoidal_2d
from agent.model.losses import detection_loss, imitation_loss, map_loss, seg_loss
from agent.model.neck import FPNNeck
from agent.model.planner import TruncatedDiffusionPlanner
from agent.model.rwm import RewardWorldModel, rwm_loss

logger = logging.getLogger(__name__)

STAGES = ("backbone", "bev", "heads", "planner", "rwm")


@contextmanager
def stage_timer(timings: dict[str, float] | None, name: str, device: torch.device) -> Iterator[None]:
    """Accumulate wall time (ms) of a stage into `timings`, synchronising CUDA so the number means something."""
    if timings is None:
        yield
        return
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    yield
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    timings[name] = timings.get(name, 0.0) + (time.perf_counter() - t0) * 1000.0


def initial_anchors(cfg: ModelConfig) -> np.ndarray:
    p = cfg.planner
    if p.anchors_path:
        return load_anchors(p.anchors_path, p.num_anchors, p.num_poses, seed=cfg.seed)
    return procedural_anchors(p.num_anchors, p.num_poses, p.interval)


class IRLVLA(nn.Module):
    def __init__(self, cfg: ModelConfig, anchors: np.ndarray | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.backbone = VoVNetBackbone(cfg.backbone)
        self.neck = FPNNeck(self.backbone.out_channels, cfg.neck)
        stride = min(self.backbone.strides)
        self.bev = LSSBEV(cfg.neck.out_channels, cfg.bev, cfg.feature_hw, stride)
        self.bev_proj = nn.Conv2d(cfg.bev.out_channels, d, 1)
        self.register_buffer("bev_pos", sinusoidal_2d(cfg.bev.size, d), persistent=False)
        self.detection = DetectionHead(cfg.detection, d, cfg.num_heads, cfg.bev.range_m)
        self.map = MapHead(cfg.map, d, cfg.num_heads, cfg.bev.range_m)
        self.seg = SegHead(cfg.seg, cfg.bev.out_channels)
        self.ego_encoder = mlp(cfg.planner.ego_dim, d, d)
        self.speed_embedding = nn.Embedding(cfg.num_speed_commands, d)
        self.path_embedding = nn.Embedding(cfg.num_path_commands, d)
        self.planner = TruncatedDiffusionPlanner(
            cfg.planner, d, cfg.num_heads, cfg.bev.range_m, initial_anchors(cfg) if anchors is None else anchors
        )
        self.rwm = RewardWorldModel(cfg.rwm, cfg.planner, d, cfg.num_heads, cfg.bev.range_m)

    # --------------------------------------------------------------------------------------------------- helpers
    @property
    def device(self) -> torch.device:
        return self.planner.anchors.device

    def check_batch(self, batch: dict[str, torch.Tensor]) -> None:
        cfg = self.cfg
        n, h, w = cfg.preprocess.num_cameras, cfg.preprocess.image_height, cfg.preprocess.image_width
        need = {
            "images": (n, 3, h, w),
            "intrinsics": (n, 3, 3),
            "cam_to_ego": (n, 4, 4),
            "ego": (cfg.planner.ego_dim,),
            "speed_probs": (cfg.num_speed_commands,),
            "path_probs": (cfg.num_path_commands,),
        }
        missing = [k for k in need if k not in batch]
        if missing:
            raise KeyError(f"IRLVLA batch is missing {missing}")
        b = batch["images"].shape[0]
        for k, shape in need.items():
            if tuple(batch[k].shape) != (b, *shape):
                raise ValueError(f"IRLVLA batch[{k!r}] must have shape {(b, *shape)}, got {tuple(batch[k].shape)}")

    def encode_commands(self, ego: torch.Tensor, speed_probs: torch.Tensor, path_probs: torch.Tensor) -> dict:
        """Ego status and VLM command probabilities -> tokens (probabilities times the embedding tables)."""
        status = self.ego_encoder(ego)
        speed = speed_probs.to(status.dtype) @ self.speed_embedding.weight
        path = path_probs.to(status.dtype) @ self.path_embedding.weight
        return {"ego_status_token": status, "speed_token": speed, "path_token": path}

    # --------------------------------------------------------------------------------------------------- forward
    def perceive(self, batch: dict[str, torch.Tensor], timings: dict[str, float] | None = None) -> dict:
        """Images -> BEV -> perception outputs and the scene tokens the planner and RWM read."""
        self.check_batch(batch)
        index = self.bev.geometry_index(batch["intrinsics"], batch["cam_to_ego"])
        return self.perceive_indexed(
            batch["images"], index, batch["ego"], batch["speed_probs"], batch["path_probs"], timings
        )

    def perceive_indexed(
        self,
        images: torch.Tensor,
        bev_index: torch.Tensor,
        ego: torch.Tensor,
        speed_probs: torch.Tensor,
        path_probs: torch.Tensor,
        timings: dict[str, float] | None = None,
    ) -> dict:
        """`perceive` with the camera geometry already solved into `LSSBEV.geometry_index` (static-shape, no matrix
        inverse: the part inference runtimes export and capture)."""
        b = images.shape[0]
        dev = images.device
        with stage_timer(timings, "backbone", dev):
            feats = self.neck(self.backbone(images.flatten(0, 1)))
        with stage_timer(timings, "bev", dev):
            bev, depth = self.bev.splat(feats, bev_index, b)
        with stage_timer(timings, "heads", dev):
            bev_d = self.bev_proj(bev)
            tokens = bev_d.flatten(2).transpose(1, 2) + self.bev_pos.unsqueeze(0)
            out: dict = {"bev": bev_d, "depth": depth}
            out.update(self.detection(tokens))
            out.update(self.map(tokens))
            out["seg_logits"] = self.seg(bev)
            cmd = self.encode_commands(ego, speed_probs, path_probs)
            out.update(cmd)
            out["ego_tokens"] = torch.stack(
                [cmd["ego_status_token"], out["ego_token"], cmd["speed_token"], cmd["path_token"]], dim=1
            )
        return out

    def forward(
        self, batch: dict[str, torch.Tensor], mode: str | None = None, timings: dict[str, float] | None = None
    ) -> dict:
        """mode "train" (one noisy pass at sampled timesteps, all layers supervised) or "infer" (DDIM loop);
        default: the module's training flag. Missing noise is drawn from torch's global generator."""
        mode = mode or ("train" if self.training else "infer")
        if mode not in ("train", "infer"):
            raise ValueError(f"IRLVLA.forward mode must be 'train' or 'infer', got {mode!r}")
        out = self.perceive(batch, timings)
        b = out["bev"].shape[0]
        dev = out["bev"].device
        noise = batch.get("noise")
        shape = self.planner.noise_shape(b)
        if noise is None:
            noise = torch.randn(shape, device=dev)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"planner noise must have shape {shape}, got {tuple(noise.shape)}")
        with stage_timer(timings, "planner", dev):
            if mode == "train":
                t = batch.get("timesteps")
                if t is None:
                    t = self.planner.sample_train_timesteps(b)
                elif tuple(t.shape) != (b,):
                    raise ValueError(f"timesteps must have shape ({b},), got {tuple(t.shape)}")
                plan = self.planner.forward_train(out, noise.to(dev), t.to(dev).long())
            else:
                plan = self.planner.forward_infer(out, noise.to(dev))
        out["trajectories"] = plan["trajectories"]
        out["confidence_logits"] = plan["confidence_logits"]
        out["plan_layers"] = plan["layers"]
        with stage_timer(timings, "rwm", dev):
            scene = torch.cat([out["agent_tokens"], out["map_tokens"], out["ego_tokens"]], dim=1)
            trajs = batch.get("rwm_trajectories")
            rwm = self.rwm(out["trajectories"] if trajs is None else trajs, out["bev"], scene)
        out["rwm"] = rwm
        return out

    # ------------------------------------------------------------------------------------------------------ loss
    def loss(self, out: dict, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """All losses whose targets are present in `batch`; `total` is their weighted sum."""
        cfg = self.cfg
        losses: dict[str, torch.Tensor] = {}
        total = out["bev"].new_zeros(())
        if "gt_trajectory" in batch:
            l, parts = imitation_loss(out["plan_layers"], self.planner.anchors, batch["gt_trajectory"], cfg.planner)
            losses.update(parts, imitation=l)
            total = total + l
        if "agent_boxes" in batch:
            l, parts = detection_loss(
                out, batch["agent_boxes"], batch["agent_labels"], batch["agent_mask"], cfg.detection, cfg.bev.range_m
            )
            losses.update(parts, detection=l)
            total = total + l
        if "map_points" in batch:
            l, parts = map_loss(
                out, batch["map_points"], batch["map_labels"], batch["map_mask"], cfg.map, cfg.bev.range_m
            )
            losses.update(parts, map=l)
            total = total + l
        if "bev_semantic" in batch:
            l, parts = seg_loss(out["seg_logits"], batch["bev_semantic"], cfg.seg.loss_weight)
            losses.update(parts, seg=l)
            total = total + l
        if "rwm_targets" in batch:
            l, parts = rwm_loss(out["rwm"], batch["rwm_targets"], cfg.rwm, batch.get("rwm_mask"))
            losses.update({f"rwm_{k}": v.detach() for k, v in parts.items()}, rwm=l)
            total = total + l
        losses["total"] = total
        return losses

    # ------------------------------------------------------------------------------------------------- structure
    def parameter_counts(self) -> dict[str, int]:
        counts = {name: sum(p.numel() for p in child.parameters()) for name, child in self.named_children()}
        counts["total"] = sum(p.numel() for p in self.parameters())
        return counts


def build_model(cfg: ModelConfig, device: str | torch.device = "cpu", anchors: np.ndarray | None = None) -> IRLVLA:
    """Build the model with deterministic initial weights (seeded by `cfg.seed`) on `device` ('meta' skips memory)."""
    device = torch.device(device)
    if device.type == "meta":  # structure only: anchors need their shape, not their values (no file read)
        p = cfg.planner
        shape_only = np.zeros((p.num_anchors, p.num_poses, 3), dtype=np.float32)
        with torch.device("meta"):
            return IRLVLA(cfg, anchors=anchors if anchors is not None else shape_only)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = IRLVLA(cfg, anchors=anchors)
    return model.to(device)


__all__ = ["IRLVLA", "STAGES", "build_model", "initial_anchors", "stage_timer"]
