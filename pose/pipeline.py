"""One tick's work (detect → pose → pick the main dancer → track), and the offline extraction built on it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pose import assets
from pose.boxes import detect_every
from pose.csvio import KeypointCsvWriter, atomic_output
from pose.draw import draw_analysis
from pose.models import BACKEND_NAMES, DEFAULT_BACKEND, DETECTOR_ASSETS, PoseBackend, backend_spec, load_pose_backend
from pose.privacy import Regions, SequenceMosaic
from pose.ticks import sample_ticks, tick_count, tick_time
from pose.tracking import PersonTracker, main_person_index
from pose.types import Detections, FrameAnalysis, Poses

if TYPE_CHECKING:
    from pose.models.detector import PersonDetector

log = logging.getLogger(__name__)

DETECT_INTERVAL_S = 0.5  # offline person-detector cadence; boxes are interpolated in between


@dataclass(frozen=True)
class Models:
    """The loaded networks, shared by every analyzer in the process (TensorFlow sessions are thread-safe)."""

    pose: PoseBackend
    detector: PersonDetector


def load_models(
    data_dir: Path = assets.DATA_DIR, pose_size: tuple[int, int] | None = None, pose: str = DEFAULT_BACKEND
) -> Models:
    """Load the person detector and the pose backend named `pose` (one of BACKEND_NAMES), fetching them if needed.

    pose_size: the network input (width, height) of a backend whose size may be chosen (tf-pose), None for its
    default; the MoveNet models have their own.
    """
    from pose.models.detector import PersonDetector

    assets.ensure((*DETECTOR_ASSETS, *backend_spec(pose).assets), data_dir)  # a bad name fails before any fetch
    pose_backend = load_pose_backend(pose, data_dir, pose_size)
    return Models(pose=pose_backend, detector=PersonDetector(DETECTOR_ASSETS[0].path(data_dir)))


class ModelCatalog:
    """The pose backends a server offers, sharing one person detector: `default` is loaded up front, any other
    on its first use (with TensorFlow's first run, taken here rather than on a user's first tick), then kept.
    Thread-safe.

    load_pose: loads a backend by name (None: only the default is offered).
    """

    def __init__(self, default: Models, load_pose: Callable[[str], PoseBackend] | None = None) -> None:
        self.default = default
        self._load_pose = load_pose
        self._loaded = {default.pose.name: default}
        self._lock = threading.Lock()

    @property
    def names(self) -> tuple[str, ...]:
        """The backends offered, the default first."""
        others = BACKEND_NAMES if self._load_pose is not None else ()
        return (self.default.pose.name, *(n for n in others if n != self.default.pose.name))

    def resolve(self, name: str | None) -> str:
        """`name`, or the default's for None; ValueError (naming the backends offered) for one not offered."""
        name = name or self.default.pose.name
        if name not in self.names:
            raise ValueError(f"unknown pose backend {name[:40]!r}; this server offers {', '.join(self.names)}")
        return name

    def get(self, name: str | None = None) -> Models:
        """The models with pose backend `name` (the default for None), loading it if needed: call from a worker
        thread. ValueError for a backend not offered."""
        name = self.resolve(name)
        loaded = self._loaded.get(name)
        if loaded is not None:  # no lock: a backend being loaded must not hold up sessions on the others
            return loaded
        with self._lock:
            if name not in self._loaded and self._load_pose is not None:
                log.info("loading the %s pose backend", name)
                models = Models(self._load_pose(name), self.default.detector)
                warm_up(models)
                self._loaded[name] = models
            return self._loaded[name]


def warm_up(models: Models, size: tuple[int, int] = (640, 480)) -> None:
    """Run the networks once: TensorFlow's first run of a graph is slow (graph optimisation, oneDNN kernels), and
    it belongs here rather than in a user's first tick."""
    started = time.perf_counter()
    FrameAnalyzer(models).analyze(np.zeros((size[1], size[0], 3), np.uint8))
    log.info("%s warmed up in %.2f s", models.pose.name, time.perf_counter() - started)


class FrameAnalyzer:
    """Analyses the frames of one video or one live session in order.

    It keeps what carries from one tick to the next: track ids, and the main dancer, which single-person
    backends crop around on the next tick.
    """

    def __init__(self, models: Models) -> None:
        self.models = models
        self._tracker = PersonTracker()
        self._previous: Poses | None = None

    def analyze(self, image_bgr: np.ndarray, people: Detections | None = None) -> FrameAnalysis:
        """image_bgr: (h, w, 3) uint8; `people` are person boxes if already known (else the detector runs).

        Returns the people with the main dancer first; `timings` in seconds per stage.
        """
        clock = _Stopwatch()
        if people is None:
            people = self.models.detector.detect(image_bgr)
            clock.lap("ssd_forward")
        output = self.models.pose.forward(image_bgr, people, self._previous)
        clock.lap("pose_forward")
        poses = self.models.pose.decode(output)
        main = main_person_index(poses, people)
        if main is not None:
            poses = poses.take([main, *(i for i in range(len(poses)) if i != main)])
        ids = self._tracker.update(poses)
        self._previous = poses.take([0]) if len(poses) else None
        clock.lap("postprocess")
        h, w = image_bgr.shape[:2]
        return FrameAnalysis(poses, ids, people, w, h, timings=clock.laps)


class _Stopwatch:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._last
        self._last = now

    def restart(self) -> None:
        """Start the next lap now, leaving the time since the last lap uncounted (it was timed elsewhere)."""
        self._last = time.perf_counter()


def _add(totals: dict[str, float], laps: dict[str, float]) -> None:
    for name, seconds in laps.items():
        totals[name] = totals.get(name, 0.0) + seconds


@dataclass(frozen=True)
class ExtractResult:
    ticks: int
    found: int  # ticks where a main dancer was found
    seconds: float
    timings: dict[str, float]  # summed over ticks, seconds
    mosaicked: tuple[Regions, ...] = ()  # per annotated frame, the regions its faces were mosaicked in


Progress = Callable[[int, int], None]


def _flipped(image: np.ndarray) -> np.ndarray:
    """The frame flipped left to right."""
    return np.ascontiguousarray(image[:, ::-1])


def extract_video(
    video: Path,
    fps: float,
    out_csv: Path,
    models: Models,
    annotated: Path | None = None,
    progress: Progress | None = None,
    detect_interval_s: float = DETECT_INTERVAL_S,
    mirrored: bool = False,
    mosaic: bool = True,
) -> ExtractResult:
    """Write the keypoint CSV of `video` sampled at `fps` ticks per second (and optionally an annotated MP4).

    The ticks are those of `analyze_ticks` (mirrored: see there). With `mosaic`, faces in the annotated MP4 are
    mosaicked over the skeletons (`pose.privacy`; each frame waits for the ticks that decide its boxes). Outputs
    appear only when the whole video was processed; on any error nothing is left behind.
    """
    from pose.media.video import AnnotatedWriter, probe_video

    info = probe_video(video)
    total = tick_count(info.duration_s, fps)
    clock = _Stopwatch()
    found = done = 0
    started = time.perf_counter()
    writer = AnnotatedWriter(annotated, info, fps) if annotated else None
    faces = SequenceMosaic() if writer and mosaic else None
    written = 0

    def write(images: list[np.ndarray]) -> None:
        nonlocal written
        for image in images:
            assert writer is not None
            writer.write(written, image)
            written += 1

    try:
        with atomic_output(out_csv) as partial, partial.open("w", newline="") as stream:
            csv_writer = KeypointCsvWriter(stream)
            for k, image, analysis in analyze_ticks(video, fps, models, detect_interval_s, clock, mirrored):
                csv_writer.append(k, float(tick_time(k, fps)), analysis)
                clock.lap("csv")
                if writer:
                    drawn, t = draw_analysis(image, analysis), float(tick_time(k, fps))
                    if faces is None:
                        write([drawn])
                    else:
                        write(faces.tick(t, analysis) + faces.frame(t, drawn))
                    clock.lap("draw_encode")
                found += len(analysis.poses) > 0
                done += 1
                if progress:
                    progress(done, total)
            if writer:
                write(faces.finish() if faces else [])
                writer.close()
    except BaseException:
        if writer:
            writer.abort()
        raise
    regions = tuple(faces.regions) if faces else ()
    return ExtractResult(done, found, time.perf_counter() - started, clock.laps, regions)


def analyze_ticks(
    video: Path,
    fps: float,
    models: Models,
    detect_interval_s: float = DETECT_INTERVAL_S,
    clock: _Stopwatch | None = None,
    mirrored: bool = False,
) -> Generator[tuple[int, np.ndarray, FrameAnalysis], None, None]:
    """(k, BGR image, analysis) for every tick k = 0..K-1 of `video` at `fps` (pose.ticks: K = ceil(D · F), the
    frame on screen at k / F), in order; VideoError at the end when fewer ticks could be decoded.

    The person detector runs every `detect_interval_s` seconds of video and its boxes are interpolated between
    runs (they only pick the main dancer and are drawn). `clock` gets the decode and model laps. mirrored:
    analyse every frame flipped left to right and give the result flipped back (`FrameAnalysis.mirrored`): the
    same video in the same coordinates, seen by the models a second time through other pixels
    (`pose.calibration` measures a match by it).
    """
    from pose.media.video import VideoError, iter_frames, probe_video

    info = probe_video(video)
    total = tick_count(info.duration_s, fps)
    analyzer = FrameAnalyzer(models)
    clock = clock or _Stopwatch()

    def detect(image: np.ndarray) -> Detections:
        clock.lap("decode")
        found = models.detector.detect(image)
        clock.lap("ssd_forward")
        return found

    images: Iterator[tuple[int, np.ndarray]] = (
        (k, frame.to_ndarray(format="bgr24")) for k, frame in sample_ticks(iter_frames(video), fps, total)
    )
    if mirrored:
        images = ((k, _flipped(image)) for k, image in images)
    every = max(1, round(detect_interval_s * fps))
    done = 0
    for k, image, people in detect_every(images, total, every, detect):
        clock.lap("decode")  # demux + decode + colour conversion since the previous lap
        analysis = analyzer.analyze(image, people)
        if mirrored:
            analysis, image = analysis.mirrored(), _flipped(image)
        clock.restart()
        _add(clock.laps, analysis.timings)
        done += 1
        yield k, image, analysis
    if done != total:
        raise VideoError(f"{video}: decoded {done} of {total} ticks; the file is damaged")
