"""A whole evaluation: a fixed shard plan, shards in threads (or Ray tasks), live progress, verification, report."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench2drive_eval.launcher.config import LaunchConfig
from bench2drive_eval.launcher.preflight import preflight
from bench2drive_eval.launcher.shard import InfrastructureError, ShardRunner
from bench2drive_eval.merge import merge_folder, merge_records, write_merged
from bench2drive_eval.records import RecordError, read_json
from bench2drive_eval.routes import Route, parse_routes, split_routes
from irlvla.atomic import atomic_write_json

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a run produced: merged records and any route that does not have exactly one record.

    ``pending``: routes left without a record (not scored), with the reason: their shard stopped on infrastructure
    failures or the run was interrupted. A rerun on the same folder runs exactly these.
    """

    records: list[dict]
    missing: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    shard_errors: dict[int, str] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicates or self.shard_errors or self.pending)

    def pending_message(self) -> str:
        """One message naming the pending routes, grouped by reason."""
        by_reason: dict[str, list[str]] = {}
        for rid, why in self.pending.items():
            by_reason.setdefault(why, []).append(rid)
        parts = [f"{len(ids)} route(s) [{', '.join(ids)}]: {why}" for why, ids in by_reason.items()]
        return (
            f"{len(self.pending)} route(s) pending, not scored (rerun the same command to run exactly these): "
            + "; ".join(parts)
        )


def load_or_make_plan(cfg: LaunchConfig, routes: list[Route]) -> list[list[Route]]:
    """The shard split is written once to ``plan.json`` and reused on resume, so no route changes shard."""
    plan_path = cfg.out / "plan.json"
    by_id = {r.id: r for r in routes}
    if plan_path.is_file():
        plan = read_json(plan_path)
        shards_ids: list[list[str]] = plan["shards"]
        planned = [rid for s in shards_ids for rid in s]
        if sorted(planned) != sorted(by_id):
            raise RecordError(
                f"{plan_path}: the existing plan covers other routes than {cfg.routes}; use a fresh --out folder"
            )
        if len(shards_ids) != cfg.num_shards_requested:
            log.warning(
                "resuming with the existing plan of %d shards (not %d)", len(shards_ids), cfg.num_shards_requested
            )
        return [[by_id[rid] for rid in s] for s in shards_ids]
    shards = split_routes(routes, cfg.num_shards_requested)
    atomic_write_json(plan_path, {"routes_file": str(cfg.routes), "shards": [[r.id for r in s] for s in shards]})
    return shards


def read_progress(out: Path) -> tuple[int, int, float]:
    """(routes done, routes total, sum of score_composed) over every shard's progress file."""
    done = total = 0
    ssum = 0.0
    for p in sorted((out / "shards").glob("shard_*/progress.json")):
        try:
            d = read_json(p)
        except (RecordError, OSError):
            continue
        done += int(d["done"])
        total += int(d["total"])
        ssum += float(d["sum_score_composed"])
    return done, total, ssum


def _progress_loop(cfg: LaunchConfig, num_routes: int, stop: threading.Event) -> None:
    last = None
    while not stop.wait(cfg.progress_s):
        done, _total, ssum = read_progress(cfg.out)
        if (done, ssum) != last:
            running = ssum / done if done else 0.0
            log.info(
                "progress: %d/%d routes done, running driving score %.2f (over done routes)", done, num_routes, running
            )
            last = (done, ssum)


def run_shards_local(cfg: LaunchConfig, shards: list[list[Route]], stop: threading.Event) -> dict[int, str]:
    """Each shard in its own thread; returns shard -> error for shards that raised."""
    errors: dict[int, str] = {}

    def work(i: int, routes: list[Route]) -> None:
        try:
            ShardRunner(cfg, i, routes, stop).run()
        except InfrastructureError as exc:
            log.error("%s", exc)
            errors[i] = str(exc)
        except Exception as exc:  # one broken shard must not stop the others
            log.exception("shard %d failed", i)
            errors[i] = repr(exc)

    threads = [
        threading.Thread(target=work, args=(i, s), name=f"b2d-shard-{i}", daemon=True) for i, s in enumerate(shards)
    ]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=0.5)
    except KeyboardInterrupt:
        log.warning("interrupted: stopping shards (the run resumes from here when restarted)")
        stop.set()
        for t in threads:
            t.join()
        raise
    return errors


@contextlib.contextmanager
def run_folder_lock(out: Path) -> Iterator[None]:
    """One launcher per run folder: a second one would rerun the routes the first is running and kill its evaluators
    as leftovers. The kernel drops the lock when the holder dies (child processes do not inherit it), so a crashed
    launcher's folder can be resumed at once."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".launcher.lock", "a") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RecordError(
                f"{out}: another launcher is running on this run folder; wait for it or stop it"
            ) from None
        yield


def run_evaluation(cfg: LaunchConfig, stop: threading.Event | None = None, denominator: int | None = None) -> RunResult:
    """Run (or resume) every shard, then check each route has exactly one record and write ``merged.json``.

    ``merged.json`` divides by ``denominator`` (default: the number of routes, i.e. 220 for the official file); it
    is written only when no route is pending (see `RunResult`). A set-up that cannot work raises `PreflightError`
    before anything starts.
    """
    preflight(cfg)
    with run_folder_lock(cfg.out):
        return _run_evaluation(cfg, stop, denominator)


def _run_evaluation(cfg: LaunchConfig, stop: threading.Event | None, denominator: int | None) -> RunResult:
    stop = stop or threading.Event()
    routes = parse_routes(cfg.routes)
    shards = load_or_make_plan(cfg, routes)
    shard_of = {r.id: i for i, s in enumerate(shards) for r in s}
    log.info("%d routes in %d shards -> %s", len(routes), len(shards), cfg.out)
    prev_term = None
    if threading.current_thread() is threading.main_thread():
        prev_term = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ticker_stop = threading.Event()
    ticker = threading.Thread(target=_progress_loop, args=(cfg, len(routes), ticker_stop), daemon=True)
    ticker.start()
    t0 = time.monotonic()
    try:
        if cfg.ray_address:
            from bench2drive_eval.launcher.ray_backend import run_shards_ray

            errors = run_shards_ray(cfg, shards)
        else:
            errors = run_shards_local(cfg, shards, stop)
    finally:
        ticker_stop.set()
        if prev_term is not None:
            signal.signal(signal.SIGTERM, prev_term)
    log.info("shards finished in %.1f s", time.monotonic() - t0)
    results = cfg.out / "results"
    merged = merge_folder(results, routes) if any(results.glob("*.json")) else merge_records([], routes)
    pending = {
        rid: errors.get(shard_of[rid], "run interrupted before the route ran" if stop.is_set() else "no record")
        for rid in merged.missing
    }
    result = RunResult(merged.records, merged.missing, merged.duplicates, errors, pending)
    pending_path = cfg.out / "pending.json"
    if pending:
        # merged.json would score pending routes as zeros: a broken set-up must never look like a result
        atomic_write_json(pending_path, pending)
        log.error("%s", result.pending_message())
    else:
        pending_path.unlink(missing_ok=True)
        write_merged(cfg.out / "merged.json", merged.records, denominator or len(routes))
    if result.duplicates:
        log.error("route(s) with more than one record: %s", result.duplicates)
    return result
