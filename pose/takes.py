"""A recorded take on the reference's tick grid, without I/O: which reference ticks it covers, which of its
frames each one shows, and the side-by-side picture of dancer and take.

Tick k of the reference is at reference time k / F; on the take it is at take time k / F + offset
(`pose.align`: offset = take time - reference time). Tick k shows the take's last frame at or before that
time (the rule of `pose.ticks.sample_ticks`, applied to the take's frames placed on the reference's timeline),
and only ticks whose take time lies inside the take are scored: a take that starts after the song misses the
song's first ticks, one that stops early misses its last.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import TypeVar

import cv2
import numpy as np

from pose.ticks import as_rate, sample_ticks

T = TypeVar("T")
OFFSET_RESOLUTION = 1_000_000  # offsets are exact to the microsecond


def exact_offset(offset_s: float) -> Fraction:
    return Fraction(offset_s).limit_denominator(OFFSET_RESOLUTION)


def take_ticks(ticks: int, fps: float | Fraction, offset_s: float, duration_s: float | Fraction) -> range:
    """The reference ticks 0..ticks-1 whose take time k / F + offset_s lies in [0, duration_s)."""
    rate, offset = as_rate(fps), exact_offset(offset_s)
    duration = Fraction(duration_s).limit_denominator(OFFSET_RESOLUTION)
    first = max(0, math.ceil(-offset * rate))
    last = min(ticks, math.ceil((duration - offset) * rate))
    return range(first, max(first, last))


def take_frames(
    frames: Iterable[tuple[Fraction, T]], fps: float | Fraction, offset_s: float, covered: range
) -> Iterator[tuple[int, T]]:
    """(tick, frame) for each tick of `covered` (`take_ticks`), from the take's (timestamp s, frame) pairs in
    presentation order."""
    offset = exact_offset(offset_s)
    placed = ((timestamp - offset, frame) for timestamp, frame in frames)
    for k, frame in sample_ticks(placed, fps, covered.stop):
        if k >= covered.start:
            yield k, frame


def side_by_side(left_bgr: np.ndarray, right_bgr: np.ndarray, height: int) -> np.ndarray:
    """The two pictures scaled to `height` (an even number of pixels wide each) and put side by side."""
    scaled = []
    for image in (left_bgr, right_bgr):
        h, w = image.shape[:2]
        width = max(2, round(w * height / h) // 2 * 2)
        scaled.append(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))
    return np.concatenate(scaled, axis=1)


def side_by_side_size(left: tuple[int, int], right: tuple[int, int], height: int) -> tuple[int, int]:
    """(width, height) of `side_by_side` for pictures of sizes `left` and `right` (width, height)."""
    width = sum(max(2, round(w * height / h) // 2 * 2) for w, h in (left, right))
    return width, height
