"""The TensorRT backend: one engine per exported graph, built with the TensorRT Python API and cached on disk.

Written to TensorRT's documented tensor-name API (TensorRT 10+: `create_network`, `OnnxParser`,
`build_serialized_network`, `set_tensor_address`, `execute_async_v3`); it runs only where `tensorrt` and a CUDA GPU
exist and is tested there (tests skip elsewhere). Engines do not transfer between TensorRT versions or GPUs, so the
cache key is the ONNX file's sha256, the TensorRT version, the GPU name and the precision.

Precision: TensorRT 10 builds the perception engine with the FP16/BF16 builder flag when asked (weak typing) and the
heads in fp32. TensorRT 11 removed those flags (strong typing only: the precision must be in the ONNX itself, e.g. via
ModelOpt AutoCast); there a half-precision request is refused with that explanation rather than silently run in fp32.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.model.irlvla import IRLVLA
from agent.runtime.availability import BackendUnavailable, require
from agent.runtime.base import Runtime
from agent.runtime.config import RuntimeConfig
from agent.runtime.export import cache_root, ensure_onnx, sha256_file
from agent.runtime.graphs import GRAPH_IO, GRAPH_NAMES
from irlvla.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)


def _trt():
    return require("tensorrt", "the tensorrt backend")


def engine_path(onnx_path: Path, precision: str, cache_dir: Path, device: torch.device) -> Path:
    """Cache file of the engine for this ONNX file, TensorRT version, GPU and precision."""
    trt = _trt()
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", torch.cuda.get_device_name(device)).strip("-")
    digest = sha256_file(onnx_path)[:16]
    return cache_dir / f"{onnx_path.stem}-{digest}-trt{trt.__version__}-{gpu}-{precision}.engine"


def build_engine(
    onnx_path: str | Path, precision: str, cache_dir: str | Path, device: torch.device, workspace_mb: int = 4096
) -> Path:
    """Build (or find in the cache) the serialized engine of one ONNX graph; returns its path."""
    trt = _trt()
    onnx_path = Path(onnx_path)
    path = engine_path(onnx_path, precision, Path(cache_dir), device)
    if path.is_file():
        logger.info("TensorRT engine cache hit: %s", path)
        return path
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    network = builder.create_network(0)  # explicit batch is the only mode since TensorRT 10
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if precision != "fp32":
        flag = getattr(trt.BuilderFlag, "FP16" if precision == "fp16" else "BF16", None)
        if flag is None:
            raise BackendUnavailable(
                f"TensorRT {trt.__version__} has no {precision.upper()} builder flag (strong typing only since 11): "
                "build from a mixed-precision ONNX (ModelOpt AutoCast) or use precision fp32"
            )
        config.set_flag(flag)
    logger.info("building TensorRT engine for %s (%s); this takes a while", onnx_path.name, precision)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine for {onnx_path}")
    atomic_write_bytes(path, bytes(serialized))
    return path


def _torch_dtype(trt, dtype) -> torch.dtype:
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32, trt.bool: torch.bool}
    if hasattr(trt, "int64"):
        table[trt.int64] = torch.int64
    if hasattr(trt, "bfloat16"):
        table[trt.bfloat16] = torch.bfloat16
    if dtype not in table:
        raise RuntimeError(f"unsupported TensorRT tensor type {dtype}")
    return table[dtype]


class _Engine:
    """A deserialized engine, its execution context and preallocated output tensors."""

    def __init__(self, trt, runtime, path: Path, device: torch.device) -> None:
        self.engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {path} (built by another TensorRT version or GPU?)")
        self.context = self.engine.create_execution_context()
        self.inputs: dict[str, torch.dtype] = {}
        self.outputs: dict[str, torch.Tensor] = {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(name))
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.inputs[name] = dtype
            else:
                shape = tuple(self.engine.get_tensor_shape(name))
                self.outputs[name] = torch.empty(shape, dtype=dtype, device=device)
                self.context.set_tensor_address(name, self.outputs[name].data_ptr())

    def prepare(self, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Inputs in the engine's dtypes, contiguous (enqueued on the current stream)."""
        return {name: feeds[name].to(dtype).contiguous() for name, dtype in self.inputs.items()}

    def execute(self, inputs: dict[str, torch.Tensor], stream: torch.cuda.Stream) -> dict[str, torch.Tensor]:
        for name, t in inputs.items():
            self.context.set_tensor_address(name, t.data_ptr())
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        return self.outputs


class TensorRTRuntime(Runtime):
    name = "tensorrt"

    def __init__(self, model: IRLVLA, cfg: RuntimeConfig, device: torch.device) -> None:
        trt = _trt()
        require("onnx", "the tensorrt backend (ONNX export)")
        if torch.device(device).type != "cuda" or not torch.cuda.is_available():
            raise BackendUnavailable(f"the tensorrt backend needs a CUDA device, got {device}")
        super().__init__(model.eval(), cfg, device)
        self.onnx_dir = ensure_onnx(model, cfg)
        cache = cache_root(cfg) / "trt"
        self._trt_runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engines: dict[str, _Engine] = {}
        self.engine_files: dict[str, str] = {}
        with torch.cuda.device(self.device):
            for graph in GRAPH_NAMES:
                precision = cfg.precision if graph == "perception" else cfg.head_precision
                path = build_engine(
                    self.onnx_dir / f"{graph}.onnx", precision, cache, self.device, cfg.trt_workspace_mb
                )
                self.engine_files[graph] = str(path)
                self.engines[graph] = _Engine(trt, self._trt_runtime, path, self.device)
        self.stream = torch.cuda.Stream(self.device)

    def describe(self) -> dict:
        return {**super().describe(), "engines": self.engine_files}

    def to_native(self, name: str, value: np.ndarray | torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(value).to(self.device, non_blocking=True)

    def run_graph(self, graph: str, feeds: dict[str, Any]) -> dict[str, torch.Tensor]:
        engine = self.engines[graph]
        inputs = engine.prepare(feeds)
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)  # the inputs are written on the current stream
        outs = engine.execute(inputs, self.stream)
        current.wait_stream(self.stream)
        # engines reuse their output buffers: hand out fp32 copies so no later run overwrites a live value
        return {
            k: outs[k].to(torch.float32, copy=True) if outs[k].is_floating_point() else outs[k].clone()
            for k in GRAPH_IO[graph][1]
        }

    def to_host(self, value: torch.Tensor) -> np.ndarray:
        return value.detach().cpu().numpy()

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)

    def close(self) -> None:
        self.engines.clear()
