"""The runtime interface: one planning step's model work, from the uint8 camera frames to host arrays.

A `Runtime` owns preprocessing (host or device), the camera-geometry index (solved once per rig), and the three
graphs of `agent.runtime.graphs`; backends differ only in how a graph runs (`run_graph`) and what a tensor is there
(`to_native` / `to_host`). `build_runtime` is the registry: `auto` picks TensorRT, then ONNX Runtime, then torch and
logs the choice; an explicitly requested backend that cannot run raises `BackendUnavailable` naming what to install.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch

from agent.model.irlvla import IRLVLA
from agent.preprocess import plan_cameras, preprocess_image
from agent.runtime.availability import BackendUnavailable, backends_available
from agent.runtime.config import RuntimeConfig
from agent.runtime.graphs import GRAPH_IO, GRAPH_NAMES, POLICY_OUTPUTS
from agent.types import Observation

logger = logging.getLogger(__name__)


class Runtime(ABC):
    """Runs the model's graphs for one observation; subclasses implement the four backend hooks."""

    name = "base"

    def __init__(self, model: IRLVLA, cfg: RuntimeConfig, device: torch.device) -> None:
        self.model = model
        self.cfg = cfg
        self.device = torch.device(device)
        self.model_cfg = model.cfg
        place = cfg.preprocess
        self.device_preprocess = place == "device" or (place == "auto" and self.device.type == "cuda")
        self._device_pre = None
        if self.device_preprocess:
            from agent.runtime.device_preprocess import DevicePreprocessor

            self._device_pre = DevicePreprocessor(self.model_cfg.preprocess, self.device)
        self._index_cache: dict[bytes, Any] = {}

    # ------------------------------------------------------------------------------------------- backend hooks
    @abstractmethod
    def to_native(self, name: str, value: np.ndarray | torch.Tensor) -> Any:
        """A graph input in this backend's tensor type (on its device)."""

    @abstractmethod
    def run_graph(self, graph: str, feeds: dict[str, Any]) -> dict[str, Any]:
        """Run one graph (`agent.runtime.graphs.GRAPH_IO` names) on native inputs; native outputs by name."""

    @abstractmethod
    def to_host(self, value: Any) -> np.ndarray:
        """A native output as a float32/int numpy array."""

    def synchronize(self) -> None:  # noqa: B027 (a no-op for host backends, overridden by device ones)
        """Wait for queued device work (so stage timings mean something)."""

    def describe(self) -> dict:
        """What is running, for logs and benchmark records."""
        return {
            "backend": self.name,
            "device": str(self.device),
            "precision": self.cfg.precision,
            "head_precision": self.cfg.head_precision,
            "preprocess": "device" if self.device_preprocess else "host",
        }

    # ------------------------------------------------------------------------------------------------ shared
    def preprocess(self, obs: Observation) -> tuple[Any, np.ndarray, np.ndarray]:
        """Frames -> native (1, N, 3, H, W) normalised images, and the preprocessed intrinsics and extrinsics."""
        cfg = self.model_cfg.preprocess
        plan = plan_cameras(obs.images, obs.rig, cfg)
        if self._device_pre is not None:
            images = self._device_pre(plan)
        else:
            images = np.stack([preprocess_image(f, tf, cfg) for f, tf in zip(plan.frames, plan.transforms)])[None]
        return self.to_native("images", images), plan.intrinsics, plan.cam_to_ego

    def bev_index(self, intrinsics: np.ndarray, cam_to_ego: np.ndarray) -> Any:
        """`LSSBEV.geometry_index` of this rig (computed by the model's own code, cached per geometry)."""
        key = intrinsics.tobytes() + cam_to_ego.tobytes()
        index = self._index_cache.get(key)
        if index is None:
            bev = self.model.bev
            dev = bev.frustum.device
            with torch.inference_mode():
                t = bev.geometry_index(
                    torch.from_numpy(intrinsics)[None].to(dev), torch.from_numpy(cam_to_ego)[None].to(dev)
                )
            if len(self._index_cache) >= 8:  # a handful of rigs per process at most
                self._index_cache.clear()
            index = self._index_cache[key] = self.to_native("bev_index", t)
        return index

    def _timed(self, timings: dict[str, float] | None, stage: str, t0: float) -> float:
        self.synchronize()
        now = time.perf_counter()
        if timings is not None:
            timings[stage] = timings.get(stage, 0.0) + (now - t0) * 1000.0
        return now

    def infer(
        self,
        obs: Observation,
        ego: np.ndarray,
        speed_probs: np.ndarray,
        path_probs: np.ndarray,
        noise: torch.Tensor | np.ndarray,
        timings: dict[str, float] | None = None,
    ) -> dict[str, np.ndarray]:
        """One planning step's model outputs (`POLICY_OUTPUTS`, batch axis kept) as host arrays.

        Stage timings (ms): preprocess, perception, planner, rwm (device work waited for at each boundary)."""
        t = time.perf_counter()
        images, intrinsics, cam_to_ego = self.preprocess(obs)
        t = self._timed(timings, "preprocess", t)
        values: dict[str, Any] = {
            "images": images,
            "bev_index": self.bev_index(intrinsics, cam_to_ego),
            "ego": self.to_native("ego", np.asarray(ego, np.float32).reshape(1, -1)),
            "speed_probs": self.to_native("speed_probs", np.asarray(speed_probs, np.float32).reshape(1, -1)),
            "path_probs": self.to_native("path_probs", np.asarray(path_probs, np.float32).reshape(1, -1)),
            "noise": self.to_native("noise", noise),
        }
        for graph in GRAPH_NAMES:
            ins = GRAPH_IO[graph][0]
            values.update(self.run_graph(graph, {k: values[k] for k in ins}))
            t = self._timed(timings, graph, t)
        return {k: self.to_host(values[k]) for k in POLICY_OUTPUTS}

    def close(self) -> None:  # noqa: B027 (nothing to release by default)
        """Release sessions, engines and captured graphs."""


def choose_backend(requested: str, device: torch.device) -> str:
    """The backend `requested` resolves to here; `auto` logs what it chose and why."""
    if requested != "auto":
        return requested
    avail = backends_available()
    if device.type == "cuda" and avail["tensorrt"]:
        choice = "tensorrt"
    elif avail["onnxruntime"]:
        choice = "onnxruntime"
    else:
        choice = "torch"
    logger.info(
        "runtime backend auto -> %s (device %s; available: %s)",
        choice,
        device,
        ", ".join(k for k, v in avail.items() if v),
    )
    return choice


def build_runtime(model: IRLVLA, cfg: RuntimeConfig | None = None, device: str | torch.device = "cpu") -> Runtime:
    """The runtime `cfg` asks for, around `model` (moved to `device` where the backend runs torch there)."""
    cfg = cfg or RuntimeConfig()
    device = torch.device(device)
    backend = choose_backend(cfg.backend, device)
    if backend == "torch":
        from agent.runtime.torch_backend import TorchRuntime

        return TorchRuntime(model, cfg, device)
    if backend == "onnxruntime":
        from agent.runtime.ort_backend import OnnxRuntime

        return OnnxRuntime(model, cfg, device)
    if backend == "tensorrt":
        from agent.runtime.tensorrt_backend import TensorRTRuntime

        return TensorRTRuntime(model, cfg, device)
    raise BackendUnavailable(f"unknown runtime backend {backend!r}")
