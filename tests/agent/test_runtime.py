"""Inference runtimes: config, backend choice and errors, ONNX export, torch vs ONNX Runtime parity on `tiny`, device
preprocessing parity, torch backend options. GPU-only paths are in test_runtime_gpu.py."""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pytest
import torch

from agent.checkpoint import config_differences
from agent.config import load_preset
from agent.model.irlvla import build_model
from agent.policy import DrivingPolicy, ego_features
from agent.preprocess import plan_cameras, preprocess_cameras
from agent.runtime import availability
from agent.runtime.availability import BackendUnavailable
from agent.runtime.base import build_runtime, choose_backend
from agent.runtime.config import DEFAULT_OPSET, RuntimeConfig
from agent.runtime.device_preprocess import DevicePreprocessor
from agent.runtime.export import ExportError, ensure_onnx, model_fingerprint, read_manifest
from agent.runtime.graphs import GRAPH_IO, GRAPH_NAMES, POLICY_OUTPUTS
from agent.types import CameraRig, EgoStatus, NavigationCommand, Observation, bench2drive_rig, model_rig

onnx_needed = pytest.mark.skipif(
    not (availability.has("onnx") and availability.has("onnxruntime")), reason="onnx/onnxruntime not installed"
)


def observation(seed: int, rig=None, speed: float = 6.0) -> Observation:
    rig = rig or bench2drive_rig()
    rng = np.random.default_rng(seed)
    # smooth images with structure (gradients + blocks) rather than pure noise, so resizing is a real test
    imgs = {}
    for c in rig.cameras:
        yy, xx = np.mgrid[0 : c.height, 0 : c.width]
        base = np.stack([(xx * 255 // max(c.width - 1, 1)), (yy * 255 // max(c.height - 1, 1)), (xx + yy) % 256], -1)
        noise = rng.integers(0, 64, (c.height, c.width, 3))
        imgs[c.name] = ((base + noise) % 256).astype(np.uint8)
    ego = EgoStatus([speed, 0.0], [0.2, 0.0], 0.01, NavigationCommand.STRAIGHT)
    return Observation(imgs, rig, ego, target_point=np.array([30.0, 2.0]))


# ------------------------------------------------------------------------------------------------------- config


def test_runtime_config_validates_and_round_trips():
    with pytest.raises(ValueError, match="backend"):
        RuntimeConfig(backend="tvm")
    with pytest.raises(ValueError, match="precision"):
        RuntimeConfig(precision="int8")
    with pytest.raises(ValueError, match="ort_providers"):
        RuntimeConfig(ort_providers=("rocm",))
    with pytest.raises(ValueError, match="opset"):
        RuntimeConfig(opset=11)
    cfg = load_preset("tiny", runtime={"backend": "onnxruntime", "ort_providers": ["cuda", "cpu"], "threads": 1})
    assert cfg.runtime.backend == "onnxruntime" and cfg.runtime.ort_providers == ("cuda", "cpu")
    assert type(cfg).from_json(cfg.to_json()).runtime == cfg.runtime
    # a runtime choice never makes a checkpoint "another model"
    assert config_differences(load_preset("tiny"), cfg, include_runtime=False) == []
    assert load_preset("tiny").runtime.backend == "torch"  # the reference path stays the default


def test_explicit_backend_that_is_missing_names_the_extra(tiny_model, monkeypatch):
    real_has = availability.has
    monkeypatch.setattr(availability, "has", lambda p: False if p == "onnxruntime" else real_has(p))
    with pytest.raises(BackendUnavailable, match=r"irlvla\[trt\]"):
        build_runtime(tiny_model, RuntimeConfig(backend="onnxruntime"))
    monkeypatch.setattr(availability, "has", lambda p: False if p == "tensorrt" else real_has(p))
    with pytest.raises(BackendUnavailable, match="tensorrt"):
        build_runtime(tiny_model, RuntimeConfig(backend="tensorrt"))


def test_auto_prefers_tensorrt_then_onnxruntime_then_torch_and_logs(monkeypatch, caplog):
    from agent.runtime import base

    cases = [
        ({"torch": True, "onnxruntime": True, "tensorrt": True}, "cuda", "tensorrt"),
        ({"torch": True, "onnxruntime": True, "tensorrt": True}, "cpu", "onnxruntime"),
        ({"torch": True, "onnxruntime": True, "tensorrt": False}, "cuda", "onnxruntime"),
        ({"torch": True, "onnxruntime": False, "tensorrt": False}, "cuda", "torch"),
    ]
    for avail, dev, want in cases:
        monkeypatch.setattr(base, "backends_available", lambda a=avail: a)
        with caplog.at_level(logging.INFO, logger="agent.runtime.base"):
            caplog.clear()
            assert choose_backend("auto", torch.device(dev)) == want
        assert f"auto -> {want}" in caplog.text
    assert choose_backend("torch", torch.device("cpu")) == "torch"


def test_cuda_graphs_need_cuda(tiny_model):
    with pytest.raises(ValueError, match="CUDA"):
        build_runtime(tiny_model, RuntimeConfig(cuda_graphs=True), "cpu")


# ------------------------------------------------------------------------------------------------------- export


@onnx_needed
def test_export_writes_static_named_graphs_with_pinned_opset(tiny_export, tiny_model):
    import onnx

    manifest = read_manifest(tiny_export, fingerprint=model_fingerprint(tiny_model))
    assert manifest["opset"] == DEFAULT_OPSET and manifest["exporter"] == "torchscript"
    assert manifest["inference_timesteps"] == list(tiny_model.cfg.planner.inference_timesteps)
    fixtures = np.load(tiny_export / manifest["fixtures"])
    for name in GRAPH_NAMES:
        ins, outs = GRAPH_IO[name]
        graph = onnx.load(str(tiny_export / f"{name}.onnx"))
        opsets = {o.domain: o.version for o in graph.opset_import}
        assert opsets[""] == DEFAULT_OPSET
        assert [i.name for i in graph.graph.input] == list(ins)
        assert [o.name for o in graph.graph.output] == list(outs)
        for value in (*graph.graph.input, *graph.graph.output):
            dims = value.type.tensor_type.shape.dim
            assert all(d.HasField("dim_value") for d in dims), f"{name}.{value.name} has a dynamic dimension"
            assert [d.dim_value for d in dims] == list(fixtures[value.name].shape)
        assert manifest["check"][name]["ok"]
    # the planner graph holds the whole fixed-step DDIM loop and takes the noise as an input
    assert "noise" in GRAPH_IO["planner"][0]
    # BEV pooling sums points per cell (a ScatterElements without reduction would keep one point)
    perception = onnx.load(str(tiny_export / "perception.onnx"))
    scatters = [n for n in perception.graph.node if n.op_type.startswith("Scatter")]
    assert scatters and all(any(a.name == "reduction" and a.s == b"add" for a in n.attribute) for n in scatters)


@onnx_needed
def test_export_folder_checks(tiny_export, tiny_model, tmp_path):
    other = build_model(load_preset("tiny", seed=1))
    with pytest.raises(ExportError, match="another model"):
        read_manifest(tiny_export, fingerprint=model_fingerprint(other))
    with pytest.raises(ExportError, match="another model"):
        build_runtime(other, RuntimeConfig(backend="onnxruntime", onnx_dir=str(tiny_export)))
    # a graph file that no longer matches its manifest (interrupted re-export, hand edit) is refused
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny_export.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "rwm.onnx").write_bytes((broken / "rwm.onnx").read_bytes() + b"\0")
    with pytest.raises(ExportError, match="sha256"):
        read_manifest(broken)
    with pytest.raises(ExportError, match="no ONNX export"):
        read_manifest(tmp_path)
    # the cache: an existing, matching export is reused rather than re-exported
    cache = tmp_path / "cache"
    d = cache / f"onnx-{model_fingerprint(tiny_model)[:16]}-opset{DEFAULT_OPSET}-torchscript"
    d.mkdir(parents=True)
    for f in tiny_export.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    stamp = (d / "manifest.json").stat().st_mtime_ns
    assert ensure_onnx(tiny_model, RuntimeConfig(cache_dir=str(cache))) == d
    assert (d / "manifest.json").stat().st_mtime_ns == stamp


# ------------------------------------------------------------------------------------------------------- parity


def test_torch_runtime_equals_the_model_forward(tiny_model):
    """The three-graph split computes exactly what `IRLVLA.forward(mode="infer")` does."""
    policy = DrivingPolicy(tiny_model, use_vlm=False, runtime=RuntimeConfig(backend="torch"))
    obs = observation(0, model_rig(352, 128))
    res = policy.step(obs)
    cams = preprocess_cameras(obs.images, obs.rig, tiny_model.cfg.preprocess)
    vec = res.commands.as_vector()
    batch = {
        "images": torch.from_numpy(cams.images)[None],
        "intrinsics": torch.from_numpy(cams.intrinsics)[None],
        "cam_to_ego": torch.from_numpy(cams.cam_to_ego)[None],
        "ego": torch.from_numpy(ego_features(obs))[None],
        "speed_probs": torch.from_numpy(vec[:13])[None].float(),
        "path_probs": torch.from_numpy(vec[13:])[None].float(),
        "noise": policy.noise_for_tick(0),
    }
    with torch.inference_mode():
        out = tiny_model(batch, mode="infer")
    assert np.allclose(res.candidates, out["trajectories"][0].numpy(), atol=1e-5)
    assert np.allclose(res.rewards, out["rwm"]["epdms"][0].numpy(), atol=1e-6)


@onnx_needed
@pytest.mark.parametrize("rig_name", ["bench2drive", "model"])
def test_onnxruntime_drives_like_torch(tiny_export, tiny_model, rig_name):
    """Per-output tolerances at the decision level: trajectories within 1e-3 m, the same selected candidate, the same
    predicted sub-scores within 1e-3 (engineering.md section 2: parity at the metric level, not only per tensor)."""
    rig = bench2drive_rig() if rig_name == "bench2drive" else model_rig(352, 128)
    ref = DrivingPolicy(tiny_model, use_vlm=False, runtime=RuntimeConfig(backend="torch"))
    ort_cfg = RuntimeConfig(backend="onnxruntime", onnx_dir=str(tiny_export), threads=1)
    fast = DrivingPolicy(tiny_model, use_vlm=False, runtime=ort_cfg)
    assert fast.runtime.describe()["providers"] == ["CPUExecutionProvider"]
    for tick in range(1 if rig_name == "bench2drive" else 2):
        obs = observation(tick, rig, speed=3.0 + 4.0 * tick)
        a, b = ref.step(obs), fast.step(obs)
        assert np.abs(a.candidates - b.candidates).max() < 1e-3  # metres (headings: radians)
        assert a.selected == b.selected
        assert np.abs(a.submetrics - b.submetrics).max() < 1e-3
        assert np.abs(a.rewards - b.rewards).max() < 1e-3
        assert np.abs(a.confidences - b.confidences).max() < 1e-3
        assert np.abs(a.detections.boxes - b.detections.boxes).max() < 1e-3
        assert np.array_equal(a.penalties["collision"], b.penalties["collision"])
        for k in ("preprocess", "perception", "planner", "rwm", "selection", "total"):
            assert b.timings[k] >= 0.0
    json.dumps(fast.runtime.describe())


# ----------------------------------------------------------------------------------------- device preprocessing


def _grey_levels(cfg, a: np.ndarray, b: np.ndarray) -> float:
    std = np.asarray(cfg.std, dtype=np.float64).reshape(3, 1, 1) * 255.0
    return float((np.abs(a.astype(np.float64) - b) * std).max())


@pytest.mark.parametrize("src_hw", [(900, 1600), (128, 352), (100, 300), (256, 704)])
def test_device_preprocessing_matches_pillow_within_one_grey_level(src_hw):
    """Downscale (Bench2Drive frames), identity, upscale, crop: the Pillow path's pixels within one grey level."""
    cfg = load_preset("tiny").preprocess
    h, w = src_hw
    base = bench2drive_rig()
    rig = CameraRig("test", tuple(dataclasses.replace(c, width=w, height=h) for c in base.cameras))
    obs = observation(3, rig)
    host = preprocess_cameras(obs.images, rig, cfg)
    dev = DevicePreprocessor(cfg, "cpu")(plan_cameras(obs.images, rig, cfg))
    assert dev.shape == (1, *host.images.shape) and dev.dtype == torch.float32
    assert _grey_levels(cfg, dev[0].numpy(), host.images) <= 1.0 + 1e-4


def test_device_preprocessing_policy_matches_host(tiny_model):
    obs = observation(5, model_rig(704, 256))  # a 2x downscale
    a = DrivingPolicy(tiny_model, use_vlm=False, runtime=RuntimeConfig(preprocess="host")).step(obs)
    b = DrivingPolicy(tiny_model, use_vlm=False, runtime=RuntimeConfig(preprocess="device")).step(obs)
    assert a.selected == b.selected
    assert np.abs(a.candidates - b.candidates).max() < 1e-3


# ------------------------------------------------------------------------------------------ torch backend options


def test_torch_options_on_cpu(tiny_model):
    obs = observation(2)
    ref = DrivingPolicy(tiny_model, use_vlm=False).step(obs)
    cl = DrivingPolicy(build_model(tiny_model.cfg), use_vlm=False, runtime=RuntimeConfig(channels_last=True)).step(obs)
    assert np.abs(ref.candidates - cl.candidates).max() < 1e-4 and ref.selected == cl.selected
    half = DrivingPolicy(build_model(tiny_model.cfg), use_vlm=False, runtime=RuntimeConfig(precision="bf16"))
    res = half.step(obs)
    assert np.isfinite(res.candidates).all() and np.isfinite(res.submetrics).all()
    assert res.candidates.dtype == np.float64  # outputs are fp32 at the graph boundary, float64 in the policy
    assert half.runtime.describe()["precision"] == "bf16"
    assert set(POLICY_OUTPUTS) >= {"trajectories", "rwm_metrics"}
    assert dataclasses.asdict(RuntimeConfig())["backend"] == "torch"


@pytest.mark.slow
def test_torch_compile_traces_every_graph(tiny_model):
    """`compile: true` runs the graphs through TorchDynamo (the "eager" backend keeps CI fast: inductor's kernel
    generation takes minutes on two loaded cores) and decides exactly as eager does."""
    obs = observation(4, model_rig(352, 128))
    ref = DrivingPolicy(tiny_model, use_vlm=False).step(obs)
    compiled = DrivingPolicy(
        build_model(tiny_model.cfg), use_vlm=False, runtime=RuntimeConfig(compile=True, compile_backend="eager")
    )
    got = compiled.step(obs)
    assert compiled.runtime.describe()["compile"]
    assert got.selected == ref.selected and np.abs(got.candidates - ref.candidates).max() < 1e-4
