"""GPU paths of the runtimes: CUDA graphs, half precision, device preprocessing on CUDA, ONNX Runtime's CUDA provider
and TensorRT engines. Each test skips cleanly without CUDA (and without tensorrt / onnxruntime-gpu where needed);
`scripts/gpu_figures.sh` runs them on a GPU machine together with the latency benchmark."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from agent.config import load_preset
from agent.model.irlvla import build_model
from agent.policy import DrivingPolicy
from agent.preprocess import plan_cameras, preprocess_cameras
from agent.runtime import availability
from agent.runtime.config import RuntimeConfig
from agent.runtime.device_preprocess import DevicePreprocessor
from agent.types import EgoStatus, NavigationCommand, Observation, bench2drive_rig

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
onnx = pytest.mark.skipif(not availability.has("onnx"), reason="onnx not installed")


def observation(seed: int) -> Observation:
    rig = bench2drive_rig()
    rng = np.random.default_rng(seed)
    imgs = {c.name: rng.integers(0, 256, (c.height, c.width, 3), dtype=np.uint8) for c in rig.cameras}
    return Observation(imgs, rig, EgoStatus([6.0, 0.0], [0.0, 0.0], 0.0, NavigationCommand.STRAIGHT), [30.0, 0.0])


def plan(runtime: RuntimeConfig, device: str = "cuda", ticks: int = 2):
    model = build_model(load_preset("tiny"))
    policy = DrivingPolicy(model, use_vlm=False, device=device, runtime=runtime)
    try:
        return [policy.step(observation(t)) for t in range(ticks)], policy.runtime.describe()
    finally:
        policy.close()


def assert_same_decisions(ref, got, traj_m: float = 1e-3, score: float = 1e-3) -> None:
    for a, b in zip(ref, got):
        assert np.abs(a.candidates - b.candidates).max() < traj_m
        assert a.selected == b.selected
        assert np.abs(a.submetrics - b.submetrics).max() < score


@cuda
def test_cuda_eager_and_cuda_graphs_match_cpu_reference():
    ref, _ = plan(RuntimeConfig(), device="cpu")
    eager, _ = plan(RuntimeConfig(preprocess="host"))
    assert_same_decisions(ref, eager)
    graphed, info = plan(RuntimeConfig(cuda_graphs=True, preprocess="device"), ticks=3)
    assert info["cuda_graphs"] and info["preprocess"] == "device"
    assert_same_decisions(ref, graphed)  # replays (ticks 2, 3) use new inputs, not the captured ones


@cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_perception_runs_and_stays_finite(precision):
    runs, info = plan(RuntimeConfig(precision=precision, channels_last=True, cuda_graphs=True))
    assert info["precision"] == precision
    for r in runs:
        assert np.isfinite(r.candidates).all() and np.isfinite(r.submetrics).all()


@cuda
def test_device_preprocessing_on_cuda_within_one_grey_level():
    cfg = load_preset("tiny").preprocess
    obs = observation(3)
    host = preprocess_cameras(obs.images, obs.rig, cfg).images
    dev = DevicePreprocessor(cfg, "cuda")(plan_cameras(obs.images, obs.rig, cfg))[0].cpu().numpy()
    std = np.asarray(cfg.std).reshape(3, 1, 1) * 255.0
    assert (np.abs(dev - host) * std).max() <= 1.0 + 1e-4


@cuda
@onnx
@pytest.mark.skipif(
    "CUDAExecutionProvider" not in availability.ort_providers_available(), reason="needs onnxruntime-gpu"
)
def test_onnxruntime_cuda_provider_matches_torch(tmp_path):
    ref, _ = plan(RuntimeConfig(), device="cpu")
    got, info = plan(RuntimeConfig(backend="onnxruntime", ort_providers=("cuda",), cache_dir=str(tmp_path)))
    assert info["providers"][0] == "CUDAExecutionProvider"
    assert_same_decisions(ref, got)


@cuda
@onnx
@pytest.mark.skipif(not availability.has("tensorrt"), reason="needs tensorrt")
def test_tensorrt_fp32_matches_torch_and_caches_engines(tmp_path):
    ref, _ = plan(RuntimeConfig(), device="cpu")
    cfg = RuntimeConfig(backend="tensorrt", cache_dir=str(tmp_path))
    got, info = plan(cfg)
    assert_same_decisions(ref, got)
    import tensorrt as trt

    files = sorted((tmp_path / "trt").glob("*.engine"))
    assert len(files) == 3 and all(f"trt{trt.__version__}" in f.name for f in files)
    stamps = [f.stat().st_mtime_ns for f in files]
    plan(dataclasses.replace(cfg), ticks=1)  # a second runtime loads the cached engines
    assert [f.stat().st_mtime_ns for f in files] == stamps
