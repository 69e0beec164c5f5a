"""The calibrated, motion-aware score: planted sequences with exact answers, and real keypoints of the sample."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from harness.clips import cut_clip, write_indexed_clip
from pose import assets
from pose.calibration import (
    MIN_SPAN,
    Calibration,
    calibrated,
    calibration_of,
    chance_baseline,
    match_ceiling,
    read_calibration,
    write_calibration,
)
from pose.csvio import main_dancer_arrays, read_keypoints_csv
from pose.limbs import LIMB_OF_PART, Limb
from pose.media.audio import read_audio
from pose.moves import Move, Tier, beat_moves, beat_times, cut_moves, fixed_moves, read_moves, tier_of, write_moves
from pose.oneeuro import OneEuroFilter, smoothing_factor
from pose.parts import MIRRORED, NUM_PARTS, BodyPart
from pose.pipeline import Models, extract_video
from pose.scorer import LATENCY_MIN_TICKS, Scorer
from pose.similarity import Moments, PoseArrays, similarity

FPS = 10.0
B = BodyPart


def figure(t: float, wave: float = 1.0) -> np.ndarray:
    """A planted stick figure at time t (s): both arms swing with different phases, the legs step."""
    p = np.zeros((NUM_PARTS, 2))
    p[B.NOSE], p[B.NECK] = (0.5, 0.2), (0.5, 0.3)
    p[B.R_EYE], p[B.L_EYE], p[B.R_EAR], p[B.L_EAR] = (0.48, 0.18), (0.52, 0.18), (0.46, 0.19), (0.54, 0.19)
    p[B.R_SHOULDER], p[B.L_SHOULDER] = (0.42, 0.3), (0.58, 0.3)
    for shoulder, elbow, wrist, side, phase in ((B.R_SHOULDER, B.R_ELBOW, B.R_WRIST, -1, 0.0),
                                                (B.L_SHOULDER, B.L_ELBOW, B.L_WRIST, 1, 1.3)):  # fmt: skip
        a = wave * math.sin(2.1 * t + phase) + phase
        p[elbow] = p[shoulder] + 0.12 * np.array([side * math.cos(a), math.sin(a)])
        p[wrist] = p[elbow] + 0.11 * np.array([side * math.cos(1.7 * a), math.sin(1.7 * a)])
    p[B.R_HIP], p[B.L_HIP] = (0.45, 0.55), (0.55, 0.55)
    for hip, knee, ankle, phase in ((B.R_HIP, B.R_KNEE, B.R_ANKLE, 0.0), (B.L_HIP, B.L_KNEE, B.L_ANKLE, math.pi)):
        s = 0.05 * math.sin(3.0 * t + phase)
        p[knee] = p[hip] + (s, 0.15)
        p[ankle] = p[knee] + (1.5 * s, 0.15)
    return p


def dance(ticks: int) -> tuple[np.ndarray, np.ndarray]:
    xy = np.stack([figure(k / FPS) for k in range(ticks)]).astype(np.float32)
    return xy, np.ones((ticks, NUM_PARTS), np.float32)


def mirror_of(xy: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    index = [int(p) for p in MIRRORED]
    out = xy[:, index].copy()
    out[..., 0] = 1.0 - out[..., 0]
    return out, conf[:, index].copy()


def scorer_for(xy: np.ndarray, conf: np.ndarray, **kw: object) -> Scorer:
    moments = Moments.from_keypoints(xy, conf, 1.0, FPS)
    calibration = Calibration(np.full(len(xy), 0.5), np.ones(len(xy)))
    return Scorer(moments, FPS, calibration, fixed_moves(len(xy), FPS), **kw)  # type: ignore[arg-type]


# --- limbs and moves


def test_every_part_has_one_limb_and_mirroring_swaps_sides() -> None:
    assert len(LIMB_OF_PART) == NUM_PARTS
    assert {LIMB_OF_PART[p] for p in BodyPart} == set(Limb)
    for p in BodyPart:
        assert LIMB_OF_PART[MIRRORED[p]] == LIMB_OF_PART[p].mirrored
    assert Limb.LEFT_ARM.label == "left arm" and Limb.TORSO.mirrored is Limb.TORSO


def test_fixed_and_beat_moves_cover_the_reference() -> None:
    assert fixed_moves(25, FPS) == [Move(0, 0, 10), Move(1, 10, 20), Move(2, 20, 25)]
    assert fixed_moves(21, FPS) == [Move(0, 0, 10), Move(1, 10, 21)]  # a 1-tick tail joins the last move
    beats = [0.23, 0.88, 1.53, 2.18, 2.83, 3.46]
    assert beat_moves(beats, 40, FPS) == [Move(0, 0, 2), Move(1, 2, 15), Move(2, 15, 28), Move(3, 28, 40)]
    assert beat_moves([], 7, FPS) == [Move(0, 0, 7)]


def test_a_reference_cut_round_trips_and_a_gap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "moves.csv"
    write_moves(path, fixed_moves(25, FPS))
    assert path.read_text() == "move,start,end\n0,0,10\n1,10,20\n2,20,25\n"
    assert read_moves(path, 25) == fixed_moves(25, FPS)
    with pytest.raises(ValueError, match=r"cover ticks 0\.\.25"):
        read_moves(path, 26)
    path.write_text("move,start,end\n0,0,10\n1,11,25\n")
    with pytest.raises(ValueError, match="without gaps"):
        read_moves(path, 25)


def test_tiers_follow_the_thresholds() -> None:
    assert [tier_of(s) for s in (100.0, 75.0, 74.9, 40.0, 15.0, 14.9, float("nan"))] == [
        Tier.PERFECT, Tier.PERFECT, Tier.GOOD, Tier.GOOD, Tier.OK, Tier.MISS, Tier.MISS,
    ]  # fmt: skip


def test_the_sound_track_of_a_clip_is_read_as_mono_samples(tmp_path: Path) -> None:
    """2 s of tone muxed under video read back at 22050 Hz (AAC adds at most a frame of priming at each end)."""
    timestamps = [Fraction(i, 10) for i in range(20)]
    with_audio = write_indexed_clip(tmp_path / "tone.mp4", timestamps, audio_seconds=2.0)
    samples = read_audio(with_audio)
    assert samples is not None and samples.ndim == 1 and samples.dtype == np.float32
    assert abs(len(samples) - 2 * 22050) <= 2 * 1024 * 22050 // 48000 + 1
    assert float(np.abs(samples).max()) > 0.1
    assert read_audio(write_indexed_clip(tmp_path / "silent.mp4", timestamps)) is None


def test_beat_moves_on_the_sample_music() -> None:
    """The soundtrack runs at 92 bpm: two beats are 1.3 s, 13 ticks at F=10, give or take the tick rounding."""
    assets.ensure((assets.SAMPLE_MUSIC,))
    samples = read_audio(assets.SAMPLE_MUSIC.path())
    assert samples is not None
    beats = beat_times(samples, 22050)
    ticks = int(len(samples) / 22050 * FPS)
    moves = beat_moves(beats, ticks, FPS)
    assert [m.start for m in moves[1:]] == sorted({round(b * FPS) for b in beats[::2] if round(b * FPS) > 0})
    assert moves[0].start == 0 and moves[-1].end == ticks
    assert all(m.start == prev.end for prev, m in itertools.pairwise(moves))
    assert {m.end - m.start for m in moves[1:-1]} <= {12, 13, 14}
    assert cut_moves(ticks, FPS, samples, 22050) == moves
    assert cut_moves(ticks, FPS, np.zeros(22050 * 5, np.float32), 22050) == fixed_moves(ticks, FPS)  # silence
    assert cut_moves(ticks, FPS, None, 22050) == fixed_moves(ticks, FPS)


# --- similarity and calibration


def test_the_same_moment_is_a_perfect_match_and_a_frozen_one_is_not() -> None:
    xy, conf = dance(20)
    m = Moments.from_keypoints(xy, conf, 1.0, FPS)
    same = similarity(m.now.take(10), m.prev.take(10), m.now.take(10), m.prev.take(10))
    assert same.total == pytest.approx(1.0) and same.raw == pytest.approx(1.0) and not same.mirrored
    frozen = similarity(m.now.take(10), m.now.take(10), m.now.take(10), m.prev.take(10))
    assert frozen.raw == pytest.approx(1.0) and frozen.total < 0.95


def test_a_mirrored_user_matches_with_the_mirror_on_only() -> None:
    xy, conf = dance(20)
    mxy, mconf = mirror_of(xy, conf)
    ref = Moments.from_keypoints(xy, conf, 1.0, FPS)
    user = Moments.from_keypoints(mxy, mconf, 1.0, FPS)
    on = similarity(user.now.take(12), user.prev.take(12), ref.now.take(12), ref.prev.take(12), mirror=True)
    off = similarity(user.now.take(12), user.prev.take(12), ref.now.take(12), ref.prev.take(12), mirror=False)
    assert on.total == pytest.approx(1.0) and bool(on.mirrored)
    assert off.total < 0.95


def test_chance_is_one_for_a_dancer_who_never_moves_and_unknown_without_other_moments() -> None:
    xy = np.repeat(figure(0.0)[None], 80, 0).astype(np.float32)
    conf = np.ones((80, NUM_PARTS), np.float32)
    chance = chance_baseline(Moments.from_keypoints(xy, conf, 1.0, FPS), FPS, gap_s=3.0)
    assert np.allclose(chance, 1.0)
    short = chance_baseline(Moments.from_keypoints(xy[:30], conf[:30], 1.0, FPS), FPS, gap_s=3.0)
    assert np.isnan(short).all()


def test_the_match_is_the_second_looks_smoothed_similarity_kept_above_chance() -> None:
    xy = np.stack([figure(0.4 * np.sin(k / 3.0)) for k in range(80)]).astype(np.float32)
    conf = np.ones((80, NUM_PARTS), np.float32)
    moments = Moments.from_keypoints(xy, conf, 1.0, FPS)
    assert np.allclose(match_ceiling(moments, moments, FPS), 1.0)  # a second look identical to the first
    unseen = Moments.from_keypoints(xy, np.zeros_like(conf), 1.0, FPS)
    assert np.isnan(match_ceiling(moments, unseen, FPS)).all()
    frozen = Moments.from_keypoints(np.repeat(xy[:1], 80, 0), conf, 1.0, FPS)
    calibration = calibration_of(moments, frozen, FPS)
    floor = np.minimum(np.nan_to_num(calibration.chance) + MIN_SPAN, 1.0)
    assert (calibration.match >= floor - 1e-12).all() and (calibration.match <= 1.0).all()
    assert np.isnan(calibration_of(moments, None, FPS).match).all()
    with pytest.raises(ValueError, match="the second look has 79 ticks"):
        match_ceiling(moments, moments.take(slice(0, 79)), FPS)


def test_calibrated_score_and_its_file(tmp_path: Path) -> None:
    assert calibrated(1.0, 0.8) == 100.0 and calibrated(0.8, 0.8) == 0.0 and calibrated(0.5, 0.8) == 0.0
    assert calibrated(0.9, 0.8) == pytest.approx(50.0) and calibrated(float("nan"), 0.1) == 0.0
    assert calibrated(0.5, float("nan")) == pytest.approx(50.0)
    assert calibrated(0.85, 0.8, 0.9) == pytest.approx(50.0) and calibrated(0.95, 0.8, 0.9) == 100.0
    assert calibrated(0.85, 0.8, float("nan")) == pytest.approx(25.0)
    path = tmp_path / "calibration.csv"
    write_calibration(path, Calibration(np.array([0.5, np.nan, 0.12345]), np.array([0.9, np.nan, 1.0])))
    assert path.read_text() == "tick,chance,match\n0,0.5000,0.9000\n1,,\n2,0.1235,1.0000\n"
    back = read_calibration(path, ticks=3)
    assert back.chance[0] == 0.5 and np.isnan(back.chance[1]) and back.chance[2] == 0.1235
    assert back.match[0] == 0.9 and np.isnan(back.match[1]) and back.score(0, 0.7) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="the keypoints have 4"):
        read_calibration(path, ticks=4)
    for older in ("tick,chance\n0,0.5\n", "tick,score\n0,1\n"):
        path.write_text(older)
        with pytest.raises(ValueError, match="not a calibration CSV"):
            read_calibration(path)


# --- the scorer on planted sequences


def test_the_dancer_scores_100_on_every_tick_and_every_move_is_perfect_on_time() -> None:
    xy, conf = dance(60)
    scorer = scorer_for(xy, conf)
    verdicts = [scorer.add(t, xy[t], conf[t]) for t in range(60)]
    assert [v.score for v in verdicts] == pytest.approx([100.0] * 60)
    assert [v.raw for v in verdicts] == pytest.approx([100.0] * 60)
    done = [m for v in verdicts for m in v.moves_done]
    assert [m.move.index for m in done] == list(range(6)) and done == scorer.finish()
    assert {m.tier for m in done} == {Tier.PERFECT} and {m.offset_ms for m in done} == {0.0}


def test_the_limb_that_is_off_is_named() -> None:
    xy, conf = dance(40)
    user = xy.copy()
    user[:, B.L_WRIST] += (0.0, 0.08)  # the left hand hangs low all the time
    user[:, B.L_ELBOW] += (0.0, 0.04)
    scorer = scorer_for(xy, conf, mirror=False)
    verdicts = [scorer.add(t, user[t], conf[t]) for t in range(40)]
    assert {v.worst for v in verdicts} == {Limb.LEFT_ARM}
    assert {m.worst for m in scorer.finish()} == {Limb.LEFT_ARM}


def test_a_late_user_gets_the_signed_offset_of_each_move() -> None:
    xy, conf = dance(60)
    scorer = scorer_for(xy, conf, latency=False)
    for t in range(60):
        source = max(t - 2, 0)  # 200 ms late
        scorer.add(t, xy[source], conf[source])
    assert [m.offset_ms for m in scorer.finish()[1:]] == [200.0] * 5


def test_a_seek_back_starts_the_move_over() -> None:
    xy, conf = dance(30)
    scorer = scorer_for(xy, conf)
    for t in range(20):
        scorer.add(t, xy[t], conf[t])
    empty = np.full((NUM_PARTS, 2), np.nan)
    for t in range(10, 20):  # the second pass over move 1: nobody in view
        scorer.add(t, empty, np.zeros(NUM_PARTS))
    moves = scorer.finish()
    assert [(m.move.index, m.ticks, m.tier) for m in moves] == [(0, 10, Tier.PERFECT), (1, 10, Tier.MISS)]


# --- One-Euro filter


def test_one_euro_passes_the_first_sample_and_holds_a_constant() -> None:
    f = OneEuroFilter()
    still = figure(0.0)
    assert np.array_equal(f(still, 0.0), still)
    for k in range(1, 20):
        assert np.allclose(f(still, k / FPS), still, rtol=0, atol=1e-15)


def test_one_euro_without_beta_is_an_exponential_smoother() -> None:
    f = OneEuroFilter(min_cutoff=2.0, beta=0.0)
    f(np.zeros((NUM_PARTS, 2)), 0.0)
    out = f(np.ones((NUM_PARTS, 2)), 0.1)
    alpha = smoothing_factor(2.0, 0.1)
    assert np.allclose(out, alpha) and alpha == pytest.approx(1 / (1 + 1 / (2 * math.pi * 2.0 * 0.1)))
    out = f(np.ones((NUM_PARTS, 2)), 0.2)
    assert np.allclose(out, alpha + (1 - alpha) * alpha)


def test_one_euro_with_beta_follows_fast_motion_closer() -> None:
    slow, fast = OneEuroFilter(beta=0.0), OneEuroFilter(beta=5.0)
    for f in (slow, fast):
        f(np.zeros((NUM_PARTS, 2)), 0.0)
    a, b = slow(np.ones((NUM_PARTS, 2)), 0.1), fast(np.ones((NUM_PARTS, 2)), 0.1)
    assert (b > a).all()


def test_one_euro_restarts_a_part_that_was_missing() -> None:
    f = OneEuroFilter()
    f(np.zeros((NUM_PARTS, 2)), 0.0)
    conf = np.ones(NUM_PARTS)
    conf[B.NOSE] = 0
    assert np.isnan(f(np.ones((NUM_PARTS, 2)), 0.1, conf)[B.NOSE]).all()
    out = f(np.full((NUM_PARTS, 2), 3.0), 0.2)
    assert (out[B.NOSE] == 3.0).all() and (out[B.NECK] < 3.0).all()


# --- real keypoints of the sample footage


@pytest.fixture(scope="module")
def walker(
    tmp_path_factory: pytest.TempPathFactory, sample_video: Path, models: Models
) -> tuple[np.ndarray, np.ndarray]:
    """12 s of the sample's main person at F=10, as the default backend sees them."""
    folder = tmp_path_factory.mktemp("walker")
    clip = cut_clip(sample_video, folder / "clip.mp4", 120)
    extract_video(clip, FPS, folder / "keypoints.csv", models)
    _, xy, conf = main_dancer_arrays(read_keypoints_csv(folder / "keypoints.csv"))
    return xy, conf


def test_a_user_300_ms_late_is_measured_within_one_tick(walker: tuple[np.ndarray, np.ndarray]) -> None:
    xy, conf = walker
    aspect = 768 / 576
    moments = Moments.from_keypoints(xy, conf, aspect, FPS)
    scorer = Scorer(moments, FPS, calibration_of(moments, None, FPS), fixed_moves(len(xy), FPS))
    late = PoseArrays(np.roll(xy, 3, axis=0), np.roll(conf, 3, axis=0))
    for t in range(3, len(xy)):
        scorer.add(t, late.pts[t], late.found[t], aspect)
    latency = scorer.latency
    assert latency.confident and abs(latency.ticks - 3) <= 1
    assert len(xy) - 3 >= LATENCY_MIN_TICKS
