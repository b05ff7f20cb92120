"""Closed-loop driving in the embedded world: a CARLA-free leaderboard stand-in that runs any Bench2Drive agent file
and scores it with the leaderboard's criteria and Bench2Drive's metrics.

    from sim.closed_loop import RouteSpec, RunnerConfig, run_route
    result = run_route(RouteSpec(9000, "cut_in", 900_001), "expert", RunnerConfig(), on_tick=print)

Modules: `dynamics` (Lincoln MKZ 2020 response), `world` (living traffic), `route` (routes and plans), `sensors`
(input_data), `criteria` (infractions and scores), `agents` (reference agents, agent loading), `runner` (one route),
`suites` (versioned route suites and the reserved seed ranges), `evaluate` (a whole run: checkpoint, resume, summary),
`record` (MP4 videos), `compare` (several agents over the same routes: DS, SR, infractions each).
"""

from sim.closed_loop.route import Route, RouteSpec, build_route
from sim.closed_loop.runner import RouteResult, RunnerConfig, TickInfo, run_route

__all__ = ["Route", "RouteResult", "RouteSpec", "RunnerConfig", "TickInfo", "build_route", "run_route"]
