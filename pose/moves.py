"""The reference cut into moves, and the tier a move's score earns.

A move is what a dancer would count as one step of the choreography: two beats of its music when the
reference has audio (beats tracked by librosa), otherwise `MOVE_S` of reference time. Moves cover ticks
0..K-1 without gaps; the stretch before the first counted beat is a move of its own, and a move shorter than
`MIN_MOVE_TICKS` joins the one before it.

Tiers (Perfect, Good, OK, Miss) are bands of the move's calibrated score (0..100, `pose.calibration`), set
from the move scores of the scoring benchmark (`bench.scoring`, sample footage, default backend):

* OK from 30: above what nine in ten moves earn when they are not the dance: another person at the same
  time, the dancer's own poses 0.5 s late with the window left uncentred, a pose from another moment, a
  frozen user (their 90th percentiles run 6 to 28).
* Perfect from 90: what nine in ten of the dancer's own moves earn when they come 0.5 s late (the first
  moves, before the latency is trusted, included); on time they all earn 100.
* Good from 60, halfway: the benchmark's candidates are either the dance or not, so none fall between.
"""

from __future__ import annotations

import csv
import enum
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

MOVE_S = 1.0
BEATS_PER_MOVE = 2
MIN_MOVE_TICKS = 2


class Tier(enum.Enum):
    PERFECT = "perfect"
    GOOD = "good"
    OK = "ok"
    MISS = "miss"


# (tier, lowest calibrated move score that earns it), best first; below the last is a Miss. Chosen from the
# scoring benchmark's move scores (bench.scoring): Perfect, as good as the best quarter of the models' second
# looks at the dancer; Good, as the best three quarters; OK, better than nine in ten moves danced from elsewhere
# in the dance or standing still.
TIER_THRESHOLDS: tuple[tuple[Tier, float], ...] = ((Tier.PERFECT, 75.0), (Tier.GOOD, 40.0), (Tier.OK, 15.0))


def tier_of(score: float) -> Tier:
    """The tier a move's calibrated score earns (NaN: a Miss)."""
    for tier, lowest in TIER_THRESHOLDS:
        if score >= lowest:
            return tier
    return Tier.MISS


@dataclass(frozen=True)
class Move:
    """Move `index` spans reference ticks start..end-1."""

    index: int
    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"a move needs 0 <= start < end, got {self.start}..{self.end}")


def fixed_moves(ticks: int, fps: float, move_s: float = MOVE_S) -> list[Move]:
    """Moves of `move_s` each (the last one may be shorter, or longer when a short tail joins it)."""
    if fps <= 0 or move_s <= 0:
        raise ValueError(f"fps and move_s must be > 0, got {fps}, {move_s}")
    step = max(1, round(move_s * fps))
    return _moves(list(range(step, ticks, step)), ticks)


def beat_moves(beat_times_s: npt.ArrayLike, ticks: int, fps: float, beats_per_move: int = BEATS_PER_MOVE) -> list[Move]:
    """Moves starting on every `beats_per_move`-th beat (times in s of reference time), from the first beat."""
    if fps <= 0 or beats_per_move < 1:
        raise ValueError(f"fps must be > 0 and beats_per_move >= 1, got {fps}, {beats_per_move}")
    beats = np.sort(np.asarray(beat_times_s, dtype=np.float64))
    bounds = sorted({round(t * fps) for t in beats[::beats_per_move] if math.isfinite(t)})
    return _moves([b for b in bounds if 0 < b < ticks], ticks)


def _moves(bounds: list[int], ticks: int) -> list[Move]:
    if ticks <= 0:
        return []
    edges = [0]
    for b in bounds:
        if b - edges[-1] >= MIN_MOVE_TICKS:
            edges.append(b)
    if ticks - edges[-1] >= MIN_MOVE_TICKS or len(edges) == 1:
        edges.append(ticks)
    else:
        edges[-1] = ticks
    return [Move(i, a, b) for i, (a, b) in enumerate(itertools.pairwise(edges))]


def beat_times(samples: npt.ArrayLike, sample_rate: int) -> npt.NDArray[np.float64]:
    """Beat times (s) of mono audio samples, by librosa's beat tracker (imported here: it takes seconds)."""
    import librosa

    y = np.asarray(samples, dtype=np.float32)
    if y.ndim != 1 or sample_rate <= 0:
        raise ValueError(f"need mono samples (n,) and a sample rate > 0, got {y.shape}, {sample_rate}")
    _, beats = librosa.beat.beat_track(y=y, sr=sample_rate, units="time")
    return np.asarray(beats, dtype=np.float64)


MOVES_NAME = "cut.csv"  # a reference's moves, beside its keypoints: columns move, start, end (ticks, end excluded)
MOVES_COLUMNS = ("move", "start", "end")


def write_moves(path: Path, moves: list[Move]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(MOVES_COLUMNS)
        writer.writerows([m.index, m.start, m.end] for m in moves)


def read_moves(path: Path, ticks: int) -> list[Move]:
    """Read a reference's cut; the moves must be numbered 0.. and cover ticks 0..ticks-1 without gaps."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(rows[0]) != MOVES_COLUMNS:
        raise ValueError(f"{path}: not a moves CSV (expected columns {', '.join(MOVES_COLUMNS)})")
    try:
        moves = [Move(int(r[0]), int(r[1]), int(r[2])) for r in rows[1:]]
    except (ValueError, IndexError) as exc:
        raise ValueError(f"{path}: a row is not three whole numbers ({exc})") from exc
    edges = [m.start for m in moves] + [moves[-1].end] if moves else []
    if (
        [m.index for m in moves] != list(range(len(moves)))
        or edges[:1] != [0]
        or edges[-1:] != [ticks]
        or any(m.end != n.start for m, n in itertools.pairwise(moves))
    ):
        raise ValueError(f"{path}: moves must be numbered from 0 and cover ticks 0..{ticks - 1} without gaps")
    return moves


MIN_BEATS = 4


def cut_moves(ticks: int, fps: float, samples: npt.ArrayLike | None, sample_rate: int) -> list[Move]:
    """The reference's moves: on its beats when its audio has at least `MIN_BEATS` of them, else fixed windows."""
    if samples is not None and np.size(samples):
        beats = beat_times(samples, sample_rate)
        if len(beats) >= MIN_BEATS:
            return beat_moves(beats, ticks, fps)
    return fixed_moves(ticks, fps)
