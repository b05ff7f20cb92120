"""`irlvla train ...`: data, anchors, il, planner, rwm-labels, rwm, rl, vlm (docs/training.md has the full recipe).

Stage configs are the dataclasses of `training.config`, loaded strictly from an optional YAML (`--config`) with the
command-line flags on top; the resolved config is written beside every output.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from irlvla.configload import ConfigError, load_config, yaml_load

logger = logging.getLogger(__name__)


def _train_flags(p: argparse.ArgumentParser, steps: int, batch: int, lr: float) -> None:
    p.add_argument("--config", help="YAML of the stage's TrainConfig (flags below override it)")
    p.add_argument("--steps", type=int, default=None, help=f"optimisation steps (default {steps})")
    p.add_argument("--batch-size", type=int, default=None, help=f"samples per step and rank (default {batch})")
    p.add_argument("--lr", type=float, default=None, help=f"peak learning rate (default {lr})")
    p.add_argument("--warmup-steps", type=int, default=None)
    p.add_argument("--ema", type=float, default=None, help="EMA decay of the weights (0: off)")
    p.add_argument("--checkpoint-every", type=int, default=None)
    p.add_argument("--num-workers", type=int, default=None, help="DataLoader worker processes")
    p.add_argument("--device", default=None, help="auto | cpu | cuda[:N]")
    p.add_argument("--seed", type=int, default=None)
    speed = argparse.BooleanOptionalAction
    p.add_argument("--channels-last", action=speed, default=None, help="NHWC image backbone and neck (default off)")
    p.add_argument("--fused-adamw", action=speed, default=None, help="fused AdamW kernel, CUDA only (default on)")
    p.add_argument("--compile", action=speed, default=None, help="torch.compile the backbone and neck (default off)")
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT holds a training state")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(_defaults={"steps": steps, "batch_size": batch, "optim": {"lr": lr}})


def train_config(args: argparse.Namespace):
    from training.config import TrainConfig

    data = dict(args._defaults)
    data["optim"] = dict(data["optim"])
    data["speed"] = {}
    if args.config:
        loaded = yaml_load(Path(args.config).read_text()) or {}  # YAML 1.2 floats: `lr: 1e-4` is a number
        if not isinstance(loaded, dict):
            raise ConfigError(f"{args.config}: expected a mapping")
        data.update({k: v for k, v in loaded.items() if k not in ("optim", "speed")})
        data["optim"].update(loaded.get("optim") or {})
        data["speed"].update(loaded.get("speed") or {})
    for flag in ("channels_last", "fused_adamw", "compile"):
        if getattr(args, flag, None) is not None:
            data["speed"][flag] = getattr(args, flag)
    for flag, key in (("steps", "steps"), ("batch_size", "batch_size"), ("checkpoint_every", "checkpoint_every")):
        if getattr(args, flag) is not None:
            data[key] = getattr(args, flag)
    for flag in ("num_workers", "device", "seed"):
        if getattr(args, flag) is not None:
            data[flag] = getattr(args, flag)
    for flag, key in (("lr", "lr"), ("warmup_steps", "warmup_steps"), ("ema", "ema_decay")):
        if getattr(args, flag) is not None:
            data["optim"][key] = getattr(args, flag)
    return load_config(TrainConfig, data)


def _cmd_navsim_data(args: argparse.Namespace) -> int:
    from training import navsim_data as nd

    if not (args.navsim_logs and args.navsim_sensors and args.agent_config):
        raise SystemExit("irlvla train data --source navsim: give --navsim-logs, --navsim-sensors and --agent-config")
    nd.require_navsim()
    agent = nd.instantiate_agent(args.agent_config, args.agent_override)
    loader = nd.navsim_scene_loader(args.navsim_logs, args.navsim_sensors, agent.get_sensor_config(), args.max_scenes)
    source = {"logs": args.navsim_logs, "sensors": args.navsim_sensors, "agent_config": args.agent_config}
    manifest = nd.build_navsim_dataset(
        loader, agent.get_feature_builders(), agent.get_target_builders(), args.out, args.preset,
        args.shard_size or 32, args.max_scenes, dict(source, agent_overrides=args.agent_override), not args.no_progress,
    )  # fmt: skip
    print(json.dumps({k: manifest[k] for k in ("source", "num_scenes", "num_samples", "failed_scenes")}, indent=2))
    return 0 if not manifest["failed_scenes"] else 1


def _cmd_data(args: argparse.Namespace) -> int:
    from training.config import DataConfig
    from training.dataset import build_dataset

    if args.source == "navsim":
        return _cmd_navsim_data(args)

    fields = {"split": args.split, "num_scenes": args.scenes, "workers": args.workers, "preset": args.preset}
    fields.update(seed_offset=args.seed_offset, keep_trivial_fraction=args.keep_trivial)
    if args.families:
        fields["families"] = args.families.split(",")
    if args.shard_size:
        fields["shard_size"] = args.shard_size
    cfg = load_config(DataConfig, fields)
    manifest = build_dataset(cfg, args.out, progress=not args.no_progress)
    print(json.dumps({k: manifest[k] for k in ("split", "seed_range", "num_samples", "scores")}, indent=2))
    return 0 if not manifest["failed_scenes"] else 1


def _cmd_anchors(args: argparse.Namespace) -> int:
    from training.il import train_anchors

    if not args.data and not args.navsim:
        raise SystemExit("irlvla train anchors: give --data DIR or --navsim FILE.npy")
    print(json.dumps(train_anchors(args.data, args.out, args.k, args.seed, args.navsim), indent=2))
    return 0


def _cmd_il(args: argparse.Namespace) -> int:
    from training.il import train_il

    cfg = train_config(args)
    summary = train_il(
        args.data, args.out, cfg, args.preset, args.anchors, args.init, not args.no_resume, not args.no_progress
    )
    print(json.dumps(summary.get("last", {}), indent=2))
    return 0


def _cmd_planner(args: argparse.Namespace) -> int:
    from training.planner import train_planner

    cfg = train_config(args)
    summary = train_planner(
        args.data, args.checkpoint, args.out, cfg, args.eval_data, not args.no_resume, not args.no_progress
    )
    print(json.dumps({k: summary[k] for k in ("errors_before", "errors") if k in summary}, indent=2))
    return 0


def _cmd_rwm_labels(args: argparse.Namespace) -> int:
    from training.config import RWMLabelConfig
    from training.rwm import generate_labels

    cfg = load_config(
        RWMLabelConfig,
        {
            "perturbed_expert": args.perturbed,
            "policy_samples": args.policy_samples,
            "workers": args.workers,
            "max_samples": args.max_samples,
        },
    )
    info = generate_labels(args.data, args.checkpoint, cfg, args.out, progress=not args.no_progress)
    print(json.dumps(info, indent=2))
    return 0


def _cmd_rwm(args: argparse.Namespace) -> int:
    from training.config import RWMTrainConfig
    from training.rwm import evaluate_rwm, train_rwm

    cfg = train_config(args)
    objective = {"epdms_weight": args.epdms_weight, "rank_weight": args.rank_weight}
    rwm_cfg = load_config(RWMTrainConfig, dict(objective, rank_temperature=args.rank_temperature))
    summary = train_rwm(
        args.data, args.labels, args.checkpoint, args.out, cfg, not args.no_resume, not args.no_progress, rwm_cfg
    )
    if args.eval_data and args.eval_labels:
        summary["heldout"] = evaluate_rwm(summary["checkpoint"], args.eval_data, args.eval_labels, Path(args.out))
    print(json.dumps({k: summary[k] for k in ("last", "heldout") if k in summary}, indent=2))
    return 0


def _cmd_rl(args: argparse.Namespace) -> int:
    from training.config import RLConfig
    from training.rl import train_rl

    cfg = train_config(args)
    rl = {"reward": args.reward, "groups": args.groups, "bc_weight": args.bc_weight}
    rl.update(denoise_steps=args.denoise_steps, ppo_epochs=args.ppo_epochs, start_timestep=args.start_timestep)
    rl_cfg = load_config(RLConfig, rl)
    summary = train_rl(
        args.data, args.checkpoint, args.out, cfg, rl_cfg, not args.no_resume, not args.no_progress, args.trunk_cache
    )
    print(json.dumps(summary.get("last", {}), indent=2))
    return 0


def _cmd_vlm(args: argparse.Namespace) -> int:
    from training.vlm import train_vlm

    cfg = train_config(args)
    summary = train_vlm(args.data, args.out, cfg, args.eval_data, not args.no_resume, not args.no_progress)
    print(json.dumps({k: summary[k] for k in ("last", "eval") if k in summary}, indent=2))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from training.export import export_weights

    print(json.dumps(export_weights(args.run, args.checkpoint, args.out, args.profile, args.note), indent=2))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="training: data, anchors, imitation, reward model, RL, VLM")
    sub = p.add_subparsers(dest="train_command", metavar="STAGE", required=True)

    d = sub.add_parser("data", help="generate a dataset split from the embedded world (shards + index + manifest)")
    d.add_argument("--out", required=True)
    d.add_argument("--split", default="train", choices=("train", "val", "heldout"))
    d.add_argument("--scenes", type=int, default=44)
    d.add_argument("--seed-offset", type=int, default=0)
    d.add_argument("--families", default="", help="comma-separated scenario families (default: all)")
    d.add_argument("--keep-trivial", type=float, default=0.0, help="share of trivially solved frames kept")
    d.add_argument("--shard-size", type=int, default=0)
    d.add_argument("--workers", type=int, default=2)
    d.add_argument("--preset", default="tiny")
    d.add_argument("--no-progress", action="store_true")
    d.add_argument("--source", default="embedded", choices=("embedded", "navsim"), help="embedded world or NAVSIM logs")
    d.add_argument("--navsim-logs", help="NAVSIM log pickles folder (e.g. navsim_logs/trainval), --source navsim")
    d.add_argument("--navsim-sensors", help="NAVSIM sensor blobs folder (e.g. sensor_blobs/trainval)")
    d.add_argument("--agent-config", help="the NAVSIM agent's Hydra YAML, e.g. navsim_agent/irlvla_agent.yaml")
    d.add_argument("--agent-override", action="append", default=[], help="key=value for the agent config")
    d.add_argument("--max-scenes", type=int, default=0, help="NAVSIM scenes to convert (0: all)")
    d.set_defaults(func=_cmd_data)

    a = sub.add_parser("anchors", help="k-means trajectory vocabulary (or reduce NAVSIM's)")
    a.add_argument("--data")
    a.add_argument("--navsim", help="NAVSIM trajectory_anchors_*.npy to reduce instead")
    a.add_argument("--out", required=True)
    a.add_argument("--k", type=int, default=8)
    a.add_argument("--seed", type=int, default=0)
    a.set_defaults(func=_cmd_anchors)

    il = sub.add_parser("il", help="imitation pretraining with every loss (torchrun for DDP)")
    il.add_argument("--data", required=True)
    il.add_argument("--out", required=True)
    il.add_argument("--preset", default="tiny")
    il.add_argument("--anchors", help="anchors .npy from `irlvla train anchors`")
    il.add_argument("--init", help="start from this checkpoint instead")
    _train_flags(il, 200, 8, 6e-4)
    il.set_defaults(func=_cmd_il)

    pl = sub.add_parser("planner", help="train the planner alone on the imitation trunk's cached outputs")
    pl.add_argument("--data", required=True)
    pl.add_argument("--checkpoint", required=True, help="imitation checkpoint (trunk frozen)")
    pl.add_argument("--out", required=True)
    pl.add_argument("--eval-data", help="held-out split whose displacement errors are reported too")
    _train_flags(pl, 3000, 32, 2e-3)
    pl.set_defaults(func=_cmd_planner)

    rl_ = sub.add_parser("rwm-labels", help="EPDMS labels of candidates by the exact scorer (process pool)")
    rl_.add_argument("--data", required=True)
    rl_.add_argument("--out", required=True, help="labels .npz")
    rl_.add_argument("--checkpoint", help="policy whose samples are labelled too (and whose anchors are used)")
    rl_.add_argument("--perturbed", type=int, default=8)
    rl_.add_argument("--policy-samples", type=int, default=8)
    rl_.add_argument("--workers", type=int, default=2)
    rl_.add_argument("--max-samples", type=int, default=0, help="label this many samples, evenly spread (0: all)")
    rl_.add_argument("--no-progress", action="store_true")
    rl_.set_defaults(func=_cmd_rwm_labels)

    r = sub.add_parser("rwm", help="train the reward world model on rwm-labels; report held-out agreement")
    r.add_argument("--data", required=True)
    r.add_argument("--labels", required=True)
    r.add_argument("--checkpoint", required=True, help="imitation checkpoint (trunk frozen)")
    r.add_argument("--out", required=True)
    r.add_argument("--eval-data")
    r.add_argument("--eval-labels")
    r.add_argument("--epdms-weight", type=float, default=4.0, help="weight of the MSE on the predicted EPDMS")
    r.add_argument("--rank-weight", type=float, default=1.0, help="weight of the listwise ranking loss")
    r.add_argument("--rank-temperature", type=float, default=0.1)
    _train_flags(r, 200, 8, 1e-3)
    r.set_defaults(func=_cmd_rwm)

    g = sub.add_parser("rl", help="GRPO over the denoising chain against the RWM (or the exact scorer)")
    g.add_argument("--data", required=True)
    g.add_argument("--checkpoint", required=True, help="checkpoint with a trained RWM")
    g.add_argument("--out", required=True)
    g.add_argument("--reward", default="rwm", choices=("rwm", "exact"))
    g.add_argument("--groups", type=int, default=2)
    g.add_argument("--denoise-steps", type=int, default=4)
    g.add_argument("--start-timestep", type=int, default=20, help="timestep the stochastic chains start from")
    g.add_argument("--ppo-epochs", type=int, default=1)
    g.add_argument("--bc-weight", type=float, default=0.1)
    g.add_argument(
        "--trunk-cache",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="compute the frozen trunk's outputs once instead of every step (default on)",
    )
    _train_flags(g, 100, 4, 1e-4)
    g.set_defaults(func=_cmd_rl)

    e = sub.add_parser("export", help="copy a checkpoint into weights/ and write its manifest entry")
    e.add_argument("--run", required=True, help="the reproduce run folder (commands.tsv, data manifests)")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--out", required=True, help="e.g. weights/irlvla_b2d.safetensors")
    e.add_argument("--profile", default="full")
    e.add_argument("--note", default="")
    e.set_defaults(func=_cmd_export)

    v = sub.add_parser("vlm", help="fine-tune the tiny VLM command guidance on the auto-labelled commands")
    v.add_argument("--data", required=True)
    v.add_argument("--out", required=True)
    v.add_argument("--eval-data")
    _train_flags(v, 200, 8, 1e-3)
    v.set_defaults(func=_cmd_vlm)


__all__ = ["register", "train_config"]
