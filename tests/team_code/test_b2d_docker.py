"""docker-compose.yml and docker/: structure, the RPC-port health check, the attach wrapper (no Docker needed)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _compose():
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_services():
    c = _compose()["services"]
    carla, ev = c["carla"], c["evaluator"]
    assert carla["image"] == "carlasim/carla:0.9.15"
    assert {"-RenderOffScreen", "-nosound"} <= set(carla["command"]) and "user" not in carla
    assert carla["restart"] == "on-failure"
    assert carla["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert ev["depends_on"]["carla"]["condition"] == "service_healthy"
    assert ev["network_mode"] == "service:carla"
    assert any(v.endswith(":/results") for v in ev["volumes"]) and any("/weights" in v for v in ev["volumes"])
    assert ev["build"]["dockerfile"] == "docker/Dockerfile"
    pinned = re.search(r"ARG B2D_COMMIT=([0-9a-f]{40})", (REPO / "docker" / "Dockerfile").read_text()).group(1)
    assert pinned in ev["build"]["args"]["B2D_COMMIT"]


@pytest.mark.skipif(not Path("/proc/net/tcp").exists() or shutil.which("sh") is None, reason="needs Linux /proc")
def test_healthcheck_detects_a_listening_port():
    test = _compose()["services"]["carla"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    srv = socket.socket()
    srv.bind(("0.0.0.0", 0))
    srv.listen()
    port = srv.getsockname()[1]
    # What compose hands the shell: `$$` -> `$`, ${CARLA_PORT:-2000} -> the port.
    cmd = test[1].replace("$$", "$").replace("${CARLA_PORT:-2000}", str(port))
    try:
        assert subprocess.run(["sh", "-c", cmd], check=False).returncode == 0
    finally:
        srv.close()
    assert subprocess.run(["sh", "-c", cmd], check=False).returncode == 1


def test_entrypoint_and_shim_are_valid_shell():
    for name in ("docker/entrypoint.sh", "docker/carla_attach/CarlaUE4.sh"):
        path = REPO / name
        assert path.stat().st_mode & 0o111, f"{name} must be executable"
        if shutil.which("bash"):
            assert subprocess.run(["bash", "-n", str(path)], check=False).returncode == 0
    text = (REPO / "docker" / "entrypoint.sh").read_text()
    assert "irlvla b2d eval" in text and "--carla" in text and "team_code/irlvla_b2d_agent.py" in text


def test_attach_wrapper_keeps_the_port(monkeypatch):
    calls = {}
    fake = types.ModuleType("leaderboard.leaderboard_evaluator")
    fake.__file__ = "/b2d/leaderboard/leaderboard/leaderboard_evaluator.py"
    fake.find_free_port = lambda p: p + 1  # what the stock evaluator does when the port is taken

    def main():
        calls["port"] = fake.find_free_port(2000)
        calls["argv0"] = sys.argv[0]

    fake.main = main
    pkg = types.ModuleType("leaderboard")
    pkg.leaderboard_evaluator = fake
    monkeypatch.setitem(sys.modules, "leaderboard", pkg)
    monkeypatch.setitem(sys.modules, "leaderboard.leaderboard_evaluator", fake)
    monkeypatch.setattr(sys, "argv", ["b2d_attach_evaluator.py", "--port=2000"])
    monkeypatch.syspath_prepend(str(REPO / "docker"))
    import b2d_attach_evaluator

    assert b2d_attach_evaluator.main() == 0
    assert calls == {"port": 2000, "argv0": fake.__file__}
