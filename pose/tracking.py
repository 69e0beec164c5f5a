"""Who is the main dancer, and which person is which from one tick to the next."""

from __future__ import annotations

import numpy as np

from pose.types import Detections, IntArray, Poses

MIN_SHARE_IN_BOX = 0.5  # a skeleton matches a box when at least half its found parts lie inside it
MAX_TRACK_DISTANCE = 0.5  # in units of the person's own size (box diagonal)


def main_person_index(poses: Poses, people: Detections) -> int | None:
    """The skeleton that best matches the largest confident person box (boxes come largest first).

    Boxes are tried in size order, so a large box with nobody's skeleton in it (a poster, a mirror) gives way to
    the next. With no matching box the largest skeleton wins; with no skeleton there is no main person.
    """
    if not len(poses):
        return None
    for box in people.boxes:
        share = _share_inside(poses, box)
        best = int(np.argmax(share))
        if share[best] >= MIN_SHARE_IN_BOX:
            return best
    sizes = _diagonals(poses)
    return int(np.nanargmax(sizes)) if np.isfinite(sizes).any() else 0


def _share_inside(poses: Poses, box: np.ndarray) -> np.ndarray:
    """(n,) share of each skeleton's found parts inside `box`, with score as a tie-break within 1e-3."""
    x, y = poses.xy[..., 0], poses.xy[..., 1]
    with np.errstate(invalid="ignore"):
        inside = (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3]) & poses.found
    counts = np.maximum(poses.found.sum(axis=1), 1)
    return inside.sum(axis=1) / counts + 1e-3 * poses.score / (1 + poses.score.max())


def _diagonals(poses: Poses) -> np.ndarray:
    boxes = poses.boxes()
    return np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


class PersonTracker:
    """Keeps ids ≥ 1 on people across ticks by greedy nearest-skeleton matching (cheap, no motion model)."""

    def __init__(self) -> None:
        self._ids: IntArray = np.zeros((0,), np.int64)
        self._xy = np.zeros((0, 18, 2), np.float32)
        self._next_id = 1

    def update(self, poses: Poses) -> IntArray:
        """(n,) ids for `poses`, matched to the previous call's people."""
        ids = np.zeros(len(poses), np.int64)
        cost = self._cost(poses)
        taken_prev: set[int] = set()
        for flat in np.argsort(cost, axis=None):
            cur, prev = np.unravel_index(flat, cost.shape)
            if cost[cur, prev] > MAX_TRACK_DISTANCE:
                break
            if ids[cur] == 0 and prev not in taken_prev:
                ids[cur] = self._ids[prev]
                taken_prev.add(int(prev))
        for i in np.flatnonzero(ids == 0):
            ids[i], self._next_id = self._next_id, self._next_id + 1
        self._ids, self._xy = ids, poses.xy.copy()
        return ids

    def _cost(self, poses: Poses) -> np.ndarray:
        """(n_cur, n_prev) mean part distance over parts both found, in units of the current person's size."""
        if not len(poses) or not len(self._ids):
            return np.full((len(poses), len(self._ids)), np.inf)
        d = np.linalg.norm(poses.xy[:, None] - self._xy[None], axis=-1)  # (n, m, 18), NaN where missing
        with np.errstate(invalid="ignore"):
            common = np.isfinite(d).sum(axis=-1)
            mean = np.where(common > 0, np.nansum(d, axis=-1) / np.maximum(common, 1), np.inf)
        size = np.maximum(_diagonals(poses), 1e-3)
        return np.nan_to_num(mean / size[:, None], nan=np.inf)
