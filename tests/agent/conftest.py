"""Shared fixtures for the agent tests: one ONNX export of the tiny model per test session (it takes ~10-30 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_preset
from agent.model.irlvla import build_model


@pytest.fixture(scope="session")
def tiny_model():
    return build_model(load_preset("tiny")).eval()


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory) -> Path:
    """`irlvla export onnx --preset tiny` into a session folder (the same weights `tiny_model` has)."""
    pytest.importorskip("onnx", reason="onnx not installed (the dev extra installs it)")
    from irlvla.cli import main

    out = tmp_path_factory.mktemp("tiny_onnx")
    assert main(["export", "onnx", "--preset", "tiny", "--out", str(out)]) == 0
    return out
