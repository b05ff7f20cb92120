"""Launcher against test doubles of CARLA and the leaderboard evaluator (tests/bench2drive_eval/fakes)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from b2d_launcher_support import (
    EVALUATOR,
    FAKES,
    IDS,
    SERVER,
    alive,
    assert_all_dead,
    assert_one_record_each,
    done_counts,
    free_tcp_port,
    launcher_args,
    pids,
    runs,
    sigkill_launcher_after_two_routes,
    wait_until,
)

from bench2drive_eval.launcher.config import LaunchConfig
from bench2drive_eval.launcher.processes import port_open
from bench2drive_eval.launcher.run import run_evaluation
from bench2drive_eval.launcher.shard import ShardRunner
from bench2drive_eval.records import checkpoint_document, load_records
from bench2drive_eval.routes import parse_routes


def test_happy_path_two_gpus(run_env) -> None:
    cfg, state = run_env
    result = run_evaluation(cfg)
    assert_one_record_each(cfg, result)
    assert done_counts(state) == Counter(IDS)
    # one evaluator per shard, each pinned to its GPU, with the environment run_evaluation.sh sets
    lines = (state / "evaluators.log").read_text().splitlines()
    assert sorted(line.split()[2] for line in lines) == ["gpu=0", "gpu=1"]
    assert all("track=SENSORS" in line and "bench=True" in line for line in lines)
    assert json.loads((cfg.out / "plan.json").read_text())["shards"] == [IDS[:4], IDS[4:]]
    # every server and evaluator we started is gone
    assert_all_dead(pids(state, "servers.log") + pids(state, "evaluators.log"), cfg)
    # metric_info went to the shared SAVE_PATH under each record's save_name
    for rec in result.records:
        assert (cfg.out / "agent_outputs" / rec["save_name"] / "metric_info.json").is_file()


def test_crash_die_and_hang_are_recovered(run_env, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, state = run_env
    monkeypatch.setenv("FAKE_B2D_CRASH_ONCE", "102")  # record "Failed - Simulation crashed", exit -1
    monkeypatch.setenv("FAKE_B2D_DIE_ONCE", "103")  # exit without a record (segfault)
    monkeypatch.setenv("FAKE_B2D_HANG_ONCE", "106")  # hang: the watchdog must kill it
    cfg = dataclasses.replace(cfg, route_timeout_s=2.0)
    result = run_evaluation(cfg)
    assert_one_record_each(cfg, result)
    assert done_counts(state) == Counter(IDS)  # no route finished twice
    statuses = {r["route_id"]: r["status"] for r in result.records}
    assert "crashed" not in " ".join(statuses.values())
    what = Counter(w for _, w in runs(state))
    assert what["crash"] == 1 and what["die"] == 1 and what["hang"] == 1
    assert_all_dead(pids(state, "servers.log") + pids(state, "evaluators.log"), cfg)


def test_route_that_always_dies_gets_one_failure_record(run_env, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, state = run_env
    monkeypatch.setenv("FAKE_B2D_ALWAYS_DIE", "104")
    cfg = dataclasses.replace(cfg, max_route_attempts=2)
    result = run_evaluation(cfg)
    assert_one_record_each(cfg, result)
    assert Counter(w for r, w in runs(state) if r == "104") == {"die": 2}
    rec = next(r for r in result.records if r["route_id"] == "RouteScenario_104_rep0")
    assert rec["status"] == "Failed - Simulation crashed" and rec["scores"]["score_composed"] == 0.0
    assert done_counts(state) == Counter(i for i in IDS if i != "104")


def test_server_death_restarts_server(run_env, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, state = run_env
    monkeypatch.setenv("FAKE_CARLA_DIE_AFTER", "0.3")  # the first server started exits after 0.3 s
    monkeypatch.setenv("FAKE_B2D_ROUTE_SECONDS", "0.15")
    result = run_evaluation(dataclasses.replace(cfg, gpus=(0,)))
    assert_one_record_each(cfg, result)
    assert done_counts(state) == Counter(IDS)
    assert len(pids(state, "servers.log")) >= 2


def test_only_own_processes_are_killed(run_env, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, state = run_env
    # a foreign "CARLA server" on the same GPU, as another job's would be
    foreign = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "-carla-rpc-port=1", "-graphicsadapter=0"],
        start_new_session=True,
    )
    try:
        monkeypatch.setenv("FAKE_B2D_CRASH_ONCE", "101,105")
        monkeypatch.setenv("FAKE_B2D_HANG_ONCE", "103")
        result = run_evaluation(dataclasses.replace(cfg, route_timeout_s=2.0))
        assert_one_record_each(cfg, result)
        assert foreign.poll() is None
    finally:
        foreign.kill()
        foreign.wait()


def test_interrupted_run_resumes_without_repeating(run_env, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, state = run_env
    monkeypatch.setenv("FAKE_B2D_ROUTE_SECONDS", "0.6")
    cfg = dataclasses.replace(cfg, gpus=(0,))
    stop = threading.Event()
    t = threading.Thread(target=lambda: run_evaluation(cfg, stop))
    t.start()
    wait_until(lambda: len(done_counts(state)) >= 2, timeout_s=180, what="two routes done")
    stop.set()
    t.join(180)
    assert not t.is_alive()
    first = done_counts(state)
    assert 2 <= sum(first.values()) < len(IDS)
    monkeypatch.setenv("FAKE_B2D_ROUTE_SECONDS", "0.01")
    result = run_evaluation(cfg)
    assert_one_record_each(cfg, result)
    assert done_counts(state) == Counter(IDS)  # routes finished before the interruption were not rerun


def test_unharvested_attempt_is_collected_on_resume(run_env) -> None:
    """The launcher was SIGKILLed mid-attempt: the evaluator's checkpoint already holds two final records."""
    cfg, state = run_env
    routes = parse_routes(cfg.routes)
    runner = ShardRunner(cfg, 0, routes)
    adir = runner.dir / "attempt_000"
    adir.mkdir(parents=True)
    recs = []
    for i, rid in enumerate(IDS[:2]):
        recs.append(
            {
                "index": i,
                "route_id": f"RouteScenario_{rid}_rep0",
                "status": "Completed",
                "save_name": "s",
                "infractions": {},
                "scores": {"score_route": 100.0, "score_penalty": 1.0, "score_composed": 100.0},
            }
        )
    (adir / "checkpoint.json").write_text(json.dumps(checkpoint_document(recs, len(IDS), "Started")))
    (runner.dir / "state.json").write_text(json.dumps({"attempts": {}, "next_attempt": 1, "harvested": []}))
    out = runner.run()
    assert [r["route_id"].split("_")[1] for r in out] == IDS
    assert done_counts(state) == Counter(IDS[2:])


def test_attach_to_running_servers(run_env) -> None:
    cfg, state = run_env
    port = free_tcp_port()
    server = subprocess.Popen(
        [sys.executable, str(FAKES / "fake_carla_server.py"), f"-carla-rpc-port={port}"], start_new_session=True
    )
    try:
        wait_until(lambda: port_open("127.0.0.1", port), what="the fake CARLA server to listen")
        cfg = dataclasses.replace(cfg, server_mode="attach", attach=(f"127.0.0.1:{port}",))
        result = run_evaluation(cfg)
        assert_one_record_each(cfg, result)
        assert server.poll() is None  # attached servers are not ours to kill
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def test_evaluator_started_server_is_owned_through_the_shim(
    run_env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cfg, state = run_env
    carla_root = tmp_path / "carla"
    carla_root.mkdir()
    script = carla_root / "CarlaUE4.sh"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKES / "fake_carla_server.py"} "$@"\n')
    script.chmod(0o755)
    monkeypatch.setenv("FAKE_B2D_SPAWN_SERVER", "1")
    monkeypatch.setenv("FAKE_B2D_CRASH_ONCE", "102")
    cfg = dataclasses.replace(cfg, server_mode="evaluator", carla_root=carla_root, gpus=(0,))
    result = run_evaluation(cfg)
    assert_one_record_each(cfg, result)
    servers = pids(state, "servers.log")
    assert len(servers) == 2  # one per attempt, each killed through its recorded process group
    assert_all_dead(servers, cfg)
    # the shim hid -graphicsadapter= from the evaluator's pattern kill
    shim = (cfg.out / "shards" / "shard_00" / "attempt_000" / "carla_shim" / "CarlaUE4.sh").read_text()
    assert "-GraphicsAdapter=" in shim


def test_config_errors(tmp_path: Path) -> None:
    base = dict(routes=tmp_path / "r.xml", agent=tmp_path / "a.py", agent_config="c", out=tmp_path)
    with pytest.raises(ValueError, match="host:port"):
        LaunchConfig(**base, server_mode="attach", attach=("nohost",))
    with pytest.raises(ValueError, match="server_mode"):
        LaunchConfig(**base, server_mode="docker")
    with pytest.raises(ValueError, match="jobs_per_gpu"):
        LaunchConfig(**base, jobs_per_gpu=0)


def test_eval_cli_end_to_end(run_env, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from irlvla.cli import main

    cfg, state = run_env
    caplog.set_level(logging.INFO)
    args = [
        "b2d",
        "eval",
        "--routes",
        str(cfg.routes),
        "--agent",
        str(cfg.agent),
        "--agent-config",
        cfg.agent_config,
        "--out",
        str(cfg.out),
        "--gpus",
        "0,1",
        "--jobs-per-gpu",
        "2",
        "--server-mode",
        "own",
        "--evaluator-cmd",
        EVALUATOR,
        "--server-cmd",
        SERVER,
        "--base-port",
        str(cfg.base_port),
        "--poll",
        "0.05",
        "--progress-every",
        "0.05",
        "--route-timeout",
        "30",
    ]
    assert main(args) == 0
    metrics = json.loads((cfg.out / "metrics.json").read_text())
    # fake evaluator: routes with id % 3 == 0 (102, 105, 108) score 40 and fail, the other five score 100
    assert metrics["num_routes"] == 8 and metrics["denominator"] == 8
    assert metrics["driving_score"] == pytest.approx((5 * 100 + 3 * 40) / 8)
    assert metrics["success_rate"] == pytest.approx(100 * 5 / 8)
    # fake metric_info: 45 samples of 0.5 m/s^2 forward, yaw rate 0.1: two passing windows per route
    assert metrics["comfort"] == pytest.approx(100.0)
    assert len(json.loads((cfg.out / "plan.json").read_text())["shards"]) == 4
    assert "running driving score" in caplog.text
    # a second call resumes a finished run: nothing is re-run
    assert main(args) == 0
    assert done_counts(state) == Counter(IDS)


def test_sigkilled_launcher_leaves_no_orphans_on_resume(run_env, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, state = run_env
    monkeypatch.setenv("FAKE_B2D_ROUTE_SECONDS", "0.6")
    args = launcher_args(cfg, "--server-mode", "own", "--evaluator-cmd", EVALUATOR, "--server-cmd", SERVER)
    sigkill_launcher_after_two_routes(args, state)
    evaluator = pids(state, "evaluators.log")[-1]
    assert alive(evaluator)  # the orphaned evaluator keeps running after its launcher died
    monkeypatch.setenv("FAKE_B2D_ROUTE_SECONDS", "0.01")
    from irlvla.cli import main

    assert main(args) == 0
    assert_all_dead([evaluator])
    assert_all_dead(pids(state, "servers.log") + pids(state, "evaluators.log"), cfg)
    assert done_counts(state) == Counter(IDS)  # nothing finished twice, nothing lost
    assert len(load_records(cfg.out / "merged.json")) == len(IDS)


def test_sigkilled_launcher_kills_the_evaluators_orphaned_server_on_resume(
    run_env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Default mode: the evaluator starts CARLA through the shim (``sh -c`` may exec it, so the group leader's
    command line is the real CarlaUE4.sh); a resumed launcher must still recognise and kill that group."""
    cfg, state = run_env
    carla_root = tmp_path / "carla"
    carla_root.mkdir()
    script = carla_root / "CarlaUE4.sh"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKES / "fake_carla_server.py"} "$@"\n')
    script.chmod(0o755)
    monkeypatch.setenv("FAKE_B2D_SPAWN_SERVER", "1")
    monkeypatch.setenv("FAKE_B2D_ROUTE_SECONDS", "0.6")
    args = launcher_args(cfg, "--carla-root", str(carla_root), "--evaluator-cmd", EVALUATOR)
    sigkill_launcher_after_two_routes(args, state)
    server = pids(state, "servers.log")[-1]
    assert alive(server)  # the evaluator's server outlives the launcher
    monkeypatch.setenv("FAKE_B2D_ROUTE_SECONDS", "0.01")
    from irlvla.cli import main

    assert main(args) == 0
    assert_all_dead([server])
    assert_all_dead(pids(state, "servers.log") + pids(state, "evaluators.log"), cfg)
    assert done_counts(state) == Counter(IDS)


def test_orphan_server_matched_by_start_time_not_command_line(run_env) -> None:
    """A shim exec'd by ``sh -c`` leaves a group leader whose command line is the real server's, not the shim's: the
    recorded leader start time identifies it; a wrong start time (a recycled pgid) leaves the group alone."""
    from bench2drive_eval.launcher.processes import process_start_time

    cfg, _ = run_env
    runner = ShardRunner(cfg, 0, parse_routes(cfg.routes))
    adir = runner.dir / "attempt_000"
    adir.mkdir(parents=True)
    procs = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
        for _ in range(2)
    ]
    try:
        ours, stranger = procs
        (adir / "carla_server.pgid").write_text(f"{stranger.pid} 1")  # start time 1: not the live process
        runner._kill_orphans(adir)
        assert stranger.poll() is None
        (adir / "carla_server.pgid").write_text(f"{ours.pid} {process_start_time(ours.pid)}")
        runner._kill_orphans(adir)
        assert ours.wait(timeout=60) is not None
        assert stranger.poll() is None
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_second_launcher_on_the_same_folder_is_refused(run_env) -> None:
    """Two launchers on one run folder would run routes twice; the second stops before touching anything."""
    import fcntl

    from bench2drive_eval.records import RecordError

    cfg, state = run_env
    cfg.out.mkdir(parents=True)
    with open(cfg.out / ".launcher.lock", "a") as held:  # what a running launcher holds
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RecordError, match="another launcher"):
            run_evaluation(cfg)
    assert runs(state) == [] and not (cfg.out / "plan.json").exists()
    assert_one_record_each(cfg, run_evaluation(cfg))  # free again once the holder let go


def test_attach_mode_owns_the_evaluators_stand_in_server(run_env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """docker/: the stock evaluator still launches $CARLA_ROOT/CarlaUE4.sh, a no-op that idles; an evaluator killed
    by a crash must not leave those idlers behind, attempt after attempt."""
    cfg, state = run_env
    port = free_tcp_port()
    server = subprocess.Popen(
        [sys.executable, str(FAKES / "fake_carla_server.py"), f"-carla-rpc-port={port}"], start_new_session=True
    )
    carla_root = tmp_path / "carla_noop"
    carla_root.mkdir()
    script = carla_root / "CarlaUE4.sh"
    script.write_text(f"#!/bin/sh\necho $$ >> {state / 'noop.log'}\nexec sleep 120\n")
    script.chmod(0o755)
    monkeypatch.setenv("FAKE_B2D_SPAWN_SERVER", "1")
    monkeypatch.setenv("FAKE_B2D_DIE_ONCE", "102")  # the evaluator dies without its exit handlers
    try:
        cfg = dataclasses.replace(
            cfg, server_mode="attach", attach=(f"127.0.0.1:{port}",), carla_root=carla_root, gpus=(0,)
        )
        result = run_evaluation(cfg)
        assert_one_record_each(cfg, result)
        # an idler the evaluator started before dying is killed with its attempt; one whose shim came too late for
        # its closed attempt never started: either way none is left
        assert len(pids(state, "noop.log")) <= 2
        assert_all_dead(pids(state, "noop.log"), cfg)
        assert server.poll() is None  # the attached server itself is not ours
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def test_server_that_never_starts_loses_no_route(run_env) -> None:
    """CARLA exiting at start (as 0.9.15 does on some datacenter GPUs) is no route's fault: the shard stops with an
    error and no zero-score records, and a rerun with a working server runs every route once."""
    cfg, state = run_env
    broken = f"{sys.executable} -c 'import sys; sys.exit(1)' -carla-rpc-port={{port}}"
    cfg1 = dataclasses.replace(cfg, gpus=(0,), server_cmd=broken, max_infra_failures=3)
    result = run_evaluation(cfg1)
    assert not result.ok and list(result.shard_errors) == [0]
    assert "did not come up" in result.shard_errors[0]
    assert result.records == [] and sorted(result.missing) == IDS and sorted(result.pending) == IDS
    assert not (cfg.out / "merged.json").exists()  # pending routes are never scored as zeros
    assert sorted(json.loads((cfg.out / "pending.json").read_text())) == IDS
    assert runs(state) == []  # the evaluator never ran
    result = run_evaluation(dataclasses.replace(cfg, gpus=(0,)))
    assert_one_record_each(cfg, result)
    assert done_counts(state) == Counter(IDS)
