"""The Ray backend (`irlvla b2d eval --ray`) on a real local Ray cluster with declared (fake) GPUs.

One cluster for the module (2 CPUs, 2 GPUs declared; Ray hands GPU ids to tasks whether or not the hardware exists).
The test doubles get their cues through `LaunchConfig.extra_env`, since Ray workers do not see environment changes
the test makes after the cluster started.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from collections import Counter
from pathlib import Path

import pytest
from b2d_launcher_support import IDS, alive, assert_all_dead, assert_one_record_each, done_counts, pids, wait_until

from bench2drive_eval.launcher.run import run_evaluation

ray = pytest.importorskip("ray", reason="ray is optional (irlvla[distributed]); CI installs it with the dev extra")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_cluster():
    path = os.pathsep.join([str(REPO), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]])
    for attempt in range(3):
        try:
            ray.init(
                num_cpus=2,
                num_gpus=2,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env={"env_vars": {"PYTHONPATH": path}},
            )
            break
        except Exception as exc:  # Ray gives its raylet a fixed 30 s to start; a saturated machine can miss that
            ray.shutdown()
            if attempt == 2 or "timed out during startup" not in str(exc):
                raise
    try:
        yield ray
    finally:
        ray.shutdown()


def _on_ray(cfg, state: Path, **cues: str):
    env = {"FAKE_B2D_STATE": str(state), "FAKE_CARLA_STATE": str(state), "FAKE_B2D_ROUTE_SECONDS": "0.02", **cues}
    return dataclasses.replace(cfg, ray_address="auto", extra_env=env)


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_each_shard_runs_as_a_task_on_its_own_declared_gpu(ray_cluster, run_env) -> None:
    cfg, state = run_env
    result = run_evaluation(_on_ray(cfg, state))
    assert_one_record_each(cfg, result)
    assert done_counts(state) == Counter(IDS)
    lines = (state / "evaluators.log").read_text().splitlines()
    # two shards at once on a 2-GPU cluster: each evaluator sees the GPU Ray assigned to its task, a different one
    assert sorted(line.split()[2] for line in lines) == ["gpu=0", "gpu=1"]
    workers = {_ppid_or_none(int(line.split()[0])) for line in lines} - {None}
    assert os.getpid() not in workers  # shards ran in Ray workers, not in this process
    assert_all_dead(pids(state, "servers.log") + pids(state, "evaluators.log"), cfg)


def _ppid_or_none(pid: int) -> int | None:
    try:
        return _ppid(pid)
    except (OSError, IndexError):
        return None


def test_worker_killed_mid_shard_is_retried_and_resumes(ray_cluster, run_env) -> None:
    """SIGKILL the Ray worker running a shard while its evaluator is mid-route: Ray retries the task, the retry kills
    what the dead worker left running and resumes the shard; every route ends with exactly one record."""
    cfg, state = run_env
    cfg = dataclasses.replace(_on_ray(cfg, state, FAKE_B2D_ROUTE_SECONDS="0.6"), gpus=(0,))
    box: list = []
    runner = threading.Thread(target=lambda: box.append(run_evaluation(cfg)), daemon=True)
    runner.start()
    wait_until(lambda: sum(done_counts(state).values()) >= 2, timeout_s=120, what="two routes done on Ray")
    evaluator = pids(state, "evaluators.log")[0]
    worker = _ppid(evaluator)
    assert worker != os.getpid()
    os.kill(worker, signal.SIGKILL)
    runner.join(timeout=300)
    assert box, "run_evaluation did not finish"
    result = box[0]
    # results/ is written only by a shard runner, so all eight records there mean the retried task resumed the shard:
    # it either killed the evaluator the dead worker left behind and started a new one for the rest, or (on a slow
    # machine, where Ray restarts the task late) found that orphan finished and harvested its checkpoint
    assert_one_record_each(cfg, result)
    wait_until(lambda: not alive(worker), what="the killed worker to be gone")
    assert done_counts(state) == Counter(IDS)  # nothing finished twice, nothing lost
    assert_all_dead(pids(state, "servers.log") + pids(state, "evaluators.log"), cfg)
