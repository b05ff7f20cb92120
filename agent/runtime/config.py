"""`RuntimeConfig`: which inference backend runs the model and how (precision, graphs, compilation, preprocessing).

It is a field of `ModelConfig` (`runtime:` in a preset or model YAML, a runtime field a checkpoint may be loaded with),
so the CARLA agent, the NAVSIM agent and the embedded world switch backend by config without code changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.validation import require_non_negative

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16")
ORT_PROVIDERS = ("cpu", "cuda", "tensorrt")
PREPROCESS_PLACES = ("auto", "host", "device")
#: torch.onnx exporters: the TorchScript tracer (known-good, unrolls the fixed DDIM loop) or torch.export ("dynamo")
EXPORTERS = ("torchscript", "dynamo")
#: the ONNX opset every exported graph is pinned to (GridSample-16 and ScatterND reduction=add need >= 16; 18 is the
#: lowest opset the dynamo exporter emits)
DEFAULT_OPSET = 18


@dataclass(frozen=True)
class RuntimeConfig:
    """How `DrivingPolicy` runs the model. Defaults reproduce the reference path (torch eager, fp32)."""

    #: "torch" (eager, optional half precision / CUDA graphs / torch.compile), "onnxruntime", "tensorrt", or "auto":
    #: TensorRT when installed with a CUDA device, else ONNX Runtime when installed, else torch (the choice is logged)
    backend: str = "torch"
    #: precision of the perception graph (backbone, BEV, perception heads): torch autocast, or TensorRT FP16 builder
    #: flag; ONNX Runtime runs fp32 (its TensorRT provider honours fp16)
    precision: str = "fp32"
    #: precision of the planner and the reward world model (the common split keeps these heads in fp32)
    head_precision: str = "fp32"
    #: torch: convert convolution weights and inputs to channels-last (NHWC) memory format
    channels_last: bool = False
    #: torch on CUDA: capture the three static-shape graphs (perception, planner, RWM) as CUDA graphs and replay them
    cuda_graphs: bool = False
    #: torch: wrap each graph in `torch.compile` (with cuda_graphs, torch's own "reduce-overhead" graphs replace ours)
    compile: bool = False
    #: torch.compile backend: "inductor" (generated kernels) or "eager" (dynamo tracing only: checks, debugging)
    compile_backend: str = "inductor"
    #: ONNX Runtime execution providers in order of preference; "cpu" is always appended as the fallback
    ort_providers: tuple[str, ...] = ("cpu",)
    #: CPU threads for ONNX Runtime's intra-op pool and torch on the CPU (0: the library default)
    threads: int = 0
    #: where camera frames are resized and normalised: "host" (Pillow, the reference), "device" (uint8 frames go to
    #: the device once; resize and normalise there), "auto" (device on CUDA, host otherwise)
    preprocess: str = "auto"
    #: folder with exported ONNX graphs (`irlvla export onnx`); empty: export on first use into `cache_dir`
    onnx_dir: str = ""
    #: cache for exported ONNX graphs and TensorRT engines; empty: ~/.cache/irlvla (or $IRLVLA_CACHE)
    cache_dir: str = ""
    #: ONNX opset the graphs are exported with
    opset: int = DEFAULT_OPSET
    #: torch.onnx exporter used when a runtime exports on first use
    exporter: str = "torchscript"
    #: TensorRT builder workspace limit (MiB)
    trt_workspace_mb: int = 4096

    def __post_init__(self) -> None:
        if isinstance(self.ort_providers, (list, str)):  # from YAML/JSON lists; a tuple keeps the config hashable
            providers = (self.ort_providers,) if isinstance(self.ort_providers, str) else tuple(self.ort_providers)
            object.__setattr__(self, "ort_providers", providers)
        for name, allowed in (
            ("backend", BACKENDS),
            ("precision", PRECISIONS),
            ("head_precision", PRECISIONS),
            ("preprocess", PREPROCESS_PLACES),
            ("exporter", EXPORTERS),
            ("compile_backend", ("inductor", "eager")),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"RuntimeConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        bad = [p for p in self.ort_providers if p not in ORT_PROVIDERS]
        if bad or not self.ort_providers:
            raise ValueError(f"RuntimeConfig.ort_providers must be a non-empty list of {ORT_PROVIDERS}, got {bad}")
        require_non_negative("RuntimeConfig", threads=self.threads)
        if int(self.threads) != self.threads:
            raise ValueError(f"RuntimeConfig.threads must be an integer, got {self.threads!r}")
        if not 16 <= int(self.opset) <= 23:
            raise ValueError(f"RuntimeConfig.opset must be in 16..23 (GridSample, ScatterND add), got {self.opset}")
        if self.trt_workspace_mb < 64:
            raise ValueError(f"RuntimeConfig.trt_workspace_mb must be >= 64, got {self.trt_workspace_mb}")
