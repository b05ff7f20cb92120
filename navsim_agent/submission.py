"""NAVSIM submission pickle and the agent runs behind it and behind `irlvla navsim evaluate`.

The pickle has the structure of NAVSIM's `run_create_submission_pickle.py`: a dict with `team_name`, `authors`,
`email`, `institution`, `country / region`, and `first_stage_predictions` / `second_stage_predictions`, each a
one-element list holding {token: Trajectory}. Agents that need the privileged scene (`requires_scene`) are refused, as
the official script refuses them. With the devkit installed the trajectories are navsim's own `Trajectory` objects;
without it they are `navsim_agent.devkit.LocalTrajectory` (same fields), which navsim's server cannot unpickle: for a
real submission run NAVSIM's own script with `agent=irlvla_agent` (README), or this one inside the devkit's env.
"""

from __future__ import annotations

import logging
import pickle
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from irlvla.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)

TEAM_FIELDS = ("team_name", "authors", "email", "institution", "country / region")


@dataclass(frozen=True)
class TeamInfo:
    team_name: str
    authors: tuple[str, ...]
    email: str
    institution: str
    country: str

    def __post_init__(self) -> None:
        for f in ("team_name", "email", "institution", "country"):
            if not isinstance(getattr(self, f), str) or not getattr(self, f).strip():
                raise ValueError(f"TeamInfo.{f} must be a non-empty string")
        if not self.authors or not all(isinstance(a, str) and a.strip() for a in self.authors):
            raise ValueError("TeamInfo.authors must be a non-empty list of names")


def run_agent(
    agent: Any, tokens: Iterable[str], agent_input: Callable[[str], Any]
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """token -> (8, 3) plan for every token; a token whose input or agent step fails is recorded with its traceback."""
    if getattr(agent, "requires_scene", False):
        raise ValueError(
            f"agent {agent.name()} requires the privileged scene (requires_scene=True); NAVSIM does not accept such "
            "agents for submission"
        )
    plans, failed = {}, {}
    for token in tokens:
        try:
            traj = agent.compute_trajectory(agent_input(token))
            poses = np.asarray(traj.poses, dtype=np.float64)
            if poses.shape != (8, 3) or not np.isfinite(poses).all():
                raise ValueError(f"agent returned poses of shape {poses.shape} (finite (8, 3) expected)")
            plans[token] = poses
        except Exception:
            failed[token] = traceback.format_exc()
            logger.error("token %s: the agent failed\n%s", token, failed[token])
    return plans, failed


def submission_dict(team: TeamInfo, first: dict[str, Any], second: dict[str, Any]) -> dict:
    """The official submission structure from token -> Trajectory maps of both stages."""
    return {
        "team_name": team.team_name,
        "authors": list(team.authors),
        "email": team.email,
        "institution": team.institution,
        "country / region": team.country,
        "first_stage_predictions": [dict(first)],
        "second_stage_predictions": [dict(second)],
    }


def write_submission(
    path: str | Path, team: TeamInfo, first: dict[str, np.ndarray], second: dict[str, np.ndarray]
) -> Path:
    """Wrap plans as NAVSIM `Trajectory` objects and pickle the submission (atomically)."""
    from navsim_agent.devkit import Trajectory, TrajectorySampling

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give the .pkl file to write")
    if not first:
        raise ValueError("no stage-one predictions: refusing to write an empty submission")
    sampling = TrajectorySampling(time_horizon=4, interval_length=0.5)
    wrap = {k: Trajectory(np.asarray(v, dtype=np.float32), sampling) for k, v in first.items()}
    wrap2 = {k: Trajectory(np.asarray(v, dtype=np.float32), sampling) for k, v in second.items()}
    atomic_write_bytes(path, pickle.dumps(submission_dict(team, wrap, wrap2)))
    return path
