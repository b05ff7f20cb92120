"""EPDMS throughput: batched K = 1 .. 8192 per scene, the cold single-proposal token, and a whole split in N processes.

Prints one JSON object. Plans are NAVSIM's 8192 k-means anchors (../shared/data/navsim/trajectory_anchors_8192.npy,
first K) when present, else generated ones. Timings are wall-clock on the current process (pin one core with
`taskset -c 0` for the one-core figures).
- `results`: K proposals on a prepared scene (its `SceneCache` built beforehand, as RL and label generation use it).
- `cold_single_proposal`: how a whole navtest/navhard split is scored, one proposal per token: build the token's
  `SceneCache` and score one proposal, with our PDM-Closed reference planned (`planned_s`) or given as a metric cache
  gives it (`given_reference_s`); `vs_official` compares the latter with the official ~50 ms per `pdm_score` call
  (../shared/specs/navsim.md section 8.12; the official reference also comes precomputed from the metric cache).
- `split`: `navsim_eval.runner.score_tokens` over a folder of scenes with `--workers` processes (tokens/s).
- `--official` (needs navsim and nuplan-devkit, docs/navsim_crosscheck.md): also time the official `pdm_score` on the
  same tokens in the same process (each scene's metric cache built beforehand, one proposal per call), so that
  `official_measured` compares CPU times taken under the same load; `metric_cache_cpu_s` is our cold token scored
  from that official cache (`navsim_eval.metric_cache` conversion included).
"""

from __future__ import annotations

import argparse
import dataclasses
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
from navsim_eval.cache import SceneCache

OFFICIAL_S_PER_CALL = 0.050  # one official pdm_score call, one proposal, one core (spec section 8.12)

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
    ap.add_argument("--split-tokens", type=int, default=24, help="tokens of the whole-split run (0 skips it)")
    ap.add_argument("--workers", type=int, default=max(1, min(8, os.cpu_count() or 1)))
    ap.add_argument("--official", action="store_true", help="also time the official scorer (devkits needed)")
    args = ap.parse_args(argv)
    from sim.scenarios import generate_scenes

    scenes = generate_scenes(args.scenes, 0)
    plans, source = load_plans(max(args.ks))
    config = EpdmsConfig(reactive=args.reactive)
    caches, planned, given, given_cpu = [], [], [], []
    for sc in scenes:  # cold single-proposal tokens: cache + one proposal, planned or given reference
        t0 = time.perf_counter()
        cache = SceneCache.build(sc, config)
        score_proposals(sc, plans[:1], config, cache=cache)
        planned.append(time.perf_counter() - t0)
        caches.append(cache)
        t0, c0 = time.perf_counter(), time.process_time()
        c2 = SceneCache.build(sc, config, cache.reference_plan, cache.map_queries.centerline.poses)
        score_proposals(sc, plans[:1], config, cache=c2)
        given.append(time.perf_counter() - t0)
        given_cpu.append(time.process_time() - c0)
    out = {
        "benchmark": "epdms",
        "plans": source,
        "scenes": len(scenes),
        "agents_mean": float(np.mean([len(s.agents) for s in scenes])),
        "reactive": args.reactive,
        "human_filter": config.scorer.human_penalty_filter,
        "cpu": platform.processor() or platform.machine(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cold_single_proposal": {
            "planned_s": float(np.mean(planned)),
            "given_reference_s": float(np.mean(given)),
            "given_reference_cpu_s": float(np.mean(given_cpu)),  # process CPU time: meaningful on a loaded machine
            "official_s": OFFICIAL_S_PER_CALL,
            "vs_official": OFFICIAL_S_PER_CALL / float(np.mean(given)),
        },
        "results": {},
    }
    if args.official:
        out["official_measured"] = official_run(scenes, caches, plans[:1], config, given_cpu)
    for k in args.ks:
        per_scene = []
        for sc, cache in zip(scenes, caches):
            best = np.inf
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                score_proposals(sc, plans[:k], config, cache=cache)
                best = min(best, time.perf_counter() - t0)
            per_scene.append(best)
        sec = float(np.mean(per_scene))
        out["results"][str(k)] = {"seconds_per_scene": sec, "proposals_per_s": k / sec}
    if args.split_tokens:
        out["split"] = split_run(args.split_tokens, args.workers, config)
    print(json.dumps(out))
    return 0


def official_run(scenes, caches, plan: np.ndarray, config: EpdmsConfig, ours_cpu: list[float]) -> dict:
    """CPU seconds of one official `pdm_score` call per token vs ours, same tokens, same process, same load."""
    from navsim_eval.api import score_cache
    from navsim_eval.crosscheck.metric_cache import scene_to_metric_cache
    from navsim_eval.crosscheck.official_scorer import official_score
    from navsim_eval.metric_cache import cache_from_metric_cache

    official, from_cache = [], []
    for sc, cache in zip(scenes, caches):
        mc = scene_to_metric_cache(sc, reference=cache.reference_plan, centerline=None)
        official_score(mc, plan)  # warm the devkit's lazy imports
        c0 = time.process_time()
        official_score(mc, plan)
        official.append(time.process_time() - c0)
        c0 = time.process_time()
        score_cache(cache_from_metric_cache(mc, config), plan)
        from_cache.append(time.process_time() - c0)
    off, ours = float(np.mean(official)), float(np.mean(ours_cpu))
    return {
        "official_cpu_s": off,
        "ours_given_reference_cpu_s": ours,
        "vs_official": off / ours,
        "metric_cache_cpu_s": float(np.mean(from_cache)),
        "metric_cache_vs_official": off / float(np.mean(from_cache)),
    }


def split_run(n: int, workers: int, config: EpdmsConfig) -> dict:
    """Score n generated tokens (one human plan each) from a scene folder with `workers` processes."""
    import tempfile

    from navsim_eval.runner import score_tokens
    from sim.scenarios import generate_scenes
    from sim.scene_io import save_scene

    with tempfile.TemporaryDirectory(prefix="bench-epdms-") as tmp:
        plans = {}
        for i, sc in enumerate(generate_scenes(n, 1)):
            tok = f"tok{i:05d}"
            save_scene(dataclasses.replace(sc, token=tok), Path(tmp) / tok)
            plans[tok] = sc.human_trajectory()
        stages = dict.fromkeys(plans, 1)
        res = {}
        for w in sorted({1, workers}):
            t0 = time.perf_counter()
            recs = score_tokens(tmp, plans, stages, config, workers=w, backend="process" if w > 1 else "serial")
            sec = time.perf_counter() - t0
            res[str(w)] = {"seconds": sec, "tokens_per_s": n / sec, "failed": sum(not r.ok for r in recs.values())}
    return {"tokens": n, "workers": res}


if __name__ == "__main__":
    raise SystemExit(main())
