"""NAVSIM-shaped inputs from the embedded world, and an embedded navhard-style two-stage set.

`agent_input_from_scene` builds what NAVSIM's dataloader gives an agent (`AgentInput`: 4 history frames at 2 Hz,
ego poses relative to the current frame, the 4-way driving command, the cameras of the current frame with their
intrinsics and sensor-to-lidar pose, the lidar frame being the rear axle here) from a scene, rendering the cameras
with the NAVSIM rig. `make_two_stage_set` writes navhard's structure on generated scenes: each stage-one group is a
scene at t = 0 (`now`) and 0.5 s earlier (`prev`); its stage-two follow-ups are synthetic scenes starting at t = 4 s
(and 3.5 s) from end states perturbed as navhard's rollouts of other plans end (shifted along and across the
ego's path), marked synthetic (no human filter), with the reactive_all_mapping [now, prev, [[now_i, prev_i], ...]].
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent import geometry
from agent.types import CameraRig, navsim_rig
from irlvla.atomic import atomic_write_text
from navsim_agent.convert import NAVSIM_TO_MODEL_CAMERAS
from sim.scenarios import generate_scene, navigation_command
from sim.scene import EGO_AX, EGO_AY, EGO_HEADING, EGO_VX, EGO_VY, EGO_X, EGO_Y, Scene
from sim.scene_io import save_scene

HISTORY_FRAMES = 4
FRAME_S = 0.5
STAGE_TWO_START_S = 4.0
#: (along, across) metres added to the ego's path for each follow-up: on the plan, ahead / behind, left / right
DEFAULT_PERTURBATIONS: tuple[tuple[float, float], ...] = ((0.0, 0.0), (2.0, 0.0), (-2.0, 0.0), (0.0, 1.0), (0.0, -1.0))


@dataclass
class EgoStatusInput:
    ego_pose: np.ndarray
    ego_velocity: np.ndarray
    ego_acceleration: np.ndarray
    driving_command: np.ndarray
    in_global_frame: bool = False


@dataclass
class CameraInput:
    image: np.ndarray | None = None
    sensor2lidar_rotation: np.ndarray | None = None
    sensor2lidar_translation: np.ndarray | None = None
    intrinsics: np.ndarray | None = None
    distortion: np.ndarray | None = None


@dataclass
class CamerasInput:
    cam_f0: CameraInput
    cam_l0: CameraInput
    cam_l1: CameraInput
    cam_l2: CameraInput
    cam_r0: CameraInput
    cam_r1: CameraInput
    cam_r2: CameraInput
    cam_b0: CameraInput


@dataclass
class AgentInputStandIn:
    """The fields of NAVSIM's `AgentInput` an agent reads (lidars left empty: our agent uses none)."""

    ego_statuses: list[EgoStatusInput]
    cameras: list[CamerasInput]
    lidars: list


def agent_input_from_scene(scene: Scene, step: int | None = None, width: int = 704, height: int = 396):
    """A NAVSIM-shaped `AgentInput` of `scene` at `step` (default: its current frame)."""
    from sim.render import render_cameras

    step = scene.current_index if step is None else int(step)
    stride = int(round(FRAME_S / scene.dt))
    first = step - stride * (HISTORY_FRAMES - 1)
    if first < 0:
        raise ValueError(f"scene {scene.token}: needs {(HISTORY_FRAMES - 1) * FRAME_S} s of history before step {step}")
    origin = scene.ego[step, [EGO_X, EGO_Y, EGO_HEADING]]
    cmd = navigation_command(scene, step).one_hot()
    statuses = []
    for i in range(first, step + 1, stride):
        e = scene.ego[i]
        pose = geometry.absolute_to_relative(origin, e[[EGO_X, EGO_Y, EGO_HEADING]][None])[0]
        statuses.append(EgoStatusInput(pose, e[[EGO_VX, EGO_VY]].copy(), e[[EGO_AX, EGO_AY]].copy(), cmd.copy()))
    full = navsim_rig(width, height)
    rig = CameraRig("navsim", tuple(full[n] for n in NAVSIM_TO_MODEL_CAMERAS))
    images = render_cameras(scene, step, rig)
    current = {}
    for name in CamerasInput.__dataclass_fields__:
        if name not in rig.names:
            current[name] = CameraInput()
            continue
        spec = rig[name]
        m = spec.cam_to_ego
        current[name] = CameraInput(images[name], m[:3, :3].copy(), m[:3, 3].copy(), spec.intrinsics, np.zeros(5))
    empty = CamerasInput(**{n: CameraInput() for n in CamerasInput.__dataclass_fields__})
    cameras = [empty] * (HISTORY_FRAMES - 1) + [CamerasInput(**current)]
    return AgentInputStandIn(statuses, cameras, [])


def perturbed(scene: Scene, along: float, across: float) -> Scene:
    """The scene with the whole ego log shifted `along` its heading and `across` to its left at every step."""
    ego = scene.ego.copy()
    h = ego[:, EGO_HEADING]
    ego[:, EGO_X] += along * np.cos(h) - across * np.sin(h)
    ego[:, EGO_Y] += along * np.sin(h) + across * np.cos(h)
    return dataclasses.replace(scene, ego=ego)


@dataclass(frozen=True)
class TwoStageSet:
    folder: Path
    mapping: list  # [[now, prev, [[syn_now, syn_prev], ...]], ...]

    @property
    def scenes(self) -> Path:
        return self.folder / "scenes"

    @property
    def mapping_file(self) -> Path:
        return self.folder / "mapping.json"

    def stage_one_tokens(self) -> list[str]:
        return [t for g in self.mapping for t in g[:2]]

    def stage_two_tokens(self) -> list[str]:
        return [t for g in self.mapping for p in g[2] for t in p]

    @classmethod
    def load(cls, folder: str | Path) -> TwoStageSet:
        folder = Path(folder)
        f = folder / "mapping.json"
        if not f.is_file():
            raise FileNotFoundError(f"{folder}: not a two-stage set (no mapping.json; make one with `navsim make-set`)")
        return cls(folder, json.loads(f.read_text()))


def make_two_stage_set(
    out: str | Path,
    families: list[str],
    seeds: list[int],
    perturbations: tuple[tuple[float, float], ...] = DEFAULT_PERTURBATIONS,
) -> TwoStageSet:
    """Write stage-one scenes, their synthetic follow-ups and the mapping under `out` (see the module docstring)."""
    out = Path(out)
    mapping = []
    stride = None
    for fam in families:
        for seed in seeds:
            scene = generate_scene(fam, seed)
            stride = int(round(FRAME_S / scene.dt))
            start = scene.current_index + int(round(STAGE_TWO_START_S / scene.dt))
            if start + 8 * stride >= scene.num_steps:
                raise ValueError(f"scene {fam}/{seed}: too short for stage-two follow-ups at {STAGE_TWO_START_S} s")
            base = f"{fam}_{seed}"
            now = dataclasses.replace(scene, token=base)
            prev = dataclasses.replace(scene, token=f"{base}_prev", current_index=scene.current_index - stride)
            for s in (now, prev):
                save_scene(s, out / "scenes" / s.token)
            pairs = []
            for j, (along, across) in enumerate(perturbations):
                moved = perturbed(scene, along, across)
                meta = {**scene.metadata, "synthetic": True, "perturbation": [along, across]}
                syn_now = dataclasses.replace(moved, token=f"{base}_s{j}", current_index=start, metadata=meta)
                syn_prev = dataclasses.replace(
                    moved, token=f"{base}_s{j}_prev", current_index=start - stride, metadata=meta
                )
                for s in (syn_now, syn_prev):
                    save_scene(s, out / "scenes" / s.token)
                pairs.append([syn_now.token, syn_prev.token])
            mapping.append([now.token, prev.token, pairs])
    atomic_write_text(out / "mapping.json", json.dumps(mapping, indent=1))
    return TwoStageSet(out, mapping)
