"""The shipped checkpoint: under 25 MB, its manifest's sha256 matches, and the CARLA agent's shipped config loads it."""

from __future__ import annotations

import json
from pathlib import Path

from agent.checkpoint import sha256_file
from team_code.config import AgentConfig
from team_code.irlvla_b2d_agent import load_policy

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = REPO / "weights" / "irlvla_b2d.safetensors"


def test_manifest_matches_the_shipped_checkpoint():
    manifest = json.loads((REPO / "weights" / "manifest.json").read_text())
    entry = manifest["irlvla_b2d"]
    assert WEIGHTS.stat().st_size <= 25 * 1024 * 1024 and entry["bytes"] == WEIGHTS.stat().st_size
    assert entry["sha256"] == sha256_file(WEIGHTS)
    assert entry["data"]["train"]["seed_range"][0] >= 100_000 and entry["commands"]


def test_carla_agent_config_starts_with_the_shipped_weights():
    cfg = AgentConfig.from_yaml(REPO / "configs" / "b2d_agent.yaml")
    assert Path(cfg.checkpoint).resolve() == WEIGHTS.resolve()
    cfg.device = "cpu"
    policy = load_policy(cfg)
    assert policy.cfg.name == "tiny"
