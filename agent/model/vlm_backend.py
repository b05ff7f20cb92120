"""VLM backends for command guidance: a tiny random LLaVA built offline, or a pretrained model from a local folder.

A backend turns (images, ego speed, navigation command) into model inputs for one prompt, tokenises answer text, and
exposes the transformers model. Scoring and generation logic lives in `vlm.py` and is backend-agnostic.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.model.vlm_config import VLMConfig
from agent.model.vlm_prompt import IMAGE_PLACEHOLDER, build_prompt, prompt_vocabulary, question_text, view_label
from agent.types import NavigationCommand

log = logging.getLogger(__name__)

#: CLIP's image normalisation (the tiny vision tower is CLIP-shaped).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>", IMAGE_PLACEHOLDER)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(name: str) -> torch.dtype:
    return _DTYPES[name]


class VLMBackend:
    """Common surface: `model`, `tokenizer`, `eos_id`, `pad_id`, `prepare(...)`, `text_ids(...)`, `decode(...)`."""

    model: Any
    tokenizer: Any
    device: torch.device

    def __init__(self) -> None:
        forward = inspect.signature(self.model.forward).parameters
        #: transformers 5 renamed `past_key_values` to `cache`; accept both.
        self.cache_kwarg = "cache" if "cache" in forward else "past_key_values"
        self.keep_kwarg = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in forward), None)

    @property
    def eos_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(self.eos_id if pad is None else pad)

    def text_ids(self, text: str) -> list[int]:
        """Token ids of answer text, without special tokens."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))

    def prepare(
        self, images: dict[str, np.ndarray], ego_speed: float, nav_command: NavigationCommand
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------------------------------
# Tiny backend: LLaVA (tiny CLIP vision tower + tiny Llama) with a word-level tokenizer trained in memory
# --------------------------------------------------------------------------------------------------------------------


def build_tiny_tokenizer(views: Sequence[str], extra_special: Sequence[str] = ()) -> Any:
    """A word-level tokenizer over exactly the prompt and command vocabulary; deterministic, no hub files.

    Words are split on whitespace and punctuation and digits one by one, so every speed value is representable.
    `extra_special` adds whole tokens (e.g. another VLM family's image or chat markers) after the built-in ones.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pre = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True)])
    specials = list(dict.fromkeys([*SPECIAL_TOKENS, *extra_special]))
    vocab: dict[str, int] = {tok: i for i, tok in enumerate(specials)}
    corpus = prompt_vocabulary(views).replace(IMAGE_PLACEHOLDER, " ")
    for word, _ in pre.pre_tokenize_str(corpus):
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre
    tok.add_special_tokens(specials)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )


def build_tiny_llava(config: VLMConfig, vocab_size: int, image_token_id: int, pad_id: int, bos_id: int, eos_id: int):
    """A LLaVA with random weights drawn from `config.seed` (the global torch RNG is left untouched)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    vision = CLIPVisionConfig(
        hidden_size=config.vision_hidden,
        intermediate_size=2 * config.vision_hidden,
        num_hidden_layers=config.vision_layers,
        num_attention_heads=config.vision_heads,
        image_size=config.image_size,
        patch_size=config.patch_size,
        projection_dim=config.vision_hidden,
    )
    text = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=config.text_hidden,
        intermediate_size=config.text_intermediate,
        num_hidden_layers=config.text_layers,
        num_attention_heads=config.text_heads,
        num_key_value_heads=config.text_kv_heads,
        max_position_embeddings=4096,
        pad_token_id=pad_id,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
    )
    llava = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token_id,
        vision_feature_select_strategy="full",
        vision_feature_layer=-2,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = LlavaForConditionalGeneration(llava)
    return model


class TinyVLMBackend(VLMBackend):
    """Six views squashed to `image_size` squares, each giving (image_size / patch)^2 + 1 image tokens."""

    def __init__(self, config: VLMConfig) -> None:
        self.config = config
        self.device = torch.device(config.device)
        self.tokenizer = build_tiny_tokenizer(config.views)
        tk = self.tokenizer
        self.image_token_id = int(tk.convert_tokens_to_ids(IMAGE_PLACEHOLDER))
        self.model = build_tiny_llava(
            config, len(tk), self.image_token_id, tk.pad_token_id, tk.bos_token_id, tk.eos_token_id
        )
        if config.checkpoint:  # before the cast, so the stored values are checked exactly
            from agent.model.vlm_weights import load_vlm_weights

            load_vlm_weights(self.model, config, config.checkpoint)
        self.model.to(device=self.device, dtype=torch_dtype(config.dtype)).eval()
        self.tokens_per_image = (config.image_size // config.patch_size) ** 2 + 1
        self._mean = torch.tensor(CLIP_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(CLIP_STD, device=self.device).view(1, 3, 1, 1)
        super().__init__()

    def pixel_values(self, images: dict[str, np.ndarray]) -> torch.Tensor:
        """(V, 3, S, S) normalised pixels in view order: decimate to about 2 S, antialiased resize, aspect not kept."""
        s = self.config.image_size
        out = []
        for view in self.config.views:
            img = images[view]
            step = max(1, min(img.shape[0], img.shape[1]) // (2 * s))  # cheap pre-decimation of large frames
            img = torch.from_numpy(np.ascontiguousarray(img[::step, ::step])).to(self.device)
            x = img.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
            if x.shape[-2:] != (s, s):
                x = torch.nn.functional.interpolate(
                    x, size=(s, s), mode="bilinear", antialias=True, align_corners=False
                )
            out.append(x)
        pix = (torch.cat(out) - self._mean) / self._std
        return pix.to(torch_dtype(self.config.dtype))

    def prompt_ids(self, ego_speed: float, nav_command: NavigationCommand) -> list[int]:
        """BOS + prompt tokens with each image placeholder expanded to the view's image tokens."""
        ids = self.tokenizer(build_prompt(ego_speed, nav_command, self.config.views), add_special_tokens=False)
        out = [int(self.tokenizer.bos_token_id)]
        for i in ids["input_ids"]:
            out.extend([self.image_token_id] * self.tokens_per_image if i == self.image_token_id else [i])
        return out

    def prepare(
        self, images: dict[str, np.ndarray], ego_speed: float, nav_command: NavigationCommand
    ) -> dict[str, torch.Tensor]:
        ids = torch.tensor([self.prompt_ids(ego_speed, nav_command)], device=self.device)
        return {"input_ids": ids, "pixel_values": self.pixel_values(images)}


# --------------------------------------------------------------------------------------------------------------------
# Pretrained backend: AutoProcessor + AutoModelForImageTextToText from a local folder
# --------------------------------------------------------------------------------------------------------------------


class PretrainedVLMBackend(VLMBackend):
    """Any image-text-to-text model transformers can load (LLaVA, Qwen2-VL, ...); files must already be local."""

    def __init__(self, config: VLMConfig) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.config = config
        path = Path(config.model_path or "")
        if not config.model_path or not path.is_dir():
            raise FileNotFoundError(
                f"VLMConfig.backend='pretrained' needs model_path to be a local folder with the VLM's weights, config "
                f"and processor files (save_pretrained layout); got {config.model_path!r}"
                + ("" if not config.model_path else " which does not exist")
                + ". Download it beforehand or use backend='tiny'."
            )
        self.device = torch.device(config.device)
        try:
            self.processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
            self.model = AutoModelForImageTextToText.from_pretrained(
                str(path), local_files_only=True, dtype=torch_dtype(config.dtype)
            )
        except (OSError, ValueError) as exc:
            raise FileNotFoundError(f"cannot load a VLM from {path}: {exc}") from exc
        self.model.to(self.device).eval()
        self.tokenizer = self.processor.tokenizer
        super().__init__()

    def prompt_text(self, ego_speed: float, nav_command: NavigationCommand) -> str:
        """The Senna prompt in the processor's own format: its chat template when it has one."""
        views = self.config.views
        if getattr(self.processor, "chat_template", None):
            content: list[dict[str, str]] = []
            for v in views:
                content += [{"type": "text", "text": f"<{view_label(v)}>:\n"}, {"type": "image"}]
            content.append({"type": "text", "text": "\n" + question_text(ego_speed, nav_command)})
            messages = [{"role": "user", "content": content}]
            return str(self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
        image_token = getattr(self.processor, "image_token", None) or IMAGE_PLACEHOLDER
        return build_prompt(ego_speed, nav_command, views).replace(IMAGE_PLACEHOLDER, image_token)

    def prepare(
        self, images: dict[str, np.ndarray], ego_speed: float, nav_command: NavigationCommand
    ) -> dict[str, torch.Tensor]:
        from PIL import Image

        pil = [Image.fromarray(np.ascontiguousarray(images[v])) for v in self.config.views]
        batch = self.processor(text=[self.prompt_text(ego_speed, nav_command)], images=pil, return_tensors="pt")
        dtype = torch_dtype(self.config.dtype)
        out = {}
        for k, v in batch.items():
            if isinstance(v, torch.Tensor):
                v = v.to(self.device)
                out[k] = v.to(dtype) if v.is_floating_point() else v
        return out


def build_backend(config: VLMConfig) -> VLMBackend:
    if config.backend == "tiny":
        return TinyVLMBackend(config)
    return PretrainedVLMBackend(config)
