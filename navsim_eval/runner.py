"""Score a whole split token by token, in this process, over a process pool or over Ray; resumable, with progress.

Each token is one task: load its scene, check the plan and the scene (bad input), build its `SceneCache`, score one
proposal. What a token's failure means is recorded with it: bad input (no scene, a malformed plan or scene) is a
counted failure of that token; any other exception is an internal error (a bug) with its traceback, which the caller
turns into a failed run. Finished tokens are appended to a journal (JSON lines) as they complete, so a run that was
killed resumes with the tokens still missing. One token's record keeps what aggregation needs: the nine sub-scores,
the 41 simulated states (EC of (prev, now) pairs) and the plan's raw end point and start pose (two-stage weights).
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from navsim_eval.config import EpdmsConfig

logger = logging.getLogger(__name__)

BACKENDS = ("serial", "process", "ray")


class InputError(ValueError):
    """A token's input is unusable (no scene, a malformed plan or scene): its failure, not the scorer's."""


@dataclass
class TokenRecord:
    """One token's outcome; `error` is empty when it scored, `internal` marks a scorer bug (traceback in `error`)."""

    token: str
    stage: int
    table: np.ndarray | None = None  # (9,) sub-scores, EC NaN
    states: np.ndarray | None = None  # (41, 11)
    end_point: np.ndarray | None = None  # (3,) raw last plan pose, world
    start_pose: np.ndarray | None = None  # (3,) rear axle at t = 0, world
    centre_offset: float = 0.0
    error: str = ""
    internal: bool = False
    seconds: float = 0.0
    extras: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.error

    def to_json(self) -> dict:
        d = {"token": self.token, "stage": self.stage, "error": self.error, "internal": self.internal}
        d["seconds"] = self.seconds
        if self.ok:
            d.update(
                table=[None if not np.isfinite(v) else float(v) for v in self.table],
                states=np.round(self.states, 12).tolist(),
                end_point=self.end_point.tolist(),
                start_pose=self.start_pose.tolist(),
                centre_offset=self.centre_offset,
            )
        return d

    @classmethod
    def from_json(cls, d: dict) -> TokenRecord:
        rec = cls(str(d["token"]), int(d["stage"]), error=str(d.get("error", "")), internal=bool(d.get("internal")))
        rec.seconds = float(d.get("seconds", 0.0))
        if rec.ok:
            rec.table = np.array([np.nan if v is None else v for v in d["table"]], dtype=np.float64)
            rec.states = np.asarray(d["states"], dtype=np.float64)
            rec.end_point = np.asarray(d["end_point"], dtype=np.float64)
            rec.start_pose = np.asarray(d["start_pose"], dtype=np.float64)
            rec.centre_offset = float(d["centre_offset"])
        return rec


def check_plan(token: str, plan, num_poses: int = 8) -> np.ndarray:
    """A token's plan as a finite (8, 3) float array, or an `InputError` saying what is wrong with it."""
    if isinstance(plan, InputError):
        raise plan
    try:
        arr = np.asarray(plan, dtype=np.float64)
    except (TypeError, ValueError):
        kind = "ragged (rows of different lengths)" if isinstance(plan, list) else f"a {type(plan).__name__}"
        raise InputError(f"token {token}: the trajectory is {kind}, not numbers of shape ({num_poses}, 3)") from None
    if arr.shape != (num_poses, 3):
        raise InputError(
            f"token {token}: the trajectory must have shape ({num_poses}, 3) x, y, heading, got {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise InputError(f"token {token}: the trajectory contains NaN or infinite values")
    return arr


# one token index per worker process and folder (built on first use, reading file names only)
_INDEX: dict[str, object] = {}


def _index(source: str):
    from navsim_eval.metric_cache import MetricCacheIndex
    from navsim_eval.sceneindex import SceneIndex

    index = _INDEX.get(source)
    if index is None:
        index = MetricCacheIndex(source) if MetricCacheIndex.holds_caches(source) else SceneIndex(Path(source))
        _INDEX[source] = index
    return index


def _scene(scenes: str, token: str):
    try:
        return _index(scenes).load(token)
    except (KeyError, OSError, ValueError) as exc:
        raise InputError(f"token {token}: {exc}") from exc


def token_cache(source: str, token: str, config: EpdmsConfig):
    """The token's input from a folder of scenes or of NAVSIM metric caches; bad input is an `InputError`.

    A metric cache becomes its `SceneCache` here (the conversion reads input); a scene is returned checked, and the
    caller builds its cache (the reference planner runs there, so its failure is the scorer's). A metric cache that
    cannot be read or converted (truncated, not a cache, missing fields) is the token's bad input; missing devkits
    (ImportError) are not: they fail the run.
    """
    import lzma
    import pickle

    from navsim_eval.cache import check_scene
    from navsim_eval.metric_cache import MetricCacheIndex, cache_from_metric_cache

    if isinstance(_index(source), MetricCacheIndex):
        try:
            metric_cache = _index(source).load(token)
        except (KeyError, OSError, ValueError, EOFError, pickle.UnpicklingError, lzma.LZMAError) as exc:
            raise InputError(f"token {token}: unreadable metric cache: {exc}") from exc
        try:
            return cache_from_metric_cache(metric_cache, config, token)
        except (AttributeError, TypeError, ValueError, IndexError) as exc:
            raise InputError(f"token {token}: malformed metric cache: {exc}") from exc
    scene = _scene(source, token)
    try:
        check_scene(scene)
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc)) from exc
    return scene


def score_token(scenes: str, token: str, plan, stage: int, config: EpdmsConfig) -> TokenRecord:
    """Score one token (never raises: the failure is recorded, internal or not; missing devkits raise)."""
    from navsim_eval.api import score_cache
    from navsim_eval.cache import SceneCache

    t0 = time.perf_counter()
    rec = TokenRecord(token, stage)
    try:
        arr = check_plan(token, plan)
        source = token_cache(scenes, token, config)
    except InputError as exc:
        rec.error = str(exc)
        rec.seconds = time.perf_counter() - t0
        return rec
    try:
        cache = source if isinstance(source, SceneCache) else SceneCache.build(source, config)
        # a metric cache's own scene type decides the human filter, as in `pdm_score`; a scene's stage from the mapping
        stage_one = None if cache.scene is None else (stage == 1)
        res = score_cache(cache, arr[None], stage_one=stage_one)
        rec.table, rec.states = res.table[0].copy(), res.states[0].copy()
        rec.end_point, rec.start_pose, rec.centre_offset = res.end_points[0], res.start_pose, res.centre_offset
    except Exception:  # a scorer exception on valid input is a bug: keep the whole traceback
        rec.error, rec.internal = traceback.format_exc(), True
    rec.seconds = time.perf_counter() - t0
    return rec


def _score_task(args: tuple) -> TokenRecord:
    return score_token(*args)


def read_journal(path: Path) -> dict[str, TokenRecord]:
    """Records of a previous (possibly killed) run; a torn last line is ignored."""
    done: dict[str, TokenRecord] = {}
    if not path.is_file():
        return done
    for line in path.read_text().splitlines():
        try:
            rec = TokenRecord.from_json(json.loads(line))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        done[rec.token] = rec
    return done


class _Progress:
    """tqdm when installed, else a log line every 10 %."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.n, self._bar, self._next = total, 0, None, 0.1
        if enabled and total:
            try:
                from tqdm import tqdm

                self._bar = tqdm(total=total, unit="token", desc="EPDMS", dynamic_ncols=True)
            except ImportError:
                pass

    def update(self) -> None:
        self.n += 1
        if self._bar is not None:
            self._bar.update(1)
        elif self.total and self.n / self.total >= self._next:
            logger.info("scored %d / %d tokens", self.n, self.total)
            self._next += 0.1

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _run_ray(tasks: list[tuple], address: str | None) -> Iterable[TokenRecord]:
    try:
        import ray
    except ImportError as exc:
        raise ImportError("the ray backend needs ray (pip extra `distributed`)") from exc
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(_score_task)
    pending = [remote.remote(t) for t in tasks]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        yield ray.get(ready[0])


def score_tokens(
    scenes: str | Path,
    plans: Mapping[str, object],
    stages: Mapping[str, int],
    config: EpdmsConfig | None = None,
    workers: int = 1,
    backend: str = "serial",
    journal: str | Path | None = None,
    progress: bool = False,
    ray_address: str | None = None,
    on_record: Callable[[TokenRecord], None] | None = None,
) -> dict[str, TokenRecord]:
    """Score every token of `plans` (token -> (8, 3)) on the scenes of a folder; returns token -> record.

    backend "serial" (this process), "process" (`workers` processes) or "ray" (a Ray cluster at `ray_address`, one CPU
    per task). journal: a JSON-lines file of finished tokens; the tokens already in it are not scored again.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    config = config or EpdmsConfig()
    jpath = Path(journal) if journal else None
    done = read_journal(jpath) if jpath else {}
    done = {t: r for t, r in done.items() if t in plans and not r.internal}  # internal errors are retried
    if done:
        logger.info("resuming: %d of %d tokens already scored in %s", len(done), len(plans), jpath)
    tasks = [(str(scenes), t, p, int(stages.get(t, 1)), config) for t, p in plans.items() if t not in done]
    out = dict(done)
    bar = _Progress(len(tasks), progress)
    jfile = open(jpath, "a") if jpath else None  # closed in finally
    try:
        if backend == "serial" or (backend == "process" and workers == 1) or not tasks:
            results: Iterable[TokenRecord] = (_score_task(t) for t in tasks)
        elif backend == "process":
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            ctx = mp.get_context("forkserver" if os.name == "posix" else "spawn")
            if os.name == "posix":  # the fork server imports the scorer once; each worker is a cheap fork of it
                ctx.set_forkserver_preload(["navsim_eval.runner", "navsim_eval.api", "navsim_eval.sceneindex"])
            pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx)
            futures = [pool.submit(_score_task, t) for t in tasks]
            results = (f.result() for f in as_completed(futures))
        else:
            results = _run_ray(tasks, ray_address)
        for rec in results:
            out[rec.token] = rec
            if rec.internal:
                logger.error("token %s: internal scorer error\n%s", rec.token, rec.error)
            elif not rec.ok:
                logger.error("token %s failed: %s", rec.token, rec.error)
            if jfile is not None:
                jfile.write(json.dumps(rec.to_json()) + "\n")
                jfile.flush()
            if on_record is not None:
                on_record(rec)
            bar.update()
    finally:
        bar.close()
        if jfile is not None:
            jfile.close()
        if backend == "process" and tasks and workers > 1:
            pool.shutdown(cancel_futures=True)
    return {t: out[t] for t in plans if t in out}
