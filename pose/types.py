"""Typed result records shared by every pose backend, the CSV writer, drawing and scoring."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pose.parts import NUM_PARTS

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Poses:
    """People found in one frame.

    xy: (n, 18, 2) float32, x and y normalised to [0, 1] of the frame width/height, NaN where a part is missing.
    confidence: (n, 18) float32 in [0, 1], 0 where a part is missing.
    score: (n,) float32, the person's overall score (higher is more certain).
    """

    xy: FloatArray
    confidence: FloatArray
    score: FloatArray

    def __post_init__(self) -> None:
        n = len(self.score)
        if self.xy.shape != (n, NUM_PARTS, 2):
            raise ValueError(f"xy must have shape ({n}, {NUM_PARTS}, 2), got {self.xy.shape}")
        if self.confidence.shape != (n, NUM_PARTS):
            raise ValueError(f"confidence must have shape ({n}, {NUM_PARTS}), got {self.confidence.shape}")

    @classmethod
    def empty(cls) -> Poses:
        return cls(
            xy=np.zeros((0, NUM_PARTS, 2), np.float32),
            confidence=np.zeros((0, NUM_PARTS), np.float32),
            score=np.zeros((0,), np.float32),
        )

    def __len__(self) -> int:
        return len(self.score)

    @property
    def found(self) -> npt.NDArray[np.bool_]:
        """(n, 18) bool, True where a part was found."""
        return self.confidence > 0

    def take(self, order: IntArray | list[int]) -> Poses:
        """A new Poses with the people picked (and ordered) by index."""
        idx = np.asarray(order, dtype=np.int64)
        return Poses(self.xy[idx], self.confidence[idx], self.score[idx])

    def boxes(self) -> FloatArray:
        """(n, 4) float32 normalised x1, y1, x2, y2 around each person's found parts (NaN if none)."""
        with np.errstate(invalid="ignore"), _quiet_nan():
            lo = np.nanmin(self.xy, axis=1) if len(self) else np.zeros((0, 2), np.float32)
            hi = np.nanmax(self.xy, axis=1) if len(self) else np.zeros((0, 2), np.float32)
        return np.concatenate([lo, hi], axis=1).astype(np.float32)


@dataclass(frozen=True)
class Detections:
    """Person boxes from the detector.

    boxes: (n, 4) float32 x1, y1, x2, y2 normalised to [0, 1].
    score: (n,) float32 in [0, 1].
    """

    boxes: FloatArray
    score: FloatArray

    def __post_init__(self) -> None:
        if self.boxes.shape != (len(self.score), 4):
            raise ValueError(f"boxes must have shape (_, 4) matching score, got {self.boxes.shape}")

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    def __len__(self) -> int:
        return len(self.score)

    def take(self, order: IntArray | list[int]) -> Detections:
        idx = np.asarray(order, dtype=np.int64)
        return Detections(self.boxes[idx], self.score[idx])


@dataclass(frozen=True)
class FrameAnalysis:
    """Everything one tick produced: people (main dancer first), their ids, and the person boxes.

    ids: (n,) int64 stable person ids across ticks where tracking could keep them; people[0] is the main dancer.
    width, height: the analysed frame's size in pixels.
    """

    poses: Poses
    ids: IntArray
    detections: Detections
    width: int
    height: int
    timings: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def main(self) -> Poses:
        """The main dancer alone (0 or 1 people)."""
        return self.poses.take([0] if len(self.poses) else [])


class _quiet_nan:
    """Silence numpy's 'All-NaN slice' warning: a person with no parts is a normal case here."""

    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)
