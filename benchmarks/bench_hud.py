"""Milliseconds per HUD frame: `tick()` (state), `render()` (drawing), frame grab and MP4 encoding, at 1280x720.

One real planning step of the `tiny` model on an embedded-world scene provides the PlanResult and the WorldView (six
352x198 cameras, as the demo's agent hands them over); the same pair is then shown `--frames` times headless. Prints
one JSON object. Target: under 50 ms for tick + render + encode, so a 10 fps recording costs under half a second per
simulated second.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.config import load_preset
from agent.policy import DrivingPolicy
from agent.types import EgoStatus, Observation, bench2drive_rig
from sim.render import render_cameras
from sim.scenarios import generate_scene
from viz.view import Control
from viz.viewer import HudViewer
from viz.world import view_from_scene


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=40)
    args = ap.parse_args()
    scene = generate_scene("pedestrian_crossing", 1)
    step = scene.current_index
    rig = bench2drive_rig(352, 198)
    images = render_cameras(scene, step, rig)
    policy = DrivingPolicy.from_config(load_preset("tiny"))
    ego = EgoStatus(scene.ego[step, 3:5], scene.ego[step, 5:7])
    obs = Observation(images, rig, ego, target_point=np.array([20.0, 0.0]))
    plan = policy.step(obs)
    view = view_from_scene(scene, step, images, rig, control=Control(0.0, 0.3, 0.0))
    with tempfile.TemporaryDirectory() as tmp:
        viewer = HudViewer(video=os.path.join(tmp, "bench.mp4"))
        timings = {"tick": [], "render": [], "grab": [], "encode": []}
        for _ in range(args.frames):
            t0 = time.perf_counter()
            viewer.hud.tick(plan, view)
            t1 = time.perf_counter()
            viewer.hud.render(viewer.surface)
            t2 = time.perf_counter()
            frame = viewer.frame()
            t3 = time.perf_counter()
            viewer.video.write(frame)
            t4 = time.perf_counter()
            for k, a, b in (("tick", t0, t1), ("render", t1, t2), ("grab", t2, t3), ("encode", t3, t4)):
                timings[k].append((b - a) * 1e3)
        encoder = viewer.video.encoder
        viewer.close()
    ms = {k: round(float(np.median(v)), 2) for k, v in timings.items()}
    print(json.dumps({
        "benchmark": "hud", "frames": args.frames, "size": [viewer.cfg.width, viewer.cfg.height], "encoder": encoder,
        "median_ms": ms, "total_ms_per_frame": round(sum(ms.values()), 2), "target_ms": 50.0,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
