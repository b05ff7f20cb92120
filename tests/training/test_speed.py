"""Speed options of the training step: same losses and the same checkpoint keys with channels-last, compile wraps in
place (state-dict keys unchanged), fused AdamW only on CUDA, and the flags reach `TrainConfig.speed`."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from agent.checkpoint import load_checkpoint, save_checkpoint
from agent.config import load_preset
from agent.model.irlvla import build_model
from irlvla.cli import build_parser
from training.cli import train_config
from training.config import SpeedConfig
from training.dataset import collate
from training.features import synthetic_sample
from training.speed import apply_speed_options, build_optimizer


def test_channels_last_changes_strides_not_results(tmp_path):
    cfg = load_preset("tiny")
    batch = collate([synthetic_sample(cfg, np.random.default_rng(1))], cfg)
    plain, fast = build_model(cfg), build_model(cfg)
    keys = list(fast.state_dict())
    assert apply_speed_options(fast, SpeedConfig(channels_last=True)) == [
        "channels_last:backbone",
        "channels_last:neck",
    ]
    conv = next(m for m in fast.backbone.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    # the image modules' outputs agree to float precision (what the losses see; a Hungarian matching of random boxes
    # may flip on a last-bit difference, so losses are not compared)
    with torch.no_grad():
        outs = [m.eval().perceive(batch) for m in (plain, fast)]
    for key in ("bev", "depth", "seg_logits", "agent_tokens", "map_tokens"):
        torch.testing.assert_close(outs[1][key], outs[0][key], rtol=1e-3, atol=1e-4)
    assert list(fast.state_dict()) == keys
    path = save_checkpoint(fast, tmp_path / "m.safetensors")  # contiguous copies: the usual checkpoint
    loaded = load_checkpoint(path)
    for k, v in plain.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)


def test_compile_is_in_place_and_names_are_checked():
    model = build_model(load_preset("tiny"))
    keys = list(model.state_dict())
    done = apply_speed_options(model, SpeedConfig(compile=True))  # lazy: nothing compiles until the first call
    assert done == ["compile:backbone", "compile:neck"] and list(model.state_dict()) == keys
    assert model.backbone._compiled_call_impl is not None
    with pytest.raises(ValueError, match="does not have"):
        apply_speed_options(model, SpeedConfig(compile=True, compile_modules=("vit",)))
    with pytest.raises(ValueError, match="compile_mode"):
        SpeedConfig(compile_mode="fastest")


def test_fused_adamw_only_on_cuda(caplog):
    params = [torch.nn.Parameter(torch.zeros(3))]
    with caplog.at_level(logging.INFO, logger="training.speed"):
        opt = build_optimizer(params, 1e-3, 0.0, True, torch.device("cpu"))
    assert not opt.param_groups[0]["fused"] and "CUDA only" in caplog.text


def test_speed_flags_reach_the_train_config(tmp_path):
    parser = build_parser(["train"])
    args = parser.parse_args(["train", "il", "--data", "d", "--out", "o", "--channels-last", "--no-fused-adamw"])
    speed = train_config(args).speed
    assert (speed.channels_last, speed.fused_adamw, speed.compile) == (True, False, False)
    default = train_config(parser.parse_args(["train", "il", "--data", "d", "--out", "o"])).speed
    assert default == SpeedConfig()
    yaml = tmp_path / "il.yaml"
    yaml.write_text("optim: {lr: 1e-4}\nspeed: {compile: true, compile_modules: [backbone]}\n")
    cfg = train_config(parser.parse_args(["train", "il", "--data", "d", "--out", "o", "--config", str(yaml)]))
    assert cfg.optim.lr == 1e-4 and cfg.speed.compile and cfg.speed.compile_modules == ("backbone",)
