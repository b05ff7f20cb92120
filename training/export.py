"""Ship a trained checkpoint: copy it into `weights/` and record how it was made in `weights/manifest.json`.

The manifest entry holds the sha256 and size, the resolved model config, the data splits' seed ranges and scores,
the exact commands with their wall times (`commands.tsv` written by scripts/reproduce_weights.sh), the pipeline's
elapsed wall time (`pipeline.tsv`; stages that ran at the same time overlap, so it is less than the sum) and the load
average sampled while it ran (`load.tsv`; the machine is shared), the machine, the benchmark and RWM figures when
the run has them (open loop, the planner's displacement errors, and the closed loop when `OUT/bench_closed_loop.json`
holds it), and what full-size training needs.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from pathlib import Path

import torch

from agent.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint, write_manifest_entry

MAX_BYTES = 25 * 1024 * 1024

FULL_SIZE_NOTE = (
    "Full size (preset 'full', NAVSIM navtrain): build the data through the NAVSIM agent's feature/target builders, "
    "anchors from NAVSIM's trajectory_anchors_8192.npy reduced to 20 (`irlvla train anchors --navsim`), imitation with "
    "`torchrun --nproc_per_node 8 -m irlvla.cli train il --preset full --device cuda` (bf16 autocast on; DiffVLA "
    "trained 30 epochs on 8 GPUs for about 45 min each), RWM labels over the vocabulary + policy samples + perturbed "
    "experts in a process pool on CPU nodes, then RWM and RL as here. Not run in this repository."
)


def _commands(run: Path) -> list[dict]:
    path = run / "commands.tsv"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        name, secs, cmd = line.split("\t", 2)
        rows.append({"stage": name, "wall_s": int(secs), "command": cmd.replace(str(run), "OUT")})
    return rows


def _elapsed(run: Path) -> int | None:
    """Wall time of the whole pipeline from its first start (stages that ran at the same time counted once)."""
    path = run / "pipeline.tsv"
    if not path.is_file():
        return None
    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    return int(rows[-1][1]) if rows else None


def _load(run: Path) -> dict | None:
    """The machine's 1-minute load average over the run (`load.tsv`: ISO time, then /proc/loadavg's first fields)."""
    path = run / "load.tsv"
    if not path.is_file():
        return None
    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    loads = [float(r[1].split()[0]) for r in rows]
    if not loads:
        return None
    return {
        "samples": len(loads),
        "first": rows[0][0],
        "last": rows[-1][0],
        "mean_1min": round(sum(loads) / len(loads), 2),
        "min_1min": min(loads),
        "max_1min": max(loads),
    }


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _planner_errors(run: Path) -> dict | None:
    """Displacement errors (m) of the planner before and after its stage (`irlvla train planner`'s summary)."""
    summary = _json(run / "planner" / "summary.json")
    if not summary:
        return None
    return {"before": summary.get("errors_before"), "after": summary.get("errors")}


def _closed_loop(run: Path) -> dict | None:
    """The closed-loop half of the benchmark, when it was run into `OUT/bench_closed_loop.json`."""
    bench = _json(run / "bench_closed_loop.json")
    return bench.get("closed_loop") if bench else None


def export_weights(run: str | Path, checkpoint: str | Path, out: str | Path, profile: str, note: str = "") -> dict:
    run, out = Path(run), Path(out)
    model = load_checkpoint(checkpoint)
    save_checkpoint(model, out, {"stage": "shipped", "source": Path(checkpoint).name})
    if out.stat().st_size > MAX_BYTES:
        raise ValueError(f"{out} is {out.stat().st_size} bytes, over the {MAX_BYTES} limit for shipped weights")
    cfg, _, meta = read_checkpoint(out)
    commands = _commands(run)
    data = {}
    for split in ("train", "heldout", "val"):
        m = _json(run / "data" / split / "manifest.json")
        if m:
            data[split] = {"seed_range": m["seed_range"], "samples": m["num_samples"], "scores": m["scores"]["kept"]}
            data[split]["all_frames"] = m["scores"]["all_frames"]
    bench = _json(run / "bench_policy.json")
    info = {
        "profile": profile,
        "config": json.loads(meta["config"]),
        "data": data,
        "commands": commands,
        "wall_s_stages_sum": sum(c["wall_s"] for c in commands),
        "wall_s_elapsed": _elapsed(run),
        "load_average": _load(run),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "benchmark_open_loop": bench["open_loop"] if bench else None,
        "benchmark_closed_loop": _closed_loop(run),
        "planner_displacement_errors": _planner_errors(run),
        "rwm_heldout_agreement": _json(run / "rwm" / "heldout_agreement.json"),
        "full_size": FULL_SIZE_NOTE,
        "note": note,
    }
    write_manifest_entry(out.parent / "manifest.json", out.stem, out, **info)
    if (run / "anchors.npy").is_file():
        shutil.copyfile(run / "anchors.npy", out.parent / "anchors.npy")
    return {"weights": str(out), "bytes": out.stat().st_size, "stages": len(commands)}


__all__ = ["export_weights"]
