"""VoVNet image backbone (timm) and the DD3D / detectron2 V2-99 weight loader.

`full` is timm's `ese_vovnet99b` (VoVNetV2-99 with effective squeeze-excitation) in features-only mode, keeping stages
4 and 5 (strides 16 and 32) as DiffVLA does; `tiny` is a narrow VoVNet built with the same timm machinery.

detectron2's V-99-eSE (vovnet-detectron2, used by DD3D) puts an eSE gate in *every* OSA block, timm only in each
stage's last block; `ese_every_block=True` adds the missing gates so converted DD3D weights load completely.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from agent.config import BackboneConfig

logger = logging.getLogger(__name__)

#: prefixes stripped from checkpoint keys before mapping (DD3D wraps the VoVNet in an FPN as `backbone.bottom_up`)
_PREFIXES = ("module.", "model.", "img_backbone.", "backbone.bottom_up.", "bottom_up.", "backbone.", "body.")
_TIMM_SEQ = re.compile(r"^(stem|stages)\.(\d+)\.")

_D2_STEM = re.compile(r"^stem\.stem_(\d+)/(conv|norm)\.(\w+)$")
_D2_LAYER = re.compile(r"^stage(\d)\.OSA\d_(\d+)\.layers\.(\d+)\.OSA\d_\d+_\d+/(conv|norm)\.(\w+)$")
_D2_CONCAT = re.compile(r"^stage(\d)\.OSA\d_(\d+)\.concat\.OSA\d_\d+_concat/(conv|norm)\.(\w+)$")
_D2_ESE = re.compile(r"^stage(\d)\.OSA\d_(\d+)\.ese\.fc\.(weight|bias)$")


def timm_arch(variant: str) -> dict:
    """timm's VoVNet architecture dict for a named variant (clear error for unknown names)."""
    from timm.models import vovnet

    if variant not in vovnet.model_cfgs:
        raise ValueError(f"unknown timm VoVNet variant {variant!r}; known: {sorted(vovnet.model_cfgs)} or 'custom'")
    return dict(vovnet.model_cfgs[variant])


def resolve_arch(cfg: BackboneConfig) -> dict:
    """The architecture dict a config builds: timm's for a named variant, the config's fields for 'custom'."""
    if cfg.variant != "custom":
        return timm_arch(cfg.variant)
    return {
        "stem_chs": list(cfg.stem_chs),
        "stage_conv_chs": list(cfg.stage_conv_chs),
        "stage_out_chs": list(cfg.stage_out_chs),
        "layer_per_block": cfg.layer_per_block,
        "block_per_stage": list(cfg.block_per_stage),
        "residual": True,
        "depthwise": cfg.depthwise,
        "attn": cfg.attn,
    }


class VoVNetBackbone(nn.Module):
    """Images (B, 3, H, W) -> the selected stage outputs, finest first."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        from timm.models import vovnet
        from timm.models._builder import build_model_with_cfg

        self.cfg = cfg
        arch = resolve_arch(cfg)
        # features_only drops the classifier and every stage after the last requested one
        self.body = build_model_with_cfg(
            vovnet.VovNet,
            cfg.variant if cfg.variant != "custom" else "vovnet_custom",
            pretrained=False,
            pretrained_cfg={"num_classes": 0, "input_size": (3, 224, 224)},
            model_cfg=arch,
            feature_cfg={"flatten_sequential": True},
            features_only=True,
            out_indices=tuple(cfg.out_indices),
        )
        if cfg.ese_every_block and arch.get("attn"):
            self._add_gates_to_every_block(arch["attn"])
        self.out_channels: tuple[int, ...] = tuple(self.body.feature_info.channels())
        self.strides: tuple[int, ...] = tuple(self.body.feature_info.reduction())
        if cfg.pretrained_path:
            load_vovnet_weights(self, cfg.pretrained_path)

    def _add_gates_to_every_block(self, attn: str) -> None:
        from timm.layers import create_attn

        for name, module in self.body.named_modules():
            if type(module).__name__ == "OsaBlock" and module.attn is None:
                out_chs = module.conv_concat.conv.out_channels
                module.attn = create_attn(attn, out_chs)
                logger.debug("added %s gate to %s", attn, name)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(x))


# --------------------------------------------------------------------------------------------------------------------
# Weight loading
# --------------------------------------------------------------------------------------------------------------------


def _strip_prefix(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p) :], True
    return key


def detectron2_to_timm_key(key: str) -> str | None:
    """Map one vovnet-detectron2 / DD3D key to timm's features-only name; None for keys with no timm home (FPN...)."""
    k = _strip_prefix(key)
    part = {"conv": "conv", "norm": "bn"}
    if m := _D2_STEM.match(k):
        return f"stem_{int(m[1]) - 1}.{part[m[2]]}.{m[3]}"
    if m := _D2_LAYER.match(k):
        return f"stages_{int(m[1]) - 2}.blocks.{int(m[2]) - 1}.conv_mid.{m[3]}.{part[m[4]]}.{m[5]}"
    if m := _D2_CONCAT.match(k):
        return f"stages_{int(m[1]) - 2}.blocks.{int(m[2]) - 1}.conv_concat.{part[m[3]]}.{m[4]}"
    if m := _D2_ESE.match(k):
        return f"stages_{int(m[1]) - 2}.blocks.{int(m[2]) - 1}.attn.fc.{m[3]}"
    return None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors or a torch .pth/.pt file (weights only; nested 'model'/'state_dict' unwrapped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights {path} do not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def timm_to_features_key(key: str) -> str | None:
    """A timm VovNet key (classifier model or features-only, optionally prefixed) -> the features-only name;
    None for the classifier head."""
    k = _strip_prefix(key)
    if k.startswith("head."):
        return None
    return _TIMM_SEQ.sub(lambda m: f"{m[1]}_{m[2]}.", k)


def convert_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """detectron2-layout or timm-layout weights -> timm features-only names; also returns the ignored source keys."""
    is_d2 = any("OSA" in k or "/conv." in k for k in state)
    out, ignored = {}, []
    for key, value in state.items():
        new = detectron2_to_timm_key(key) if is_d2 else timm_to_features_key(key)
        if new is None:
            ignored.append(key)
        else:
            out[new] = value
    return out, ignored


def load_vovnet_weights(backbone: VoVNetBackbone, path: str | Path, strict: bool = True) -> dict[str, list[str]]:
    """Load converted DD3D/detectron2 V2-99 (or timm) weights into `backbone`.

    Every mismatch is listed: keys the model needs but the file lacks, keys the file maps to that the model does not
    have (typically eSE gates of non-final blocks: set `ese_every_block: true`), and shape mismatches. With `strict`,
    any of them raises ValueError; BatchNorm `num_batches_tracked` counters are never required.
    """
    mapped, ignored = convert_state_dict(read_state_dict(path))
    own = backbone.body.state_dict()
    need = {k for k in own if not k.endswith("num_batches_tracked")}
    missing = sorted(need - set(mapped))
    unexpected = sorted(set(mapped) - set(own))
    shapes = sorted(
        f"{k}: file {tuple(mapped[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(mapped) & set(own)
        if tuple(mapped[k].shape) != tuple(own[k].shape)
    )
    report = {"missing": missing, "unexpected": unexpected, "shape_mismatch": shapes, "ignored": ignored}
    if ignored:
        logger.info("%s: ignored %d keys with no backbone counterpart (e.g. %s)", path, len(ignored), ignored[:3])
    if strict and (missing or unexpected or shapes):
        hint = ""
        if any(".attn." in k for k in unexpected):
            hint = " (eSE gates in every block: detectron2 V-99-eSE layout, set backbone.ese_every_block: true)"
        raise ValueError(
            f"backbone weights {path} do not match the {backbone.cfg.variant} backbone: "
            f"{len(missing)} missing {missing[:10]}, {len(unexpected)} unexpected {unexpected[:10]}{hint}, "
            f"{len(shapes)} shape mismatches {shapes[:10]}"
        )
    to_load = {k: v for k, v in mapped.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    backbone.body.load_state_dict(to_load, strict=False)
    logger.info("loaded %d backbone tensors from %s", len(to_load), path)
    return report
