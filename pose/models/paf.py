"""Multi-person decoding of tf-pose-estimation (mobilenet_thin) heat maps and part affinity fields, as tf-pose does it.

Reproduces tf-pose-estimation 0.11.0's post-processing (the map preparation its estimator runs in TensorFlow and
its C++/SWIG ``pafprocess``) in numpy, so that the skeletons are tf-pose's. Input: the network output, (h, w, 57)
float32 at 1/8 of the input image; channels 0..17 are the part heat maps in ``BodyPart`` order, 18 is the
background (ignored), 19..56 the 38 PAF channels (``PAF_CHANNELS``). Names in capitals are pafprocess.h's.

Steps, each as tf-pose does it:

1. Upsampling: every cell becomes an ``upsample`` x ``upsample`` block of equal pixels (TF's ``resize_area`` at
   an integer factor), heat maps and PAFs alike.
2. Smoothing: the upsampled heat maps are convolved with tf-pose's ``Smoother(25, 3.0)`` kernel, zero outside
   the map (``depthwise_conv2d``, SAME padding). That kernel is not a Gaussian of sigma 3: it is the standard
   normal's mass in ``smooth_size`` equal bins spanning +-(``smooth_nsig`` + half a bin), square-rooted and
   normalised (``smoothing_kernel``), which is close to a Gaussian of sigma 5 pixels cut at +-12.
3. Peaks: pixels equal to the 3x3 maximum around them (``max_pool``, SAME) whose smoothed heat exceeds
   ``peak_threshold`` (THRESH_HEAT, compared with >). Block copy and smoothing are linear and separable, so the
   whole upsampled maps are never built: the smoothed map is evaluated at one pixel per cell, its local maxima
   (and those of its negative Laplacian, for faint peaks on a strong one's slope) seed windows of
   +-(1.5 upsample + 2) pixels, and the 3x3 test runs at full resolution only inside those windows. The tests
   check that this finds the peaks the whole-map computation finds: all of them on rendered people; on random
   blobs and noise, every peak that dips at all towards any higher one.
4. Part score: the unsmoothed heat of the cell under the peak (HEAT on the block-copied map).
5. Connections: every pair of peaks of a limb's two parts is scored on ``paf_samples`` (STEP_PAF) points
   A + i (B - A) / paf_samples, i = 0 .. paf_samples - 1 (so from A to one step short of B), each rounded half
   up to an upsampled pixel and read from the block-copied PAF, i.e. from the cell under it. The score is
   mean(PAF . unit(AB)) + min(0, limb_length_prior * H_up / |AB| - 1), the prior penalising limbs longer than
   half the upsampled map height. A pair is a candidate when more than ``paf_min_hits`` samples exceed
   ``paf_score_threshold`` (THRESH_VECTOR_CNT1, THRESH_VECTOR_SCORE) and its score is positive.
6. Greedy matching per limb: highest score first, each peak used at most once per limb.
7. Assembly, walking the connections in ``PAF_LIMBS`` order: a connection adds its B end to the one person
   holding its A end, merges the two people holding one end each when they share no part type, or starts a new
   person (the two ear-shoulder limbs never start one). A connection whose only holder has its B end already
   (the ear-shoulder limbs, which join people through an ear) adds nothing.
8. A person's score is (sum of part scores + sum of connection scores) / number of parts; people with fewer than
   ``min_parts`` (THRESH_PART_CNT) parts or a score below ``min_person_score`` (THRESH_HUMAN_SCORE) are dropped.

Deviations from tf-pose, each where it is plainly wrong:

- Flat tops: of equal neighbouring maxima only the first in raster order is a peak. tf-pose keeps them all and
  the duplicates split one person into fragments (exact ties only: synthetic or saturated maps).
- A part is never overwritten: pafprocess's one-holder branch replaces a B part the person already has (an ear
  found through an eye, when a shoulder-ear connection points at another ear) and counts the part a second
  time, so its part count and score stop describing its parts.
- The part-overlap test before a merge counts peak 0 as a part: pafprocess tests ``> 0``, so a person holding
  the first peak of a part merges with one holding another peak of the same part, and the merge adds the two
  peak ids into a third, wrong one.
- A connection between two people who share a part type is dropped: pafprocess gives its B peak to the first as
  well, so one peak belongs to two people (or, when the first holds it already, counts it twice).
- Coordinates are pixel centres: a peak at upsampled pixel (X, Y) is reported at ((X + 0.5) / W_up,
  (Y + 0.5) / H_up), where the block-copied pixel's area is centred; tf-pose reports X / W_up, half a pixel up
  and left. The centre of cell (i, j) of the 1/8 map is then ((j + 0.5) / w, (i + 0.5) / h) at any ``upsample``.
- Reported part confidences are clipped to (0, 1] (``Poses`` says a part is found where its confidence is > 0);
  person scores use the unclipped part scores, as tf-pose.
- ``max_peaks_per_part`` caps the peaks per part (tf-pose has no cap), bounding the pairing cost on degenerate
  maps; a real frame has far fewer.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

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

    upsample: factor the 1/8 maps are block-copied up by before peak finding (tf-pose's resize_out_ratio 4).
    smooth_size: taps of the smoothing kernel, odd (tf-pose's Smoother filter_size 25); 0 = none (upsample 1 only).
    smooth_nsig: the kernel spans +-smooth_nsig standard deviations of the normal it bins (Smoother's sigma 3.0).
    peak_threshold: a peak's smoothed heat must exceed this (THRESH_HEAT).
    paf_score_threshold: PAF . unit(AB) a sample must exceed to count as a hit (THRESH_VECTOR_SCORE).
    paf_samples: PAF samples per candidate limb, from A to one step short of B (STEP_PAF).
    paf_min_hits: a candidate limb needs more than this many hits (THRESH_VECTOR_CNT1).
    min_parts: fewest parts a person may have (THRESH_PART_CNT).
    min_person_score: lowest person score kept, the per-part mean (THRESH_HUMAN_SCORE).
    limb_length_prior: limbs longer than this fraction of the map height lose connection score; None = off.
    max_peaks_per_part: strongest peaks kept per part, a cap that bounds the cost on degenerate (flat) maps.
    """

    upsample: int = 4
    smooth_size: int = 25
    smooth_nsig: float = 3.0
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
        if self.smooth_size < 0 or (self.smooth_size and self.smooth_size % 2 == 0):
            raise ValueError(f"smooth_size must be 0 or odd, got {self.smooth_size}")
        if self.smooth_size == 0 and self.upsample > 1:
            # Unsmoothed, a block-copied map is flat within each cell: every pixel of a peak cell would be a peak.
            raise ValueError(f"smooth_size 0 (no smoothing) needs upsample 1, got upsample {self.upsample}")
        if not self.smooth_nsig > 0:
            raise ValueError(f"smooth_nsig must be > 0, got {self.smooth_nsig}")
        if self.paf_samples < 1:
            raise ValueError(f"paf_samples must be >= 1, got {self.paf_samples}")
        if self.max_peaks_per_part < 1:
            raise ValueError(f"max_peaks_per_part must be >= 1, got {self.max_peaks_per_part}")


@dataclass(frozen=True)
class Peaks:
    """Heat-map peaks of all parts, sorted by part, then row, then column.

    part: (n,) int64 ``BodyPart`` index.
    y, x: (n,) int64 pixel on the upsampled map (H_up = h * upsample rows, W_up = w * upsample columns).
    value: (n,) float32 smoothed heat at the peak (what the threshold applies to).
    heat: (n,) float32 unsmoothed heat of the cell under the peak, tf-pose's part score.
    confidence: (n,) float32 ``heat`` clipped to (0, 1].
    """

    part: IntArray
    y: IntArray
    x: IntArray
    value: FloatArray
    heat: FloatArray
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
    people = _assemble(connections, peaks.heat.tolist())
    kept = [p for p in people if p.count >= config.min_parts and p.total / p.count >= config.min_person_score]
    shape_up = (maps.shape[0] * config.upsample, maps.shape[1] * config.upsample)
    return _to_poses(kept, peaks, shape_up)


def find_peaks(heat: np.ndarray, config: DecodeConfig = DecodeConfig()) -> Peaks:
    """Peaks of the upsampled, smoothed heat maps: 3x3 local maxima above ``config.peak_threshold``.

    heat: (h, w, parts) float heat maps at 1/8 of the input. The peaks that upsampling, smoothing and max-pooling
    the whole map would give, computed only in windows around likely peaks (see the module docstring).
    """
    heat = np.ascontiguousarray(heat, dtype=np.float32)
    h, w, _ = heat.shape
    smooth_y, coarse_y = _axis_operators(h, config.upsample, config.smooth_size, config.smooth_nsig)
    smooth_x, coarse_x = _axis_operators(w, config.upsample, config.smooth_size, config.smooth_nsig)
    maps = np.ascontiguousarray(heat.transpose(2, 0, 1))
    seeds = _seeds(maps, coarse_y, coarse_x, config)
    part, y, x, value = _window_peaks(maps, seeds, smooth_y, smooth_x, config)
    keep = _strongest_per_part(part, value, config.max_peaks_per_part)
    part, y, x, value = part[keep], y[keep], x[keep], value[keep]
    under = heat[y // config.upsample, x // config.upsample, part].astype(np.float32)
    # Floored above 0 so that Poses.found (confidence > 0) holds for every part that was found.
    confidence = np.clip(under, _MIN_CONFIDENCE, 1.0).astype(np.float32)
    part, y, x = (v.astype(np.int64) for v in (part, y, x))
    return Peaks(part, y, x, value.astype(np.float32), under, confidence)


def smoothed_heat(heat: np.ndarray, config: DecodeConfig = DecodeConfig()) -> np.ndarray:
    """The whole upsampled, smoothed heat maps, (parts, h * upsample, w * upsample) float32.

    heat: (h, w, parts). The decoder never builds these; they are for inspection and drawing.
    """
    h, w, _ = heat.shape
    smooth_y, _ = _axis_operators(h, config.upsample, config.smooth_size, config.smooth_nsig)
    smooth_x, _ = _axis_operators(w, config.upsample, config.smooth_size, config.smooth_nsig)
    maps = np.ascontiguousarray(heat.transpose(2, 0, 1), dtype=np.float32)
    return np.asarray(smooth_y @ maps @ smooth_x.T, dtype=np.float32)


@functools.lru_cache(maxsize=8)
def smoothing_kernel(size: int, nsig: float) -> np.ndarray:
    """tf-pose's smoothing kernel as its separable 1-D factor, (size,) float64 summing to 1.

    tf-pose's 2-D kernel is sqrt(outer(k, k)) / sum, k the standard normal's mass in ``size`` bins of width
    (2 nsig + 1) / size centred on 0; that is exactly outer(g, g) with g = sqrt(k) / sum(sqrt(k)).
    """
    interval = (2 * nsig + 1.0) / size
    edges = np.linspace(-nsig - interval / 2.0, nsig + interval / 2.0, size + 1)
    cdf = np.array([0.5 * (1.0 + math.erf(e / math.sqrt(2.0))) for e in edges])
    root = np.sqrt(np.diff(cdf))
    kernel = root / root.sum()
    kernel.setflags(write=False)
    return kernel


@functools.lru_cache(maxsize=32)
def _axis_operators(n: int, upsample: int, size: int, nsig: float) -> tuple[np.ndarray, np.ndarray]:
    """Block-copy-then-smooth matrix for one image axis, (n * upsample, n) float32, and its rows at one pixel
    per cell, (n, n), where the seeds are sampled. Zero beyond the map, as SAME padding.
    """
    operator = np.repeat(np.eye(n), upsample, axis=0)
    if size > 1:
        kernel, reach = smoothing_kernel(size, nsig), size // 2
        pixel = np.arange(n * upsample)
        tap = pixel[None, :] - pixel[:, None] + reach  # out[i] = sum_j in[j] * kernel[j - i + reach]
        band = np.where((tap >= 0) & (tap < size), kernel[np.clip(tap, 0, size - 1)], 0.0)
        operator = band @ operator
    smooth = operator.astype(np.float32)
    coarse = np.ascontiguousarray(smooth[upsample // 2 :: upsample])
    smooth.setflags(write=False)
    coarse.setflags(write=False)
    return smooth, coarse


def _local_maxima(a: np.ndarray, *, break_ties: bool) -> np.ndarray:
    """Bool mask of 3x3 maxima over the last two axes, -inf beyond the edges (max_pool's SAME border).

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
    # A smooth bump's maximum lies within one seed spacing of its sampled maximum; then a ring for the 3x3 test.
    reach = config.upsample + config.upsample // 2 + 2
    offsets = np.arange(-reach, reach + 1)
    ys, xs = seed_y[:, None] + offsets, seed_x[:, None] + offsets
    in_y, in_x = (ys >= 0) & (ys < len(smooth_y)), (xs >= 0) & (xs < len(smooth_x))
    rows = smooth_y[np.clip(ys, 0, len(smooth_y) - 1)]
    cols = smooth_x[np.clip(xs, 0, len(smooth_x) - 1)]
    window = rows @ maps[seed_part] @ cols.transpose(0, 2, 1)
    window = np.where(in_y[:, :, None] & in_x[:, None, :], window, -np.inf)
    is_peak = _local_maxima(window, break_ties=True) & (window > config.peak_threshold)
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
    """Connection score (mean PAF alignment + distance prior) and hit count of each candidate pair.

    Float32 where pafprocess computes in float, so that the rounding to a pixel is the same.
    """
    limb, a, b = pairs
    start_x, start_y = peaks.x[a].astype(np.float32), peaks.y[a].astype(np.float32)
    dx, dy = peaks.x[b].astype(np.float32) - start_x, peaks.y[b].astype(np.float32) - start_y
    steps = np.arange(config.paf_samples, dtype=np.float32)
    n = np.float32(config.paf_samples)
    sample_x = start_x[:, None] + steps * (dx / n)[:, None]
    sample_y = start_y[:, None] + steps * (dy / n)[:, None]
    col = (sample_x.astype(np.float64) + 0.5).astype(np.intp) // config.upsample
    row = (sample_y.astype(np.float64) + 0.5).astype(np.intp) // config.upsample
    h, w, c = maps.shape
    at = (np.minimum(row, h - 1) * w + np.minimum(col, w - 1)) * c
    flat = maps.reshape(-1)
    channels = _PAF_XY[limb]
    vector_x, vector_y = flat[at + channels[:, :1]], flat[at + channels[:, 1:]]
    length = np.sqrt(dx * dx + dy * dy)
    safe = np.maximum(length, np.float32(1e-6))
    dots = (dx / safe)[:, None] * vector_x + (dy / safe)[:, None] * vector_y
    hits = np.count_nonzero(dots > config.paf_score_threshold, axis=1)
    height = maps.shape[0] * config.upsample
    score = dots.sum(axis=1) / n + _limb_prior(length.astype(np.float64), height, config.limb_length_prior)
    # Coincident peaks give no direction to test the field against.
    return np.where(length > 0, score, -np.inf), hits


def _limb_prior(length: np.ndarray, height: int, fraction: float | None) -> np.ndarray:
    """tf-pose's distance prior: 0 up to fraction * height, then falling towards -1 (lengths in pixels)."""
    if fraction is None:
        return np.zeros_like(length)
    return np.minimum(0.0, fraction * height / np.maximum(length, 1e-6) - 1.0)


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


def _assemble(connections: list[Connection], heat: list[float]) -> list[_Person]:
    """Grow people from connections in limb order, merging fragments that a connection joins.

    heat: each peak's part score. pafprocess's assembly with the fixes the module docstring names.
    """
    people: list[_Person] = []
    for k, a, b, s in connections:
        part_a, part_b = PAF_LIMBS[k]
        holders = [p for p in people if p.parts[part_a] == a or p.parts[part_b] == b]
        if not holders and k < _SEED_LIMBS:
            parts = [-1] * NUM_PARTS
            parts[part_a], parts[part_b] = a, b
            people.append(_Person(parts, heat[a] + heat[b] + s))
        elif len(holders) == 1 and holders[0].parts[part_b] < 0:  # so it holds A
            holders[0].parts[part_b] = b
            holders[0].total += heat[b] + s
        elif len(holders) == 2 and not holders[0].shares_a_part_with(holders[1]):
            first, second = holders
            first.parts = [max(p, q) for p, q in zip(first.parts, second.parts, strict=True)]
            first.total += second.total + s
            people = [p for p in people if p is not second]
    return people


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
