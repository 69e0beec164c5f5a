"""Typed result records shared by every pose backend, the CSV writer, drawing and scoring."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from pose.parts import MIRRORED, NUM_PARTS, PART_NAMES

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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a person with no parts is a normal case
            lo, hi = np.nanmin(self.xy, axis=1), np.nanmax(self.xy, axis=1)
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

    def mirrored(self) -> FrameAnalysis:
        """The analysis as seen in a mirror: x -> 1 - x, each person's left and right parts swapped, boxes
        flipped. Of an analysis of a horizontally flipped frame, this is the analysis in the frame's own
        coordinates."""
        order = [int(p) for p in MIRRORED]
        xy = self.poses.xy[:, order].copy()
        xy[..., 0] = 1.0 - xy[..., 0]
        poses = Poses(xy, self.poses.confidence[:, order].copy(), self.poses.score.copy())
        boxes = self.detections.boxes[:, [2, 1, 0, 3]].copy()
        boxes[:, [0, 2]] = 1.0 - boxes[:, [0, 2]]
        detections = Detections(boxes, self.detections.score.copy())
        return FrameAnalysis(poses, self.ids.copy(), detections, self.width, self.height, self.timings)


def analysis_to_dict(analysis: FrameAnalysis) -> dict[str, Any]:
    """The JSON shape of `python -m pose image --json`: pixels, main dancer first (id 0), missing parts null.

    A person's "box" is the box around their found parts; "detections" are the detector's own boxes.
    """
    scale = np.array([analysis.width, analysis.height] * 2, np.float32)
    persons = []
    for i in range(len(analysis.poses)):
        xy, conf = analysis.poses.xy[i] * scale[:2], analysis.poses.confidence[i]
        keypoints = {
            name: ([round(float(x), 1), round(float(y), 1), round(float(c), 4)] if c > 0 else None)
            for name, (x, y), c in zip(PART_NAMES, xy, conf, strict=True)
        }
        box = analysis.poses.take([i]).boxes()[0] * scale
        persons.append({
            "id": 0 if i == 0 else int(analysis.ids[i]),
            "box": [round(float(v), 1) for v in box],
            "score": round(float(analysis.poses.score[i]), 4),
            "keypoints": keypoints,
        })  # fmt: skip
    detections = [
        {"label": "person", "score": round(float(s), 4), "box": [round(float(v), 1) for v in b * scale]}
        for b, s in zip(analysis.detections.boxes, analysis.detections.score, strict=True)
    ]
    return {"width": analysis.width, "height": analysis.height, "persons": persons, "detections": detections}
