"""Person boxes between detector runs: matching, interpolation and the detection schedule."""

from __future__ import annotations

import numpy as np
import pytest

from pose.boxes import detect_every, greedy_pairs, interpolate_detections, iou_matrix, match_boxes
from pose.types import Detections


def dets(*boxes: tuple[float, float, float, float], score: float = 0.9) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), score, np.float32))


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 0, 1, 1), (0, 0, 1, 1), 1.0),
        ((0, 0, 1, 1), (0.5, 0, 1.5, 1), 1 / 3),
        ((0, 0, 1, 1), (2, 2, 3, 3), 0.0),
        ((0, 0, 0, 0), (0, 0, 0, 0), 0.0),
    ],
)
def test_iou(a: tuple[float, ...], b: tuple[float, ...], expected: float) -> None:
    iou = iou_matrix(np.array([a], np.float32), np.array([b], np.float32))
    assert iou[0, 0] == pytest.approx(expected, abs=1e-6)


def test_match_is_one_to_one_best_first() -> None:
    a = np.array([[0, 0, 0.2, 0.5], [0.6, 0, 0.8, 0.5]], np.float32)
    b = np.array([[0.62, 0, 0.82, 0.5], [0.01, 0, 0.21, 0.5], [0.3, 0.6, 0.4, 0.9]], np.float32)
    assert sorted(match_boxes(a, b)) == [(0, 1), (1, 0)]


def test_greedy_pairs_take_the_cheapest_allowed_first_and_every_allowed_pair_after_a_refused_one() -> None:
    cost = np.array([[1.0, 0.5, 9.0], [0.4, 2.0, 9.0], [9.0, 9.0, 3.0]])
    allowed = np.array([[True, True, False], [True, True, False], [False, False, True]])
    # (1, 0) is cheapest, then (0, 1); (2, 2) is allowed although dearer than refused entries.
    assert greedy_pairs(cost, allowed) == [(1, 0), (0, 1), (2, 2)]


def test_greedy_pairs_break_ties_in_row_major_order() -> None:
    assert greedy_pairs(np.zeros((2, 2)), np.ones((2, 2), dtype=bool)) == [(0, 0), (1, 1)]
    assert greedy_pairs(np.zeros((0, 3)), np.ones((0, 3), dtype=bool)) == []


def test_interpolation_blends_matched_boxes_halfway() -> None:
    a, b = dets((0.1, 0.1, 0.3, 0.9)), dets((0.2, 0.1, 0.4, 0.9), score=0.7)
    mid = interpolate_detections(a, b, 0.5)
    assert np.allclose(mid.boxes, [[0.15, 0.1, 0.35, 0.9]]) and mid.score[0] == pytest.approx(0.8)


@pytest.mark.parametrize(("w", "expected"), [(0.2, 2), (0.8, 1)])
def test_unmatched_boxes_live_until_halfway(w: float, expected: int) -> None:
    a = dets((0.1, 0.1, 0.3, 0.9), (0.6, 0.2, 0.7, 0.5))
    b = dets((0.1, 0.1, 0.3, 0.9))
    assert len(interpolate_detections(a, b, w)) == expected


def test_interpolated_boxes_come_largest_first() -> None:
    a = dets((0.0, 0.0, 0.1, 0.1), (0.5, 0.0, 0.9, 0.9))
    out = interpolate_detections(a, a, 0.3)
    assert np.allclose(out.boxes[0], [0.5, 0.0, 0.9, 0.9])


@pytest.mark.parametrize(("total", "every"), [(12, 5), (10, 5), (3, 5), (7, 1), (1, 4)])
def test_detector_runs_on_schedule_and_every_tick_gets_boxes(total: int, every: int) -> None:
    ran: list[int] = []

    def detect(k: int) -> Detections:
        ran.append(k)
        x = k / 100
        return dets((x, 0.0, x + 0.2, 0.5))

    out = list(detect_every(((k, k) for k in range(total)), total, every, detect))
    assert [k for k, _, _ in out] == list(range(total))
    assert ran == sorted({*range(0, total, every), total - 1})
    for k, frame, boxes in out:
        assert frame == k
        assert boxes.boxes[0, 0] == pytest.approx(k / 100, abs=1e-6)  # linear motion is interpolated exactly


def test_detector_schedule_rejects_zero_interval() -> None:
    with pytest.raises(ValueError, match="every"):
        list(detect_every(iter([(0, 0)]), 1, 0, lambda _: Detections.empty()))
