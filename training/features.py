"""One training sample from the embedded world: a scene re-based at a current frame -> the model's inputs and targets.

Images go through the policy's own preprocessing geometry (`agent.preprocess.image_transform`: width-fitting resize,
bottom crop, intrinsics adjusted) so training sees exactly the pixels and camera geometry the policy sees at run time;
they are stored as uint8 and normalised when batched. The ego vector is `agent.policy.ego_features` of the same
`EgoStatus` the closed loop builds. Targets: the expert's 4 s future, agent boxes, map polylines, the BEV semantic
raster (sim classes mapped onto the model's seg classes by name), and the auto-labelled speed / path commands.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np

from agent import geometry
from agent.config import ModelConfig
from agent.model.vlm_labels import commands_from_trajectory
from agent.policy import ego_features
from agent.preprocess import image_transform
from agent.types import CameraRig, EgoStatus, NavigationCommand, Observation, bench2drive_rig
from sim.render import render_bev, render_cameras
from sim.render.palette import BEV_CLASSES
from sim.scenarios import ScenarioConfig, generate_scene, navigation_command
from sim.scene import EGO_AX, EGO_AY, EGO_VX, EGO_VY, EGO_YAW_RATE, AgentType, Scene

#: sim BEV class -> model seg class (agent/config.py SEG_CLASSES); crosswalks are walkway, lane markings centreline
SIM_TO_MODEL_SEG = {
    "background": "background",
    "drivable_area": "road",
    "lane_marking": "centerline",
    "crosswalk": "walkway",
    "vehicle": "vehicle",
    "pedestrian_bicycle": "pedestrian",
    "static_obstacle": "static_object",
}
#: sim agent type -> detection class name (static objects are not detected as agents; they are in the raster)
AGENT_CLASS = {
    int(AgentType.VEHICLE): "vehicle",
    int(AgentType.PEDESTRIAN): "pedestrian",
    int(AgentType.BICYCLE): "bicycle",
}
#: ego history kept per sample: 4 past frames at 0.5 s, (x, y, heading, speed) in the current ego frame
HISTORY_FRAMES = 4


def scene_at(scene: Scene, step: int) -> Scene:
    """The same scenario with its current frame moved to `step` (a new token, so per-scene memos stay apart)."""
    if step == scene.current_index:
        return scene
    return dataclasses.replace(scene, current_index=int(step), token=f"{scene.token}@{step}")


@lru_cache(maxsize=64)
def cached_scene(family: str, seed: int, past_s: float, future_s: float) -> Scene:
    """Scenes are deterministic in (family, seed, timing): regenerate instead of storing them (cached per process)."""
    return generate_scene(family, int(seed), ScenarioConfig(past_s=past_s, future_s=future_s))


def sample_steps(scene: Scene, min_history_s: float, stride_s: float, horizon_s: float = 4.0) -> list[int]:
    """Current frames along the scenario: from `min_history_s` of history until `horizon_s` of future remain."""
    dt = scene.dt
    first = int(round(min_history_s / dt))
    last = scene.num_steps - 1 - int(round(horizon_s / dt))
    stride = max(1, int(round(stride_s / dt)))
    return list(range(first, last + 1, stride))


def constant_velocity_plan(scene: Scene, num_poses: int = 8, interval: float = 0.5) -> np.ndarray:
    """The constant-velocity baseline: straight ahead at the current speed (NAVSIM's ConstantVelocityAgent)."""
    e = scene.ego[scene.current_index]
    v = float(np.hypot(e[EGO_VX], e[EGO_VY]))
    t = interval * np.arange(1, num_poses + 1)
    return np.stack([v * t, np.zeros_like(t), np.zeros_like(t)], axis=-1)


def ego_status(scene: Scene) -> EgoStatus:
    e = scene.ego[scene.current_index]
    return EgoStatus(
        velocity=e[[EGO_VX, EGO_VY]],
        acceleration=e[[EGO_AX, EGO_AY]],
        yaw_rate=float(e[EGO_YAW_RATE]),
        command=navigation_command(scene),
    )


def target_point(scene: Scene, distance_m: float) -> np.ndarray:
    """The route centreline point `distance_m` ahead of the ego's projection, in the ego frame."""
    route = scene.route
    pose = scene.ego_pose()
    s = float(route.project(pose[:2])) + distance_m
    xy = np.array([np.interp(s, route.arclength, route.centerline[:, i]) for i in (0, 1)])
    return geometry.points_to_local(pose, xy[None])[0]


def _resample(line: np.ndarray, n: int) -> np.ndarray:
    seg = np.hypot(*np.diff(line, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 1e-6:
        return np.repeat(line[:1], n, axis=0)
    q = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(q, s, line[:, 0]), np.interp(q, s, line[:, 1])], axis=-1)


def map_elements(scene: Scene, cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest `num_queries` map polylines inside the BEV square: (M, P, 2) points, (M,) labels, (M,) mask."""
    mc, half = cfg.map, cfg.bev.range_m / 2.0
    pose = scene.ego_pose()
    names = list(mc.class_names)
    cands: list[tuple[float, int, np.ndarray]] = []
    for lane in scene.map.lanes.values():
        lines = [("centerline", lane.centerline[:, :2])]
        if "lane_divider" in names or "road_boundary" in names:
            lines.append(("lane_divider" if lane.left_neighbor else "road_boundary", lane.left_boundary[:, :2]))
            if not lane.right_neighbor:
                lines.append(("road_boundary", lane.right_boundary[:, :2]))
        for cls, pts in lines:
            if cls not in names:
                continue
            local = geometry.points_to_local(pose, pts)
            inside = (np.abs(local) < half).all(-1)
            if inside.sum() < 2:
                continue
            idx = np.flatnonzero(inside)
            part = local[idx[0] : idx[-1] + 1]
            part = part[(np.abs(part) < half).all(-1)]
            cands.append((float(np.hypot(*part.T).min()), names.index(cls), part))
    cands.sort(key=lambda c: c[0])
    m, p = mc.num_queries, mc.num_points
    pts = np.zeros((m, p, 2), np.float32)
    labels = np.zeros(m, np.int64)
    mask = np.zeros(m, bool)
    for i, (_, cls, part) in enumerate(cands[:m]):
        pts[i], labels[i], mask[i] = _resample(part, p), cls, True
    return pts, labels, mask


def agent_targets(scene: Scene, cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest `num_agents` road users in the BEV square: (A, 7) boxes x, y, heading, l, w, vx, vy; labels; mask."""
    dc, half = cfg.detection, cfg.bev.range_m / 2.0
    a = dc.num_agents
    boxes = np.zeros((a, 7), np.float32)
    labels = np.zeros(a, np.int64)
    mask = np.zeros(a, bool)
    ag, step = scene.agents, scene.current_index
    pose = scene.ego_pose()
    names = list(dc.class_names)
    rows = []
    for i in range(len(ag)):
        name = AGENT_CLASS.get(int(ag.types[i]))
        if name is None or name not in names or not ag.valid[i, step]:
            continue
        st = ag.states[i, step]
        rel = geometry.absolute_to_relative(pose, st[None, :3])[0]
        if abs(rel[0]) >= half or abs(rel[1]) >= half:
            continue
        vel = geometry.rotation_matrix(-pose[2]) @ st[3:5]
        rows.append((float(np.hypot(rel[0], rel[1])), [*rel, *ag.sizes[i, :2], *vel], names.index(name)))
    rows.sort(key=lambda r: r[0])
    for j, (_, box, cls) in enumerate(rows[:a]):
        boxes[j], labels[j], mask[j] = box, cls, True
    return boxes, labels, mask


def ego_history(scene: Scene) -> np.ndarray:
    """(HISTORY_FRAMES, 4) past rear-axle poses and speeds at 0.5 s steps (oldest first) in the current ego frame."""
    stride = int(round(0.5 / scene.dt))
    idx = scene.current_index - stride * np.arange(HISTORY_FRAMES, 0, -1)
    idx = np.clip(idx, 0, None)
    rel = geometry.absolute_to_relative(scene.ego_pose(), scene.ego[idx, :3])
    return np.concatenate([rel, np.hypot(scene.ego[idx, EGO_VX], scene.ego[idx, EGO_VY])[:, None]], -1).astype(
        np.float32
    )


@lru_cache(maxsize=8)
def render_rig(cfg_width: int, cfg_height: int) -> CameraRig:
    """Bench2Drive's rig rendered at the model's width with the rig's 16:9 aspect (the policy then crops)."""
    return bench2drive_rig(cfg_width, int(round(cfg_width * 900 / 1600)))


def build_observation(scene: Scene, cfg: ModelConfig, target_distance_m: float) -> Observation:
    """What an adapter would hand the policy at the scene's current frame (images from the embedded renderer)."""
    rig = render_rig(cfg.preprocess.image_width, cfg.preprocess.image_height)
    images = render_cameras(scene, None, rig)
    return Observation(
        images=images,
        rig=rig,
        ego=ego_status(scene),
        timestamp=float(scene.timestamps[scene.current_index]),
        target_point=target_point(scene, target_distance_m),
        token=scene.token,
    )


def camera_arrays(obs: Observation, cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, H, W, 3) uint8 crops, (N, 3, 3) intrinsics and (N, 4, 4) extrinsics: the policy's preprocessing geometry
    without normalisation (done on the batch), so samples stay small."""
    pc = cfg.preprocess
    imgs, ks, exts = [], [], []
    from PIL import Image

    for name in pc.camera_names:
        cam = obs.rig[name]
        tf = image_transform(cam.width, cam.height, pc)
        img = obs.images[name]
        if (img.shape[1], img.shape[0]) != (tf.resized_w, tf.resized_h):
            img = np.asarray(Image.fromarray(img).resize((tf.resized_w, tf.resized_h), Image.BILINEAR))
        imgs.append(img[tf.top : tf.top + pc.image_height, tf.left : tf.left + pc.image_width])
        ks.append(tf.apply_to_intrinsics(cam.intrinsics))
        exts.append(cam.cam_to_ego)
    return np.stack(imgs), np.stack(ks).astype(np.float32), np.stack(exts).astype(np.float32)


def bev_target(scene: Scene, cfg: ModelConfig) -> np.ndarray:
    size = cfg.bev.size * cfg.seg.upsample
    raw = render_bev(scene, None, size, cfg.bev.range_m)
    lut = np.array([list(cfg.seg.class_names).index(SIM_TO_MODEL_SEG[c]) for c in BEV_CLASSES], np.uint8)
    return lut[raw]


def sample_layout(cfg: ModelConfig) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Key -> (shape, dtype) of every array `build_sample` returns for a model config: the dataset's sample definition
    (a test holds `build_sample` to it; `synthetic_sample` and the training benchmark build batches from it)."""
    pc, n = cfg.preprocess, cfg.preprocess.num_cameras
    a, m = cfg.detection.num_agents, cfg.map.num_queries
    bev = cfg.bev.size * cfg.seg.upsample
    f32, i64 = np.dtype(np.float32), np.dtype(np.int64)
    return {
        "images": ((n, pc.image_height, pc.image_width, 3), np.dtype(np.uint8)),
        "intrinsics": ((n, 3, 3), f32),
        "cam_to_ego": ((n, 4, 4), f32),
        "ego": ((cfg.planner.ego_dim,), f32),
        "ego_history": ((HISTORY_FRAMES, 4), f32),
        "nav_command": ((), i64),
        "gt_trajectory": ((cfg.planner.num_poses, 3), f32),
        "speed_command": ((), i64),
        "path_command": ((), i64),
        "agent_boxes": ((a, 7), f32),
        "agent_labels": ((a,), i64),
        "agent_mask": ((a,), np.dtype(bool)),
        "map_points": ((m, cfg.map.num_points, 2), f32),
        "map_labels": ((m,), i64),
        "map_mask": ((m,), np.dtype(bool)),
        "bev_semantic": ((bev, bev), np.dtype(np.uint8)),
    }


def synthetic_sample(cfg: ModelConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A random sample with `sample_layout`'s shapes and valid values: the real camera geometry (the render rig through
    the policy's preprocessing), random pixels, classes and commands in range, a forward-moving expert future, about
    half the agent and map slots filled. For throughput measurements without a generated dataset."""
    layout = sample_layout(cfg)
    pc = cfg.preprocess
    rig = render_rig(pc.image_width, pc.image_height)
    obs = Observation(
        images={c.name: rng.integers(0, 256, (c.height, c.width, 3), dtype=np.uint8) for c in rig.cameras},
        rig=rig,
        ego=EgoStatus(velocity=np.array([rng.uniform(0, 12), 0.0]), acceleration=np.zeros(2), yaw_rate=0.0),
        target_point=np.array([20.0, 0.0]),
    )
    images, intrinsics, cam_to_ego = camera_arrays(obs, cfg)
    half = cfg.bev.range_m / 2.0
    t = cfg.planner.interval * np.arange(1, cfg.planner.num_poses + 1)
    speed = float(obs.ego.velocity[0])
    gt = np.stack([speed * t, rng.normal(0, 0.3) * t**2, np.zeros_like(t)], -1)
    a, m = layout["agent_mask"][0][0], layout["map_mask"][0][0]
    boxes = np.concatenate(
        [rng.uniform(-half, half, (a, 2)), rng.uniform(-np.pi, np.pi, (a, 1)), rng.uniform(1, 5, (a, 2)),
         rng.normal(0, 3, (a, 2))], -1)  # fmt: skip
    out = {
        "images": images,
        "intrinsics": intrinsics,
        "cam_to_ego": cam_to_ego,
        "ego": ego_features(obs),
        "ego_history": np.stack(
            [
                -speed * np.arange(HISTORY_FRAMES, 0, -1) * 0.5,
                *np.zeros((2, HISTORY_FRAMES)),
                np.full(HISTORY_FRAMES, speed),
            ],
            -1,
        ),  # fmt: skip
        "nav_command": np.int64(rng.integers(0, len(NavigationCommand))),
        "gt_trajectory": gt,
        "speed_command": np.int64(rng.integers(0, cfg.num_speed_commands)),
        "path_command": np.int64(rng.integers(0, cfg.num_path_commands)),
        "agent_boxes": boxes,
        "agent_labels": rng.integers(0, len(cfg.detection.class_names), a),
        "agent_mask": rng.random(a) < 0.5,
        "map_points": rng.uniform(-half, half, layout["map_points"][0]),
        "map_labels": rng.integers(0, len(cfg.map.class_names), m),
        "map_mask": rng.random(m) < 0.5,
        "bev_semantic": rng.integers(0, len(cfg.seg.class_names), layout["bev_semantic"][0]),
    }
    return {k: np.asarray(out[k]).astype(dtype).reshape(shape) for k, (shape, dtype) in layout.items()}


def build_sample(scene: Scene, cfg: ModelConfig, target_distance_m: float = 20.0) -> dict[str, np.ndarray]:
    """Every array of one sample at the scene's current frame (see the module docstring)."""
    obs = build_observation(scene, cfg, target_distance_m)
    images, intrinsics, cam_to_ego = camera_arrays(obs, cfg)
    gt = scene.human_trajectory(cfg.planner.num_poses, cfg.planner.interval)
    stride = int(round(cfg.planner.interval / scene.dt))
    idx = scene.current_index + stride * np.arange(0, cfg.planner.num_poses + 1)
    speeds = np.hypot(scene.ego[idx, EGO_VX], scene.ego[idx, EGO_VY])
    speed_cmd, path_cmd = commands_from_trajectory(gt, speeds, cfg.planner.interval)
    boxes, labels, mask = agent_targets(scene, cfg)
    mpts, mlabels, mmask = map_elements(scene, cfg)
    return {
        "images": images,
        "intrinsics": intrinsics,
        "cam_to_ego": cam_to_ego,
        "ego": ego_features(obs),
        "ego_history": ego_history(scene),
        "nav_command": np.int64(int(obs.ego.command)),
        "gt_trajectory": gt.astype(np.float32),
        "speed_command": np.int64(int(speed_cmd)),
        "path_command": np.int64(int(path_cmd)),
        "agent_boxes": boxes,
        "agent_labels": labels,
        "agent_mask": mask,
        "map_points": mpts,
        "map_labels": mlabels,
        "map_mask": mmask,
        "bev_semantic": bev_target(scene, cfg),
    }


__all__ = [
    "NavigationCommand",
    "build_observation",
    "build_sample",
    "cached_scene",
    "constant_velocity_plan",
    "sample_layout",
    "sample_steps",
    "scene_at",
    "synthetic_sample",
]
