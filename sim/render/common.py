"""Argument checks shared by the renderers: which frame, and from which ego pose."""

from __future__ import annotations

import numpy as np

from sim.scene import Scene


def resolve_step(scene: Scene, step: int | None) -> int:
    """`step` checked against the scene (None: its current frame)."""
    if step is None:
        return scene.current_index
    if not isinstance(step, (int, np.integer)):
        raise TypeError(f"step must be an int, got {type(step).__name__}")
    step = int(step)
    if not (0 <= step < scene.num_steps):
        raise IndexError(f"step {step} is outside the scene's 0..{scene.num_steps - 1}")
    return step


def resolve_ego_pose(scene: Scene, step: int, ego_pose) -> np.ndarray:
    """The rear-axle world pose (x, y, heading) to render from: the override if given, else the logged one."""
    if ego_pose is None:
        return scene.ego_pose(step)
    pose = np.asarray(ego_pose, dtype=np.float64).reshape(-1)
    if pose.shape != (3,) or not np.all(np.isfinite(pose)):
        raise ValueError(f"ego_pose must be a finite (x, y, heading), got {ego_pose!r}")
    return pose
