"""`irlvla model ...`: model summaries (parameters per module, main tensor shapes) without running the model.

The full preset is built on PyTorch's 'meta' device, so the summary costs no memory and never runs a forward pass.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from agent.config import PRESETS, ModelConfig, load_preset

logger = logging.getLogger(__name__)


def model_shapes(cfg: ModelConfig) -> dict[str, object]:
    """Main tensor shapes at batch 1, derived from the config (no forward pass)."""
    n, h, w = cfg.preprocess.num_cameras, cfg.preprocess.image_height, cfg.preprocess.image_width
    fh, fw = cfg.feature_hw
    s, d = cfg.bev.size, cfg.d_model
    k, p = cfg.planner.num_anchors, cfg.planner.num_poses
    seg = s * cfg.seg.upsample
    return {
        "images": [1, n, 3, h, w],
        "backbone_features": [[n, c, h // st, w // st] for c, st in zip(cfg.backbone.channels, cfg.backbone.strides)],
        "neck": [n, cfg.neck.out_channels, fh, fw],
        "depth_bins": cfg.bev.num_depth_bins,
        "frustum_points": n * cfg.bev.num_depth_bins * fh * fw,
        "bev": [1, cfg.bev.out_channels, s, s],
        "bev_cell_m": cfg.bev.resolution,
        "bev_range_m": cfg.bev.range_m,
        "bev_tokens": [1, s * s, d],
        "queries": {"ego": 1, "agents": cfg.detection.num_agents, "map": cfg.map.num_queries},
        "agent_boxes": [1, cfg.detection.num_agents, 7],
        "map_polylines": [1, cfg.map.num_queries, cfg.map.num_points, 2],
        "seg_logits": [1, len(cfg.seg.class_names), seg, seg],
        "ego_command_tokens": [1, 4, d],
        "anchors": [k, p, 3],
        "candidates": [1, k, p, 3],
        "inference_timesteps": list(cfg.planner.inference_timesteps),
        "rwm_submetrics": [1, k, 9],
        "speed_commands": cfg.num_speed_commands,
        "path_commands": cfg.num_path_commands,
    }


def model_summary(cfg: ModelConfig) -> dict[str, object]:
    """Parameters per module (built on 'meta': no memory, no forward) and the main shapes."""
    from agent.model.irlvla import build_model

    model = build_model(cfg, device="meta")
    counts = model.parameter_counts()
    stages = {}
    body = model.backbone.body
    for name, child in body.named_children():
        stages[name] = sum(p.numel() for p in child.parameters())
    return {
        "preset": cfg.name,
        "d_model": cfg.d_model,
        "backbone": cfg.backbone.variant,
        "parameters": counts,
        "backbone_parameters_by_stage": stages,
        "shapes": model_shapes(cfg),
    }


def _format(summary: dict) -> str:
    lines = [f"IRL-VLA model '{summary['preset']}' (backbone {summary['backbone']}, d_model {summary['d_model']})", ""]
    lines.append(f"{'module':<20}{'parameters':>16}")
    for name, count in summary["parameters"].items():
        lines.append(f"{name:<20}{count:>16,}")
    lines += ["", "shapes (batch 1):"]
    for name, shape in summary["shapes"].items():
        lines.append(f"  {name:<22}{shape}")
    return "\n".join(lines)


def _summary_cmd(args: argparse.Namespace) -> int:
    try:
        cfg = ModelConfig.load(args.config) if args.config else load_preset(args.preset)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = model_summary(cfg)
    print(json.dumps(summary, indent=2) if args.json else _format(summary))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("model", help="IRL-VLA model summaries")
    sub = parser.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    summary = sub.add_parser("summary", help="parameters per module and main shapes (no forward pass)")
    summary.add_argument("--preset", choices=PRESETS, default="full")
    summary.add_argument("--config", default="", help="a model config .yaml/.json instead of a preset")
    summary.add_argument("--json", action="store_true", help="print JSON")
    summary.set_defaults(func=_summary_cmd)
