"""Extraction of many videos, and of one long video in tick ranges, across worker processes or a Ray cluster.

Every video is cut into tick ranges that start on detector ticks (`plan`); workers extract ranges independently
(`extract_range`, the same per-tick work as `pose.pipeline.extract_video`), and the driver joins each video's
ranges in tick order through one `TickWriter`, which gives the track ids. The joined CSV is byte for byte the
one `python -m pose extract` writes, whatever the ranges and however many workers (see
`pose.pipeline.analyze_ticks` for why the boundaries are exact). A CSV is written atomically once all of its
ranges are in, so a worker lost mid-range leaves no partial file: its range is run again.

Runners: `LocalPool` (processes on this machine, each loading the models once) and `pose.batch_ray.RayPool`
(one Ray actor per worker, restarted and its range retried when its process dies).
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pose import assets
from pose.csvio import atomic_output
from pose.models import DEFAULT_BACKEND
from pose.pipeline import Models, TickWriter, analyze_ticks, video_ticks
from pose.ticks import DETECT_INTERVAL_S, detector_every
from pose.types import FrameAnalysis

RANGE_S = 10.0  # default range length in seconds of video: short enough to spread one video over the workers
MIN_RANGE_S = 1.0  # shorter ranges spend more on decoding from the keyframe before them than they spread
CHECK_INTERVAL_S = 0.5  # how often a runner waiting for results calls its `checkpoint`
Checkpoint = Callable[[], None]  # called while waiting for workers; raises to stop the run


@dataclass(frozen=True)
class ModelChoice:
    """What a worker loads (picklable): see `pose.pipeline.load_models`.

    threads: TensorFlow's intra-op threads in each worker (None: the worker machine's CPU count). TensorFlow's
    sums may come out in an order that depends on it, changing the last digits of some keypoints: workers are
    guaranteed the single-process CSV only when they run with that process's count.
    """

    data_dir: Path = assets.DATA_DIR
    pose: str = DEFAULT_BACKEND
    pose_size: tuple[int, int] | None = None
    threads: int | None = None

    def load(self) -> Models:
        from pose.models.graph import graph_threads
        from pose.pipeline import load_models

        with graph_threads(self.threads):
            return load_models(self.data_dir, self.pose_size, self.pose)


@dataclass(frozen=True)
class RangeTask:
    """Ticks start..stop-1 of `video` (of `total` ticks at `fps`, the detector every `every` ticks); mirrored: the
    models' second look (`pose.pipeline.analyze_ticks`)."""

    video: Path
    fps: float
    start: int
    stop: int
    total: int
    every: int
    mirrored: bool = False


@dataclass(frozen=True)
class RangeResult:
    task: RangeTask
    analyses: list[FrameAnalysis]  # one per tick, in order
    seconds: float  # the worker's time on the range


def split_ticks(total: int, every: int, size: int) -> list[range]:
    """Consecutive ranges covering 0..total-1, each starting on a multiple of `every`, of about `size` ticks."""
    if total < 0 or every < 1 or size < 1:
        raise ValueError(f"bad split: total={total}, every={every}, size={size}")
    step = max(1, round(size / every)) * every
    return [range(a, min(a + step, total)) for a in range(0, total, step)]


def plan(
    videos: Iterable[tuple[Path, int]], fps: float, range_s: float, every: int, mirrored: bool = False
) -> list[RangeTask]:
    """The ranges of each (video, total ticks), `range_s` seconds long, longest videos' ranges first."""
    size = max(1, math.ceil(range_s * fps))
    tasks = [
        RangeTask(video, fps, r.start, r.stop, total, every, mirrored)
        for video, total in videos
        for r in split_ticks(total, every, size)
    ]
    return sorted(tasks, key=lambda t: -t.total)  # stable: a long video's ranges stay in order, started first


def extract_range(models: Models, task: RangeTask) -> RangeResult:
    """The analyses of one range (run in a worker)."""
    from pose.media.video import VideoError

    started = time.perf_counter()
    ticks = range(task.start, task.stop)
    analyses = [
        a for _, _, a in analyze_ticks(task.video, task.fps, models, ticks, task.total, task.every, None, task.mirrored)
    ]
    if len(analyses) != len(ticks):
        raise VideoError(f"{task.video}: decoded {len(analyses)} of the {len(ticks)} ticks from {task.start}")
    return RangeResult(task, analyses, time.perf_counter() - started)


def write_joined(out_csv: Path, fps: float, results: Iterable[RangeResult]) -> int:
    """Join ranges (in tick order, covering the video) into one CSV, atomically; returns the ticks written."""
    with atomic_output(out_csv) as partial, partial.open("w", newline="") as stream:
        writer = TickWriter(stream, fps)
        for result in results:
            for k, analysis in enumerate(result.analyses, result.task.start):
                writer.write(k, analysis)
    return writer.next_tick


def range_seconds(duration_s: float, workers: int) -> float:
    """A range length that gives each of `workers` about two ranges of a video of `duration_s` (between
    MIN_RANGE_S and RANGE_S): one video, such as a reference being built, then keeps every worker busy."""
    return max(MIN_RANGE_S, min(RANGE_S, duration_s / (2 * max(1, workers))))


class Runner(Protocol):
    """Runs range tasks on its workers; results come back as they finish (any order). While waiting it calls
    `checkpoint` (if given) every CHECK_INTERVAL_S; what that raises ends the run (and the workers' tasks)."""

    workers: int

    def run(self, tasks: list[RangeTask], checkpoint: Checkpoint | None = None) -> Iterator[RangeResult]: ...

    def close(self) -> None: ...


_worker_models: Models | None = None


def _load_worker(choice: ModelChoice) -> None:
    global _worker_models
    _worker_models = choice.load()


def _run_in_worker(task: RangeTask) -> RangeResult:
    assert _worker_models is not None, "worker started without its models"
    return extract_range(_worker_models, task)


class LocalPool:
    """Worker processes on this machine (spawned, so TensorFlow starts clean in each), each with its own models."""

    def __init__(self, workers: int, choice: ModelChoice) -> None:
        self.workers = workers
        self._pool = concurrent.futures.ProcessPoolExecutor(
            workers, multiprocessing.get_context("spawn"), initializer=_load_worker, initargs=(choice,)
        )

    def run(self, tasks: list[RangeTask], checkpoint: Checkpoint | None = None) -> Iterator[RangeResult]:
        futures = {self._pool.submit(_run_in_worker, task) for task in tasks}
        try:
            while futures:
                done, futures = concurrent.futures.wait(futures, CHECK_INTERVAL_S, concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    yield future.result()
                if checkpoint:
                    checkpoint()
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


@dataclass(frozen=True)
class VideoDone:
    video: Path
    out: Path
    ticks: int
    found: int  # ticks where a main dancer was found


def extract_many(
    videos: list[Path],
    fps: float,
    out_dir: Path,
    runner: Runner,
    range_s: float = RANGE_S,
    detect_interval_s: float = DETECT_INTERVAL_S,
    progress: Callable[[int, int], None] | None = None,
    checkpoint: Checkpoint | None = None,
) -> list[VideoDone]:
    """Extract each video to out_dir/<stem>.csv across the runner's workers; `progress(done, total)` in ticks.

    Videos are checked before any work starts; two videos with the same name stem are refused (one CSV each).
    """
    stems = [v.stem for v in videos]
    if len(set(stems)) != len(stems):
        raise ValueError("two videos share a file name stem; their CSVs would overwrite each other")
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = {video: out_dir / f"{video.stem}.csv" for video in videos}
    return extract_to(outputs, fps, runner, range_s, detect_interval_s, progress, checkpoint)


def extract_to(
    outputs: dict[Path, Path],
    fps: float,
    runner: Runner,
    range_s: float = RANGE_S,
    detect_interval_s: float = DETECT_INTERVAL_S,
    progress: Callable[[int, int], None] | None = None,
    checkpoint: Checkpoint | None = None,
    mirrored: bool = False,
) -> list[VideoDone]:
    """Extract each video (key) to its CSV (value) across the runner's workers, in the order given (mirrored:
    the models' second look at each)."""
    videos = list(outputs)
    totals = [(v, video_ticks(v, fps)) for v in videos]
    tasks = plan(totals, fps, range_s, detector_every(fps, detect_interval_s), mirrored)
    pending = {v: {t.start: None for t in tasks if t.video == v} for v, _ in totals}
    received: dict[Path, dict[int, RangeResult]] = {v: {} for v, _ in totals}
    grand = sum(t for _, t in totals)
    done_ticks = 0
    finished = [VideoDone(v, outputs[v], write_joined(outputs[v], fps, []), 0) for v, _ in totals if not pending[v]]
    for result in runner.run(tasks, checkpoint):
        video = result.task.video
        received[video][result.task.start] = result
        done_ticks += len(result.analyses)
        if len(received[video]) == len(pending[video]):
            parts = received.pop(video)
            ordered = [parts[start] for start in sorted(parts)]
            ticks = write_joined(outputs[video], fps, ordered)
            found = sum(len(a.poses) > 0 for r in ordered for a in r.analyses)
            finished.append(VideoDone(video, outputs[video], ticks, found))
        if progress:
            progress(done_ticks, grand)
    return sorted(finished, key=lambda d: videos.index(d.video))
