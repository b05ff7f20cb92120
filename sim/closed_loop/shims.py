"""What a leaderboard agent file imports, provided without CARLA: `carla` (data types) and the leaderboard's
`leaderboard.autoagents.autonomous_agent` base class.

`install()` makes `import carla` work for good (idempotent; a real `carla` wheel is always preferred).
`leaderboard_modules()` provides the leaderboard's base-class module only while an agent file is imported (agent
files import it at the top) and removes it afterwards, so nothing else in the process mistakes it for a real
leaderboard checkout. The base class is the team_code agent's local stand-in (`team_code.base_agent`), the one place
the project writes down the leaderboard's agent contract (constructor attributes, `set_global_plan` with the
Bench2Drive fork's 50 m downsampling, `__call__`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types
from collections.abc import Iterator

__all__ = ["carla_module", "install", "leaderboard_modules", "using_fake_carla"]


def _importable(name: str) -> bool:
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def install(force_fake_carla: bool = False) -> types.ModuleType:
    """Make `import carla` and `from leaderboard.autoagents.autonomous_agent import AutonomousAgent` work; returns
    the `carla` module agents will see."""
    if force_fake_carla or not _importable("carla"):
        current = sys.modules.get("carla")
        if current is None or not getattr(current, "FAKE", False):
            from sim.closed_loop import fake_carla

            sys.modules["carla"] = fake_carla
    return sys.modules["carla"] if "carla" in sys.modules else importlib.import_module("carla")


def carla_module() -> types.ModuleType:
    return install()


def using_fake_carla() -> bool:
    return bool(getattr(install(), "FAKE", False))


@contextlib.contextmanager
def leaderboard_modules() -> Iterator[None]:
    """`leaderboard.autoagents.autonomous_agent` importable inside the block (unless a real one is installed)."""
    if _importable("leaderboard"):
        yield
        return
    from team_code import base_agent  # imported first: it must keep seeing no leaderboard

    names = ("leaderboard", "leaderboard.autoagents", "leaderboard.autoagents.autonomous_agent")
    mods = {n: types.ModuleType(n) for n in names}
    aa = mods["leaderboard.autoagents.autonomous_agent"]
    aa.AutonomousAgent = base_agent.LocalAutonomousAgent
    aa.Track = base_agent.Track
    aa.__doc__ = "Closed-loop runner stand-in for the leaderboard's autonomous_agent module."
    mods["leaderboard"].__path__ = []  # packages, so submodule imports resolve through sys.modules
    mods["leaderboard.autoagents"].__path__ = []
    mods["leaderboard"].autoagents = mods["leaderboard.autoagents"]
    mods["leaderboard.autoagents"].autonomous_agent = aa
    sys.modules.update(mods)
    try:
        yield
    finally:
        for n in names:
            if sys.modules.get(n) is mods[n]:
                del sys.modules[n]
