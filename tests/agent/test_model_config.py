"""Model configs: presets, validation, YAML/JSON round trips, and the command vocabulary against the seed paper."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from agent.config import ModelConfig, PlannerConfig, PreprocessConfig, SegConfig, load_preset
from agent.types import PATH_PLAN_COMMANDS, SPEED_PLAN_COMMANDS
from irlvla.configload import ConfigError

SEED = Path(__file__).resolve().parents[2] / ".." / "shared" / "seed" / "IRL-VLA-supplementary.txt"


@pytest.mark.parametrize("name", ["full", "tiny"])
def test_presets_load_and_round_trip(name, tmp_path):
    cfg = load_preset(name)
    assert cfg.name == name
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    assert ModelConfig.from_yaml(cfg.to_yaml()) == cfg
    for suffix in (".json", ".yaml"):
        path = cfg.save(tmp_path / f"cfg{suffix}")
        assert ModelConfig.load(path) == cfg


def test_full_preset_is_the_paper_setting():
    cfg = load_preset("full")
    assert (cfg.preprocess.image_height, cfg.preprocess.image_width) == (256, 704)
    assert cfg.preprocess.num_cameras == 6
    assert cfg.backbone.variant == "ese_vovnet99b"
    # V-99: blocks per stage 1, 3, 9, 3 with 5 layers each; resolved from timm into the saved config
    assert cfg.backbone.block_per_stage == (1, 3, 9, 3)
    assert cfg.backbone.stage_out_chs == (256, 512, 768, 1024)
    assert (cfg.bev.size, cfg.bev.range_m, cfg.bev.resolution) == (128, 64.0, 0.5)
    assert cfg.bev.num_depth_bins == 118  # arange(1, 60, 0.5)
    assert cfg.detection.num_agents == 30
    assert len(cfg.seg.class_names) == 7
    assert cfg.planner.inference_timesteps == (8, 0)
    assert cfg.feature_hw == (16, 44)


def test_command_vocabulary_matches_the_seed():
    if not SEED.is_file():
        pytest.skip("shared seed text not available")
    text = SEED.read_text()
    speed = re.search(r"Speed Plan Command:\s*(.+)", text)[1]
    path = re.search(r"Path Plan Command:\s*(.+)", text)[1]
    assert tuple(s.strip() for s in speed.split(",")) == SPEED_PLAN_COMMANDS
    assert tuple(s.strip() for s in path.split(",")) == PATH_PLAN_COMMANDS
    cfg = load_preset("tiny")
    assert (cfg.num_speed_commands, cfg.num_path_commands) == (13, 9)


def test_unknown_field_is_named():
    data = load_preset("tiny").to_dict()
    data["planner"]["num_anchorz"] = 3
    with pytest.raises(ValueError, match="num_anchorz"):
        ModelConfig.from_dict(data)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: PreprocessConfig(image_height=250), "divisible by 32"),
        (lambda: PlannerConfig(num_inference_steps=20, infer_start_timestep=8), "inference steps"),
        (lambda: PlannerConfig(x_range=(5.0, 1.0)), "x_range"),
        (lambda: SegConfig(drivable_classes=("lava",)), "lava"),
        (lambda: load_preset("tiny", d_model=30), "divisible by num_heads"),
        (lambda: load_preset("huge"), "unknown model preset"),
        (lambda: load_preset("tiny", backbone={"variant": "resnet50"}), "resnet50"),
    ],
)
def test_validation_errors(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_overrides_merge_sections():
    cfg = load_preset("tiny", planner={"num_anchors": 5})
    assert cfg.planner.num_anchors == 5
    assert cfg.planner.num_layers == load_preset("tiny").planner.num_layers


def test_inference_timesteps():
    assert PlannerConfig(infer_start_timestep=10, num_inference_steps=2).inference_timesteps == (10, 0)
    assert PlannerConfig(infer_start_timestep=8, num_inference_steps=3).inference_timesteps == (8, 4, 0)
    assert PlannerConfig(infer_start_timestep=8, num_inference_steps=1).inference_timesteps == (8,)


def test_malformed_config_files_are_value_errors(tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("planner: {num_anchors: [1, 2\n")
    with pytest.raises(ValueError, match="malformed"):
        ModelConfig.load(bad_yaml)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"planner": ')
    with pytest.raises(ValueError):
        ModelConfig.load(bad_json)


@pytest.mark.parametrize(
    "section, key, value, where",
    [
        ("backbone", "depthwise", "no", "ModelConfig.backbone.depthwise must be bool"),
        ("backbone", "depthwise", "false", "ModelConfig.backbone.depthwise must be bool"),
        ("rwm", "detach_inputs", 0, "ModelConfig.rwm.detach_inputs must be bool"),
        ("planner", "num_anchors", 20.0, "ModelConfig.planner.num_anchors must be int"),
        ("bev", "size", "128", "ModelConfig.bev.size must be int"),
        ("bev", "range_m", "64", "ModelConfig.bev.range_m must be float"),
        ("bev", "range_m", True, "ModelConfig.bev.range_m must be float"),
        ("preprocess", "crop", 1, "ModelConfig.preprocess.crop must be str"),
        ("preprocess", "mean", [0.5, 0.5], "ModelConfig.preprocess.mean must have 3 items"),
        ("preprocess", "camera_names", "CAM_FRONT", "ModelConfig.preprocess.camera_names must be a list"),
        ("vlm", "background", "yes", "ModelConfig.vlm.background must be bool"),
    ],
)
def test_wrong_types_are_errors_naming_the_field(section, key, value, where):
    data = load_preset("tiny").to_dict()
    data[section][key] = value
    with pytest.raises(ConfigError) as err:
        ModelConfig.from_dict(data)
    assert str(err.value).startswith(where)


def test_yaml_exponent_floats_are_numbers(tmp_path):
    path = tmp_path / "cfg.yaml"
    data = load_preset("tiny").to_dict()
    path.write_text(yaml.safe_dump(data).replace("focal_gamma: 2.0", "focal_gamma: 2e0"))
    assert ModelConfig.load(path).planner.focal_gamma == 2.0
    path.write_text(yaml.safe_dump(data).replace("d_model: 32", "d_model: 32.0"))
    with pytest.raises(ConfigError, match=r"ModelConfig\(cfg.yaml\).d_model must be int, got float 32.0"):
        ModelConfig.load(path)
