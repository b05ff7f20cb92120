"""Several agents over the same routes: one run folder each, then DS, SR and infractions side by side.

This is the closed-loop half of `benchmarks/bench_policy.py` (constant velocity, the expert and the learned policies
on held-out routes), kept here because it needs both the runner (`sim.closed_loop.evaluate.run_suite`) and the
official metrics (`bench2drive_eval.metrics.compute_metrics`), and `sim` is the room that may import both.

    specs, route_file, _ = load_suite("heldout")
    subset = route_subset(specs, 8, seed=0)
    results = compare_agents([AgentRun("expert", "expert"), AgentRun("ours", "team_code/irlvla_b2d_agent.py",
                              "configs/b2d_agent.yaml")], subset.specs, "runs/cmp", route_file=route_file)

Every agent drives the same routes with the same runner settings (sensor noise is seeded per route, so every agent
sees the same draw). Each run folder is an ordinary `irlvla drive` folder: rerunning resumes it, and
`irlvla b2d metrics --results DIR` reads it. DS and SR are over the routes driven (`--actual-count`), not over
Bench2Drive's 220.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench2drive_eval.metrics import MetricsConfig, compute_metrics
from bench2drive_eval.records import INFRACTION_KEYS
from sim.closed_loop.evaluate import run_suite
from sim.closed_loop.route import RouteSpec
from sim.closed_loop.runner import RunnerConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentRun:
    """One agent of a comparison: `name` (its run folder's name), `agent` (a reference name or a leaderboard agent
    file) and the leaderboard config string it is set up with."""

    name: str
    agent: str
    agent_config: str = ""

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"AgentRun.name must be a plain folder name, got {self.name!r}")


@dataclass(frozen=True)
class RouteSubset:
    """Routes drawn from a suite: `name` says how (suite, count, seed), so a JSON result names what it ran on."""

    name: str
    specs: list[RouteSpec]
    seed: int | None


def route_subset(specs: list[RouteSpec], n: int | None, seed: int = 0, suite: str = "suite") -> RouteSubset:
    """`n` routes of `specs` (all of them when `n` is None or covers the suite), drawn with `seed`: the suite is
    shuffled, then families are taken in turn (first route of each family in shuffled order, then the second ...), so
    a small subset covers as many scenario families as it can. Returned in suite order."""
    if n is not None and n < 1:
        raise ValueError(f"route_subset: n must be at least 1, got {n}")
    if n is None or n >= len(specs):
        return RouteSubset(f"{suite} (all {len(specs)} routes)", list(specs), None)
    order = np.random.default_rng(seed).permutation(len(specs))
    by_family: dict[str, list[int]] = {}
    for i in order:
        by_family.setdefault(specs[i].family, []).append(int(i))
    picked: list[int] = []
    while len(picked) < n:
        for queue in by_family.values():
            if queue and len(picked) < n:
                picked.append(queue.pop(0))
    chosen = [specs[i] for i in sorted(picked)]
    return RouteSubset(f"{suite} ({n} of {len(specs)} routes, seed {seed})", chosen, seed)


def infraction_counts(records: list[dict]) -> dict[str, int]:
    """Events per infraction key, summed over routes (min-speed events included, as Bench2Drive logs them)."""
    return {k: sum(len(r["infractions"].get(k, [])) for r in records) for k in INFRACTION_KEYS}


def summarise(records: list[dict], run_dir: Path, routes=None) -> dict:
    """DS, SR (over the routes present), statuses, infraction counts and per km, efficiency, comfort, per route."""
    m = compute_metrics(records, routes=routes, metric_dir=run_dir, cfg=MetricsConfig(denominator=None))
    return {
        "driving_score": round(m["driving_score"], 3),
        "success_rate": round(m["success_rate"], 3),
        "num_routes": m["num_routes"],
        "statuses": dict(Counter(r["status"] for r in records)),
        "infractions": infraction_counts(records),
        "infractions_per_km": {k: round(v, 4) for k, v in m["infractions_per_km"].items()},
        "efficiency": None if m["efficiency"] is None else round(m["efficiency"], 3),
        "comfort": None if m["comfort"] is None else round(m["comfort"], 3),
        "per_route": [
            {
                "route_id": r["route_id"],
                "family": r.get("family"),
                "status": r["status"],
                "route_completion": round(r["scores"]["score_route"], 3),
                "penalty": round(r["scores"]["score_penalty"], 4),
                "driving_score": round(r["scores"]["score_composed"], 3),
                "infractions": {k: len(v) for k, v in r["infractions"].items() if v},
            }
            for r in records
        ],
        "run_dir": str(run_dir),
    }


def _drive(
    a: AgentRun,
    specs: list[RouteSpec],
    out: Path,
    config: RunnerConfig | None,
    route_file: Path | None,
    routes,
    progress: bool,
) -> dict:
    """One agent over the routes into `out/<name>` and its summary (a process-pool job: top-level, picklable)."""
    t0 = time.perf_counter()
    logger.info("closed loop: %s (%s) on %d route(s)", a.name, a.agent, len(specs))
    run = run_suite(specs, a.agent, out / a.name, config, a.agent_config, route_file=route_file, progress=progress)
    return {
        "agent": a.agent,
        "agent_config": a.agent_config,
        **summarise(run.records, out / a.name, routes),
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def compare_agents(
    agents: list[AgentRun],
    specs: list[RouteSpec],
    out_dir: str | Path,
    config: RunnerConfig | None = None,
    route_file: Path | None = None,
    progress: bool = False,
    workers: int = 1,
) -> dict[str, dict]:
    """Drive each agent over `specs` into `out_dir/<name>` (resuming earlier work there) and summarise each run.

    `workers` > 1 drives that many agents at the same time, one process each (the agents' run folders are separate, so
    they never share a file); the result is the same as driving them one after another, in `agents` order."""
    names = [a.name for a in agents]
    if len(set(names)) != len(names):
        raise ValueError(f"compare_agents: agent names must be unique, got {names}")
    if not specs:
        raise ValueError("compare_agents: no routes to drive")
    if workers < 1:
        raise ValueError(f"compare_agents: workers must be at least 1, got {workers}")
    routes = None
    if route_file is not None:
        from bench2drive_eval.routes import parse_routes

        routes = parse_routes(route_file)
    out = Path(out_dir)
    jobs = [(a, specs, out, config, route_file, routes, progress and workers == 1) for a in agents]
    if workers == 1 or len(agents) == 1:
        return {a.name: _drive(*job) for a, job in zip(agents, jobs)}
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(workers, len(agents)), mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_drive, *job) for job in jobs]
        return {a.name: f.result() for a, f in zip(agents, futures)}


__all__ = ["AgentRun", "RouteSubset", "compare_agents", "infraction_counts", "route_subset", "summarise"]
