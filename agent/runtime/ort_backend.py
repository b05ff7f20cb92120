"""The ONNX Runtime backend: the exported graphs in `onnxruntime.InferenceSession`s (CPU, CUDA or TensorRT providers).

Inputs and outputs are host numpy arrays. The graphs come from `cfg.onnx_dir` (checked against the model's
fingerprint) or are exported on first use into the cache. Requested providers that this onnxruntime build lacks
raise `BackendUnavailable` (the CUDA and TensorRT providers ship in `onnxruntime-gpu`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.model.irlvla import IRLVLA
from agent.runtime.availability import BackendUnavailable, require
from agent.runtime.base import Runtime
from agent.runtime.config import RuntimeConfig
from agent.runtime.export import cache_root, ensure_onnx
from agent.runtime.graphs import GRAPH_IO, GRAPH_NAMES

logger = logging.getLogger(__name__)

PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


class OnnxRuntime(Runtime):
    name = "onnxruntime"

    def __init__(self, model: IRLVLA, cfg: RuntimeConfig, device: torch.device) -> None:
        ort = require("onnxruntime", "the onnxruntime backend")
        require("onnx", "the onnxruntime backend (ONNX export)")
        if cfg.preprocess == "auto":  # frames are resized on the host: the sessions take host arrays
            cfg = dataclasses.replace(cfg, preprocess="host")
        super().__init__(model.eval(), cfg, device)
        self.onnx_dir = ensure_onnx(model, cfg)
        available = ort.get_available_providers()
        wanted = [p for p in cfg.ort_providers if p != "cpu"] + ["cpu"]
        missing = [PROVIDER_NAMES[p] for p in wanted if PROVIDER_NAMES[p] not in available]
        if missing:
            raise BackendUnavailable(
                f"onnxruntime {ort.__version__} lacks {missing} (has {available}): install onnxruntime-gpu for the "
                "CUDA and TensorRT execution providers"
            )
        dev_id = self.device.index or 0
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if cfg.threads:
            opts.intra_op_num_threads = int(cfg.threads)
            opts.inter_op_num_threads = 1
        self.sessions = {}
        for graph in GRAPH_NAMES:
            providers = [self._provider(p, graph, dev_id) for p in wanted]
            self.sessions[graph] = ort.InferenceSession(str(self.onnx_dir / f"{graph}.onnx"), opts, providers=providers)
        self.providers = self.sessions["perception"].get_providers()
        logger.info("onnxruntime sessions from %s on %s", self.onnx_dir, self.providers)

    def _provider(self, short: str, graph: str, dev_id: int) -> tuple[str, dict] | str:
        name = PROVIDER_NAMES[short]
        if short == "cuda":
            return name, {"device_id": dev_id}
        if short == "tensorrt":
            precision = self.cfg.precision if graph == "perception" else self.cfg.head_precision
            cache = Path(cache_root(self.cfg)) / "ort_trt"
            cache.mkdir(parents=True, exist_ok=True)
            return name, {
                "device_id": dev_id,
                "trt_fp16_enable": precision != "fp32",
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(cache),
            }
        return name

    def describe(self) -> dict:
        return {**super().describe(), "providers": self.providers, "onnx_dir": str(self.onnx_dir)}

    def to_native(self, name: str, value: np.ndarray | torch.Tensor) -> np.ndarray:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        return np.ascontiguousarray(value, dtype=np.int64 if name == "bev_index" else np.float32)

    def run_graph(self, graph: str, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        outs = GRAPH_IO[graph][1]
        return dict(zip(outs, self.sessions[graph].run(list(outs), feeds)))

    def to_host(self, value: np.ndarray) -> np.ndarray:
        return value

    def close(self) -> None:
        self.sessions.clear()
