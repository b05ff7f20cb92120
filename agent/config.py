"""Model configuration: one validated dataclass per component, aggregated by `ModelConfig`.

Presets live in `agent/configs/{full,tiny}.yaml`; `full` is the paper's model (VoVNetV2-99 at 256x704, 128x128 BEV over
64x64 m, 30 agent queries), `tiny` the same code small enough for CPU tests. A resolved config (every field explicit)
is stored as JSON inside each checkpoint, so a checkpoint always rebuilds the exact model it was saved from.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.epdms_metrics import EPDMS_METRICS
from agent.model.vlm_config import VLMConfig
from agent.types import PATH_PLAN_COMMANDS, SPEED_PLAN_COMMANDS
from agent.validation import require_non_negative as _non_negative
from agent.validation import require_positive as _positive
from agent.vehicles import MKZ_LENGTH, MKZ_REAR_AXLE_TO_CENTER, MKZ_WIDTH
from irlvla.atomic import atomic_write_text
from irlvla.configload import ConfigError, load_config, load_config_file, to_plain, yaml_load

logger = logging.getLogger(__name__)

PRESET_DIR = Path(__file__).resolve().parent / "configs"
PRESETS = ("full", "tiny")

#: Bench2Drive camera order: the model's camera axis (agent.types.B2D_CAMERA_MOUNTS).
DEFAULT_CAMERAS = ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")
#: TransFuser/DiffusionDrive BEV semantic classes (NAVSIM), painted in this order.
SEG_CLASSES = ("background", "road", "walkway", "centerline", "static_object", "vehicle", "pedestrian")


def _range(name: str, lo_hi: tuple[float, float]) -> None:
    if len(lo_hi) != 2 or not lo_hi[0] < lo_hi[1]:
        raise ValueError(f"{name} must be (low, high) with low < high, got {lo_hi!r}")


@dataclass
class PreprocessConfig:
    """Camera selection and image preprocessing: fit the width, crop the height, ImageNet-normalise."""

    camera_names: tuple[str, ...] = DEFAULT_CAMERAS
    image_height: int = 256
    image_width: int = 704
    #: which rows survive the vertical crop after the width-fitting resize: "bottom" (drop sky) or "center"
    crop: str = "bottom"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    #: JPEG round trip at this quality (1-100) to match JPEG-compressed training data; 0 disables it
    jpeg_quality: int = 0

    def __post_init__(self) -> None:
        if not self.camera_names or len(set(self.camera_names)) != len(self.camera_names):
            raise ValueError(f"PreprocessConfig.camera_names must be unique and non-empty, got {self.camera_names}")
        _positive("PreprocessConfig", image_height=self.image_height, image_width=self.image_width)
        if self.image_height % 32 or self.image_width % 32:
            raise ValueError(
                f"PreprocessConfig: image size {self.image_height}x{self.image_width} must be divisible by 32 "
                "(the backbone's largest stride)"
            )
        if self.crop not in ("bottom", "center"):
            raise ValueError(f"PreprocessConfig.crop must be 'bottom' or 'center', got {self.crop!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("PreprocessConfig.mean/std must have 3 entries and std must be positive")
        if not (0 <= self.jpeg_quality <= 100):
            raise ValueError(f"PreprocessConfig.jpeg_quality must be in [0, 100], got {self.jpeg_quality}")

    @property
    def num_cameras(self) -> int:
        return len(self.camera_names)


@dataclass
class BackboneConfig:
    """VoVNet image backbone (timm). `variant` is a timm VoVNet name, or "custom" to build from the fields below."""

    variant: str = "ese_vovnet99b"
    #: timm feature indices: 0 stem, 1..4 stages at strides 4, 8, 16, 32. DiffVLA uses stages 4 and 5 (16x, 32x).
    out_indices: tuple[int, ...] = (3, 4)
    stem_chs: tuple[int, int, int] = (64, 64, 128)
    stage_conv_chs: tuple[int, int, int, int] = (128, 160, 192, 224)
    stage_out_chs: tuple[int, int, int, int] = (256, 512, 768, 1024)
    layer_per_block: int = 5
    block_per_stage: tuple[int, int, int, int] = (1, 3, 9, 3)
    depthwise: bool = False
    attn: str = "ese"
    #: detectron2's V-99-eSE gates every OSA block, timm only each stage's last; True matches DD3D weights
    ese_every_block: bool = False
    #: optional weights: a timm-layout state dict, or converted DD3D/detectron2 V2-99 weights (see docs/model.md)
    pretrained_path: str = ""

    def __post_init__(self) -> None:
        if not self.variant:
            raise ValueError("BackboneConfig.variant must be a timm VoVNet name or 'custom'")
        if self.variant != "custom":
            self._resolve_named_variant()
        if not self.out_indices or any(i not in (1, 2, 3, 4) for i in self.out_indices):
            raise ValueError(f"BackboneConfig.out_indices must be a non-empty subset of 1..4, got {self.out_indices}")
        if list(self.out_indices) != sorted(set(self.out_indices)):
            raise ValueError(f"BackboneConfig.out_indices must be strictly increasing, got {self.out_indices}")
        if len(self.stem_chs) != 3 or len(self.stage_conv_chs) != 4 or len(self.stage_out_chs) != 4:
            raise ValueError("BackboneConfig: stem_chs needs 3 entries, stage_conv_chs/stage_out_chs 4 each")
        if len(self.block_per_stage) != 4 or min(self.block_per_stage) < 1 or self.layer_per_block < 1:
            raise ValueError("BackboneConfig: block_per_stage needs 4 entries >= 1 and layer_per_block >= 1")
        if min(*self.stem_chs, *self.stage_conv_chs, *self.stage_out_chs) <= 0:
            raise ValueError("BackboneConfig: channel counts must be positive")
        if self.attn not in ("ese", "eca", ""):
            raise ValueError(f"BackboneConfig.attn must be 'ese', 'eca' or '', got {self.attn!r}")

    def _resolve_named_variant(self) -> None:
        """Copy a timm variant's architecture into the fields so the saved config states it explicitly."""
        from timm.models import vovnet

        arch = vovnet.model_cfgs.get(self.variant)
        if arch is None:
            raise ValueError(
                f"BackboneConfig.variant {self.variant!r} is not a timm VoVNet "
                f"({sorted(vovnet.model_cfgs)}) or 'custom'"
            )
        self.stem_chs = tuple(arch["stem_chs"])
        self.stage_conv_chs = tuple(arch["stage_conv_chs"])
        self.stage_out_chs = tuple(arch["stage_out_chs"])
        self.layer_per_block = int(arch["layer_per_block"])
        self.block_per_stage = tuple(arch["block_per_stage"])
        self.depthwise = bool(arch["depthwise"])
        self.attn = str(arch["attn"] or "")

    @property
    def strides(self) -> tuple[int, ...]:
        return tuple(2 ** (i + 1) for i in self.out_indices)

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(self.stage_out_chs[i - 1] for i in self.out_indices)


@dataclass
class NeckConfig:
    """FPN over the backbone outputs; the finest output level feeds the BEV lift."""

    out_channels: int = 256

    def __post_init__(self) -> None:
        _positive("NeckConfig", out_channels=self.out_channels)


@dataclass
class BEVConfig:
    """LSS lift-splat: a categorical depth distribution per pixel, scatter-added into a square ego-centred grid."""

    size: int = 128
    range_m: float = 64.0
    depth_min: float = 1.0
    depth_max: float = 60.0
    depth_step: float = 0.5
    #: points outside [z_min, z_max] metres (ego frame, z up) are dropped, as LSS's single z bin does
    z_min: float = -3.0
    z_max: float = 5.0
    #: channels of the lifted camera features (DiffVLA: 64)
    lift_channels: int = 64
    #: channels of the BEV encoder's output (the BEV feature map every head reads)
    out_channels: int = 256
    encoder_blocks: int = 2

    def __post_init__(self) -> None:
        _positive("BEVConfig", size=self.size, range_m=self.range_m, depth_step=self.depth_step)
        _positive("BEVConfig", lift_channels=self.lift_channels, out_channels=self.out_channels)
        _non_negative("BEVConfig", encoder_blocks=self.encoder_blocks, depth_min=self.depth_min)
        if self.depth_max <= self.depth_min:
            raise ValueError(f"BEVConfig: depth_max {self.depth_max} must exceed depth_min {self.depth_min}")
        if self.z_max <= self.z_min:
            raise ValueError(f"BEVConfig: z_max {self.z_max} must exceed z_min {self.z_min}")
        if self.num_depth_bins < 2:
            raise ValueError("BEVConfig: the depth range must hold at least 2 bins")

    @property
    def num_depth_bins(self) -> int:
        return int(round((self.depth_max - self.depth_min) / self.depth_step))

    @property
    def resolution(self) -> float:
        return self.range_m / self.size


@dataclass
class DetectionConfig:
    """1 ego query + `num_agents` agent queries decoded against BEV tokens (DiffVLA: 3 layers, 8 heads, ffn 512)."""

    num_agents: int = 30
    class_names: tuple[str, ...] = ("vehicle", "pedestrian", "bicycle")
    num_layers: int = 3
    ffn_dim: int = 512
    #: box loss weight and existence/class loss weight (DiffVLA: box 0.1, cls 10; we default to TransFuser's 1/10)
    box_weight: float = 1.0
    cls_weight: float = 10.0
    #: maximum |vx|, |vy| the velocity head can express (tanh-scaled), m/s
    max_speed: float = 30.0

    def __post_init__(self) -> None:
        _positive("DetectionConfig", num_agents=self.num_agents, num_layers=self.num_layers, ffn_dim=self.ffn_dim)
        _positive("DetectionConfig", max_speed=self.max_speed)
        _non_negative("DetectionConfig", box_weight=self.box_weight, cls_weight=self.cls_weight)
        if not self.class_names:
            raise ValueError("DetectionConfig.class_names must be non-empty")


@dataclass
class MapConfig:
    """Vectorised HD-map queries: each decodes one polyline of `num_points` points and a class."""

    num_queries: int = 50
    num_points: int = 20
    class_names: tuple[str, ...] = ("lane_divider", "road_boundary", "centerline")
    num_layers: int = 3
    ffn_dim: int = 512
    pts_weight: float = 5.0
    cls_weight: float = 2.0

    def __post_init__(self) -> None:
        _positive("MapConfig", num_queries=self.num_queries, num_layers=self.num_layers, ffn_dim=self.ffn_dim)
        if self.num_points < 2:
            raise ValueError(f"MapConfig.num_points must be >= 2, got {self.num_points}")
        _non_negative("MapConfig", pts_weight=self.pts_weight, cls_weight=self.cls_weight)
        if not self.class_names:
            raise ValueError("MapConfig.class_names must be non-empty")


@dataclass
class SegConfig:
    """BEV semantic segmentation (7 classes) and which classes count as drivable for the selection check."""

    class_names: tuple[str, ...] = SEG_CLASSES
    drivable_classes: tuple[str, ...] = ("road", "centerline", "vehicle")
    hidden_channels: int = 128
    #: output raster is BEV size x upsample (DiffVLA: 256x256 at 0.25 m from a 128x128 BEV)
    upsample: int = 2
    loss_weight: float = 14.0

    def __post_init__(self) -> None:
        if len(self.class_names) < 2 or len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"SegConfig.class_names must hold >= 2 unique names, got {self.class_names}")
        unknown = [c for c in self.drivable_classes if c not in self.class_names]
        if unknown or not self.drivable_classes:
            raise ValueError(f"SegConfig.drivable_classes {unknown or '()'} not among class_names {self.class_names}")
        _positive("SegConfig", hidden_channels=self.hidden_channels, upsample=self.upsample)
        _non_negative("SegConfig", loss_weight=self.loss_weight)

    @property
    def drivable_indices(self) -> tuple[int, ...]:
        return tuple(self.class_names.index(c) for c in self.drivable_classes)


@dataclass
class PlannerConfig:
    """Truncated-diffusion planner (DiffusionDrive): K anchors, DDIM, a cascade decoder, cls + offset heads."""

    num_anchors: int = 20
    #: (N, 8, 3) .npy of anchors; N != num_anchors is reduced by k-means. Empty: a built-in procedural fan.
    anchors_path: str = ""
    num_poses: int = 8
    interval: float = 0.5
    num_layers: int = 2
    ffn_dim: int = 512
    num_train_timesteps: int = 1000
    beta_schedule: str = "scaled_linear"
    #: training noises anchors at t ~ U{0 .. train_truncation - 1}
    train_truncation: int = 50
    #: inference noises anchors at this timestep and denoises with `num_inference_steps` DDIM steps down to 0
    infer_start_timestep: int = 8
    num_inference_steps: int = 2
    #: normalisation ranges mapped to [-1, 1] (DiffusionDrive's norm_odo)
    x_range: tuple[float, float] = (-1.2, 55.7)
    y_range: tuple[float, float] = (-20.0, 26.0)
    heading_range: tuple[float, float] = (-2.0, 1.9)
    #: ego input: vx, vy, ax, ay, yaw_rate, one-hot nav command (4), target point x/32, y/32, has-target
    ego_dim: int = 12
    cls_weight: float = 10.0
    reg_weight: float = 8.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0

    def __post_init__(self) -> None:
        _positive("PlannerConfig", num_anchors=self.num_anchors, num_poses=self.num_poses, interval=self.interval)
        _positive("PlannerConfig", num_layers=self.num_layers, ffn_dim=self.ffn_dim, ego_dim=self.ego_dim)
        _positive(
            "PlannerConfig", num_train_timesteps=self.num_train_timesteps, num_inference_steps=self.num_inference_steps
        )
        if self.beta_schedule not in ("linear", "scaled_linear", "squaredcos_cap_v2"):
            raise ValueError(f"PlannerConfig.beta_schedule {self.beta_schedule!r} is not a diffusers DDIM schedule")
        if not (1 <= self.train_truncation <= self.num_train_timesteps):
            raise ValueError(f"PlannerConfig.train_truncation must be in [1, {self.num_train_timesteps}]")
        if not (0 <= self.infer_start_timestep < self.num_train_timesteps):
            raise ValueError(f"PlannerConfig.infer_start_timestep must be in [0, {self.num_train_timesteps})")
        if self.num_inference_steps > self.infer_start_timestep + 1:
            raise ValueError(
                f"PlannerConfig: {self.num_inference_steps} inference steps cannot fit in timesteps "
                f"{self.infer_start_timestep}..0"
            )
        for name in ("x_range", "y_range", "heading_range"):
            _range(f"PlannerConfig.{name}", getattr(self, name))
        _non_negative("PlannerConfig", cls_weight=self.cls_weight, reg_weight=self.reg_weight)
        if not (0.0 <= self.focal_alpha <= 1.0) or self.focal_gamma < 0:
            raise ValueError("PlannerConfig: focal_alpha must be in [0, 1] and focal_gamma >= 0")

    @property
    def inference_timesteps(self) -> tuple[int, ...]:
        """Descending DDIM timesteps, from `infer_start_timestep` down to 0 (DiffusionDrive: 2 steps)."""
        n, t0 = self.num_inference_steps, self.infer_start_timestep
        if n == 1:
            return (t0,)
        return tuple(int(round(t0 * (n - 1 - i) / (n - 1))) for i in range(n))


@dataclass
class RWMConfig:
    """Reward world model: scene tokens (detached) + a candidate -> the nine EPDMS sub-metrics and predicted EPDMS."""

    num_layers: int = 2
    ffn_dim: int = 512
    detach_inputs: bool = True
    #: per-metric loss weights in EPDMS_METRICS order (DiffVLA's reward loss; EC added with HC's weight)
    metric_weights: tuple[float, ...] = (0.1, 0.4, 0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.2)
    loss_weight: float = 14.0

    def __post_init__(self) -> None:
        _positive("RWMConfig", num_layers=self.num_layers, ffn_dim=self.ffn_dim)
        if len(self.metric_weights) != len(EPDMS_METRICS) or min(self.metric_weights) < 0:
            raise ValueError(f"RWMConfig.metric_weights needs {len(EPDMS_METRICS)} non-negative weights")
        _non_negative("RWMConfig", loss_weight=self.loss_weight)


@dataclass
class SelectionConfig:
    """Candidate selection: confidence + predicted reward, minus explicit collision and off-road penalties."""

    confidence_weight: float = 1.0
    reward_weight: float = 4.0
    collision_penalty: float = 10.0
    offroad_penalty: float = 5.0
    #: detected agents with existence probability below this are ignored by the collision check
    detection_threshold: float = 0.5
    #: a footprint point counts as off-road when its predicted drivable probability is below this
    drivable_threshold: float = 0.5
    #: collisions and off-road points are only checked up to this horizon (s)
    check_horizon_s: float = 4.0
    #: Bench2Drive's ego (Lincoln MKZ 2020): length, width (m), box centre ahead of the rear axle (m)
    ego_length: float = MKZ_LENGTH
    ego_width: float = MKZ_WIDTH
    rear_axle_to_center: float = MKZ_REAR_AXLE_TO_CENTER
    safety_margin: float = 0.2

    def __post_init__(self) -> None:
        _non_negative(
            "SelectionConfig",
            confidence_weight=self.confidence_weight,
            reward_weight=self.reward_weight,
            collision_penalty=self.collision_penalty,
            offroad_penalty=self.offroad_penalty,
            safety_margin=self.safety_margin,
        )
        _positive(
            "SelectionConfig",
            ego_length=self.ego_length,
            ego_width=self.ego_width,
            check_horizon_s=self.check_horizon_s,
        )
        for k in ("detection_threshold", "drivable_threshold"):
            if not (0.0 <= getattr(self, k) <= 1.0):
                raise ValueError(f"SelectionConfig.{k} must be in [0, 1], got {getattr(self, k)}")


@dataclass
class ModelConfig:
    """The whole IRL-VLA model: shared width plus one config per component."""

    name: str = "full"
    d_model: int = 256
    num_heads: int = 8
    seed: int = 0
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)
    bev: BEVConfig = field(default_factory=BEVConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    map: MapConfig = field(default_factory=MapConfig)
    seg: SegConfig = field(default_factory=SegConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    rwm: RWMConfig = field(default_factory=RWMConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    vlm: VLMConfig = field(default_factory=VLMConfig)

    def __post_init__(self) -> None:
        _positive("ModelConfig", d_model=self.d_model, num_heads=self.num_heads)
        if self.d_model % self.num_heads:
            raise ValueError(f"ModelConfig: d_model {self.d_model} must be divisible by num_heads {self.num_heads}")
        if self.d_model % 2:
            raise ValueError("ModelConfig.d_model must be even (sinusoidal embeddings)")
        max_stride = max(self.backbone.strides)
        if self.preprocess.image_height % max_stride or self.preprocess.image_width % max_stride:
            raise ValueError(
                f"ModelConfig: image {self.preprocess.image_height}x{self.preprocess.image_width} is not divisible "
                f"by the backbone stride {max_stride}"
            )
        if self.bev.depth_max > math.hypot(self.bev.range_m, self.bev.range_m) + 50:
            logger.warning("BEVConfig.depth_max %.1f reaches far beyond the BEV range", self.bev.depth_max)

    # ---------------------------------------------------------------------------------------------------- helpers
    @property
    def num_speed_commands(self) -> int:
        return len(SPEED_PLAN_COMMANDS)

    @property
    def num_path_commands(self) -> int:
        return len(PATH_PLAN_COMMANDS)

    @property
    def feature_hw(self) -> tuple[int, int]:
        """(H, W) of the neck's output map that is lifted to BEV (the finest backbone output)."""
        s = min(self.backbone.strides)
        return self.preprocess.image_height // s, self.preprocess.image_width // s

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> Path:
        """Write the resolved config as .json or .yaml (by suffix), atomically."""
        path = Path(path)
        text = self.to_yaml() if path.suffix in (".yaml", ".yml") else self.to_json(indent=2)
        atomic_write_text(path, text)
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "ModelConfig") -> ModelConfig:
        """Strictly typed (see `irlvla.configload`): a wrong type or unknown key is a `ConfigError` naming the field."""
        return load_config(cls, data, where=where)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_yaml(cls, text: str) -> ModelConfig:
        import yaml

        try:
            data = yaml_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"model config YAML is malformed: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"model config YAML must be a mapping, got {type(data).__name__}")
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model config {path} does not exist")
        return load_config_file(cls, path)


def load_preset(name: str, **overrides: Any) -> ModelConfig:
    """Load a packaged preset ("full" or "tiny"); `overrides` replace top-level sections or fields (dicts merge)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {PRESETS}")
    data = yaml_load((PRESET_DIR / f"{name}.yaml").read_text())
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return ModelConfig.from_dict(data)
