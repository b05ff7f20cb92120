"""`VLMConfig`: the VLM command guidance settings, on their own so the guidance (`vlm.py`) and the backends that
build the model (`vlm_backend.py`) both depend on the config and not on each other."""

from __future__ import annotations

from dataclasses import dataclass

from agent.model.vlm_prompt import B2D_VIEWS

BACKENDS = ("tiny", "pretrained")
MODES = ("likelihood", "generate")
DTYPES = ("float32", "bfloat16", "float16")
#: the tiny model's size fields: with `views` (the tokenizer's vocabulary) they shape its weights
TINY_SIZE_FIELDS = (
    "image_size",
    "patch_size",
    "vision_hidden",
    "vision_layers",
    "vision_heads",
    "text_hidden",
    "text_layers",
    "text_heads",
    "text_kv_heads",
    "text_intermediate",
)


@dataclass
class VLMConfig:
    """VLM command guidance. `tiny` builds a random LLaVA offline; `pretrained` loads `model_path` (local only)."""

    backend: str = "tiny"
    model_path: str | None = None  # local save_pretrained folder; required (at load time) by backend="pretrained"
    #: fine-tuned tiny-VLM weights (the `vlm.safetensors` of `irlvla train vlm`) loaded over the seeded random init;
    #: checked against this config's architecture fields (agent/model/vlm_weights.py). null: the random init
    checkpoint: str | None = None
    views: tuple[str, ...] = B2D_VIEWS
    image_size: int = 56  # per-view square side fed to the tiny vision tower (multiple of patch_size)
    refresh_every: int = 5  # planner ticks between VLM refreshes; the result is latched in between
    background: bool = False  # run the VLM in a worker thread (live driving)
    mode: str = "likelihood"  # "likelihood" (score every command) or "generate" (greedy text + parser)
    max_new_tokens: int = 16
    length_normalize: bool = False  # score = mean instead of sum of token log-probs
    reuse_prefix_cache: bool = True  # score candidates on the prompt's KV cache (else a full batched forward)
    seed: int = 0
    dtype: str = "float32"
    device: str = "cpu"  # standalone use only: `DrivingPolicy` builds its VLM on the policy's device
    # tiny-model sizes
    patch_size: int = 14
    vision_hidden: int = 32
    vision_layers: int = 2
    vision_heads: int = 2
    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate: int = 128

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"VLMConfig.backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.mode not in MODES:
            raise ValueError(f"VLMConfig.mode must be one of {MODES}, got {self.mode!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"VLMConfig.dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.model_path is not None and not isinstance(self.model_path, str):
            self.model_path = str(self.model_path)
        if self.checkpoint is not None:
            self.checkpoint = str(self.checkpoint)
            if self.backend != "tiny":
                raise ValueError(
                    "VLMConfig.checkpoint holds fine-tuned tiny-VLM weights; a fine-tuned pretrained VLM is a "
                    "save_pretrained folder given as model_path"
                )
        self.views = tuple(self.views)
        if not self.views or not all(isinstance(v, str) and v for v in self.views):
            raise ValueError(f"VLMConfig.views must be non-empty camera names, got {self.views!r}")
        if len(set(self.views)) != len(self.views):
            raise ValueError(f"VLMConfig.views has duplicates: {self.views}")
        for k in ("refresh_every", "max_new_tokens", *TINY_SIZE_FIELDS):
            v = getattr(self, k)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"VLMConfig.{k} must be a positive int, got {v!r}")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"VLMConfig.image_size {self.image_size} must be a multiple of patch_size {self.patch_size}"
            )
        if self.vision_hidden % self.vision_heads:
            raise ValueError("VLMConfig.vision_hidden must be divisible by vision_heads")
        if self.text_hidden % self.text_heads or (self.text_hidden // self.text_heads) % 2:
            raise ValueError("VLMConfig.text_hidden / text_heads must be an even integer head size (rotary)")
        if self.text_heads % self.text_kv_heads:
            raise ValueError("VLMConfig.text_heads must be a multiple of text_kv_heads")
        if not self.device or not isinstance(self.device, str):
            raise ValueError(f"VLMConfig.device must be a torch device string, got {self.device!r}")
