"""AgentConfig: YAML loading, validation, the shipped default file."""

from __future__ import annotations

from pathlib import Path

import pytest

from irlvla.configload import ConfigError
from team_code.config import AgentConfig, ControllerConfig, ImageConfig, LocalizationConfig, RouteConfig

REPO = Path(__file__).resolve().parents[2]


def test_shipped_config_loads_with_bench2drive_defaults():
    cfg = AgentConfig.from_yaml(REPO / "configs" / "b2d_agent.yaml")
    assert cfg.checkpoint == str((REPO / "weights" / "irlvla_b2d.safetensors").resolve())
    assert cfg.controller == ControllerConfig()
    assert cfg.route == RouteConfig(4.0, 50.0, 20)
    assert (cfg.images.width, cfg.images.height, cfg.images.jpeg_quality) == (None, None, None)


def test_nested_dicts_and_unknown_keys(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("controller:\n  lateral: {kp: 1.0, ki: 0.0, kd: 0.0, window: 10}\nimages: {jpeg_quality: null}\n")
    cfg = AgentConfig.from_yaml(p)
    assert cfg.controller.lateral.kp == 1.0 and cfg.controller.lateral.window == 10
    assert cfg.images.jpeg_quality is None
    p.write_text("controler: {}\n")
    with pytest.raises(ValueError, match="unknown field"):
        AgentConfig.from_yaml(p)
    p.write_text("controller:\n  lateral: {kp: 1.0, ki: 0.0, kd: 0.0, windw: 10}\n")
    with pytest.raises(ValueError, match="unknown field"):
        AgentConfig.from_yaml(p)
    with pytest.raises(FileNotFoundError):
        AgentConfig.from_yaml(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: ControllerConfig(max_throttle=1.5), "max_throttle"),
        (lambda: ControllerConfig(aim_distance=-1.0), "aim_distance"),
        (lambda: RouteConfig(near_distance=10.0, far_distance=5.0), "far_distance"),
        (lambda: LocalizationConfig(filter="kalman"), "filter"),
        (lambda: LocalizationConfig(gnss_gain=0.0), "gnss_gain"),
        (lambda: ImageConfig(jpeg_quality=0), "jpeg_quality"),
        (lambda: ImageConfig(jpeg_at="both"), "jpeg_at"),
        (lambda: AgentConfig(policy_entry_point="nocolon"), "module:callable"),
        (lambda: AgentConfig(device="tpu"), "device"),
        (lambda: AgentConfig(latency_budget_ms=0), "latency_budget_ms"),
        (lambda: AgentConfig(plan_every=0), "plan_every"),
        (lambda: AgentConfig(plan_every=11), "plan_every"),
        (lambda: ImageConfig(width=0), "width"),
    ],
)
def test_validation_errors_name_the_field(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("reuse_policy: 'no'\n", ").reuse_policy must be bool, got str 'no'"),
        ("reuse_policy: 'false'\n", ").reuse_policy must be bool, got str 'false'"),
        ("metric_flush_every: 20.0\n", ").metric_flush_every must be int, got float 20.0"),
        ("route: {route_points: 20.0}\n", ").route.route_points must be int, got float 20.0"),
        ("controller: {lateral: {kp: 1, ki: 0, kd: 0, window: 40.0}}\n", "controller.lateral.window must be int"),
        ("images: {height: 256.0}\n", ").images.height must be int, got float 256.0"),
        ("localization: {filter: 1}\n", ").localization.filter must be str, got int 1"),
        ("device: [cpu]\n", ").device must be str"),
    ],
)
def test_wrong_types_in_yaml_name_the_field(tmp_path, yaml_text, message):
    p = tmp_path / "a.yaml"
    p.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        AgentConfig.from_yaml(p)
    assert str(err.value).startswith(f"AgentConfig({p})")
    assert message in str(err.value)


def test_yaml_booleans_stay_booleans(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("reuse_policy: no\n")  # YAML's own boolean, not a string
    assert AgentConfig.from_yaml(p).reuse_policy is False


def test_to_dict_round_trips_through_the_loader():
    cfg = AgentConfig.from_dict({"controller": {"throttle_cap_speed": 5.0}, "images": {"height": 256}})
    assert AgentConfig.from_dict(cfg.to_dict()) == cfg
