"""The reference library: dancer videos the browser can play, their keypoint CSVs and metadata, and the
background jobs that build them.

Layout under `root` (one folder per reference, named by its id)::

    <id>/video.mp4       H.264/AAC, first frame at t = 0 (what the page plays)
    <id>/keypoints.csv   extracted from video.mp4 itself, so tick k is at media time k / fps of that file
    <id>/second_look.csv the models' second look at video.mp4 (every frame flipped and the keypoints flipped
                         back), what a match earns is measured by
    <id>/calibration.csv what chance and a match earn at each tick (pose.calibration), from the two CSVs
    <id>/cut.csv         the reference's moves (pose.moves: on the beats of its audio, else fixed windows)
    <id>/meta.json       ReferenceMeta; written last
    .building/<id>/      a reference being built; renamed to <id>/ when complete
    .uploads/            uploads being received

A reference exists once its folder is in place, so a crash mid-build never leaves a half reference listed.
References built before calibration and cuts existed (or with a calibration of an older layout) get both from a
background job (`ReferenceJobs.backfill`, at start-up); until then sessions on them score the raw similarity
with fixed 1 s moves.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import enum
import json
import logging
import re
import secrets
import shutil
import threading
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pose.calibration import (
    CALIBRATION_NAME,
    SECOND_LOOK_NAME,
    Calibration,
    calibration_of,
    read_calibration,
    write_calibration,
)
from pose.csvio import main_dancer_arrays, read_keypoints_csv
from pose.media.audio import AUDIO_RATE, read_audio
from pose.media.transcode import transcode_for_web
from pose.media.video import VideoError
from pose.moves import MOVES_NAME, Move, cut_moves, fixed_moves, read_moves, write_moves
from pose.pipeline import ModelCatalog, Models, Progress, extract_video
from pose.similarity import Moments
from pose.ticks import as_rate, tick_count

log = logging.getLogger(__name__)

VIDEO_NAME = "video.mp4"
CSV_NAME = "keypoints.csv"
META_NAME = "meta.json"
TRANSCODE_SHARE = 0.15  # of a job's progress bar; extraction takes the rest
_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


def new_id() -> str:
    """URL-safe, from 136 random bits, never starting with "-" (an id is also a command-line argument:
    `--reference -x…` would read as an option); what the rule leaves out costs 0.02 bits."""
    while (token := secrets.token_urlsafe(17)).startswith("-"):
        pass
    return token


def is_id(text: str) -> bool:
    """True for strings shaped like our ids (anything else cannot name a file under the library)."""
    return _ID.fullmatch(text) is not None


@dataclass(frozen=True)
class ReferenceMeta:
    """fps: ticks per second; duration_s: of video.mp4; ticks: rows of person 0 in the CSV; size in pixels;
    pose: the backend that extracted the keypoints (None for references built before it was recorded)."""

    id: str
    title: str
    fps: float
    duration_s: float
    ticks: int
    width: int
    height: int
    pose: str | None = None

    def summary(self) -> dict[str, Any]:
        """The entry of `GET /api/references`."""
        return {k: getattr(self, k) for k in ("id", "title", "fps", "duration_s", "ticks", "pose")}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReferenceMeta:
        return cls(
            id=str(data["id"]),
            title=str(data["title"]),
            fps=float(data["fps"]),
            duration_s=float(data["duration_s"]),
            ticks=int(data["ticks"]),
            width=int(data["width"]),
            height=int(data["height"]),
            pose=str(data["pose"]) if data.get("pose") is not None else None,
        )


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass
class Job:
    """One reference being built. `progress` (0..1) is written by the worker thread and read by the loop;
    a float attribute store is atomic under the GIL, which is all the sharing there is."""

    id: str
    reference: str
    title: str
    pose: str
    state: JobState = JobState.QUEUED
    progress: float = 0.0
    error: str | None = None
    session: str | None = None  # a recorded take being scored (stream.takes): the session it becomes

    def to_json(self) -> dict[str, Any]:
        found = {
            "state": str(self.state),
            "progress": round(self.progress, 4),
            "error": self.error,
            "reference": self.reference,
            "pose": self.pose,
        }
        return found if self.session is None else {**found, "session": self.session}


class RemoteExtraction(Protocol):
    """A build's keypoint extraction done elsewhere than in this process (stream.raybuilds), with backend `pose`:
    `extract` writes `out_csv` (the second look with `mirrored`) whole or not at all, calls `checkpoint` while
    it waits (which raises to stop it), and returns the ticks written."""

    @property
    def pose(self) -> str: ...

    def extract(
        self,
        video: Path,
        fps: float,
        out_csv: Path,
        progress: Progress,
        checkpoint: Callable[[], None],
        mirrored: bool = False,
    ) -> int: ...


class JobCancelled(Exception):
    """The server is shutting down; the half-built reference is removed."""


class ReferenceLibrary:
    """Reads and builds references under `root` (see the module docstring). Methods are synchronous."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.building = root / ".building"
        self.uploads = root / ".uploads"
        for folder in (root, self.building, self.uploads):
            folder.mkdir(parents=True, exist_ok=True)

    def clear_leftovers(self, keep: frozenset[Path] = frozenset(), stale_before: float | None = None) -> None:
        """Remove half-built references and uploads left by a previous run, except the paths in `keep` (the
        sources of jobs that resume, the folders of builds other servers sharing the library are running); with
        `stale_before` (UNIX s) only uploads last written before then (another server's upload being received is
        written to as it arrives)."""
        self.building.mkdir(parents=True, exist_ok=True)
        for folder in self.building.iterdir():
            if folder.resolve() not in keep:
                shutil.rmtree(folder, ignore_errors=True)
        for upload in self.uploads.iterdir():
            if upload.resolve() in keep:
                continue
            if stale_before is not None and _modified(upload) >= stale_before:
                continue
            if upload.is_dir():
                shutil.rmtree(upload, ignore_errors=True)
            else:
                upload.unlink(missing_ok=True)

    def list(self) -> list[ReferenceMeta]:
        """Complete references, oldest first."""
        found = []
        for meta_path in sorted(self.root.glob(f"*/{META_NAME}"), key=lambda p: p.stat().st_mtime):
            meta = self._read_meta(meta_path)
            if meta is not None:
                found.append(meta)
        return found

    def get(self, reference_id: str) -> ReferenceMeta | None:
        if not is_id(reference_id):
            return None
        return self._read_meta(self.root / reference_id / META_NAME)

    def video_path(self, reference_id: str) -> Path:
        return self.root / reference_id / VIDEO_NAME

    def csv_path(self, reference_id: str) -> Path:
        return self.root / reference_id / CSV_NAME

    def calibration_path(self, reference_id: str) -> Path:
        return self.root / reference_id / CALIBRATION_NAME

    def moves_path(self, reference_id: str) -> Path:
        return self.root / reference_id / MOVES_NAME

    def scoring(self, meta: ReferenceMeta) -> tuple[Calibration | None, builtins.list[Move] | None]:
        """The reference's calibration and moves, None for each not computed yet (or unreadable: logged)."""
        calibration: Calibration | None = None
        moves: builtins.list[Move] | None = None
        try:
            if self.calibration_path(meta.id).is_file():
                calibration = read_calibration(self.calibration_path(meta.id), meta.ticks)
            if self.moves_path(meta.id).is_file():
                moves = read_moves(self.moves_path(meta.id), meta.ticks)
        except (OSError, ValueError) as exc:
            log.warning("reference %s: unreadable calibration or moves (%s); scoring without them", meta.id, exc)
        return calibration, moves

    def moves_json(self, meta: ReferenceMeta) -> dict[str, Any]:
        """`GET /api/references/{id}/moves.json`: the moves in seconds of the reference, and how they were cut
        ("beats": on its music's beats; "fixed": windows of fixed length, also before the cut was computed)."""
        _, moves = self.scoring(meta)
        fixed = fixed_moves(meta.ticks, meta.fps)
        cut = moves if moves is not None else fixed
        source = "fixed" if cut == fixed else "beats"
        rate = as_rate(meta.fps)
        entries = [{"move": m.index, "start": float(m.start / rate), "end": float(m.end / rate)} for m in cut]
        return {"source": source, "moves": entries}

    def unscored(self) -> builtins.list[ReferenceMeta]:
        """References without a readable calibration of the current layout, their second look or their moves
        (built before these existed)."""
        return [m for m in self.list() if not self._scored(m)]

    def _scored(self, meta: ReferenceMeta) -> bool:
        folder = self.root / meta.id
        if not all((folder / name).is_file() for name in (SECOND_LOOK_NAME, MOVES_NAME)):
            return False
        try:
            read_calibration(folder / CALIBRATION_NAME, meta.ticks)
        except (OSError, ValueError):
            return False
        return True

    def add_scoring(self, meta: ReferenceMeta, models: Models, cancel: threading.Event | None = None) -> None:
        """Compute and write a complete reference's second look (with `models`, when it has none), calibration
        and moves (each file written whole, then renamed into place, so a reader never sees half of one)."""
        folder = self.root / meta.id
        partial = folder / ".scoring"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        try:
            names = [CALIBRATION_NAME, MOVES_NAME]
            if not (folder / SECOND_LOOK_NAME).is_file():
                second_look(folder / VIDEO_NAME, meta.fps, partial / SECOND_LOOK_NAME, models, cancel)
                names.append(SECOND_LOOK_NAME)
            looked = (partial if SECOND_LOOK_NAME in names else folder) / SECOND_LOOK_NAME
            aspect = meta.width / meta.height
            write_scoring(partial, folder / CSV_NAME, looked, folder / VIDEO_NAME, aspect, meta.fps, cancel)
            for name in names:
                (partial / name).replace(folder / name)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        log.info("reference %s: calibration and moves written", meta.id)

    def upload_path(self) -> Path:
        return self.uploads / f"{new_id()}.upload"

    def build(
        self,
        reference_id: str,
        source: Path,
        title: str,
        fps: float,
        models: Models | RemoteExtraction,
        progress: Job | None = None,
        cancel: threading.Event | None = None,
    ) -> ReferenceMeta:
        """Transcode `source`, extract its keypoints at `fps` (with `models` here, or remotely), and publish the
        reference (blocking, slow)."""
        folder = self.building / reference_id
        folder.mkdir(parents=True)
        try:

            def on_transcode(share: float) -> None:
                _checkpoint(cancel)
                if progress is not None:
                    progress.progress = TRANSCODE_SHARE * share

            info = transcode_for_web(source, folder / VIDEO_NAME, on_transcode)

            def on_extract(done: int, total: int) -> None:
                _checkpoint(cancel)
                if progress is not None:
                    progress.progress = TRANSCODE_SHARE + (1 - TRANSCODE_SHARE) * done / max(total, 1) / 2

            def on_second_look(done: int, total: int) -> None:
                on_extract(total + done, total)

            def checkpoint() -> None:
                _checkpoint(cancel)

            looked = folder / SECOND_LOOK_NAME
            if isinstance(models, Models):
                ticks = extract_video(info.path, fps, folder / CSV_NAME, models, progress=on_extract).ticks
                second_look(info.path, fps, looked, models, cancel, on_second_look)
                pose = models.pose.name
            else:
                ticks = models.extract(info.path, fps, folder / CSV_NAME, on_extract, checkpoint)
                models.extract(info.path, fps, looked, on_second_look, checkpoint, mirrored=True)
                pose = models.pose
            if ticks != tick_count(info.duration_s, fps):
                raise VideoError(f"extracted {ticks} ticks, expected {tick_count(info.duration_s, fps)}")
            meta = ReferenceMeta(
                id=reference_id,
                title=title,
                fps=fps,
                duration_s=round(float(info.duration_s), 6),
                ticks=ticks,
                width=info.width,
                height=info.height,
                pose=pose,
            )
            write_scoring(folder, folder / CSV_NAME, looked, folder / VIDEO_NAME, info.width / info.height, fps, cancel)
            (folder / META_NAME).write_text(json.dumps(asdict(meta), indent=2) + "\n")
            folder.rename(self.root / reference_id)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        log.info("reference %s (%r): %d ticks at %g/s by %s", reference_id, title, meta.ticks, fps, meta.pose)
        return meta

    def _read_meta(self, path: Path) -> ReferenceMeta | None:
        try:
            return ReferenceMeta.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: unreadable reference metadata: %s", path, exc)
            return None


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def second_look(
    video: Path,
    fps: float,
    out: Path,
    models: Models,
    cancel: threading.Event | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write `out`, the models' second look at `video` (`pose.calibration`)."""

    def on_frame(done: int, total: int) -> None:
        _checkpoint(cancel)
        if progress is not None:
            progress(done, total)

    extract_video(video, fps, out, models, progress=on_frame, mirrored=True)


def write_scoring(
    out: Path,
    keypoints: Path,
    looked: Path,
    video: Path,
    aspect: float,
    fps: float,
    cancel: threading.Event | None = None,
) -> None:
    """Write `out`/calibration.csv and `out`/cut.csv from a reference's keypoint CSV, second look CSV and video."""
    _, xy, conf = main_dancer_arrays(read_keypoints_csv(keypoints))
    moments = Moments.from_keypoints(xy, conf, aspect, fps)
    ticks, sxy, sconf = main_dancer_arrays(read_keypoints_csv(looked))
    if not np.array_equal(ticks, np.arange(len(xy))):
        raise ValueError(f"{looked}: its ticks are not the reference's 0..{len(xy) - 1}")
    _checkpoint(cancel)
    calibration = calibration_of(moments, Moments.from_keypoints(sxy, sconf, aspect, fps), fps)
    write_calibration(out / CALIBRATION_NAME, calibration)
    _checkpoint(cancel)
    write_moves(out / MOVES_NAME, cut_moves(len(xy), fps, read_audio(video), AUDIO_RATE))


def _checkpoint(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise JobCancelled("the server is shutting down")


def validate_fps(value: float) -> float:
    """A reference's tick rate: 0 < fps <= 60 (ValueError otherwise)."""
    as_rate(value)
    if value > 60:
        raise ValueError(f"fps must be at most 60, got {value}")
    return value


class ReferenceJobs:
    """Builds references one at a time on `executor` (a single worker keeps live inference responsive), each with
    the pose backend asked for (loaded from `models` on first use), or, given `remote` (a backend's name to its
    `RemoteExtraction`), with the extraction done there."""

    def __init__(
        self,
        library: ReferenceLibrary,
        models: ModelCatalog,
        executor: concurrent.futures.ThreadPoolExecutor,
        remote: Callable[[str], RemoteExtraction] | None = None,
    ) -> None:
        self.library = library
        self.models = models
        self.executor = executor
        self.remote = remote
        self.jobs: dict[str, Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._cancel = threading.Event()
        self.scored: list[str] = []  # references given calibration and moves by `backfill`, in order

    def submit(self, source: Path, title: str, fps: float, remove_source: bool, pose: str | None = None) -> Job:
        """Queue a build of `source` with pose backend `pose` (None: the default); with `remove_source` the file is
        deleted afterwards (an upload). ValueError for a backend the catalog does not offer."""
        job = Job(id=new_id(), reference=new_id(), title=title, pose=self.models.resolve(pose))
        return self.enqueue(job, source, fps, remove_source)

    def enqueue(self, job: Job, source: Path, fps: float, remove_source: bool) -> Job:
        """Queue `job` as it is (a new one from `submit`, or one resumed after a restart)."""
        self.jobs[job.id] = job
        task = asyncio.create_task(self._run(job, source, fps, remove_source), name=f"reference-job-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id) if is_id(job_id) else None

    @property
    def cancelled(self) -> threading.Event:
        """Set when the server shuts down: work on the job worker stops at its next checkpoint."""
        return self._cancel

    def track(self, job: Job, work: Coroutine[Any, Any, None]) -> Job:
        """Other work shown as a job (a recorded take being scored, stream.takes): `GET /api/jobs/{id}` follows
        it, and it is cancelled at shutdown. Kept in memory only: a restart loses it (its user sends it again)."""
        self.jobs[job.id] = job
        task = asyncio.create_task(work, name=f"job-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def backfill(self) -> asyncio.Task[None] | None:
        """Compute the calibration and moves of every reference that lacks them, one after the other on the job
        worker (after the builds queued before it); None when none does."""
        todo = self.library.unscored()
        if not todo:
            return None
        task = asyncio.create_task(self._backfill(todo), name="reference-backfill")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _backfill(self, todo: list[ReferenceMeta]) -> None:
        loop = asyncio.get_running_loop()
        for meta in todo:
            try:
                models = await loop.run_in_executor(self.executor, self._models_of, meta)
                await loop.run_in_executor(self.executor, self.library.add_scoring, meta, models, self._cancel)
            except JobCancelled:
                return
            except Exception:
                log.exception("reference %s: computing its calibration and moves failed", meta.id)
            self.scored.append(meta.id)

    def _models_of(self, meta: ReferenceMeta) -> Models:
        """The models that extracted `meta` (the default when the server no longer offers its backend)."""
        return self.models.get(meta.pose if meta.pose in self.models.names else None)

    def pending(self) -> list[Job]:
        return [job for job in self.jobs.values() if job.state in (JobState.QUEUED, JobState.RUNNING)]

    async def close(self) -> None:
        """Stop the running build at its next frame and drop the queued ones."""
        self._cancel.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, job: Job, source: Path, fps: float, remove_source: bool) -> None:
        future = asyncio.get_running_loop().run_in_executor(self.executor, self._build, job, source, fps)
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.gather(future, return_exceptions=True)  # let the worker notice the cancel flag
            remove_source = False  # cancelled by the shutdown: the job may resume at the next start
            raise
        except Exception as exc:
            job.state, job.error = JobState.FAILED, _user_message(exc, (source, self.library.root))
            log.warning("reference job %s failed: %s", job.id, exc, exc_info=not isinstance(exc, VideoError))
        else:
            job.state, job.progress = JobState.DONE, 1.0
        finally:
            if remove_source:
                source.unlink(missing_ok=True)

    def _build(self, job: Job, source: Path, fps: float) -> ReferenceMeta:
        _checkpoint(self._cancel)
        job.state = JobState.RUNNING
        models = self.remote(job.pose) if self.remote else self.models.get(job.pose)
        return self.library.build(job.reference, source, job.title, fps, models, job, self._cancel)


def _user_message(exc: Exception, paths: tuple[Path, ...]) -> str:
    if isinstance(exc, VideoError):
        return "not a usable video: " + video_error_reason(exc, paths)
    return "extraction failed; the server log has the details"


def video_error_reason(exc: VideoError, paths: tuple[Path, ...]) -> str:
    """The error without the server's paths: VideoError messages start with the file's path, and FFmpeg's
    quote it again."""
    text = str(exc)
    for path in paths:
        text = text.replace(f"{path}: ", "").replace(f"'{path}'", "the file").replace(str(path), "")
    return text
