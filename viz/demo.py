"""`irlvla demo`: the shipped agent driving closed-loop in the embedded world, recorded by its HUD, with a report.

Per route: the closed-loop runner (`sim.closed_loop.run_route`) plays the leaderboard with our CARLA agent file
(`team_code/irlvla_b2d_agent.py`, unchanged) and an agent config that asks for the HUD recording; this module only
registers a world source so the HUD also shows ground truth, follows progress, and writes the outputs:

    OUT/report.md                       per-route table (DS, RC, penalty, infractions, comfort, predicted EPDMS per
                                        planning step summarised) and one picture per route
    OUT/metrics.json                    the same numbers, machine-readable (the report is generated from it)
    OUT/runs/<save_name>/hud.mp4        one HUD video per route (and hud.png, metric_info.json, hud_plans.json)
    OUT/agent.yaml                      the agent config the run used

The checkpoint is `weights/irlvla_b2d.safetensors` when it exists; otherwise the untrained `tiny` preset drives and
the report says so in its first line.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path

from irlvla.atomic import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT = REPO_ROOT / "weights" / "irlvla_b2d.safetensors"
AGENT_FILE = REPO_ROOT / "team_code" / "irlvla_b2d_agent.py"

#: the demo shows the first route of each of these families from the held-out suite (`sim.closed_loop.suites`),
#: whose seeds training never sees.
DEMO_FAMILIES: tuple[str, ...] = ("straight_road", "pedestrian_crossing", "intersection")


def demo_routes() -> list[tuple[int, str, int]]:
    """(route id, family, seed) of the demo routes, taken from the held-out suite."""
    from sim.closed_loop.suites import suite_specs

    heldout = suite_specs("heldout")
    return [next((s.route_id, s.family, s.seed) for s in heldout if s.family == fam) for fam in DEMO_FAMILIES]


def _ego_fields(info) -> dict:
    """Ground-truth view fields (ego frame) of the world at a runner tick, for the agent's HUD."""
    from viz.world import scene_agents, scene_geometry

    pose = info.ego.pose
    scene = info.world.scene_at(info.ego, info.snapshot)
    crit = info.criteria
    n_inf = sum(len(v) for v in crit.events.values())
    return {
        **scene_geometry(scene, pose, 0),
        "agents": scene_agents(scene, pose, 0),
        "title": f"{info.route.spec.leaderboard_id} {info.route.spec.family}",
        "info": {"route completion": f"{crit.completion:5.1f} %", "infractions": str(n_inf)},
    }


def _agent_yaml(out: Path, checkpoint: Path | None, args) -> Path:
    lines = [
        "# written by `irlvla demo`: our Bench2Drive agent with its HUD recording each route",
        f"checkpoint: {json.dumps(str(checkpoint)) if checkpoint else 'null'}",
        "preset: tiny",
        f"device: {args.device}",
        f"images: {{width: {args.image_width}, threads: 2}}",
        f"hud: {'true' if args.live else 'false'}",
        "hud_record: true",
        f"hud_every: {args.hud_every}",
        "latency_budget_ms: 100000.0",
    ]
    path = out / "agent.yaml"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _summary(values: list[float | None]) -> dict:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"steps": len(values), "mean": None, "min": None, "max": None}
    return {
        "steps": len(values),
        "mean": round(sum(finite) / len(finite), 4),
        "min": round(min(finite), 4),
        "max": round(max(finite), 4),
    }


def _route_metrics(result, folder: Path, spec) -> dict:
    from bench2drive_eval.comfort import Kinematics, route_comfort

    rec = result.record
    try:
        comfort = round(route_comfort(Kinematics.from_metric_info(result.metric_info)), 4)
    except (ValueError, IndexError):
        comfort = None  # too few samples for one comfort window
    plans_path = folder / "hud_plans.json"
    plans = json.loads(plans_path.read_text()) if plans_path.is_file() else []
    infractions = {k: len(v) for k, v in rec["infractions"].items() if v}
    return {
        "route_id": rec["route_id"],
        "family": spec.family,
        "seed": spec.seed,
        "save_name": rec["save_name"],
        "status": rec["status"],
        "driving_score": round(rec["scores"]["score_composed"], 4),
        "route_completion": round(rec["scores"]["score_route"], 4),
        "infraction_penalty": round(rec["scores"]["score_penalty"], 4),
        "infractions": infractions,
        "comfort": comfort,
        "predicted_epdms": _summary([p["epdms"] for p in plans]),
        "sim_seconds": rec["meta"]["duration_game"],
        "wall_seconds": rec["meta"]["duration_system"],
        "video": str((folder / "hud.mp4").relative_to(folder.parent.parent))
        if (folder / "hud.mp4").is_file()
        else None,
        "picture": str((folder / "hud.png").relative_to(folder.parent.parent))
        if (folder / "hud.png").is_file()
        else None,
        "error": result.error.strip().splitlines()[-1] if result.error else None,
    }


def _relative(path: Path) -> str | None:
    """`runs/<save_name>/<file>` (relative to the demo's output folder) when the file exists."""
    return path.relative_to(path.parent.parent.parent).as_posix() if path.is_file() else None


def _fmt(v, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def render_report(metrics: dict) -> str:
    """report.md from metrics.json (so the two always agree)."""
    m = metrics["model"]
    lines = ["# IRL-VLA closed-loop demo", ""]
    if m["trained"]:
        lines.append(f"Model: trained checkpoint `{m['checkpoint']}`.")
    else:
        lines.append(
            "**Model: UNTRAINED.** No checkpoint at `weights/irlvla_b2d.safetensors`; the untrained `tiny` preset "
            "drives (randomly initialised weights), so the scores below show the pipeline, not a driving skill."
        )
    s = metrics["summary"]
    lines += [
        "",
        f"Routes: {s['routes']} held-out embedded-world routes, run by our CARLA agent "
        f"(`team_code/irlvla_b2d_agent.py`) in the closed-loop world; at most {metrics['max_seconds']:g} s of "
        f"simulated time each. Wall time {metrics['wall_seconds']:.0f} s."
        + ("" if metrics.get("complete", True) else " **Partial: the run was interrupted.**"),
        "",
        "| route | family | status | DS | RC | penalty | infractions | comfort | pred. EPDMS mean (min-max, steps) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in metrics["routes"]:
        inf = ", ".join(f"{k} {n}" for k, n in r["infractions"].items()) or "none"
        e = r["predicted_epdms"]
        epdms = f"{_fmt(e['mean'], 3)} ({_fmt(e['min'], 3)}-{_fmt(e['max'], 3)}, {e['steps']})"
        lines.append(
            f"| {r['route_id']} | {r['family']} | {r['status']} | {_fmt(r['driving_score'])} | "
            f"{_fmt(r['route_completion'])} | {_fmt(r['infraction_penalty'], 3)} | {inf} | {_fmt(r['comfort'], 3)} | "
            f"{epdms} |"
        )
    lines += [
        f"| **mean** | | | **{_fmt(s['driving_score'])}** | **{_fmt(s['route_completion'])}** | "
        f"{_fmt(s['infraction_penalty'], 3)} | | {_fmt(s['comfort'], 3)} | {_fmt(s['predicted_epdms'], 3)} |",
        "",
        "DS = RC x penalty (Bench2Drive); comfort is Bench2Drive's fraction of comfortable windows; predicted EPDMS is "
        "the reward world model's score of the chosen plan at each planning step.",
        "",
    ]
    for r in metrics["routes"]:
        lines.append(f"## {r['route_id']} ({r['family']}, seed {r['seed']})")
        lines.append("")
        if r["picture"]:
            lines.append(f"![last HUD frame of {r['route_id']}]({r['picture']})")
        if r["video"]:
            lines.append(f"Video: [{r['video']}]({r['video']})")
        if r["error"]:
            lines.append(f"Error: `{r['error']}`")
        lines.append("")
    return "\n".join(lines)


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return round(sum(vals) / len(vals), 4) if vals else None


def _write_outputs(out: Path, trained: bool, checkpoint: Path, max_seconds: float, routes: list[dict], t0: float,
                   complete: bool) -> dict:  # fmt: skip
    """metrics.json and the report generated from it (both written all or nothing)."""
    metrics = {
        "model": {"trained": trained, "checkpoint": str(checkpoint) if trained else None, "preset": "tiny"},
        "max_seconds": max_seconds,
        "complete": complete,
        "routes": routes,
        "summary": {
            "routes": len(routes),
            "driving_score": _mean(r["driving_score"] for r in routes),
            "route_completion": _mean(r["route_completion"] for r in routes),
            "infraction_penalty": _mean(r["infraction_penalty"] for r in routes),
            "comfort": _mean(r["comfort"] for r in routes),
            "predicted_epdms": _mean(r["predicted_epdms"]["mean"] for r in routes),
        },
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    atomic_write_json(out / "metrics.json", metrics)
    atomic_write_text(out / "report.md", render_report(metrics))
    return metrics


def run_demo(args) -> dict:
    from sim.closed_loop.route import RouteSpec
    from sim.closed_loop.runner import RunnerConfig, run_route
    from viz.agent_hud import QUIT_REQUESTED, set_world_source

    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = Path(args.checkpoint) if args.checkpoint else DEFAULT_CHECKPOINT
    trained = checkpoint.is_file()
    if not trained:
        if args.checkpoint:
            raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
        logger.warning("no trained checkpoint at %s: the demo drives the UNTRAINED tiny preset", checkpoint)
    yaml_path = _agent_yaml(out, checkpoint if trained else None, args)
    runs = out / "runs"
    specs = [RouteSpec(rid, fam, seed, max_length_m=args.max_length) for rid, fam, seed in demo_routes()[: args.routes]]
    max_ticks = int(round(args.max_seconds / 0.05))
    routes = []
    state: dict = {"info": None}
    QUIT_REQUESTED[0] = False
    set_world_source(lambda: _ego_fields(state["info"]) if state["info"] is not None else {})
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with transformers; a plain line per route otherwise
        tqdm = None
    try:
        for i, spec in enumerate(specs):
            name = f"{spec.leaderboard_id}_{spec.family}"
            bar = None
            if tqdm is not None:
                bar = tqdm(
                    total=max_ticks, desc=f"route {i + 1}/{len(specs)} {spec.family}", unit="tick", file=sys.stderr
                )
            else:
                print(f"route {i + 1}/{len(specs)} {spec.family} ...", file=sys.stderr, flush=True)
            state["info"] = None
            if (runs / name).exists():  # a previous demo's files for this route (journals would append to them)
                shutil.rmtree(runs / name)

            def on_tick(info, bar=bar) -> bool:
                state["info"] = info
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(RC=f"{info.criteria.completion:.0f}%", v=f"{info.ego.speed:.1f}m/s", refresh=False)
                return info.tick < max_ticks and not QUIT_REQUESTED[0]

            result = run_route(spec, str(AGENT_FILE), RunnerConfig(save_path=str(runs)), str(yaml_path),
                               on_tick=on_tick, save_name=name)  # fmt: skip
            if bar is not None:
                bar.close()
            routes.append(_route_metrics(result, runs / name, spec))
            # written after every route, so an interrupted demo keeps the routes it finished
            _write_outputs(out, trained, checkpoint, args.max_seconds, routes, t0, complete=False)
            r = routes[-1]
            print(f"  {r['status']}: DS {r['driving_score']:.2f}, RC {r['route_completion']:.2f}", file=sys.stderr)
            if QUIT_REQUESTED[0]:
                print("HUD window closed: the demo stops after this route", file=sys.stderr)
                break
    finally:
        set_world_source(None)
    return _write_outputs(out, trained, checkpoint, args.max_seconds, routes, t0, complete=True)


def _cmd(args: argparse.Namespace) -> int:
    if not 1 <= args.routes <= len(DEMO_FAMILIES):
        print(f"irlvla demo: --routes must be in 1..{len(DEMO_FAMILIES)}", file=sys.stderr)
        return 2
    if args.max_seconds <= 0 or args.hud_every < 1:
        print("irlvla demo: --max-seconds must be > 0 and --hud-every >= 1", file=sys.stderr)
        return 2
    if (
        args.live
        and sys.platform.startswith("linux")
        and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    ):
        print("irlvla demo: --live needs a display (DISPLAY is not set); run without --live to record", file=sys.stderr)
        return 2
    metrics = run_demo(args)
    s = metrics["summary"]
    print(f"report: {Path(args.out) / 'report.md'}  (DS {_fmt(s['driving_score'])}, RC {_fmt(s['route_completion'])}, "
          f"{metrics['wall_seconds']:.0f} s)")  # fmt: skip
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the agent driving closed-loop on held-out routes, with HUD videos and a report",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--out", default="outputs/demo", help="output folder (default outputs/demo)")
    p.add_argument("--live", action="store_true", help="open the HUD window while driving (needs a display)")
    p.add_argument("--routes", type=int, default=3, help=f"number of demo routes, 1..{len(DEMO_FAMILIES)}")
    p.add_argument("--max-seconds", type=float, default=15.0, help="simulated seconds per route at most")
    p.add_argument("--max-length", type=float, default=60.0, help="route length cap in metres")
    p.add_argument("--checkpoint", default=None, help=f"weights (default {DEFAULT_CHECKPOINT.relative_to(REPO_ROOT)})")
    p.add_argument("--device", default="cpu", help="cpu | cuda[:N] | auto")
    p.add_argument("--image-width", type=int, default=352, help="camera width the agent hands the model")
    p.add_argument("--hud-every", type=int, default=2, help="draw the HUD every n-th 20 Hz step (video at 20/n fps)")
    p.set_defaults(func=_cmd)
