"""Checkpoints: safetensors weights with the resolved model config in the metadata, plus a sha256 sidecar.

Loading verifies the file's sha256 against the sidecar and the tensors against a digest stored in the metadata (so a
file copied without its sidecar is still checked); a corrupted or modified file is refused. It then rebuilds the model
from the stored config (or checks a requested config against it) and refuses weights whose keys or shapes do not
match, naming them. Never pickle: configs are JSON, weights are safetensors.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch

from agent.config import ModelConfig
from irlvla.atomic import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

FORMAT = "irlvla-checkpoint"
FORMAT_VERSION = "1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: corrupted, not ours, or built for another configuration."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """Digest of a state dict's names, dtypes, shapes and bytes: stored inside the checkpoint, so a copy that lost
    its sidecar still detects corrupted weights."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().to("cpu").contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def sha256_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def save_checkpoint(model: torch.nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write `model`'s state dict and resolved config to `path` (.safetensors) and `<path>.sha256`, atomically."""
    from safetensors.torch import save_file

    cfg: ModelConfig = model.cfg
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": cfg.to_json(),
        "preset": cfg.name,
        "tensors_sha256": tensors_sha256(state),
    }
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
        digest = sha256_file(tmp)
    atomic_write_text(sha256_path(path), f"{digest}  {path.name}\n")
    logger.info("saved checkpoint %s (sha256 %s)", path, digest[:12])
    return path


def verify_checkpoint(path: str | Path, expected_sha256: str | None = None) -> str:
    """Check the file against `expected_sha256` or its sidecar and return the digest (neither: only a warning)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    digest = sha256_file(path)
    if expected_sha256 is None and sha256_path(path).is_file():
        expected_sha256 = sha256_path(path).read_text().split()[0]
    if expected_sha256 is None:
        logger.warning("checkpoint %s has no sha256 sidecar; integrity not verified", path)
    elif digest != expected_sha256.lower():
        raise CheckpointError(
            f"checkpoint {path} is corrupted or was modified: sha256 {digest} does not match "
            f"the expected {expected_sha256}"
        )
    return digest


def read_checkpoint(
    path: str | Path, verify: bool = True, expected_sha256: str | None = None
) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, str]]:
    """(config, state dict, metadata) of a checkpoint, after the integrity check."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if verify:
        verify_checkpoint(path, expected_sha256)
    elif not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for truncated/garbled headers
        raise CheckpointError(f"checkpoint {path} is not a readable safetensors file: {exc}") from exc
    if meta.get("format") != FORMAT or "config" not in meta:
        raise CheckpointError(
            f"checkpoint {path} has no IRL-VLA config in its metadata (format {meta.get('format')!r})"
        )
    stored_digest = meta.get("tensors_sha256")
    if verify and stored_digest and tensors_sha256(state) != stored_digest:
        raise CheckpointError(
            f"checkpoint {path} is corrupted: its tensors do not match the sha256 {stored_digest} recorded at save time"
        )
    try:
        cfg = ModelConfig.from_json(meta["config"])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path}: stored config is invalid: {exc}") from exc
    return cfg, state, meta


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


#: Config fields that do not change the weights a checkpoint must hold: where to find things on this machine, how the
#: trained model is run (VLM, selection, DDIM schedule at inference) and training-only loss weights. A requested config
#: may differ from the stored one in these (e.g. a local VLM path); any other difference is a mismatch.
RUNTIME_FIELDS = (
    "name",
    "seed",
    "vlm.",
    "selection.",
    "preprocess.jpeg_quality",
    "backbone.pretrained_path",
    "planner.anchors_path",
    "planner.infer_start_timestep",
    "planner.num_inference_steps",
    "planner.cls_weight",
    "planner.reg_weight",
    "planner.focal_alpha",
    "planner.focal_gamma",
    "detection.box_weight",
    "detection.cls_weight",
    "map.pts_weight",
    "map.cls_weight",
    "seg.loss_weight",
    "rwm.metric_weights",
    "rwm.loss_weight",
)


def _is_runtime(key: str) -> bool:
    return any(key == f or (f.endswith(".") and key.startswith(f)) for f in RUNTIME_FIELDS)


def config_differences(a: ModelConfig, b: ModelConfig, include_runtime: bool = True) -> list[str]:
    """Human-readable field differences between two configs (dotted paths); optionally only the weight-defining ones."""
    fa, fb = _flatten(a.to_dict()), _flatten(b.to_dict())
    keys = sorted(k for k in set(fa) | set(fb) if include_runtime or not _is_runtime(k))
    return [f"{k}: {fa.get(k)!r} != {fb.get(k)!r}" for k in keys if fa.get(k) != fb.get(k)]


def state_differences(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    own = model.state_dict()
    return {
        "missing": sorted(set(own) - set(state)),
        "unexpected": sorted(set(state) - set(own)),
        "shape_mismatch": sorted(
            f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
            for k in set(own) & set(state)
            if tuple(own[k].shape) != tuple(state[k].shape)
        ),
    }


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load weights only if every key and shape matches; otherwise raise naming the mismatches."""
    diff = state_differences(model, state)
    if any(diff.values()):
        parts = [f"{len(v)} {k.replace('_', ' ')}: {v[:8]}" for k, v in diff.items() if v]
        raise CheckpointError(f"{source} does not fit this model: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def load_checkpoint(
    path: str | Path,
    cfg: ModelConfig | None = None,
    device: str | torch.device = "cpu",
    verify: bool = True,
    expected_sha256: str | None = None,
):
    """Rebuild the model a checkpoint was saved from (or `cfg`) and load its weights.

    `cfg` must match the stored config in every field that shapes the network; it may differ in `RUNTIME_FIELDS`
    (local paths, VLM, selection, inference schedule, loss weights), and then its values are the ones used.
    """
    from agent.model.irlvla import build_model

    stored, state, _ = read_checkpoint(path, verify=verify, expected_sha256=expected_sha256)
    if cfg is not None:
        diffs = config_differences(stored, cfg, include_runtime=False)
        if diffs:
            raise CheckpointError(
                f"checkpoint {path} was saved with another config ({len(diffs)} fields differ): "
                + "; ".join(diffs[:12])
            )
        runtime = config_differences(stored, cfg)
        if runtime:
            logger.info("checkpoint %s: using the requested runtime settings %s", path, "; ".join(runtime[:12]))
    use = cfg or stored
    anchors = state.get("planner.anchors")
    model = build_model(use, device="cpu", anchors=anchors.numpy() if anchors is not None else None)
    load_state_strict(model, state, f"checkpoint {path}")
    return model.to(device)


def write_manifest_entry(manifest: str | Path, name: str, checkpoint: str | Path, **info: Any) -> None:
    """Add or replace `name` in a JSON weights manifest (sha256, size, preset and any extra info), atomically."""
    manifest, checkpoint = Path(manifest), Path(checkpoint)
    data = json.loads(manifest.read_text()) if manifest.is_file() else {}
    _, _, meta = read_checkpoint(checkpoint, verify=False)
    data[name] = {
        "file": checkpoint.name,
        "sha256": sha256_file(checkpoint),
        "bytes": checkpoint.stat().st_size,
        "preset": meta.get("preset", ""),
        **info,
    }
    manifest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(manifest, json.dumps(data, indent=2, sort_keys=True) + "\n")
