"""`irlvla scenes`: generate embedded-world scenes to disk and render them to PNG pictures.

irlvla scenes generate --n 12 --seed 0 --out out/scenes [--families intersection red_light]
irlvla scenes show out/scenes --out out/renders [--t 0.0] [--width 800 --height 450] [--all]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

logger = logging.getLogger(__name__)

EXIT_BAD_INPUT = 2


class _UsageError(ValueError):
    """Bad command-line input: reported on stderr with exit status 2."""


def register(subparsers) -> None:
    p = subparsers.add_parser("scenes", help="generate, inspect and render embedded-world scenes")
    sub = p.add_subparsers(dest="scenes_command", metavar="ACTION")

    g = sub.add_parser("generate", help="generate procedural scenes into a folder (<token>.scene.json.gz)")
    g.add_argument("--n", type=int, required=True, help="number of scenes")
    g.add_argument("--seed", type=int, default=0, help="master seed (same seed, same bytes)")
    g.add_argument("--out", type=Path, required=True, help="output folder")
    g.add_argument("--families", nargs="+", default=None, help="scenario families to cycle through (default: all)")
    g.add_argument("--past", type=float, default=2.0, help="seconds of history (default 2.0)")
    g.add_argument("--future", type=float, default=8.0, help="seconds of logged future (default 8.0)")
    g.set_defaults(func=_generate)

    s = sub.add_parser("show", help="render a scene (or the scenes of a folder) to camera and BEV PNGs")
    s.add_argument("scene", type=Path, help="a .scene.json.gz file or a folder of them")
    s.add_argument("--out", type=Path, required=True, help="output folder for the PNGs")
    s.add_argument("--t", type=float, default=0.0, help="time relative to the current frame, seconds (default 0)")
    s.add_argument("--width", type=int, default=1600, help="camera image width (default 1600)")
    s.add_argument("--height", type=int, default=900, help="camera image height (default 900)")
    s.add_argument("--bev-size", type=int, default=512, help="BEV picture size in pixels (default 512)")
    s.add_argument("--bev-range", type=float, default=64.0, help="BEV half-range in metres (default 64)")
    s.add_argument("--all", action="store_true", help="with a folder: render every scene, not only the first")
    s.add_argument("--limit", type=int, default=None, help="with a folder and --all: at most this many scenes")
    s.set_defaults(func=_show)

    p.set_defaults(func=lambda args: _no_action(p))


def _no_action(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_BAD_INPUT


def _fail(msg: str) -> int:
    print(f"irlvla scenes: error: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


# ---- generate ----
def _generate(args: argparse.Namespace) -> int:
    from sim.scenarios import FAMILIES, ScenarioConfig, generate_scene, scene_seeds
    from sim.scene_io import save_scene

    try:
        if args.n < 1:
            raise _UsageError(f"--n must be at least 1, got {args.n}")
        if args.seed < 0:
            raise _UsageError(f"--seed must be non-negative, got {args.seed}")
        families = tuple(args.families) if args.families else FAMILIES
        unknown = [f for f in families if f not in FAMILIES]
        if unknown:
            raise _UsageError(f"unknown families {unknown}; choose from {', '.join(FAMILIES)}")
        config = ScenarioConfig(past_s=args.past, future_s=args.future)
    except (_UsageError, ValueError) as exc:
        return _fail(str(exc))
    out: Path = args.out
    if out.exists() and not out.is_dir():
        return _fail(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    seeds = scene_seeds(args.n, args.seed)
    written, failed, counts = [], [], {}
    t0 = time.perf_counter()
    for i in range(args.n):
        family = families[i % len(families)]
        try:
            scene = generate_scene(family, int(seeds[i]), config)
            path = save_scene(scene, out / scene.token)
        except Exception as exc:  # record the failure and go on with the next scene
            logger.error("scene %d (%s, seed %d) failed: %s", i, family, int(seeds[i]), exc)
            failed.append({"index": i, "family": family, "seed": int(seeds[i]), "error": str(exc)})
            continue
        written.append(path)
        counts[family] = counts.get(family, 0) + 1
        print(f"{path}  {family:<20s} agents={len(scene.agents):3d} lights={len(scene.traffic_lights)}")
    dt = time.perf_counter() - t0
    summary = {
        "out": str(out),
        "scenes": len(written),
        "failed": failed,
        "families": counts,
        "seconds": round(dt, 3),
        "scenes_per_s": round(len(written) / dt, 2) if dt > 0 else None,
    }
    print(json.dumps(summary))
    return 0 if not failed else 1


# ---- show ----
def _scene_files(target: Path, every: bool, limit: int | None) -> list[Path]:
    from sim.scene_io import SUFFIX, list_scene_files

    if target.is_dir():
        files = list_scene_files(target)
        if not files:
            raise _UsageError(f"no *{SUFFIX} files in {target}")
        files = files if every else files[:1]
        return files[:limit] if limit else files
    if target.is_file():
        return [target]
    raise _UsageError(f"scene not found: {target}")


def _show(args: argparse.Namespace) -> int:
    from agent.types import bench2drive_rig
    from irlvla.video import save_png
    from sim.scene_io import SceneFormatError, load_scene

    try:
        if not (16 <= args.width <= 4096 and 16 <= args.height <= 4096):
            raise _UsageError(f"--width/--height must be within 16..4096, got {args.width}x{args.height}")
        if not (16 <= args.bev_size <= 4096) or not (args.bev_range > 0):
            raise _UsageError("--bev-size must be within 16..4096 and --bev-range positive")
        if args.limit is not None and args.limit < 1:
            raise _UsageError(f"--limit must be at least 1, got {args.limit}")
        files = _scene_files(args.scene, args.all, args.limit)
    except (_UsageError, FileNotFoundError) as exc:
        return _fail(str(exc))
    import sim.render as render

    rig = bench2drive_rig(args.width, args.height)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    status = 0
    for f in files:
        try:
            scene = load_scene(f)
            step = scene.step_at(args.t)
        except (SceneFormatError, FileNotFoundError, IndexError) as exc:  # this file fails, the others go on
            logger.error("%s: %s", f.name, exc)
            print(f"irlvla scenes: error: {f.name}: {exc}", file=sys.stderr)
            status = EXIT_BAD_INPUT
            continue
        try:
            images = render.render_cameras(scene, step, rig)
            stem = f"{scene.token}_t{args.t:+.1f}"
            written = []
            for name, img in images.items():
                written.append(save_png(out / f"{stem}_{name}.png", img))
            mosaic = render.mosaic(images, rig)
            written.append(save_png(out / f"{stem}_mosaic.png", mosaic))
            bev = render.render_bev_rgb(scene, step, size_px=args.bev_size, range_m=args.bev_range)
            written.append(save_png(out / f"{stem}_bev.png", bev))
        except Exception as exc:  # a scene the renderer cannot draw is recorded and skipped
            logger.exception("%s: rendering failed", f.name)
            print(f"irlvla scenes: error: {f.name}: rendering failed: {exc}", file=sys.stderr)
            status = max(status, 1)
            continue
        print(f"{f.name}: {scene.scenario} at t={args.t:+.1f}s -> {len(written)} PNGs in {out}")
    return status
