"""`irlvla navsim`: an embedded navhard-style two-stage set, evaluation of the NAVSIM agent on it, and submission.

    irlvla navsim make-set --out SET [--families ...] [--seeds ...]
    irlvla navsim evaluate --set SET --out scores.csv [--checkpoint CKPT] [--workers N]
    irlvla navsim submit --set SET --out submission.pkl --team-name ... [--checkpoint CKPT]

`evaluate` runs `IRLVLAAgent` on every stage-one scene and stage-two follow-up (NAVSIM-shaped inputs rendered from the
embedded world), scores the plans with the reactive IDM traffic as navhard does, and writes NAVSIM's two-stage CSV
with its three summary rows. On real NAVSIM data use NAVSIM's own scripts with `agent=irlvla_agent` (README).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)


def _agent(args: argparse.Namespace):
    from navsim_agent.agent import IRLVLAAgent

    agent = IRLVLAAgent(checkpoint_path=args.checkpoint, preset=args.preset, device=args.device)
    agent.initialize()
    return agent


def _inputs(ts, width: int, height: int):
    from navsim_agent.embedded import agent_input_from_scene
    from navsim_eval.sceneindex import SceneIndex

    index = SceneIndex(ts.scenes)
    return lambda token: agent_input_from_scene(index.load(token), width=width, height=height)


def evaluate(
    set_dir: str | Path,
    out: str | Path,
    agent,
    workers: int = 1,
    reactive: bool = True,
    width: int = 352,
    height: int = 198,
):
    """Run `agent` on the whole two-stage set and score it; returns (token rows, CSV path, failed agent tokens)."""
    from navsim_agent.embedded import TwoStageSet
    from navsim_agent.submission import run_agent
    from navsim_eval.cli import check_out, run_score
    from navsim_eval.config import EpdmsConfig

    out = Path(out)
    check_out(out)
    ts = TwoStageSet.load(set_dir)
    plans, failed = run_agent(agent, [*ts.stage_one_tokens(), *ts.stage_two_tokens()], _inputs(ts, width, height))
    if not plans:
        raise ValueError(f"the agent failed on every token of {set_dir}; nothing to score")
    with tempfile.TemporaryDirectory(prefix="irlvla-navsim-") as tmp:
        traj = Path(tmp) / "plans.json"
        traj.write_text(json.dumps({k: v.tolist() for k, v in plans.items()}))
        rows, path = run_score(
            ts.scenes,
            traj,
            out,
            EpdmsConfig(reactive=reactive),
            ts.mapping_file,
            workers,
            "process" if workers > 1 else "serial",
        )
    return rows, path, failed


def _cmd_make_set(args: argparse.Namespace) -> int:
    from navsim_agent.embedded import make_two_stage_set
    from sim.scenarios import FAMILIES

    try:
        ts = make_two_stage_set(args.out, args.families or list(FAMILIES), args.seeds)
    except ValueError as exc:
        logger.error("%s", exc)
        return 2
    n2 = len(ts.stage_two_tokens())
    logger.info(
        "wrote %d groups (%d stage-one, %d stage-two tokens) to %s", len(ts.mapping), 2 * len(ts.mapping), n2, args.out
    )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from navsim_eval.cli import InternalScoringError

    try:
        rows, path, failed = evaluate(args.set, args.out, _agent(args), args.workers, not args.non_reactive)
    except (FileNotFoundError, ValueError) as exc:
        logger.error("%s", exc)
        return 2
    except InternalScoringError as exc:
        logger.error("%s", exc)
        return 3
    logger.log(logging.WARNING if failed else logging.INFO, "the agent failed on %d tokens; CSV %s", len(failed), path)
    return 0 if all(r.valid for r in rows) and not failed else 1


def _cmd_submit(args: argparse.Namespace) -> int:
    from navsim_agent.embedded import TwoStageSet
    from navsim_agent.submission import TeamInfo, run_agent, write_submission

    try:
        team = TeamInfo(args.team_name, tuple(args.authors), args.email, args.institution, args.country)
        if Path(args.out).is_dir() or Path(args.out).suffix != ".pkl":
            raise ValueError(f"--out {args.out}: give the .pkl file to write")
        ts = TwoStageSet.load(args.set)
        agent = _agent(args)
        inputs = _inputs(ts, 352, 198)
        first, f1 = run_agent(agent, ts.stage_one_tokens(), inputs)
        second, f2 = run_agent(agent, ts.stage_two_tokens(), inputs)
        if f1 or f2:
            logger.error(
                "the agent failed on %d tokens (first: %s); no submission written", len(f1) + len(f2), [*f1, *f2][:5]
            )
            return 1
        write_submission(args.out, team, first, second)
    except (FileNotFoundError, ValueError) as exc:
        logger.error("%s", exc)
        return 2
    logger.info("wrote %s (%d stage-one, %d stage-two predictions)", args.out, len(first), len(second))
    return 0


def _agent_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=None, help="safetensors checkpoint (default: the preset's seeded weights)")
    p.add_argument("--preset", default="tiny", help="model preset when no checkpoint is given")
    p.add_argument("--device", default="auto")


def register(subparsers) -> None:
    parser = subparsers.add_parser("navsim", help="NAVSIM v2 agent: two-stage evaluation and submission")
    sub = parser.add_subparsers(dest="navsim_command", metavar="ACTION")
    m = sub.add_parser("make-set", help="write an embedded navhard-style two-stage set (scenes + mapping.json)")
    m.add_argument("--out", required=True)
    m.add_argument("--families", nargs="*", default=None)
    m.add_argument("--seeds", nargs="*", type=int, default=[0])
    m.set_defaults(func=_cmd_make_set)
    e = sub.add_parser("evaluate", help="run the agent on a two-stage set and write NAVSIM's two-stage CSV")
    e.add_argument("--set", required=True, help="folder written by make-set")
    e.add_argument("--out", required=True, help="CSV to write")
    e.add_argument("--workers", type=int, default=1, help="scoring processes")
    e.add_argument("--non-reactive", action="store_true", help="log-replay traffic (navhard uses reactive IDM)")
    _agent_args(e)
    e.set_defaults(func=_cmd_evaluate)
    s = sub.add_parser("submit", help="write NAVSIM's submission pickle for a two-stage set")
    s.add_argument("--set", required=True)
    s.add_argument("--out", required=True, help="submission .pkl")
    s.add_argument("--team-name", required=True)
    s.add_argument("--authors", nargs="+", required=True)
    s.add_argument("--email", required=True)
    s.add_argument("--institution", required=True)
    s.add_argument("--country", required=True)
    _agent_args(s)
    s.set_defaults(func=_cmd_submit)

    def _help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=_help)
