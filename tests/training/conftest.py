"""One tiny dataset (two scenes, every frame kept) and one imitation checkpoint shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.config import DataConfig, TrainConfig
from training.dataset import build_dataset

TINY_DATA = DataConfig(
    split="val",
    num_scenes=2,
    families=("cut_in", "red_light"),
    future_s=8.0,
    frame_stride_s=1.0,
    expert_min_epdms=0.0,
    keep_trivial_fraction=1.0,
    shard_size=4,
    workers=1,
)

TINY_TRAIN = TrainConfig(steps=2, batch_size=2, checkpoint_every=1, num_workers=0, device="cpu")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    build_dataset(TINY_DATA, out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_il(tiny_data, tmp_path_factory) -> Path:
    from training.il import train_il

    out = tmp_path_factory.mktemp("il")
    train_il(tiny_data, out, TINY_TRAIN, progress=False)
    return out / "model.safetensors"


@pytest.fixture
def one_torch_thread():
    """Both halves of a resume comparison must reduce in the same order: earlier tests in this process may have set
    torch's thread count (the CARLA agent's runtime does), and Adam amplifies the last-bit differences of another
    thread count into visibly different losses within a few steps. One thread here and in the subprocess."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    torch.set_num_threads(before)
