"""Everything a run needs, checked before the first attempt: a broken set-up stops with one message, not 220 records.

Without this, a missing ``--b2d-root`` or a wrong ``--carla-root`` only shows up inside the evaluator, attempt after
attempt. The checks mirror what the evaluator will do: the route file parses, the command's interpreter and scripts
exist, the stock evaluator's ``leaderboard`` and ``srunner`` packages (and ``carla``) import from the given roots,
the CARLA launcher is executable, the agent file imports in the evaluator's interpreter and environment and names its
agent class, the files its config string names exist (with the checkpoint a YAML/JSON config names), and free ports
exist for every shard.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from bench2drive_eval.launcher.config import LaunchConfig
from bench2drive_eval.launcher.ports import release_block, reserve_block
from bench2drive_eval.records import RecordError, read_json
from bench2drive_eval.routes import RouteFileError, parse_routes

log = logging.getLogger(__name__)

# Run by the evaluator's interpreter with the evaluator's environment and working directory: import the agent as
# leaderboard_evaluator.py does (its folder first on sys.path, then import_module of its stem) and resolve the entry
# point; optionally locate the stock evaluator's packages. Prints one JSON line.
_PROBE = r"""
import importlib, importlib.util, json, os, sys, traceback
agent, modules = sys.argv[1], [m for m in sys.argv[2].split(",") if m]
out = {"modules": {}, "agent": None}
for name in modules:
    try:
        spec = importlib.util.find_spec(name)
        out["modules"][name] = None if spec is None else (spec.origin or "")
    except Exception as exc:
        out["modules"][name] = None
try:
    sys.path.insert(0, os.path.dirname(agent))
    mod = importlib.import_module(os.path.basename(agent).split(".")[0])
    entry = mod.get_entry_point()
    getattr(mod, entry)
except BaseException as exc:
    out["agent"] = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
print("PREFLIGHT " + json.dumps(out))
"""

# What the stock B2D evaluator imports (leaderboard_evaluator.py, its first lines), with the root each comes from.
_B2D_MODULES = {
    "leaderboard.leaderboard_evaluator": "leaderboard",
    "srunner.scenariomanager": "scenario_runner",
}


class PreflightError(RuntimeError):
    """The run cannot work as set up; the message lists every problem found."""


def _executable(token: str) -> bool:
    path = shutil.which(token)
    return path is not None and os.access(path, os.X_OK)


# A config-string field with one of these suffixes names a file the agent will open; anything else is left to it.
_FILE_SUFFIXES = (".py", ".yaml", ".yml", ".json", ".pth", ".ckpt", ".pt", ".safetensors", ".txt")


def _looks_like_path(field: str) -> bool:
    return Path(field).suffix.lower() in _FILE_SUFFIXES


def _command_problems(cfg: LaunchConfig, template: str, what: str) -> list[str]:
    """The command's program must be executable and every script or path token it names must exist."""
    try:
        tokens = cfg.format_cmd(
            template, routes="ROUTES.xml", checkpoint="CHECKPOINT.json", host="127.0.0.1", port=1, tm_port=1, gpu=0
        )
    except ValueError as exc:
        return [f"{what}: {exc}"]
    if not tokens:
        return [f"{what} is empty"]
    problems = []
    if not _executable(tokens[0]):
        problems.append(f"{what}: {tokens[0]!r} is not an executable program")
    for tok in tokens[1:]:
        value = tok.split("=", 1)[1] if tok.startswith("-") and "=" in tok else tok
        if value.endswith((".py", ".sh")) and not value.startswith(("ROUTES", "CHECKPOINT")):
            path = Path(value) if Path(value).is_absolute() or cfg.b2d_root is None else cfg.b2d_root / value
            if not path.is_file():
                problems.append(f"{what}: {path} does not exist")
    return problems


def _carla_problems(cfg: LaunchConfig) -> list[str]:
    if cfg.server_mode == "own":
        return _command_problems(cfg, cfg.server_cmd, "CARLA server command (--server-cmd)")
    if cfg.server_mode == "attach" and cfg.carla_root is None:
        return []
    root = cfg.real_carla_root()
    if root is None:
        return ["server mode 'evaluator' needs the CARLA install: pass --carla-root or set $CARLA_ROOT"]
    script = root / "CarlaUE4.sh"
    if not script.is_file():
        return [f"CARLA launcher {script} does not exist (--carla-root / $CARLA_ROOT must be the CARLA install)"]
    if not os.access(script, os.X_OK):
        return [f"CARLA launcher {script} is not executable"]
    return []


def _config_problems(cfg: LaunchConfig, cwd: Path) -> list[str]:
    """Files the agent config string names (``cfg.yaml`` or the Zoo's ``config.py+ckpt.pth``), and the checkpoint a
    YAML/JSON config names under ``checkpoint:`` (relative to the config's folder, as `team_code` resolves it)."""
    problems = []
    for field in cfg.agent_config.split("+"):
        if not field or not _looks_like_path(field):
            continue
        path = Path(field) if Path(field).is_absolute() else cwd / field
        if not path.exists():
            problems.append(f"agent config names {path}, which does not exist")
            continue
        if path.suffix.lower() in (".yaml", ".yml", ".json") and path.is_file():
            ckpt = _named_checkpoint(path)
            if isinstance(ckpt, str) and ckpt:
                cpath = Path(os.path.normpath(path.parent / ckpt))
                if not cpath.exists():
                    problems.append(f"checkpoint {cpath} named by {path} does not exist")
    return problems


def _named_checkpoint(path: Path) -> object:
    try:
        if path.suffix.lower() == ".json":
            data = read_json(path)
        else:
            import yaml

            data = yaml.safe_load(path.read_text())
    except ImportError:
        return None  # no YAML reader here; the agent's own setup checks it
    except Exception:
        return None  # not ours to parse: the agent import check below reports a config it cannot read
    return data.get("checkpoint") if isinstance(data, dict) else None


def _probe_problems(cfg: LaunchConfig, cwd: Path, check_b2d: bool) -> list[str]:
    """Import the agent (and locate the B2D packages) in the evaluator's interpreter and environment."""
    if not _executable(cfg.python):
        return [f"evaluator interpreter {cfg.python!r} (--python) is not an executable program"]
    modules = (*_B2D_MODULES, "carla") if check_b2d else ()
    env = cfg.evaluator_env(cfg.gpus[0], cfg.out / "agent_outputs", cfg.real_carla_root())
    env.pop("CUDA_VISIBLE_DEVICES", None)  # the probe only imports; it need not see the shard's GPU
    try:
        proc = subprocess.run(
            [cfg.python, "-c", _PROBE, str(cfg.agent), ",".join(modules)],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=cfg.preflight_timeout_s,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return [f"importing the agent {cfg.agent} took longer than {cfg.preflight_timeout_s:.0f} s"]
    except OSError as exc:
        return [f"evaluator interpreter {cfg.python!r} could not run: {exc}"]
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("PREFLIGHT ")), None)
    if line is None:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return [f"evaluator interpreter {cfg.python!r} failed the import check: {tail}"]
    out = json.loads(line[len("PREFLIGHT ") :])
    problems = []
    if out["agent"]:
        problems.append(
            f"agent {cfg.agent} does not import in {cfg.python} with the evaluator's PYTHONPATH: {out['agent']}"
        )
    for name, origin in out["modules"].items():
        if name == "carla":
            if origin is None:
                problems.append(
                    f"'carla' is not importable by {cfg.python} (needs the CARLA PythonAPI egg or wheel for its "
                    "Python version under --carla-root, or the carla package)"
                )
            continue
        root = cfg.b2d_root / _B2D_MODULES[name] if cfg.b2d_root is not None else None
        if origin is None:
            problems.append(f"'{name}' is not importable from {root} (is --b2d-root the Bench2Drive checkout?)")
        elif root is not None and not Path(origin).resolve().is_relative_to(root.resolve()):
            problems.append(f"'{name}' imports from {origin}, not from {root}")
    return problems


def _port_problems(cfg: LaunchConfig, num_shards: int) -> list[str]:
    """A free RPC block (own/evaluator modes) and traffic-manager port for every shard, as the shards will probe."""
    if cfg.ray_address:
        return []  # probed on the node that runs each shard
    problems, held = [], []
    try:
        for i in range(num_shards):
            if cfg.server_mode != "attach":
                want = cfg.base_port + cfg.port_stride * i
                got = reserve_block(want, span=3, step=3)
                held.append((got, 3))
                if got != want:
                    log.info("shard %d: ports %d-%d busy, will use %d-%d", i, want, want + 2, got, got + 2)
            held.append((reserve_block(cfg.base_tm_port + cfg.port_stride * i, span=1, step=1), 1))
    except (RuntimeError, ValueError) as exc:
        problems.append(f"ports: {exc} (change --base-port / --base-tm-port)")
    finally:
        for port, span in held:
            release_block(port, span)
    return problems


def _plan_problems(cfg: LaunchConfig, route_ids: set[str]) -> list[str]:
    plan_path = cfg.out / "plan.json"
    if not plan_path.is_file():
        return []
    try:
        planned = {rid for s in read_json(plan_path)["shards"] for rid in s}
    except (RecordError, OSError, KeyError, TypeError) as exc:
        return [f"{plan_path}: unreadable shard plan ({exc}); use a fresh --out folder"]
    if planned != route_ids:
        return [f"{plan_path}: the existing plan covers other routes than {cfg.routes}; use a fresh --out folder"]
    return []


def preflight(cfg: LaunchConfig) -> None:
    """Check everything the run needs; raises `PreflightError` listing every problem. Starts and writes nothing."""
    problems: list[str] = []
    num_shards = cfg.num_shards_requested
    try:
        routes = parse_routes(cfg.routes)
        problems += _plan_problems(cfg, {r.id for r in routes})
        num_shards = min(num_shards, len(routes))
    except RouteFileError as exc:
        problems.append(str(exc))
    needs_b2d = "{b2d_root}" in cfg.evaluator_cmd
    if needs_b2d and cfg.b2d_root is None:
        problems.append("the evaluator command runs the B2D leaderboard from {b2d_root}: pass --b2d-root")
    elif cfg.b2d_root is not None and not cfg.b2d_root.is_dir():
        problems.append(f"--b2d-root {cfg.b2d_root} is not a folder")
    if not (needs_b2d and cfg.b2d_root is None):  # its scripts live under --b2d-root
        problems += _command_problems(cfg, cfg.evaluator_cmd, "evaluator command")
    problems += _carla_problems(cfg)
    cwd = cfg.b2d_root if cfg.b2d_root is not None and cfg.b2d_root.is_dir() else Path.cwd()
    agent = cfg.agent if cfg.agent.is_absolute() else cwd / cfg.agent  # the evaluator runs in cwd
    if not agent.is_file():
        problems.append(f"agent file {agent} does not exist")
    else:
        problems += _config_problems(cfg, cwd)
        # whenever --b2d-root is given its packages go on the evaluator's PYTHONPATH: check they import from there
        problems += _probe_problems(cfg, cwd, cfg.b2d_root is not None and cfg.b2d_root.is_dir())
    problems += _port_problems(cfg, num_shards)
    if problems:
        raise PreflightError(
            f"preflight found {len(problems)} problem(s); nothing was run:\n  - " + "\n  - ".join(problems)
        )
    log.info("preflight passed: %s", " ".join(shlex.quote(str(x)) for x in (cfg.agent, cfg.agent_config)))
