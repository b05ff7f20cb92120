"""The Intelligent Driver Model's acceleration, the one copy that every traffic and reference planner uses.

    a = a_max (1 - (v / v0)^delta - (s* / s)^2),   s* = s0 + v T + v (v - v_lead) / (2 sqrt(a_max b))

Users: the embedded world's followers (`sim.traffic`), NAVSIM's reactive agents (`navsim_eval.traffic`,
`navsim_eval.idm_navsim`) and the PDM-Closed reference (`navsim_eval.pdm_closed`). The official variants differ in
three places, which are parameters here:

- `exponent` (delta): 4 in nuPlan's agent IDM and Treiber's model; 10 in PDM-Closed's `BatchIDMPolicy.propagate`.
- `gap_floor`: the gap is clamped from below before dividing; nuPlan clamps at the minimum gap s0, the embedded world
  at a few centimetres (its stop lines are approached to within s0, so s0 is not a floor there).
- `clamp_dynamic_gap`: Treiber's form keeps the dynamic part of s* (v T + v dv / 2 sqrt(a b)) non-negative, so a
  faster lead never pulls the desired gap below s0; nuPlan does not.

Clipping, jerk limits and integration stay with the callers, which differ on purpose. The expressions are evaluated in
the callers' original order, so their cross-checked numbers are unchanged to the last bit.
"""

from __future__ import annotations

import numpy as np

#: nuPlan's agent IDM exponent (`IDMPolicy`), used by NAVSIM's reactive traffic; PDM-Closed's planner uses 10.
NUPLAN_AGENT_IDM_EXPONENT = 4.0


def idm_acceleration(
    speed: np.ndarray,
    target_speed: np.ndarray | float,
    gap: np.ndarray,
    lead_speed: np.ndarray | float,
    *,
    accel_max: np.ndarray | float,
    decel: np.ndarray | float,
    min_gap: np.ndarray | float,
    headway: np.ndarray | float,
    gap_floor: np.ndarray | float,
    exponent: np.ndarray | float = 4.0,
    clamp_dynamic_gap: bool = False,
) -> np.ndarray:
    """IDM acceleration (m/s^2), unclipped, broadcast over any shape.

    `gap` is the bumper-to-bumper distance to the lead (m); a non-finite gap is a free road (no interaction term).
    `lead_speed` is the lead's speed along the path (0 for a stop line). Parameters broadcast against `speed`.
    """
    b_term = 2.0 * np.sqrt(accel_max * decel)
    if clamp_dynamic_gap:
        s_star = min_gap + np.maximum(0.0, speed * headway + speed * (speed - lead_speed) / b_term)
    else:
        s_star = min_gap + speed * headway + speed * (speed - lead_speed) / b_term
    has_lead = np.isfinite(gap)
    safe_gap = np.maximum(np.where(has_lead, gap, 1.0), gap_floor)
    interaction = np.where(has_lead, (s_star / safe_gap) ** 2, 0.0)
    return accel_max * (1.0 - (speed / target_speed) ** exponent - interaction)
