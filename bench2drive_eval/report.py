"""Human-readable output of the metrics: a markdown table in the paper's layout and a PNG of abilities/infractions."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

from bench2drive_eval.abilities import ABILITIES
from irlvla.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

_INFRACTION_LABELS = {
    "collisions_pedestrian": "Coll. ped.",
    "collisions_vehicle": "Coll. veh.",
    "collisions_layout": "Coll. layout",
    "red_light": "Red light",
    "stop_infraction": "Stop sign",
    "outside_route_lanes": "Off-lane (km)",
    "yield_emergency_vehicle_infractions": "Yield emerg.",
    "scenario_timeouts": "Scen. timeout",
    "route_dev": "Route dev.",
    "vehicle_blocked": "Blocked",
}


def _fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def markdown_table(metrics: dict, name: str = "agent") -> str:
    """Two tables as in the Bench2Drive paper: closed-loop metrics, then the multi-ability results."""
    ab = metrics.get("abilities") or {}
    lines = [
        "| Method | DS | SR (%) | Efficiency | Comfort |",
        "|---|---|---|---|---|",
        f"| {name} | {_fmt(metrics['driving_score'])} | {_fmt(metrics['success_rate'])} | "
        f"{_fmt(metrics['efficiency'])} | {_fmt(metrics['comfort'])} |",
        "",
        "| Method | " + " | ".join(a.replace("_", " ") for a in ABILITIES) + " | Mean |",
        "|---|" + "---|" * (len(ABILITIES) + 1),
        f"| {name} | " + " | ".join(_fmt(ab.get(a)) for a in ABILITIES) + f" | {_fmt(ab.get('mean'))} |",
    ]
    notes = metrics.get("notes") or []
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def plot_metrics(metrics: dict, path: str | os.PathLike, name: str = "agent") -> Path | None:
    """Bar charts of ability ratios and infractions per km; returns None (with a warning) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib not installed (pip install 'irlvla[viz]'); plot skipped")
        return None
    ab = metrics.get("abilities") or {}
    inf = metrics.get("infractions_per_km") or {}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    vals = [ab.get(a) or 0.0 for a in ABILITIES]
    ax1.bar([a.replace("_", "\n") for a in ABILITIES], vals, color="tab:blue")
    ax1.set_ylim(0, 100)
    ax1.set_ylabel("success (%)")
    ax1.set_title(f"{name}: abilities (mean {_fmt(ab.get('mean'))})")
    keys = [k for k in _INFRACTION_LABELS if k in inf]
    ax2.barh([_INFRACTION_LABELS[k] for k in keys], [inf[k] for k in keys], color="tab:red")
    ax2.set_xlabel("per km driven")
    ax2.set_title(f"infractions (DS {_fmt(metrics['driving_score'])}, SR {_fmt(metrics['success_rate'])} %)")
    fig.tight_layout()
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path
