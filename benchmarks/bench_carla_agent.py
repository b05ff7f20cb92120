"""Milliseconds per leaderboard tick spent in the Bench2Drive agent outside the model (target: <= 5 ms).

Drives `team_code.irlvla_b2d_agent.IrlVlaB2DAgent` with a zero-cost policy on six 1600x900 BGRA frames, GNSS, IMU
and speed, for each image-preprocessing variant (no JPEG, JPEG after resizing, JPEG at native resolution), and times
the stages the agent reports: localisation + route, images (BGRA decode, JPEG, resize), control, and the metric log.
Prints one JSON object.

    python benchmarks/bench_carla_agent.py [--ticks 200] [--threads 6]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from sim.closed_loop import shims  # noqa: E402

carla = shims.install()  # the real wheel, else the closed-loop runner's data-type stand-in

from agent import geometry  # noqa: E402
from agent.contract import PlanResult  # noqa: E402
from agent.types import Trajectory  # noqa: E402
from team_code import irlvla_b2d_agent as agent_module  # noqa: E402
from team_code.sensors import GNSS_ID, IMU_ID, SPEED_ID, camera_ids  # noqa: E402

LAT_REF, LON_REF = 48.2, 11.6


class _FreePolicy:
    """An `agent.contract.Planner` that returns a fixed straight 5 m/s plan instantly, so only the adapter is timed."""

    plan = PlanResult(Trajectory(np.stack([2.5 * np.arange(1, 9), np.zeros(8), np.zeros(8)], axis=-1)))

    def step(self, observation):
        return self.plan

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass


_POLICY = _FreePolicy()


def free_policy(cfg):
    return _POLICY


class _Hero:
    def __init__(self) -> None:
        self.x = 0.0

    def get_transform(self):
        return carla.Transform(carla.Location(self.x, 0.0, 0.0), carla.Rotation(yaw=0.0))

    def get_acceleration(self):
        return carla.Vector3D(0.5, 0.0, 0.0)

    def get_angular_velocity(self):
        return carla.Vector3D(0.0, 0.0, 0.1)


def _plan(length: float = 400.0):
    gps, world = [], []
    for x in np.arange(0.0, length, 1.0):
        lat, lon = geometry.world_to_gnss(x, 0.0, LAT_REF, LON_REF)
        gps.append(({"lat": float(lat), "lon": float(lon), "z": 0.0}, 4))
        world.append((carla.Transform(carla.Location(float(x), 0.0, 0.0), carla.Rotation()), 4))
    return gps, world


def _frames(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Road-like frames: smooth gradients plus noise, so JPEG sees realistic entropy. One array per camera."""
    yy, xx = np.mgrid[0:900, 0:1600]
    out = {}
    for i, name in enumerate(camera_ids()):
        f = np.empty((900, 1600, 4), dtype=np.uint8)
        f[..., 0] = (xx // 4 + 40 * i) % 256
        f[..., 1] = (yy // 3) % 256
        f[..., 2] = ((xx + yy) // 8) % 256
        f[..., :3] += rng.integers(0, 24, size=(900, 1600, 3), dtype=np.uint8)
        f[..., 3] = 255
        out[name] = f
    return out


def run_variant(images_yaml: str, ticks: int, threads: int, tmp: Path) -> dict:
    cfg = tmp / "agent.yaml"
    cfg.write_text(
        f"policy_entry_point: '{__name__}:free_policy'\nsave_path: '{tmp / 'out'}'\n"
        f"latency_budget_ms: 100000\n{images_yaml.replace('}', f', threads: {threads}}}')}\n"
    )
    gps, world = _plan()
    agent = agent_module.IrlVlaB2DAgent("localhost", 2000, False)
    agent.set_global_plan(gps, world)
    agent.setup(f"{cfg}+bench_route")
    hero = agent.hero_actor = _Hero()
    frames = _frames(np.random.default_rng(0))
    stages: dict[str, list[float]] = {}
    totals = []
    for k in range(ticks + 5):
        x = 5.0 * 0.05 * k
        lat, lon = geometry.world_to_gnss(x - 0.01, 0.0, LAT_REF, LON_REF)
        data = {n: (k, f) for n, f in frames.items()}
        data[GNSS_ID] = (k, np.array([float(lat), float(lon), 0.0]))
        data[IMU_ID] = (k, np.array([0.5, 0.0, 9.81, 0.0, 0.0, 0.0, math.pi / 2]))
        data[SPEED_ID] = (k, {"speed": 5.0})
        hero.x = x + 1.39
        agent.run_step(data, 0.05 * k)
        if k < 5:  # warm-up (thread pool, first allocations)
            continue
        t = agent.last_timings
        for name in ("localize_route_ms", "images_ms", "control_ms"):
            stages.setdefault(name, []).append(t.get(name, float("nan")))
        other = t["total_ms"] - sum(
            t.get(n, 0.0) for n in ("localize_route_ms", "images_ms", "policy_ms", "control_ms")
        )
        stages.setdefault("metric_log_and_rest_ms", []).append(other)
        totals.append(t["total_ms"] - t.get("policy_ms", 0.0))
    failures = agent.failures
    agent.destroy()
    if failures:
        raise RuntimeError(f"{failures} failed ticks in the benchmark")
    summary = {name: round(float(np.mean(v)), 3) for name, v in stages.items()}
    summary["total_excl_model_ms"] = round(float(np.mean(totals)), 3)
    summary["total_excl_model_p95_ms"] = round(float(np.percentile(totals, 95)), 3)
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=200)
    ap.add_argument("--threads", type=int, default=6, help="camera preprocessing threads")
    args = ap.parse_args()
    variants = {
        "no_jpeg": "images: {jpeg_quality: null}",
        "no_jpeg_pillow": "images: {jpeg_quality: null, backend: pillow}",
        "no_jpeg_nearest": "images: {jpeg_quality: null, resample: nearest}",
        "jpeg20_at_model": "images: {jpeg_quality: 20, jpeg_at: model}",
        "jpeg20_native": "images: {jpeg_quality: 20, jpeg_at: native}",
    }
    results = {}
    with tempfile.TemporaryDirectory() as d:
        for name, yaml_text in variants.items():
            sub = Path(d) / name
            sub.mkdir()
            t0 = time.perf_counter()
            results[name] = run_variant(yaml_text, args.ticks, args.threads, sub)
            results[name]["wall_s"] = round(time.perf_counter() - t0, 2)
    out = {
        "benchmark": "carla_agent_tick_excluding_model",
        "unit": "ms per tick (mean over ticks after 5 warm-up ticks)",
        "ticks": args.ticks,
        "threads": args.threads,
        "target_ms": 5.0,
        "frames": "6 x 1600x900 BGRA -> 704x396 RGB",
        "image_backend_auto": "opencv" if importlib.util.find_spec("cv2") else "pillow",
        "carla_module": "real" if not getattr(carla, "FAKE", False) else "fake (sim/closed_loop/fake_carla.py)",
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "variants": results,
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
