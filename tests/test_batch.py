"""Extraction in tick ranges across workers: the joined CSV is byte for byte the single-process one.

Real models on real footage: 6 s of the sample at F=10 (60 ticks, the detector every 5), split into 3 ranges of
20 ticks, in a clip whose keyframes fall off the range starts (every 7 frames) so that each range seeks to the
keyframe before it and decodes up to its start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import pytest

from harness.clips import H264, indexed_frame, source_frames, write_clip
from harness.frameindex import read_frame_index
from harness.ray import Cluster
from pose.batch import LocalPool, ModelChoice, extract_many, plan, split_ticks
from pose.media.video import iter_frames
from pose.pipeline import Models, extract_video
from pose.ticks import sample_ticks

pytest_plugins = ("tests.ray_fixtures",)

FPS = 10
SECONDS = 6
RANGE_S = 2.0  # 3 ranges of the 6 s clip


def test_split_ticks_starts_every_range_on_a_detector_tick() -> None:
    assert split_ticks(60, 5, 20) == [range(0, 20), range(20, 40), range(40, 60)]
    assert split_ticks(61, 5, 22) == [range(0, 20), range(20, 40), range(40, 60), range(60, 61)]
    assert split_ticks(3, 5, 1) == [range(0, 3)]
    assert split_ticks(0, 5, 20) == []
    with pytest.raises(ValueError):
        split_ticks(10, 0, 5)


def test_plan_covers_every_video_once_longest_first() -> None:
    tasks = plan([(Path("a.mp4"), 12), (Path("b.mp4"), 30)], 10, 1.0, 5)
    assert [(t.video.name, t.start, t.stop) for t in tasks] == [
        ("b.mp4", 0, 10),
        ("b.mp4", 10, 20),
        ("b.mp4", 20, 30),
        ("a.mp4", 0, 10),
        ("a.mp4", 10, 12),
    ]


def test_sample_ticks_from_any_frame_at_or_before_the_start_gives_the_whole_runs_ticks() -> None:
    stamps = [Fraction(i, 7) for i in range(40)]  # 7 frames a second, ticks at 10 a second
    whole = list(sample_ticks(zip(stamps, range(40), strict=True), FPS, 60))
    for start in (5, 10, 35, 55):
        for first in (i for i, t in enumerate(stamps) if t <= Fraction(start, FPS)):
            frames = zip(stamps[first:], range(first, 40), strict=True)
            assert list(sample_ticks(frames, FPS, 60, start)) == whole[start:], (start, first)


def test_a_decode_from_a_seek_gives_the_frames_of_the_whole_decode(tmp_path: Path) -> None:
    times = [Fraction(i, 24) for i in range(60)] + [Fraction(5, 2) + Fraction(i, 60) for i in range(60)]
    times = [Fraction(round(t * 1000), 1000) for t in times]  # a 1 ms time base
    frames = (indexed_frame(i) for i in range(len(times)))
    clip = write_clip(tmp_path / "clip.mp4", frames, 30, timestamps=times, time_base=Fraction(1, 1000),
                      options={**H264, "g": "7"})  # fmt: skip
    whole = [(t, read_frame_index(f)) for t, f in iter_frames(clip)]
    assert [i for _, i in whole] == list(range(len(times)))
    for start in (Fraction(1, 10), Fraction(13, 10), Fraction(5, 2), Fraction(3)):
        part = [(t, read_frame_index(f)) for t, f in iter_frames(clip, start)]
        first = max(i for i, (t, _) in enumerate(whole) if t <= start)
        assert part[0][0] <= start and part[-1] == whole[-1]
        assert whole[first] in part and part[part.index(whole[first]) :] == whole[first:]
        assert start < 1 or len(part) < len(whole), "the decode must start at a keyframe near the start"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, sample_video: Path) -> Path:
    out = tmp_path_factory.mktemp("batch") / "dance.mp4"
    first = zip(range(SECONDS * 10), source_frames(sample_video, None, "yuv420p"), strict=False)
    frames = (image for _, image in first)
    return write_clip(out, frames, 10, frame_format="yuv420p", options={**H264, "g": "7", "crf": "23"})


@pytest.fixture(scope="module")
def single_csv(tmp_path_factory: pytest.TempPathFactory, clip: Path, models: Models) -> bytes:
    out = tmp_path_factory.mktemp("single") / "dance.csv"
    result = extract_video(clip, FPS, out, models)
    assert result.ticks == SECONDS * FPS
    return out.read_bytes()


def test_ranges_joined_by_a_process_pool_equal_the_single_process_csv(
    tmp_path: Path, clip: Path, single_csv: bytes
) -> None:
    pool = LocalPool(2, ModelChoice())  # TensorFlow's threads as in `models`
    try:
        done = extract_many([clip], FPS, tmp_path, pool, range_s=RANGE_S)
    finally:
        pool.close()
    assert [(d.out.name, d.ticks) for d in done] == [("dance.csv", SECONDS * FPS)]
    assert (tmp_path / "dance.csv").read_bytes() == single_csv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dance.csv"]


@pytest.mark.cli
def test_extract_many_command_writes_one_csv_per_video(tmp_path: Path, clip: Path, single_csv: bytes) -> None:
    other = tmp_path / "again.mp4"
    other.write_bytes(clip.read_bytes())
    out = tmp_path / "out"
    command: list[str | Path] = [sys.executable, "-m", "pose", "extract-many", clip, other, "--out-dir", out]
    done = subprocess.run(
        [*command, "--fps", str(FPS), "--workers", "2", "--range-s", str(RANGE_S)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["again.csv", "dance.csv"]
    assert (out / "dance.csv").read_bytes() == single_csv == (out / "again.csv").read_bytes()


def test_ranges_joined_on_ray_equal_the_single_process_csv(
    tmp_path: Path, clip: Path, single_csv: bytes, ray_cluster: Cluster
) -> None:
    from pose.batch_ray import RayPool

    pool = RayPool(2, ModelChoice(), ray_cluster.address)
    try:
        extract_many([clip], FPS, tmp_path, pool, range_s=RANGE_S)
    finally:
        pool.close()
    assert (tmp_path / "dance.csv").read_bytes() == single_csv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dance.csv"]


def test_a_ray_worker_killed_mid_range_is_restarted_and_the_range_retried(
    tmp_path: Path, clip: Path, single_csv: bytes, ray_cluster: Cluster
) -> None:
    from pose.batch_ray import RayPool

    killed: list[int] = []
    seen_at_kill: list[list[str]] = []
    stop = threading.Event()

    def kill_one_busy_worker() -> None:
        while not stop.is_set():
            busy = ray_cluster.processes("ray::_RangeExtractor.extract")
            if busy:
                seen_at_kill.append(sorted(p.name for p in tmp_path.iterdir()))
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
                return
            time.sleep(0.05)

    pool = RayPool(2, ModelChoice(), ray_cluster.address)
    killer = threading.Thread(target=kill_one_busy_worker)
    killer.start()
    try:
        extract_many([clip], FPS, tmp_path, pool, range_s=RANGE_S)
    finally:
        stop.set()
        killer.join()
        pool.close()
    assert len(killed) == 1, "no worker was caught mid-range"
    assert seen_at_kill == [[]], "nothing may be written before every range is in"
    assert (tmp_path / "dance.csv").read_bytes() == single_csv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dance.csv"]
