"""NAVSIM data as a training dataset, through the NAVSIM agent's own feature and target builders.

NAVSIM's training scripts instantiate the agent from its Hydra YAML and run `agent.get_feature_builders()` on each
scene's `AgentInput` and `agent.get_target_builders()` on the `Scene`; this source does exactly that
(`build_navsim_dataset`), so training sees the pixels, camera geometry and ego vector the agent computes at run time
(`navsim_agent.agent.IRLVLAFeatureBuilder` runs the policy's own preprocessing) and the human future NAVSIM scores
against. The agent is a plugin named by its config (`_target_`), as in NAVSIM, so this room does not import the adapter.

Each scene becomes one sample of the embedded dataset's layout (`training.features.sample_layout`), limited to what
the builders give: images, intrinsics, cam_to_ego, ego, nav_command, gt_trajectory, and the speed / path commands
auto-labelled from the human future with the embedded data's rules (`commands_from_trajectory`, current speed from
the ego vector, future speeds from the pose spacing). Images are stored as the uint8 crops the builder normalised (the
normalisation is inverted exactly and checked), so `ShardDataset`, `collate` and every stage read NAVSIM shards
unchanged; the losses whose targets NAVSIM's builders do not provide (detection, map, BEV segmentation) are skipped
by `IRLVLA.loss`. RWM labels need the exact scorer's scene and stay embedded-world only (NAVSIM's metric cache is the
full-size route, docs/training.md).

navsim and nuplan-devkit are optional and imported lazily (`navsim_scene_loader`); without them the error names the
`navsim` extra and docs/navsim_crosscheck.md, which says how to install both from source.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.config import ModelConfig, load_preset
from agent.model.vlm_labels import commands_from_trajectory
from agent.types import PATH_PLAN_COMMANDS, SPEED_PLAN_COMMANDS
from irlvla.atomic import atomic_write_json
from training.dataset import INDEX, MANIFEST, _progress, _write_shard
from training.features import sample_layout

logger = logging.getLogger(__name__)

#: builder outputs a sample is made of (the NAVSIM agent's `irlvla_features` and `irlvla_targets`)
FEATURE_KEYS = ("images", "intrinsics", "cam_to_ego", "ego")
TARGET_KEYS = ("gt_trajectory",)
#: the ego vector's one-hot navigation command (agent.policy.ego_features: vx vy ax ay yaw_rate | cmd(4) | target(3))
NAV_SLICE = slice(5, 9)
NAVSIM_MISSING = (
    "reading NAVSIM logs needs the NAVSIM devkit (navsim main + nuplan-devkit, installed from source as "
    "docs/navsim_crosscheck.md shows) and the 'navsim' extra (`pip install irlvla[navsim]`)"
)


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def uint8_images(images: np.ndarray, cfg: ModelConfig, tol: float = 0.02) -> np.ndarray:
    """Normalised (N, 3, H, W) float images -> the (N, H, W, 3) uint8 crops they came from (exact inverse, checked)."""
    mean = np.asarray(cfg.preprocess.mean, np.float64).reshape(1, 3, 1, 1) * 255.0
    std = np.asarray(cfg.preprocess.std, np.float64).reshape(1, 3, 1, 1) * 255.0
    raw = images.astype(np.float64) * std + mean
    rounded = np.rint(raw)
    err = float(np.abs(raw - rounded).max()) if raw.size else 0.0
    if err > tol or rounded.min() < 0 or rounded.max() > 255:
        raise ValueError(
            f"feature images are not 8-bit pixels under the model's normalisation (off by up to {err:.3f}); "
            "the feature builder and the dataset's preset must share the preprocess config"
        )
    return rounded.astype(np.uint8).transpose(0, 2, 3, 1)


def navsim_sample(features: dict, targets: dict, cfg: ModelConfig) -> dict[str, np.ndarray]:
    """One sample from a scene's builder outputs (see the module docstring), checked against the sample layout."""
    missing = [k for k in FEATURE_KEYS if k not in features] + [k for k in TARGET_KEYS if k not in targets]
    if missing:
        raise KeyError(
            f"the builders gave {sorted(features)} + {sorted(targets)}, without {missing}: the NAVSIM dataset needs "
            "the IRL-VLA agent's builders (navsim_agent.agent.IRLVLAFeatureBuilder / IRLVLATargetBuilder)"
        )
    ego = _numpy(features["ego"]).astype(np.float32)
    gt = _numpy(targets["gt_trajectory"]).astype(np.float64)
    speed_cmd, path_cmd = commands_from_trajectory(gt, float(np.hypot(ego[0], ego[1])), cfg.planner.interval)
    sample = {
        "images": uint8_images(_numpy(features["images"]), cfg),
        "intrinsics": _numpy(features["intrinsics"]).astype(np.float32),
        "cam_to_ego": _numpy(features["cam_to_ego"]).astype(np.float32),
        "ego": ego,
        "nav_command": np.int64(int(np.argmax(ego[NAV_SLICE]))),
        "gt_trajectory": gt.astype(np.float32),
        "speed_command": np.int64(int(speed_cmd)),
        "path_command": np.int64(int(path_cmd)),
    }
    layout = sample_layout(cfg)
    for k, v in sample.items():
        if (v.shape, v.dtype) != layout[k]:
            raise ValueError(f"NAVSIM sample {k}: {v.shape} {v.dtype}, the dataset layout needs {layout[k]}")
    return sample


def scene_samples(
    loader: Any, feature_builders: Sequence, target_builders: Sequence, cfg: ModelConfig, tokens: Iterable[str]
):
    """(token, sample or None, error or None) per token: NAVSIM's dataset caching loop over a `SceneLoader`."""
    for token in tokens:
        try:
            scene = loader.get_scene_from_token(token)
            agent_input = scene.get_agent_input()
            features: dict = {}
            for b in feature_builders:
                features.update(b.compute_features(agent_input))
            targets: dict = {}
            for b in target_builders:
                targets.update(b.compute_targets(scene))
            yield token, navsim_sample(features, targets, cfg), None
        except KeyError:
            raise  # the wrong builders: every scene would fail the same way
        except Exception as exc:  # one unreadable scene is a recorded failure, not a dead run
            yield token, None, f"{type(exc).__name__}: {exc}"


def build_navsim_dataset(
    loader: Any,
    feature_builders: Sequence,
    target_builders: Sequence,
    out: str | Path,
    preset: str = "tiny",
    shard_size: int = 32,
    max_scenes: int = 0,
    source: dict | None = None,
    progress: bool = True,
) -> dict:
    """Write a NAVSIM split as shards + index.json + manifest.json (the embedded dataset's format); returns the
    manifest. `loader`: a NAVSIM `SceneLoader` (or anything with `tokens` and `get_scene_from_token`)."""
    if shard_size < 1 or max_scenes < 0:
        raise ValueError("build_navsim_dataset: shard_size must be >= 1 and max_scenes >= 0")
    cfg = load_preset(preset)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    tokens = list(loader.tokens)[: max_scenes or None]
    shards: list[dict] = []
    samples: list[dict] = []
    failures: list[dict] = []
    buf: list[dict] = []
    keys: list[str] = []
    bar = _progress(len(tokens), "data navsim", progress)
    for token, sample, error in scene_samples(loader, feature_builders, target_builders, cfg, tokens):
        bar.update(1)
        if error is not None:
            logger.error("NAVSIM scene %s failed: %s", token, error)
            failures.append({"token": token, "error": error})
            continue
        meta = {"token": token, "shard": len(shards), "row": len(buf)}
        meta.update(speed_command=int(sample["speed_command"]), path_command=int(sample["path_command"]))
        samples.append(meta)
        buf.append(sample)
        keys = keys or sorted(sample)
        if len(buf) == shard_size:
            shards.append(_write_shard(out, len(shards), buf))
            buf = []
    bar.close()
    if buf:
        shards.append(_write_shard(out, len(shards), buf))
    manifest = {
        "format": "irlvla-dataset/1",
        "source": "navsim",
        "split": "navsim",
        "navsim": source or {},
        "config": {"preset": preset, "shard_size": shard_size, "max_scenes": max_scenes},
        "num_scenes": len(tokens),
        "num_samples": len(samples),
        "num_shards": len(shards),
        "failed_scenes": failures,
        "keys": keys,
        "speed_commands": dict(Counter(SPEED_PLAN_COMMANDS[s["speed_command"]] for s in samples)),
        "path_commands": dict(Counter(PATH_PLAN_COMMANDS[s["path_command"]] for s in samples)),
        "wall_s": round(time.time() - t0, 1),
    }
    atomic_write_json(out / INDEX, {"shards": shards, "samples": samples})
    atomic_write_json(out / MANIFEST, manifest)
    logger.info("NAVSIM dataset %s: %d samples in %d shards, %d failed", out, len(samples), len(shards), len(failures))
    return manifest


def instantiate_agent(config: str | Path, overrides: Sequence[str] = ()) -> Any:
    """The NAVSIM agent of a Hydra agent YAML (`_target_`, e.g. navsim_agent/irlvla_agent.yaml), initialised."""
    try:
        from hydra.utils import instantiate
        from omegaconf import OmegaConf
    except ImportError as exc:
        raise ImportError(f"instantiating a NAVSIM agent config needs hydra-core: {NAVSIM_MISSING}") from exc
    cfg = OmegaConf.merge(OmegaConf.load(str(config)), OmegaConf.from_dotlist(list(overrides)))
    agent = instantiate(cfg)
    agent.initialize()
    return agent


def require_navsim() -> None:
    """Fail early, naming the extra, when the NAVSIM devkit is not importable."""
    try:
        import navsim.common.dataloader  # noqa: F401
    except ImportError as exc:
        raise ImportError(NAVSIM_MISSING) from exc


def navsim_scene_loader(
    data_path: str | Path, sensor_path: str | Path, sensor_config: Any, max_scenes: int = 0, scene_filter: Any = None
) -> Any:
    """NAVSIM v2's `SceneLoader` over `data_path` (log pickles) and `sensor_path` (sensor blobs) with the agent's
    sensor config; `scene_filter` a `SceneFilter` (default: 4 history and 10 future frames, NAVSIM's own default)."""
    try:
        from navsim.common.dataclasses import SceneFilter
        from navsim.common.dataloader import SceneLoader
    except ImportError as exc:
        raise ImportError(NAVSIM_MISSING) from exc
    if scene_filter is None:
        scene_filter = SceneFilter(max_scenes=max_scenes or None)
    return SceneLoader(
        data_path=Path(data_path),
        original_sensor_path=Path(sensor_path),
        scene_filter=scene_filter,
        sensor_config=sensor_config,
    )


__all__ = [
    "build_navsim_dataset",
    "instantiate_agent",
    "navsim_sample",
    "navsim_scene_loader",
    "require_navsim",
    "scene_samples",
    "uint8_images",
]
