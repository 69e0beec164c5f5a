"""What chance earns in a dance and what a match earns, tick by tick, and the calibrated score built on them.

A score of 0 means "no better than a pose from some other moment of this same dance" (a dance where the dancer
mostly stands upright makes any upright pose look good); 100 means "as good as the models' second look at the
dancer" (no user can be matched more closely than the models match the dancer with themselves: on small or
blurred figures the keypoints move by a few pixels from one look to the next, and a user scored against
identity would lose points to that noise however well they danced). For each reference tick k:

* chance: the poses (with their motion) of `CANDIDATES` other moments more than `GAP_S` away are scored
  against tick k exactly as a user is (`pose.similarity`, best row of the ±window, mirror tried); chance is
  their `CHANCE_PERCENTILE`-th percentile: nine in ten poses picked from elsewhere in the dance earn 0.
* match: the reference video analysed a second time, every frame flipped left to right and the keypoints
  flipped back (`pose.pipeline.extract_video(mirrored=True)`, stored as `second_look.csv`), its moment k
  scored against tick k the same way; match is the median of those similarities over ±`MATCH_SMOOTH_S`
  (one look's noise is not the dancer's), at least chance + `MIN_SPAN`.

The calibrated score is 100 * (s - chance) / (match - chance), clipped to 0..100. Without a second look
(`match` NaN) the ceiling is 1, identity.

Computed once per reference from its keypoints and kept beside them as `calibration.csv` (columns tick,
chance, match; values in 0..1 with 4 decimals, empty where the dancer was not seen at that tick).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pose.scoring import WINDOW_S, window_ticks
from pose.similarity import Moments, PoseArrays, similarity

GAP_S = 3.0
CANDIDATES = 120
CHANCE_PERCENTILE: float | None = 90.0  # None: the mean (bench.scoring compares them)
MATCH_SMOOTH_S = 1.0
MIN_SPAN = 0.05  # a tick whose second look is barely better than chance cannot tell a match from chance
CALIBRATION_NAME = "calibration.csv"
SECOND_LOOK_NAME = "second_look.csv"
CALIBRATION_COLUMNS = ("tick", "chance", "match")

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Calibration:
    """chance and match (K,) in 0..1 (see the module docstring), NaN where unknown."""

    chance: F64
    match: F64

    def __post_init__(self) -> None:
        if self.chance.shape != self.match.shape or self.chance.ndim != 1:
            raise ValueError(f"chance and match must have one shape (K,), got {self.chance.shape}, {self.match.shape}")

    @classmethod
    def identity(cls, ticks: int) -> Calibration:
        """No calibration: 0 at similarity 0, 100 at similarity 1 (a reference whose calibration is not ready)."""
        return cls(np.zeros(ticks), np.ones(ticks))

    def __len__(self) -> int:
        return len(self.chance)

    def score(self, tick: int, similarity_value: float) -> float:
        """The calibrated 0..100 score of a similarity at reference tick `tick`."""
        return calibrated(similarity_value, float(self.chance[tick]), float(self.match[tick]))


def chance_baseline(
    moments: Moments,
    fps: float,
    *,
    mirror: bool = True,
    window_s: float = WINDOW_S,
    gap_s: float = GAP_S,
    percentile: float | None = CHANCE_PERCENTILE,
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
            chance[k] = float(np.nanmean(best) if percentile is None else np.nanpercentile(best, percentile))
    return chance


def match_ceiling(
    moments: Moments, second: Moments, fps: float, *, mirror: bool = True, window_s: float = WINDOW_S
) -> F64:
    """The match similarity (K,) of every reference tick from the second look's moments `second` (same ticks),
    before the floor over chance (`calibration_of` applies it); NaN where neither look saw the dancer nearby."""
    k_total = len(moments)
    if len(second) != k_total:
        raise ValueError(f"the second look has {len(second)} ticks, the reference {k_total}")
    look = np.full(k_total, np.nan)
    for k in range(k_total):
        rows = window_ticks(k, fps, k_total, window_s)
        dancer = moments.take(slice(rows.start, rows.stop))
        user = second.take(k)
        sim = similarity(user.now, user.prev, dancer.now, dancer.prev, mirror=mirror).total
        if np.isfinite(sim).any():
            look[k] = float(np.nanmax(sim))
    half = math.floor(MATCH_SMOOTH_S * fps + 1e-9)
    smooth = np.full(k_total, np.nan)
    for k in range(k_total):
        near = look[max(0, k - half) : k + half + 1]
        if np.isfinite(near).any():
            smooth[k] = float(np.nanmedian(near))
    return smooth


def calibration_of(
    moments: Moments, second: Moments | None, fps: float, percentile: float | None = CHANCE_PERCENTILE
) -> Calibration:
    """The reference's calibration from its moments and, when there is one, its second look's."""
    chance = chance_baseline(moments, fps, percentile=percentile)
    match = np.full(len(moments), np.nan) if second is None else match_ceiling(moments, second, fps)
    floor = np.nan_to_num(chance, nan=0.0) + MIN_SPAN
    return Calibration(chance, np.where(np.isfinite(match), np.minimum(np.maximum(match, floor), 1.0), np.nan))


def _expand(poses: PoseArrays) -> PoseArrays:
    """(n, 18, ...) -> (n, 1, 18, ...), to broadcast n users against m rows."""
    return PoseArrays(poses.pts[:, None], poses.found[:, None])


def calibrated(similarity_value: float, chance: float, match: float = 1.0) -> float:
    """0..100: 100 at or above `match`, 0 at or below `chance` (a NaN chance counts as 0, a NaN match as 1)."""
    if not math.isfinite(similarity_value):
        return 0.0
    base = chance if math.isfinite(chance) else 0.0
    top = match if math.isfinite(match) else 1.0
    base = min(base, top - 1e-6)
    return 100.0 * min(1.0, max(0.0, (similarity_value - base) / (top - base)))


def _cell(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else ""


def write_calibration(path: Path, calibration: Calibration) -> None:
    """Write `calibration.csv` (see the module docstring)."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(CALIBRATION_COLUMNS)
        for k, (c, m) in enumerate(zip(calibration.chance, calibration.match, strict=True)):
            writer.writerow([k, _cell(float(c)), _cell(float(m))])


def read_calibration(path: Path, ticks: int | None = None) -> Calibration:
    """Read `calibration.csv`; its ticks must be 0..K-1 (and K = `ticks` when given); values in [0, 1]. A file
    of an older layout is refused (ValueError), so that it is computed again."""
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
        values = np.array(
            [[float(c) if c != "" else np.nan for c in [*r, "", ""][1:3]] for r in body], dtype=np.float64
        ).reshape(len(body), 2)
    except ValueError as exc:
        raise ValueError(f"{path}: a value is not a number ({exc})") from exc
    finite = values[np.isfinite(values)]
    if (finite < 0).any() or (finite > 1).any():
        raise ValueError(f"{path}: chance and match values must lie in [0, 1]")
    return Calibration(values[:, 0].copy(), values[:, 1].copy())
