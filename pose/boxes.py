"""Person boxes between detector runs: offline, the detector runs every few ticks and boxes are interpolated."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from pose.types import Detections, FloatArray

MIN_MATCH_IOU = 0.2
T = TypeVar("T")


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """(n, m) intersection over union of boxes a (n, 4) and b (m, 4), x1 y1 x2 y2."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=-1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def greedy_pairs(cost: npt.NDArray[np.floating[Any]], allowed: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """Greedy one-to-one pairs (i, j) among the allowed entries of an (n, m) cost matrix, lowest cost first, ties
    in row-major order (a stable sort, so every run pairs alike). Greedy, not optimal assignment: the pairing of
    detector boxes and face boxes between neighbouring ticks, where the nearest is the intended partner."""
    candidates = np.flatnonzero(allowed)
    order = candidates[np.argsort(cost.ravel()[candidates], kind="stable")]
    pairs: list[tuple[int, int]] = []
    used_a: set[int] = set()
    used_b: set[int] = set()
    for flat in order:
        i, j = (int(v) for v in np.unravel_index(flat, cost.shape))
        if i not in used_a and j not in used_b:
            pairs.append((i, j))
            used_a.add(i)
            used_b.add(j)
    return pairs


def match_boxes(a: FloatArray, b: FloatArray, min_iou: float = MIN_MATCH_IOU) -> list[tuple[int, int]]:
    """Greedy one-to-one pairs (i, j) of a and b, highest IoU first, each with IoU ≥ min_iou."""
    iou = iou_matrix(a, b)
    return greedy_pairs(-iou, iou >= min_iou)


def interpolate_detections(a: Detections, b: Detections, w: float) -> Detections:
    """Boxes at fraction w ∈ [0, 1] of the way from run a to run b, largest first.

    Matched boxes are blended linearly (box and score); a box seen by one run only is kept while that run is
    the nearer one in time, so people appear and disappear halfway between runs.
    """
    pairs = match_boxes(a.boxes, b.boxes)
    boxes = [(1 - w) * a.boxes[i] + w * b.boxes[j] for i, j in pairs]
    scores = [(1 - w) * a.score[i] + w * b.score[j] for i, j in pairs]
    alone, matched = (a, {i for i, _ in pairs}) if w < 0.5 else (b, {j for _, j in pairs})
    for i in range(len(alone)):
        if i not in matched:
            boxes.append(alone.boxes[i])
            scores.append(alone.score[i])
    if not boxes:
        return Detections.empty()
    found = Detections(np.array(boxes, np.float32), np.array(scores, np.float32))
    area = (found.boxes[:, 2] - found.boxes[:, 0]) * (found.boxes[:, 3] - found.boxes[:, 1])
    return found.take(np.argsort(-area, kind="stable"))


def detect_every(
    ticks: Iterable[tuple[int, T]], total: int, every: int, detect: Callable[[T], Detections]
) -> Iterator[tuple[int, T, Detections]]:
    """(k, frame, boxes) for each tick, running `detect` on ticks k % every == 0 and on the last tick only.

    Frames between two runs are held back (at most every - 1 of them) until the later run's boxes are known.
    """
    if every < 1:
        raise ValueError(f"every must be ≥ 1, got {every}")
    held: list[tuple[int, T]] = []
    last: tuple[int, Detections] | None = None
    for k, frame in ticks:
        if k % every and k != total - 1:
            held.append((k, frame))
            continue
        found = detect(frame)
        for k_held, frame_held in held:
            k_from, from_boxes = last if last is not None else (k, found)
            w = (k_held - k_from) / (k - k_from) if k != k_from else 1.0
            yield k_held, frame_held, interpolate_detections(from_boxes, found, w)
        held.clear()
        last = (k, found)
        yield k, frame, found
    for k_held, frame_held in held:  # the stream ended early (a damaged file): hold the last boxes
        yield k_held, frame_held, last[1] if last else Detections.empty()
