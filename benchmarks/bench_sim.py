"""Embedded-world benchmark: scene generation rate, six-camera render time, BEV raster time. Prints one JSON object.

Single thread (BLAS/OpenMP pinned to one thread before numpy loads); times are medians over many frames of
procedurally generated scenes (`sim.scenarios`), or of a built-in junction scene when that module is absent. Each
render time comes with its CPU-time twin (`*_cpu_ms_*`) and the load average, since a shared machine inflates
wall-clock times.

    python benchmarks/bench_sim.py [--frames 20] [--scenes 20]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from agent.types import bench2drive_rig, model_rig  # noqa: E402
from sim.render import CameraRenderer, render_bev, render_bev_rgb  # noqa: E402
from sim.scene import AGENT_DIM, EGO_DIM, Agents, AgentType, Route, Scene, TrafficLight  # noqa: E402


def _fallback_scene() -> Scene:
    """A four-way junction approach with traffic, pedestrians and lights (used when sim.scenarios is absent)."""
    from sim.roads import four_way_intersection

    rm = four_way_intersection()
    lane = rm.map.lanes[rm.arms[0].incoming[0]]
    t = 60
    i0 = max(0, len(lane.centerline) - 60)
    ego = np.zeros((t, EGO_DIM))
    idx = np.minimum(i0 + np.arange(t) // 2, len(lane.centerline) - 1)
    ego[:, :2] = lane.centerline[idx]
    ego[:, 2] = lane.headings[idx]
    end, h = lane.centerline[-1], lane.headings[-1]
    fwd = np.array([math.cos(h), math.sin(h)])
    left = np.array([-fwd[1], fwd[0]])
    specs = [
        (AgentType.VEHICLE, end - 8 * fwd, h, (4.6, 1.9, 1.5)),
        (AgentType.VEHICLE, end - 20 * fwd - 3.5 * left, h, (4.8, 2.0, 1.6)),
        (AgentType.VEHICLE, end + 30 * fwd + 6 * left, h + math.pi, (4.6, 1.9, 1.5)),
        (AgentType.VEHICLE, end + 14 * fwd + 2 * left, h + math.pi / 2, (5.5, 2.1, 2.3)),
        (AgentType.PEDESTRIAN, end + 2 * fwd - 6 * left, h + math.pi / 2, (0.6, 0.6, 1.75)),
        (AgentType.BICYCLE, end - 30 * fwd - 5.5 * left, h, (1.8, 0.6, 1.7)),
        (AgentType.TRAFFIC_CONE, end - 40 * fwd - 5 * left, 0.0, (0.4, 0.4, 0.7)),
    ]
    n = len(specs)
    states = np.zeros((n, t, AGENT_DIM))
    for k, (_typ, xy, heading, _size) in enumerate(specs):
        states[k, :, :2] = xy
        states[k, :, 2] = heading
    agents = Agents(
        tuple(f"a{k}" for k in range(n)),
        [int(s[0]) for s in specs],
        [s[3] for s in specs],
        states,
        np.ones((n, t), dtype=bool),
    )
    lights = []
    for k, (tid, cids) in enumerate(rm.light_groups.items()):
        c_lane = rm.map.lanes[cids[0]]
        hh = c_lane.headings[0]
        f = np.array([math.cos(hh), math.sin(hh)])
        pos = c_lane.centerline[0] + 18 * f + 4 * np.array([f[1], -f[0]])
        lights.append(TrafficLight(tid, tuple(cids), np.full(t, k % 3), np.array([pos[0], pos[1], 5.0]), hh + math.pi))
    route = Route((lane.id,), np.concatenate([lane.centerline, lane.headings[:, None]], axis=1))
    return Scene("bench", "junction", 0, np.arange(t) * 0.1, 20, rm.map, agents, tuple(lights), ego, route)


def _median_ms(fn, frames: int) -> tuple[float, float]:
    """Median wall-clock and CPU milliseconds per call (CPU time is robust to other processes sharing the cores)."""
    wall, cpu = [], []
    for k in range(frames):
        t0, c0 = time.perf_counter(), time.process_time()
        fn(k)
        cpu.append((time.process_time() - c0) * 1000.0)
        wall.append((time.perf_counter() - t0) * 1000.0)
    return round(statistics.median(wall), 3), round(statistics.median(cpu), 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="frames timed per measurement (>= 20 recommended)")
    parser.add_argument("--scenes", type=int, default=20, help="scenes generated for scenes_per_s")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.scenes < 1:
        parser.error("--frames and --scenes must be positive")

    result: dict[str, object] = {"python": platform.python_version(), "frames": args.frames, "threads": 1}
    scenes: list[Scene] = []
    try:
        scenarios = importlib.import_module("sim.scenarios")
        if not callable(getattr(scenarios, "generate_scene", None)):
            raise ImportError("it has no generate_scene")
    except ImportError as e:
        scenarios = None
        result["scenes_per_s"] = None
        result["scenes_note"] = f"sim.scenarios not usable ({e}); rendering a built-in junction scene"
    if scenarios is not None:
        families = list(getattr(scenarios, "FAMILIES", ())) or ["straight"]
        scenarios.generate_scene(families[0], 0)  # warm caches / imports
        t0 = time.perf_counter()
        for k in range(args.scenes):
            scenes.append(scenarios.generate_scene(families[k % len(families)], 1000 + k))
        result["scenes_per_s"] = round(args.scenes / (time.perf_counter() - t0), 3)
        result["scene_families"] = len(families)
    if not scenes:
        scenes = [_fallback_scene()]

    # Frames walk through time in a few scenes (as data generation and closed-loop runs do); the per-map static
    # geometry (ground polygons, scenery) is built on a map's first frame and timed separately.
    shown = scenes[:4]

    def frame(k: int) -> tuple[Scene, int]:
        scene = shown[k % len(shown)]
        return scene, min(scene.current_index + k // len(shown), scene.num_steps - 1)

    for key, rig in (("render_ms_6cam_256x704", model_rig()), ("render_ms_6cam_1600x900", bench2drive_rig())):
        renderer = CameraRenderer(rig)
        first = []
        for scene in shown:
            t0 = time.perf_counter()
            renderer.render(scene, scene.current_index)
            first.append((time.perf_counter() - t0) * 1000.0)
        result[key.replace("render_ms", "first_frame_ms")] = round(statistics.median(first), 3)
        result[key], result[key.replace("_ms_", "_cpu_ms_")] = _median_ms(
            lambda k, r=renderer: r.render(*frame(k)), args.frames
        )
    result["bev_ms_128"], result["bev_cpu_ms_128"] = _median_ms(lambda k: render_bev(*frame(k)), args.frames)
    result["bev_rgb_ms_512"], _ = _median_ms(lambda k: render_bev_rgb(*frame(k)), args.frames)
    result["load_average_1min"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
