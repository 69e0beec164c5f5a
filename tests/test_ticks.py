"""The tick timeline: counts, and which frame each tick sees, on exact generated clips and the real sample."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from harness.clips import write_indexed_clip
from harness.frameindex import read_index
from pose.media.video import iter_frames, probe_video
from pose.ticks import sample_ticks, tick_count


@pytest.mark.parametrize(
    ("duration", "fps", "expected"),
    [
        (79.5, 10, 795),
        (79.5, 5, 398),
        (79.5, 2, 159),
        (21, 10, 210),
        (1.0, 3, 3),
        (0.0, 10, 0),
        (0.01, 10, 1),
    ],
)
def test_tick_count(duration: float, fps: float, expected: int) -> None:
    assert tick_count(duration, fps) == expected


@pytest.mark.parametrize("fps", [0, -1, float("nan"), float("inf")])
def test_tick_count_rejects_bad_rates(fps: float) -> None:
    with pytest.raises(ValueError, match="fps"):
        tick_count(10, fps)


def test_each_tick_takes_the_frame_on_screen() -> None:
    frames = [(Fraction(t), t) for t in (0, Fraction(1, 4), Fraction(1, 2), Fraction(3, 2))]
    assert list(sample_ticks(frames, fps=2, total=4)) == [
        (0, 0),
        (1, Fraction(1, 2)),
        (2, Fraction(1, 2)),
        (3, 1.5),
    ]


def test_a_frame_exactly_on_a_tick_is_used_for_that_tick() -> None:
    frames = [(Fraction(k, 10), k) for k in range(30)]  # 10 fps, every frame on a tick at F=10
    assert [f for _, f in sample_ticks(frames, fps=10, total=30)] == list(range(30))


@pytest.mark.parametrize("fps", [10, 5, 2, 7.5, 29.97])
def test_generated_clip_ticks_see_the_right_frame(tmp_path: Path, fps: float) -> None:
    # Variable frame rate on purpose: gaps and bursts, like a phone recording.
    times = [Fraction(i, 24) for i in range(40)] + [Fraction(2) + Fraction(i, 60) for i in range(90)]
    times = [Fraction(round(t * 1000), 1000) for t in times]  # what a 1 ms time base can store
    clip = write_indexed_clip(tmp_path / "clip.mp4", times)
    info = probe_video(clip)
    total = tick_count(info.duration_s, fps)
    seen = {k: read_index(frame.to_ndarray(format="bgr24")) for k, frame in sample_ticks(iter_frames(clip), fps, total)}
    assert list(seen) == list(range(total))
    for k, index in seen.items():
        expected = max(i for i, t in enumerate(times) if t <= Fraction(k) / Fraction(fps).limit_denominator(100_000))
        assert index == expected, f"tick {k}"


@pytest.mark.parametrize(("fps", "expected"), [(10, 795), (5, 398), (2, 159)])
def test_sample_video_tick_counts(sample_video: Path, fps: int, expected: int) -> None:
    info = probe_video(sample_video)
    assert (info.width, info.height, info.duration_s) == (768, 576, Fraction(159, 2))
    total = tick_count(info.duration_s, fps)
    assert total == expected
    assert sum(1 for _ in sample_ticks(iter_frames(sample_video), fps, total)) == expected
