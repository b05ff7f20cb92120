"""Latency of one planning step per inference backend: uint8 camera frames in, selected trajectory out.

Runs `DrivingPolicy.step` (VLM excluded: it runs at its own rate and is latched) with each requested runtime backend
on the same model and observation, and prints one JSON object with the median and p90 milliseconds of every stage
(preprocess, perception, planner, rwm, selection) and of the total, plus each backend's speed-up over the first one
listed (put `torch` first for "times faster than torch eager").

    python benchmarks/bench_latency.py --preset tiny --backend torch onnxruntime --threads 1
    python benchmarks/bench_latency.py --preset full --device cuda --backend torch --precision fp16 --cuda-graphs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from agent.config import PRESETS, load_preset
from agent.model.irlvla import build_model
from agent.policy import DrivingPolicy
from agent.runtime.config import BACKENDS, PRECISIONS, PREPROCESS_PLACES, RuntimeConfig
from agent.types import EgoStatus, NavigationCommand, Observation, bench2drive_rig, model_rig

STAGES = ("preprocess", "perception", "planner", "rwm", "selection", "total")


def observation(native: bool, width: int, height: int, seed: int = 0) -> Observation:
    rig = bench2drive_rig() if native else model_rig(width, height)
    rng = np.random.default_rng(seed)
    imgs = {c.name: rng.integers(0, 256, (c.height, c.width, 3), dtype=np.uint8) for c in rig.cameras}
    ego = EgoStatus([6.0, 0.0], [0.0, 0.0], 0.0, NavigationCommand.STRAIGHT)
    return Observation(imgs, rig, ego, target_point=[30, 0])


def summarise(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for stage in STAGES:
        vals = np.asarray([r.get(stage, 0.0) for r in runs])
        out[stage] = {
            "median_ms": round(float(np.median(vals)), 3),
            "p90_ms": round(float(np.percentile(vals, 90)), 3),
        }
    return out


def bench_backend(model, backend: str, args: argparse.Namespace, obs: Observation) -> dict:
    cfg = RuntimeConfig(
        backend=backend,
        precision=args.precision,
        head_precision=args.head_precision,
        channels_last=args.channels_last,
        cuda_graphs=args.cuda_graphs and backend == "torch",
        compile=args.compile and backend == "torch",
        threads=args.threads,
        preprocess=args.preprocess,
        onnx_dir=args.onnx_dir,
        cache_dir=args.cache_dir,
        ort_providers=tuple(args.ort_providers),
    )
    t0 = time.perf_counter()
    policy = DrivingPolicy(model, use_vlm=False, device=args.device, runtime=cfg)
    build_s = time.perf_counter() - t0
    first = policy.step(obs)
    for _ in range(max(args.warmup - 1, 0)):
        policy.step(obs)
    runs = [policy.step(obs).timings for _ in range(args.repeats)]
    result = {
        "runtime": policy.runtime.describe(),
        "build_s": round(build_s, 2),
        "first_step_ms": round(first.timings["total"], 1),
        "stages": summarise(runs),
        "selected": first.selected,
        "trajectory": first.trajectory.poses.round(4).tolist(),
    }
    if args.device.startswith("cuda"):
        result["max_memory_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    policy.close()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=PRESETS, default="tiny")
    ap.add_argument("--backend", nargs="+", choices=BACKENDS, default=["torch", "onnxruntime"])
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--precision", choices=PRECISIONS, default="fp32", help="perception precision")
    ap.add_argument("--head-precision", choices=PRECISIONS, default="fp32", help="planner and RWM precision")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--cuda-graphs", action="store_true", help="torch backend: CUDA graphs of the static graphs")
    ap.add_argument("--compile", action="store_true", help="torch backend: torch.compile")
    ap.add_argument("--preprocess", choices=PREPROCESS_PLACES, default="auto")
    ap.add_argument("--ort-providers", nargs="+", default=["cpu"], choices=("cpu", "cuda", "tensorrt"))
    ap.add_argument("--onnx-dir", default="", help="an `irlvla export onnx` folder (default: export into the cache)")
    ap.add_argument("--cache-dir", default="")
    ap.add_argument("--native", action="store_true", help="1600x900 Bench2Drive frames (resized in preprocessing)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch and ONNX Runtime (0: default)")
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.warmup < 1:
        ap.error("--repeats and --warmup must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_preset(args.preset)
    model = build_model(cfg).eval()
    obs = observation(args.native, cfg.preprocess.image_width, cfg.preprocess.image_height)
    result: dict = {
        "benchmark": "bench_latency",
        "preset": args.preset,
        "device": args.device,
        "device_name": torch.cuda.get_device_name(torch.device(args.device))
        if args.device.startswith("cuda")
        else platform.processor() or platform.machine(),
        "batch": 1,
        "vlm_included": False,
        "native_resolution": args.native,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "results": {},
    }
    for backend in args.backend:
        try:
            result["results"][backend] = bench_backend(model, backend, args, obs)
        except Exception as exc:  # record the failure (a missing backend, a failed build) and go on
            result["results"][backend] = {"error": f"{type(exc).__name__}: {exc}"}
    ok = {k: v for k, v in result["results"].items() if "stages" in v}
    if len(ok) > 1:
        base_name = next(iter(ok))
        base = ok[base_name]["stages"]["total"]["median_ms"]
        result["speedup_vs_" + base_name] = {
            k: round(base / v["stages"]["total"]["median_ms"], 2) for k, v in ok.items() if k != base_name
        }
        ref = np.asarray(ok[base_name]["trajectory"])
        result["max_trajectory_diff_m_vs_" + base_name] = {
            k: float(np.abs(np.asarray(v["trajectory"]) - ref).max()) for k, v in ok.items() if k != base_name
        }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
