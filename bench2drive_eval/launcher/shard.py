"""One shard: its own CARLA server and evaluator, a watchdog, and bookkeeping that never loses or repeats a route.

The evaluator's built-in resume is not used (it restarts from scratch after a plain ``Failed`` record and needs the
route file untouched). Instead each attempt gets a route file of the routes still without a final record and a fresh
checkpoint; after the attempt, final records move into ``results/shard_NN.json`` (atomically) and crash records are
retried up to ``max_route_attempts`` times.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench2drive_eval.launcher.config import LaunchConfig
from bench2drive_eval.launcher.ports import release_block, reserve_block
from bench2drive_eval.launcher.processes import (
    TAG_ENV,
    group_alive,
    kill_group,
    kill_tagged,
    port_open,
    process_start_time,
    start_process,
    stop_process,
    wait_for_port,
)
from bench2drive_eval.launcher.shim import close_attempt, server_groups, write_shim
from bench2drive_eval.records import (
    INFRACTION_KEYS,
    RETRYABLE_STATUSES,
    RecordError,
    checkpoint_document,
    load_records,
    read_json,
    route_number,
)
from bench2drive_eval.routes import Route, write_routes
from irlvla.atomic import atomic_write_json

log = logging.getLogger(__name__)


@dataclass
class AttemptOutcome:
    """How one evaluator run ended: its exit code, whether we killed it and why, whether the run was interrupted.

    ``infra``: the attempt never got to run a route (no server, the evaluator could not start or never became
    ready): an infrastructure failure, charged to no route.
    """

    returncode: int | None
    reason: str = ""
    interrupted: bool = False
    records: list[dict] = field(default_factory=list)
    infra: bool = False

    @property
    def clean(self) -> bool:
        return self.returncode == 0 and not self.reason


def synthetic_failure(route: Route, reason: str) -> dict:
    """A zero-score record for a route that never produced one, so every route ends with exactly one record."""
    return {
        "route_id": f"RouteScenario_{route.id}_rep0",
        "scenario_name": route.scenarios[0].name if route.scenarios else "",
        "weather_id": "",
        "save_name": "",
        "status": "Failed - Simulation crashed",
        "num_infractions": 0,
        "infractions": {k: [] for k in INFRACTION_KEYS},
        "scores": {"score_route": 0.0, "score_penalty": 1.0, "score_composed": 0.0},
        "meta": {"route_length": route.length_m, "duration_game": 0.0, "duration_system": 0.0},
        "town_name": route.town,
        "irlvla_note": f"no record from the evaluator: {reason}",
    }


def _read_checkpoint(path: Path) -> list[dict] | None:
    """Records of an evaluator checkpoint, or None while it is absent or half-written."""
    if not path.is_file():
        return None
    try:
        return load_records(path)
    except (RecordError, OSError, UnicodeDecodeError):
        return None


class ShardRunner:
    """Runs one shard to completion; safe to re-run after an interruption (state lives in ``shard_dir``)."""

    def __init__(
        self,
        cfg: LaunchConfig,
        index: int,
        routes: list[Route],
        stop: threading.Event | None = None,
        gpu: int | None = None,
    ) -> None:
        if not routes:
            raise ValueError(f"shard {index} has no routes")
        self.cfg = cfg
        self.index = index
        self.routes = routes
        self.stop = stop or threading.Event()
        self.gpu = cfg.gpu_of(index) if gpu is None else gpu
        self.dir = cfg.out / "shards" / f"shard_{index:02d}"
        self.result_path = cfg.out / "results" / f"shard_{index:02d}.json"
        self.state_path = self.dir / "state.json"
        self.save_path = cfg.out / "agent_outputs"
        self._by_id = {r.id: r for r in routes}
        self.final: dict[str, dict] = {}
        self.state: dict = {"attempts": {}, "next_attempt": 0, "harvested": [], "infra_attempts": 0}

    # ---- persistent state -------------------------------------------------------------------------------------
    def _load(self) -> None:
        if self.state_path.is_file():
            self.state = read_json(self.state_path)
        # attempts charged to no route (named server_down_attempts by launchers before infrastructure failures)
        self.state.setdefault("infra_attempts", self.state.pop("server_down_attempts", 0))
        if self.result_path.is_file():
            for rec in load_records(self.result_path):
                rid = route_number(rec["route_id"])
                if rid in self._by_id:
                    rec.pop("index", None)
                    self.final[rid] = rec

    def _save(self) -> None:
        ordered = [self.final[r.id] for r in self.routes if r.id in self.final]
        entry = "Finished" if len(ordered) == len(self.routes) else "Started"
        atomic_write_json(self.result_path, checkpoint_document(ordered, len(self.routes), entry))
        atomic_write_json(self.state_path, self.state)
        self._progress(ordered)

    def _progress(self, records: list[dict], running: list[dict] | None = None) -> None:
        extra = [r for r in (running or []) if r["status"] not in RETRYABLE_STATUSES]
        done = records + extra
        atomic_write_json(
            self.dir / "progress.json",
            {
                "shard": self.index,
                "total": len(self.routes),
                "done": len(done),
                "sum_score_composed": sum(float(r["scores"]["score_composed"]) for r in done),
            },
            indent=None,
        )

    # ---- main loop --------------------------------------------------------------------------------------------
    def remaining(self) -> list[Route]:
        return [r for r in self.routes if r.id not in self.final]

    def run(self) -> list[dict]:
        """Run attempts until every route has a final record; returns the shard's records in route order.

        Raises `InfrastructureError` after ``max_infra_failures`` infrastructure failures in a row: the routes still
        without a record stay pending (no record, nothing charged) and a rerun resumes exactly those.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        self._load()
        self._harvest_leftovers()
        max_attempts = self.cfg.max_shard_attempts or 2 * len(self.routes) + 2
        infra_streak = 0
        while (todo := self.remaining()) and not self.stop.is_set():
            k = int(self.state["next_attempt"])
            if k - int(self.state["infra_attempts"]) >= max_attempts:
                log.error("shard %d: %d attempts used; %d route(s) recorded as failed", self.index, k, len(todo))
                for r in todo:
                    self.final[r.id] = synthetic_failure(r, f"shard gave up after {k} attempts")
                self._save()
                break
            self.state["next_attempt"] = k + 1
            self._save()
            outcome = self._attempt(k, todo)
            if outcome.infra:
                self.state["infra_attempts"] = int(self.state.get("infra_attempts", 0)) + 1
                infra_streak += 1
                log.error(
                    "shard %d attempt %d: infrastructure failure, no route charged: %s", self.index, k, outcome.reason
                )
            else:
                infra_streak = 0
            self._harvest(k, todo, outcome)
            if infra_streak >= self.cfg.max_infra_failures:
                # Charging routes would turn a broken set-up (no CARLA, an evaluator that cannot start) into zero-score
                # records; leave them pending instead, so the run reports them and a rerun resumes exactly them.
                raise InfrastructureError(
                    f"shard {self.index}: {infra_streak} infrastructure failures in a row, last: {outcome.reason} "
                    f"(see {self._attempt_dir(k)}); {len(self.remaining())} route(s) left pending for a rerun"
                )
        return [self.final[r.id] for r in self.routes if r.id in self.final]

    def _attempt_dir(self, k: int) -> Path:
        return self.dir / f"attempt_{k:03d}"

    def _tag(self, adir: Path) -> str:
        """The process tag of an attempt (see `processes.TAG_ENV`): its absolute folder, with a final separator so
        attempt_001 is no prefix of attempt_0010."""
        return str(adir.resolve()) + os.sep

    def _harvest_leftovers(self) -> None:
        """Kill whatever an earlier launcher of this shard left running (it was killed mid-attempt, or its Ray worker
        died), then collect the final records of attempts it left unharvested."""
        for k in range(int(self.state["next_attempt"])):
            if k not in self.state["harvested"]:
                self._kill_orphans(self._attempt_dir(k))
        killed = kill_tagged(str(self.dir.resolve()) + os.sep, self.cfg.kill_grace_s)
        if killed:
            log.warning("shard %d: killed %d leftover process(es) of earlier attempts", self.index, len(killed))
        for k in range(int(self.state["next_attempt"])):
            if k in self.state["harvested"]:
                continue
            recs = _read_checkpoint(self._attempt_dir(k) / "checkpoint.json") or []
            self._harvest(k, self.remaining(), AttemptOutcome(returncode=None, interrupted=True, records=recs))

    def _kill_orphans(self, adir: Path) -> None:
        """Kill process groups a killed launcher left running, after checking they are still the ones it started."""
        if not adir.is_dir():
            return
        path = adir / "pids.json"
        owned: dict = {}
        if path.is_file():
            try:
                owned = read_json(path)
            except (RecordError, OSError):
                owned = {}
        # close first, so an evaluator still alive cannot start a server the sweep below would miss
        for i, (pgid, start) in enumerate(close_attempt(adir)):
            # `sh -c` may exec the shim, so the leader's command line need not name the shim: match the start time
            owned[f"shim_server_{i}"] = {"pgid": pgid, "marker": str(adir / "carla_shim"), "start": start}
        for entry in owned.values():
            pid, marker, start = int(entry["pgid"]), str(entry["marker"]), entry.get("start", "")
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline or (start and process_start_time(pid) == start):  # guards against a recycled pid
                log.warning("shard %d: killing leftover process group %d from an interrupted run", self.index, pid)
                kill_group(pid, self.cfg.kill_grace_s)

    def _record_pids(self, adir: Path, **entries: tuple[int, str]) -> None:
        path = adir / "pids.json"
        owned = read_json(path) if path.is_file() else {}
        owned.update({name: {"pgid": pgid, "marker": marker} for name, (pgid, marker) in entries.items()})
        atomic_write_json(path, owned)

    def _harvest(self, k: int, todo: list[Route], outcome: AttemptOutcome) -> None:
        attempts = self.state["attempts"]
        todo_ids = [r.id for r in todo]
        recorded: list[str] = []
        last_retryable = False
        for rec in outcome.records:
            rec = {key: v for key, v in rec.items() if key != "index"}
            rid = route_number(rec["route_id"])
            if rid not in todo_ids or rid in recorded:
                log.warning("shard %d attempt %d: ignored unexpected record %s", self.index, k, rec["route_id"])
                continue
            recorded.append(rid)
            last_retryable = rec["status"] in RETRYABLE_STATUSES
            if last_retryable:
                attempts[rid] = attempts.get(rid, 0) + 1
                if attempts[rid] < self.cfg.max_route_attempts:
                    log.warning("shard %d: route %s ended '%s'; will retry", self.index, rid, rec["status"])
                    continue
                log.error(
                    "shard %d: route %s crashed %d times; keeping the crash record", self.index, rid, attempts[rid]
                )
            self.final[rid] = rec
        if not outcome.interrupted and not outcome.clean and not last_retryable and not outcome.infra:
            culprit = next((rid for rid in todo_ids if rid not in recorded), None)
            if culprit is not None:
                attempts[culprit] = attempts.get(culprit, 0) + 1
                why = outcome.reason or f"evaluator exited with code {outcome.returncode}"
                log.warning(
                    "shard %d: route %s interrupted (%s), attempt %d/%d",
                    self.index,
                    culprit,
                    why,
                    attempts[culprit],
                    self.cfg.max_route_attempts,
                )
                if attempts[culprit] >= self.cfg.max_route_attempts:
                    self.final[culprit] = synthetic_failure(self._by_id[culprit], why)
        elif outcome.clean and not outcome.interrupted:
            missing = [rid for rid in todo_ids if rid not in recorded]
            if missing:  # a clean exit that skipped routes: charge the first so the loop always progresses
                rid = missing[0]
                attempts[rid] = attempts.get(rid, 0) + 1
                if attempts[rid] >= self.cfg.max_route_attempts:
                    self.final[rid] = synthetic_failure(self._by_id[rid], "evaluator finished without a record")
        if k not in self.state["harvested"]:
            self.state["harvested"].append(k)
        self._save()

    # ---- one evaluator run ------------------------------------------------------------------------------------
    def _attempt(self, k: int, todo: list[Route]) -> AttemptOutcome:
        cfg = self.cfg
        adir = self._attempt_dir(k)
        adir.mkdir(parents=True, exist_ok=True)
        tag = self._tag(adir)
        routes_xml = write_routes(todo, adir / "routes.xml")
        checkpoint = adir / "checkpoint.json"
        self.save_path.mkdir(parents=True, exist_ok=True)
        rpc = tm = None
        server = evaluator = None
        host = "127.0.0.1"
        try:
            tm = reserve_block(cfg.base_tm_port + cfg.port_stride * self.index, span=1, step=1)
            carla_root: Path | None = None
            if cfg.server_mode == "attach":
                host, _, p = cfg.attach[self.index % len(cfg.attach)].rpartition(":")
                port = int(p)
                if not wait_for_port(host, port, cfg.server_startup_s):
                    return AttemptOutcome(None, reason=f"CARLA server {host}:{port} not reachable", infra=True)
                if cfg.carla_root is not None:
                    # the stock B2D evaluator still runs $CARLA_ROOT/CarlaUE4.sh (docker/ makes it a no-op that
                    # idles): own it through the shim, so an evaluator killed mid-route leaves no idler behind
                    carla_root = write_shim(adir, cfg.carla_root)
            else:
                rpc = reserve_block(cfg.base_port + cfg.port_stride * self.index, span=3, step=3)
                port = rpc
                if cfg.server_mode == "own":
                    cmd = cfg.format_cmd(cfg.server_cmd, port=port, gpu=self.gpu, tm_port=tm)
                    try:
                        server = start_process(cmd, adir / "server.log", env={**os.environ, TAG_ENV: tag})
                    except OSError as exc:
                        return AttemptOutcome(None, reason=f"CARLA server could not start: {exc}", infra=True)
                    self._record_pids(adir, server=(server.pid, f"-carla-rpc-port={port}"))
                    if not wait_for_port(host, port, cfg.server_startup_s, server):
                        return AttemptOutcome(None, reason=f"CARLA server on port {port} did not come up", infra=True)
                else:
                    real_root = cfg.real_carla_root()
                    if real_root is None:
                        return AttemptOutcome(None, reason="no --carla-root and no $CARLA_ROOT", infra=True)
                    carla_root = write_shim(adir, real_root)
            cmd = cfg.format_cmd(
                cfg.evaluator_cmd,
                routes=routes_xml,
                checkpoint=checkpoint,
                host=host,
                port=port,
                tm_port=tm,
                gpu=self.gpu,
            )
            env = cfg.evaluator_env(self.gpu, self.save_path, carla_root, tag)
            try:
                evaluator = start_process(cmd, adir / "evaluator.log", env=env, cwd=cfg.b2d_root)
            except OSError as exc:
                return AttemptOutcome(None, reason=f"evaluator could not start: {exc}", infra=True)
            self._record_pids(adir, evaluator=(evaluator.pid, str(checkpoint)))
            log.info(
                "shard %d attempt %d: %d route(s), gpu %d, port %d (pid %d)",
                self.index,
                k,
                len(todo),
                self.gpu,
                port,
                evaluator.pid,
            )
            return self._watch(evaluator, server, adir, host, port)
        finally:
            # Order matters: the evaluator first (no new server launches), then close the attempt so a shim still
            # starting exits, then the servers the shim recorded, then anything else carrying the attempt's tag.
            stop_process(evaluator, cfg.kill_grace_s)
            for pgid, _start in close_attempt(adir):
                kill_group(pgid, cfg.kill_grace_s)
            stop_process(server, cfg.kill_grace_s)
            kill_tagged(tag, cfg.kill_grace_s)
            if rpc is not None:
                release_block(rpc, 3)
            if tm is not None:
                release_block(tm, 1)

    def _watch(self, evaluator, server, adir: Path, host: str, port: int) -> AttemptOutcome:
        """Poll until the evaluator exits; kill it when it does not get ready in time, a route exceeds its wall-clock
        budget or the server dies.

        The evaluator is ready when its checkpoint first appears: the leaderboard writes it once CARLA is up and the
        agent module is imported, before the first route. Route time counts from then; anything that ends the attempt
        before then is an infrastructure failure, charged to no route.
        """
        cfg = self.cfg
        checkpoint = adir / "checkpoint.json"
        started = time.monotonic()
        ready_at: float | None = None
        last_count, last_change = 0, started
        records: list[dict] = []
        done_before = [self.final[r.id] for r in self.routes if r.id in self.final]

        def ended(reason: str, rc: int | None = None) -> AttemptOutcome:
            if ready_at is None:
                return AttemptOutcome(rc, reason=f"{reason} before the evaluator was ready", infra=True)
            return AttemptOutcome(rc, reason=reason, records=records)

        while True:
            rc = evaluator.poll()
            recs = _read_checkpoint(checkpoint)
            if recs is not None:
                if ready_at is None:
                    ready_at = last_change = time.monotonic()
                    log.info("shard %d: evaluator ready after %.1f s", self.index, ready_at - started)
                records = recs
                if len(recs) != last_count:
                    last_count, last_change = len(recs), time.monotonic()
                    self._progress(done_before, recs)
            if rc is not None:
                final = _read_checkpoint(checkpoint)
                if final is None and ready_at is None:
                    tail = _log_tail(adir / "evaluator.log")
                    return AttemptOutcome(
                        rc, reason=f"evaluator exited with code {rc} before it was ready{tail}", infra=True
                    )
                return AttemptOutcome(rc, records=final if final is not None else records)
            if self.stop.is_set():
                return AttemptOutcome(None, reason="launcher stopped", interrupted=True, records=records)
            now = time.monotonic()
            if ready_at is None and now - started > cfg.evaluator_startup_s:
                log.error("shard %d: evaluator not ready after %.0f s; killing it", self.index, cfg.evaluator_startup_s)
                return ended(f"evaluator startup exceeded {cfg.evaluator_startup_s:.0f} s")
            if ready_at is not None and now - last_change > cfg.route_timeout_s:
                log.error(
                    "shard %d: no route finished for %.0f s; killing the evaluator", self.index, cfg.route_timeout_s
                )
                return ended(f"watchdog: route exceeded {cfg.route_timeout_s:.0f} s")
            if server is not None and server.poll() is not None:
                log.error("shard %d: CARLA server exited with %s; restarting", self.index, server.returncode)
                return ended("CARLA server died")
            if cfg.server_mode == "evaluator":
                groups = server_groups(adir)
                if groups and not any(group_alive(g) for g, _ in groups):
                    log.error("shard %d: the evaluator's CARLA server is gone; restarting", self.index)
                    return ended("CARLA server died")
            if cfg.server_mode == "attach" and not port_open(host, port):
                self.stop.wait(cfg.poll_s)
                if not port_open(host, port):
                    return ended(f"CARLA server {host}:{port} went away")
            self.stop.wait(cfg.poll_s)


class InfrastructureError(RuntimeError):
    """A shard stopped because its set-up kept failing (no server, no evaluator); its routes stay pending."""


def _log_tail(path: Path, lines: int = 3) -> str:
    """The last lines of a log, for an error message (empty if there is none)."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    tail = [t for t in text if t.strip() and not t.startswith("### ")][-lines:]  # "### ": our own command headers
    return f"; {path.name} ends: " + " | ".join(tail) if tail else ""
