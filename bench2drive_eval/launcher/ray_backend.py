"""Shards as Ray tasks that each ask for one GPU, so one evaluation spans many machines.

``cfg.out`` must be on a file system every node mounts: shard state, results and agent outputs live there, and
the driver's progress and final merge read them from it.
"""

from __future__ import annotations

import dataclasses
import logging

from bench2drive_eval.launcher.config import LaunchConfig
from bench2drive_eval.routes import Route, parse_routes

log = logging.getLogger(__name__)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise RuntimeError("--ray needs Ray: pip install 'irlvla[distributed]'") from None
    return ray


def _shard_task(cfg: LaunchConfig, index: int, route_ids: list[str]) -> int:
    """Runs on a Ray worker: the GPU Ray assigned is the CARLA graphics adapter and the agent's device."""
    ray = _import_ray()
    from bench2drive_eval.launcher.shard import ShardRunner

    gpu_ids = ray.get_gpu_ids()
    gpu = int(gpu_ids[0]) if gpu_ids else cfg.gpu_of(index)
    by_id = {r.id: r for r in parse_routes(cfg.routes)}
    local = dataclasses.replace(cfg, gpus=(gpu,))
    records = ShardRunner(local, index, [by_id[i] for i in route_ids], gpu=gpu).run()
    return len(records)


def run_shards_ray(cfg: LaunchConfig, shards: list[list[Route]]) -> dict[int, str]:
    ray = _import_ray()
    if not ray.is_initialized():
        ray.init(address=cfg.ray_address)
    task = ray.remote(num_gpus=1, max_retries=2)(_shard_task)
    refs = {task.remote(cfg, i, [r.id for r in s]): i for i, s in enumerate(shards)}
    errors: dict[int, str] = {}
    for ref, i in refs.items():
        try:
            n = ray.get(ref)
            log.info("shard %d finished on Ray with %d records", i, n)
        except Exception as exc:  # a lost node: the shard resumes from its files when the run is restarted
            log.error("shard %d failed on Ray: %r", i, exc)
            errors[i] = repr(exc)
    return errors
