"""`irlvla epdms score`: score a file of trajectories on a folder of scenes and write NAVSIM's two-stage CSV.

A token that fails (bad trajectory, missing or malformed scene, scoring error) becomes a NaN row with valid=False and
its error in the log; the run goes on.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import zipfile
from pathlib import Path

import numpy as np

from agent.epdms_metrics import EC
from navsim_eval.aggregate import (
    TokenRow,
    assign_weights,
    csv_text,
    read_mapping,
    stage_one_only_summary,
    two_stage_scores,
    write_csv,
)
from navsim_eval.api import EpdmsResult, aggregate_epdms, score_proposals
from navsim_eval.comfort import two_frame_extended_comfort
from navsim_eval.config import METRIC_NAMES, EpdmsConfig, IDMTrafficConfig, ScorerConfig
from sim.scene import Scene
from sim.scene_io import SUFFIX, list_scene_files, load_scene

logger = logging.getLogger(__name__)


def load_trajectories(path: str | Path) -> dict[str, np.ndarray]:
    """token -> (8, 3) plan from a .npz (one array per token) or a .json object {token: [[x, y, heading], ...]}.

    Values are returned as float arrays without shape checks: a malformed entry fails its own token only.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trajectory file not found: {path}")
    if path.suffix == ".npz":
        try:
            z = np.load(path, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise ValueError(f"{path}: not a readable .npz of token -> (8, 3) arrays ({exc})") from exc
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError(f"{path}: holds a single array, not an .npz archive of token -> (8, 3) arrays")
        with z:
            out = {}
            for k in z.files:
                try:
                    out[k] = np.asarray(z[k], dtype=np.float64)
                except (TypeError, ValueError, zipfile.BadZipFile) as exc:  # a bad entry fails its own token only
                    logger.warning("%s: entry %r unreadable: %s", path, k, exc)
                    out[k] = np.full((0,), np.nan)
            return out
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object mapping token -> [[x, y, heading] x 8]")
        out = {}
        for k, v in data.items():
            try:
                out[str(k)] = np.asarray(v, dtype=np.float64)
            except (TypeError, ValueError):
                out[str(k)] = np.full((0,), np.nan)
        return out
    raise ValueError(f"{path}: trajectory file must be .npz or .json")


class _SceneIndex:
    """Token -> scene file, by file name first and by reading every file only when a token is not found."""

    def __init__(self, folder: Path) -> None:
        self.files = list_scene_files(folder)
        self.by_stem = {p.name[: -len(SUFFIX)]: p for p in self.files}
        self._full: dict[str, Path] | None = None

    def load(self, token: str) -> Scene:
        p = self.by_stem.get(token)
        if p is not None:
            scene = load_scene(p)
            if scene.token == token:
                return scene
        if self._full is None:
            self._full = {}
            for f in self.files:
                try:
                    self._full[load_scene(f).token] = f
                except Exception as exc:  # a broken file fails only the tokens that need it
                    logger.warning("cannot read scene file %s: %s", f, exc)
        if token not in self._full:
            raise KeyError(f"no scene with token {token!r} in the scene folder")
        return load_scene(self._full[token])


def _row(result: EpdmsResult, stage: int) -> TokenRow:
    vals = result.row(0)
    return TokenRow(result.token, stage, vals)


def run_score(
    scenes: str | Path,
    trajectories: str | Path,
    out: str | Path,
    config: EpdmsConfig | None = None,
    mapping: str | Path | None = None,
) -> tuple[list[TokenRow], Path]:
    """Score every token of `trajectories`, aggregate and write the CSV; returns the token rows and the CSV path."""
    config = config or EpdmsConfig()
    plans = load_trajectories(trajectories)
    index = _SceneIndex(Path(scenes))
    groups = read_mapping(mapping) if mapping else []
    stage1 = {t for g in groups for t in (g.now, g.prev)}
    stage2 = {t for g in groups for p in g.pairs for t in p}
    results: dict[str, EpdmsResult] = {}
    rows: dict[str, TokenRow] = {}
    for token, plan in plans.items():
        stage = 2 if token in stage2 else 1
        try:
            scene = index.load(token)
            if token not in stage1 and token not in stage2 and scene.metadata.get("synthetic", False):
                stage = 2
            res = score_proposals(scene, plan, config, stage_one=(stage == 1))
            results[token] = res
            rows[token] = _row(res, stage)
        except Exception as exc:
            logger.error("token %s failed: %s", token, exc)
            rows[token] = TokenRow.invalid(token, stage, str(exc))
    # EC over (now, prev) pairs: both tokens of a pair get the same value (scene_aggregator.py)
    pairs = [(g.now, g.prev) for g in groups] + [p for g in groups for p in g.pairs]
    for now, prev in pairs:
        if now in results and prev in results:
            ec = float(
                two_frame_extended_comfort(
                    results[now].states, results[prev].states, config.scorer, results[now].centre_offset
                )[0]
            )
            for tok in (now, prev):
                res = results[tok]
                res.table[:, EC] = ec
                res.epdms = aggregate_epdms(res.table, config)
                rows[tok].values = res.row(0)
    ordered = [rows[t] for t in plans if rows[t].stage == 1] + [rows[t] for t in plans if rows[t].stage == 2]
    if groups:
        endpoints = {t: r.end_points[0, :2] for t, r in results.items()}
        starts = {t: r.start_pose[:2] for t, r in results.items()}
        assign_weights(rows, groups, endpoints, starts)
        combined, s1, s2 = two_stage_scores(rows, groups)
        failed = [t for g in groups for t in (g.now, g.prev, *(x for p in g.pairs for x in p)) if t not in results]
        summary_valid = not failed
        if failed:
            logger.warning(
                "%d grouped tokens failed or are missing (first: %s); their groups are left out of the two-stage "
                "means and the summary rows are marked valid=False",
                len(failed),
                failed[:5],
            )
    else:
        summary_valid = True
        s1 = stage_one_only_summary(ordered)
        s2 = stage_one_only_summary([TokenRow(r.token, 1, r.values, r.valid) for r in ordered if r.stage == 2])
        combined = {c: math.nan for c in (*METRIC_NAMES, "score")}
    path = write_csv(out, csv_text(ordered, s1, s2, combined, summary_valid))
    n_bad = sum(not r.valid for r in ordered)
    logger.info("scored %d tokens (%d failed); EPDMS stage one %.4f; CSV %s", len(ordered), n_bad, s1["score"], path)
    return ordered, path


def _cmd_score(args: argparse.Namespace) -> int:
    scorer = ScorerConfig(
        human_penalty_filter=not args.no_human_filter,
        navsim_2hz_agents=not args.native_10hz,
        ep_normalisation=args.ep_normalisation,
    )
    traffic = IDMTrafficConfig(model=args.reactive_model)
    config = EpdmsConfig(scorer=scorer, traffic=traffic, reactive=args.reactive)
    try:
        rows, _ = run_score(args.scenes, args.trajectories, args.out, config, args.two_stage)
    except (FileNotFoundError, ValueError) as exc:
        logger.error("%s", exc)
        return 2
    return 0 if all(r.valid for r in rows) else 1


#: Reference plans a user can score without a model: the logged expert and NAVSIM's constant-velocity baseline.
BASELINES = ("human", "constant_velocity")


def baseline_plan(scene: Scene, kind: str) -> np.ndarray:
    """(8, 3) plan in the rear-axle frame: the logged human future, or NAVSIM's `ConstantVelocityAgent` (the current
    speed held straight ahead along the current heading)."""
    if kind == "human":
        return scene.human_trajectory()
    if kind == "constant_velocity":
        speed = float(np.hypot(*scene.ego[scene.current_index, 3:5]))
        t = 0.5 * np.arange(1, 9)
        return np.stack([speed * t, np.zeros(8), np.zeros(8)], axis=1)
    raise ValueError(f"unknown baseline {kind!r}; choose one of {', '.join(BASELINES)}")


def write_baseline_trajectories(scenes: str | Path, kind: str, out: str | Path) -> int:
    """Write token -> baseline plan for every readable scene of a folder as an .npz (atomically); returns the count."""
    import io

    from irlvla.atomic import atomic_write_bytes

    plans: dict[str, np.ndarray] = {}
    for f in list_scene_files(scenes):
        try:
            scene = load_scene(f)
            plans[scene.token] = baseline_plan(scene, kind)
        except (ValueError, OSError) as exc:  # one unreadable scene must not stop the others
            logger.warning("skipping %s: %s", f.name, exc)
    if not plans:
        raise ValueError(f"no readable scenes in {scenes}")
    buf = io.BytesIO()
    np.savez(buf, **plans)
    atomic_write_bytes(out, buf.getvalue())
    return len(plans)


def _cmd_baseline(args: argparse.Namespace) -> int:
    try:
        n = write_baseline_trajectories(args.scenes, args.agent, args.out)
    except (FileNotFoundError, ValueError) as exc:
        logger.error("%s", exc)
        return 2
    logger.info("wrote %d %s plans to %s", n, args.agent, args.out)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("epdms", help="NAVSIM v2 EPDMS scoring of trajectories on scenes")
    sub = parser.add_subparsers(dest="epdms_command", metavar="ACTION")
    s = sub.add_parser("score", help="score a trajectory file on a scene folder and write NAVSIM's CSV")
    s.add_argument("--scenes", required=True, help="folder of *.scene.json.gz scenes")
    s.add_argument("--trajectories", required=True, help=".npz or .json mapping token -> (8, 3) poses at 0.5 s")
    s.add_argument("--out", required=True, help="CSV to write (atomically)")
    s.add_argument("--reactive", action="store_true", help="IDM background traffic instead of log replay")
    s.add_argument(
        "--reactive-model",
        choices=("navsim", "logged_path"),
        default="navsim",
        help="with --reactive: the official NAVSIM IDM agents (default) or the faster logged-path variant",
    )
    s.add_argument("--two-stage", metavar="MAPPING", help="JSON list [orig, prev, [[now, prev], ...]] (navhard)")
    s.add_argument("--no-human-filter", action="store_true", help="disable the stage-one human filter")
    s.add_argument("--native-10hz", action="store_true", help="use 10 Hz agents/history instead of NAVSIM's 2 Hz")
    s.add_argument("--ep-normalisation", choices=("pair", "batch"), default="pair")
    s.set_defaults(func=_cmd_score)
    b = sub.add_parser("baseline", help="write a trajectory file of a reference agent (human, constant velocity)")
    b.add_argument("--scenes", required=True, help="folder of *.scene.json.gz scenes")
    b.add_argument("--agent", choices=BASELINES, default="constant_velocity")
    b.add_argument("--out", required=True, help=".npz to write (token -> (8, 3))")
    b.set_defaults(func=_cmd_baseline)

    def _help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=_help)
