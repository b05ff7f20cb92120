"""Tiny hand-made scenes for the EPDMS tests: a straight road and a signalised junction, with exact geometry.

Straight road (x from -100 to 300 m): lanes L0 (centre y = 0) and L1 (y = 3.5) heading +x in roadblock RB0
(y in [-1.75, 5.25]); oncoming lane O0 (y = 7.0, heading -x) in RB1 (y in [5.25, 8.75]). The route is L0, so L0 and L1
(same roadblock) are on-route. The ego's rear axle starts at the origin heading +x. Time: 1.5 s of history and
4.5 s of future at 0.1 s (current_index 15).
"""

from __future__ import annotations

import numpy as np

from sim.scene import Agents, AgentType, Area, Lane, MapData, Route, Scene, TrafficLight, TrafficLightState

DT = 0.1
HIST = 15
FUT = 45
T = HIST + FUT + 1
LANE_W = 3.5


def _lane(lid, y, x0, x1, rb, heading=1, **kw) -> Lane:
    xs = np.linspace(x0, x1, int(abs(x1 - x0)) + 1)
    if heading < 0:
        xs = xs[::-1]
    c = np.stack([xs, np.full_like(xs, y)], axis=1)
    side = LANE_W / 2 * heading
    return Lane(lid, c, c + [0, side], c - [0, side], rb, **kw)


def _rect(x0, x1, y0, y1) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


def ego_log(speed: float = 10.0, accel: float = 0.0, y: float = 0.0, brake: float | None = None) -> np.ndarray:
    """Ego rows (T, 8) for straight driving along y with constant speed/accel (history included).

    With `brake` (m/s^2, positive) the logged human brakes from t = 0 to a stop instead.
    """
    t = (np.arange(T) - HIST) * DT
    v = speed + accel * t
    x = speed * t + 0.5 * accel * t**2
    a = np.full(T, accel)
    if brake is not None:
        fut = t > 0
        x[fut] = _brake(speed, -brake, t[fut])
        v[fut] = np.maximum(speed - brake * t[fut], 0.0)
        a[fut] = np.where(v[fut] > 0, -brake, 0.0)
    ego = np.zeros((T, 8))
    ego[:, 0], ego[:, 1], ego[:, 3], ego[:, 5] = x, y, v, a
    return ego


def agent_track(x0, y0, vx, heading=0.0, vy=0.0, ax=0.0) -> np.ndarray:
    """(T, 5) centre states of an agent moving at constant velocity (or accel ax along x), t = 0 at current_index."""
    t = (np.arange(T) - HIST) * DT
    st = np.zeros((T, 5))
    st[:, 0] = x0 + vx * t + 0.5 * ax * t**2
    st[:, 1] = y0 + vy * t
    st[:, 2] = heading
    st[:, 3] = vx + ax * t
    st[:, 4] = vy
    return st


def make_agents(specs: list[tuple[str, AgentType, tuple[float, float], np.ndarray]]) -> Agents:
    if not specs:
        return Agents.empty(T)
    ids = tuple(s[0] for s in specs)
    types = np.array([int(s[1]) for s in specs])
    sizes = np.array([[s[2][0], s[2][1], 1.5] for s in specs])
    states = np.stack([s[3] for s in specs])
    return Agents(ids, types, sizes, states, np.ones(states.shape[:2], dtype=bool))


def straight_road(agents=(), ego: np.ndarray | None = None, token: str = "straight", **meta) -> Scene:
    lanes = {
        "L0": _lane("L0", 0.0, -100, 300, "RB0", left_neighbor="L1"),
        "L1": _lane("L1", LANE_W, -100, 300, "RB0", right_neighbor="L0"),
        "O0": _lane("O0", 2 * LANE_W, -100, 300, "RB1", heading=-1),
    }
    roadblocks = {
        "RB0": Area("RB0", _rect(-100, 300, -LANE_W / 2, 1.5 * LANE_W), ("L0", "L1")),
        "RB1": Area("RB1", _rect(-100, 300, 1.5 * LANE_W, 2.5 * LANE_W), ("O0",)),
    }
    m = MapData(lanes, roadblocks)
    xs = np.arange(-100.0, 300.0 + 1e-9, 1.0)
    route = Route(("L0",), np.stack([xs, np.zeros_like(xs), np.zeros_like(xs)], axis=1))
    return Scene(
        token,
        "test",
        0,
        (np.arange(T) - HIST) * DT,
        HIST,
        m,
        make_agents(list(agents)),
        (),
        ego if ego is not None else ego_log(),
        route,
        metadata=dict(meta),
    )


def junction(light_state: TrafficLightState = TrafficLightState.RED, ego: np.ndarray | None = None) -> Scene:
    """Approach lane A (x < 0), intersection box x in [0, 20], connector C straight across, exit lane B (x > 20).

    The light on C is `light_state` throughout. The ego starts at x = -30 (rear axle) heading +x.
    """
    lanes = {
        "A": _lane("A", 0.0, -150, 0, "RBA", successors=("C",)),
        "C": _lane(
            "C", 0.0, 0, 20, "RBC", is_connector=True, predecessors=("A",), successors=("B",), traffic_light_id="TL"
        ),
        "B": _lane("B", 0.0, 20, 200, "RBB", predecessors=("C",)),
    }
    lanes["A"].successors = ("C",)
    roadblocks = {
        "RBA": Area("RBA", _rect(-150, 0, -LANE_W / 2, LANE_W / 2), ("A",)),
        "RBC": Area("RBC", _rect(0, 20, -LANE_W / 2, LANE_W / 2), ("C",)),
        "RBB": Area("RBB", _rect(20, 200, -LANE_W / 2, LANE_W / 2), ("B",)),
    }
    inter = {"I": Area("I", _rect(0, 20, -10, 10))}
    m = MapData(lanes, roadblocks, intersections=inter)
    xs = np.arange(-150.0, 200.0 + 1e-9, 1.0)
    route = Route(("A", "C", "B"), np.stack([xs, np.zeros_like(xs), np.zeros_like(xs)], axis=1))
    light = TrafficLight("TL", ("C",), np.full(T, int(light_state)), np.array([0.0, 3.0, 5.0]))
    if ego is None:
        ego = ego_log(10.0)
        ego[:, 0] -= 30.0
    return Scene("junction", "test", 0, (np.arange(T) - HIST) * DT, HIST, m, Agents.empty(T), (light,), ego, route)


def straight_plan(speed: float, y: float = 0.0, accel: float = 0.0) -> np.ndarray:
    """8 poses at 0.5 s in the ego frame for straight driving (optionally shifted laterally to y)."""
    t = np.arange(1, 9) * 0.5
    x = np.maximum(speed * t + 0.5 * accel * t**2, 0.0) if accel >= 0 else _brake(speed, accel, t)
    return np.stack([x, np.full(8, y), np.zeros(8)], axis=1)


def _brake(v0: float, a: float, t: np.ndarray) -> np.ndarray:
    t_stop = v0 / -a
    tc = np.minimum(t, t_stop)
    return v0 * tc + 0.5 * a * tc**2


def sim_states(xy: np.ndarray, heading: np.ndarray | float = 0.0, speed: np.ndarray | float = 0.0) -> np.ndarray:
    """(1, N, 11) state rows at given rear-axle positions (N, 2): for metric-level tests without the tracker."""
    n = len(xy)
    s = np.zeros((1, n, 11))
    s[0, :, 0:2] = xy
    s[0, :, 2] = heading
    s[0, :, 3] = speed
    return s
