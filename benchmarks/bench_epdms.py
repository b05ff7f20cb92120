"""EPDMS throughput: proposals per second and seconds per scene for K = 1, 20, 256, 8192 on generated scenes.

Prints one JSON object. Plans are NAVSIM's 8192 k-means anchors (../shared/data/navsim/trajectory_anchors_8192.npy,
first K) when present, else generated ones. Timings are wall-clock on the current process (pin one core with
`taskset -c 0` for the one-core figures). The PDM-Closed reference is cached per scene; its one-off cost is reported
separately as `reference_s`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from irlvla.shared_data import shared_path
from navsim_eval import EpdmsConfig, score_proposals

ANCHORS = shared_path("data", "navsim", "trajectory_anchors_8192.npy")


def generated_plans(k: int, seed: int = 0) -> np.ndarray:
    """Fallback plans: speeds 0-20 m/s and constant curvatures, 8 poses at 0.5 s."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.0, 20.0, k)
    kappa = rng.uniform(-0.05, 0.05, k)
    s = v[:, None] * np.arange(1, 9)[None] * 0.5
    h = kappa[:, None] * s
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(np.abs(kappa[:, None]) > 1e-6, np.sin(h) / kappa[:, None], s)
        y = np.where(np.abs(kappa[:, None]) > 1e-6, (1 - np.cos(h)) / kappa[:, None], 0.0)
    return np.stack([x, y, h], axis=-1)


def load_plans(k_max: int) -> tuple[np.ndarray, str]:
    if ANCHORS.is_file():
        a = np.load(ANCHORS).astype(np.float64)
        if a.ndim == 3 and a.shape[1:] == (8, 3) and len(a) >= k_max:
            return a, "navsim_anchors_8192"
    return generated_plans(k_max), "generated"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 20, 256, 8192])
    ap.add_argument("--scenes", type=int, default=6, help="generated scenes (one per family, cycling)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per (scene, K); the best is kept")
    ap.add_argument("--reactive", action="store_true")
    args = ap.parse_args(argv)
    from sim.scenarios import generate_scenes

    scenes = generate_scenes(args.scenes, 0)
    plans, source = load_plans(max(args.ks))
    config = EpdmsConfig(reactive=args.reactive)
    ref_times = []
    for sc in scenes:  # warm caches (map queries, PDM-Closed reference) and time the reference once
        t0 = time.perf_counter()
        score_proposals(sc, plans[:1], config)
        ref_times.append(time.perf_counter() - t0)
    out = {
        "benchmark": "epdms",
        "plans": source,
        "scenes": len(scenes),
        "agents_mean": float(np.mean([len(s.agents) for s in scenes])),
        "reactive": args.reactive,
        "human_filter": config.scorer.human_penalty_filter,
        "cpu": platform.processor() or platform.machine(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "first_call_with_reference_s": float(np.mean(ref_times)),
        "results": {},
    }
    for k in args.ks:
        per_scene = []
        for sc in scenes:
            best = np.inf
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                score_proposals(sc, plans[:k], config)
                best = min(best, time.perf_counter() - t0)
            per_scene.append(best)
        sec = float(np.mean(per_scene))
        out["results"][str(k)] = {"seconds_per_scene": sec, "proposals_per_s": k / sec}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
