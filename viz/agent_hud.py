"""The HUD inside the CARLA leaderboard agent (`team_code/irlvla_b2d_agent.py`), switched on by its config.

The agent hands over what it has each planning step: its `Observation` (the images the model saw, speed, navigation
command), the `PlanResult` and the control it applied. Ground truth (road, lanes, other actors) is not the agent's to
know; a world that has it (the embedded closed-loop world under `irlvla demo`) registers a `world source` that adds
it to the picture. The HUD never breaks driving: a failure is logged once and the HUD switches itself off.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.epdms_metrics import EPDMS_METRICS
from irlvla.atomic import atomic_write_json
from viz.config import HudConfig
from viz.view import Control, WorldView

logger = logging.getLogger(__name__)

#: a callable returning extra `WorldView` fields (drivable, lanes, route, signals, agents, info, title) for the
#: current tick, in the ego frame; set by whoever owns the world (see `set_world_source`).
_WORLD_SOURCE: list[Callable[[], dict[str, Any]] | None] = [None]

VIDEO_NAME = "hud.mp4"
PICTURE_NAME = "hud.png"
#: per planning step: the chosen plan's predicted EPDMS and sub-metrics, the commands and the policy's latency
PLANS_NAME = "hud_plans.json"


#: set once a user closes a live HUD window (ESC, Q or the window's close button): a driver owning the run (the demo)
#: stops there; the agent itself drives on without its HUD.
QUIT_REQUESTED: list[bool] = [False]


def set_world_source(source: Callable[[], dict[str, Any]] | None) -> None:
    """Register (or clear, with None) the provider of ground-truth view fields for agents' HUDs in this process."""
    _WORLD_SOURCE[0] = source


class AgentHud:
    """A `HudViewer` fed from the agent's tick; `every`: draw every n-th planning step (video at `fps`)."""

    def __init__(
        self,
        live: bool,
        out_dir: str | os.PathLike | None,
        every: int = 1,
        config: HudConfig | None = None,
        title: str = "",
    ) -> None:
        from viz.viewer import HudViewer

        self.out_dir = Path(out_dir) if out_dir is not None else None
        video = self.out_dir / VIDEO_NAME if self.out_dir is not None else None
        self.viewer = HudViewer(config, live=live, video=video, screenshot_dir=self.out_dir or ".")
        self.every = int(every)
        self.title = title
        self.steps = 0
        self.failed = False
        self.plans: list[dict] = []

    @classmethod
    def for_agent(cls, cfg, save_root: str | None, save_name: str | None) -> AgentHud:
        """From the agent's config (`hud`, `hud_record`, `hud_every`); recordings go to `save_root/save_name/`."""
        out_dir = None
        if cfg.hud_record:
            if not save_root:
                raise ValueError("hud_record needs an output folder: set SAVE_PATH or save_path in the agent config")
            out_dir = Path(save_root) / (save_name or "route")
        fps = 20.0 / cfg.hud_every  # the leaderboard ticks at 20 Hz
        return cls(cfg.hud, out_dir, cfg.hud_every, HudConfig(video_fps=fps), title=save_name or "")

    def show(self, obs, plan, command) -> None:
        """Draw one step (every `every`-th call); never raises."""
        step, self.steps = self.steps, self.steps + 1
        if self.failed:
            return
        try:
            self.plans.append(_plan_record(step, plan))
            if step % self.every:
                return
            view = self.view(obs, command)
            if not self.viewer.show(plan, view) and self.viewer.live:
                logger.info("HUD window closed by the user; the agent drives on")
                QUIT_REQUESTED[0] = True
                self.close()
                self.failed = True
        except Exception:
            logger.exception("the HUD failed at step %d and is switched off (driving is not affected)", step)
            self.failed = True

    def view(self, obs, command) -> WorldView:
        extra = {}
        source = _WORLD_SOURCE[0]
        if source is not None:
            extra = dict(source() or {})
        info = {"agent step": str(self.steps - 1), **extra.pop("info", {})}
        return WorldView(
            images=obs.images,
            rig=obs.rig,
            speed=float(obs.ego.speed),
            command=obs.ego.command,
            control=Control(float(command.steer), float(command.throttle), float(command.brake)),
            time_s=float(obs.timestamp),
            frame=self.steps - 1,
            title=extra.pop("title", self.title),
            route=extra.pop("route", obs.route),
            info=info,
            **extra,
        )

    def close(self) -> None:
        viewer, self.viewer = self.viewer, None
        if viewer is None:
            return
        try:
            if self.out_dir is not None:
                atomic_write_json(self.out_dir / PLANS_NAME, self.plans)
            if self.out_dir is not None and viewer.frames_shown:
                viewer.screenshot(self.out_dir / PICTURE_NAME)
            viewer.close()
        except Exception:
            logger.exception("closing the HUD failed")


def _plan_record(step: int, plan) -> dict:
    """The per-step line of `hud_plans.json`; fields a planner does not give are null."""
    sel = int(plan.selected)
    c = plan.commands
    sub = plan.submetrics
    return {
        "step": step,
        "selected": sel,
        "epdms": None if plan.rewards is None else round(float(plan.rewards[sel]), 5),
        "submetrics": None if sub is None else {k: round(float(v), 5) for k, v in zip(EPDMS_METRICS, sub[sel])},
        "speed_command": None if c is None else c.speed_name,
        "path_command": None if c is None else c.path_name,
        "policy_ms": round(float(plan.timings["total"]), 2) if "total" in plan.timings else None,
    }
