"""``irlvla b2d``: metrics, merge, split and the evaluation launcher."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def _metrics(args: argparse.Namespace) -> int:
    from bench2drive_eval.abilities import load_junction_fractions
    from bench2drive_eval.comfort import ComfortConfig
    from bench2drive_eval.merge import merge_folder
    from bench2drive_eval.metrics import MetricsConfig, compute_metrics
    from bench2drive_eval.records import RecordError, load_records
    from bench2drive_eval.report import markdown_table, plot_metrics
    from bench2drive_eval.routes import parse_routes
    from bench2drive_eval.validation import RecordPolicy, check_records
    from irlvla.atomic import atomic_write_bytes, atomic_write_json

    if args.metric_info and not Path(args.metric_info).is_dir():
        raise RecordError(f"--metric-info {args.metric_info}: no such folder (the run's SAVE_PATH, agent_outputs/)")
    if args.junctions and not Path(args.junctions).is_file():
        raise RecordError(f"--junctions {args.junctions}: no such file")
    policy = RecordPolicy(
        invalid=args.allow_invalid_records or "error",
        duplicates=args.allow_duplicate_records or "error",
        unknown_routes=args.allow_unknown_routes or "error",
    )
    routes = parse_routes(args.routes) if args.routes else None
    if args.merged:
        records = load_records(args.merged)
        names = [f"{args.merged}: record {i}" for i in range(len(records))]
        extra: dict = {}
    else:
        merged = merge_folder(args.results, routes, keep_duplicates=True)
        records, names = merged.records, merged.names
        extra = {"ignored_files": merged.ignored_files, "missing": merged.missing}
    checked = check_records(records, routes, policy, names)
    cfg = MetricsConfig(
        denominator=None if args.actual_count else args.denominator,
        comfort=ComfortConfig.corrected() if args.comfort_corrected else ComfortConfig(),
        ability_semantics=args.ability_semantics,
    )
    junctions = load_junction_fractions(args.junctions) if args.junctions else None
    out = compute_metrics(checked.records, routes, args.metric_info, junctions, cfg)
    out["notes"] = checked.notes + out["notes"]
    if checked.dropped:
        out["dropped_records"] = checked.dropped
    out.update({k: v for k, v in extra.items() if v})
    atomic_write_json(args.json, out)
    table = markdown_table(out, args.name)
    md_path = Path(args.markdown) if args.markdown else Path(args.json).with_suffix(".md")
    atomic_write_bytes(md_path, table.encode())
    if not args.no_plot:
        plot_metrics(out, Path(args.plot) if args.plot else Path(args.json).with_suffix(".png"), args.name)
    print(table, end="")
    return 0


def _split(args: argparse.Namespace) -> int:
    from bench2drive_eval.routes import parse_routes, split_routes, write_routes

    routes = parse_routes(args.routes)
    out = Path(args.out)
    stem = Path(args.routes).stem
    for i, shard in enumerate(split_routes(routes, args.shards)):
        path = write_routes(shard, out / f"{stem}_{i}.xml")
        print(f"{path}\t{len(shard)} routes")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from bench2drive_eval.merge import merge_folder, write_merged
    from bench2drive_eval.routes import parse_routes

    routes = parse_routes(args.routes) if args.routes else None
    res = merge_folder(args.results, routes)
    out = Path(args.out) if args.out else Path(args.results) / "merged.json"
    write_merged(out, res.records, len(res.records) if args.actual_count else args.denominator)
    print(
        json.dumps(
            {
                "merged": str(out),
                "records": len(res.records),
                "duplicates": res.duplicates,
                "missing": res.missing,
                "ignored_files": sorted(res.ignored_files),
            }
        )
    )
    return 1 if res.duplicates else 0


def _eval(args: argparse.Namespace) -> int:
    from bench2drive_eval.launcher.config import DEFAULT_EVALUATOR_CMD, DEFAULT_SERVER_CMD, LaunchConfig
    from bench2drive_eval.launcher.run import run_evaluation
    from bench2drive_eval.metrics import MetricsConfig, compute_metrics
    from bench2drive_eval.report import markdown_table, plot_metrics
    from bench2drive_eval.routes import parse_routes
    from bench2drive_eval.validation import check_records
    from irlvla.atomic import atomic_write_bytes, atomic_write_json

    attach = tuple(a for a in (args.carla or "").split(",") if a)
    cfg = LaunchConfig(
        routes=Path(args.routes),
        agent=Path(_here(args.agent)),
        agent_config="+".join(_here(f) for f in args.agent_config.split("+")),
        out=Path(args.out),
        gpus=tuple(int(g) for g in args.gpus.split(",") if g != ""),
        jobs_per_gpu=args.jobs_per_gpu,
        server_mode="attach" if attach else args.server_mode,
        attach=attach,
        carla_root=Path(args.carla_root) if args.carla_root else None,
        b2d_root=Path(args.b2d_root) if args.b2d_root else None,
        python=args.python,
        evaluator_cmd=args.evaluator_cmd or DEFAULT_EVALUATOR_CMD,
        server_cmd=args.server_cmd or DEFAULT_SERVER_CMD,
        base_port=args.base_port,
        base_tm_port=args.base_tm_port,
        route_timeout_s=args.route_timeout,
        server_startup_s=args.server_startup,
        max_route_attempts=args.max_route_attempts,
        max_infra_failures=args.max_infra_failures,
        evaluator_startup_s=args.evaluator_startup,
        preflight_timeout_s=args.preflight_timeout,
        poll_s=args.poll,
        progress_s=args.progress_every,
        ray_address=args.ray,
    )
    routes = parse_routes(cfg.routes)
    denominator = args.denominator or len(routes)
    result = run_evaluation(cfg, denominator=denominator)
    if result.pending:
        log.error("no metrics written: %s", result.pending_message())
        return 1
    checked = check_records(
        result.records, routes, names=[f"{cfg.out}/merged.json: {r['route_id']}" for r in result.records]
    )
    metrics = compute_metrics(
        checked.records, routes, cfg.out / "agent_outputs", cfg=MetricsConfig(denominator=denominator)
    )
    metrics.update(
        missing=result.missing,
        duplicates=result.duplicates,
        shard_errors={str(k): v for k, v in result.shard_errors.items()},
    )
    atomic_write_json(cfg.out / "metrics.json", metrics)
    table = markdown_table(metrics, Path(args.agent).stem)
    atomic_write_bytes(cfg.out / "metrics.md", table.encode())
    plot_metrics(metrics, cfg.out / "metrics.png", Path(args.agent).stem)
    print(table, end="")
    return 0 if result.ok else 1


def _here(value: str) -> str:
    """A path given relative to where the user runs the launcher, made absolute: the evaluator runs in --b2d-root.
    Values that name no existing file (config strings that are not paths) stay as given."""
    path = Path(value)
    return str(path.resolve()) if value and not path.is_absolute() and path.exists() else value


def _guarded(func):
    """Bad input ends with one clear error line and exit code 2, not a traceback."""

    def run(args: argparse.Namespace) -> int:
        from bench2drive_eval.launcher.preflight import PreflightError
        from bench2drive_eval.records import RecordError
        from bench2drive_eval.routes import RouteFileError

        try:
            return func(args)
        except (RecordError, RouteFileError, PreflightError, ValueError, FileNotFoundError) as exc:
            log.error("%s", exc)
            return 2

    return run


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("b2d", help="Bench2Drive evaluation launcher and metrics")
    sub = p.add_subparsers(dest="b2d_command", metavar="B2D_COMMAND", required=True)

    m = sub.add_parser("metrics", help="official DS/SR/efficiency/comfort/abilities from leaderboard results")
    src = m.add_mutually_exclusive_group(required=True)
    src.add_argument("--merged", help="an already merged result JSON")
    src.add_argument("--results", help="folder of per-shard checkpoint JSONs (other JSON files are ignored)")
    m.add_argument("--routes", help="route XML, needed for abilities (e.g. bench2drive220.xml)")
    m.add_argument("--metric-info", help="SAVE_PATH folder holding <save_name>/metric_info.json, for comfort")
    m.add_argument("--junctions", help="JSON {route_id: junction fraction}, for the Traffic_Signs junction rule")
    m.add_argument("--json", required=True, help="output JSON path")
    m.add_argument("--markdown", help="output markdown table (default: next to --json)")
    m.add_argument("--plot", help="output PNG (default: next to --json)")
    m.add_argument("--no-plot", action="store_true")
    m.add_argument("--name", default="agent", help="method name in the table")
    m.add_argument("--denominator", type=int, default=220, help="routes DS/SR divide by (official: 220)")
    m.add_argument("--actual-count", action="store_true", help="divide DS/SR by the number of records instead")
    m.add_argument(
        "--comfort-corrected",
        action="store_true",
        help="comfort with yaw rate in rad/s, yaw accel as derivative and dt=0.05 (not official)",
    )
    m.add_argument("--ability-semantics", choices=("v0.0.4", "v0.0.3"), default="v0.0.4")
    m.add_argument(
        "--allow-invalid-records",
        choices=("drop",),
        help="leave out records with non-finite or out-of-range scores or an unknown status (default: error)",
    )
    m.add_argument(
        "--allow-duplicate-records",
        choices=("keep-first", "count-all"),
        help="a second record for a route and repetition: score the first only, or count all as the official "
        "merge does (default: error)",
    )
    m.add_argument(
        "--allow-unknown-routes",
        choices=("drop", "keep"),
        help="records of routes not in --routes: leave them out, or score them anyway (default: error)",
    )
    m.set_defaults(func=_guarded(_metrics))

    s = sub.add_parser("split", help="split a route XML into contiguous shards")
    s.add_argument("--routes", required=True)
    s.add_argument("--shards", type=int, required=True)
    s.add_argument("--out", required=True, help="output folder")
    s.set_defaults(func=_guarded(_split))

    g = sub.add_parser("merge", help="merge shard checkpoints into an official merged.json")
    g.add_argument("--results", required=True)
    g.add_argument("--routes", help="route XML, to list routes without a record")
    g.add_argument("--out", help="output path (default RESULTS/merged.json)")
    g.add_argument("--denominator", type=int, default=220)
    g.add_argument("--actual-count", action="store_true")
    g.set_defaults(func=_guarded(_merge))

    e = sub.add_parser("eval", help="run a Bench2Drive evaluation over N CARLA servers, resumable")
    e.add_argument("--routes", required=True)
    e.add_argument("--agent", required=True, help="agent Python file (leaderboard --agent)")
    e.add_argument("--agent-config", required=True, help="agent config string (leaderboard --agent-config)")
    e.add_argument("--out", required=True, help="run folder; rerun with the same folder to resume")
    e.add_argument("--gpus", default="0", help="comma-separated GPU ids (CARLA -graphicsadapter and CUDA device)")
    e.add_argument("--jobs-per-gpu", type=int, default=1)
    e.add_argument("--carla", help="attach to running servers host:port[,host:port...] (one shard each)")
    e.add_argument(
        "--server-mode",
        choices=("evaluator", "own"),
        default="evaluator",
        help="evaluator: the stock B2D evaluator starts CARLA through a launcher-owned shim (default); "
        "own: the launcher starts CARLA, for evaluators that connect to --host/--port",
    )
    e.add_argument("--denominator", type=int, help="routes DS/SR divide by (default: routes in --routes)")
    e.add_argument("--carla-root", help="CARLA install (default $CARLA_ROOT)")
    e.add_argument("--b2d-root", help="Bench2Drive checkout (evaluator cwd, PYTHONPATH)")
    e.add_argument("--python", default="python", help="interpreter for the evaluator (CARLA 0.9.15: py3.7/3.8)")
    e.add_argument("--evaluator-cmd", help="evaluator command template (placeholders: see docs/bench2drive.md)")
    e.add_argument("--server-cmd", help="CARLA server command template")
    e.add_argument("--base-port", type=int, default=30000)
    e.add_argument("--base-tm-port", type=int, default=50000)
    e.add_argument("--route-timeout", type=float, default=3 * 3600.0, help="wall-clock seconds allowed per route")
    e.add_argument("--server-startup", type=float, default=120.0, help="seconds to wait for a server's port")
    e.add_argument("--max-route-attempts", type=int, default=3)
    e.add_argument(
        "--max-infra-failures",
        "--max-server-failures",
        dest="max_infra_failures",
        type=int,
        default=5,
        help="infrastructure failures in a row (no CARLA server, evaluator never ready) before a shard stops; its "
        "routes stay pending, charged nothing, and a rerun resumes them",
    )
    e.add_argument(
        "--evaluator-startup",
        type=float,
        default=600.0,
        help="seconds from evaluator start to its first checkpoint (CARLA up, agent imported); route time counts "
        "from then",
    )
    e.add_argument("--preflight-timeout", type=float, default=120.0, help="seconds allowed to import the agent")
    e.add_argument("--poll", type=float, default=2.0)
    e.add_argument("--progress-every", type=float, default=60.0)
    e.add_argument("--ray", metavar="ADDRESS", help="run each shard as a Ray task asking for one GPU")
    e.set_defaults(func=_guarded(_eval))
