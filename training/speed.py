"""Throughput options of the training step (`SpeedConfig`): channels-last image modules, fused AdamW, torch.compile.

Applied in place to the model before DDP wraps it, so parameter names, state dicts and checkpoints are exactly those
of the plain model: channels-last only changes the weights' strides (`save_checkpoint` writes contiguous copies, a
resumed `state.pt` is copied into the existing parameters), and `nn.Module.compile` compiles a module's forward
without inserting the `_orig_mod.` level that `torch.compile(module)` would add to every key.
"""

from __future__ import annotations

import logging

import torch

from training.config import SpeedConfig

logger = logging.getLogger(__name__)

#: child modules that see the camera images (and so run the 2-D convolutions channels-last helps)
IMAGE_MODULES = ("backbone", "neck")


def _to_channels_last(module: torch.nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: hand the module NHWC-strided 4-D inputs (its weights are NHWC too)."""
    return tuple(
        a.contiguous(memory_format=torch.channels_last) if torch.is_tensor(a) and a.dim() == 4 else a for a in args
    )


def apply_speed_options(model: torch.nn.Module, cfg: SpeedConfig) -> list[str]:
    """Apply channels-last and compile to the named children of `model` that exist; returns what was done.

    A model without those children (the VLM's LLaVA) is left as it is, with a log line saying so.
    """
    done: list[str] = []
    children = dict(model.named_children())
    if cfg.channels_last:
        for name in IMAGE_MODULES:
            if name in children:
                children[name].to(memory_format=torch.channels_last)
                children[name].register_forward_pre_hook(_to_channels_last)
                done.append(f"channels_last:{name}")
    if cfg.compile:
        for name in cfg.compile_modules:
            if name not in children:
                raise ValueError(
                    f"SpeedConfig.compile_modules names {name!r}, which {type(model).__name__} does not have "
                    f"(its children: {sorted(children)})"
                )
            children[name].compile(mode=cfg.compile_mode, dynamic=False)
            done.append(f"compile:{name}")
    if (cfg.channels_last or cfg.compile) and not done:
        logger.info("speed options: %s has none of %s; nothing applied", type(model).__name__, IMAGE_MODULES)
    return done


def build_optimizer(
    params: list[torch.nn.Parameter], lr: float, weight_decay: float, fused: bool, device: torch.device
) -> torch.optim.AdamW:
    """AdamW; its fused CUDA kernel when `fused` and the parameters live on a GPU (else the default implementation)."""
    use_fused = fused and device.type == "cuda"
    if fused and not use_fused:
        logger.info("fused AdamW is used on CUDA only; %s keeps the default AdamW implementation", device)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True if use_fused else None)


__all__ = ["IMAGE_MODULES", "apply_speed_options", "build_optimizer"]
