"""Aggregation across frames and stages: human filter, EPDMS, EC pairing, navhard two-stage scores and NAVSIM's CSV.

The two-stage aggregation copies `run_pdm_score.py::calculate_individual_mapping_scores` and
`scene_aggregator.py`: per group (orig `now`, `prev`, follow-up pairs) the stage-two rows of the `now` tokens are
averaged with Gaussian weights exp(-d^2 / (2 sigma^2)), sigma^2 = 0.1 m^2, of the distance between the stage-one
plan's raw last pose and each synthetic scene's start (likewise for `prev`); uniform weights when the sum is ~0 or NaN.
Group score = (s1(now) x S2(now) + s1(prev) x S2(prev)) / 2 for every column; EPDMS = mean over groups.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from irlvla.atomic import atomic_write_bytes
from navsim_eval.config import METRIC_NAMES

logger = logging.getLogger(__name__)

SCORE_COLUMNS: tuple[str, ...] = (*METRIC_NAMES, "score")
CSV_COLUMNS: tuple[str, ...] = (
    "token",
    "valid",
    *(f"{m}_stage_one" for m in METRIC_NAMES),
    *(f"{m}_stage_two" for m in METRIC_NAMES),
    "score",
)
SUMMARY_TOKENS = ("extended_pdm_score_stage_one", "extended_pdm_score_stage_two", "extended_pdm_score_combined")
SIGMA_SQUARED = 0.1


def apply_human_filter(table: np.ndarray, human: np.ndarray) -> np.ndarray:
    """Set every column among the first eight (NC .. HC) where the human scores exactly 0 to 1; EC is never filtered."""
    out = np.array(table, dtype=np.float64, copy=True)
    zero = np.asarray(human, dtype=np.float64)[:8] == 0.0
    out[:, :8][:, zero] = 1.0
    return out


def pseudo_closed_loop_weights(
    endpoint: Sequence[float], starts: np.ndarray, sigma_squared: float = SIGMA_SQUARED
) -> np.ndarray:
    """Normalised Gaussian weights of stage-two start points (N, 2) around a stage-one endpoint (2,)."""
    starts = np.asarray(starts, dtype=np.float64).reshape(-1, 2)
    if len(starts) == 0:
        return np.zeros(0)
    d2 = np.sum((starts - np.asarray(endpoint, dtype=np.float64)[:2]) ** 2, axis=1)
    w = np.exp(-d2 / (2.0 * sigma_squared))
    total = w.sum()
    if np.isnan(total) or np.isclose(total, 0.0):
        return np.full(len(starts), 1.0 / len(starts))
    return w / total


@dataclass
class TokenRow:
    """One token's scores (the nine metrics and `score`); `stage` is 1 (original) or 2 (synthetic)."""

    token: str
    stage: int
    values: dict[str, float]
    valid: bool = True
    weight: float = 1.0
    error: str = ""

    @classmethod
    def invalid(cls, token: str, stage: int, error: str) -> TokenRow:
        return cls(token, stage, {c: math.nan for c in SCORE_COLUMNS}, valid=False, error=error)


@dataclass
class TwoStageGroup:
    """NAVSIM's `reactive_all_mapping` entry: [orig_now, orig_prev, [[syn_now, syn_prev], ...]]."""

    now: str
    prev: str
    pairs: list[tuple[str, str]] = field(default_factory=list)


def read_mapping(path: str | os.PathLike) -> list[TwoStageGroup]:
    """Read a two-stage mapping JSON: a list of [orig, prev, [[now, prev], ...]] (or dicts with those keys)."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: the two-stage mapping is not valid JSON ({exc})") from exc
    if not isinstance(data, list):
        raise ValueError(f"{path}: the two-stage mapping must be a JSON list")
    groups = []
    for i, g in enumerate(data):
        if isinstance(g, dict):
            g = [g.get("now"), g.get("prev"), g.get("pairs", [])]
        if not (
            isinstance(g, list)
            and len(g) == 3
            and isinstance(g[0], str)
            and isinstance(g[1], str)
            and isinstance(g[2], list)
        ):
            raise ValueError(f"{path}: entry {i} must be [orig_token, prev_token, [[now, prev], ...]]")
        if not all(isinstance(p, list) and len(p) == 2 and all(isinstance(t, str) for t in p) for p in g[2]):
            raise ValueError(f"{path}: entry {i} has a malformed follow-up pair (expected [now_token, prev_token])")
        groups.append(TwoStageGroup(g[0], g[1], [(p[0], p[1]) for p in g[2]]))
    return groups


def _weighted_average(rows: Sequence[TokenRow]) -> np.ndarray:
    if not rows:
        return np.full(len(SCORE_COLUMNS), np.nan)
    w = np.array([r.weight for r in rows])
    vals = np.array([[r.values.get(c, math.nan) for c in SCORE_COLUMNS] for r in rows])
    total = w.sum()
    if total == 0:
        return np.full(len(SCORE_COLUMNS), np.nan)
    return (vals * w[:, None]).sum(axis=0) / total


def assign_weights(
    rows: Mapping[str, TokenRow],
    groups: Iterable[TwoStageGroup],
    endpoints: Mapping[str, Sequence[float]],
    starts: Mapping[str, Sequence[float]],
    sigma_squared: float = SIGMA_SQUARED,
) -> None:
    """Set each stage-two row's weight: `now` tokens against the stage-one `now` endpoint, `prev` against `prev`.

    Tokens without a start point (failed rows) get a NaN weight and the others are normalised among themselves, as
    pandas' NaN-skipping sum does in `scene_aggregator.py`; uniform weights when the stage-one endpoint is missing.
    """
    for g in groups:
        for side, first in ((0, g.now), (1, g.prev)):
            toks = [p[side] for p in g.pairs if p[side] in rows]
            known = [t for t in toks if t in starts]
            if not known:
                w = np.zeros(0)
            elif first not in endpoints:
                w = np.full(len(known), 1.0 / len(known))
            else:
                w = pseudo_closed_loop_weights(
                    endpoints[first], np.array([starts[t][:2] for t in known]), sigma_squared
                )
            weight = dict(zip(known, w.tolist()))
            for t in toks:
                rows[t].weight = float(weight.get(t, math.nan))


def two_stage_scores(
    rows: Mapping[str, TokenRow], groups: Iterable[TwoStageGroup]
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(combined, stage one, stage two) means of every score column, as `calculate_individual_mapping_scores`.

    Pass failed tokens too (NaN rows): as in the official weighted average, one NaN row makes its side NaN, so the
    group drops out of the combined and stage-two means (pandas' `mean` skips NaN) instead of being re-weighted.
    """
    combined, stage1, stage2 = [], [], []
    for g in groups:
        s1_now = _weighted_average([rows[g.now]] if g.now in rows else [])
        s1_prev = _weighted_average([rows[g.prev]] if g.prev in rows else [])
        s2_now = _weighted_average([rows[p[0]] for p in g.pairs if p[0] in rows])
        s2_prev = _weighted_average([rows[p[1]] for p in g.pairs if p[1] in rows])
        stage1 += [s1_now, s1_prev]
        stage2 += [s2_now, s2_prev]
        combined.append((s1_now * s2_now + s1_prev * s2_prev) / 2.0)

    def mean(vals: list[np.ndarray]) -> dict[str, float]:
        if not vals:
            return {c: math.nan for c in SCORE_COLUMNS}
        arr = np.array(vals)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN columns stay NaN, as pandas' mean
            m = np.nanmean(arr, axis=0)
        return dict(zip(SCORE_COLUMNS, m.tolist()))

    return mean(combined), mean(stage1), mean(stage2)


def stage_one_only_summary(rows: Iterable[TokenRow]) -> dict[str, float]:
    """Mean of each column over valid stage-one rows (the stage-one summary when every token is in one group)."""
    vals = np.array([[r.values[c] for c in SCORE_COLUMNS] for r in rows if r.stage == 1 and r.valid])
    if vals.size == 0:
        return {c: math.nan for c in SCORE_COLUMNS}
    return dict(zip(SCORE_COLUMNS, vals.mean(axis=0).tolist()))


def _fmt(v) -> str:
    if isinstance(v, bool):
        return str(v)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(float(v))


def csv_text(
    rows: Sequence[TokenRow],
    stage1: Mapping[str, float] | None = None,
    stage2: Mapping[str, float] | None = None,
    combined: Mapping[str, float] | None = None,
    summary_valid: bool = True,
) -> str:
    """NAVSIM's CSV: an unnamed index column, `token`, `valid`, nine `_stage_one`, nine `_stage_two`, `score`."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["", *CSV_COLUMNS])
    i = 0
    for r in rows:
        suffix = "_stage_one" if r.stage == 1 else "_stage_two"
        rec = {"token": r.token, "valid": r.valid, "score": r.values.get("score", math.nan)}
        for m in METRIC_NAMES:
            rec[m + suffix] = r.values.get(m, math.nan)
        w.writerow([i, *(_fmt(rec.get(c)) if c != "token" else r.token for c in CSV_COLUMNS)])
        i += 1
    summaries = [
        (SUMMARY_TOKENS[0], stage1, None, stage1),
        (SUMMARY_TOKENS[1], None, stage2, stage2),
        (SUMMARY_TOKENS[2], stage1, stage2, combined),
    ]
    for token, s1, s2, score_src in summaries:
        if score_src is None:
            continue
        rec = {"token": token, "valid": summary_valid, "score": score_src.get("score", math.nan)}
        for m in METRIC_NAMES:
            if s1 is not None:
                rec[m + "_stage_one"] = s1.get(m, math.nan)
            if s2 is not None:
                rec[m + "_stage_two"] = s2.get(m, math.nan)
        w.writerow([i, *(_fmt(rec.get(c)) if c != "token" else token for c in CSV_COLUMNS)])
        i += 1
    return buf.getvalue()


def write_csv(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def read_navsim_csv(path: str | os.PathLike) -> tuple[list[TokenRow], dict[str, dict[str, float]]]:
    """Token rows and summary rows (token -> column -> value) of a NAVSIM two-stage score CSV."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a NAVSIM two-stage CSV, missing columns {missing}")
        rows, summary = [], {}
        for rec in reader:
            tok = rec["token"]

            def val(c: str, rec: dict = rec) -> float:
                return float(rec[c]) if rec[c] not in ("", None) else math.nan

            if tok in SUMMARY_TOKENS:
                summary[tok] = {c: val(c) for c in CSV_COLUMNS[2:]}
                continue
            stage = 1 if rec[f"{METRIC_NAMES[0]}_stage_one"] not in ("", None) else 2
            suffix = "_stage_one" if stage == 1 else "_stage_two"
            values = {m: val(m + suffix) for m in METRIC_NAMES}
            values["score"] = val("score")
            rows.append(TokenRow(tok, stage, values, valid=rec["valid"] == "True"))
    return rows, summary
