"""The one place that knows which optional inference packages are installed (detect, don't import).

`importlib.util.find_spec` answers without importing, so `auto` can choose a backend without paying for TensorRT's
or ONNX Runtime's import; `require` raises an error that names what to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

#: package -> how a user gets it
INSTALL_HINTS = {
    "onnx": "pip install 'irlvla[trt]'  (onnx + onnxruntime)",
    "onnxruntime": "pip install 'irlvla[trt]'  (onnx + onnxruntime; onnxruntime-gpu for the CUDA/TensorRT providers)",
    "onnxscript": "pip install 'irlvla[trt]'  (needed by torch's dynamo ONNX exporter)",
    "tensorrt": "pip install 'irlvla[trt]' tensorrt  (NVIDIA's wheels; needs a CUDA GPU)",
}


class BackendUnavailable(ImportError):
    """An explicitly requested inference backend (or one of its packages) is not installed or has no device."""


def has(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def require(package: str, purpose: str) -> ModuleType:
    """Import an optional package, or raise `BackendUnavailable` naming the extra to install."""
    if not has(package):
        raise BackendUnavailable(
            f"{purpose} needs the '{package}' package, which is not installed: {INSTALL_HINTS[package]}"
        )
    return importlib.import_module(package)


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def ort_providers_available() -> list[str]:
    """ONNX Runtime's execution providers in this installation ([] when it is not installed)."""
    if not has("onnxruntime"):
        return []
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def backends_available() -> dict[str, bool]:
    """Which backends could run here: torch always; onnxruntime when installed (with onnx, to export); tensorrt also
    needs a CUDA GPU."""
    return {
        "torch": True,
        "onnxruntime": has("onnxruntime") and has("onnx"),
        "tensorrt": has("tensorrt") and has("onnx") and cuda_available(),
    }
