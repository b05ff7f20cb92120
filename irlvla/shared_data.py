"""Where the reference data lives: `../shared` beside the project checkout (see the README), or `$IRLVLA_SHARED`.

It holds the official Bench2Drive route files and published result files, NAVSIM's trajectory anchors and a real
navhard score CSV, and the specs. Tests that need it skip cleanly when it is absent, so a fresh clone still passes;
set `IRLVLA_SHARED` when the checkout is elsewhere (a git worktree, a container).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    """`$IRLVLA_SHARED` when set, else `../shared` beside the checkout."""
    env = os.environ.get("IRLVLA_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path inside the shared folder, e.g. `shared_path("data", "navsim", "trajectory_anchors_256.npy")`."""
    return shared_root().joinpath(*parts)
