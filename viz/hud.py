"""The heads-up display: camera mosaic, BEV panel and text panel of one planning tick.

As in CARLA's `manual_control.py`, state is built in `tick(plan, view)` (numbers, projected polylines, colours,
text items) and drawn in `render(surface)`; nothing is computed while drawing, so a frame can be re-rendered while
paused and tests can read the state the frame was drawn from.

Panels (see `HudConfig` for the layout):
- mosaic: the six cameras, with the candidates (coloured by predicted EPDMS) and the chosen trajectory (`chosen_rgb`,
  thick) projected onto the ground through each camera (`agent.geometry.project_points`);
- BEV: road, lanes and route (ground truth when the world gives it), the segmentation overlay, ground-truth agents
  (filled) and detected agents (outlined), predicted map elements, the candidates and the chosen trajectory;
- text: commands (speed and path plans, navigation), speed, steer, throttle, brake, per-stage latency, the chosen
  plan's predicted sub-metrics and a sparkline of the predicted EPDMS.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from agent import geometry
from agent.epdms_metrics import EPDMS_METRICS
from agent.types import CameraSpec
from sim.render.mosaic import mosaic_layout
from viz import palette
from viz.config import HudConfig
from viz.items import Bar, Check, Gap, Item, Line, Notice, Spark, values_of
from viz.view import WorldView

if TYPE_CHECKING:  # the HUD reads a PlanResult; importing it at run time would pull torch into every HUD user
    from agent.contract import PlanResult

#: trajectory points for the camera overlay are spaced this many metres apart (so the ground curve bends smoothly).
OVERLAY_SPACING_M = 0.5
#: camera-overlay points closer than this to a camera's image plane are dropped (they would project to infinity).
NEAR_DEPTH_M = 0.5
#: per-stage latency keys shown first, in pipeline order; other keys follow in their own order.
STAGE_ORDER = ("preprocess", "vlm", "backbone", "bev", "perception", "planner", "rwm", "selection", "total")

Rect = tuple[int, int, int, int]

#: the BEV's colour scale of predicted EPDMS, 0 to 1 over 100 pixels
_RAMP_LEGEND = tuple(palette.epdms_ramp(i / 99) for i in range(100))


@dataclass
class Layout:
    mosaic: Rect
    bev: Rect
    text_left: Rect
    text_right: Rect
    text_bev: Rect

    @classmethod
    def of(cls, cfg: HudConfig) -> Layout:
        mw = cfg.width - cfg.bev_px
        below = cfg.height - cfg.mosaic_height
        return cls(
            mosaic=(0, 0, mw, cfg.mosaic_height),
            bev=(mw, 0, cfg.bev_px, cfg.bev_px),
            text_left=(0, cfg.mosaic_height, mw // 2, below),
            text_right=(mw // 2, cfg.mosaic_height, mw - mw // 2, below),
            text_bev=(mw, cfg.bev_px, cfg.bev_px, cfg.height - cfg.bev_px),
        )


@dataclass
class Tile:
    """One camera in the mosaic: where it goes and what to draw over it (tile pixel coordinates)."""

    name: str
    rect: Rect
    image: np.ndarray
    candidates: list[tuple[tuple[int, int, int], list[np.ndarray]]]
    chosen: list[np.ndarray]


@dataclass
class BevState:
    """Everything the BEV panel draws, already in panel pixel coordinates (x right, y down)."""

    drivable: list[np.ndarray] = field(default_factory=list)
    lanes: list[np.ndarray] = field(default_factory=list)
    route: np.ndarray | None = None
    signals: list[tuple[np.ndarray, tuple[int, int, int]]] = field(default_factory=list)
    seg_rgb: np.ndarray | None = None  # (H, W, 3) uint8, black = not drawn
    seg_rect: Rect = (0, 0, 0, 0)
    map_pred: list[np.ndarray] = field(default_factory=list)
    gt_agents: list[tuple[np.ndarray, tuple[int, int, int]]] = field(default_factory=list)
    detections: list[np.ndarray] = field(default_factory=list)
    candidates: list[tuple[np.ndarray, tuple[int, int, int]]] = field(default_factory=list)
    chosen: np.ndarray | None = None
    ego: np.ndarray | None = None


class HUD:
    """Build with a config, call `tick(plan, view)` once per planning step and `render(surface)` per frame."""

    def __init__(self, config: HudConfig | None = None) -> None:
        self.cfg = config or HudConfig()
        self.layout = Layout.of(self.cfg)
        self.show_text = True
        self.show_bev = True
        self.show_mosaic = True
        self.show_help = False
        self.paused = False
        self.tiles: list[Tile] = []
        self.bev = BevState()
        self.left: list[Item] = []
        self.right: list[Item] = []
        self.under_bev: list[Item] = []
        self.notices: list[Notice] = []
        self.history: deque[float] = deque(maxlen=self.cfg.history)
        self._fonts: dict[int, object] = {}
        self._last_tick_wall: float | None = None
        self.fps = 0.0

    # ------------------------------------------------------------------------------------------------------ state
    @property
    def items(self) -> list[Item]:
        return [*self.left, *self.right, *self.under_bev]

    def values(self) -> dict[str, float | str | bool]:
        """key -> raw value of every number and name the text panel shows (what the frame was drawn from)."""
        return values_of(self.items)

    def notify(self, text: str, seconds: float | None = None) -> None:
        self.notices.append(Notice(text, self.cfg.notice_seconds if seconds is None else seconds))

    def toggle(self, panel: str) -> None:
        attr = {"text": "show_text", "bev": "show_bev", "mosaic": "show_mosaic", "help": "show_help"}[panel]
        setattr(self, attr, not getattr(self, attr))

    def tick(self, plan: PlanResult, view: WorldView) -> None:
        """Rebuild the whole display state from one plan and one world view."""
        now = time.perf_counter()
        dt = 0.0 if self._last_tick_wall is None else now - self._last_tick_wall
        if dt > 0:
            self.fps = 0.9 * self.fps + 0.1 / dt if self.fps else 1.0 / dt
        self._last_tick_wall = now
        for n in self.notices:  # notices fade in wall-clock time between ticks
            n.age += dt
        self.notices = [n for n in self.notices if not n.done]
        if plan.rewards is not None:
            self.history.append(plan.reward)
        k = len(plan.candidates)
        ramp = [palette.epdms_ramp(r) for r in plan.rewards] if plan.rewards is not None else [palette.UNSCORED] * k
        self.tiles = self._tick_mosaic(plan, view, ramp)
        self.bev = self._tick_bev(plan, view, ramp)
        self.left, self.right, self.under_bev = self._tick_text(plan, view)

    # ---- mosaic
    def _tick_mosaic(self, plan: PlanResult, snap: WorldView, ramp: list) -> list[Tile]:
        x0, y0, w, h = self.layout.mosaic
        rows = mosaic_layout(snap.rig)
        cols = max(len(r) for r in rows)
        gap = 2
        first = snap.rig.cameras[0]
        aspect = first.height / first.width
        tw = (w - (cols - 1) * gap) // cols
        th = int(tw * aspect)
        if th * len(rows) + (len(rows) - 1) * gap > h:
            th = (h - (len(rows) - 1) * gap) // len(rows)
            tw = int(th / aspect)
        top = y0 + (h - (th * len(rows) + (len(rows) - 1) * gap)) // 2
        dense_cands = [_densify(c[:, :2]) for c in plan.candidates]
        dense_chosen = _densify(plan.trajectory.poses[:, :2])
        tiles = []
        for r, names in enumerate(rows):
            left = x0 + (w - (len(names) * tw + (len(names) - 1) * gap)) // 2
            for k, name in enumerate(names):
                cam = snap.rig[name]
                scale = (tw / cam.width, th / cam.height)
                cands = [
                    (ramp[i], _camera_runs(p, cam, scale)) for i, p in enumerate(dense_cands) if i != plan.selected
                ]
                rect = (left + k * (tw + gap), top + r * (th + gap), tw, th)
                tiles.append(Tile(name, rect, snap.images[name], cands, _camera_runs(dense_chosen, cam, scale)))
        return tiles

    # ---- BEV
    def _to_panel(self, pts_ego: np.ndarray) -> np.ndarray:
        x0, y0, size, _ = self.layout.bev
        rc = geometry.world_to_bev_pixel(np.asarray(pts_ego, dtype=np.float64)[..., :2], size, self.cfg.bev_range_m)
        return np.stack([rc[..., 1] + x0, rc[..., 0] + y0], axis=-1)

    def _tick_bev(self, plan: PlanResult, snap: WorldView, ramp: list) -> BevState:
        cfg = self.cfg
        st = BevState()
        st.drivable = [self._to_panel(p) for p in snap.drivable if len(p) >= 3]
        st.lanes = [self._to_panel(p) for p in snap.lanes if len(p) >= 2]
        st.route = None if snap.route is None or len(snap.route) < 2 else self._to_panel(snap.route)
        st.signals = [(self._to_panel(p), palette.SIGNAL.get(s, palette.SIGNAL["UNKNOWN"])) for p, s in snap.signals]
        # segmentation overlay: the most likely non-background class where it beats background, its colour scaled by
        # its probability, blended at `seg_alpha` (one surface alpha and a colour key: a cheap blit, unlike per-pixel
        # alpha); pure black is the key, so a drawn cell is never black
        seg = plan.seg
        if seg is not None and cfg.seg_alpha > 0 and seg.shape[0] > 1:
            cls = seg[1:].argmax(0) + 1
            prob = np.take_along_axis(seg, cls[None], 0)[0]
            fg = prob > seg[0]
            rgb = palette.seg_colours(plan.seg_classes)[cls].astype(np.float64) * np.clip(prob, 0.0, 1.0)[..., None]
            rgb = np.where(fg[..., None], np.maximum(np.round(rgb), 1), 0).astype(np.uint8)
            seg_range = float(plan.extras.get("bev_range_m", cfg.seg_range_m))
            side = int(round(seg_range / cfg.bev_range_m * self.layout.bev[2]))
            cx, cy = self.layout.bev[0] + self.layout.bev[2] // 2, self.layout.bev[1] + self.layout.bev[3] // 2
            st.seg_rgb, st.seg_rect = rgb, (cx - side // 2, cy - side // 2, side, side)
        mp = plan.map
        if mp is not None:
            st.map_pred = [self._to_panel(p) for p, s in zip(mp.polylines, mp.scores) if s >= cfg.score_threshold]
        for box, kind in zip(snap.agents.boxes, snap.agents.kinds):
            corners = _box_corners(*box)
            st.gt_agents.append((self._to_panel(corners), palette.AGENT.get(kind, palette.AGENT_DEFAULT)))
        det = plan.detections
        for b, s in zip(det.boxes, det.scores) if det is not None else ():
            if s >= cfg.score_threshold and np.all(np.isfinite(b)):
                st.detections.append(self._to_panel(_box_corners(b[0], b[1], b[2], b[3], b[4])))
        origin = np.zeros((1, 2))
        order = np.argsort(plan.rewards if plan.rewards is not None else plan.scores)  # best drawn last (on top)
        for i in order.tolist():
            if i != plan.selected:
                st.candidates.append((self._to_panel(np.concatenate([origin, plan.candidates[i, :, :2]])), ramp[i]))
        st.chosen = self._to_panel(np.concatenate([origin, plan.trajectory.poses[:, :2]]))
        length, width, centre = snap.ego_size
        st.ego = self._to_panel(_box_corners(centre, 0.0, 0.0, length, width))
        return st

    # ---- text
    def _tick_text(self, plan: PlanResult, snap: WorldView) -> tuple[list[Item], list[Item], list[Item]]:
        c = plan.commands
        ctrl = snap.control
        left: list[Item] = [
            Line(f"IRL-VLA  {snap.title}".rstrip(), header=True),
            Line(f"sim time {snap.time_s:7.2f} s   frame {snap.frame}", key="time_s", value=snap.time_s),
            Line(f"planning tick {plan.tick}   HUD {self.fps:5.1f} fps", key="tick", value=plan.tick),
            Gap(),
            Line("Commands", header=True),
        ]
        if c is not None:
            speed_p = float(c.speed_probs[int(c.speed)])
            path_p = float(c.path_probs[int(c.path)])
            left += [
                Line(f"speed plan  {c.speed_name} ({speed_p:.2f})", key="speed_command", value=c.speed_name),
                Line(f"path plan   {c.path_name} ({path_p:.2f})", key="path_command", value=c.path_name),
                Line(f"source      {c.source}, VLM tick {c.tick}", key="command_source", value=c.source),
            ]
        else:
            left.append(Line("speed/path  (the planner gives none)"))
        left += [
            Line(f"navigation  {snap.command.name}", key="navigation", value=snap.command.name),
            Gap(),
            Line("Vehicle", header=True),
            Line(f"speed       {snap.speed * 3.6:6.1f} km/h", key="speed_kmh", value=snap.speed * 3.6),
        ]
        if ctrl is not None:
            left += [
                Bar("steer", ctrl.steer, -1.0, 1.0, f"{ctrl.steer:+.3f}", key="steer"),
                Bar("throttle", ctrl.throttle, 0.0, 1.0, f"{ctrl.throttle:.3f}", key="throttle"),
                Bar("brake", ctrl.brake, 0.0, 1.0, f"{ctrl.brake:.3f}", key="brake"),
            ]
        else:
            left.append(Line("controls    (not given)"))
        left.append(Check("paused", self.paused))

        right: list[Item] = [Line("Latency (ms per stage)", header=True)]
        keys = [k for k in STAGE_ORDER if k in plan.timings] + [k for k in plan.timings if k not in STAGE_ORDER]
        for k in keys:
            v = float(plan.timings[k])
            right.append(Line(f"{k:<11}{v:9.1f}", key=f"latency.{k}", value=v))
        if snap.info:
            right += [Gap(), Line("World", header=True)]
            right += [Line(f"{k:<19}{v}", key=f"info.{k}", value=v) for k, v in snap.info.items()]

        sel, k = plan.selected, len(plan.candidates)
        score = float(plan.scores[sel])
        under: list[Item] = []
        if plan.rewards is not None:
            reward = plan.reward
            under.append(Line(f"chosen #{sel} of {k}   predicted EPDMS {reward:.3f}", key="epdms", value=reward))
        else:
            under.append(Line(f"chosen #{sel} of {k}   (no predicted EPDMS)"))
        if plan.confidences is not None:
            conf = float(plan.confidences[sel])
            under.append(Line(f"confidence {conf:.3f}   selection score {score:.3f}", key="confidence", value=conf))
        else:
            under.append(Line(f"selection score {score:.3f}", key="score", value=score))
        if "collision" in plan.penalties:
            collide = bool(np.asarray(plan.penalties["collision"])[sel])
            under.append(Check("predicted collision", collide, key="collision"))
        if self.history:  # above the bars, so it stays on screen
            under.append(Spark("pred. EPDMS", tuple(self.history)))
        if plan.submetrics is not None:
            for j, name in enumerate(EPDMS_METRICS):
                v = float(plan.submetrics[sel, j])
                under.append(Bar(name.upper(), v, 0.0, 1.0, f"{v:.3f}", key=f"submetric.{name}"))
        return left, right, under

    # ----------------------------------------------------------------------------------------------------- render
    def _font(self, pygame, size: int | None = None):
        size = size or self.cfg.font_size
        font = self._fonts.get(size)
        if font is None:
            font = self._fonts[size] = _monospace_font(pygame, size)
        return font

    def render(self, surface) -> None:
        """Draw the state of the last `tick()` onto a pygame surface of at least `width` x `height`."""
        import pygame

        surface.fill(palette.BACKGROUND)
        if self.show_mosaic:
            self._render_mosaic(pygame, surface)
        if self.show_bev:
            self._render_bev(pygame, surface)
        if self.show_text:
            for rect, items in (
                (self.layout.text_left, self.left),
                (self.layout.text_right, self.right),
                (self.layout.text_bev, self.under_bev),
            ):
                self._render_items(pygame, surface, rect, items)
        self._render_notices(pygame, surface)
        if self.show_help:
            self._render_help(pygame, surface)

    def _render_mosaic(self, pygame, surface) -> None:
        chosen = self.cfg.chosen_rgb
        for t in self.tiles:
            x, y, w, h = t.rect
            img = pygame.image.frombuffer(np.ascontiguousarray(t.image).tobytes(), t.image.shape[1::-1], "RGB")
            surface.blit(pygame.transform.smoothscale(img, (w, h)), (x, y))
            clip = surface.get_clip()
            surface.set_clip(pygame.Rect(x, y, w, h))
            for colour, runs in t.candidates:
                for run in runs:
                    _lines(pygame, surface, colour, run + (x, y), 1)
            for run in t.chosen:
                _lines(pygame, surface, chosen, run + (x, y), 3)
            surface.set_clip(clip)
            label = self._font(pygame, 12).render(t.name, True, palette.TEXT)
            surface.blit(label, (x + 4, y + 3))

    def _render_bev(self, pygame, surface) -> None:
        b = self.bev
        x, y, w, h = self.layout.bev
        clip = surface.get_clip()
        surface.set_clip(pygame.Rect(x, y, w, h))
        surface.fill(palette.PANEL, pygame.Rect(x, y, w, h))
        for poly in b.drivable:
            pygame.draw.polygon(surface, palette.ROAD, _pts(poly))
        if b.seg_rgb is not None:
            hs, ws = b.seg_rgb.shape[:2]
            seg = pygame.image.frombuffer(np.ascontiguousarray(b.seg_rgb).tobytes(), (ws, hs), "RGB")
            sx, sy, sw, sh = b.seg_rect
            seg = pygame.transform.scale(seg, (sw, sh))
            seg.set_colorkey((0, 0, 0))
            seg.set_alpha(int(round(self.cfg.seg_alpha * 255)))
            surface.blit(seg, (sx, sy))
        for line in b.lanes:
            _lines(pygame, surface, palette.LANE, line, 1)
        for line, colour in b.signals:
            _lines(pygame, surface, colour, line, 3)
        if b.route is not None:
            _lines(pygame, surface, palette.ROUTE, b.route, 2)
        for line in b.map_pred:
            _lines(pygame, surface, palette.MAP_PRED, line, 1)
        for poly, colour in b.gt_agents:
            pygame.draw.polygon(surface, colour, _pts(poly))
        for poly in b.detections:
            pygame.draw.polygon(surface, palette.DETECTION, _pts(poly), 1)
        for line, colour in b.candidates:
            _lines(pygame, surface, colour, line, 2)
        if b.ego is not None:
            pygame.draw.polygon(surface, palette.EGO, _pts(b.ego))
            pygame.draw.polygon(surface, palette.TEXT, _pts(b.ego), 1)
        if b.chosen is not None:
            _lines(pygame, surface, self.cfg.chosen_rgb, b.chosen, 4)
            for p in _pts(b.chosen[1:]):
                pygame.draw.circle(surface, self.cfg.chosen_rgb, p, 3)
        # EPDMS colour scale
        for i, colour in enumerate(_RAMP_LEGEND):
            pygame.draw.line(surface, colour, (x + 10 + i, y + h - 14), (x + 10 + i, y + h - 6))
        font = self._font(pygame, 12)
        surface.blit(font.render("pred. EPDMS 0 .. 1", True, palette.TEXT), (x + 116, y + h - 17))
        surface.blit(font.render(f"BEV {self.cfg.bev_range_m:g} m", True, palette.TEXT), (x + 6, y + 4))
        surface.set_clip(clip)

    def _render_items(self, pygame, surface, rect: Rect, items: list[Item]) -> None:
        x0, y0, w, h = rect
        surface.fill(palette.PANEL, pygame.Rect(x0, y0, w, h))
        clip = surface.get_clip()
        surface.set_clip(pygame.Rect(x0, y0, w - 4, h))  # long names stop at the column's edge
        font = self._font(pygame)
        line_h = int(self.cfg.font_size * 1.15)
        x, y = x0 + 8, y0 + 6
        bar_x, bar_w = x0 + 90, max(40, w - 170)
        for it in items:
            if y + line_h > y0 + h:
                break
            if isinstance(it, Gap):
                y += it.height
                continue
            if isinstance(it, Line):
                colour = palette.TEXT if not it.header else (255, 255, 160)
                surface.blit(font.render(it.text, True, colour), (x, y))
            elif isinstance(it, Bar):
                surface.blit(font.render(it.label, True, palette.TEXT), (x, y))
                r = pygame.Rect(bar_x, y + 2, bar_w, line_h - 5)
                pygame.draw.rect(surface, palette.BAR_BACK, r)
                frac = (min(max(it.value, it.lo), it.hi) - it.lo) / (it.hi - it.lo)
                if it.lo < 0 < it.hi:  # centred bar
                    zero = r.x + int(r.w * (-it.lo) / (it.hi - it.lo))
                    end = r.x + int(r.w * frac)
                    pygame.draw.rect(surface, palette.BAR_FILL, pygame.Rect(min(zero, end), r.y, abs(end - zero), r.h))
                else:
                    pygame.draw.rect(surface, palette.BAR_FILL, pygame.Rect(r.x, r.y, int(r.w * frac), r.h))
                surface.blit(font.render(it.text, True, palette.TEXT), (bar_x + bar_w + 6, y))
            elif isinstance(it, Check):
                r = pygame.Rect(x, y + 2, line_h - 5, line_h - 5)
                pygame.draw.rect(surface, palette.TEXT, r, 0 if it.on else 1)
                surface.blit(font.render(it.label, True, palette.TEXT), (x + line_h, y))
            elif isinstance(it, Spark):
                surface.blit(font.render(it.label, True, palette.TEXT), (x, y))
                vals = np.asarray(it.values, dtype=np.float64)
                if len(vals) >= 2:
                    spark_h = 2 * line_h
                    xs = bar_x + np.linspace(0, bar_w, len(vals))
                    ys = y + spark_h - (np.clip(vals, it.lo, it.hi) - it.lo) / (it.hi - it.lo) * spark_h
                    _lines(pygame, surface, palette.BAR_FILL, np.stack([xs, ys], -1), 1)
                y += line_h
            y += line_h
        surface.set_clip(clip)

    def _render_notices(self, pygame, surface) -> None:
        font = self._font(pygame, 16)
        y = self.cfg.height - 30
        for n in reversed(self.notices):
            text = font.render(n.text, True, palette.TEXT)
            box = pygame.Surface((text.get_width() + 16, text.get_height() + 8), pygame.SRCALPHA)
            box.fill((0, 0, 0, min(200, n.alpha)))
            box.blit(text, (8, 4))
            box.set_alpha(n.alpha)
            surface.blit(box, ((self.cfg.width - box.get_width()) // 2, y))
            y -= box.get_height() + 4

    def _render_help(self, pygame, surface) -> None:
        lines = [
            "Keys",
            "SPACE   pause / resume",
            "N, ->   one planning step while paused",
            "F1 / 1  text panel",
            "F2 / 2  BEV panel",
            "F3 / 3  camera mosaic",
            "P, F12  screenshot (PNG)",
            "H       this help",
            "ESC, Q  quit",
        ]
        font = self._font(pygame)
        w, lh = 340, int(self.cfg.font_size * 1.3)
        box = pygame.Surface((w, lh * len(lines) + 16), pygame.SRCALPHA)
        box.fill((0, 0, 0, 210))
        for i, s in enumerate(lines):
            box.blit(font.render(s, True, palette.TEXT), (12, 8 + i * lh))
        surface.blit(box, ((self.cfg.width - w) // 2, (self.cfg.height - box.get_height()) // 2))


# ------------------------------------------------------------------------------------------------------- helpers
def _densify(xy: np.ndarray, spacing: float = OVERLAY_SPACING_M) -> np.ndarray:
    """The trajectory from the ego origin through its poses, resampled every `spacing` metres, on the ground (z=0)."""
    pts = np.concatenate([np.zeros((1, 2)), np.asarray(xy, dtype=np.float64)[:, :2]])
    seg = np.hypot(*np.diff(pts, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] < 1e-6:
        out = pts[:1]
    else:
        q = np.append(np.arange(0.0, s[-1], spacing), s[-1])
        out = np.stack([np.interp(q, s, pts[:, 0]), np.interp(q, s, pts[:, 1])], axis=-1)
    return np.concatenate([out, np.zeros((len(out), 1))], axis=-1)


def _camera_runs(pts3: np.ndarray, cam: CameraSpec, scale: tuple[float, float]) -> list[np.ndarray]:
    """Tile-pixel polylines of the part of a ground curve in front of the camera (split where it leaves the view)."""
    width, height = cam.width, cam.height
    uv, depth = geometry.project_points(pts3, cam.intrinsics, cam.cam_to_ego)
    ok = depth > NEAR_DEPTH_M
    margin = max(width, height)
    ok &= (uv[:, 0] > -margin) & (uv[:, 0] < width + margin) & (uv[:, 1] > -margin) & (uv[:, 1] < height + margin)
    runs, start = [], None
    for i, good in enumerate(np.append(ok, False)):
        if good and start is None:
            start = i
        elif not good and start is not None:
            if i - start >= 2:
                runs.append(uv[start:i] * scale)
            start = None
    return runs


def _box_corners(x: float, y: float, heading: float, length: float, width: float) -> np.ndarray:
    c, s = math.cos(heading), math.sin(heading)
    local = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64) * (length / 2, width / 2)
    return local @ np.array([[c, s], [-s, c]]) + (x, y)


def _monospace_font(pygame, size: int):
    """A monospace system font as `manual_control.py` picks one (columns line up), else pygame's own font."""
    names = pygame.font.get_fonts()
    mono = [n for n in ("ubuntumono", "dejavusansmono", "liberationmono", "couriernew") if n in names]
    mono += sorted(n for n in names if "mono" in n)
    if mono:
        return pygame.font.Font(pygame.font.match_font(mono[0]), size)
    return pygame.font.Font(None, int(size * 1.25))


def _pts(arr: np.ndarray) -> list[tuple[int, int]]:
    a = np.clip(np.round(np.asarray(arr)), -30000, 30000).astype(int)
    return [tuple(p) for p in a.tolist()]


def _lines(pygame, surface, colour, arr: np.ndarray, width: int) -> None:
    pts = _pts(arr)
    if len(pts) >= 2:
        pygame.draw.lines(surface, colour, False, pts, width)
