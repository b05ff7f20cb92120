"""Seconds to compute every Bench2Drive metric for 220 routes with 4000-sample metric_info.json files.

Writes synthetic but realistic inputs (a merged result and one metric_info.json per route, as the agents save them)
to a temporary folder, then times `compute_metrics` end to end (file reading included). Prints one JSON object.
Target: under 3 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench2drive_eval.metrics import compute_metrics
from bench2drive_eval.records import INFRACTION_KEYS
from bench2drive_eval.routes import parse_routes
from irlvla.shared_data import shared_path

ROUTES_XML = shared_path("data", "bench2drive", "bench2drive220.xml")


def make_inputs(folder: Path, num_routes: int, samples: int, seed: int = 0) -> tuple[list[dict], list[str]]:
    rng = np.random.default_rng(seed)
    route_ids = [str(1000 + i) for i in range(num_routes)]
    if ROUTES_XML.is_file():
        route_ids = [r.id for r in parse_routes(ROUTES_XML)][:num_routes]
    records = []
    for rid in route_ids:
        save = f"RouteScenario_{rid}_rep0_Town12_X_1_0_01_01_00_00_00"
        infr = {k: [] for k in INFRACTION_KEYS}
        infr["min_speed_infractions"] = [
            f"Average speed is {v:.2f}% of the surrounding traffic's one" for v in rng.uniform(40, 200, 20)
        ]
        ok = rng.random() < 0.5
        rc = 100.0 if ok else float(rng.uniform(10, 90))
        records.append(
            {
                "route_id": f"RouteScenario_{rid}_rep0",
                "scenario_name": "X_1",
                "weather_id": "0",
                "save_name": save,
                "status": "Completed" if ok else "Failed - TickRuntime",
                "num_infractions": 20,
                "infractions": infr,
                "scores": {"score_route": rc, "score_penalty": 1.0, "score_composed": rc},
                "meta": {"route_length": 100.0, "duration_game": 200.0, "duration_system": 1000.0},
                "town_name": "Town12",
            }
        )
        yaw = np.cumsum(rng.normal(0, 0.2, samples))
        acc = rng.normal(0, 0.8, (samples, 3))
        steps = {
            str(t): {
                "acceleration": acc[t].round(6).tolist(),
                "angular_velocity": [0.0, 0.0, round(float(rng.normal(0, 0.3)), 6)],
                "forward_vector": [round(float(np.cos(yaw[t])), 6), round(float(np.sin(yaw[t])), 6), 0.0],
                "right_vector": [round(float(-np.sin(yaw[t])), 6), round(float(np.cos(yaw[t])), 6), 0.0],
                "location": [float(t), 0.0, 0.0],
                "rotation": [0.0, 0.0, round(float(np.degrees(yaw[t])), 4)],
            }
            for t in range(samples)
        }
        (folder / save).mkdir(parents=True, exist_ok=True)
        (folder / save / "metric_info.json").write_text(json.dumps(steps))
    return records, route_ids


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--routes", type=int, default=220)
    ap.add_argument("--samples", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        records, _ = make_inputs(folder, args.routes, args.samples)
        gen_s = time.perf_counter() - t0
        routes = parse_routes(ROUTES_XML) if ROUTES_XML.is_file() else None
        times = []
        out: dict = {}
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = compute_metrics(records, routes, folder)
            times.append(time.perf_counter() - t0)
        size_mb = sum(p.stat().st_size for p in folder.rglob("metric_info.json")) / 2**20
    print(
        json.dumps(
            {
                "benchmark": "b2d_metrics",
                "routes": args.routes,
                "samples_per_route": args.samples,
                "metric_info_mb": round(size_mb, 1),
                "seconds_best": round(min(times), 3),
                "seconds_median": round(float(np.median(times)), 3),
                "target_seconds": 3.0,
                "abilities_included": routes is not None,
                "comfort": out.get("comfort"),
                "input_generation_seconds": round(gen_s, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
