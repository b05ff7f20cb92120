"""Camera preprocessing for the model: optional JPEG round trip, width-fitting resize, crop, ImageNet normalisation.

The intrinsics are adjusted with the same resize and crop, so the BEV lift sees exactly the geometry of the pixels it
gets. Pixel coordinates follow `agent.geometry`: edges at integers, the principal point of an ideal camera at W/2.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import numpy as np
from PIL import Image

from agent.config import PreprocessConfig
from agent.types import CameraRig, Observation

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageTransform:
    """Resize by (sx, sy) to (resized_w, resized_h), then keep the window starting at (left, top)."""

    sx: float
    sy: float
    resized_w: int
    resized_h: int
    left: int
    top: int

    def apply_to_intrinsics(self, K: np.ndarray) -> np.ndarray:
        K = np.asarray(K, dtype=np.float64)
        out = K.copy()
        out[0, 0], out[0, 2] = K[0, 0] * self.sx, K[0, 2] * self.sx - self.left
        out[1, 1], out[1, 2] = K[1, 1] * self.sy, K[1, 2] * self.sy - self.top
        return out


def image_transform(src_w: int, src_h: int, cfg: PreprocessConfig) -> ImageTransform:
    """Scale so the output window is covered (fit width for wide images), then crop centre/bottom as configured."""
    out_w, out_h = cfg.image_width, cfg.image_height
    scale = max(out_w / src_w, out_h / src_h)
    new_w, new_h = max(out_w, round(src_w * scale)), max(out_h, round(src_h * scale))
    left = (new_w - out_w) // 2
    top = new_h - out_h if cfg.crop == "bottom" else (new_h - out_h) // 2
    return ImageTransform(new_w / src_w, new_h / src_h, new_w, new_h, left, top)


def jpeg_round_trip(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def preprocess_image(img: np.ndarray, tf: ImageTransform, cfg: PreprocessConfig) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, h, w) float32 normalised."""
    if cfg.jpeg_quality:
        img = jpeg_round_trip(img, cfg.jpeg_quality)
    if (img.shape[1], img.shape[0]) != (tf.resized_w, tf.resized_h):
        img = np.asarray(Image.fromarray(img).resize((tf.resized_w, tf.resized_h), Image.BILINEAR))
    img = img[tf.top : tf.top + cfg.image_height, tf.left : tf.left + cfg.image_width]
    mean = np.asarray(cfg.mean, dtype=np.float32) * 255.0
    std = np.asarray(cfg.std, dtype=np.float32) * 255.0
    return ((img.astype(np.float32) - mean) / std).transpose(2, 0, 1)


@dataclass
class PreprocessedCameras:
    images: np.ndarray  # (N, 3, H, W) float32
    intrinsics: np.ndarray  # (N, 3, 3) for the preprocessed images
    cam_to_ego: np.ndarray  # (N, 4, 4)
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.names)
        if self.images.ndim != 4 or self.images.shape[:2] != (n, 3):
            raise ValueError(f"PreprocessedCameras.images must be ({n}, 3, H, W), got {self.images.shape}")
        if self.intrinsics.shape != (n, 3, 3) or self.cam_to_ego.shape != (n, 4, 4):
            raise ValueError(
                f"PreprocessedCameras: intrinsics {self.intrinsics.shape} / cam_to_ego {self.cam_to_ego.shape} "
                f"must be ({n}, 3, 3) / ({n}, 4, 4)"
            )


@dataclass
class CameraPlan:
    """The model's cameras in config order: their frames (uint8, unchanged), resize/crop transforms and geometry."""

    frames: list[np.ndarray]
    transforms: list[ImageTransform]
    intrinsics: np.ndarray  # (N, 3, 3) float32, for the preprocessed images
    cam_to_ego: np.ndarray  # (N, 4, 4) float32
    names: tuple[str, ...]


def plan_cameras(images: dict[str, np.ndarray], rig: CameraRig, cfg: PreprocessConfig) -> CameraPlan:
    """Select `cfg.camera_names` from the rig (in config order), check frame sizes, derive transforms and geometry.

    Shared by the host path below and the device path (`agent.runtime.device_preprocess`), so both see the same
    pixels-to-geometry contract."""
    missing = [n for n in cfg.camera_names if n not in rig.names or n not in images]
    if missing:
        raise ValueError(
            f"preprocess: camera(s) {missing} required by the model are not in rig {rig.name} ({', '.join(rig.names)})"
        )
    frames, tfs, ks, exts = [], [], [], []
    for name in cfg.camera_names:
        cam = rig[name]
        img = images[name]
        if img.shape[:2] != (cam.height, cam.width):
            raise ValueError(
                f"preprocess: image {name} is {img.shape[1]}x{img.shape[0]}, its spec {cam.width}x{cam.height}"
            )
        tf = image_transform(cam.width, cam.height, cfg)
        frames.append(img)
        tfs.append(tf)
        ks.append(tf.apply_to_intrinsics(cam.intrinsics))
        exts.append(cam.cam_to_ego)
    return CameraPlan(
        frames, tfs, np.stack(ks).astype(np.float32), np.stack(exts).astype(np.float32), tuple(cfg.camera_names)
    )


def preprocess_cameras(images: dict[str, np.ndarray], rig: CameraRig, cfg: PreprocessConfig) -> PreprocessedCameras:
    """Select `cfg.camera_names` from the rig (in config order) and preprocess them with their geometry."""
    plan = plan_cameras(images, rig, cfg)
    out_imgs = [preprocess_image(img, tf, cfg) for img, tf in zip(plan.frames, plan.transforms)]
    return PreprocessedCameras(np.stack(out_imgs), plan.intrinsics, plan.cam_to_ego, plan.names)


def preprocess_observation(obs: Observation, cfg: PreprocessConfig) -> PreprocessedCameras:
    return preprocess_cameras(obs.images, obs.rig, cfg)
