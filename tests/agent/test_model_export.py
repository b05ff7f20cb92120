"""Exportability: the whole tiny model (inference mode, noise as an input) traces with `torch.export` and the
exported program reproduces the eager outputs."""

from __future__ import annotations

import pytest
import torch

from agent.config import load_preset
from agent.model.irlvla import build_model
from agent.types import model_rig

KEYS = ("images", "intrinsics", "cam_to_ego", "ego", "speed_probs", "path_probs", "noise")


class _Planning(torch.nn.Module):
    """Positional-argument wrapper: export needs tensors in, tensors out."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(dict(zip(KEYS, tensors)), mode="infer")
        return out["trajectories"], out["confidence_logits"], out["rwm"]["epdms"], out["seg_logits"]


@pytest.mark.slow
def test_tiny_model_exports_with_explicit_noise():
    if not hasattr(torch, "export"):
        pytest.skip("torch.export not available")
    cfg = load_preset("tiny")
    model = build_model(cfg).eval()
    g = torch.Generator().manual_seed(5)
    n, h, w = cfg.preprocess.num_cameras, cfg.preprocess.image_height, cfg.preprocess.image_width
    rig = model_rig(w, h)
    args = (
        torch.randn(1, n, 3, h, w, generator=g),
        torch.tensor(rig.intrinsics(), dtype=torch.float32)[None],
        torch.tensor(rig.cam_to_ego(), dtype=torch.float32)[None],
        torch.randn(1, cfg.planner.ego_dim, generator=g),
        torch.softmax(torch.randn(1, 13, generator=g), -1),
        torch.softmax(torch.randn(1, 9, generator=g), -1),
        torch.randn(model.planner.noise_shape(1), generator=g),
    )
    wrapper = _Planning(model)
    program = torch.export.export(wrapper, args)
    with torch.no_grad():
        eager = wrapper(*args)
        exported = program.module()(*args)
    for a, b in zip(eager, exported):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
