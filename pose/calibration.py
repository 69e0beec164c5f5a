"""What chance earns in a dance, tick by tick, and the calibrated score built on it.

A score of 0 should mean "no better than a pose from some other moment of this same dance": a dance where the
dancer mostly stands upright makes any upright pose look good. So for each reference tick k, the poses (with
their motion) of `CANDIDATES` other moments more than `GAP_S` away are scored against tick k exactly as a user
is (`pose.similarity`, best row of the ±window, mirror tried), and the chance baseline is the `PERCENTILE`-th
percentile of those similarities. The calibrated score is 100 * (s - chance) / (1 - chance), clipped to
0..100: a match is 100 and nine in ten poses from elsewhere in the dance earn 0.

Computed once per reference from its keypoints and kept beside them as `calibration.csv` (columns tick,
chance; chance in 0..1 with 4 decimals, empty where the dancer was not seen at that tick).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pose.scoring import WINDOW_S, window_ticks
from pose.similarity import Moments, PoseArrays, similarity

GAP_S = 3.0
CANDIDATES = 120
PERCENTILE = 90.0
CALIBRATION_NAME = "calibration.csv"
CALIBRATION_COLUMNS = ("tick", "chance")


def chance_baseline(
    moments: Moments, fps: float, *, mirror: bool = True, window_s: float = WINDOW_S, gap_s: float = GAP_S
) -> npt.NDArray[np.float64]:
    """The chance similarity (K,) of every reference tick, NaN where nothing from elsewhere was comparable.

    Candidates are spread evenly over the ticks more than `gap_s` away, so the result is deterministic.
    A reference shorter than twice the gap has candidates on one side only, or none (all NaN).
    """
    k_total = len(moments)
    gap = math.floor(gap_s * fps + 1e-9)
    chance = np.full(k_total, np.nan)
    ticks = np.arange(k_total)
    for k in range(k_total):
        others = ticks[np.abs(ticks - k) > gap]
        if not len(others):
            continue
        if len(others) > CANDIDATES:
            others = others[np.linspace(0, len(others) - 1, CANDIDATES).round().astype(np.int64)]
        rows = window_ticks(k, fps, k_total, window_s)
        users = moments.take(others)
        dancer = moments.take(slice(rows.start, rows.stop))
        sim = similarity(
            _expand(users.now), _expand(users.prev), dancer.now, dancer.prev, mirror=mirror
        ).total  # (n, m)
        best = np.where(np.isnan(sim).all(axis=1), np.nan, np.nanmax(np.nan_to_num(sim, nan=-1.0), axis=1))
        if np.isfinite(best).any():
            chance[k] = float(np.nanpercentile(best, PERCENTILE))
    return chance


def _expand(poses: PoseArrays) -> PoseArrays:
    """(n, 18, ...) -> (n, 1, 18, ...), to broadcast n users against m rows."""
    return PoseArrays(poses.pts[:, None], poses.found[:, None])


def calibrated(similarity_value: float, chance: float) -> float:
    """0..100: 100 at similarity 1, 0 at or below the chance baseline (a NaN chance counts as 0)."""
    if not math.isfinite(similarity_value):
        return 0.0
    base = chance if math.isfinite(chance) else 0.0
    base = min(base, 1.0 - 1e-6)
    return 100.0 * min(1.0, max(0.0, (similarity_value - base) / (1.0 - base)))


def write_calibration(path: Path, chance: npt.ArrayLike) -> None:
    """Write `calibration.csv` (see the module docstring)."""
    values = np.asarray(chance, dtype=np.float64)
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(CALIBRATION_COLUMNS)
        for k, v in enumerate(values):
            writer.writerow([k, f"{v:.4f}" if math.isfinite(v) else ""])


def read_calibration(path: Path, ticks: int | None = None) -> npt.NDArray[np.float64]:
    """Read `calibration.csv`; its ticks must be 0..K-1 (and K = `ticks` when given); chance in [0, 1]."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(rows[0]) != CALIBRATION_COLUMNS:
        raise ValueError(f"{path}: not a calibration CSV (expected columns {', '.join(CALIBRATION_COLUMNS)})")
    body = rows[1:]
    if [r[0] if r else "" for r in body] != [str(k) for k in range(len(body))]:
        raise ValueError(f"{path}: ticks are not 0..{len(body) - 1}")
    if ticks is not None and len(body) != ticks:
        raise ValueError(f"{path}: {len(body)} ticks, the keypoints have {ticks}")
    try:
        values = np.array([float(r[1]) if len(r) > 1 and r[1] != "" else np.nan for r in body], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: a chance value is not a number ({exc})") from exc
    if (values[np.isfinite(values)] < 0).any() or (values[np.isfinite(values)] > 1).any():
        raise ValueError(f"{path}: chance values must lie in [0, 1]")
    return values
