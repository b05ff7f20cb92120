"""Training throughput of the imitation step (samples/s), with and without each speed option of `SpeedConfig`.

Prints one JSON object. Cases: preset `tiny` on the CPU (fp32) and, where a GPU is present, preset `full` on CUDA with
bf16 autocast (skipped with a note otherwise). Each case runs the variants `baseline` (every option off),
`channels_last`, `fused_adamw` (CUDA only: the loop keeps the default AdamW on the CPU, so it is skipped there),
`compile` (torch.compile of the backbone and neck) and `all`. A variant builds a fresh model from the preset's seed and
times exactly the loop's `optimisation_step` (forward with every imitation loss, backward, clipping, AdamW) on
synthetic batches laid out like the dataset's samples (`training.features.synthetic_sample`: the real camera
geometry, random pixels and targets, batched by the loader's own `collate`), so no generated data is needed.
The first step is reported on its own (`first_step_s`: it includes torch.compile's compile time), then `--warmup`
untimed steps, then the median, min and max of `--steps` timed steps (steady state); samples/s is batch / median.
Each step's CPU time (`time.process_time`) is reported too: pinned to one core (`taskset -c 0`, one torch thread) on a
shared machine, samples per CPU second is the figure other processes' load does not move.

    taskset -c 0 python benchmarks/bench_train.py                 # tiny on one CPU core (+ full on a GPU if present)
    python benchmarks/bench_train.py --cases cuda --batch-size 16 # full, bf16, on the GPU only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from agent.config import load_preset
from agent.model.irlvla import build_model
from training.config import SpeedConfig
from training.dataset import collate
from training.features import synthetic_sample
from training.il import il_step
from training.loop import move, optimisation_step, step_generator
from training.speed import apply_speed_options, build_optimizer

VARIANTS: dict[str, dict[str, bool]] = {
    "baseline": {"channels_last": False, "fused_adamw": False, "compile": False},
    "channels_last": {"channels_last": True, "fused_adamw": False, "compile": False},
    "fused_adamw": {"channels_last": False, "fused_adamw": True, "compile": False},
    "compile": {"channels_last": False, "fused_adamw": False, "compile": True},
    "all": {"channels_last": True, "fused_adamw": True, "compile": True},
}


def synthetic_batches(preset: str, batch_size: int, count: int, device: torch.device, seed: int = 0) -> list[dict]:
    cfg = load_preset(preset)
    rng = np.random.default_rng(seed)
    return [move(collate([synthetic_sample(cfg, rng) for _ in range(batch_size)], cfg), device) for _ in range(count)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_variant(
    preset: str, device: torch.device, bf16: bool, speed: SpeedConfig, batches: list[dict], steps: int, warmup: int
) -> dict:
    """Time `optimisation_step` for one set of speed options (fresh model and optimizer, the same dropout draws)."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = build_model(load_preset(preset)).to(device).train()
    applied = apply_speed_options(model, speed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = build_optimizer(params, 1e-4, 1e-4, speed.fused_adamw, device)
    bf16_on = device if bf16 else None
    b = int(batches[0]["images"].shape[0])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, cpu, losses = [], [], []
    for i in range(1 + warmup + steps):
        batch = batches[i % len(batches)]
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        loss, _, _ = optimisation_step(model, params, opt, il_step, batch, step_generator(0, i), i, 1.0, bf16_on)
        _sync(device)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        losses.append(float(loss.detach()))
    timed, timed_cpu = times[1 + warmup :], cpu[1 + warmup :]
    med = statistics.median(timed)
    out = {
        "applied": applied,
        "fused_adamw_used": bool(opt.param_groups[0].get("fused")),
        "first_step_s": round(times[0], 3),
        "first_step_cpu_s": round(cpu[0], 3),
        "median_step_s": round(med, 4),
        "min_step_s": round(min(timed), 4),
        "max_step_s": round(max(timed), 4),
        "samples_per_s": round(b / med, 2),
        # CPU seconds of this process per step: on a shared machine the load-independent figure (one thread)
        "median_step_cpu_s": round(statistics.median(timed_cpu), 4),
        "samples_per_cpu_s": round(b / statistics.median(timed_cpu), 2),
        "loss_first_last": [round(losses[0], 4), round(losses[-1], 4)],
    }
    if device.type == "cuda":
        out["max_memory_allocated_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return out


def run_case(
    name: str, preset: str, device: torch.device, bf16: bool, args: argparse.Namespace, batch_size: int
) -> dict:
    batches = synthetic_batches(preset, batch_size, 2, device)
    case: dict = {
        "preset": preset,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "precision": "bf16 autocast" if bf16 else "fp32",
        "batch_size": batch_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "variants": {},
    }
    for var in args.variants:
        opts = VARIANTS[var]
        if var == "fused_adamw" and device.type != "cuda":
            case["variants"][var] = {"skipped": "fused AdamW is used on CUDA only; the loop keeps AdamW's default here"}
            continue
        try:
            case["variants"][var] = run_variant(
                preset, device, bf16, SpeedConfig(**opts), batches, args.steps, args.warmup
            )
        except Exception as exc:  # e.g. no C++ compiler for inductor: a finding, the other variants still run
            case["variants"][var] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
        print(f"[bench_train] {name} {var}: {json.dumps(case['variants'][var])}", file=sys.stderr, flush=True)
    base = case["variants"].get("baseline", {}).get("samples_per_s")
    if base:
        case["speedup_vs_baseline"] = {
            k: round(v["samples_per_s"] / base, 3) for k, v in case["variants"].items() if "samples_per_s" in v
        }
    base_cpu = case["variants"].get("baseline", {}).get("samples_per_cpu_s")
    if base_cpu and device.type == "cpu":
        runs = {k: v for k, v in case["variants"].items() if "samples_per_cpu_s" in v}
        case["cpu_time_speedup_vs_baseline"] = {k: round(v["samples_per_cpu_s"] / base_cpu, 3) for k, v in runs.items()}
    return case


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", choices=("cpu", "cuda"), default=["cpu", "cuda"])
    ap.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--cpu-preset", default="tiny")
    ap.add_argument("--cuda-preset", default="full")
    ap.add_argument("--batch-size", type=int, default=0, help="0: 8 on the CPU, 16 on CUDA")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per variant (median reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps after the first one")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: PyTorch default)")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 0:
        ap.error("--steps must be >= 1, --warmup and --batch-size >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    # a fresh inductor cache: compile time is measured, never read back from an earlier run's cache
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="bench_train_inductor_"))
    result: dict = {
        "benchmark": "training throughput of the imitation step (samples/s)",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "cases": {},
    }
    if "cpu" in args.cases:
        result["cases"]["cpu"] = run_case(
            "cpu", args.cpu_preset, torch.device("cpu"), False, args, args.batch_size or 8
        )
    if "cuda" in args.cases:
        if torch.cuda.is_available():
            result["cases"]["cuda"] = run_case(
                "cuda", args.cuda_preset, torch.device("cuda"), True, args, args.batch_size or 16
            )
        else:
            result["cases"]["cuda"] = {"skipped": "no CUDA device here; run on a GPU machine for the full/bf16 figures"}
    result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
