"""The CARLA agent switches inference backend by config: `runtime:` in the agent YAML reaches `DrivingPolicy`."""

from __future__ import annotations

import pytest

from agent.runtime.config import RuntimeConfig
from team_code import irlvla_b2d_agent as agent_module
from team_code.config import AgentConfig


def test_agent_config_runtime_section_is_validated():
    cfg = AgentConfig.from_dict({"runtime": {"backend": "onnxruntime", "threads": 1, "ort_providers": ["cuda"]}})
    assert cfg.runtime == RuntimeConfig(backend="onnxruntime", threads=1, ort_providers=("cuda",))
    hash(cfg.runtime)  # part of the policy cache key
    assert AgentConfig().runtime is None  # the model config's own runtime section applies
    with pytest.raises(ValueError, match="backend"):
        AgentConfig.from_dict({"runtime": {"backend": "tvm"}})
    with pytest.raises(ValueError, match=r"AgentConfig.runtime: unknown field.*backnd"):
        AgentConfig.from_dict({"runtime": {"backnd": "torch"}})


def test_load_policy_builds_the_configured_runtime():
    cfg = AgentConfig.from_dict(
        {"preset": "tiny", "device": "cpu", "runtime": {"backend": "torch", "precision": "bf16"}}
    )
    policy = agent_module.load_policy(cfg)
    try:
        assert policy.runtime.describe()["backend"] == "torch"
        assert policy.runtime.describe()["precision"] == "bf16"
    finally:
        policy.close()
    # different runtimes are different cached policies
    other = AgentConfig.from_dict({"preset": "tiny", "device": "cpu"})
    assert agent_module._policy_key(cfg) != agent_module._policy_key(other)
