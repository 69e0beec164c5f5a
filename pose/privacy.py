"""Faces mosaicked from the head keypoints every tick already has, held and interpolated between ticks.

Rules (pixels throughout; boxes are x1, y1, x2, y2):

- **Face box of a pose** (`face_box`): from its found head parts (nose, eyes, ears). The head's width H is the
  largest of the estimates each pair of found head parts gives (their distance over the share of a head's width
  that pair usually spans, `PAIR_SHARE`, chosen low so that H errs large), the shoulder width over
  `SHOULDERS_PER_HEAD`, and, with a single head part and no shoulders, the body's found extent over
  `BODY_PER_HEAD`, and never less than `MIN_HEAD` of the frame's shorter side. The box is a square of side
  `BOX_PER_HEAD` * H centred on the head parts' extent, plus `MARGIN` of the frame's shorter side on each side:
  the padding leaves room for the chin and forehead, a face turned so that only an ear or an eye is seen, and the
  motion between ticks; the margin, for keypoints a few pixels off on small faces. No head part found: no box.
- **A person the detector boxed but no pose covers** (single-person backends place only the main dancer): the
  top `DETECTION_HEAD_SHARE` of their person box, across its whole width (`detection_face_box`).
- **Between ticks** (`FaceTrack`): boxes are linked from tick to tick into tracks (nearest centre within one box
  side, a pose's box only to a pose's, a person box's only to a person box's, so a face that loses its keypoints
  is held where they put it). A track missed at a tick is covered there by its box from the nearest tick within
  `grace` ticks that saw it (before or after; both: the box around the two), so a face the model misses for a
  tick, or finds a tick late, stays covered. A frame between two ticks gets, per track, the box linearly
  interpolated between them when both cover it, else the box of the one that does (a face leaving is held to
  the next tick, a face arriving is covered from the previous tick on); a frame at or after the last tick gets
  the last tick's boxes, and one before the first tick the first tick's.
- **Mosaic** (`mosaic`): overlapping boxes are merged into their union first, so each pixel belongs to one
  region; each region is replaced by blocks (`BLOCKS_ACROSS` across its longer side, at least `MIN_BLOCK` px)
  whose grid starts at the region's top-left corner, each block the mean of its pixels.

Offline every frame can wait for the ticks after it (`SequenceMosaic`); live (`LiveFaces`) a frame is sent
before the next tick exists, so it gets the newest tick's boxes with their holds.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pose.boxes import greedy_pairs, iou_matrix
from pose.parts import BodyPart
from pose.types import FloatArray, FrameAnalysis

HEAD_PARTS = (BodyPart.NOSE, BodyPart.R_EYE, BodyPart.L_EYE, BodyPart.R_EAR, BodyPart.L_EAR)
_NOSE, _R_EYE, _L_EYE, _R_EAR, _L_EAR = HEAD_PARTS
# A pair of head parts' distance as a share of the head's width, on the low side of faces seen front-on and turned.
PAIR_SHARE: dict[frozenset[BodyPart], float] = {
    frozenset((_R_EAR, _L_EAR)): 0.8,
    frozenset((_R_EYE, _L_EYE)): 0.35,
    frozenset((_NOSE, _R_EYE)): 0.2,
    frozenset((_NOSE, _L_EYE)): 0.2,
    frozenset((_NOSE, _R_EAR)): 0.4,
    frozenset((_NOSE, _L_EAR)): 0.4,
    frozenset((_R_EYE, _R_EAR)): 0.3,
    frozenset((_L_EYE, _L_EAR)): 0.3,
    frozenset((_R_EYE, _L_EAR)): 0.55,
    frozenset((_L_EYE, _R_EAR)): 0.55,
}
SHOULDERS_PER_HEAD = 2.2  # shoulder width in head widths (adults measure 2.3-2.6 front-on; less when turned)
BODY_PER_HEAD = 6.0  # the found body's longer extent in head widths, when nothing else tells the head's size
MIN_HEAD = 0.01  # of the frame's shorter side
BOX_PER_HEAD = 2.0  # the face box's side in head widths
MARGIN = 0.01  # of the frame's shorter side, added on each side: keypoints are a few pixels off on small faces
DETECTION_HEAD_SHARE = 0.25  # of a person box's height, from its top
DETECTION_MATCH_IOU = 0.3  # a person box with a pose's extent at least this close already has its face from the pose
GRACE_TICKS = 1
BLOCKS_ACROSS = 8
MIN_BLOCK = 4  # px


def face_box(xy: FloatArray, found: npt.NDArray[np.bool_], min_side: float) -> FloatArray | None:
    """The face box (4,) of one pose: `xy` (18, 2) in pixels, `found` (18,); `min_side` is the frame's shorter
    side in pixels. None when no head part is found."""
    head = [p for p in HEAD_PARTS if found[p]]
    if not head:
        return None
    points = xy[head]
    lo, hi = points.min(axis=0), points.max(axis=0)
    estimates = [MIN_HEAD * min_side]
    for i, a in enumerate(head):
        for b in head[i + 1 :]:
            estimates.append(float(np.hypot(*(xy[a] - xy[b]))) / PAIR_SHARE[frozenset((a, b))])
    if found[BodyPart.R_SHOULDER] and found[BodyPart.L_SHOULDER]:
        estimates.append(float(np.hypot(*(xy[BodyPart.R_SHOULDER] - xy[BodyPart.L_SHOULDER]))) / SHOULDERS_PER_HEAD)
    elif len(head) == 1 and found.sum() > 1:
        body = xy[found]
        estimates.append(float((body.max(axis=0) - body.min(axis=0)).max()) / BODY_PER_HEAD)
    half = BOX_PER_HEAD * max(estimates) / 2 + MARGIN * min_side
    centre = (lo + hi) / 2
    return np.concatenate([centre - half, centre + half]).astype(np.float32)


def detection_face_box(box: FloatArray) -> FloatArray:
    """The face box (4,) of a person known only by their person box (4,) in pixels: its top share, full width."""
    x1, y1, x2, y2 = box
    return np.array([x1, y1, x2, y1 + DETECTION_HEAD_SHARE * (y2 - y1)], np.float32)


FROM_POSE, FROM_PERSON_BOX = 0, 1  # what placed a face box; boxes are linked across ticks only to their own kind


@dataclass(frozen=True)
class Faces:
    """One tick's face boxes (n, 4) in pixels and what placed each (n,): FROM_POSE or FROM_PERSON_BOX."""

    boxes: FloatArray
    kinds: npt.NDArray[np.int64]

    @classmethod
    def of(cls, faces: Faces | FrameAnalysis | FloatArray) -> Faces:
        """`faces`, the faces of an analysis (`faces_of`), or bare boxes (all FROM_POSE)."""
        if isinstance(faces, Faces):
            return faces
        if isinstance(faces, FrameAnalysis):
            return faces_of(faces)
        boxes = np.asarray(faces, np.float32).reshape(-1, 4)
        return cls(boxes, np.zeros(len(boxes), np.int64))


def faces_of(analysis: FrameAnalysis) -> Faces:
    """The face boxes of everyone in one tick's analysis, in its pixels: each pose with a head part found, and
    each person box that no pose's extent matches."""
    w, h = analysis.width, analysis.height
    poses = analysis.poses
    xy = np.where(np.isfinite(poses.xy), poses.xy, 0) * np.array([w, h], np.float32)
    found = poses.found & np.isfinite(poses.xy).all(axis=-1)
    boxes = [b for b in (face_box(xy[i], found[i], min(w, h)) for i in range(len(poses))) if b is not None]
    posed = len(boxes)
    people = analysis.detections.boxes * np.array([w, h, w, h], np.float32)
    if len(people):
        extents = poses.boxes()[found.any(axis=1)] * np.array([w, h, w, h], np.float32)
        matched = iou_matrix(people, extents).max(axis=1) >= DETECTION_MATCH_IOU if len(extents) else None
        boxes += [detection_face_box(b) for i, b in enumerate(people) if matched is None or not matched[i]]
    kinds = np.array([FROM_POSE] * posed + [FROM_PERSON_BOX] * (len(boxes) - posed), np.int64)
    return Faces(np.array(boxes, np.float32).reshape(-1, 4), kinds)


def face_boxes(analysis: FrameAnalysis) -> FloatArray:
    """(n, 4) the boxes of `faces_of(analysis)`."""
    return faces_of(analysis).boxes


@dataclass
class _Tick:
    time: float
    seen: dict[int, FloatArray]  # track id -> box
    covered: dict[int, FloatArray] = field(default_factory=dict)  # seen, plus held tracks (final once `grace` later)


class FaceTrack:
    """Face boxes at tick times, linked into tracks; `covers(t)` gives the boxes to mosaic at any frame time t
    (the rules are in the module docstring). Ticks are added in increasing time; the boxes of frames up to
    `final_until()` no longer change. Keeps the last `2 * grace + 3` ticks."""

    def __init__(self, grace: int = GRACE_TICKS) -> None:
        if grace < 0:
            raise ValueError(f"grace must be >= 0 ticks, got {grace}")
        self.grace = grace
        self._ticks: deque[_Tick] = deque(maxlen=2 * grace + 3)
        self._last_box: dict[int, tuple[int, FloatArray, int]] = {}  # track id -> (tick last seen, box, kind)
        self._count = 0
        self._next_id = 0
        self._finished = False

    def add(self, t: float, faces: Faces | FloatArray) -> None:
        """The faces (or bare boxes (n, 4)) found at tick time `t` (after every earlier tick's)."""
        if self._finished:
            raise RuntimeError("no ticks may be added after finish()")
        if self._ticks and t <= self._ticks[-1].time:
            raise ValueError(f"ticks must be added in increasing time: {t} after {self._ticks[-1].time}")
        alive = {k: v for k, v in self._last_box.items() if self._count - v[0] <= self.grace + 1}
        self._last_box = alive
        found = Faces.of(faces)
        boxes = found.boxes
        ids = list(alive)
        old = np.array([alive[k][1] for k in ids], np.float32).reshape(-1, 4)
        pairs = _nearest_pairs(old, boxes, np.array([alive[k][2] for k in ids], np.int64), found.kinds)
        seen = {ids[i]: boxes[j] for i, j in pairs}
        kind = {ids[i]: int(found.kinds[j]) for i, j in pairs}
        for j in sorted(set(range(len(boxes))) - {j for _, j in pairs}):
            seen[self._next_id], kind[self._next_id] = boxes[j], int(found.kinds[j])
            self._next_id += 1
        for k, box in seen.items():
            self._last_box[k] = (self._count, box, kind[k])
        self._ticks.append(_Tick(t, seen))
        self._count += 1
        self._update_covers()

    def newest_time(self) -> float | None:
        return self._ticks[-1].time if self._ticks else None

    def finish(self) -> None:
        """No more ticks: every frame's boxes are final."""
        self._finished = True

    def final_until(self) -> float:
        """Frames at times <= this have their final boxes (-inf before enough ticks; inf after `finish`)."""
        if self._finished:
            return math.inf
        if len(self._ticks) <= self.grace:
            return -math.inf
        return self._ticks[-1 - self.grace].time

    def covers(self, t: float) -> FloatArray:
        """(m, 4) boxes to mosaic on a frame at time t."""
        ticks = self._ticks
        if not ticks:
            return np.zeros((0, 4), np.float32)
        if t <= ticks[0].time:
            return _stack(ticks[0].covered.values())
        for a, b in zip(list(ticks)[:-1], list(ticks)[1:], strict=True):
            if t == b.time:
                return _stack(b.covered.values())
            if t < b.time:
                w = (t - a.time) / (b.time - a.time)
                out = [(1 - w) * box + w * b.covered[k] if k in b.covered else box for k, box in a.covered.items()]
                out += [box for k, box in b.covered.items() if k not in a.covered]
                return _stack(out)
        return _stack(ticks[-1].covered.values())

    def _update_covers(self) -> None:
        """Recompute the covered boxes of the ticks within `grace` of the newest (the others are final)."""
        ticks = list(self._ticks)
        for n in range(max(0, len(ticks) - 1 - self.grace), len(ticks)):
            covered = dict(ticks[n].seen)
            window = range(max(0, n - self.grace), min(len(ticks), n + self.grace + 1))
            tracks = {k for m in window for k in ticks[m].seen}
            for k in tracks - covered.keys():
                before = [ticks[m].seen[k] for m in window if m < n and k in ticks[m].seen]
                after = [ticks[m].seen[k] for m in window if m > n and k in ticks[m].seen]
                near = [boxes[i] for boxes, i in ((before, -1), (after, 0)) if boxes]
                covered[k] = _union(near)
            ticks[n].covered = covered


def _nearest_pairs(
    a: FloatArray, b: FloatArray, kinds_a: npt.NDArray[np.int64], kinds_b: npt.NDArray[np.int64]
) -> list[tuple[int, int]]:
    """Greedy one-to-one pairs (i, j) of the same kind, nearest centres first, each closer than the larger of the
    two boxes' sides."""
    if not len(a) or not len(b):
        return []
    ca, cb = (a[:, :2] + a[:, 2:]) / 2, (b[:, :2] + b[:, 2:]) / 2
    distance = np.hypot(*(ca[:, None] - cb[None]).transpose(2, 0, 1))
    distance[kinds_a[:, None] != kinds_b[None]] = np.inf
    side = np.maximum((a[:, 2:] - a[:, :2]).max(axis=1)[:, None], (b[:, 2:] - b[:, :2]).max(axis=1)[None])
    return greedy_pairs(distance, distance < side)


def _union(boxes: list[FloatArray]) -> FloatArray:
    stacked = np.stack(boxes)
    return np.concatenate([stacked[:, :2].min(axis=0), stacked[:, 2:].max(axis=0)]).astype(np.float32)


def _stack(boxes: Iterable[FloatArray]) -> FloatArray:
    return np.array(list(boxes), np.float32).reshape(-1, 4)


Regions = npt.NDArray[np.int64]  # (m, 5): x1, y1, x2, y2 (exclusive) and the block size, in pixels


def mosaic_regions(boxes: FloatArray, width: int, height: int) -> Regions:
    """The regions `mosaic` pixelates for `boxes` (m, 4) on a width x height frame: each box widened to whole
    pixels and clipped to the frame, empty ones dropped, overlapping ones merged into their union."""
    if not len(boxes):
        return np.zeros((0, 5), np.int64)
    lo = np.floor(boxes[:, :2]).clip(0, [width, height])
    hi = np.ceil(boxes[:, 2:]).clip(0, [width, height])
    regions = [r for r in np.concatenate([lo, hi], axis=1).astype(np.int64) if r[2] > r[0] and r[3] > r[1]]
    merged = True
    while merged:
        merged = False
        for i in range(len(regions)):
            for j in range(i + 1, len(regions)):
                a, b = regions[i], regions[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    regions[i] = np.concatenate([np.minimum(a[:2], b[:2]), np.maximum(a[2:], b[2:])])
                    del regions[j]
                    merged = True
                    break
            if merged:
                break
    out = np.zeros((len(regions), 5), np.int64)
    for i, (x1, y1, x2, y2) in enumerate(regions):
        out[i] = x1, y1, x2, y2, max(MIN_BLOCK, -(-max(x2 - x1, y2 - y1) // BLOCKS_ACROSS))
    return out


def mosaic(image: npt.NDArray[np.uint8], boxes: FloatArray) -> Regions:
    """Pixelate `boxes` (m, 4, pixels) in place on `image` (h, w, 3) uint8; returns the regions done.

    Block means are computed by hand rather than by a resize so that the grid is exactly the region's (a resize's
    last partial block would blur into the next)."""
    regions = mosaic_regions(boxes, image.shape[1], image.shape[0])
    for x1, y1, x2, y2, block in regions:
        part = image[y1:y2, x1:x2].astype(np.float64)
        rows, cols = np.arange(0, y2 - y1, block), np.arange(0, x2 - x1, block)
        sums = np.add.reduceat(np.add.reduceat(part, rows, axis=0), cols, axis=1)
        counts = np.outer(np.diff([*rows, y2 - y1]), np.diff([*cols, x2 - x1]))[..., None]
        means = np.rint(sums / counts).astype(np.uint8)
        image[y1:y2, x1:x2] = np.repeat(np.repeat(means, block, axis=0), block, axis=1)[: y2 - y1, : x2 - x1]
    return regions


class SequenceMosaic:
    """Mosaics a time-ordered sequence of frames whose faces are known at ticks, holding each frame back until
    the ticks that decide its boxes have come (`grace` + 1 ticks after it).

    Call `tick` with each tick's face boxes and `frame` with each frame, both in time order (a frame at a tick's
    time after that tick); each returns the frames now done, mosaicked in place, in order; `finish` returns the
    rest.
    """

    def __init__(self, grace: int = GRACE_TICKS) -> None:
        self.track = FaceTrack(grace)
        self.regions: list[Regions] = []  # what was pixelated on each frame released, in order
        self._held: deque[tuple[float, npt.NDArray[np.uint8]]] = deque()

    def tick(self, t: float, faces: Faces | FrameAnalysis | FloatArray) -> list[npt.NDArray[np.uint8]]:
        """The faces at tick time `t`: given, or of an analysis (`faces_of`), or bare boxes."""
        self.track.add(t, Faces.of(faces))
        return self._release()

    def frame(self, t: float, image: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.uint8]]:
        self._held.append((t, image))
        return self._release()

    def finish(self) -> list[npt.NDArray[np.uint8]]:
        self.track.finish()
        return self._release()

    def _release(self) -> list[npt.NDArray[np.uint8]]:
        done = []
        final = self.track.final_until()
        while self._held and self._held[0][0] <= final:
            t, image = self._held.popleft()
            self.regions.append(mosaic(image, self.track.covers(t)))
            done.append(image)
        return done


def mosaic_frames(
    frames: Iterable[tuple[float, npt.NDArray[np.uint8]]],
    ticks: Iterable[tuple[float, Faces | FrameAnalysis | FloatArray]],
    grace: int = GRACE_TICKS,
) -> Iterator[npt.NDArray[np.uint8]]:
    """Each frame of `frames` ((time s, (h, w, 3) uint8) in time order) mosaicked in place where `ticks` put
    faces, in order. `ticks`: (time s, the tick's analysis of a frame the same size, or its `Faces`, or bare boxes
    in the frames' pixels), in time order; read only as far as the frames need."""
    sequence = SequenceMosaic(grace)
    pending = iter(ticks)
    next_tick = next(pending, None)
    for t, image in frames:
        while next_tick is not None and sequence.track.final_until() < t:
            yield from sequence.tick(*next_tick)
            next_tick = next(pending, None)
        if next_tick is None:
            sequence.track.finish()
        yield from sequence.frame(t, image)
    yield from sequence.finish()


class LiveFaces:
    """The live returned video's mosaic: `cover` is called with every outgoing frame, the newest analysis and the
    time (any monotonic clock, s); a new analysis is added as a tick at the time it is first seen. A frame cannot
    wait for the next tick, so it gets the newest tick's boxes with their holds."""

    def __init__(self, grace: int = GRACE_TICKS) -> None:
        self.track = FaceTrack(grace)
        self._analysis: FrameAnalysis | None = None
        self.frames = 0  # frames mosaicked with at least one region
        self.regions = 0

    def cover(self, image: npt.NDArray[np.uint8], analysis: FrameAnalysis, now: float) -> Regions:
        if analysis is not self._analysis:
            self._analysis = analysis
            last = self.track.newest_time()
            self.track.add(now if last is None or now > last else math.nextafter(last, math.inf), faces_of(analysis))
        regions = mosaic(image, self.track.covers(now))
        self.frames += len(regions) > 0
        self.regions += len(regions)
        return regions
