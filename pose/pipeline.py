"""One tick's work (detect → pose → pick the main dancer → track), and the offline extraction built on it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np

from pose import assets
from pose.boxes import detect_every
from pose.csvio import KeypointCsvWriter, atomic_output
from pose.draw import draw_analysis
from pose.models import BACKEND_NAMES, DEFAULT_BACKEND, DETECTOR_ASSETS, PoseBackend, backend_spec, load_pose_backend
from pose.privacy import Regions, SequenceMosaic
from pose.ticks import DETECT_INTERVAL_S, detector_every, sample_ticks, tick_count, tick_time
from pose.tracking import PersonTracker, main_person_index
from pose.types import Detections, FrameAnalysis, Poses

if TYPE_CHECKING:
    from pose.models.detector import PersonDetector

log = logging.getLogger(__name__)


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

    def forget_dancer(self) -> None:
        """Forget the main dancer that the next tick would crop around (track ids are kept)."""
        self._previous = None


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


def video_ticks(video: Path, fps: float) -> int:
    """K, the number of ticks of `video` at `fps` (reads the container's header only)."""
    from pose.media.video import probe_video

    return tick_count(probe_video(video).duration_s, fps)


def analyze_ticks(
    video: Path,
    fps: float,
    models: Models,
    ticks: range | None = None,
    total: int | None = None,
    every: int | None = None,
    clock: _Stopwatch | None = None,
    mirrored: bool = False,
) -> Generator[tuple[int, np.ndarray, FrameAnalysis], None, None]:
    """(k, BGR image, analysis) for the ticks k in `ticks` (None: all) of `video` at `fps`, in order (pose.ticks:
    K = ceil(D · F) ticks, the frame on screen at k / F); VideoError at the end when fewer could be decoded.

    This is the whole of extraction's per-tick work, and it is defined so that any tick range that starts on a
    detector tick (k % every == 0) gives exactly what a run over the whole video gives there:
    - frames are picked by the exact tick rule (`pose.ticks.sample_ticks`) from a decode that starts at the
      keyframe before the range (`pose.media.video.iter_frames`);
    - the detector runs on detector ticks (every `every`, by default `detector_every(fps)`) and its boxes are
      interpolated between runs (`pose.boxes`; they only pick the main dancer and are drawn); a range also
      decodes and detects the detector tick just after it, which its last ticks interpolate towards;
    - single-person backends crop around the previous tick's dancer only within a detector interval: at every
      detector tick the crop starts afresh from that tick's boxes (else the whole frame). The crop state
      otherwise runs back through every box-less tick to the start of the video, so no bounded warm-up could
      rebuild it at a range start; cutting it where the detector gives fresh evidence makes every detector tick
      a clean boundary in every mode, at the cost of one whole-frame crop where the detector finds nobody.
    The ids in the analyses are from a tracker that starts with the range: callers that join ranges give ids
    with one `PersonTracker` over the whole video (`TickWriter`), which depends on the poses alone.

    mirrored: analyse every frame flipped left to right and give the result flipped back
    (`FrameAnalysis.mirrored`): the same video in the same coordinates, seen by the models a second time through
    other pixels (`pose.calibration` measures a match by it). `clock` gets the decode and model laps.
    """
    from pose.media.video import VideoError, iter_frames

    total = video_ticks(video, fps) if total is None else total
    ticks = range(total) if ticks is None else ticks
    every = detector_every(fps) if every is None else every
    if not ticks:
        return
    if ticks.start % every or ticks.step != 1 or ticks.stop > total:
        raise ValueError(f"tick range {ticks} must start on a detector tick (every {every}) and end by {total}")
    clock = clock or _Stopwatch()
    analyzer = FrameAnalyzer(models)
    extra = ticks.stop if ticks.stop < total else None  # the next detector run, which the last ticks need

    def detect(image: np.ndarray) -> Detections:
        clock.lap("decode")
        found = models.detector.detect(image)
        clock.lap("ssd_forward")
        return found

    stop = ticks.stop + (extra is not None)
    frames = sample_ticks(iter_frames(video, tick_time(ticks.start, fps)), fps, stop, ticks.start)
    images: Iterator[tuple[int, np.ndarray]] = ((k, frame.to_ndarray(format="bgr24")) for k, frame in frames)
    if mirrored:
        images = ((k, _flipped(image)) for k, image in images)
    done = 0
    for k, image, people in detect_every(images, total, every, detect):
        if k == extra:
            break
        clock.lap("decode")  # demux + decode + colour conversion since the previous lap
        if k % every == 0:
            analyzer.forget_dancer()
        analysis = analyzer.analyze(image, people)
        if mirrored:
            analysis, image = analysis.mirrored(), _flipped(image)
        clock.restart()
        _add(clock.laps, analysis.timings)
        done += 1
        yield k, image, analysis
    if done != len(ticks):
        raise VideoError(f"{video}: decoded {done} of the {len(ticks)} ticks from {ticks.start}; the file is damaged")


class TickWriter:
    """Writes ticks to a keypoint CSV in tick order, giving people ids with one tracker over the whole video."""

    def __init__(self, stream: TextIO, fps: float) -> None:
        self._csv = KeypointCsvWriter(stream)
        self._tracker = PersonTracker()
        self._fps = fps
        self.next_tick = 0

    def write(self, k: int, analysis: FrameAnalysis) -> FrameAnalysis:
        """Append tick k (which must be the next one); returns the analysis with the ids written."""
        if k != self.next_tick:
            raise ValueError(f"tick {k} written out of order (expected {self.next_tick})")
        tracked = replace(analysis, ids=self._tracker.update(analysis.poses))
        self._csv.append(k, float(tick_time(k, self._fps)), tracked)
        self.next_tick += 1
        return tracked


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

    The ticks are those of `analyze_ticks` (mirrored: see there), whose ranges joined give this same CSV byte for
    byte (`pose.batch`). With `mosaic`, faces in the annotated MP4 are mosaicked over the skeletons
    (`pose.privacy`; each frame waits for the ticks that decide its boxes). Outputs appear only when the whole
    video was processed; on any error nothing is left behind.
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
            ticks = TickWriter(stream, fps)
            every = detector_every(fps, detect_interval_s)
            for k, image, untracked in analyze_ticks(video, fps, models, None, total, every, clock, mirrored):
                analysis = ticks.write(k, untracked)
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
