"""The model as three static-shape graphs, the unit every backend runs and `irlvla export onnx` writes.

perception: images + camera-geometry index + ego/command vectors -> BEV, scene tokens and perception outputs
planner:    scene tokens + explicit noise -> K candidates (the fixed DDIM step count unrolled; alphas baked in)
rwm:        candidates + scene tokens -> nine expected sub-metrics and the EPDMS per candidate

Camera geometry (intrinsics and extrinsics of the preprocessed images) enters as `bev_index`, the flat BEV cell of
every frustum point (`LSSBEV.geometry_index`): it changes only with the rig, is solved once on the host, and keeps a
matrix inverse (no standard ONNX op, a sync point on CUDA) out of the graphs. Batch size is 1 (one planning step).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from agent.model.irlvla import IRLVLA

GRAPH_NAMES = ("perception", "planner", "rwm")

PERCEPTION_INPUTS = ("images", "bev_index", "ego", "speed_probs", "path_probs")
#: scene tokens the planner and the RWM read, then the perception outputs the policy's selection reads
SCENE_OUTPUTS = ("bev", "agent_tokens", "map_tokens", "ego_tokens", "ego_status_token")
PERCEPTION_OUTPUTS = (
    *SCENE_OUTPUTS,
    "agent_boxes",
    "agent_logits",
    "agent_class_logits",
    "map_points",
    "map_logits",
    "map_class_logits",
    "seg_logits",
)
PLANNER_INPUTS = ("noise", *SCENE_OUTPUTS)
PLANNER_OUTPUTS = ("trajectories", "confidence_logits")
RWM_INPUTS = ("trajectories", "bev", "agent_tokens", "map_tokens", "ego_tokens")
RWM_OUTPUTS = ("rwm_metrics", "rwm_epdms")

GRAPH_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "perception": (PERCEPTION_INPUTS, PERCEPTION_OUTPUTS),
    "planner": (PLANNER_INPUTS, PLANNER_OUTPUTS),
    "rwm": (RWM_INPUTS, RWM_OUTPUTS),
}
#: what the policy reads from one step (host arrays, batch axis kept)
POLICY_OUTPUTS = (*PERCEPTION_OUTPUTS[len(SCENE_OUTPUTS) :], *PLANNER_OUTPUTS, *RWM_OUTPUTS)


class PerceptionGraph(nn.Module):
    def __init__(self, model: IRLVLA) -> None:
        super().__init__()
        self.model = model

    def forward(self, images, bev_index, ego, speed_probs, path_probs) -> tuple[torch.Tensor, ...]:
        out = self.model.perceive_indexed(images, bev_index, ego, speed_probs, path_probs)
        return tuple(out[k] for k in PERCEPTION_OUTPUTS)


class PlannerGraph(nn.Module):
    def __init__(self, model: IRLVLA) -> None:
        super().__init__()
        self.planner = model.planner

    def forward(self, noise, bev, agent_tokens, map_tokens, ego_tokens, ego_status_token) -> tuple[torch.Tensor, ...]:
        scene = {
            "bev": bev,
            "agent_tokens": agent_tokens,
            "map_tokens": map_tokens,
            "ego_tokens": ego_tokens,
            "ego_status_token": ego_status_token,
        }
        plan = self.planner.forward_infer(scene, noise)
        return plan["trajectories"], plan["confidence_logits"]


class RWMGraph(nn.Module):
    def __init__(self, model: IRLVLA) -> None:
        super().__init__()
        self.rwm = model.rwm

    def forward(self, trajectories, bev, agent_tokens, map_tokens, ego_tokens) -> tuple[torch.Tensor, ...]:
        out = self.rwm(trajectories, bev, torch.cat([agent_tokens, map_tokens, ego_tokens], dim=1))
        return out["metrics"], out["epdms"]


def graph_modules(model: IRLVLA) -> dict[str, nn.Module]:
    return {"perception": PerceptionGraph(model), "planner": PlannerGraph(model), "rwm": RWMGraph(model)}


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: torch.dtype


def input_specs(model: IRLVLA) -> dict[str, TensorSpec]:
    """Shape and dtype of every graph input at batch 1 (what an engine is built for)."""
    cfg = model.cfg
    n, h, w = cfg.preprocess.num_cameras, cfg.preprocess.image_height, cfg.preprocess.image_width
    d, s = cfg.d_model, cfg.bev.size
    det, mp = cfg.detection.num_agents, cfg.map.num_queries
    k, p = cfg.planner.num_anchors, cfg.planner.num_poses
    f32 = torch.float32
    return {
        "images": TensorSpec((1, n, 3, h, w), f32),
        "bev_index": TensorSpec((n * model.bev.frustum[..., 0].numel(),), torch.int64),
        "ego": TensorSpec((1, cfg.planner.ego_dim), f32),
        "speed_probs": TensorSpec((1, cfg.num_speed_commands), f32),
        "path_probs": TensorSpec((1, cfg.num_path_commands), f32),
        "noise": TensorSpec((1, k, p, 3), f32),
        "bev": TensorSpec((1, d, s, s), f32),
        "agent_tokens": TensorSpec((1, det, d), f32),
        "map_tokens": TensorSpec((1, mp, d), f32),
        "ego_tokens": TensorSpec((1, 4, d), f32),
        "ego_status_token": TensorSpec((1, d), f32),
        "trajectories": TensorSpec((1, k, p, 3), f32),
    }


def example_inputs(model: IRLVLA, seed: int = 0, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Plausible inputs for every graph (random images, the model rig's geometry, one-hot commands, seeded noise)."""
    from agent.types import model_rig

    cfg = model.cfg
    gen = torch.Generator().manual_seed(seed)
    specs = input_specs(model)
    rig = model_rig(cfg.preprocess.image_width, cfg.preprocess.image_height)
    names = list(cfg.preprocess.camera_names)
    intr = torch.tensor(rig.intrinsics(), dtype=torch.float32)
    ext = torch.tensor(rig.cam_to_ego(), dtype=torch.float32)
    order = [rig.names.index(c) for c in names]
    with torch.no_grad():
        index = model.bev.geometry_index(intr[order][None].to(model.device), ext[order][None].to(model.device))
    out = {k: torch.randn(v.shape, generator=gen) for k, v in specs.items() if v.dtype == torch.float32}
    out["bev_index"] = index.cpu()
    out["speed_probs"] = torch.nn.functional.one_hot(torch.tensor([3]), cfg.num_speed_commands).float()
    out["path_probs"] = torch.nn.functional.one_hot(torch.tensor([0]), cfg.num_path_commands).float()
    return {k: v.to(device) for k, v in out.items()}
