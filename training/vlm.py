"""VLM command guidance fine-tuning on the auto-labelled commands (the tiny transformers LLaVA built from config).

Each sample is the policy's own prompt (six views, ego speed, navigation command; `TinyVLMBackend.prompt_ids`)
followed by the answer "SPEED, PATH" + EOS; the loss is the language-model cross-entropy on the answer tokens only,
so the likelihood scoring the policy uses (`VLMCommandGuidance`) ranks the labelled commands first. The evaluation
runs that scoring on each sample and reports accuracy per class of both commands. The trained weights are saved as
`vlm.safetensors` (`agent.model.vlm_weights`: safetensors with the VLM config and a digest in its metadata, sha256
sidecar) and the policy loads them through `VLMConfig.checkpoint` (an agent config's `vlm_checkpoint`); a full-size
model is fine-tuned the same way from a local `model_path` (backend "pretrained").
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from agent.model.vlm import VLMCommandGuidance, VLMConfig
from agent.model.vlm_prompt import ANSWER_SEPARATOR
from agent.model.vlm_weights import save_vlm_weights
from agent.types import PATH_PLAN_COMMANDS, SPEED_PLAN_COMMANDS, NavigationCommand
from irlvla.atomic import atomic_write_json
from irlvla.configload import to_plain
from training.config import TrainConfig
from training.dataset import ShardDataset, StepBatchSampler
from training.evaluate import spread
from training.loop import DistInfo, train_loop

logger = logging.getLogger(__name__)


def raw_collate(items: list[dict]) -> dict[str, torch.Tensor]:
    """Stack samples without image normalisation (the VLM has its own pixel pipeline)."""
    return {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in items[0]}


def sample_images(images: np.ndarray, camera_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {name: np.ascontiguousarray(images[i]) for i, name in enumerate(camera_names)}


class VLMStep:
    """Teacher-forced answer loss of a batch (prompt tokens masked out of the labels)."""

    def __init__(self, guidance: VLMCommandGuidance, camera_names: tuple[str, ...]) -> None:
        self.g = guidance
        self.cams = camera_names

    def answer_ids(self, speed: int, path: int) -> list[int]:
        b = self.g.backend
        return b.text_ids(f"{SPEED_PLAN_COMMANDS[speed]}{ANSWER_SEPARATOR} {PATH_PLAN_COMMANDS[path]}") + [b.eos_id]

    def __call__(self, net, batch: dict, gen: torch.Generator, step: int):
        b = self.g.backend
        seqs, labels, pixels = [], [], []
        for j in range(batch["images"].shape[0]):
            imgs = sample_images(batch["images"][j].numpy(), self.cams)
            speed = float(batch["ego"][j, 0])
            prompt = b.prompt_ids(speed, NavigationCommand(int(batch["nav_command"][j])))
            answer = self.answer_ids(int(batch["speed_command"][j]), int(batch["path_command"][j]))
            seqs.append(prompt + answer)
            labels.append([-100] * len(prompt) + answer)
            pixels.append(b.pixel_values(imgs))
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), b.pad_id, dtype=torch.long)
        lab = torch.full((len(seqs), width), -100, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for j, (s, y) in enumerate(zip(seqs, labels)):
            ids[j, : len(s)], lab[j, : len(y)], mask[j, : len(s)] = torch.tensor(s), torch.tensor(y), 1
        out = net(input_ids=ids, pixel_values=torch.cat(pixels), attention_mask=mask, labels=lab)
        return out.loss, {"answer_ce": float(out.loss.detach())}


@torch.no_grad()
def command_accuracy(guidance: VLMCommandGuidance, ds: ShardDataset, idx: list[int]) -> dict:
    """Likelihood-scored commands vs the auto-labels: overall and per-class accuracy of speed and path."""
    guidance.backend.model.eval()
    cams = tuple(ds.model_cfg.preprocess.camera_names)
    hits: dict[str, dict[str, list[int]]] = {"speed": defaultdict(list), "path": defaultdict(list)}
    for i in idx:
        item = ds[i]
        res = guidance.score_commands(
            sample_images(item["images"], cams), float(item["ego"][0]), NavigationCommand(int(item["nav_command"]))
        )
        hits["speed"][SPEED_PLAN_COMMANDS[int(item["speed_command"])]].append(
            int(res.speed) == int(item["speed_command"])
        )
        hits["path"][PATH_PLAN_COMMANDS[int(item["path_command"])]].append(int(res.path) == int(item["path_command"]))
    return {
        kind: {
            "accuracy": round(float(np.mean(sum(per.values(), []))), 4),
            "per_class": {c: {"accuracy": round(float(np.mean(v)), 4), "n": len(v)} for c, v in sorted(per.items())},
        }
        for kind, per in hits.items()
    }


def fit_vlm(
    data: str | Path,
    out: str | Path,
    cfg: TrainConfig,
    eval_data: str | None = None,
    resume: bool = True,
    progress: bool = True,
    vlm_cfg: VLMConfig | None = None,
    eval_samples: int = 64,
) -> tuple[VLMCommandGuidance, dict]:
    """`train_vlm`, also returning the guidance around the trained model (what a policy gets from the file)."""
    out = Path(out)
    ds = ShardDataset(data)
    vlm_cfg = vlm_cfg or ds.model_cfg.vlm
    if vlm_cfg.backend != "tiny":
        raise ValueError("irlvla train vlm fine-tunes the tiny backend here; a pretrained model needs a GPU recipe")
    guidance = VLMCommandGuidance(vlm_cfg)  # a `vlm_cfg.checkpoint` is the starting point when set
    model = guidance.backend.model
    cams = tuple(ds.model_cfg.preprocess.camera_names)
    missing = [v for v in vlm_cfg.views if v not in cams]
    if missing:
        raise ValueError(f"VLM views {missing} are not among the dataset's cameras {cams}")

    def loader(start: int, d: DistInfo):
        sampler = StepBatchSampler(ds, cfg.batch_size, cfg.steps, cfg.seed, start, d.rank, d.world)
        return torch.utils.data.DataLoader(ds, batch_sampler=sampler, num_workers=0, collate_fn=raw_collate)

    params = [p for p in model.parameters() if p.requires_grad]
    final, summary = train_loop(model, params, loader, VLMStep(guidance, cams), cfg, out, resume, progress)
    guidance.backend.model = final.eval()
    weights = save_vlm_weights(final, vlm_cfg, out / "vlm.safetensors")
    atomic_write_json(out / "vlm_config.json", to_plain(vlm_cfg))
    summary.update(weights=str(weights), config=to_plain(cfg))
    if eval_data:
        eds = ShardDataset(eval_data)
        summary["eval"] = command_accuracy(guidance, eds, spread(len(eds), eval_samples))
    atomic_write_json(out / "summary.json", summary)
    logger.info("vlm: %s", json.dumps(summary.get("eval", {}))[:500])
    return guidance, summary


def train_vlm(*args, **kwargs) -> dict:
    """`fit_vlm` returning only its summary: writes `out/vlm.safetensors` (+ sha256; the policy loads it through
    `VLMConfig.checkpoint` or an agent config's `vlm_checkpoint`), `vlm_config.json` and `summary.json` (with the
    per-class accuracy on `eval_data`)."""
    return fit_vlm(*args, **kwargs)[1]


__all__ = ["VLMStep", "command_accuracy", "fit_vlm", "raw_collate", "train_vlm"]
