"""One user's scoring as every caller runs it, live or offline: `pose.scorer.Scorer` against the dancer's
moments, and the user's keypoints through a One-Euro filter (`pose.oneeuro`, at the tick's reference time) for
drawing.

The filter's output is drawn, not scored: a session analyses 5 to 10 ticks a second, and at that rate the
filter blends each pose with ones 0.1 to 0.5 s older, which is motion, not jitter. Measured through the live
replay benchmark (`bench.replay`): the dancer's own keypoints at a session's ticks score 100 unsmoothed and 67
smoothed, so smoothing would cost a perfect copy a third of its score. On the returned video the smoothed
skeleton is what a user wants to see (jitter halved, `bench.scoring`). `smooth=True` scores the smoothed
keypoints instead (kept for that measurement).

The dancer's keypoints are not smoothed either: they were extracted offline from every frame of the reference
and are what the calibration was computed on. A tick where nobody was found is scored as an all-missing pose
(it scores 0, and counts against its move). `score_keypoints` is the offline form: the same `Judge` fed a
whole keypoint sequence.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import numpy.typing as npt

from pose.calibration import Calibration
from pose.moves import Move
from pose.oneeuro import OneEuroFilter
from pose.parts import NUM_PARTS
from pose.scorer import Scorer, TickVerdict
from pose.similarity import Moments
from pose.ticks import tick_time

F64 = npt.NDArray[np.float64]


class Judge:
    """dancer_xy (K, 18, 2) normalised, NaN where missing; dancer_conf (K, 18); dancer_aspect: the reference
    video's width / height; fps: the reference's ticks per second; calibration and moves: the reference's
    own (`pose.calibration`, `pose.moves`). Calls must come one at a time, in playing order."""

    def __init__(
        self,
        dancer_xy: npt.ArrayLike,
        dancer_conf: npt.ArrayLike,
        dancer_aspect: float,
        fps: float,
        calibration: Calibration,
        moves: list[Move],
        *,
        mirror: bool = True,
        score_smoothed: bool = False,
    ) -> None:
        """score_smoothed: score the One-Euro filtered keypoints, not the model's (see the module docstring)."""
        moments = Moments.from_keypoints(dancer_xy, dancer_conf, dancer_aspect, fps)
        self.scorer = Scorer(moments, fps, calibration, moves, mirror=mirror)
        self.filter = OneEuroFilter()
        self.score_smoothed = score_smoothed

    def add(
        self, tick: int, time_s: float, xy: npt.ArrayLike | None, conf: npt.ArrayLike | None, aspect: float
    ) -> tuple[F64, TickVerdict]:
        """The user's smoothed (18, 2) keypoints for drawing (NaN where missing) at reference tick `tick` (at
        `time_s` s of the reference), and the tick's verdict. xy/conf None: nobody was found."""
        if xy is None or conf is None:
            xy, conf = np.full((NUM_PARTS, 2), np.nan), np.zeros(NUM_PARTS)
        confidence = np.asarray(conf, dtype=np.float64)
        smooth = self.filter(xy, time_s, confidence)
        scored = (
            smooth if self.score_smoothed else np.where(confidence[:, None] > 0, np.asarray(xy, np.float64), np.nan)
        )
        found = np.where(np.isfinite(scored).all(axis=-1), confidence, 0.0)
        return smooth, self.scorer.add(tick, scored, found, aspect)


def score_keypoints(
    judge: Judge, ticks: npt.ArrayLike, fps: float, xy: npt.ArrayLike, conf: npt.ArrayLike, aspect: float
) -> list[TickVerdict]:
    """Offline: the verdicts of a user's keypoints (xy (n, 18, 2), conf (n, 18)) at reference ticks `ticks`
    (playing order; tick k at k / fps s), through `judge` exactly as a live session scores them."""
    tick_list = [int(t) for t in np.asarray(ticks)]
    xy_arr, conf_arr = np.asarray(xy, dtype=np.float64), np.asarray(conf, dtype=np.float64)
    if xy_arr.shape != (len(tick_list), NUM_PARTS, 2) or conf_arr.shape != (len(tick_list), NUM_PARTS):
        raise ValueError(f"need xy (n, 18, 2) and conf (n, 18) for n={len(tick_list)} ticks")
    rate = Fraction(fps).limit_denominator(100_000)
    return [judge.add(t, float(tick_time(t, rate)), xy_arr[i], conf_arr[i], aspect)[1] for i, t in enumerate(tick_list)]
