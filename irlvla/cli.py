"""`irlvla` console script: one dispatcher, each room registers its own subcommands.

Rooms are imported lazily so `irlvla scenes ...` never pays for torch, and a missing optional
dependency only breaks the subcommand that needs it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# subcommand -> module exposing `register(subparsers)`; each module adds exactly that subcommand.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "scenes": ("sim.cli", "generate, inspect and render embedded-world scenes"),
    "epdms": ("navsim_eval.cli", "NAVSIM v2 EPDMS scoring of trajectories on scenes"),
    "navsim": ("navsim_agent.cli", "NAVSIM v2 agent: two-stage evaluation and submission"),
    "b2d": ("bench2drive_eval.cli", "Bench2Drive evaluation launcher and metrics"),
    "model": ("agent.cli", "IRL-VLA model summaries"),
    "drive": ("sim.closed_loop.cli", "closed-loop driving on the embedded world, scored like the leaderboard"),
    "export": ("agent.runtime.cli", "export the model to ONNX graphs and TensorRT engines"),
    "train": ("training.cli", "training: data, anchors, imitation, reward model, RL, VLM"),
    "demo": ("viz.demo", "the agent driving closed-loop with its HUD: videos, metrics and a report"),
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="irlvla", description="IRL-VLA driving agent toolkit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = None
    if argv:
        wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in SUBCOMMANDS.items():
        if wanted is not None and wanted != name and wanted in SUBCOMMANDS:
            sub.add_parser(name, help=help_text)
            continue
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return int(func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
