"""Closed-loop benchmark: world ticks per second excluding the agent (with the six 1600x900 Bench2Drive cameras and
without cameras), and seconds per dev-suite run with the expert agent. Prints one JSON object.

A tick is everything the leaderboard stand-in does besides the agent's `run_step`: rendering and BGRA-packing the
declared cameras, GNSS/IMU/speedometer, vehicle dynamics, the living world (IDM traffic, walkers, lights) and every
criterion. Single thread (BLAS/OpenMP pinned before numpy loads); wall-clock times come with their CPU-time twins and
the load average, since a shared machine inflates wall-clock times; per-tick medians (wall and CPU) are less
sensitive to other processes than the totals. Target: >= 20 ticks/s (50 ms per tick) with six cameras; pin to one
core with `taskset -c 0` to measure the one-core figure.

    python benchmarks/bench_closed_loop.py [--ticks 60] [--skip-dev]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.closed_loop import RouteSpec, RunnerConfig, build_route, run_route, shims  # noqa: E402
from sim.closed_loop.agents import ExpertAgent  # noqa: E402
from sim.closed_loop.criteria import CriteriaConfig  # noqa: E402


def _probe(cameras: bool):
    """The expert (privileged, cheap) declaring the full Bench2Drive sensor suite, with its own time measured."""

    class Probe(ExpertAgent):
        spent = 0.0
        spent_cpu = 0.0
        marks: list[tuple[float, float, float, float]] = []  # per run_step: wall/CPU at entry, agent wall/CPU spent

        def sensors(self):
            from team_code.sensors import build_sensors

            sensors = build_sensors()
            return sensors if cameras else [s for s in sensors if s["type"] != "sensor.camera.rgb"]

        def run_step(self, input_data, timestamp):
            t0, c0 = time.perf_counter(), time.process_time()
            out = super().run_step({"SPEED": input_data["SPEED"]}, timestamp)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            type(self).spent += dt
            type(self).spent_cpu += dc
            type(self).marks.append((t0, c0, dt, dc))
            return out

    return Probe


def world_rate(ticks: int, cameras: bool) -> dict:
    shims.install()
    route = build_route(RouteSpec(1, "intersection", 3))
    cfg = RunnerConfig(criteria=CriteriaConfig(tick_cap=ticks))
    warm = _probe(cameras)
    run_route(route, warm, RunnerConfig(criteria=CriteriaConfig(tick_cap=2)))  # map caches, renderer set-up
    probe = _probe(cameras)
    t0, c0 = time.perf_counter(), time.process_time()
    res = run_route(route, probe, cfg)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = res.ticks
    # One tick = from one run_step call to the next, less the agent's own time in the first of them.
    marks = probe.marks
    per_tick = [(b[0] - a[0] - a[2], b[1] - a[1] - a[3]) for a, b in zip(marks, marks[1:])]
    return {
        "ticks": n,
        "ticks_per_s": round(n / max(wall - probe.spent, 1e-9), 2),
        "cpu_ticks_per_s": round(n / max(cpu - probe.spent_cpu, 1e-9), 2),
        "median_ms_per_tick": round(1000 * statistics.median(w for w, _ in per_tick), 2),
        "cpu_median_ms_per_tick": round(1000 * statistics.median(c for _, c in per_tick), 2),
        "agent_s_excluded": round(probe.spent, 3),
    }


def dev_suite_seconds() -> dict:
    from sim.closed_loop.evaluate import run_suite
    from sim.closed_loop.suites import load_suite

    specs, path, _ = load_suite("dev")
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        summary = run_suite(specs, "expert", tmp, route_file=path, progress=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "dev_suite_expert_s": round(wall, 2),
        "dev_suite_expert_cpu_s": round(cpu, 2),
        "dev_suite_expert_ds": round(summary.driving_score, 2),
        "dev_suite_expert_sr": round(summary.success_rate, 2),
        "dev_suite_game_s": round(sum(r["meta"]["duration_game"] for r in summary.records), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=60)
    ap.add_argument("--skip-dev", action="store_true")
    args = ap.parse_args()
    out = {"benchmark": "closed_loop", "python": platform.python_version(), "load_avg_1m": os.getloadavg()[0]}
    cams = world_rate(args.ticks, True)
    out.update({f"six_cameras_1600x900_{k}": v for k, v in cams.items()})
    out.update({f"no_cameras_{k}": v for k, v in world_rate(args.ticks * 10, False).items()})
    out["target_ticks_per_s"] = 20.0
    if not args.skip_dev:
        out.update(dev_suite_seconds())
    out["load_avg_1m_end"] = os.getloadavg()[0]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
