"""The paper's claim, measured: open-loop EPDMS (+ nine sub-metrics) on held-out scenes and closed-loop driving scores
on held-out routes for CV, the expert, imitation only, imitation + RWM reranking, RL(RWM) + RWM and RL(exact scorer)
+ RWM; the RWM's agreement figures and the cost of one RL step with each reward. Prints (and optionally writes) JSON.

    python benchmarks/bench_policy.py --data runs/reproduce/data/heldout --il IL.safetensors --rwm RWM.safetensors \
        --rl-rwm RL.safetensors --rl-exact RLX.safetensors [--rwm-agreement J] [--rl-summaries S1 S2] [--out F] \
        [--closed-loop-routes N|all --closed-loop-out DIR [--closed-loop-seed S] [--closed-loop-workers W]
         [--agent-config YAML]]

Closed loop (`--closed-loop-routes`; off by default, it takes minutes per route on a CPU): every learned policy is
driven by the same leaderboard agent (`team_code/irlvla_b2d_agent.py`) with a config derived from `--agent-config`
(its checkpoint swapped in, RWM reranking on, or off for "imitation only"), the expert and constant velocity by the
runner's reference agents, all over the same routes of the held-out suite (`all`, or N drawn with the seed, families
in turn: `sim.closed_loop.compare.route_subset`). Each policy's run folder under `--closed-loop-out` resumes when
the command is rerun; `irlvla b2d metrics --results DIR/<policy>` reads it. DS and SR are over the routes driven.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from irlvla.atomic import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
AGENT_FILE = ROOT / "team_code" / "irlvla_b2d_agent.py"
DEFAULT_AGENT_CONFIG = ROOT / "configs" / "b2d_agent.yaml"


def _rl_cost(path: str) -> dict:
    s = json.loads(Path(path).read_text())
    rows = s.get("last", {})
    return {
        "reward": s.get("rl", {}).get("reward"),
        "reward_seconds_per_step": s.get("reward_seconds_per_step"),
        "steps": s.get("steps"),
        "last_samples_per_s": rows.get("samples_per_s"),
    }


def _policies(args) -> dict[str, tuple[str, bool]]:
    """name -> (checkpoint, RWM reranking), the learned policies of both halves."""
    policies = {"imitation": (args.il, False), "imitation+rwm": (args.rwm, True)}
    if args.rl_rwm:
        policies["rl_rwm+rwm"] = (args.rl_rwm, True)
    if args.rl_exact:
        policies["rl_exact+rwm"] = (args.rl_exact, True)
    return policies


def _folder_name(name: str) -> str:
    return name.replace("+", "_plus_")


def agent_config_for(base: Path, checkpoint: str, rerank: bool, dest: Path) -> Path:
    """Write `dest`: the agent config `base` with `checkpoint` (absolute) and the reranking switch set."""
    import dataclasses

    import yaml

    from team_code.config import AgentConfig

    cfg = dataclasses.replace(
        AgentConfig.from_yaml(base), checkpoint=str(Path(checkpoint).resolve()), rerank=rerank, policy_entry_point=None
    )
    text = f"# bench_policy: {base} with checkpoint {checkpoint}, rerank {rerank}\n" + yaml.safe_dump(
        cfg.to_dict(), sort_keys=False
    )
    atomic_write_text(dest, text)
    AgentConfig.from_yaml(dest)  # what the agent will read must load
    return dest


def closed_loop(args, policies: dict[str, tuple[str, bool]]) -> dict:
    """Drive CV, the expert and every learned policy over the same held-out routes; DS, SR, infractions each."""
    from sim.closed_loop.compare import AgentRun, compare_agents, route_subset
    from sim.closed_loop.criteria import CriteriaConfig
    from sim.closed_loop.runner import RunnerConfig
    from sim.closed_loop.suites import SUITE_VERSION, load_suite

    specs, route_file, _ = load_suite(args.closed_loop_suite)
    n = None if args.closed_loop_routes == "all" else int(args.closed_loop_routes)
    subset = route_subset(specs, n, args.closed_loop_seed, suite=f"{args.closed_loop_suite}_v{SUITE_VERSION}")
    out = Path(args.closed_loop_out)
    runs = [AgentRun("constant_velocity", "constant-velocity"), AgentRun("expert", "expert")]
    for name, (ckpt, rerank) in policies.items():
        cfg = agent_config_for(Path(args.agent_config), ckpt, rerank, out / "configs" / f"{_folder_name(name)}.yaml")
        runs.append(AgentRun(_folder_name(name), str(AGENT_FILE), str(cfg)))
    criteria = CriteriaConfig() if not args.closed_loop_tick_cap else CriteriaConfig(tick_cap=args.closed_loop_tick_cap)
    results = compare_agents(
        runs, subset.specs, out, RunnerConfig(criteria=criteria), route_file=route_file,
        workers=args.closed_loop_workers,
    )  # fmt: skip
    by_name = {run.name: name for run, name in zip(runs, ["constant_velocity", "expert", *policies])}
    per_policy = {by_name[k]: v for k, v in results.items()}
    base = per_policy.get("imitation", {}).get("driving_score")
    return {
        "suite": args.closed_loop_suite,
        "suite_version": SUITE_VERSION,
        "routes": subset.name,
        "route_ids": [s.route_id for s in subset.specs],
        "families": [s.family for s in subset.specs],
        "agent_file": str(AGENT_FILE.relative_to(ROOT)),
        "base_agent_config": str(args.agent_config),
        "tick_cap": args.closed_loop_tick_cap or None,
        "scoring": "DS and SR over the routes driven (irlvla b2d metrics --actual-count)",
        "policies": per_policy,
        "delta_driving_score": {
            k: round(v["driving_score"] - base, 3)
            for k, v in per_policy.items()
            if base is not None and k != "imitation"
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", help="held-out dataset (irlvla train data --split heldout); needed for the open loop")
    p.add_argument("--max-samples", type=int, default=0)
    p.add_argument("--il", required=True)
    p.add_argument("--rwm", required=True, help="imitation checkpoint with the trained RWM")
    p.add_argument("--rl-rwm")
    p.add_argument("--rl-exact")
    p.add_argument("--rwm-agreement", help="heldout_agreement.json of `irlvla train rwm`")
    p.add_argument("--rl-summaries", nargs="*", default=[])
    p.add_argument("--out")
    p.add_argument("--no-open-loop", action="store_true", help="closed loop only (no --data needed)")
    cl = p.add_argument_group("closed loop")
    cl.add_argument("--closed-loop-routes", help="N routes of the suite drawn with --closed-loop-seed, or 'all'")
    cl.add_argument("--closed-loop-suite", default="heldout", help="heldout (default), dev, or a route XML")
    cl.add_argument("--closed-loop-seed", type=int, default=0)
    cl.add_argument(
        "--closed-loop-workers", type=int, default=1, help="policies driven at the same time, one process each"
    )
    cl.add_argument("--closed-loop-out", help="run folders, one per policy (rerun to resume)")
    cl.add_argument("--agent-config", default=str(DEFAULT_AGENT_CONFIG), help="base config of the learned policies")
    cl.add_argument("--closed-loop-tick-cap", type=int, default=0, help="end each route after N ticks (smoke runs)")
    args = p.parse_args(argv)
    if not args.no_open_loop and not args.data:
        p.error("--data is required for the open loop (or pass --no-open-loop)")
    if args.closed_loop_routes is not None:
        if args.closed_loop_routes != "all" and not (
            args.closed_loop_routes.isdigit() and int(args.closed_loop_routes)
        ):
            p.error(f"--closed-loop-routes must be a positive integer or 'all', got {args.closed_loop_routes!r}")
        if not args.closed_loop_out:
            p.error("--closed-loop-routes needs --closed-loop-out (one run folder per policy)")
    t0 = time.time()
    policies = _policies(args)
    out: dict = {"benchmark": "bench_policy"}
    if not args.no_open_loop:
        from training.evaluate import evaluate_open_loop

        res = evaluate_open_loop(args.data, policies, args.max_samples)
        r = res["results"]
        manifest = json.loads((Path(args.data) / "manifest.json").read_text())
        out.update(
            {
                "data": args.data,
                "heldout_seed_range": manifest["seed_range"],
                "samples": res["samples"],
                "commands": "auto-labelled from the expert future (oracle VLM), the same for every learned policy",
                "open_loop": {k: {m: v for m, v in d.items() if m != "per_sample"} for k, d in r.items()},
                "delta_epdms_points": {
                    k: round(100 * (r[k]["epdms"] - r["imitation"]["epdms"]), 2) for k in r if k not in ("imitation",)
                },
            }
        )
    else:
        out["open_loop"] = "not measured (--no-open-loop)"
    out["closed_loop"] = (
        closed_loop(args, policies)
        if args.closed_loop_routes is not None
        else "not measured: pass --closed-loop-routes N|all --closed-loop-out DIR (minutes per route on a CPU)"
    )
    out.update(
        {
            "rwm_agreement": json.loads(Path(args.rwm_agreement).read_text()) if args.rwm_agreement else None,
            "rl_step_cost": {Path(s).parent.name: _rl_cost(s) for s in args.rl_summaries},
            "machine": {"platform": platform.platform(), "python": platform.python_version()},
            "wall_s": round(time.time() - t0, 1),
        }
    )
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        atomic_write_json(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
