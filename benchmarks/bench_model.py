"""Latency of one IRL-VLA planning step (`DrivingPolicy.step`) at batch 1, per stage and in total.

Prints one JSON object: for each device (CPU always, CUDA when present unless --device says otherwise) the median,
min and max milliseconds of every stage over --repeats timed steps after --warmup untimed ones. The VLM is excluded
by default because it runs at its own rate and is latched between refreshes (--vlm includes a refresh every step).

    python benchmarks/bench_model.py --preset tiny
    python benchmarks/bench_model.py --preset full --repeats 3 --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from agent.config import PRESETS, load_preset
from agent.policy import DrivingPolicy
from agent.types import EgoStatus, NavigationCommand, Observation, bench2drive_rig, model_rig


def observation(native: bool, seed: int = 0) -> Observation:
    rig = bench2drive_rig() if native else model_rig()
    rng = np.random.default_rng(seed)
    imgs = {c.name: rng.integers(0, 256, (c.height, c.width, 3), dtype=np.uint8) for c in rig.cameras}
    return Observation(
        imgs, rig, EgoStatus([6.0, 0.0], [0.0, 0.0], 0.0, NavigationCommand.STRAIGHT), target_point=[30, 0]
    )


def bench_device(preset: str, device: str, repeats: int, warmup: int, use_vlm: bool, native: bool) -> dict:
    cfg = load_preset(preset, vlm={"backend": "tiny", "refresh_every": 1}) if use_vlm else load_preset(preset)
    t0 = time.perf_counter()
    policy = DrivingPolicy.from_config(cfg, device=device, use_vlm=use_vlm)
    build_s = time.perf_counter() - t0
    obs = observation(native)
    for _ in range(warmup):
        policy.step(obs)
    runs = [policy.step(obs).timings for _ in range(repeats)]
    stages = {}
    for key in runs[0]:
        vals = [r[key] for r in runs]
        stages[key] = {"median_ms": statistics.median(vals), "min_ms": min(vals), "max_ms": max(vals)}
    out = {
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor() or "cpu",
        "build_s": round(build_s, 3),
        "repeats": repeats,
        "warmup": warmup,
        "stages": stages,
        "total_ms": stages["total"]["median_ms"],
    }
    if device.startswith("cuda"):
        out["max_memory_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    policy.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=PRESETS, default="tiny")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CPU, and CUDA if present")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--vlm", action="store_true", help="include a VLM refresh in every step (tiny VLM)")
    ap.add_argument("--native", action="store_true", help="feed 1600x900 Bench2Drive images (resize in preprocess)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: PyTorch default)")
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        ap.error("--repeats must be >= 1 and --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] if args.device in ("auto", "cpu") else []
    if args.device in ("auto", "cuda") and torch.cuda.is_available():
        devices.append("cuda")
    elif args.device == "cuda":
        print(json.dumps({"error": "CUDA requested but not available"}))
        return 1
    result = {
        "benchmark": "bench_model",
        "preset": args.preset,
        "batch": 1,
        "vlm_included": args.vlm,
        "native_resolution": args.native,
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "results": {},
    }
    for dev in devices:
        try:
            result["results"][dev] = bench_device(args.preset, dev, args.repeats, args.warmup, args.vlm, args.native)
        except Exception as exc:  # record the failure and go on to the next device
            result["results"][dev] = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
