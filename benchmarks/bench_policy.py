"""The paper's claim, measured: open-loop EPDMS (+ nine sub-metrics) on held-out scenes for CV, the expert, imitation
only, imitation + RWM reranking, RL(RWM) + RWM and RL(exact scorer) + RWM; the RWM's agreement figures and the cost of
one RL step with each reward. Prints (and optionally writes) JSON.

    python benchmarks/bench_policy.py --data runs/reproduce/data/heldout --il IL.safetensors --rwm RWM.safetensors \
        --rl-rwm RL.safetensors --rl-exact RLX.safetensors [--rwm-agreement J] [--rl-summaries S1 S2] [--out F]

Closed-loop driving scores need `irlvla drive` (the closed-loop runner), which this branch does not have yet; the
JSON says so instead of inventing a number.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from irlvla.atomic import atomic_write_json
from training.evaluate import evaluate_open_loop


def _rl_cost(path: str) -> dict:
    s = json.loads(Path(path).read_text())
    rows = s.get("last", {})
    return {
        "reward": s.get("rl", {}).get("reward"),
        "reward_seconds_per_step": s.get("reward_seconds_per_step"),
        "steps": s.get("steps"),
        "last_samples_per_s": rows.get("samples_per_s"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="held-out dataset (irlvla train data --split heldout)")
    p.add_argument("--max-samples", type=int, default=0)
    p.add_argument("--il", required=True)
    p.add_argument("--rwm", required=True, help="imitation checkpoint with the trained RWM")
    p.add_argument("--rl-rwm")
    p.add_argument("--rl-exact")
    p.add_argument("--rwm-agreement", help="heldout_agreement.json of `irlvla train rwm`")
    p.add_argument("--rl-summaries", nargs="*", default=[])
    p.add_argument("--out")
    args = p.parse_args(argv)
    t0 = time.time()
    policies = {"imitation": (args.il, False), "imitation+rwm": (args.rwm, True)}
    if args.rl_rwm:
        policies["rl_rwm+rwm"] = (args.rl_rwm, True)
    if args.rl_exact:
        policies["rl_exact+rwm"] = (args.rl_exact, True)
    res = evaluate_open_loop(args.data, policies, args.max_samples)
    r = res["results"]
    manifest = json.loads((Path(args.data) / "manifest.json").read_text())
    out = {
        "benchmark": "bench_policy",
        "data": args.data,
        "heldout_seed_range": manifest["seed_range"],
        "samples": res["samples"],
        "commands": "auto-labelled from the expert future (oracle VLM), the same for every learned policy",
        "open_loop": {k: {m: v for m, v in d.items() if m != "per_sample"} for k, d in r.items()},
        "delta_epdms_points": {
            k: round(100 * (r[k]["epdms"] - r["imitation"]["epdms"]), 2) for k in r if k not in ("imitation",)
        },
        "closed_loop": "not measured: the closed-loop runner (`irlvla drive`) is not on this branch",
        "rwm_agreement": json.loads(Path(args.rwm_agreement).read_text()) if args.rwm_agreement else None,
        "rl_step_cost": {Path(s).parent.name: _rl_cost(s) for s in args.rl_summaries},
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "wall_s": round(time.time() - t0, 1),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        atomic_write_json(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
