"""The torch backend: eager PyTorch with optional autocast (fp16/bf16), channels-last, CUDA graphs and torch.compile.

fp32 eager on the CPU is the reference every other backend is compared with. The fast path on a GPU: the three static
graphs captured once as CUDA graphs (launch overhead dominates a batch-1 step), perception under fp16/bf16 autocast
with channels-last convolutions, heads in fp32, and preprocessing on the device. Graph outputs are cast back to fp32
at each boundary, so the next graph and the policy always see fp32.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from agent.model.irlvla import IRLVLA
from agent.runtime.base import Runtime
from agent.runtime.config import RuntimeConfig
from agent.runtime.graphs import GRAPH_IO, graph_modules

logger = logging.getLogger(__name__)

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class CapturedGraph:
    """A function of fixed-shape tensors, captured once as a CUDA graph and replayed with new input values.

    Inputs are copied into static buffers; the returned outputs are static buffers too, valid until the next call.
    """

    def __init__(self, fn: Callable[..., tuple[torch.Tensor, ...]], example: Sequence[torch.Tensor], warmup: int = 3):
        self.static_in = [t.clone() for t in example]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside capture: cuDNN autotuning, lazy allocations
            for _ in range(warmup):
                fn(*self.static_in)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = fn(*self.static_in)

    def __call__(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        for dst, src in zip(self.static_in, args):
            if dst.data_ptr() != src.data_ptr():
                dst.copy_(src, non_blocking=True)
        self.graph.replay()
        return self.static_out


class TorchRuntime(Runtime):
    name = "torch"

    def __init__(self, model: IRLVLA, cfg: RuntimeConfig, device: torch.device) -> None:
        super().__init__(model, cfg, device)
        if cfg.cuda_graphs and self.device.type != "cuda":
            raise ValueError("RuntimeConfig.cuda_graphs needs a CUDA device, the policy runs on " + str(self.device))
        if cfg.threads and self.device.type == "cpu":
            torch.set_num_threads(int(cfg.threads))
        self.model = model.to(self.device).eval()
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        modules = graph_modules(self.model)
        self._own_graphs = cfg.cuda_graphs and not cfg.compile
        if cfg.compile:
            # with cuda_graphs, torch's own CUDA graph trees ("reduce-overhead") replace CapturedGraph
            mode = "reduce-overhead" if cfg.cuda_graphs and cfg.compile_backend == "inductor" else None
            modules = {
                k: torch.compile(m, backend=cfg.compile_backend, mode=mode, dynamic=False) for k, m in modules.items()
            }
        self.modules = modules
        self.precision = {"perception": cfg.precision, "planner": cfg.head_precision, "rwm": cfg.head_precision}
        self._captured: dict[str, CapturedGraph] = {}

    def describe(self) -> dict:
        return {
            **super().describe(),
            "channels_last": self.cfg.channels_last,
            "cuda_graphs": self.cfg.cuda_graphs,
            "compile": self.cfg.compile,
        }

    def _autocast(self, graph: str) -> contextlib.AbstractContextManager:
        dtype = _DTYPES.get(self.precision[graph])
        if dtype is None:
            return contextlib.nullcontext()
        # no weight-cast cache while capturing: cached casts would be freed memory at replay time
        return torch.autocast(self.device.type, dtype=dtype, cache_enabled=not self._own_graphs)

    def _eager(self, graph: str) -> Callable[..., tuple[torch.Tensor, ...]]:
        module = self.modules[graph]

        def run(*args: torch.Tensor) -> tuple[torch.Tensor, ...]:
            with self._autocast(graph):
                outs = module(*args)
            return tuple(o.float() if o.is_floating_point() else o for o in outs)

        return run

    def to_native(self, name: str, value: np.ndarray | torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(value)
        return t.to(self.device, non_blocking=True)

    def run_graph(self, graph: str, feeds: dict[str, Any]) -> dict[str, torch.Tensor]:
        ins, outs = GRAPH_IO[graph]
        args = [feeds[k] for k in ins]
        with torch.inference_mode():
            if self._own_graphs:
                runner = self._captured.get(graph)
                if runner is None:
                    logger.info("capturing the %s graph as a CUDA graph", graph)
                    runner = self._captured[graph] = CapturedGraph(self._eager(graph), args)
                result = runner(*args)
            else:
                result = self._eager(graph)(*args)
        return dict(zip(outs, result))

    def to_host(self, value: torch.Tensor) -> np.ndarray:
        return value.detach().cpu().numpy()

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def close(self) -> None:
        self._captured.clear()
