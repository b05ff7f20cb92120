"""Shards as Ray tasks that each ask for one GPU, so one evaluation spans many machines.

``cfg.out`` must be on a file system every node mounts: shard state, results and agent outputs live there, and
the driver's progress and final merge read them from it. A task whose worker or node dies is retried by Ray
(``max_retries``); the retry resumes the shard from its files, first killing what the dead worker left running.
"""

from __future__ import annotations

import dataclasses
import logging

from bench2drive_eval.launcher.config import LaunchConfig
from bench2drive_eval.routes import Route, parse_routes

log = logging.getLogger(__name__)

MAX_RETRIES = 2  # Ray retries of a shard task lost with its worker or node


def _import_ray():
    try:
        import ray
    except ImportError:
        raise RuntimeError("--ray needs Ray: pip install 'irlvla[distributed]'") from None
    return ray


def _shard_task(cfg: LaunchConfig, index: int, route_ids: list[str]) -> dict:
    """Runs on a Ray worker: the GPU Ray assigned is the CARLA graphics adapter and the agent's device.

    Returns ``{"records": n}``, or ``{"error": message}`` when the shard stopped on infrastructure failures (a
    result, not an exception, so Ray does not retry what would fail again)."""
    ray = _import_ray()
    from bench2drive_eval.launcher.shard import InfrastructureError, ShardRunner

    gpu_ids = ray.get_gpu_ids()
    gpu = int(gpu_ids[0]) if gpu_ids else cfg.gpu_of(index)
    by_id = {r.id: r for r in parse_routes(cfg.routes)}
    local = dataclasses.replace(cfg, gpus=(gpu,))
    try:
        records = ShardRunner(local, index, [by_id[i] for i in route_ids], gpu=gpu).run()
    except InfrastructureError as exc:
        return {"error": str(exc)}
    return {"records": len(records)}


def run_shards_ray(cfg: LaunchConfig, shards: list[list[Route]]) -> dict[int, str]:
    """One Ray task per shard (``num_gpus=1``); returns shard -> error for shards that did not finish."""
    ray = _import_ray()
    if not ray.is_initialized():
        ray.init(address=cfg.ray_address)
    task = ray.remote(num_gpus=1, max_retries=MAX_RETRIES)(_shard_task)
    refs = {task.remote(cfg, i, [r.id for r in s]): i for i, s in enumerate(shards)}
    errors: dict[int, str] = {}
    for ref, i in refs.items():
        try:
            out = ray.get(ref)
        except Exception as exc:  # retries used up (a lost node): the shard resumes from its files on a rerun
            log.error("shard %d failed on Ray: %r", i, exc)
            errors[i] = f"Ray task failed: {exc!r}"
            continue
        if "error" in out:
            log.error("%s", out["error"])
            errors[i] = out["error"]
        else:
            log.info("shard %d finished on Ray with %d records", i, out["records"])
    return errors
