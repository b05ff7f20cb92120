"""Inference runtimes: one interface (`Runtime`), backends torch / onnxruntime / tensorrt, ONNX export.

Heavy optional packages (onnx, onnxruntime, tensorrt) are imported only by the backend or command that needs them.
`agent.config` imports `RuntimeConfig` from here, so the model-dependent names load lazily (no import cycle).
"""

from __future__ import annotations

from typing import Any

from agent.runtime.availability import BackendUnavailable, backends_available
from agent.runtime.config import RuntimeConfig

__all__ = ["BackendUnavailable", "Runtime", "RuntimeConfig", "backends_available", "build_runtime", "choose_backend"]


def __getattr__(name: str) -> Any:
    if name in ("Runtime", "build_runtime", "choose_backend"):
        from agent.runtime import base

        return getattr(base, name)
    raise AttributeError(f"module 'agent.runtime' has no attribute {name!r}")
