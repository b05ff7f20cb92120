"""A broken set-up never becomes results: preflight, pending routes on infrastructure failures, readiness, and a
process hand-over between launcher and shim that leaves nothing running whatever the order of events."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from b2d_launcher_support import (
    EVALUATOR,
    IDS,
    alive,
    assert_all_dead,
    assert_one_record_each,
    done_counts,
    pids,
    runs,
    wait_until,
)

from bench2drive_eval.launcher.preflight import PreflightError, preflight
from bench2drive_eval.launcher.processes import TAG_ENV, tagged_processes
from bench2drive_eval.launcher.run import run_evaluation
from bench2drive_eval.launcher.shard import ShardRunner
from bench2drive_eval.launcher.shim import SHIM_EXIT_CLOSED, close_attempt, server_groups, write_shim
from bench2drive_eval.routes import parse_routes
from irlvla.cli import main

REPO = Path(__file__).resolve().parents[2]


def fake_carla_root(tmp_path: Path) -> Path:
    """A CARLA install whose CarlaUE4.sh is the fake server."""
    root = tmp_path / "carla"
    root.mkdir()
    script = root / "CarlaUE4.sh"
    script.write_text(
        f'#!/bin/sh\nexec {sys.executable} {REPO}/tests/bench2drive_eval/fakes/fake_carla_server.py "$@"\n'
    )
    script.chmod(0o755)
    return root


# ---- preflight ------------------------------------------------------------------------------------------------


def test_issue_scenario_nonexistent_carla_root_without_b2d_root_stops_before_any_attempt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The reported run: the stock evaluator command, --carla-root /nonexistent, no --b2d-root. It used to make 112
    attempts, write every route as `Failed - Simulation crashed` and exit 0; now nothing starts and one message
    names what is wrong."""
    routes = tmp_path / "routes.xml"
    routes.write_text(
        '<routes><route id="1" town="Town01"><waypoints><position x="0" y="0" z="0"/>'
        '<position x="10" y="0" z="0"/></waypoints></route></routes>\n'
    )
    out = tmp_path / "RUN"
    args = [
        "b2d", "eval", "--routes", str(routes), "--agent", str(REPO / "team_code" / "irlvla_b2d_agent.py"),
        "--agent-config", str(REPO / "configs" / "b2d_agent.yaml"), "--out", str(out),
        "--carla-root", "/nonexistent", "--python", sys.executable,
    ]  # fmt: skip
    caplog.set_level(logging.ERROR)
    assert main(args) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "preflight found" in errors[0]
    assert "--b2d-root" in errors[0]
    assert "/nonexistent/CarlaUE4.sh does not exist" in errors[0]
    assert not (out / "shards").exists() and not (out / "results").exists() and not (out / "merged.json").exists()


def test_preflight_without_any_carla_root(run_env, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, _ = run_env
    monkeypatch.delenv("CARLA_ROOT", raising=False)
    with pytest.raises(PreflightError, match=r"--carla-root or set \$CARLA_ROOT"):
        run_evaluation(dataclasses.replace(cfg, server_mode="evaluator", carla_root=None))
    assert not (cfg.out / "shards").exists()


def test_preflight_lists_every_problem_at_once(run_env, tmp_path: Path) -> None:
    cfg, _ = run_env
    (tmp_path / "agent.py").write_text("import no_such_module_anywhere\n")
    (tmp_path / "cfg.yaml").write_text("checkpoint: weights/missing.safetensors\n")
    bad_routes = tmp_path / "bad.xml"
    bad_routes.write_text("<routes><route id='x' town='Town01'/></routes>")
    broken = dataclasses.replace(
        cfg, routes=bad_routes, server_cmd="/no/such/CarlaUE4.sh -carla-rpc-port={port}", python=sys.executable
    )
    with pytest.raises(PreflightError) as err:
        preflight(broken)
    msg = str(err.value)
    assert "preflight found 4 problem(s)" in msg
    assert "route id 'x' is not a non-negative integer" in msg
    assert "'/no/such/CarlaUE4.sh' is not an executable program" in msg
    assert f"checkpoint {tmp_path / 'weights' / 'missing.safetensors'} named by" in msg
    assert "No module named 'no_such_module_anywhere'" in msg


def test_preflight_finds_the_b2d_packages_from_the_given_root(run_env, tmp_path: Path) -> None:
    """With the stock evaluator command, leaderboard and scenario_runner must import from --b2d-root itself."""
    cfg, _ = run_env
    b2d = tmp_path / "Bench2Drive"
    for pkg in ("leaderboard/leaderboard", "scenario_runner/srunner/scenariomanager"):
        (b2d / pkg).mkdir(parents=True)
        (b2d / pkg / "__init__.py").write_text("")
    (b2d / "scenario_runner/srunner/__init__.py").write_text("")
    (b2d / "leaderboard/leaderboard/leaderboard_evaluator.py").write_text("")
    carla = fake_carla_root(tmp_path)
    (carla / "PythonAPI/carla/carla").mkdir(parents=True)  # the client package where run_evaluation.sh puts it
    (carla / "PythonAPI/carla/carla/__init__.py").write_text("")
    stock = dataclasses.replace(
        cfg,
        server_mode="evaluator",
        carla_root=carla,
        b2d_root=b2d,
        python=sys.executable,
        evaluator_cmd=cfg.evaluator_cmd.replace(str(Path(EVALUATOR.split()[1])), "{b2d_root}/leaderboard/x.py"),
    )
    with pytest.raises(PreflightError) as err:
        preflight(stock)
    msg = str(err.value)
    assert "leaderboard/x.py does not exist" in msg
    assert "preflight found 1 problem(s)" in msg  # leaderboard, srunner and carla all import from the given roots
    (b2d / "scenario_runner/srunner/scenariomanager/__init__.py").unlink()
    (b2d / "scenario_runner/srunner/scenariomanager").rmdir()
    with pytest.raises(PreflightError, match="'srunner.scenariomanager' is not importable from"):
        preflight(stock)


def test_preflight_refuses_busy_ports(run_env, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench2drive_eval.launcher import preflight as pf

    cfg, _ = run_env

    def no_ports(*_a, **_k):
        raise RuntimeError("no free block of 3 ports from 30000")

    monkeypatch.setattr(pf, "reserve_block", no_ports)
    with pytest.raises(PreflightError, match="ports: no free block"):
        preflight(cfg)


# ---- infrastructure failures leave routes pending -------------------------------------------------------------


def test_evaluator_that_cannot_start_charges_no_route(run_env, monkeypatch: pytest.MonkeyPatch) -> None:
    """An evaluator that exits before it is ready (here: its leaderboard import fails) is no route's fault: the
    routes stay pending, the run fails naming them, and a rerun with a working evaluator runs each exactly once."""
    cfg, state = run_env
    cfg = dataclasses.replace(cfg, gpus=(0,), max_infra_failures=2)
    monkeypatch.setenv("FAKE_B2D_FAIL_START", "1")
    result = run_evaluation(cfg)
    assert result.records == [] and sorted(result.pending) == IDS and not result.ok
    assert "before it was ready" in result.pending["101"] and "No module named 'leaderboard'" in result.pending["101"]
    assert runs(state) == [] and not (cfg.out / "merged.json").exists()
    assert len(pids(state, "evaluators.log")) == 2  # the retry budget, then stop
    monkeypatch.delenv("FAKE_B2D_FAIL_START")
    result = run_evaluation(cfg)
    assert_one_record_each(cfg, result)
    assert done_counts(state) == Counter(IDS)
    assert not (cfg.out / "pending.json").exists()


def test_resume_runs_exactly_the_pending_routes(run_env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two routes finish, the evaluator dies on the third, and from then on it cannot start: only the six routes
    without a record are pending, and the rerun runs exactly those."""
    cfg, state = run_env
    cfg = dataclasses.replace(cfg, gpus=(0,), max_infra_failures=2)
    monkeypatch.setenv("FAKE_B2D_DIE_ONCE", "103")
    monkeypatch.setenv("FAKE_B2D_FAIL_START_AFTER", "2")
    result = run_evaluation(cfg)
    assert sorted(result.pending) == IDS[2:]
    assert sorted(r["route_id"].split("_")[1] for r in result.records) == IDS[:2]
    state_file = json.loads((cfg.out / "shards/shard_00/state.json").read_text())
    assert state_file["attempts"] == {"103": 1}  # the death mid-route was charged; the failed starts were not
    monkeypatch.delenv("FAKE_B2D_FAIL_START_AFTER")
    first = done_counts(state)
    result = run_evaluation(cfg)
    assert_one_record_each(cfg, result)
    assert done_counts(state) - first == Counter(IDS[2:])


def test_eval_cli_exits_nonzero_naming_pending_routes(run_env, monkeypatch, caplog) -> None:
    cfg, state = run_env
    monkeypatch.setenv("FAKE_B2D_FAIL_START", "1")
    args = [
        "b2d", "eval", "--routes", str(cfg.routes), "--agent", str(cfg.agent), "--agent-config", cfg.agent_config,
        "--out", str(cfg.out), "--gpus", "0", "--server-mode", "own", "--evaluator-cmd", EVALUATOR,
        "--server-cmd", cfg.server_cmd, "--base-port", str(cfg.base_port), "--poll", "0.05",
        "--max-infra-failures", "1",
    ]  # fmt: skip
    caplog.set_level(logging.ERROR)
    assert main(args) == 1
    assert "8 route(s) pending, not scored" in caplog.text and "101, 102" in caplog.text
    assert not (cfg.out / "metrics.json").exists()


def test_route_timeout_counts_from_readiness(run_env, monkeypatch: pytest.MonkeyPatch) -> None:
    """An evaluator that takes longer to get ready (CARLA start, agent import) than a route may take is not a hung
    route: the watchdog starts at the first checkpoint."""
    cfg, state = run_env
    monkeypatch.setenv("FAKE_B2D_START_DELAY", "3.0")
    result = run_evaluation(dataclasses.replace(cfg, gpus=(0,), route_timeout_s=2.0))
    assert_one_record_each(cfg, result)
    assert done_counts(state) == Counter(IDS) and len(pids(state, "evaluators.log")) == 1


def test_evaluator_never_ready_is_an_infrastructure_failure(run_env, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, state = run_env
    monkeypatch.setenv("FAKE_B2D_START_DELAY", "60")
    cfg = dataclasses.replace(cfg, gpus=(0,), evaluator_startup_s=0.5, max_infra_failures=1)
    result = run_evaluation(cfg)
    assert sorted(result.pending) == IDS and "evaluator startup exceeded" in result.pending["101"]
    assert_all_dead(pids(state, "evaluators.log") + pids(state, "servers.log"), cfg)


# ---- the launcher/shim hand-over ------------------------------------------------------------------------------


def _noop_root(tmp_path: Path, state: Path) -> Path:
    """A CARLA install whose CarlaUE4.sh logs its pid and idles."""
    root = tmp_path / "carla_idle"
    root.mkdir()
    script = root / "CarlaUE4.sh"
    script.write_text(f'#!/bin/sh\necho $$ "$@" >> {state / "idlers.log"}\nexec sleep 120\n')
    script.chmod(0o755)
    return root


def test_shim_started_after_close_exits_without_starting_the_server(tmp_path: Path) -> None:
    adir = tmp_path / "attempt_000"
    adir.mkdir()
    shim = write_shim(adir, _noop_root(tmp_path, tmp_path)) / "CarlaUE4.sh"
    assert close_attempt(adir) == []
    rc = subprocess.run([str(shim), "-graphicsadapter=0"], timeout=60).returncode
    assert rc == SHIM_EXIT_CLOSED
    assert not (tmp_path / "idlers.log").exists()  # the real server never ran
    assert server_groups(adir) == []


def test_shim_started_before_close_is_handed_over(tmp_path: Path) -> None:
    adir = tmp_path / "attempt_000"
    adir.mkdir()
    shim = write_shim(adir, _noop_root(tmp_path, tmp_path)) / "CarlaUE4.sh"
    proc = subprocess.Popen([str(shim), "-graphicsadapter=0"], start_new_session=True)
    try:
        wait_until(lambda: (tmp_path / "idlers.log").exists(), what="the shim to start the server")
        groups = close_attempt(adir)
        assert [g for g, _ in groups] == [proc.pid]  # the launcher learns the group, and kills it
        assert (tmp_path / "idlers.log").read_text().split()[1:] == ["-GraphicsAdapter=0"]  # renamed for UE4
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


def test_evaluator_dying_before_its_server_starts_leaves_nothing(
    run_env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The race of the CI failure: the evaluator starts CARLA (here 0.5 s late, by a shell of its own session) and
    dies at once. The launcher must own whatever that shell starts, whether it comes before or after the attempt
    ends: nothing is left, whichever way the race goes."""
    cfg, state = run_env
    monkeypatch.setenv("FAKE_B2D_SPAWN_SERVER", "1")
    monkeypatch.setenv("FAKE_B2D_SPAWN_DELAY", "0.5")
    monkeypatch.setenv("FAKE_B2D_DIE_AFTER_SPAWN", "1")
    carla = _noop_root(tmp_path, state)
    cfg = dataclasses.replace(cfg, server_mode="evaluator", carla_root=carla, gpus=(0,), max_infra_failures=3)
    result = run_evaluation(cfg)
    assert sorted(result.pending) == IDS  # it never got ready: nothing charged
    spawners = pids(state, "spawners.log")  # a spawning shell killed before its first command never logs
    assert len(pids(state, "evaluators.log")) == 3 and len(spawners) <= 3
    assert_all_dead(spawners + pids(state, "idlers.log") + pids(state, "evaluators.log"), cfg)


def test_resume_kills_a_leftover_with_no_pid_file(run_env) -> None:
    """A launcher SIGKILLed between starting a process and recording its pid: the process still carries the
    attempt's tag, and the next start of the shard kills it."""
    cfg, state = run_env
    runner = ShardRunner(cfg, 0, parse_routes(cfg.routes))
    adir = runner.dir / "attempt_000"
    adir.mkdir(parents=True)
    (runner.dir / "state.json").write_text(json.dumps({"attempts": {}, "next_attempt": 1, "harvested": []}))
    tag = str(adir.resolve()) + os.sep
    leftover = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"],
        env={**os.environ, TAG_ENV: tag},
        start_new_session=True,
    )
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    try:
        wait_until(lambda: tagged_processes(tag) == [leftover.pid], what="the tagged process to show up")
        assert [r["route_id"].split("_")[1] for r in runner.run()] == IDS
        assert leftover.wait(timeout=30) is not None
        assert alive(stranger.pid)  # untagged: not ours, untouched
    finally:
        for p in (leftover, stranger):
            p.kill()
            p.wait()
