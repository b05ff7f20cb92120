"""`irlvla drive`: closed-loop driving on the embedded world with the leaderboard's scoring.

irlvla drive --agent expert|constant-velocity|brake|FILE [--agent-config CFG] --suite dev|heldout|ROUTES --out DIR
             [--record] [--routes 9000 9003]
"""

from __future__ import annotations

import argparse
import logging
import sys

logger = logging.getLogger(__name__)

EXIT_BAD_INPUT = 2


def register(subparsers) -> None:
    p = subparsers.add_parser("drive", help="drive an agent through a closed-loop route suite and score it")
    p.add_argument("--agent", required=True, help="expert | constant-velocity | brake | a leaderboard agent file")
    p.add_argument("--agent-config", default="", help="the agent's config string (leaderboard --agent-config)")
    p.add_argument("--suite", required=True, help="dev | heldout | a route XML written by sim.closed_loop.suites")
    p.add_argument("--out", required=True, help="run folder (rerun with the same folder to resume)")
    p.add_argument("--record", action="store_true", help="write per-route MP4 videos to OUT/videos")
    p.add_argument("--routes", nargs="+", type=int, help="only these route ids of the suite")
    p.add_argument("--track", default="SENSORS", choices=("SENSORS", "MAP", "SENSORS_QUALIFIER", "MAP_QUALIFIER"))
    p.add_argument("--no-noise", action="store_true", help="exact GNSS/IMU (the leaderboard adds noise)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_drive)


def _drive(args: argparse.Namespace) -> int:
    from bench2drive_eval.records import RecordError
    from bench2drive_eval.routes import RouteFileError
    from sim.closed_loop.agents import NAMED_AGENTS
    from sim.closed_loop.evaluate import run_suite
    from sim.closed_loop.runner import RunnerConfig
    from sim.closed_loop.suites import load_suite

    try:
        specs, route_file, waypoints = load_suite(args.suite)
    except (RouteFileError, OSError, ValueError) as e:
        print(f"irlvla drive: bad --suite: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.routes:
        unknown = sorted(set(args.routes) - {s.route_id for s in specs})
        if unknown:
            print(f"irlvla drive: --routes {unknown} are not in the suite", file=sys.stderr)
            return EXIT_BAD_INPUT
        specs = [s for s in specs if s.route_id in set(args.routes)]
    from pathlib import Path

    if args.agent not in NAMED_AGENTS and not Path(args.agent).is_file():
        print(f"irlvla drive: --agent {args.agent!r} is neither {', '.join(NAMED_AGENTS)} nor a file", file=sys.stderr)
        return EXIT_BAD_INPUT
    cfg = RunnerConfig(track=args.track, sensor_noise=not args.no_noise)
    try:
        summary = run_suite(
            specs, args.agent, args.out, cfg, args.agent_config, route_file=route_file, record=args.record,
            progress=not args.no_progress, expected_waypoints=waypoints,
        )  # fmt: skip
    except RecordError as e:
        print(f"irlvla drive: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(summary.table(), end="")
    print(f"checkpoint: {summary.checkpoint}  (irlvla b2d metrics --results {args.out} --metric-info {args.out} ...)")
    return 0
