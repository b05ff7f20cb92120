"""Fine-tuned VLM weights (`irlvla train vlm` -> `vlm.safetensors`), written and read back for `VLMConfig.checkpoint`.

The file is safetensors written by `safetensors.torch.save_model` (which drops the duplicate of tied embeddings) with
metadata: a format tag, the VLM config it was trained with (JSON) and a digest of the model's float32 state dict;
a `<file>.sha256` sidecar holds the file's digest, as for model checkpoints. Loading refuses, with the reason: a
missing file, a file whose sidecar or tensor digest does not match (corrupted or modified), a file that is not ours,
and a config whose architecture fields (`ARCH_FIELDS`: views, image size, layer sizes) differ from the stored ones.
Weights are loaded before the model is cast to `VLMConfig.dtype`, so the digest is checked on the exact stored values.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from agent.checkpoint import CheckpointError, sha256_file, sha256_path, tensors_sha256, verify_checkpoint
from agent.model.vlm_config import TINY_SIZE_FIELDS, VLMConfig
from irlvla.atomic import atomic_path, atomic_write_text
from irlvla.configload import to_plain

logger = logging.getLogger(__name__)

FORMAT = "irlvla-vlm"
FORMAT_VERSION = "1"

#: the VLMConfig fields that shape the tiny model's weights (tokenizer vocabulary, image tokens, layer sizes);
#: every other field (rate, mode, device, dtype, seed of the random init, paths) may differ at load time
ARCH_FIELDS = ("views", *TINY_SIZE_FIELDS)


def _float_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    return {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype) for k, v in state.items()}


def save_vlm_weights(model: torch.nn.Module, config: VLMConfig, path: str | Path) -> Path:
    """Write the VLM's weights with its config and digest (atomically) and the sha256 sidecar."""
    from safetensors.torch import save_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "vlm_config": json.dumps(to_plain(config), sort_keys=True),
        "tensors_sha256": tensors_sha256(_float_state(model)),
    }
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_model(model, str(tmp), metadata=meta)
        digest = sha256_file(tmp)
    atomic_write_text(sha256_path(path), f"{digest}  {path.name}\n")
    return path


def arch_differences(stored: dict, config: VLMConfig) -> list[str]:
    """`field: stored != requested` for every architecture field that differs."""
    want = to_plain(config)
    return [f"{k}: {stored.get(k)!r} != {want[k]!r}" for k in ARCH_FIELDS if stored.get(k) != want[k]]


def load_vlm_weights(model: torch.nn.Module, config: VLMConfig, path: str | Path) -> None:
    """Load `path` into the freshly built (float32) tiny VLM `model` built from `config`; see the module docstring."""
    from safetensors import safe_open
    from safetensors.torch import load_model

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"VLMConfig.checkpoint {str(path)!r} does not exist (the vlm.safetensors written by `irlvla train vlm`)"
        )
    verify_checkpoint(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types for truncated or garbled headers
        raise CheckpointError(f"VLM weights {path} are not a readable safetensors file: {exc}") from exc
    if meta.get("format") != FORMAT or "vlm_config" not in meta:
        raise CheckpointError(
            f"{path} is not a VLM checkpoint of `irlvla train vlm` (format {meta.get('format')!r}); "
            "VLMConfig.checkpoint takes the vlm.safetensors of that command"
        )
    diffs = arch_differences(json.loads(meta["vlm_config"]), config)
    if diffs:
        raise CheckpointError(f"VLM weights {path} were trained for another VLM architecture: " + "; ".join(diffs))
    try:
        load_model(model, str(path), strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"VLM weights {path} do not fit the model built from the config: {exc}") from exc
    stored = meta.get("tensors_sha256")
    if stored and tensors_sha256(_float_state(model)) != stored:
        raise CheckpointError(f"VLM weights {path} are corrupted: the tensors do not match the digest recorded at save")
    logger.info("VLM weights loaded from %s", path)


__all__ = ["ARCH_FIELDS", "FORMAT", "arch_differences", "load_vlm_weights", "save_vlm_weights"]
