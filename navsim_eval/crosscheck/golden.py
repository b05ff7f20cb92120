"""Golden file of official NAVSIM v2.2 scores, produced once with the devkit and checked in every CI run without it.

`make` (needs navsim + nuplan-devkit, docs/navsim_crosscheck.md) scores procedural scenes with the unmodified
official scorer, given the official PDM-Closed reference and Dijkstra centreline, EC from the frame 0.5 s earlier,
and writes the scenes, the proposals and the official nine sub-scores and EPDMS with the devkit commits they came from.
`check` (no devkit) re-scores the stored scenes and proposals with `navsim_eval` and lists every disagreement, so the
identity claim of docs/navsim_crosscheck.md is checked in CI, not only where the devkit is installed.

    python -m navsim_eval.crosscheck.golden make --out tests/navsim_eval/golden --navsim-commit SHA --nuplan-commit SHA
    python -m navsim_eval.crosscheck.golden check --golden tests/navsim_eval/golden
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np

from irlvla.atomic import atomic_write_json
from navsim_eval.config import METRIC_NAMES
from sim.scene import Scene

logger = logging.getLogger(__name__)

GOLDEN_FILE = "official_scores.json"
FORMAT_VERSION = 1


def _prev_scene(scene: Scene, offset_steps: int) -> Scene:
    return dataclasses.replace(scene, current_index=scene.current_index - offset_steps, token=f"{scene.token}@prev")


def make_case(scene: Scene, scene_file: str, stage_one: bool, anchors: np.ndarray, offset_steps: int = 5) -> dict:
    """Score one scene with the official devkit (official reference and centreline) and return its golden record."""
    from navsim_eval.crosscheck.compare import CrossCheckConfig, standard_proposals
    from navsim_eval.crosscheck.metric_cache import scene_to_metric_cache
    from navsim_eval.crosscheck.official_pdm_closed import official_reference_states
    from navsim_eval.crosscheck.official_scorer import official_score, official_two_frame_comfort

    cfg = CrossCheckConfig(num_anchors=len(anchors), frame_offset_steps=offset_steps)

    def official(sc: Scene, plans: np.ndarray):
        ref, centerline = official_reference_states(sc)
        cache = scene_to_metric_cache(sc, reference=ref, synthetic=not stage_one, centerline=centerline)
        return official_score(cache, plans)

    names, plans = standard_proposals(scene, cfg, anchors)
    prev = _prev_scene(scene, offset_steps)
    _, prev_plans = standard_proposals(prev, cfg, anchors)
    off, prev_off = official(scene, plans), official(prev, prev_plans)
    ec = official_two_frame_comfort(off.states, prev_off.states, offset_steps)
    table = np.concatenate([off.table, ec[:, None]], axis=1)
    return {
        "scene": scene_file,
        "token": scene.token,
        "stage_one": stage_one,
        "frame_offset_steps": offset_steps,
        "names": names,
        "proposals": plans.tolist(),
        "previous_proposals": prev_plans.tolist(),
        "official": table.tolist(),
        "official_epdms": off.epdms(ec).tolist(),
    }


def make(out: Path, families: list[str], seeds: list[int], anchors_path: Path | None, num_anchors: int, commits: dict):
    from navsim_eval.crosscheck.compare import load_anchors
    from sim.scenarios import generate_scene
    from sim.scene_io import save_scene

    anchors = load_anchors(num_anchors, anchors_path) if anchors_path else np.zeros((0, 8, 3))
    (out / "scenes").mkdir(parents=True, exist_ok=True)
    cases = []
    for fam in families:
        for seed in seeds:
            scene = generate_scene(fam, seed)
            rel = f"scenes/{fam}_{seed}.scene.json.gz"
            save_scene(scene, out / rel)
            for stage_one in (True, False):
                cases.append(make_case(scene, rel, stage_one, anchors))
                logger.info("%s seed %d stage %s: %d proposals", fam, seed, 1 if stage_one else 2, len(anchors) + 5)
    doc = {
        "format": FORMAT_VERSION,
        "what": "official NAVSIM v2.2 pdm_score of the stored proposals on the stored scenes, non-reactive, official "
        "PDM-Closed reference and centreline, EC from the frame 0.5 s earlier",
        "columns": [*METRIC_NAMES, "epdms"],
        "devkit": commits,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cases": cases,
    }
    atomic_write_json(out / GOLDEN_FILE, doc, indent=None)
    return doc


def check(golden_dir: Path, atol: float = 1e-6) -> tuple[int, list[dict]]:
    """Re-score every golden case with `navsim_eval`; returns (proposals compared, disagreements)."""
    from navsim_eval.api import score_proposals
    from navsim_eval.config import EpdmsConfig
    from sim.scene_io import load_scene

    doc = json.loads((golden_dir / GOLDEN_FILE).read_text())
    if doc.get("format") != FORMAT_VERSION:
        raise ValueError(f"{golden_dir / GOLDEN_FILE}: golden format {doc.get('format')!r}, expected {FORMAT_VERSION}")
    cfg = EpdmsConfig()
    n, bad = 0, []
    scenes: dict[str, Scene] = {}
    for case in doc["cases"]:
        scene = scenes.get(case["scene"]) or load_scene(golden_dir / case["scene"])
        scenes[case["scene"]] = scene
        prev = _prev_scene(scene, case["frame_offset_steps"])
        stage_one = bool(case["stage_one"])
        prev_res = score_proposals(prev, np.array(case["previous_proposals"]), cfg, stage_one=stage_one)
        res = score_proposals(scene, np.array(case["proposals"]), cfg, previous=prev_res, stage_one=stage_one)
        official = np.concatenate([np.array(case["official"]), np.array(case["official_epdms"])[:, None]], axis=1)
        ours = np.concatenate([res.table, res.epdms[:, None]], axis=1)
        same = np.isclose(official, ours, atol=atol, rtol=0.0, equal_nan=True)
        n += len(ours)
        for k, j in zip(*np.nonzero(~same)):
            bad.append(
                {
                    "token": case["token"],
                    "stage_one": stage_one,
                    "proposal": case["names"][k],
                    "metric": doc["columns"][j],
                    "official": float(official[k, j]),
                    "ours": float(ours[k, j]),
                }
            )
    return n, bad


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="score with the official devkit and write the golden folder")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--families", nargs="*", default=None)
    m.add_argument("--seeds", nargs="*", type=int, default=[0])
    m.add_argument("--anchors-file", type=Path, default=None, help="trajectory_anchors_256.npy")
    m.add_argument("--anchors", type=int, default=8)
    m.add_argument("--navsim-commit", required=True)
    m.add_argument("--nuplan-commit", required=True)
    c = sub.add_parser("check", help="re-score the golden cases with navsim_eval")
    c.add_argument("--golden", type=Path, required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.cmd == "make":
        from sim.scenarios import FAMILIES

        warnings.filterwarnings("ignore")
        commits = {"navsim": args.navsim_commit, "nuplan-devkit": args.nuplan_commit}
        doc = make(args.out, args.families or list(FAMILIES), args.seeds, args.anchors_file, args.anchors, commits)
        print(json.dumps({"cases": len(doc["cases"]), "proposals": sum(len(c["names"]) for c in doc["cases"])}))
        return 0
    n, bad = check(args.golden)
    print(json.dumps({"proposals": n, "disagreements": len(bad), "first": bad[:5]}))
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
