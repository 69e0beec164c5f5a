"""One live dance session, without I/O: which webcam frame scores which dancer tick, the one-slot mailbox
in front of the analyzer, scoring, and the session's rows and scores. Time is passed in (`now`, seconds of
any monotonic clock); the asyncio/aiortc shell in `stream.live` supplies `loop.time()` and the threads.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from pose.calibration import Calibration
from pose.csvio import CSV_COLUMNS, Row, as_written, keypoint_rows, main_dancer_arrays, read_keypoints_csv
from pose.judge import Judge
from pose.limbs import Limb
from pose.moves import Move, Tier, fixed_moves
from pose.parts import NUM_PARTS, BodyPart
from pose.scorer import Latency, MoveVerdict, TickVerdict
from pose.scoring import backend_mismatch
from pose.ticks import detector_every, tick_time
from pose.types import Detections, FrameAnalysis, Poses
from stream.clock import ReferenceClock, TickSampler
from stream.csvsafe import csv_text
from stream.protocol import (
    MoveMessage,
    PoseMessage,
    ScoreMessage,
    ServerMessage,
    StatsMessage,
    move_message,
    pose_message,
    score_message,
    stats_message,
)
from stream.stages import StageClock

F = TypeVar("F")  # a webcam frame, opaque here
SCORE_COLUMNS = ("tick", "time_s", "score", "raw", "worst", "limb", "move")
SCORE_TEXT_COLUMNS = ("worst", "limb")  # the other columns of the CSVs are numbers (stream.csvsafe checks them)
MOVE_COLUMNS = ("move", "start_s", "end_s", "tier", "score", "limb", "offset_ms")
MOVE_TEXT_COLUMNS = ("tier", "limb")
ANNOTATION_MAX_AGE_S = 1.0  # an older skeleton is no longer where the user is; show the plain frame


Detect = Callable[[np.ndarray], Detections]


class Analyzer(Protocol):
    def analyze(self, image_bgr: np.ndarray, people: Detections | None = None) -> FrameAnalysis: ...


@dataclass(frozen=True)
class DancerPoses:
    """The dancer's main person at every reference tick, and what scoring needs of the reference.

    xy: (K, 18, 2) float32 normalised x, y, NaN where missing; confidence: (K, 18) float32, 0 where missing.
    fps: reference ticks per second; aspect: the reference video's width / height; pose: the backend that
    extracted them (None if not recorded). calibration: the reference's (`pose.calibration`), None when it has
    not been computed yet (then the raw similarity, uncalibrated); moves: the reference's cut (`pose.moves`),
    None for fixed windows.
    """

    xy: npt.NDArray[np.float32]
    confidence: npt.NDArray[np.float32]
    fps: float
    aspect: float
    pose: str | None = None
    calibration: Calibration | None = None
    moves: tuple[Move, ...] | None = None

    def __post_init__(self) -> None:
        k = len(self.xy)
        if self.xy.shape != (k, NUM_PARTS, 2) or self.confidence.shape != (k, NUM_PARTS):
            raise ValueError(f"need xy (K, 18, 2) and confidence (K, 18), got {self.xy.shape}, {self.confidence.shape}")
        if self.calibration is not None and len(self.calibration) != k:
            raise ValueError(f"the calibration has {len(self.calibration)} ticks, the keypoints {k}")

    @property
    def ticks(self) -> int:
        return len(self.xy)

    def scoring(self) -> tuple[Calibration, list[Move]]:
        """(calibration, moves) for the scorer: no calibration and fixed windows where the reference has none
        yet."""
        calibration = self.calibration if self.calibration is not None else Calibration.identity(self.ticks)
        moves = list(self.moves) if self.moves is not None else fixed_moves(self.ticks, self.fps)
        return calibration, moves

    @classmethod
    def from_csv(
        cls,
        path: Path,
        fps: float,
        aspect: float,
        pose: str | None = None,
        calibration: Calibration | None = None,
        moves: list[Move] | None = None,
    ) -> DancerPoses:
        """Read a reference CSV; its person-0 ticks must be exactly 0..K-1."""
        ticks, xy, confidence = main_dancer_arrays(read_keypoints_csv(path))
        if not np.array_equal(ticks, np.arange(len(ticks))):
            raise ValueError(f"{path}: person-0 ticks are not 0..{len(ticks) - 1}")
        cut = None if moves is None else tuple(moves)
        return cls(xy.astype(np.float32), confidence.astype(np.float32), fps, aspect, pose, calibration, cut)


@dataclass(frozen=True)
class TickScore:
    """One processed tick: `tick` on the reference timeline at `time_s` = tick / fps; score 0..100 calibrated,
    raw 0..100 (the pose's similarity alone, uncalibrated); worst: the user's part furthest off; limb: the
    user's limb furthest off; move: the reference move the tick is in."""

    tick: int
    time_s: float
    score: float
    raw: float = 0.0
    worst: BodyPart | None = None
    limb: Limb | None = None
    move: int | None = None

    @classmethod
    def of(cls, verdict: TickVerdict, time_s: float) -> TickScore:
        return cls(verdict.tick, time_s, verdict.score, verdict.raw, verdict.part, verdict.worst, verdict.move)

    def message(self) -> ScoreMessage:
        """The `score` message on the control channel."""
        worst, limb = _key(self.worst), _key(self.limb)
        return score_message(self.tick, self.time_s, self.score, worst, self.raw, limb, self.move)

    def csv_row(self) -> list[str]:
        move = "" if self.move is None else str(self.move)
        worst, limb = _key(self.worst) or "", _key(self.limb) or ""
        return [str(self.tick), f"{self.time_s:.6g}", f"{self.score:.2f}", f"{self.raw:.2f}", worst, limb, move]


def _key(value: BodyPart | Limb | None) -> str | None:
    return None if value is None else value.key


@dataclass(frozen=True)
class MoveScore:
    """A move's final verdict: reference times (s), tier, 0..100 score, limb most off, timing (ms, + = late)."""

    move: int
    start_s: float
    end_s: float
    tier: Tier
    score: float
    limb: Limb | None
    offset_ms: int | None

    @classmethod
    def of(cls, verdict: MoveVerdict, fps: float) -> MoveScore:
        rate = Fraction(fps).limit_denominator(100_000)
        start, end = float(tick_time(verdict.move.start, rate)), float(tick_time(verdict.move.end, rate))
        offset = None if verdict.offset_ms is None else round(verdict.offset_ms)
        return cls(verdict.move.index, start, end, verdict.tier, verdict.score, verdict.worst, offset)

    def message(self) -> MoveMessage:
        limb = _key(self.limb)
        return move_message(self.move, self.start_s, self.end_s, self.tier.value, self.score, limb, self.offset_ms)

    def csv_row(self) -> list[str]:
        offset = "" if self.offset_ms is None else str(self.offset_ms)
        limb = _key(self.limb) or ""
        start, end = f"{self.start_s:.6g}", f"{self.end_s:.6g}"
        return [str(self.move), start, end, self.tier.value, f"{self.score:.2f}", limb, offset]


@dataclass(frozen=True)
class TickResult:
    """What the analyzer thread hands back: the tick's analysis (the main dancer's keypoints as the model gave
    them, for the CSV), the same with them smoothed (`shown`, drawn and scored), its score, the moves it
    completed, the latency estimate after it, the time it took (s) and that time by stage (stream.stages)."""

    tick: int
    analysis: FrameAnalysis
    score: TickScore
    seconds: float
    shown: FrameAnalysis | None = None
    moves: tuple[MoveScore, ...] = ()
    latency: Latency | None = None
    stages: tuple[tuple[str, float], ...] = ()

    def messages(self, keypoints: bool = False) -> list[ServerMessage]:
        """The tick's `score` message, then a `move` message per move it completed; with `keypoints`, its `pose`
        message first."""
        scored: list[ServerMessage] = [self.score.message(), *(m.message() for m in self.moves)]
        return [self.pose_message(), *scored] if keypoints else scored

    def pose_message(self) -> PoseMessage:
        """The main dancer as shown (smoothed), or all parts None when nobody was found."""
        poses = (self.shown or self.analysis).poses
        keypoints: list[list[float] | None] = [None] * NUM_PARTS
        if len(poses):
            for part, ((x, y), c) in enumerate(zip(poses.xy[0].tolist(), poses.confidence[0].tolist(), strict=True)):
                if math.isfinite(x) and math.isfinite(y):
                    keypoints[part] = [round(x, 4), round(y, 4), round(c, 3)]
        return pose_message(self.tick, self.score.time_s, keypoints, _key(self.score.limb))


class ArrivalSmoother:
    """Arrival times without the receiver's scheduling jitter.

    A frame's sender timestamp says when it was captured; the least-delayed frame of the last `window` seconds
    gives the offset between the two clocks, and each frame is placed at its timestamp plus that offset (never
    later than its real arrival). Frames that come in a burst, after a stalled decoder thread or a busy event
    loop, so keep their capture spacing, and no tick is passed over just because the server was busy. A jump of
    more than `max_jump` s against that offset (a stream restart, a timestamp wrap, a long stall) restarts it.
    """

    def __init__(self, window: float = 2.0, max_jump: float = 1.0) -> None:
        self.window = window
        self.max_jump = max_jump
        self._offsets: deque[tuple[float, float]] = deque()  # (arrival, arrival - capture), offsets increasing

    def smooth(self, capture_s: float | None, now: float) -> float:
        if capture_s is None:
            return now
        offset = now - capture_s
        offsets = self._offsets
        if offsets and abs(offset - offsets[0][1]) > self.max_jump:
            offsets.clear()
        while offsets and offsets[0][0] < now - self.window:
            offsets.popleft()
        while offsets and offsets[-1][1] >= offset:  # a monotonic deque: its head is the window's minimum
            offsets.pop()
        offsets.append((now, offset))
        return min(now, capture_s + offsets[0][1])


class RateMeter:
    """Events per second over the last `window` seconds."""

    def __init__(self, window: float = 2.0) -> None:
        self.window = window
        self._times: deque[float] = deque()

    def add(self, now: float) -> None:
        self._times.append(now)
        self._trim(now)

    def rate(self, now: float) -> float:
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        span = max(now - self._times[0], self._times[-1] - self._times[0])
        return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window:
            self._times.popleft()


def tick_step(reference_fps: float, fps: float | None) -> int:
    """Reference ticks per session tick: a session at F may sample every n-th tick of a reference at n * F."""
    if fps is None:
        return 1
    if not (math.isfinite(fps) and 0 < fps <= reference_fps):
        raise ValueError(f"fps must be in (0, {reference_fps:g}] (the reference's tick rate), got {fps}")
    step = round(reference_fps / fps)
    if abs(step * fps - reference_fps) > 1e-6 * reference_fps:
        raise ValueError(f"fps must divide the reference's {reference_fps:g} ticks/s evenly, got {fps}")
    return step


class LiveSession(Generic[F]):
    """Samples webcam frames onto dancer ticks and keeps what the analyzer made of them.

    Flow: `on_clock` for each clock message; `on_frame` for every webcam frame (it may fill the one-slot
    mailbox, replacing an unprocessed tick, which then counts as skipped); the shell takes the mailbox with
    `take_pending`, runs `process` in a worker thread, and hands the result to `record` (or the tick to `fail`).
    Only `process` and `detect_people` may run off the shell's thread, each one at a time.
    """

    def __init__(
        self,
        dancer: DancerPoses,
        analyzer: Analyzer,
        fps: float | None = None,
        mirror: bool = True,
        detect: Detect | None = None,
        pose: str | None = None,
    ) -> None:
        """`detect`: the person detector; given, it is kept off the tick path: `process` runs it only while no
        boxes are held (the first tick), and the shell runs it in the background on its newest frame whenever
        `detection_due` says so (every `DETECT_INTERVAL_S` of reference time), handing the boxes to `set_boxes`;
        the ticks in between use the boxes held (they only pick the main dancer and are where a single-person
        backend crops). Without it the analyzer detects on every tick. `pose`: the name of the analyzer's pose
        backend; `warnings` says when it is not the one that placed the dancer's joints."""
        self.dancer = dancer
        self.analyzer = analyzer
        self.pose = pose
        mismatch = backend_mismatch(dancer.pose, pose)
        self.warnings: list[str] = [mismatch] if mismatch else []
        self.detect = detect
        self.mirror = mirror
        self.step = tick_step(dancer.fps, fps)
        self.fps = dancer.fps / self.step
        self.clock = ReferenceClock()
        self.sampler = TickSampler(self.fps, -(-dancer.ticks // self.step))
        self._rows: dict[int, Row] = {}  # by reference tick: the latest pass's
        self._scores: dict[int, TickScore] = {}
        self.processed = 0  # ticks analysed and recorded, every pass counted
        self.errors = 0
        self.frames = 0
        self.webcam_rate = RateMeter()
        self.arrivals = ArrivalSmoother()
        self.inference_s = 0.0  # moving average
        self.stages = StageClock()
        self._last_tick: int | None = None  # the newest processed reference tick
        self._pending: tuple[int, F] | None = None
        self._latest: tuple[FrameAnalysis, float] | None = None
        self._boxes: tuple[int, Detections] | None = None  # (reference tick, boxes) of the last detector run
        self._keypoints_text: str | None = None  # keypoints_csv() once the session has ended (see `finish`)
        calibration, moves = dancer.scoring()
        self.judge: Judge | None = Judge(
            dancer.xy, dancer.confidence, dancer.aspect, dancer.fps, calibration, moves, mirror=mirror
        )
        self.moves: dict[int, MoveScore] = {}  # by move index: the latest final verdict
        self.latency: Latency | None = None
        self._limb: Limb | None = None

    # --- input

    def on_clock(self, t_ref: float, playing: bool, now: float, rate: float | None = None) -> None:
        if self.clock.update(t_ref, playing, now, rate):
            self.sampler.note_seek()

    def on_frame(self, frame: F, now: float, capture_s: float | None = None) -> bool:
        """Sample one webcam frame arriving at `now` with its sender timestamp `capture_s` (s, any origin, None if
        unknown); True when it was put in the mailbox for a tick."""
        self.frames += 1
        self.webcam_rate.add(now)
        j = self.sampler.take(self.clock.ref_time(self.arrivals.smooth(capture_s, now)))
        if j is None:
            return False
        if self._pending is not None:
            self.sampler.mark_skipped(self._pending[0])
        self._pending = (j, frame)
        return True

    def take_pending(self) -> tuple[int, F] | None:
        """(reference tick, frame) to process next, emptying the mailbox."""
        pending, self._pending = self._pending, None
        return None if pending is None else (pending[0] * self.step, pending[1])

    # --- the analyzer's thread

    def process(self, tick: int, image_bgr: np.ndarray, convert_s: float = 0.0) -> TickResult:
        """Analyse the frame of reference tick `tick` and score it (blocking; call from a worker thread).
        `convert_s`: what making `image_bgr` took the shell, counted in the tick's time."""
        started = time.perf_counter()
        people, detect_s = self._people(tick, image_bgr)
        analysis = self.analyzer.analyze(image_bgr, people)
        analysed = time.perf_counter()
        time_s = float(tick_time(tick, Fraction(self.dancer.fps).limit_denominator(100_000)))
        found = len(analysis.poses) > 0
        xy, conf = as_written(analysis.poses.xy[0], analysis.poses.confidence[0]) if found else (None, None)
        if self.judge is None:
            raise RuntimeError("the session has ended")
        smooth, verdict = self.judge.add(tick, time_s, xy, conf, analysis.width / analysis.height)
        shown = _with_main_pose(analysis, smooth) if found else analysis
        moves = tuple(MoveScore.of(v, self.dancer.fps) for v in verdict.moves_done)
        score = TickScore.of(verdict, time_s)
        done = time.perf_counter()
        detect_s += analysis.timings.get("ssd_forward", 0.0)  # the analyzer's own, without `detect`
        pose_s = analysed - started - detect_s
        stages = (("convert", convert_s), ("detect", detect_s), ("pose", pose_s), ("score", done - analysed))
        seconds = convert_s + done - started
        return TickResult(tick, analysis, score, seconds, shown, moves, verdict.latency, stages)

    def _people(self, tick: int, image_bgr: np.ndarray) -> tuple[Detections | None, float]:
        """The boxes for a tick and the seconds it took to get them (only the first tick runs the detector)."""
        if self.detect is None:
            return None, 0.0
        boxes = self._boxes
        if boxes is None:
            started = time.perf_counter()
            boxes = self._boxes = (tick, self.detect(image_bgr))
            return boxes[1], time.perf_counter() - started
        return boxes[1], 0.0

    # --- the detector, off the tick path (the shell runs `detect_people` in the background)

    def detection_due(self) -> bool:
        """Whether the held boxes are older than `DETECT_INTERVAL_S` of reference time (or from a later tick:
        a seek back), counted up to the newest processed tick."""
        return self._last_tick is not None and self._boxes_stale_at(self._last_tick)

    def _boxes_stale_at(self, tick: int) -> bool:
        """Whether the held boxes (if any) are `detector_every` ticks older than `tick`, or from a later tick."""
        if self.detect is None or self._boxes is None:
            return False
        return not 0 <= tick - self._boxes[0] < detector_every(self.dancer.fps)

    def detect_people(self, image_bgr: np.ndarray) -> tuple[Detections, float]:
        """Run the detector on a frame (blocking; call from a worker thread): its boxes and the seconds it took."""
        if self.detect is None:
            raise RuntimeError("the session has no person detector")
        started = time.perf_counter()
        boxes = self.detect(image_bgr)
        return boxes, time.perf_counter() - started

    def process_inline(self, tick: int, image_bgr: np.ndarray, now: float) -> TickResult:
        """`process` and `record` for a shell with no background (a recorded take): the detector runs inline, on
        this tick's own frame, whenever the held boxes are `detector_every` ticks older than it (or from a later
        tick), so at 10 ticks/s on ticks 0, 5, 10, ... as offline extraction."""
        if self._boxes_stale_at(tick):
            self._hold_boxes(tick, *self.detect_people(image_bgr))
        return self.record(self.process(tick, image_bgr), now)

    def set_boxes(self, boxes: Detections, seconds: float) -> None:
        """Boxes found in the background (on the shell's thread): the next ticks use them; they count as found
        at the newest processed tick."""
        self._hold_boxes(self._last_tick or 0, boxes, seconds)

    def _hold_boxes(self, tick: int, boxes: Detections, seconds: float) -> None:
        self._boxes = (tick, boxes)
        self.stages.add("detect", seconds)

    # --- results

    def record(self, result: TickResult, now: float) -> TickResult:
        """Keep a processed tick's results (on the shell's thread); returns it, for its `messages()`."""
        self._rows[result.tick] = keypoint_rows(result.tick, result.score.time_s, result.analysis)[0]
        self._scores[result.tick] = result.score
        self.processed += 1
        for move in result.moves:
            self.moves[move.move] = move  # a move danced again (a loop) keeps its latest verdict
        if result.latency is not None:
            self.latency = result.latency
        self._latest = (result.shown or result.analysis, now)
        self._limb = result.score.limb
        self.inference_s = result.seconds if not self.inference_s else 0.8 * self.inference_s + 0.2 * result.seconds
        self.stages.tick(result.seconds)
        for stage, seconds in result.stages:
            if seconds > 0 or stage != "detect":
                self.stages.add(stage, seconds)
        self._last_tick = result.tick
        return result

    def fail(self, tick: int) -> None:
        """The analyzer raised on reference tick `tick`: count it, and count the tick as skipped."""
        self.errors += 1
        self.sampler.mark_skipped(tick // self.step)

    def annotation(self, now: float, max_age: float = ANNOTATION_MAX_AGE_S) -> tuple[FrameAnalysis, Limb | None] | None:
        """The newest analysis to draw on outgoing frames (the user's keypoints smoothed) and the limb that was
        off in its verdict, unless it is older than `max_age` s."""
        if self._latest is None or now - self._latest[1] > max_age:
            return None
        return self._latest[0], self._limb

    @property
    def duration_s(self) -> float:
        """The reference's length: its ticks over its tick rate."""
        return self.dancer.ticks / self.dancer.fps

    @property
    def scores(self) -> list[TickScore]:
        """Each scored tick's latest score (a tick danced again in a later pass keeps the later one), in tick
        order."""
        return [self._scores[t] for t in sorted(self._scores)]

    def stats(self, now: float, output_fps: float) -> StatsMessage:
        """The `stats` message: ticks processed/skipped so far, returned-track and webcam frame rates, tick rate
        and mean inference time."""
        skipped, rate = self.sampler.skipped, self.webcam_rate.rate(now)
        latency_ms, confident = self.latency_estimate()
        return stats_message(
            *(self.processed, skipped, self.errors, output_fps, rate, self.fps, self.inference_s),
            *(latency_ms, confident, self.stages.totals_ms()),
        )

    def latency_estimate(self) -> tuple[int | None, bool]:
        """The user's estimated lag behind the reference in ms (positive: late; None before any comparable
        tick) and whether the scorer trusts it. Worked out from reference ticks, not wall time."""
        if self.latency is None or (self.latency.agreement == 0 and not self.latency.confident):
            return None, False
        return round(self.latency.ms), self.latency.confident

    def tier_counts(self) -> dict[str, int]:
        """How many of the moves given a verdict earned each tier (every tier present, best first)."""
        counts = {tier.value: 0 for tier in Tier}
        for move in self.moves.values():
            counts[move.tier.value] += 1
        return counts

    def finish(self) -> None:
        """The session has ended: keep its keypoints as CSV text, and drop the last analysis. Ended sessions are
        kept `retention_s` for their downloads, and a row as a list of strings takes about ten times the memory
        of the same row as text (docs/reliability.md, "Memory")."""
        self._keypoints_text = self.keypoints_csv()
        self._rows = {}
        self._latest = self._boxes = None
        self.judge = None  # the reference's moments, per session: ~1 MB a session for the retention time

    def keypoints_csv(self) -> str:
        """The offline schema, one person-0 row per processed tick (its latest pass), in tick order."""
        if self._keypoints_text is not None:
            return self._keypoints_text
        return csv_text(CSV_COLUMNS, [self._rows[t] for t in sorted(self._rows)])

    def scores_csv(self) -> str:
        rows = [s.csv_row() for s in self.scores]
        return csv_text(SCORE_COLUMNS, rows, text_columns=SCORE_TEXT_COLUMNS)

    def moves_csv(self) -> str:
        """One row per move given a final verdict (its latest), in move order."""
        rows = [self.moves[m].csv_row() for m in sorted(self.moves)]
        return csv_text(MOVE_COLUMNS, rows, text_columns=MOVE_TEXT_COLUMNS)


def _with_main_pose(analysis: FrameAnalysis, xy: npt.NDArray[np.float64]) -> FrameAnalysis:
    """`analysis` with the main dancer's keypoints replaced by `xy` (18, 2), NaN where missing."""
    poses = analysis.poses
    all_xy = poses.xy.copy()
    all_xy[0] = xy
    confidence = poses.confidence.copy()
    confidence[0] = np.where(np.isfinite(xy).all(axis=-1), confidence[0], 0.0)
    shown = Poses(all_xy.astype(np.float32), confidence, poses.score)
    return FrameAnalysis(shown, analysis.ids, analysis.detections, analysis.width, analysis.height, analysis.timings)
