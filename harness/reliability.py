"""Fault injection and measurements for the reliability tests (tests/test_reliability.py) and the long runs
(bench/soak.py): analyzers that fail or are slow on purpose around the real one, long references, process figures
from /proc, and the measured runs themselves. Long webcam clips are in `harness.clips`."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pose.calibration import SECOND_LOOK_NAME
from pose.pipeline import FrameAnalyzer
from pose.types import Detections, FrameAnalysis
from stream.client import ClientResult, run_session
from stream.live import SessionRegistry, SessionRunner
from stream.references import META_NAME, ReferenceLibrary, ReferenceMeta, new_id

# --- fault injection around the real analyzer


class FaultyAnalyzer:
    """The real analyzer, raising on 1 call in `every` for `sparse_s` seconds from its first call, then on every
    call for `solid_s` seconds, then never again. `phase(t)` says which phase a time.monotonic() time is in."""

    def __init__(self, inner: FrameAnalyzer, every: int = 10, sparse_s: float = 4.0, solid_s: float = 10.0) -> None:
        self.inner, self.every, self.sparse_s, self.solid_s = inner, every, sparse_s, solid_s
        self.started: float | None = None
        self.calls = self.raised = 0

    def phase(self, t: float) -> str:
        if self.started is None or t < self.started:
            return "before"
        if t < self.started + self.sparse_s:
            return "sparse"
        return "solid" if t < self.started + self.sparse_s + self.solid_s else "after"

    def analyze(self, image_bgr: np.ndarray, people: Detections | None = None) -> FrameAnalysis:
        now = time.monotonic()
        if self.started is None:
            self.started = now
        self.calls += 1
        phase = self.phase(now)
        if phase == "solid" or (phase == "sparse" and self.calls % self.every == 0):
            self.raised += 1
            raise RuntimeError(f"injected failure ({phase})")
        return self.inner.analyze(image_bgr, people)


class SlowAnalyzer:
    """The real analyzer, `delay` s slower (slower than the tick rate when delay > 1 / fps)."""

    def __init__(self, inner: FrameAnalyzer, delay: float) -> None:
        self.inner, self.delay = inner, delay

    def analyze(self, image_bgr: np.ndarray, people: Detections | None = None) -> FrameAnalysis:
        time.sleep(self.delay)
        return self.inner.analyze(image_bgr, people)


# --- long references


def long_reference(library: ReferenceLibrary, base: ReferenceMeta, seconds: float) -> ReferenceMeta:
    """A reference `seconds` long whose dancer repeats `base`'s keypoints and second look (the server reads only
    meta.json and the CSV for a session, and computes the calibration and cut from the CSVs in the background;
    the video is `base`'s, for the page)."""
    ticks = round(seconds * base.fps)
    reps = -(-ticks // base.ticks)
    meta = ReferenceMeta(new_id(), f"{base.title}, {seconds:g} s", base.fps, ticks / base.fps, ticks, base.width,
                         base.height, base.pose)  # fmt: skip
    folder = library.root / meta.id
    folder.mkdir()
    for name in ("keypoints.csv", SECOND_LOOK_NAME):
        rows = pd.read_csv(library.root / base.id / name)
        tiled = pd.concat([rows.assign(tick=rows["tick"] + r * base.ticks) for r in range(reps)], ignore_index=True)
        tiled = tiled[tiled["tick"] < ticks].copy()
        tiled["time_s"] = tiled["tick"] / base.fps
        tiled.to_csv(folder / name, index=False)
    os.link(library.video_path(base.id), folder / "video.mp4")
    (folder / META_NAME).write_text(json.dumps(asdict(meta)))
    return meta


# --- process figures


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class _MallInfo2(ctypes.Structure):
    _NAMES = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")
    _fields_ = [(name, ctypes.c_size_t) for name in _NAMES]


def heap_mib() -> dict[str, float]:
    """glibc's own account (mallinfo2, all arenas), MiB: `heap_used` handed out by malloc and not freed (a leak
    grows it), `heap_free` freed but kept in malloc's heaps (fragmentation grows it). Empty without glibc 2.33+."""
    name = ctypes.util.find_library("c")
    try:
        mallinfo2 = ctypes.CDLL(name).mallinfo2 if name else None
    except (OSError, AttributeError):
        mallinfo2 = None
    if mallinfo2 is None:
        return {}
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    mib = 1 << 20
    return {"heap_used_mib": round(info.uordblks / mib, 1), "heap_free_mib": round(info.fordblks / mib, 1)}


def process_figures() -> dict[str, float]:
    gc.collect()
    return {
        "rss_mib": round(rss_mib(), 1),
        "threads": threading.active_count(),
        "fds": open_fds(),
        "tasks": len(asyncio.all_tasks()),
        **heap_mib(),
    }


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) samples, per minute."""
    t, v = np.array(samples).T
    return float(np.polyfit(t, v, 1)[0] * 60)


class RssSampler:
    """RSS every `interval` s in a thread, while in the `with` block: `peak` and the (s, MiB) samples."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self.start = time.monotonic()
        self.baseline = rss_mib()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> float:
        return max((v for _, v in self.samples), default=self.baseline)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append((time.monotonic() - self.start, rss_mib()))


# --- measured runs


@dataclass
class FaultFigures:
    """Returned-track figures of a session whose analyzer fails (see FaultyAnalyzer)."""

    fps_sparse: float
    fps_solid: float
    fps_after: float
    max_gap_s: float
    raised: int
    errors_reported: int  # the `errors` of the last stats message the client got
    stats_with_errors: int  # stats messages received during the solid phase that reported errors


async def fault_run(
    server: str, video: Path, reference: str, analyzers: list[FaultyAnalyzer], seconds: float
) -> FaultFigures:
    """One session; `analyzers` receives the session's FaultyAnalyzer when the server makes it."""
    received: list[float] = []
    result = await run_session(
        server,
        video,
        reference,
        seconds=seconds,
        fps=5,
        on_received=lambda frame, now: received.append(now),  # loop time: time.monotonic(), as the analyzer's
    )

    analyzer = analyzers[0]

    def fps(phase: str) -> float:
        times = [t for t in received if analyzer.phase(t) == phase]
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0

    gaps = np.diff(received) if len(received) > 1 else np.array([np.inf])
    solid_stats = [s for t, s in result.stats_log if analyzer.phase(t) == "solid" and s["errors"] > 0]
    return FaultFigures(
        fps_sparse=round(fps("sparse"), 2),
        fps_solid=round(fps("solid"), 2),
        fps_after=round(fps("after"), 2),
        max_gap_s=round(float(gaps.max()), 3),
        raised=analyzer.raised,
        errors_reported=int(result.stats["errors"]) if result.stats else 0,
        stats_with_errors=len(solid_stats),
    )


@dataclass
class BackpressureFigures:
    seconds: float
    tick_period_s: float
    analysis_s: float  # mean time per analysis (the injected delay included)
    max_depth: int  # frames held between the webcam and the analyzer (mailbox + in flight), at most
    age_p50_s: float  # from a frame's arrival to its analysis being ready (what the skeleton drawn lags by)
    age_p95_s: float
    age_max_s: float
    rss_slope_mib_per_min: float
    rss_start_mib: float
    rss_end_mib: float
    heap_start: dict[str, float]  # heap_mib() when the RSS samples start and at the end
    heap_end: dict[str, float]
    processed: int
    skipped: int
    returned_fps: float


async def backpressure_run(
    server: str, registry: SessionRegistry, video: Path, reference: str, seconds: float, fps: float
) -> BackpressureFigures:
    """One session of `seconds` at `fps` ticks/s (the analyzer must be slower than 1 / fps)."""
    task = asyncio.create_task(run_session(server, video, reference, seconds=seconds, fps=fps))
    runner: SessionRunner | None = None
    rss: list[tuple[float, float]] = []
    heap_start: dict[str, float] | None = None
    heap_end: dict[str, float] = {}
    started = time.monotonic()
    while not task.done():
        await asyncio.sleep(1.0)
        live = registry.live()
        if runner is None and live:
            runner = live[0]
        elapsed = time.monotonic() - started
        if elapsed > min(10.0, seconds / 3):  # after the warm-up: caches, TF's arenas, aiortc's buffers
            rss.append((elapsed, rss_mib()))
            heap_end = heap_mib()
            heap_start = heap_end if heap_start is None else heap_start
    result: ClientResult = await task
    assert runner is not None, "no session was seen"
    ages = np.array(runner.frame_ages)
    session = runner.session
    return BackpressureFigures(
        seconds=seconds,
        tick_period_s=1 / fps,
        analysis_s=round(session.inference_s, 3),
        max_depth=runner.peak_depth,
        age_p50_s=round(float(np.percentile(ages, 50)), 3),
        age_p95_s=round(float(np.percentile(ages, 95)), 3),
        age_max_s=round(float(ages.max()), 3),
        rss_slope_mib_per_min=round(slope_per_minute(rss), 2),
        rss_start_mib=round(rss[0][1], 1),
        rss_end_mib=round(rss[-1][1], 1),
        heap_start=heap_start or {},
        heap_end=heap_end,
        processed=session.processed,
        skipped=session.sampler.skipped,
        returned_fps=round(result.frames_received / max(seconds, 1e-9), 2),
    )


@dataclass
class SoakFigures:
    cycles: int
    seconds_per_cycle: float
    samples: list[dict[str, float]] = field(default_factory=list)  # every `every` cycles, and before the first
    rss_growth_last_half: float = 0.0  # relative, between the samples at half-way and at the end
    failures: int = 0
    wall_s: float = 0.0


async def soak_run(
    server: str,
    registry: SessionRegistry,
    video: Path,
    reference: str,
    cycles: int,
    seconds: float,
    every: int,
    on_sample: Callable[[dict[str, float]], None] | None = None,
) -> SoakFigures:
    """`cycles` x (connect, stream `seconds`, close), process figures every `every` cycles."""
    figures = SoakFigures(cycles, seconds)
    started = time.monotonic()

    def sample(cycle: int) -> None:
        row = {"cycle": cycle, **process_figures(), "live_sessions": len(registry.live())}
        figures.samples.append(row)
        if on_sample is not None:
            on_sample(row)

    sample(0)
    for cycle in range(1, cycles + 1):
        try:
            await run_session(server, video, reference, seconds=seconds, fps=5)
        except Exception:
            figures.failures += 1
        deadline = time.monotonic() + 10
        while registry.live() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if cycle % every == 0:
            sample(cycle)
    figures.wall_s = round(time.monotonic() - started, 1)
    half = next(s for s in figures.samples if s["cycle"] >= cycles / 2)
    figures.rss_growth_last_half = round(figures.samples[-1]["rss_mib"] / half["rss_mib"] - 1, 4)
    return figures
