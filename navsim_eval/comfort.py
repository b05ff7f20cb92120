"""History comfort (HC) and two-frame extended comfort (EC), as `pdm_comfort_metrics.py` computes them.

Derivatives are Savitzky-Golay filters over the state sequence treated as equally spaced at 0.1 s. The centre
acceleration copies NAVSIM's `get_acceleration_shifted` literally: the rear-axle-to-centre displacement (d, 0) adds
d * (yaw_rate^2 + yaw_accel) to the longitudinal component and nothing to the lateral one.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import savgol_filter

from navsim_eval.config import ScorerConfig
from navsim_eval.simulation import S_AX, S_AY, S_HEADING, S_VX, S_VY, S_X, S_Y, S_YAW_ACCEL, S_YAW_RATE, STATE_DIM
from sim.scene import EGO_AX, EGO_AY, EGO_HEADING, EGO_VX, EGO_VY, EGO_X, EGO_Y, Scene

_DECIMALS = 8


@lru_cache(maxsize=64)
def _savgol_matrix(n: int, window: int, poly: int, deriv: int, delta: float) -> np.ndarray:
    """scipy's `savgol_filter` (mode "interp") over sequences of length n as one (n, n) matrix.

    The filter is linear in the signal (a convolution inside, least-squares polynomial fits over the edge windows),
    so filtering the identity once gives the operator; a matrix product then replaces scipy's per-call edge fits,
    which dominated the comfort metrics of small batches.
    """
    m = savgol_filter(np.eye(n), window_length=window, polyorder=poly, deriv=deriv, delta=delta, axis=0)
    m.setflags(write=False)
    return m


def _savgol(y: np.ndarray, window: int, poly: int, deriv: int = 0, delta: float = 1.0) -> np.ndarray:
    """`savgol_filter(y, window, poly, deriv, delta, axis=-1)` via `_savgol_matrix`."""
    return y @ _savgol_matrix(y.shape[-1], window, poly, deriv, float(delta)).T


def _acceleration(states: np.ndarray, coord: str, d: float) -> np.ndarray:
    if coord == "x":
        a = states[..., S_AX] + d * states[..., S_YAW_RATE] ** 2 + d * states[..., S_YAW_ACCEL]
    elif coord == "y":
        a = states[..., S_AY].copy()
    else:
        a = np.hypot(states[..., S_AX], states[..., S_AY])
    n = states.shape[-2]
    a = _savgol(a, min(8, n), 2)
    return np.round(a, _DECIMALS)


def _derivative(y: np.ndarray, dt: float, deriv: int, poly: int, window: int) -> np.ndarray:
    window = min(window, y.shape[-1])
    if not poly < window:
        raise ValueError(f"Savitzky-Golay needs poly_order {poly} < window {window}")
    return _savgol(y, window, poly, deriv, dt)


def _jerk(states: np.ndarray, coord: str, d: float, dt: float) -> np.ndarray:
    return np.round(_derivative(_acceleration(states, coord, d), dt, 1, 2, 15), _DECIMALS)


def _phase_unwrap(h: np.ndarray) -> np.ndarray:
    adj = np.zeros_like(h)
    adj[..., 1:] = np.cumsum(np.round(np.diff(h, axis=-1) / (2 * np.pi)), axis=-1)
    return h - 2 * np.pi * adj


def _yaw_derivative(states: np.ndarray, dt: float, deriv: int, poly: int) -> np.ndarray:
    # NAVSIM's `_extract_ego_yaw_rate` takes window_length=15 but never passes it on, so the Savitzky-Golay window is
    # `_approximate_derivatives`' default of 5 (found by the cross-check against navsim)
    return np.round(_derivative(_phase_unwrap(states[..., S_HEADING]), dt, deriv, poly, 5), _DECIMALS)


def _within(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.all((v > lo) & (v < hi), axis=-1)


def comfort_flags(states: np.ndarray, cfg: ScorerConfig, d: float, dt: float = 0.1) -> np.ndarray:
    """Six within-bound flags (K, 6): lon accel, lat accel, jerk, lon jerk, yaw accel, yaw rate."""
    return np.stack(
        [
            _within(_acceleration(states, "x", d), cfg.min_lon_accel, cfg.max_lon_accel),
            _within(_acceleration(states, "y", d), -cfg.max_abs_lat_accel, cfg.max_abs_lat_accel),
            _within(_jerk(states, "magnitude", d, dt), -cfg.max_abs_mag_jerk, cfg.max_abs_mag_jerk),
            _within(_jerk(states, "x", d, dt), -cfg.max_abs_lon_jerk, cfg.max_abs_lon_jerk),
            _within(_yaw_derivative(states, dt, 2, 3), -cfg.max_abs_yaw_accel, cfg.max_abs_yaw_accel),
            _within(_yaw_derivative(states, dt, 1, 2), -cfg.max_abs_yaw_rate, cfg.max_abs_yaw_rate),
        ],
        axis=-1,
    )


def history_states(scene: Scene, cfg: ScorerConfig, dt: float = 0.1) -> np.ndarray:
    """The human's past as state rows at -1.5 ... -0.2 s (14 states), as the metric cache's past trajectory gives.

    With `navsim_2hz_agents` the log is read at -1.5, -1.0, -0.5 and 0 s and interpolated linearly (heading
    unwrapped); the `[:-1]` after an end-exclusive range drops -0.1 s (spec section 8.1). Steering, yaw rate and yaw
    acceleration are not interpolated by nuPlan's split state and stay zero.
    """
    stride = int(round((0.5 if cfg.navsim_2hz_agents else dt) / scene.dt))
    n_back = int(round(cfg.history_s / scene.dt))
    first = scene.current_index - n_back
    if first < 0:
        raise ValueError(
            f"scene {scene.token}: needs {cfg.history_s} s of ego history, has {scene.current_index * scene.dt:.1f} s"
        )
    idx = np.arange(first, scene.current_index + 1, stride)
    times = (idx - scene.current_index) * scene.dt
    cols = [EGO_X, EGO_Y, EGO_HEADING, EGO_VX, EGO_VY, EGO_AX, EGO_AY]
    src = scene.ego[idx][:, cols].copy()
    src[:, 2] = np.unwrap(src[:, 2])
    query = -cfg.history_s + np.arange(int(round(cfg.history_s / dt))) * dt  # -1.5 .. -0.1 (end excluded)
    query = query[:-1]  # the official [:-1]: -1.5 .. -0.2
    out = np.zeros((len(query), STATE_DIM))
    for j, c in enumerate([S_X, S_Y, S_HEADING, S_VX, S_VY, S_AX, S_AY]):
        out[:, c] = np.interp(query, times, src[:, j])
    out[:, S_HEADING] = np.arctan2(np.sin(out[:, S_HEADING]), np.cos(out[:, S_HEADING]))
    return out


def history_comfort(states: np.ndarray, history: np.ndarray | None, cfg: ScorerConfig, d: float) -> np.ndarray:
    """HC per proposal: comfort bounds over [history, simulated states] as one equally spaced sequence."""
    if history is None:
        return np.ones(states.shape[0])
    padded = np.concatenate([np.broadcast_to(history, (states.shape[0],) + history.shape), states], axis=1)
    return np.where(comfort_flags(padded, cfg, d).all(axis=-1), 1.0, 0.0)


def _ec_features(states: np.ndarray, d: float, dt: float) -> tuple[np.ndarray, ...]:
    return (
        _acceleration(states, "magnitude", d),
        _jerk(states, "magnitude", d, dt),
        _yaw_derivative(states, dt, 1, 2),
        _yaw_derivative(states, dt, 2, 2),
    )


def two_frame_extended_comfort(
    current: np.ndarray, previous: np.ndarray, cfg: ScorerConfig, d: float, dt: float = 0.1
) -> np.ndarray:
    """EC per proposal: RMS differences between this frame's states (K, T, 11) and the frame 0.5 s earlier (T, 11)
    or (K, T, 11) over their overlap (current[:-5] against previous[5:])."""
    off = int(round(cfg.ec_frame_offset_s / dt))
    cur = current[:, :-off]
    prev = np.broadcast_to(previous, current.shape)[:, off:]
    f1, f2 = _ec_features(cur, d, dt), _ec_features(prev, d, dt)
    rms = [np.sqrt(np.mean((a - b) ** 2, axis=-1)) for a, b in zip(f1, f2)]
    ok = (
        (rms[0] <= cfg.ec_acceleration_threshold)
        & (rms[1] <= cfg.ec_jerk_threshold)
        & (rms[2] <= cfg.ec_yaw_rate_threshold)
        & (rms[3] <= cfg.ec_yaw_accel_threshold)
    )
    return np.where(ok, 1.0, 0.0)


__all__ = ["comfort_flags", "history_comfort", "history_states", "two_frame_extended_comfort"]
