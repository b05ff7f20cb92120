"""A whole closed-loop run over a route suite, laid out as a leaderboard run folder.

    DIR/simulation_results.json    the leaderboard checkpoint (records, progress, global_record, entry_status)
    DIR/<save_name>/metric_info.json  Bench2Drive's per-route kinematics (comfort); written by the agent when it
                                   logs it under SAVE_PATH, else by the runner
    DIR/routes.xml                 the suite's route file (for `--routes` and abilities)
    DIR/videos/<save_name>.mp4     with `record=True`
    DIR/summary.md                 the summary table

`irlvla b2d metrics --results DIR --metric-info DIR` and Bench2Drive's `tools/merge_route_json.py -f DIR` read it as a
real run (the only JSON file directly in DIR is the checkpoint). The checkpoint is rewritten atomically after every
route, so a killed run loses at most the route in progress; rerunning with the same DIR resumes: routes with a
record are kept, except `Failed - Simulation crashed` (our failure, never the agent's score), which is run again.
"""

from __future__ import annotations

import logging
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench2drive_eval.records import INFRACTION_KEYS, RecordError, checkpoint_document, read_json, records_of
from bench2drive_eval.scores import infractions_per_km, is_success
from irlvla.atomic import atomic_write_json, atomic_write_text
from sim.closed_loop.criteria import FAILED_SIM_CRASHED
from sim.closed_loop.route import RouteSpec
from sim.closed_loop.runner import RunnerConfig, TickInfo, run_route, write_metric_info

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "simulation_results.json"
RERUN_STATUSES = frozenset({FAILED_SIM_CRASHED})


@dataclass
class RunSummary:
    records: list[dict]
    driving_score: float
    success_rate: float
    checkpoint: Path

    def table(self) -> str:
        return summary_table(self.records)


def _global_record(records: list[dict], total: int) -> dict:
    if not records:
        return {}
    keys = ("score_route", "score_penalty", "score_composed")
    mean = {k: sum(r["scores"][k] for r in records) / total for k in keys}
    std = {k: math.sqrt(sum((r["scores"][k] - mean[k]) ** 2 for r in records) / max(len(records), 1)) for k in keys}
    per_km = infractions_per_km(records)
    return {
        "index": -1,
        "route_id": -1,
        "status": "Completed" if len(records) == total else "Started",
        "infractions": {k: round(v, 6) for k, v in per_km.items() if k in INFRACTION_KEYS},
        "scores_mean": {k: round(v, 6) for k, v in mean.items()},
        "scores_std_dev": {k: round(v, 6) for k, v in std.items()},
        "meta": {
            "total_length": round(sum(r["meta"]["route_length"] for r in records), 3),
            "duration_game": round(sum(r["meta"]["duration_game"] for r in records), 3),
            "duration_system": round(sum(r["meta"]["duration_system"] for r in records), 3),
            "exceptions": [
                [r["route_id"], r["index"], r["status"]]
                for r in records
                if r["status"].startswith("Failed - ")
                and r["status"] not in ("Failed - Agent got blocked", "Failed - TickRuntime")
            ],
        },  # fmt: skip
    }


def write_checkpoint(path: Path, records: list[dict], total: int, sensors: list[str], finished: bool) -> None:
    doc = checkpoint_document(records, total, "Finished" if finished else "Started")
    doc["_checkpoint"]["global_record"] = _global_record(doc["_checkpoint"]["records"], total)
    doc["sensors"] = sensors
    doc["eligible"] = finished
    atomic_write_json(path, doc, indent=4)


def load_checkpoint(path: Path) -> list[dict]:
    """Records of an earlier run in this folder (none if the file is absent); a corrupt file is an error."""
    if not path.exists():
        return []
    try:
        return records_of(read_json(path), str(path))
    except RecordError as e:
        raise RecordError(f"{e}; move the file away to start over") from None


def summary_table(records: list[dict]) -> str:
    lines = [
        "| route | scenario | status | RC | penalty | DS | infractions |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for r in records:
        inf = ", ".join(f"{k} {len(v)}" for k, v in r["infractions"].items() if v and k != "min_speed_infractions")
        s = r["scores"]
        lines.append(
            f"| {r['route_id']} | {r.get('scenario_name', '')} | {r['status']} | {s['score_route']:.1f} | "
            f"{s['score_penalty']:.3f} | {s['score_composed']:.1f} | {inf or '-'} |"
        )
    n = max(len(records), 1)
    ds = sum(r["scores"]["score_composed"] for r in records) / n
    sr = 100.0 * sum(is_success(r) for r in records) / n
    lines.append(f"\nDS {ds:.2f}, SR {sr:.1f} % over {len(records)} route(s)")
    return "\n".join(lines) + "\n"


class _Progress:
    """One status line on stderr: route k/n, a bar of the route's completion, game time and ticks per second."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled and sys.stderr.isatty()
        self.t0 = time.perf_counter()
        self.k = 0
        self.rid = ""

    def start(self, k: int, rid: str) -> None:
        self.k, self.rid, self.t0 = k, rid, time.perf_counter()

    def tick(self, info: TickInfo) -> None:
        if not self.enabled or info.tick % 10:
            return
        pct = info.criteria.completion
        bar = "#" * int(pct / 5) + "." * (20 - int(pct / 5))
        rate = info.tick / max(time.perf_counter() - self.t0, 1e-6)
        sys.stderr.write(
            f"\r[{self.k}/{self.total}] {self.rid} [{bar}] {pct:5.1f}% t={info.time_s:6.1f}s {rate:5.0f} ticks/s"
        )
        sys.stderr.flush()

    def done(self, rec: dict) -> None:
        line = f"[{self.k}/{self.total}] {rec['route_id']}: {rec['status']}, DS {rec['scores']['score_composed']:.1f}"
        if self.enabled:
            sys.stderr.write("\r" + " " * 100 + "\r")
        print(line, file=sys.stderr, flush=True)


def run_suite(
    specs: list[RouteSpec],
    agent: str,
    out_dir: str | Path,
    config: RunnerConfig | None = None,
    agent_config: str = "",
    route_file: Path | None = None,
    record: bool = False,
    progress: bool = True,
    on_tick: Callable[[TickInfo], bool | None] | None = None,
    expected_waypoints: dict | None = None,
) -> RunSummary:
    """Run every route of `specs` into `out_dir` (resuming what an earlier run there finished)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config or RunnerConfig()
    if cfg.save_path is None:
        from dataclasses import replace

        cfg = replace(cfg, save_path=str(out))
    ckpt = out / CHECKPOINT_NAME
    if route_file is not None and not (out / "routes.xml").exists():
        shutil.copyfile(route_file, out / "routes.xml")
    done = {r["route_id"]: r for r in load_checkpoint(ckpt) if r["status"] not in RERUN_STATUSES}
    wanted = {s.leaderboard_id for s in specs}
    stray = sorted(set(done) - wanted)
    if stray:
        raise RecordError(f"{ckpt} holds routes that are not in this suite ({stray[:3]}...): use another --out")
    total = len(specs)
    records = [done[s.leaderboard_id] for s in specs if s.leaderboard_id in done]
    if records:
        logger.info("resuming: %d of %d routes already done", len(records), total)
    bar = _Progress(total, progress)
    config_string = agent_config
    sensors: list[str] = []
    for k, spec in enumerate(specs, 1):
        if spec.leaderboard_id in done:
            continue
        bar.start(k, spec.leaderboard_id)
        recorder = None
        if record:
            from sim.closed_loop.record import RouteRecorder

            recorder = RouteRecorder(out / "videos")

        def tick_cb(info: TickInfo, recorder=recorder):
            bar.tick(info)
            if recorder is not None:
                recorder.add(info)
            return on_tick(info) if on_tick is not None else None

        result = run_route(spec, agent, cfg, config_string, on_tick=tick_cb)
        config_string = result.config_string
        rec = result.record
        if expected_waypoints and spec.route_id in expected_waypoints and result.ticks:
            _check_route_matches(spec, expected_waypoints[spec.route_id])
        if result.error:
            (out / "logs").mkdir(exist_ok=True)
            atomic_write_text(out / "logs" / f"{rec['save_name']}.txt", result.error)
        write_metric_info(out, rec["save_name"], result.metric_info)
        if recorder is not None:
            try:
                recorder.write(out / "videos" / f"{rec['save_name']}.mp4")
            except Exception as e:  # a missing encoder must not lose the route's score
                logger.error("could not write the video of %s: %s", spec.leaderboard_id, e)
        records = [r for r in records if r["route_id"] != rec["route_id"]] + [rec]
        order = {s.leaderboard_id: i for i, s in enumerate(specs)}
        records.sort(key=lambda r: order[r["route_id"]])
        for i, r in enumerate(records):
            r["index"] = i
        write_checkpoint(ckpt, records, total, sensors, finished=len(records) == total)
        bar.done(rec)
    write_checkpoint(ckpt, records, total, sensors, finished=len(records) == total)
    table = summary_table(records)
    atomic_write_text(out / "summary.md", table)
    n = max(len(records), 1)
    ds = sum(r["scores"]["score_composed"] for r in records) / n
    sr = 100.0 * sum(is_success(r) for r in records) / n
    return RunSummary(records, ds, sr, ckpt)


def _check_route_matches(spec: RouteSpec, waypoints) -> None:
    from sim.closed_loop.route import build_route

    try:
        start = build_route(spec).points[0]
    except Exception:
        return
    if float(((start - waypoints[0]) ** 2).sum()) ** 0.5 > 1.0:
        logger.warning(
            "route %s starts %.1f m from the route file's first waypoint: the file was written by another version",
            spec.route_id,
            float(((start - waypoints[0]) ** 2).sum()) ** 0.5,
        )
