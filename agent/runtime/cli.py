"""`irlvla export onnx|trt`: the deployable graphs of a checkpoint (or an untrained preset) and their TensorRT engines.

irlvla export onnx --checkpoint weights/tiny.safetensors --out exports/tiny
irlvla export onnx --preset tiny --out exports/tiny --opset 18
irlvla export trt --onnx-dir exports/tiny --precision fp16 --cache ~/.cache/irlvla/trt
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from agent.config import PRESETS, ModelConfig, load_preset
from agent.runtime.config import DEFAULT_OPSET, EXPORTERS, PRECISIONS

logger = logging.getLogger(__name__)


def _load_model(args: argparse.Namespace):
    from agent.checkpoint import load_checkpoint
    from agent.model.irlvla import build_model

    if args.checkpoint:
        cfg = ModelConfig.load(args.config) if args.config else None
        return load_checkpoint(args.checkpoint, cfg=cfg)
    cfg = ModelConfig.load(args.config) if args.config else load_preset(args.preset)
    logger.warning("no --checkpoint: exporting the untrained %r model (seeded initial weights)", cfg.name)
    return build_model(cfg)


def _onnx_cmd(args: argparse.Namespace) -> int:
    from agent.runtime.availability import BackendUnavailable
    from agent.runtime.export import ExportError, export_onnx

    try:
        model = _load_model(args)
        manifest = export_onnx(model, args.out, opset=args.opset, exporter=args.exporter, verify=not args.no_verify)
    except (BackendUnavailable, ExportError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = {
        "out": str(Path(args.out)),
        "fingerprint": manifest["fingerprint"][:16],
        "opset": manifest["opset"],
        "exporter": manifest["exporter"],
        "graphs": {k: v["file"] for k, v in manifest["graphs"].items()},
        "check": {k: v["max_abs_diff"] for k, v in manifest.get("check", {}).items()},
        "export_s": manifest["export_s"],
    }
    print(json.dumps(summary, indent=2))
    return 0


def _trt_cmd(args: argparse.Namespace) -> int:
    import torch

    from agent.runtime.availability import BackendUnavailable, require
    from agent.runtime.export import ExportError, read_manifest
    from agent.runtime.graphs import GRAPH_NAMES

    try:
        require("tensorrt", "irlvla export trt")
        if not torch.cuda.is_available():
            raise BackendUnavailable("irlvla export trt needs a CUDA GPU (engines are built for the GPU they run on)")
        from agent.runtime.tensorrt_backend import build_engine

        manifest = read_manifest(args.onnx_dir)
        device = torch.device(args.device)
        cache = Path(args.cache).expanduser() if args.cache else Path(args.onnx_dir) / "trt"
        engines = {}
        for graph in GRAPH_NAMES:
            precision = args.precision if graph == "perception" else args.head_precision
            onnx_file = Path(args.onnx_dir) / manifest["graphs"][graph]["file"]
            engines[graph] = str(build_engine(onnx_file, precision, cache, device, args.workspace_mb))
    except (BackendUnavailable, ExportError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"onnx_dir": args.onnx_dir, "engines": engines}, indent=2))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export the model to ONNX graphs and TensorRT engines")
    sub = parser.add_subparsers(dest="export_command", metavar="TARGET", required=True)

    onnx = sub.add_parser("onnx", help="perception / planner / RWM as static-shape ONNX graphs (+ manifest, fixtures)")
    src = onnx.add_argument_group("model")
    src.add_argument("--checkpoint", default="", help="a safetensors checkpoint (its stored config is used)")
    src.add_argument("--config", default="", help="a model config .yaml/.json (with --checkpoint: runtime overrides)")
    src.add_argument("--preset", choices=PRESETS, default="tiny", help="untrained preset when no checkpoint is given")
    onnx.add_argument("--out", required=True, help="output folder")
    onnx.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    onnx.add_argument("--exporter", choices=EXPORTERS, default="torchscript", help="torch.onnx exporter")
    onnx.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs torch check")
    onnx.set_defaults(func=_onnx_cmd)

    trt = sub.add_parser("trt", help="TensorRT engines of an ONNX export (cached by ONNX hash, TRT version, GPU)")
    trt.add_argument("--onnx-dir", required=True, help="a folder written by `irlvla export onnx`")
    trt.add_argument("--precision", choices=PRECISIONS, default="fp16", help="perception engine precision")
    trt.add_argument("--head-precision", choices=PRECISIONS, default="fp32", help="planner and RWM precision")
    trt.add_argument("--cache", default="", help="engine folder (default: ONNX_DIR/trt)")
    trt.add_argument("--device", default="cuda:0")
    trt.add_argument("--workspace-mb", type=int, default=4096)
    trt.set_defaults(func=_trt_cmd)
