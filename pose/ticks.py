"""The tick timeline: tick k of a video sampled at F ticks per second is at t_k = k / F seconds.

Times are compared as exact fractions so that a frame stamped exactly on a tick is never lost to rounding:
that rounding, and picking frames by wall-clock time, is what made the prototype's row counts drift.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import TypeVar

T = TypeVar("T")

# The person detector runs every half second of reference time, offline and live; its boxes are held (live) or
# interpolated (offline) in between.
DETECT_INTERVAL_S = 0.5


def detector_every(fps: float, detect_interval_s: float = DETECT_INTERVAL_S) -> int:
    """The detector's cadence in ticks: it runs on ticks k % every == 0 (and, offline, on the last tick)."""
    return max(1, round(detect_interval_s * fps))


def as_rate(fps: float | Fraction) -> Fraction:
    """F as an exact fraction (29.97 → 2997/100); rejects F ≤ 0 and non-finite values."""
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    return Fraction(fps).limit_denominator(100_000)


def tick_count(duration_s: float | Fraction, fps: float | Fraction) -> int:
    """K = ceil(D · F): the number of ticks k = 0..K-1 whose time lies inside a video of duration D."""
    if duration_s < 0:
        raise ValueError(f"duration must be ≥ 0, got {duration_s}")
    return math.ceil(Fraction(duration_s).limit_denominator(1_000_000) * as_rate(fps))


def tick_time(k: int, fps: float | Fraction) -> Fraction:
    return k / as_rate(fps)


def sample_ticks(
    frames: Iterable[tuple[Fraction, T]], fps: float | Fraction, total: int, start: int = 0
) -> Iterator[tuple[int, T]]:
    """Yield (k, frame) for k = start..total-1, where frame is the last one whose timestamp ≤ t_k.

    `frames` are (timestamp in seconds from the stream's start, frame) in presentation order. A tick that falls
    before the first frame gets the first frame; ticks after the last frame get the last frame (it stays on
    screen until the end). With start > 0, `frames` may begin anywhere at or before t_start (a decode from a
    keyframe); they must begin there, or the first frame is taken for the ticks before it.
    """
    rate = as_rate(fps)
    k = start
    shown: T | None = None
    have_frame = False
    for timestamp, frame in frames:
        while k < total and have_frame and k / rate < timestamp:
            yield k, shown  # type: ignore[misc]
            k += 1
        shown, have_frame = frame, True
        if k >= total:
            return
    while have_frame and k < total:
        yield k, shown  # type: ignore[misc]
        k += 1
