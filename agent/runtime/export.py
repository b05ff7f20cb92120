"""ONNX export of the three static-shape graphs, with a manifest and reference fixtures, and the export cache.

`export_onnx` writes `perception.onnx`, `planner.onnx`, `rwm.onnx` (named inputs and outputs, pinned opset, constant
folding), `fixtures.npz` (every graph's inputs and the torch outputs: the golden tensors backends are compared on) and
`manifest.json` (model fingerprint, opset, exporter, versions, per-graph sha256 and I/O shapes, and the ONNX Runtime
check when it is installed). Every file is written atomically and the manifest last; a reader checks each graph's
sha256 against it, so a half-finished re-export is never mistaken for a good one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from agent.model.irlvla import IRLVLA
from agent.runtime.availability import has, require
from agent.runtime.config import DEFAULT_OPSET, EXPORTERS, RuntimeConfig
from agent.runtime.graphs import GRAPH_IO, GRAPH_NAMES, example_inputs, graph_modules
from irlvla.atomic import atomic_path, atomic_write_json

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FIXTURES = "fixtures.npz"
MANIFEST_FORMAT = 1
#: ONNX Runtime vs torch per-graph check at export time: |a - b| <= atol + rtol |b|
CHECK_ATOL = 1e-3
CHECK_RTOL = 1e-3
#: config sections that do not change the exported graphs
_NOT_IN_GRAPH = ("runtime", "vlm", "selection", "name")


class ExportError(RuntimeError):
    """An export that failed, or an export folder that does not belong to the model it is used with."""


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_fingerprint(model: IRLVLA) -> str:
    """sha256 of everything the graphs depend on: the config (less runtime-only sections) and every weight."""
    h = hashlib.sha256()
    cfg = {k: v for k, v in model.cfg.to_dict().items() if k not in _NOT_IN_GRAPH}
    h.update(json.dumps(cfg, sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        arr = t.detach().cpu()
        h.update((arr.float() if arr.is_floating_point() else arr).contiguous().numpy().tobytes())
    return h.hexdigest()


def cache_root(cfg: RuntimeConfig) -> Path:
    if cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    env = os.environ.get("IRLVLA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "irlvla"


def reference_tensors(model: IRLVLA, seed: int = 0) -> dict[str, torch.Tensor]:
    """Inputs of every graph and the torch outputs, chained as one planning step runs them (fp32, CPU)."""
    tensors = example_inputs(model, seed=seed, device=model.device)
    mods = graph_modules(model)
    with torch.no_grad():  # not inference_mode: these tensors feed the ONNX tracer
        for name in GRAPH_NAMES:
            ins, outs = GRAPH_IO[name]
            tensors.update(zip(outs, mods[name](*[tensors[k] for k in ins])))
    return {k: v.detach().cpu() for k, v in tensors.items()}


def _spec(t: torch.Tensor) -> dict:
    return {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}


def export_onnx(
    model: IRLVLA,
    out_dir: str | os.PathLike,
    opset: int = DEFAULT_OPSET,
    exporter: str = "torchscript",
    verify: bool = True,
    seed: int = 0,
) -> dict:
    """Export the perception, planner and RWM graphs of `model` (on the CPU, fp32) into `out_dir`; return the manifest.

    With `verify` and ONNX Runtime installed, every graph is run on the fixtures and compared with torch; a graph
    outside `CHECK_ATOL`/`CHECK_RTOL` raises `ExportError` (and the manifest is not written).
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    onnx = require("onnx", "ONNX export")
    if exporter == "dynamo":
        require("onnxscript", "the dynamo ONNX exporter")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if model.device.type != "cpu" or next(model.parameters()).dtype != torch.float32:
        model = copy.deepcopy(model).to("cpu", torch.float32)
    model = model.eval()
    with torch.inference_mode(False):
        return _export(model, out, onnx, int(opset), exporter, verify, seed)


def _export(model: IRLVLA, out: Path, onnx, opset: int, exporter: str, verify: bool, seed: int) -> dict:
    t_start = time.perf_counter()
    ref = reference_tensors(model, seed)
    mods = graph_modules(model)
    manifest: dict = {
        "format": MANIFEST_FORMAT,
        "fingerprint": model_fingerprint(model),
        "preset": model.cfg.name,
        "opset": int(opset),
        "exporter": exporter,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "inference_timesteps": list(model.cfg.planner.inference_timesteps),
        "graphs": {},
    }
    for name in GRAPH_NAMES:
        ins, outs = GRAPH_IO[name]
        path = out / f"{name}.onnx"
        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks (static by design)
            torch.onnx.export(
                mods[name],
                tuple(ref[k] for k in ins),
                str(tmp),
                input_names=list(ins),
                output_names=list(outs),
                opset_version=int(opset),
                do_constant_folding=True,
                dynamo=exporter == "dynamo",
                external_data=False,
            )
            onnx.checker.check_model(str(tmp))
        manifest["graphs"][name] = {
            "file": path.name,
            "sha256": sha256_file(path),
            "inputs": {k: _spec(ref[k]) for k in ins},
            "outputs": {k: _spec(ref[k]) for k in outs},
        }
    with atomic_path(out / FIXTURES) as tmp:
        np.savez(tmp, **{k: v.numpy() for k, v in ref.items()})
    manifest["fixtures"] = FIXTURES
    if verify and has("onnxruntime"):
        manifest["check"] = check_with_onnxruntime(out, ref)
        bad = {g: c for g, c in manifest["check"].items() if not c["ok"]}
        if bad:
            raise ExportError(f"ONNX Runtime disagrees with torch on {sorted(bad)}: {json.dumps(bad)}")
    manifest["export_s"] = round(time.perf_counter() - t_start, 2)
    atomic_write_json(out / MANIFEST, manifest)
    logger.info("exported %s graphs to %s in %.1f s", "/".join(GRAPH_NAMES), out, manifest["export_s"])
    return manifest


def check_with_onnxruntime(onnx_dir: Path, ref: dict[str, torch.Tensor]) -> dict:
    """Per graph and output: max |onnxruntime - torch| on the fixtures (CPU provider)."""
    import onnxruntime as ort

    report = {}
    for name in GRAPH_NAMES:
        ins, outs = GRAPH_IO[name]
        sess = ort.InferenceSession(str(onnx_dir / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        got = sess.run(list(outs), {k: ref[k].numpy() for k in ins})
        diffs, ok = {}, True
        for k, g in zip(outs, got):
            want = ref[k].numpy()
            diffs[k] = float(np.abs(g - want).max())
            ok &= bool(np.all(np.abs(g - want) <= CHECK_ATOL + CHECK_RTOL * np.abs(want)))
        report[name] = {"ok": ok, "max_abs_diff": diffs}
    return report


def read_manifest(onnx_dir: str | os.PathLike, fingerprint: str | None = None, check_files: bool = True) -> dict:
    """The manifest of an export folder, checked: format, every graph file present with its sha256 and, when given,
    the model fingerprint. Raises `ExportError` naming what is wrong."""
    d = Path(onnx_dir)
    path = d / MANIFEST
    if not path.is_file():
        raise ExportError(f"{d} holds no ONNX export ({MANIFEST} missing): run `irlvla export onnx --out {d}`")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ExportError(f"{path}: manifest format {manifest.get('format')!r}, expected {MANIFEST_FORMAT}")
    if fingerprint is not None and manifest.get("fingerprint") != fingerprint:
        raise ExportError(
            f"{d} was exported from another model (fingerprint {str(manifest.get('fingerprint'))[:16]} != "
            f"{fingerprint[:16]}): re-export it for these weights and this config"
        )
    for name in GRAPH_NAMES:
        info = manifest.get("graphs", {}).get(name)
        if info is None:
            raise ExportError(f"{path}: no entry for graph {name!r}")
        f = d / info["file"]
        if not f.is_file():
            raise ExportError(f"{d}: graph file {info['file']} is missing")
        if check_files and sha256_file(f) != info["sha256"]:
            raise ExportError(f"{f}: sha256 does not match the manifest (an interrupted or edited export)")
    return manifest


def ensure_onnx(model: IRLVLA, cfg: RuntimeConfig) -> Path:
    """The export folder for `model`: `cfg.onnx_dir` (checked against the model), else a cache folder keyed by the
    model fingerprint, opset and exporter, exported on first use."""
    fp = model_fingerprint(model)
    if cfg.onnx_dir:
        read_manifest(cfg.onnx_dir, fingerprint=fp)
        return Path(cfg.onnx_dir)
    d = cache_root(cfg) / f"onnx-{fp[:16]}-opset{cfg.opset}-{cfg.exporter}"
    try:
        read_manifest(d, fingerprint=fp)
        logger.info("using the cached ONNX export %s", d)
    except (ExportError, json.JSONDecodeError, KeyError):
        logger.info("exporting ONNX graphs to %s (first use of this model)", d)
        export_onnx(model, d, opset=cfg.opset, exporter=cfg.exporter)
    return d
