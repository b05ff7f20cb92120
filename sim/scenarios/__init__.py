"""Seeded, deterministic procedural scenarios: the embedded world's data source.

`generate_scene(family, seed)` always returns the same scene (byte-identical `scene_to_bytes`): every random draw
comes from `numpy.random.default_rng([seed, family, attempt])`. A draw whose expert would be unsafe or uncomfortable
is rejected and the next attempt is drawn, still deterministically.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from agent.geometry import wrap_angle
from agent.types import NavigationCommand
from sim.scenarios.build import ScenarioFailed, SceneBuild, scene_token
from sim.scenarios.families import RECIPES
from sim.scene import Scene

logger = logging.getLogger(__name__)

__all__ = [
    "FAMILIES",
    "ScenarioConfig",
    "build_scene",
    "generate_scene",
    "generate_scenes",
    "navigation_command",
    "scene_seeds",
    "scene_token",
]

FAMILIES: tuple[str, ...] = tuple(RECIPES)
MAX_ATTEMPTS = 12


@dataclass(frozen=True)
class ScenarioConfig:
    """Scene timing and population. Ranges are inclusive (low, high) draws per scene."""

    past_s: float = 2.0
    future_s: float = 8.0
    dt: float = 0.1
    num_background_agents: tuple[int, int] = (14, 28)
    num_pedestrians: tuple[int, int] = (2, 8)

    def __post_init__(self) -> None:
        if not (0.01 <= self.dt <= 0.5):
            raise ValueError(f"ScenarioConfig.dt must be in [0.01, 0.5] s, got {self.dt}")
        if not (1.5 <= self.past_s <= 10.0):
            raise ValueError(
                f"ScenarioConfig.past_s must be in [1.5, 10] s (comfort needs 1.5 s of history), got {self.past_s}"
            )
        if not (4.0 <= self.future_s <= 20.0):
            raise ValueError(f"ScenarioConfig.future_s must be in [4, 20] s (NAVSIM scores 4 s), got {self.future_s}")
        for name in ("past_s", "future_s"):
            steps = getattr(self, name) / self.dt
            if abs(steps - round(steps)) > 1e-6:
                raise ValueError(f"ScenarioConfig.{name} ({getattr(self, name)}) must be a multiple of dt ({self.dt})")
        for name, cap in (("num_background_agents", 60), ("num_pedestrians", 20)):
            lo_hi = getattr(self, name)
            if (
                not isinstance(lo_hi, tuple)
                or len(lo_hi) != 2
                or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in lo_hi)
            ):
                raise ValueError(f"ScenarioConfig.{name} must be a (low, high) tuple of ints, got {lo_hi!r}")
            if not (0 <= lo_hi[0] <= lo_hi[1] <= cap):
                raise ValueError(f"ScenarioConfig.{name} must satisfy 0 <= low <= high <= {cap}, got {lo_hi}")

    @property
    def past_steps(self) -> int:
        return int(round(self.past_s / self.dt))

    @property
    def num_steps(self) -> int:
        return self.past_steps + int(round(self.future_s / self.dt)) + 1


def _check_family(family: str) -> None:
    if family not in RECIPES:
        raise ValueError(f"unknown scenario family {family!r}; choose from {', '.join(FAMILIES)}")


def generate_scene(family: str, seed: int, config: ScenarioConfig | None = None) -> Scene:
    """One scene of `family`, fully determined by (family, seed, config)."""
    return build_scene(family, seed, config)[0]


def build_scene(family: str, seed: int, config: ScenarioConfig | None = None) -> tuple[Scene, SceneBuild]:
    """`generate_scene` plus the finished `SceneBuild` (actors' paths, IDM settings, signal plan), which the
    closed-loop world needs to keep the scene alive beyond its logged horizon."""
    _check_family(family)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    config = config or ScenarioConfig()
    fam_code = FAMILIES.index(family)
    last: Exception | None = None
    for attempt in range(MAX_ATTEMPTS):
        rng = np.random.default_rng([int(seed), fam_code, attempt])
        b = SceneBuild(
            family=family,
            seed=int(seed),
            rng=rng,
            road=None,
            num_steps=config.num_steps,
            current_index=config.past_steps,
            dt=config.dt,
        )
        bg = int(rng.integers(config.num_background_agents[0], config.num_background_agents[1] + 1))
        peds = int(rng.integers(config.num_pedestrians[0], config.num_pedestrians[1] + 1))
        try:
            RECIPES[family](b, bg, peds)
            b.metadata.setdefault("expected_command", "STRAIGHT")
            b.metadata["attempt"] = attempt
            return b.finish(), b
        except ScenarioFailed as exc:
            logger.debug("%s seed %d attempt %d rejected: %s", family, seed, attempt, exc)
            last = exc
    raise RuntimeError(f"could not generate a safe {family} scene for seed {seed} in {MAX_ATTEMPTS} attempts: {last}")


def generate_scenes(
    n: int, seed: int, families: tuple[str, ...] | list[str] | None = None, config: ScenarioConfig | None = None
) -> list[Scene]:
    """`n` scenes cycling through `families` (all by default); scene i's seed is drawn from `seed`."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(families, str):
        families = (families,)
    families = tuple(families) if families else FAMILIES
    if not families:
        raise ValueError("families must not be empty")
    for f in families:
        _check_family(f)
    seeds = scene_seeds(n, seed)
    return [generate_scene(families[i % len(families)], int(seeds[i]), config) for i in range(n)]


def scene_seeds(n: int, seed: int) -> np.ndarray:
    """Per-scene seeds of a batch: scene i of (n, seed) is generate_scene(family_i, scene_seeds(n, seed)[i])."""
    return np.random.default_rng(int(seed)).integers(0, 2**31 - 1, size=int(n))


def navigation_command(
    scene: Scene, step: int | None = None, lookahead_m: float = 60.0, threshold_rad: float = 0.6
) -> NavigationCommand:
    """LEFT / RIGHT when the route's heading turns by more than `threshold_rad` within `lookahead_m` of the ego
    (the largest deviation counts, so a turn is announced before the ego reaches it), else STRAIGHT."""
    step = scene.current_index if step is None else step
    route = scene.route
    s_now = float(route.project(scene.ego[step, :2]))
    s = route.arclength
    window = (s >= s_now) & (s <= s_now + lookahead_m)
    if window.sum() < 2:
        return NavigationCommand.STRAIGHT
    h = np.unwrap(route.centerline[:, 2])
    i0 = int(np.argmax(window))
    dh = wrap_angle(h[window] - h[i0])
    k = int(np.argmax(np.abs(dh)))
    if abs(dh[k]) <= threshold_rad:
        return NavigationCommand.STRAIGHT
    return NavigationCommand.LEFT if dh[k] > 0 else NavigationCommand.RIGHT
