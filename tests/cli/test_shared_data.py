"""`irlvla.shared_data`: ../shared beside the checkout unless IRLVLA_SHARED says otherwise."""

from __future__ import annotations

from pathlib import Path

from irlvla.shared_data import REPO, shared_path, shared_root


def test_default_is_beside_the_checkout_and_the_environment_overrides(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("IRLVLA_SHARED", raising=False)
    assert shared_root() == REPO.parent / "shared"
    assert (REPO / "pyproject.toml").is_file()  # REPO is the checkout root
    monkeypatch.setenv("IRLVLA_SHARED", str(tmp_path))
    assert shared_path("data", "navsim", "x.npy") == tmp_path / "data" / "navsim" / "x.npy"
