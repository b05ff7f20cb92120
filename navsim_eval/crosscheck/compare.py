"""Cross-check our batched EPDMS (`navsim_eval`) against the official NAVSIM v2.2 scorer on generated scenes.

Each scene is converted to a metric cache (`navsim_eval.crosscheck.metric_cache`), every proposal is scored by the
devkit one at a time and by `score_proposals` in one batch, and the nine sub-scores and EPDMS are compared. EC is
compared on (previous, current) frame pairs 0.5 s apart with the same proposal family built at each frame.

Run (needs navsim + nuplan-devkit, see docs/navsim_crosscheck.md):
    python -m navsim_eval.crosscheck.compare --seeds 0 1 2 --anchors 32 --out crosscheck.json
It prints one JSON summary; `--out` also keeps every disagreement.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from irlvla.atomic import atomic_write_text
from navsim_eval.config import METRIC_NAMES
from sim.scene import EGO_VX, Scene

logger = logging.getLogger(__name__)

METRICS: tuple[str, ...] = METRIC_NAMES
ANCHORS_PATH = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "navsim" / "trajectory_anchors_256.npy"


@dataclass(frozen=True)
class CrossCheckConfig:
    """Which proposals to compare and how close counts as equal.

    `atol`: absolute tolerance on every sub-score and EPDMS (EP is continuous; the others are 0, 0.5 or 1).
    `frame_offset_steps`: the previous frame for EC is this many scene steps (0.1 s) earlier.
    """

    num_anchors: int = 8
    atol: float = 1e-6
    frame_offset_steps: int = 5
    brake_decel: float = 6.0
    swerve_offset_m: float = 12.0

    def __post_init__(self) -> None:
        if not (isinstance(self.num_anchors, int) and 0 <= self.num_anchors <= 256):
            raise ValueError(f"CrossCheckConfig.num_anchors must be an int in [0, 256], got {self.num_anchors}")
        if not (self.atol >= 0):
            raise ValueError(f"CrossCheckConfig.atol must be non-negative, got {self.atol}")
        if not (isinstance(self.frame_offset_steps, int) and self.frame_offset_steps > 0):
            raise ValueError("CrossCheckConfig.frame_offset_steps must be a positive int")
        if not (self.brake_decel > 0 and self.swerve_offset_m > 0):
            raise ValueError("CrossCheckConfig.brake_decel and swerve_offset_m must be positive")


def load_anchors(count: int, path: Path = ANCHORS_PATH) -> np.ndarray:
    """`count` anchors spread evenly over the 256-trajectory vocabulary, or none when the file is absent."""
    if count <= 0 or not path.is_file():
        return np.zeros((0, 8, 3))
    anchors = np.load(path).astype(np.float64)
    if anchors.ndim != 3 or anchors.shape[1:] != (8, 3):
        raise ValueError(f"{path}: expected (N, 8, 3) anchors, got {anchors.shape}")
    idx = np.linspace(0, len(anchors) - 1, min(count, len(anchors))).round().astype(int)
    return anchors[idx]


def standard_proposals(
    scene: Scene, config: CrossCheckConfig | None = None, anchors: np.ndarray | None = None
) -> tuple[list[str], np.ndarray]:
    """Named plans (K, 8, 3) at the scene's current frame: human, constant velocity, hard brake, swerves, anchors."""
    cfg = config or CrossCheckConfig()
    t = 0.5 * np.arange(1, 9)
    v = max(float(scene.ego[scene.current_index, EGO_VX]), 0.0)
    zeros = np.zeros(8)
    human = scene.human_trajectory()
    cv = np.stack([v * t, zeros, zeros], axis=-1)
    stop = v * v / (2 * cfg.brake_decel)
    brake = np.stack([np.minimum(v * t - 0.5 * cfg.brake_decel * t**2, stop), zeros, zeros], axis=-1)
    brake[:, 0] = np.maximum.accumulate(np.where(t < v / cfg.brake_decel, brake[:, 0], stop))
    lateral = np.linspace(cfg.swerve_offset_m / 8, cfg.swerve_offset_m, 8)
    swerve_left = human.copy()
    swerve_left[:, 1] += lateral
    swerve_left[:, 2] += np.arctan2(cfg.swerve_offset_m, max(float(human[-1, 0]), 1.0))
    swerve_right = human.copy()
    swerve_right[:, 1] -= lateral
    swerve_right[:, 2] -= np.arctan2(cfg.swerve_offset_m, max(float(human[-1, 0]), 1.0))
    names = ["human", "constant_velocity", "hard_brake", "swerve_left", "swerve_right"]
    plans = [human, cv, brake, swerve_left, swerve_right]
    anchors = np.zeros((0, 8, 3)) if anchors is None else anchors
    names += [f"anchor_{i}" for i in range(len(anchors))]
    return names, np.concatenate([np.stack(plans), anchors], axis=0)


def _at_step(scene: Scene, step: int) -> Scene:
    """The same scene seen from another frame (the previous frame of a now/prev pair)."""
    return dataclasses.replace(scene, current_index=step, token=f"{scene.token}@{step}")


@dataclass
class SceneComparison:
    """Official and our nine sub-scores (K, 9) and EPDMS (K,) for one scene; EC from the (prev, now) pair."""

    token: str
    family: str
    names: list[str]
    official: np.ndarray
    ours: np.ndarray
    official_epdms: np.ndarray
    ours_epdms: np.ndarray
    seconds_official: float
    seconds_ours: float

    def disagreements(self, atol: float) -> list[dict]:
        out = []
        both = np.concatenate([self.official, self.official_epdms[:, None]], axis=1)
        mine = np.concatenate([self.ours, self.ours_epdms[:, None]], axis=1)
        for k, j in zip(*np.nonzero(~np.isclose(both, mine, atol=atol, rtol=0.0, equal_nan=True))):
            out.append(
                {
                    "token": self.token,
                    "family": self.family,
                    "proposal": self.names[k],
                    "metric": (*METRICS, "epdms")[j],
                    "official": float(both[k, j]),
                    "ours": float(mine[k, j]),
                }
            )
        return out


def compare_scene(
    scene: Scene,
    config: CrossCheckConfig | None = None,
    anchors: np.ndarray | None = None,
    with_ec: bool = True,
    synthetic: bool = False,
    official_reference: bool = False,
    reactive: bool = False,
) -> SceneComparison:
    """Score the standard proposals of `scene` with both scorers; EC needs `frame_offset_steps` more history.

    synthetic: score as a stage-two (synthetic) scene, i.e. without the human filter.
    official_reference: give the official scorer the official PDM-Closed reference and Dijkstra centreline
    (`navsim_eval.crosscheck.official_pdm_closed`) instead of ours, so the reference planner is compared too.
    reactive: both sides use the reactive IDM traffic (official: `NavsimIDMTrafficAgents` on `SceneIdmMapApi`).
    """
    from navsim_eval.api import score_proposals
    from navsim_eval.config import EpdmsConfig, IDMTrafficConfig
    from navsim_eval.crosscheck.metric_cache import reference_states, scene_to_metric_cache
    from navsim_eval.crosscheck.official_scorer import official_score, official_two_frame_comfort

    cfg = config or CrossCheckConfig()
    ours_cfg = EpdmsConfig(reactive=reactive, traffic=IDMTrafficConfig(model="navsim"))

    def official(sc: Scene, plans: np.ndarray):
        if reactive:
            from navsim_eval.crosscheck.official_idm import official_reactive_score

            return official_reactive_score(cache(sc), sc, plans)
        return official_score(cache(sc), plans)

    def cache(sc: Scene):
        if official_reference:
            from navsim_eval.crosscheck.official_pdm_closed import official_reference_states

            ref, centerline = official_reference_states(sc)
            return scene_to_metric_cache(sc, reference=ref, synthetic=synthetic, centerline=centerline)
        return scene_to_metric_cache(sc, reference=reference_states(sc), synthetic=synthetic)

    names, plans = standard_proposals(scene, cfg, anchors)
    t0 = time.perf_counter()
    off = official(scene, plans)
    t_off = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = score_proposals(scene, plans, ours_cfg, stage_one=not synthetic)
    t_ours = time.perf_counter() - t0
    off_table = np.concatenate([off.table, np.full((len(plans), 1), np.nan)], axis=1)
    ours_table = ours.table.copy()
    ours_epdms = ours.epdms.copy()
    ec = None
    if with_ec:
        prev_scene = _at_step(scene, scene.current_index - cfg.frame_offset_steps)
        _, prev_plans = standard_proposals(prev_scene, cfg, anchors)
        prev_off = official(prev_scene, prev_plans)
        ec = official_two_frame_comfort(off.states, prev_off.states, cfg.frame_offset_steps)
        off_table[:, -1] = ec
        prev_ours = score_proposals(prev_scene, prev_plans, ours_cfg, stage_one=not synthetic)
        with_prev = score_proposals(scene, plans, ours_cfg, previous=prev_ours, stage_one=not synthetic)
        ours_table, ours_epdms = with_prev.table, with_prev.epdms
    return SceneComparison(
        token=scene.token,
        family=scene.scenario,
        names=names,
        official=off_table,
        ours=ours_table,
        official_epdms=off.epdms(ec),
        ours_epdms=ours_epdms,
        seconds_official=t_off,
        seconds_ours=t_ours,
    )


def summarise(results: list[SceneComparison], atol: float) -> dict:
    """Per-metric agreement counts over every compared proposal, plus the disagreements."""
    if not results:
        return {"scenes": 0, "proposals": 0, "agree": {}, "disagreements": []}
    off = np.concatenate([np.concatenate([r.official, r.official_epdms[:, None]], axis=1) for r in results])
    ours = np.concatenate([np.concatenate([r.ours, r.ours_epdms[:, None]], axis=1) for r in results])
    same = np.isclose(off, ours, atol=atol, rtol=0.0, equal_nan=True)
    names = (*METRICS, "epdms")
    return {
        "scenes": len(results),
        "proposals": int(off.shape[0]),
        "agree": {n: int(same[:, j].sum()) for j, n in enumerate(names)},
        "all_agree": int(same.all(axis=1).sum()),
        "official_below_one": {n: int(np.sum(off[:, j] < 1.0 - atol)) for j, n in enumerate(names)},
        "official_s_per_proposal": sum(r.seconds_official for r in results) / off.shape[0],
        "ours_s_per_proposal": sum(r.seconds_ours for r in results) / off.shape[0],
        "disagreements": [d for r in results for d in r.disagreements(atol)],
    }


def _write_json(path: Path, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1))


def main(argv: list[str] | None = None) -> int:
    from sim.scenarios import FAMILIES, generate_scene

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", nargs="*", default=list(FAMILIES))
    p.add_argument("--seeds", nargs="*", type=int, default=[0])
    p.add_argument("--anchors", type=int, default=8, help="anchors from trajectory_anchors_256.npy per scene")
    p.add_argument("--no-ec", action="store_true", help="skip the previous frame (EC)")
    p.add_argument("--synthetic", action="store_true", help="score as stage-two scenes (no human filter)")
    p.add_argument(
        "--official-reference", action="store_true", help="official PDM-Closed reference and centreline on their side"
    )
    p.add_argument("--reactive", action="store_true", help="reactive IDM traffic on both sides")
    p.add_argument("--out", type=Path, default=None, help="write the summary with every disagreement here")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    cfg = CrossCheckConfig(num_anchors=args.anchors)
    anchors = load_anchors(cfg.num_anchors)
    results, failures = [], []
    for fam in args.families:
        for seed in args.seeds:
            try:
                results.append(
                    compare_scene(
                        generate_scene(fam, seed),
                        cfg,
                        anchors,
                        with_ec=not args.no_ec,
                        synthetic=args.synthetic,
                        official_reference=args.official_reference,
                        reactive=args.reactive,
                    )
                )
            except Exception as exc:  # a harness records per-item failures and goes on
                logger.exception("scene %s/%d failed", fam, seed)
                failures.append({"family": fam, "seed": seed, "error": f"{type(exc).__name__}: {exc}"})
    summary = summarise(results, cfg.atol)
    summary["failures"] = failures
    if args.out:
        _write_json(args.out, summary)
    short = {k: v for k, v in summary.items() if k != "disagreements"}
    short["num_disagreements"] = len(summary["disagreements"])
    print(json.dumps(short))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
