"""The Senna-style multi-view prompt for VLM command guidance and its answer format.

The prompt shows each camera under a view label ("<FRONT VIEW>:\\n<image>\\n" ...), then asks for a plan in the fixed
answer format "SPEED, PATH" with every allowed command listed, so a fine-tuned VLM can be scored on (or generate)
exactly the IRL-VLA command vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from agent.types import PATH_PLAN_COMMANDS, SPEED_PLAN_COMMANDS, NavigationCommand

#: Placeholder the prompt puts where a view's image tokens go; backends expand or re-map it.
IMAGE_PLACEHOLDER = "<image>"

#: The six Bench2Drive cameras in the model's default order.
B2D_VIEWS: tuple[str, ...] = (
    "CAM_FRONT_LEFT",
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_BACK_LEFT",
    "CAM_BACK",
    "CAM_BACK_RIGHT",
)

#: Human view labels (Senna style) for the Bench2Drive and NAVSIM camera names.
VIEW_LABELS: dict[str, str] = {
    "CAM_FRONT": "FRONT VIEW",
    "CAM_FRONT_LEFT": "FRONT LEFT VIEW",
    "CAM_FRONT_RIGHT": "FRONT RIGHT VIEW",
    "CAM_BACK": "BACK VIEW",
    "CAM_BACK_LEFT": "BACK LEFT VIEW",
    "CAM_BACK_RIGHT": "BACK RIGHT VIEW",
    "cam_f0": "FRONT VIEW",
    "cam_l0": "FRONT LEFT VIEW",
    "cam_l1": "LEFT VIEW",
    "cam_l2": "BACK LEFT VIEW",
    "cam_r0": "FRONT RIGHT VIEW",
    "cam_r1": "RIGHT VIEW",
    "cam_r2": "BACK RIGHT VIEW",
    "cam_b0": "BACK VIEW",
}

#: How each navigation command is phrased in the prompt.
NAV_TEXT: dict[NavigationCommand, str] = {
    NavigationCommand.LEFT: "turn left",
    NavigationCommand.STRAIGHT: "go straight",
    NavigationCommand.RIGHT: "turn right",
    NavigationCommand.UNKNOWN: "follow the road",
}

#: The planning horizon the question names (8 poses at 0.5 s).
HORIZON_S = 4

#: Separator between the speed and the path command in the answer ("SPEED, PATH").
ANSWER_SEPARATOR = ","

FALLBACK_EXAMPLE = "Constant Speed Strict, Straight Strict"


def view_label(view: str) -> str:
    """The label for a camera name; unknown names derive one ("CAM_SIDE_LEFT" -> "SIDE LEFT VIEW")."""
    if view in VIEW_LABELS:
        return VIEW_LABELS[view]
    stem = view[4:] if view.upper().startswith("CAM_") else view
    return " ".join(stem.replace("-", "_").split("_")).upper() + " VIEW"


def question_text(ego_speed: float, nav_command: NavigationCommand) -> str:
    """The planning question after the images: ego state, the allowed commands and the answer format."""
    if not math.isfinite(float(ego_speed)):
        raise ValueError(f"ego_speed must be finite, got {ego_speed!r}")
    nav = NAV_TEXT[NavigationCommand(int(nav_command))]
    return (
        f"You are driving a car. Your current speed is {float(ego_speed):.1f} m/s and the navigation command is "
        f"'{nav}'. Based on the camera views above, what is your plan for the next {HORIZON_S} seconds? "
        "Answer with one SPEED plan and one PATH plan. "
        f"SPEED is one of: {', '.join(SPEED_PLAN_COMMANDS)}. "
        f"PATH is one of: {', '.join(PATH_PLAN_COMMANDS)}. "
        f"Answer in the format 'SPEED{ANSWER_SEPARATOR} PATH', for example '{FALLBACK_EXAMPLE}'."
    )


def build_prompt(ego_speed: float, nav_command: NavigationCommand, views: Sequence[str] = B2D_VIEWS) -> str:
    """The full Senna-style prompt: "<LABEL>:\\n<image>\\n" per view in order, then the question."""
    if not views:
        raise ValueError("build_prompt needs at least one view")
    prefix = "".join(f"<{view_label(v)}>:\n{IMAGE_PLACEHOLDER}\n" for v in views)
    return prefix + question_text(ego_speed, nav_command)


def prompt_vocabulary(views: Sequence[str]) -> str:
    """Text covering every word the prompt and the answers can contain (the tiny tokenizer's training corpus)."""
    parts = [build_prompt(0.0, cmd, views) for cmd in NavigationCommand]
    parts += list(SPEED_PLAN_COMMANDS) + list(PATH_PLAN_COMMANDS)
    parts.append("0 1 2 3 4 5 6 7 8 9 . - SPEED PATH :")
    return "\n".join(parts)
