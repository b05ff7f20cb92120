"""`irlvla epdms score`: score a file of trajectories on a folder of scenes and write NAVSIM's two-stage CSV.

A token with bad input (a malformed trajectory, a missing or malformed scene, a mapping token without a trajectory)
becomes a NaN row with valid=False, its error in the log, and is counted in the summary (exit 1). An exception of the
scorer itself on valid input is a bug: its traceback is logged and the run fails (exit 3) without writing. Nothing
existing is replaced by an empty or failed run: every check that can fail runs before the CSV is written (atomically).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import zipfile
from pathlib import Path

import numpy as np

from agent.epdms_metrics import EC
from irlvla.atomic import atomic_write_bytes, atomic_write_json
from navsim_eval.aggregate import (
    TokenRow,
    assign_weights,
    csv_text,
    read_mapping,
    stage_one_only_summary,
    two_stage_scores,
    write_csv,
)
from navsim_eval.api import aggregate_epdms
from navsim_eval.comfort import two_frame_extended_comfort
from navsim_eval.config import METRIC_NAMES, EpdmsConfig, IDMTrafficConfig, ScorerConfig
from navsim_eval.metric_cache import MetricCacheIndex, require_devkit
from navsim_eval.runner import BACKENDS, InputError, TokenRecord, check_plan, score_tokens
from sim.scene import Scene
from sim.scene_io import list_scene_files, load_scene

logger = logging.getLogger(__name__)


def _entry(path: Path, token: str, value) -> np.ndarray | InputError:
    """A plan as a float array, or the `InputError` its token will fail with (strings, ragged rows, bad entries)."""
    if isinstance(value, str) or (isinstance(value, np.ndarray) and value.dtype.kind not in "biuf"):
        return InputError(f"token {token}: the trajectory holds text, not numbers of shape (8, 3) x, y, heading")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        try:
            check_plan(token, value)
        except InputError as exc:
            return exc
        return InputError(f"token {token}: the trajectory in {path.name} is not numeric")


def load_trajectories(path: str | Path) -> dict[str, np.ndarray | InputError]:
    """token -> (8, 3) plan from a .npz (one array per token) or a .json object {token: [[x, y, heading], ...]}.

    A malformed entry (text, ragged rows, an unreadable array) becomes the `InputError` that fails its own token only;
    shapes are checked per token when scoring. An unreadable or empty file is a `ValueError`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trajectory file not found: {path}")
    out: dict[str, np.ndarray | InputError] = {}
    if path.suffix == ".npz":
        try:
            z = np.load(path, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise ValueError(f"{path}: not a readable .npz of token -> (8, 3) arrays ({exc})") from exc
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError(f"{path}: holds a single array, not an .npz archive of token -> (8, 3) arrays")
        with z:
            for k in z.files:
                try:
                    out[k] = _entry(path, k, z[k])
                except (TypeError, ValueError, zipfile.BadZipFile) as exc:  # a bad entry fails its own token only
                    out[k] = InputError(f"token {k}: entry unreadable in {path.name} ({exc})")
    elif path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object mapping token -> [[x, y, heading] x 8]")
        out = {str(k): _entry(path, str(k), v) for k, v in data.items()}
    else:
        raise ValueError(f"{path}: trajectory file must be .npz or .json")
    if not out:
        raise ValueError(f"{path}: holds no trajectories (nothing to score; no CSV written)")
    return out


class InternalScoringError(RuntimeError):
    """The scorer raised on valid input (a bug): the run fails and writes no CSV; tracebacks are in the log."""


def check_out(out: Path, suffixes: tuple[str, ...] = (".csv",)) -> None:
    """Refuse an output path that is a directory or has another extension, before any work is done."""
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; give the file to write")
    if out.suffix.lower() not in suffixes:
        raise ValueError(f"--out {out}: must end in {' or '.join(suffixes)}")


def _row(rec: TokenRecord, config: EpdmsConfig) -> TokenRow:
    vals = {c: float(rec.table[j]) for j, c in enumerate(METRIC_NAMES)}
    vals["score"] = float(aggregate_epdms(rec.table[None], config)[0])
    return TokenRow(rec.token, rec.stage, vals)


def run_score(
    scenes: str | Path,
    trajectories: str | Path,
    out: str | Path,
    config: EpdmsConfig | None = None,
    mapping: str | Path | None = None,
    workers: int = 1,
    backend: str = "serial",
    journal: str | Path | None = None,
    progress: bool = False,
    ray_address: str | None = None,
) -> tuple[list[TokenRow], Path]:
    """Score every token of `trajectories`, aggregate and write the CSV; returns the token rows and the CSV path.

    scenes: a folder of our scenes, or of NAVSIM metric caches (`<token>/metric_cache.pkl` below it), which are scored
    with everything they carry used as given (`navsim_eval.metric_cache`).

    Bad input of one token (no scene, a malformed plan) is a counted failure (NaN row, valid=False), and so is a token
    of the two-stage mapping without a trajectory. An empty trajectory file, an `out` that is a directory or an
    unreadable mapping raise `ValueError` before anything is written; a scorer exception on valid input raises
    `InternalScoringError` once every token was tried, and writes nothing either (finished tokens stay in `journal`).
    """
    config = config or EpdmsConfig()
    out = Path(out)
    check_out(out)
    plans = load_trajectories(trajectories)
    if not Path(scenes).is_dir():
        raise FileNotFoundError(f"scene or metric-cache folder not found: {scenes}")
    if MetricCacheIndex.holds_caches(scenes):  # real NAVSIM tokens: the caches' own reference, map and observation
        require_devkit()  # unpickling needs the devkits: fail the run here, not token by token
        if config.reactive:
            raise ValueError("--reactive needs the map, which a NAVSIM metric cache does not hold; use log replay")
    groups = read_mapping(mapping) if mapping else []
    stage1 = dict.fromkeys(t for g in groups for t in (g.now, g.prev))
    stage2 = dict.fromkeys(t for g in groups for p in g.pairs for t in p)
    unknown = [t for t in {**stage1, **stage2} if t not in plans]
    if groups and len(unknown) == len({**stage1, **stage2}):
        raise ValueError(f"{mapping}: none of its {len(unknown)} tokens has a trajectory in {trajectories}")
    stages = {t: 2 if t in stage2 else 1 for t in plans}
    records = score_tokens(scenes, plans, stages, config, workers, backend, journal, progress, ray_address)
    internal = [t for t, r in records.items() if r.internal]
    if internal:
        raise InternalScoringError(
            f"the scorer failed on {len(internal)} token(s) with valid input (first: {internal[:5]}); this is a bug, "
            f"the tracebacks are in the log; {out} was not written"
        )
    ok = {t: r for t, r in records.items() if r.ok}
    rows = {t: _row(r, config) if r.ok else TokenRow.invalid(t, r.stage, r.error) for t, r in records.items()}
    for token in unknown:
        logger.error("token %s of the two-stage mapping has no trajectory in %s", token, trajectories)
        rows[token] = TokenRow.invalid(token, 2 if token in stage2 else 1, "no trajectory")
    # EC over (now, prev) pairs: both tokens of a pair get the same value (scene_aggregator.py)
    pairs = [(g.now, g.prev) for g in groups] + [p for g in groups for p in g.pairs]
    for now, prev in pairs:
        if now in ok and prev in ok:
            ec = two_frame_extended_comfort(
                ok[now].states[None], ok[prev].states[None], config.scorer, ok[now].centre_offset
            )
            for tok in (now, prev):
                ok[tok].table[EC] = float(ec[0])
                rows[tok] = _row(ok[tok], config)
    order = [*plans, *unknown]
    ordered = [rows[t] for t in order if rows[t].stage == 1] + [rows[t] for t in order if rows[t].stage == 2]
    n_bad = sum(not r.valid for r in ordered)
    if groups:
        assign_weights(
            rows, groups, {t: r.end_point[:2] for t, r in ok.items()}, {t: r.start_pose[:2] for t, r in ok.items()}
        )
        combined, s1, s2 = two_stage_scores(rows, groups)
        failed = [t for g in groups for t in (g.now, g.prev, *(x for p in g.pairs for x in p)) if t not in ok]
        summary_valid = not failed
        if failed:
            logger.warning(
                "%d grouped tokens failed or are missing (first: %s); their groups are left out of the two-stage "
                "means and the summary rows are marked valid=False",
                len(failed),
                failed[:5],
            )
    else:
        summary_valid = n_bad == 0
        s1 = stage_one_only_summary(ordered)
        s2 = stage_one_only_summary([TokenRow(r.token, 1, r.values, r.valid) for r in ordered if r.stage == 2])
        combined = {c: math.nan for c in (*METRIC_NAMES, "score")}
    path = write_csv(out, csv_text(ordered, s1, s2, combined, summary_valid))
    logger.log(
        logging.WARNING if n_bad else logging.INFO,
        "scored %d tokens, %d failed%s; EPDMS stage one %.4f; CSV %s",
        len(ordered),
        n_bad,
        " (NaN rows with valid=False; errors above)" if n_bad else "",
        s1["score"],
        path,
    )
    return ordered, path


def _cmd_score(args: argparse.Namespace) -> int:
    scorer = ScorerConfig(
        human_penalty_filter=not args.no_human_filter,
        navsim_2hz_agents=not args.native_10hz,
        ep_normalisation=args.ep_normalisation,
    )
    traffic = IDMTrafficConfig(model=args.reactive_model)
    config = EpdmsConfig(scorer=scorer, traffic=traffic, reactive=args.reactive)
    backend = args.backend or ("process" if args.workers > 1 else "serial")
    try:
        rows, _ = run_score(
            args.scenes or args.metric_cache, args.trajectories, args.out, config, args.two_stage,
            args.workers, backend, args.journal, not args.no_progress, args.ray_address,
        )  # fmt: skip
    except (FileNotFoundError, ValueError, ImportError) as exc:
        logger.error("%s", exc)
        return 2
    except InternalScoringError as exc:
        logger.error("%s", exc)
        return 3
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
    """Write token -> baseline plan for every readable scene of a folder (atomically); returns the count.

    The format follows the extension of `out`: `.npz` (one array per token) or `.json` ({token: [[x, y, heading]]}),
    the two formats `epdms score` reads; any other extension is refused before anything is done.
    """
    out = Path(out)
    check_out(out, (".npz", ".json"))
    plans: dict[str, np.ndarray] = {}
    for f in list_scene_files(scenes):
        try:
            scene = load_scene(f)
            plans[scene.token] = baseline_plan(scene, kind)
        except (ValueError, OSError) as exc:  # one unreadable scene must not stop the others
            logger.warning("skipping %s: %s", f.name, exc)
    if not plans:
        raise ValueError(f"no readable scenes in {scenes}")
    if out.suffix.lower() == ".json":
        atomic_write_json(out, {k: v.tolist() for k, v in plans.items()}, indent=None)
    else:
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
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--scenes", help="folder of *.scene.json.gz scenes")
    src.add_argument(
        "--metric-cache",
        help="NAVSIM metric-cache folder (<token>/metric_cache.pkl): real tokens, scored with each cache's own "
        "PDM-Closed reference, centreline, route lanes, drivable map and observation (needs navsim + nuplan-devkit)",
    )
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
    s.add_argument("--workers", type=int, default=1, help="score tokens in this many processes (or Ray tasks)")
    s.add_argument("--backend", choices=BACKENDS, default=None, help="default: process with --workers > 1")
    s.add_argument("--journal", help="JSON-lines file of finished tokens: a rerun scores only the missing ones")
    s.add_argument("--ray-address", default=None, help="with --backend ray: the cluster (default: start a local one)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_score)
    b = sub.add_parser("baseline", help="write a trajectory file of a reference agent (human, constant velocity)")
    b.add_argument("--scenes", required=True, help="folder of *.scene.json.gz scenes")
    b.add_argument("--agent", choices=BASELINES, default="constant_velocity")
    b.add_argument("--out", required=True, help=".npz or .json to write (token -> (8, 3))")
    b.set_defaults(func=_cmd_baseline)

    def _help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=_help)
