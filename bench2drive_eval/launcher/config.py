"""What one evaluation run needs: inputs, placement, commands and the watchdog's limits."""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench2drive_eval.launcher.processes import TAG_ENV

SERVER_MODES = ("own", "attach", "evaluator")

# The B2D leaderboard's evaluator CLI (leaderboard/leaderboard/leaderboard_evaluator.py). `--resume` is omitted on
# purpose: it is `type=bool`, so any value, even "False", turns it on, and each attempt here gets a fresh checkpoint.
DEFAULT_EVALUATOR_CMD = (
    "{python} {b2d_root}/leaderboard/leaderboard/leaderboard_evaluator.py --routes={routes} --repetitions=1 "
    "--track={track} --checkpoint={checkpoint} --agent={agent} --agent-config={agent_config} --debug=0 "
    "--host={host} --port={port} --traffic-manager-port={tm_port} --gpu-rank={gpu} --timeout={client_timeout}"
)
DEFAULT_SERVER_CMD = "{carla_root}/CarlaUE4.sh -RenderOffScreen -nosound -carla-rpc-port={port} -graphicsadapter={gpu}"


@dataclass(frozen=True)
class LaunchConfig:
    """One Bench2Drive run. Commands are ``str.format`` templates split with shlex, so test doubles plug in.

    ``server_mode``: ``evaluator`` (default, for the stock B2D evaluator, which always starts CARLA itself) points its
    ``CARLA_ROOT`` at a shim ``CarlaUE4.sh`` that records the server's process group, so the launcher still owns and
    kills it without touching other jobs; ``own`` starts one server per shard itself, for evaluators that connect to
    ``--host/--port`` (upstream leaderboard, patched B2D); ``attach`` uses servers given as ``host:port``
    (docker-compose).
    """

    routes: Path
    agent: Path
    agent_config: str
    out: Path
    gpus: tuple[int, ...] = (0,)
    jobs_per_gpu: int = 1
    server_mode: str = "evaluator"
    attach: tuple[str, ...] = ()
    carla_root: Path | None = None
    b2d_root: Path | None = None
    python: str = sys.executable
    track: str = "SENSORS"
    evaluator_cmd: str = DEFAULT_EVALUATOR_CMD
    server_cmd: str = DEFAULT_SERVER_CMD
    extra_env: dict[str, str] = field(default_factory=dict)
    base_port: int = 30000
    base_tm_port: int = 50000
    port_stride: int = 150
    client_timeout_s: float = 600.0
    server_startup_s: float = 120.0
    route_timeout_s: float = 3 * 3600.0
    max_route_attempts: int = 3
    max_shard_attempts: int = 0  # 0: 2 x routes in the shard + 2 (infrastructure failures do not count)
    # consecutive infrastructure failures (no server, evaluator never ready) before the shard stops, routes pending
    max_infra_failures: int = 5
    # seconds from evaluator start to its readiness (first checkpoint written: CARLA up, agent module imported);
    # the stock B2D evaluator sleeps 30 s after starting CARLA, then tries 20 times 5 s apart
    evaluator_startup_s: float = 600.0
    preflight_timeout_s: float = 120.0  # for the interpreter check that imports the agent file
    poll_s: float = 2.0
    progress_s: float = 60.0
    kill_grace_s: float = 10.0
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.server_mode not in SERVER_MODES:
            raise ValueError(f"server_mode must be one of {SERVER_MODES}, got {self.server_mode!r}")
        if self.server_mode == "attach":
            if not self.attach:
                raise ValueError("server_mode 'attach' needs at least one host:port")
            for addr in self.attach:
                host, _, port = addr.rpartition(":")
                if not host or not port.isdigit():
                    raise ValueError(f"attach address {addr!r} is not host:port")
        if not self.gpus or any(g < 0 for g in self.gpus):
            raise ValueError(f"gpus must be non-negative ids, got {self.gpus}")
        if self.jobs_per_gpu < 1:
            raise ValueError(f"jobs_per_gpu must be >= 1, got {self.jobs_per_gpu}")
        for name in (
            "route_timeout_s",
            "server_startup_s",
            "evaluator_startup_s",
            "preflight_timeout_s",
            "poll_s",
            "progress_s",
            "client_timeout_s",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if self.max_route_attempts < 1:
            raise ValueError("max_route_attempts must be >= 1")
        if self.max_infra_failures < 1:
            raise ValueError("max_infra_failures must be >= 1")
        if "{port}" not in self.server_cmd and self.server_mode == "own":
            raise ValueError("server_cmd must contain {port}")
        for tmpl in (self.evaluator_cmd, self.server_cmd):
            shlex.split(tmpl)

    @property
    def num_shards_requested(self) -> int:
        return len(self.attach) if self.server_mode == "attach" else len(self.gpus) * self.jobs_per_gpu

    def gpu_of(self, shard: int) -> int:
        return self.gpus[shard % len(self.gpus)]

    def format_cmd(self, template: str, **values: object) -> list[str]:
        base = {
            "python": self.python,
            "b2d_root": self.b2d_root or ".",
            "carla_root": self.carla_root or os.environ.get("CARLA_ROOT", "."),
            "agent": self.agent,
            "agent_config": self.agent_config,
            "track": self.track,
            "client_timeout": int(self.client_timeout_s),
        }
        base.update(values)
        try:
            return [tok.format(**base) for tok in shlex.split(template)]
        except KeyError as exc:
            raise ValueError(f"unknown placeholder {exc} in command template {template!r}") from None

    def real_carla_root(self) -> Path | None:
        """The CARLA install: ``carla_root`` or ``$CARLA_ROOT``."""
        if self.carla_root is not None:
            return self.carla_root
        return Path(os.environ["CARLA_ROOT"]) if os.environ.get("CARLA_ROOT") else None

    def evaluator_env(
        self, gpu: int, save_path: Path, carla_root: Path | None, tag: str | None = None
    ) -> dict[str, str]:
        """The environment ``run_evaluation.sh`` sets up for the evaluator (``carla_root``: the shim's, if any),
        plus the attempt's process tag."""
        env = dict(os.environ)
        real_root = self.real_carla_root()
        croot = carla_root or real_root
        paths = []
        if real_root is not None:
            api = real_root / "PythonAPI"
            paths += [str(api), str(api / "carla"), str(api / "carla/dist/carla-0.9.15-py3.7-linux-x86_64.egg")]
        if self.b2d_root is not None:
            lb = self.b2d_root / "leaderboard"
            paths += [str(lb), str(lb / "team_code"), str(self.b2d_root / "scenario_runner")]
            env["LEADERBOARD_ROOT"] = str(lb)
            env["SCENARIO_RUNNER_ROOT"] = str(self.b2d_root / "scenario_runner")
        if env.get("PYTHONPATH"):
            paths.insert(0, env["PYTHONPATH"])
        if paths:
            env["PYTHONPATH"] = os.pathsep.join(paths)
        if croot is not None:
            env["CARLA_ROOT"] = str(croot)
        env.update(
            CHALLENGE_TRACK_CODENAME=self.track,
            IS_BENCH2DRIVE="True",
            SAVE_PATH=str(save_path),
            CUDA_VISIBLE_DEVICES=str(gpu),
            GPU_RANK=str(gpu),
        )
        env.update(self.extra_env)
        if tag is not None:
            env[TAG_ENV] = tag
        return env
