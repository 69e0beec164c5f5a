"""The running score of one user against one reference: the one code path for live sessions and offline scoring.

Feed it the user's pose at each reference tick (`Scorer.add`, ticks in playing order; gaps are fine); it gives
back a `TickVerdict` and, when a move of the reference is over, that move's `MoveVerdict`. `finish` gives the
verdicts of every move the user was scored on.

Each tick compares the user's moment (pose and motion, `pose.similarity`) with the dancer's moments from
`MAX_LAG_S` before to `MAX_LAG_S` after it: a row of the running score matrix, one similarity per lag (lag > 0:
the user is late). From these rows:

* Latency: every tick votes for the lag it matches best; the estimate is the lag whose column has the highest
  mean similarity (mmpose's best diagonal, kept as running sums), and it is confident once `LATENCY_MIN_TICKS`
  ticks were seen and at least `LATENCY_AGREEMENT` of all votes fall within one tick of it. Once confident, the
  scoring window is centred on the tick minus the latency, so a user who lags the music steadily is judged on
  their dancing.
* The tick's score: the best similarity within ±`WINDOW_S` of that centre, calibrated by the centre tick's
  chance and match (`pose.calibration`); the raw similarity (OKS only, 0..100, as before motion and
  calibration) is kept beside it.
* A move's verdict: the mean of its ticks' scores (a tick where the user was not seen scores 0), its tier, the
  limb with the lowest mean similarity, and the timing: the lag within ±`OFFSET_S` whose column matches the
  move's ticks best, in ms against the music (positive: late).
A tick that falls in a move already given its verdict (a seek back, a loop) starts that move over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pose.calibration import Calibration
from pose.limbs import NUM_LIMBS, Limb
from pose.moves import Move, Tier, tier_of
from pose.parts import NUM_PARTS, BodyPart
from pose.scoring import WINDOW_S, isotropic_points
from pose.similarity import Moments, PoseArrays, Similarity, motion_ticks, similarity

MAX_LAG_S = 1.0
OFFSET_S = 0.5
LATENCY_MIN_TICKS = 30
LATENCY_AGREEMENT = 0.5


@dataclass(frozen=True)
class Latency:
    """The user's estimated lag behind the reference: ticks and ms (positive: late), and whether it is trusted."""

    ticks: int
    ms: float
    agreement: float
    confident: bool


@dataclass(frozen=True)
class MoveVerdict:
    """score: 0..100 calibrated mean over `ticks` scored ticks; worst: the user's limb furthest off (None when
    no limb was seen); offset_ms: the lag of the best match within ±OFFSET_S (positive: late; None when nothing
    was comparable)."""

    move: Move
    score: float
    tier: Tier
    worst: Limb | None
    offset_ms: float | None
    ticks: int


@dataclass(frozen=True)
class TickVerdict:
    """score: 0..100 calibrated; raw: 0..100 OKS of the best match, before motion and calibration; worst: the
    user's limb furthest off (None when not comparable); move: index of the reference move the tick is in;
    latency: the estimate after this tick; moves_done: verdicts of the moves this tick completed; part: the
    user's own body part furthest off (lowest OKS term) in the best match (None when not comparable)."""

    tick: int
    score: float
    raw: float
    worst: Limb | None
    move: int | None
    latency: Latency
    moves_done: tuple[MoveVerdict, ...] = ()
    part: BodyPart | None = None


@dataclass
class _MoveState:
    scores: list[float] = field(default_factory=list)
    limbs: list[npt.NDArray[np.float64]] = field(default_factory=list)
    lags: list[npt.NDArray[np.float64]] = field(default_factory=list)
    done: bool = False


class Scorer:
    """reference: the dancer's moments; calibration: its `pose.calibration.Calibration` (K ticks); moves:
    from `pose.moves`, covering 0..K-1; mirror: also try the user's mirror image; latency: centre the window
    on the estimated latency once confident."""

    def __init__(
        self,
        reference: Moments,
        fps: float,
        calibration: Calibration,
        moves: list[Move],
        *,
        mirror: bool = True,
        latency: bool = True,
        window_s: float = WINDOW_S,
        max_lag_s: float = MAX_LAG_S,
    ) -> None:
        self.reference = reference
        self.fps = fps
        self.ticks = len(reference)
        if len(calibration) != self.ticks:
            raise ValueError(f"the calibration has {len(calibration)} ticks, the reference {self.ticks}")
        self.calibration = calibration
        self.moves = moves
        self.mirror = mirror
        self.use_latency = latency
        self.half = math.floor(window_s * fps + 1e-9)
        self.max_lag = max(1, math.floor(max_lag_s * fps + 1e-9))
        self.offset_lag = min(self.max_lag, math.floor(OFFSET_S * fps + 1e-9))
        self.motion = motion_ticks(fps)
        self._move_of = np.full(self.ticks, -1, dtype=np.int64)
        for m in moves:
            self._move_of[m.start : min(m.end, self.ticks)] = m.index
        self._states = {m.index: _MoveState() for m in moves}
        self._history: dict[int, PoseArrays] = {}
        self._lag_sum = np.zeros(2 * self.max_lag + 1)
        self._lag_count = np.zeros(2 * self.max_lag + 1)
        self._votes = np.zeros(2 * self.max_lag + 1)
        self._last_tick = -1

    @property
    def latency(self) -> Latency:
        """The current estimate (0 ms, not confident, before any comparable tick)."""
        seen = self._lag_count > 0
        if not seen.any():
            return Latency(0, 0.0, 0.0, False)
        mean = np.where(seen, self._lag_sum / np.maximum(self._lag_count, 1), -np.inf)
        best = int(np.argmax(mean))
        votes = self._votes.sum()
        agreement = float(self._votes[max(0, best - 1) : best + 2].sum() / votes) if votes else 0.0
        lag = best - self.max_lag
        confident = votes >= LATENCY_MIN_TICKS and agreement >= LATENCY_AGREEMENT
        return Latency(lag, 1000.0 * lag / self.fps, agreement, bool(confident))

    def add(self, tick: int, user_xy: npt.ArrayLike, user_conf: npt.ArrayLike, user_aspect: float = 1.0) -> TickVerdict:
        """Score the user's pose at reference tick `tick` (xy (18, 2) normalised, NaN where missing; conf (18,))."""
        if not 0 <= tick < self.ticks:
            raise ValueError(f"tick must be in [0, {self.ticks}), got {tick}")
        user = PoseArrays(*isotropic_points(np.asarray(user_xy), np.asarray(user_conf), user_aspect, "user"))
        if tick <= self._last_tick:
            self._history = {}
        self._last_tick = tick
        reach = self.max_lag + self.half  # every row the lags or the window can need
        lo, hi = max(0, tick - reach), min(self.ticks, tick + reach + 1)
        previous = self._previous(tick)
        user_prev = None if previous is None else previous[1]
        gap = self.motion if previous is None else tick - previous[0]
        sim = similarity(user, user_prev, *self._rows(lo, hi, gap), mirror=self.mirror)
        lags = np.full(2 * self.max_lag + 1, np.nan)
        rows = np.arange(lo, hi)
        near = np.abs(rows - tick) <= self.max_lag
        lags[tick - rows[near] + self.max_lag] = sim.total[near]
        self._history[tick] = user
        self._history = {t: p for t, p in self._history.items() if t >= tick - 2 * self.motion}
        latency = self.latency
        seen = np.isfinite(lags)
        if seen.any():
            self._lag_sum[seen] += lags[seen]
            self._lag_count[seen] += 1
            self._votes[int(np.nanargmax(lags))] += 1
        centre = tick - latency.ticks if self.use_latency and latency.confident else tick
        centre = min(max(centre, 0), self.ticks - 1)
        score, raw, limbs, parts = self._window(sim, centre - self.half - lo, centre + self.half + 1 - lo, centre)
        move = int(self._move_of[tick])
        done: tuple[MoveVerdict, ...] = ()
        if move >= 0:
            state = self._states[move]
            if state.done:
                self._states[move] = state = _MoveState()
            state.scores.append(score)
            state.limbs.append(limbs)
            state.lags.append(lags)
            done = self._complete(tick)
        worst = _worst(limbs[None])
        part = BodyPart(int(np.nanargmin(parts))) if np.isfinite(parts).any() else None
        return TickVerdict(tick, score, raw, worst, move if move >= 0 else None, self.latency, done, part)

    def finish(self) -> list[MoveVerdict]:
        """The verdicts of every move with at least one scored tick, in move order."""
        return [self._verdict(m) for m in self.moves if self._states[m.index].scores]

    # --- internals

    def _rows(self, lo: int, hi: int, gap: int) -> tuple[PoseArrays, PoseArrays]:
        """The dancer's rows lo..hi-1 and their poses `gap` ticks earlier: the user's motion is measured over the
        ticks between the user's two poses, so the dancer's is measured over as many (a session at half the
        reference's rate, or one that skipped a tick, has its earlier pose 4 or 6 ticks back, not 5)."""
        dancer = self.reference.take(slice(lo, hi))
        if gap == self.motion:
            return dancer.now, dancer.prev
        rows = np.arange(lo, hi) - gap
        earlier = self.reference.now.take(np.maximum(rows, 0))
        seen = rows >= 0
        edges = None if earlier.edges is None else (earlier.edges[0], earlier.edges[1] & seen[:, None])
        return dancer.now, PoseArrays(earlier.pts, earlier.found & seen[:, None], edges)

    def _window(
        self, sim: Similarity, lo: int, hi: int, centre: int
    ) -> tuple[float, float, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(score, raw, limbs, parts) of the best row among sim's rows lo..hi-1 (clipped), calibrated at `centre`."""
        lo, hi = max(0, lo), min(len(sim.total), hi)
        total, raws = sim.total[lo:hi], sim.raw[lo:hi]
        if not np.isfinite(total).any():
            return 0.0, 0.0, np.full(NUM_LIMBS, np.nan), np.full(NUM_PARTS, np.nan)
        best = int(np.argmax(np.nan_to_num(total, nan=-1.0)))
        raw = float(np.nanmax(raws)) if np.isfinite(raws).any() else 0.0
        score = self.calibration.score(centre, float(total[best]))
        return score, 100.0 * raw, sim.limbs[lo + best], sim.parts[lo + best]

    def _previous(self, tick: int) -> tuple[int, PoseArrays] | None:
        """(tick, pose) of the user `motion` ticks earlier, or of the nearest kept one within half that."""
        target, slack = tick - self.motion, max(1, self.motion // 2)
        near = [t for t in self._history if abs(t - target) <= slack and t < tick]
        if not near:
            return None
        best = min(near, key=lambda t: (abs(t - target), t))
        return best, self._history[best]

    def _complete(self, tick: int) -> tuple[MoveVerdict, ...]:
        done = []
        for m in self.moves:
            state = self._states[m.index]
            if m.end - 1 <= tick and state.scores and not state.done:
                state.done = True
                done.append(self._verdict(m))
        return tuple(done)

    def _verdict(self, move: Move) -> MoveVerdict:
        state = self._states[move.index]
        score = float(np.mean(state.scores))
        lags = np.stack(state.lags)[:, self.max_lag - self.offset_lag : self.max_lag + self.offset_lag + 1]
        mean = _column_means(lags)
        offset = None
        if np.isfinite(mean).any():
            offset = 1000.0 * (int(np.argmax(np.nan_to_num(mean, nan=-np.inf))) - self.offset_lag) / self.fps
        return MoveVerdict(move, score, tier_of(score), _worst(np.stack(state.limbs)), offset, len(state.scores))


def _worst(limbs: npt.NDArray[np.float64]) -> Limb | None:
    """The limb with the lowest mean similarity over rows of (n, 6), NaN where unseen."""
    mean = _column_means(limbs)
    if not np.isfinite(mean).any():
        return None
    return Limb(int(np.argmin(np.nan_to_num(mean, nan=np.inf))))


def _column_means(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Means of the finite values of each column of (n, c), NaN for a column with none."""
    seen = np.isfinite(values)
    count = seen.sum(axis=0)
    total = np.where(seen, values, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)
