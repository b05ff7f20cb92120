"""The leaderboard's agent interface: `AutonomousAgent` when the leaderboard is importable, otherwise a small local
base with the same contract.

It lives in the Bench2Drive harness because two rooms need it: the CARLA adapter (`team_code/`) subclasses it, and
the closed-loop world (`sim/closed_loop/`) serves it as the leaderboard module to agent files it loads by path. The
local base lets an agent be constructed and driven without CARLA's leaderboard. It
mirrors the Bench2Drive fork: `__init__(host, port, debug)` sets `track`, the two plans and `hero_actor`;
`set_global_plan` keeps the points `downsample_route(plan, 50)` keeps; `__call__` forces `manual_gear_shift = False`.
"""

from __future__ import annotations

import enum
import logging
import math

logger = logging.getLogger(__name__)

#: Bench2Drive's fork downsamples the global plan to one point per 50 m (upstream uses 200).
DOWNSAMPLE_DISTANCE = 50.0
_LANE_CHANGES = (5, 6)  # CHANGELANELEFT, CHANGELANERIGHT


def _option_value(option) -> int:
    return int(getattr(option, "value", option))


def downsample_route(route, sample_factor: float = DOWNSAMPLE_DISTANCE) -> list[int]:
    """Indices the leaderboard keeps: the first and last points, lane changes, option changes (unless leaving a lane
    change), and the first point after more than `sample_factor` metres travelled since the last kept one."""
    keep: list[int] = []
    prev = None
    dist = 0.0
    n = len(route)
    for i, (tf, option) in enumerate(route):
        cur = _option_value(option)
        if prev is None or cur in _LANE_CHANGES or (cur != prev and prev not in _LANE_CHANGES):
            keep.append(i)
            dist = 0.0
        elif dist > sample_factor or i == n - 1:
            keep.append(i)
            dist = 0.0
        else:
            a, b = tf.location, route[i - 1][0].location
            dist += math.sqrt((a.x - b.x) ** 2 + (a.y - b.y) ** 2 + (a.z - b.z) ** 2)
        prev = cur
    return keep


class Track(enum.Enum):
    SENSORS = "SENSORS"
    MAP = "MAP"
    SENSORS_QUALIFIER = "SENSORS_QUALIFIER"
    MAP_QUALIFIER = "MAP_QUALIFIER"


class LocalAutonomousAgent:
    """Stand-in for `leaderboard.autoagents.autonomous_agent.AutonomousAgent` (same attributes and call order)."""

    def __init__(self, carla_host: str = "localhost", carla_port: int = 2000, debug: bool = False) -> None:
        self.track = Track.SENSORS
        self._global_plan = None
        self._global_plan_world_coord = None
        self._plan_gps_HACK = None
        self.wallclock_t0 = None
        self.hero_actor = None
        self.debug = debug

    def setup(self, path_to_conf_file: str) -> None:  # pragma: no cover - overridden
        pass

    def sensors(self) -> list[dict]:  # pragma: no cover - overridden
        return []

    def run_step(self, input_data, timestamp):  # pragma: no cover - overridden
        raise NotImplementedError

    def destroy(self) -> None:  # pragma: no cover - overridden
        pass

    def __call__(self, input_data, timestamp: float = 0.0):
        control = self.run_step(input_data, timestamp)
        control.manual_gear_shift = False
        return control

    def set_global_plan(self, global_plan_gps, global_plan_world_coord) -> None:
        ids = downsample_route(global_plan_world_coord, DOWNSAMPLE_DISTANCE)
        self._global_plan_world_coord = [(global_plan_world_coord[i][0], global_plan_world_coord[i][1]) for i in ids]
        self._global_plan = [global_plan_gps[i] for i in ids]
        self._plan_gps_HACK = global_plan_gps


try:  # the real leaderboard (needs `carla` and `srunner` on the path)
    from leaderboard.autoagents.autonomous_agent import AutonomousAgent as _LeaderboardAgent
    from leaderboard.autoagents.autonomous_agent import Track as _LeaderboardTrack

    BaseAgent = _LeaderboardAgent
    AgentTrack = _LeaderboardTrack
    USING_LEADERBOARD = True
except ImportError:  # pragma: no cover - depends on the environment
    BaseAgent = LocalAutonomousAgent
    AgentTrack = Track
    USING_LEADERBOARD = False
