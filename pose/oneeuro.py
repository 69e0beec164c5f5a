"""The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) on keypoints, for drawing and scoring.

A low-pass filter whose cut-off rises with speed: still joints lose their jitter, moving ones keep up. Per
value: alpha(fc) = 1 / (1 + 1 / (2 pi fc dt)); the derivative is smoothed at `d_cutoff`, and the cut-off for
the value is `min_cutoff + beta * |smoothed derivative|`. Time comes in as `now` (s), so uneven ticks are
handled. A part that goes missing restarts its filter when it is found again (its old value is no guide to
where it reappears). Written here because the PyPI packages filter one scalar per object and call, and know
nothing of missing parts; this is the paper's algorithm over all 36 coordinates at once.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from pose.parts import NUM_PARTS

# Normalised coordinates (fractions of the frame): 1 Hz keeps a still joint still, beta lets a limb crossing
# the frame in a second lag by about a tick.
MIN_CUTOFF = 1.0
BETA = 5.0
D_CUTOFF = 1.0


def smoothing_factor(cutoff: float, dt: float) -> float:
    """alpha of the exponential smoother for cut-off `cutoff` Hz over a step of `dt` s."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters (18, 2) keypoints frame by frame; NaN (or confidence 0) marks a missing part."""

    def __init__(self, min_cutoff: float = MIN_CUTOFF, beta: float = BETA, d_cutoff: float = D_CUTOFF) -> None:
        if min_cutoff <= 0 or beta < 0 or d_cutoff <= 0:
            raise ValueError(f"need min_cutoff > 0, beta >= 0, d_cutoff > 0, got {min_cutoff}, {beta}, {d_cutoff}")
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._x = np.full((NUM_PARTS, 2), np.nan)
        self._dx = np.zeros((NUM_PARTS, 2))
        self._t: float | None = None

    def reset(self) -> None:
        self._x[:] = np.nan
        self._dx[:] = 0.0
        self._t = None

    def __call__(self, xy: npt.ArrayLike, now: float, conf: npt.ArrayLike | None = None) -> npt.NDArray[np.float64]:
        """The filtered (18, 2) keypoints at time `now` (s); missing parts stay NaN. A `now` not after the last
        one restarts every part (a seek, a new stream)."""
        x = np.array(xy, dtype=np.float64)
        if x.shape != (NUM_PARTS, 2):
            raise ValueError(f"xy must have shape ({NUM_PARTS}, 2), got {x.shape}")
        if conf is not None:
            x[np.asarray(conf) <= 0] = np.nan
        if self._t is None or not now > self._t:
            self.reset()
            self._t = now
            self._x = x
            return x.copy()
        dt, self._t = now - self._t, now
        fresh = np.isnan(self._x) | np.isnan(x)
        dx = np.where(fresh, 0.0, (x - self._x) / dt)
        a_d = smoothing_factor(self.d_cutoff, dt)
        self._dx = np.where(fresh, 0.0, a_d * dx + (1.0 - a_d) * self._dx)
        speed = np.linalg.norm(self._dx, axis=-1, keepdims=True)
        cutoff = self.min_cutoff + self.beta * speed
        tau = 1.0 / (2.0 * np.pi * cutoff)
        alpha = 1.0 / (1.0 + tau / dt)
        self._x = np.where(fresh, x, alpha * x + (1.0 - alpha) * self._x)
        return self._x.copy()
