"""Recorded takes: a video of someone dancing to a reference's song, placed on the reference's timeline by its
sound (`pose.align`), scored at the reference's ticks by the live scorer, kept as a session.

`POST /api/references/{id}/takes` receives the take as uploads are received (the same limits and checks), and
answers 202 with the job that scores it, the session it becomes and that session's token. The job, on the job
worker behind the reference builds:

1. aligns the take's sound to the reference's; a take without sound, of another song, or whose clock drifts
   fails with the sentence `pose.align` gives;
2. makes a session as every session is made (`SessionService.session_for`: the reference's dancer, calibration and
   moves, the same `LiveSession` and `pose.judge.Judge`), and feeds it the take's frame of every reference
   tick the take covers (`pose.takes`: tick k is take time k / F + offset), in order: the same detector
   cadence, scores, verdicts and CSVs as a live session;
3. writes the side-by-side MP4 (the dancer with the reference's skeleton | the take with the user's, the
   reference's audio) through the annotated-MP4 writer, one frame per scored tick;
4. stores the session (record and CSVs) like an ended live session, so `GET /api/sessions/{id}/...` and the
   page's report serve it; the MP4 is a file under `<data-dir>/takes/`, `GET /api/sessions/{id}/take.mp4`,
   deleted once past the sessions' retention (checked whenever a take arrives).

The take is scored on the reference's own tick rate, mirrored unless `mirror=0`; a profile token
(`Authorization: Bearer <profile>`) lists it among that profile's sessions. Take jobs are not kept across a
restart (`ReferenceJobs.track`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiohttp import web

from pose.align import NO_MUSIC, NO_SOUND, Alignment, AlignmentError, align
from pose.draw import draw_analysis
from pose.media.audio import read_sound
from pose.media.video import AnnotatedWriter, VideoError, iter_frames, probe_video
from pose.privacy import face_boxes, mosaic
from pose.takes import side_by_side, side_by_side_size, take_frames, take_ticks
from pose.ticks import sample_ticks
from pose.types import Detections, FrameAnalysis, Poses
from stream.api import CHUNK, ReferencesApi, SessionsApi, api_error
from stream.archive import SessionArchive
from stream.protocol import is_profile_token
from stream.references import Job, JobCancelled, JobState, ReferenceMeta, new_id, video_error_reason
from stream.results import mean_score, session_files
from stream.service import SessionService
from stream.session import LiveSession
from stream.store import StoredSession, digest

log = logging.getLogger(__name__)

VIDEO_NAME = "take.mp4"
SIDE_HEIGHT = 480  # the side-by-side video's height in pixels (each side scaled to it)
ALIGN_SHARE = 0.05  # of a take job's progress bar; scoring takes the rest


@dataclass(frozen=True)
class TakeScore:
    """A scored take: its alignment, the session that scored it, and the side-by-side video (None: not written)."""

    alignment: Alignment
    session: LiveSession[Any]
    ticks: range
    video: Path | None


Progress = Callable[[float], None]


def score_take(
    session: LiveSession[Any],
    reference_video: Path,
    take: Path,
    alignment: Alignment,
    video_out: Path | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> TakeScore:
    """Feed `session` the take's frame at every reference tick it covers (blocking), writing the side-by-side
    video to `video_out` if given. Only this function's callers differ between a take and its offline check."""
    info = probe_video(take)
    dancer = session.dancer
    covered = take_ticks(dancer.ticks, dancer.fps, alignment.offset_s, info.duration_s)
    writer = _SideBySide(video_out, reference_video, (info.width, info.height), dancer) if video_out else None
    try:
        done = 0
        for tick, frame in take_frames(iter_frames(take), dancer.fps, alignment.offset_s, covered):
            if cancel is not None and cancel.is_set():
                raise JobCancelled("the server is shutting down")
            image = frame.to_ndarray(format="bgr24")
            result = session.process_inline(tick, image, float(tick / Fraction(dancer.fps)))
            if writer is not None:
                writer.write(tick, image, result.shown or result.analysis, result.score.limb)
            done += 1
            if progress is not None:
                progress(done / max(1, len(covered)))
        if done != len(covered):
            raise VideoError(f"{take}: decoded {done} of the {len(covered)} ticks it covers; the file is damaged")
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return TakeScore(alignment, session, covered, video_out)


def align_files(reference_video: Path, take: Path) -> Alignment:
    """The take's alignment to the reference from their sound tracks (AlignmentError to refuse it)."""
    take_sound = read_sound(take)
    if take_sound is None:
        raise AlignmentError(NO_SOUND)
    reference_sound = read_sound(reference_video)
    if reference_sound is None:
        raise AlignmentError(NO_MUSIC)
    return align(reference_sound[0], reference_sound[1], take_sound[0], take_sound[1])


class _SideBySide:
    """The dancer (reference frame and skeleton at tick k) beside the take's frame with the user's skeleton, at
    the reference's tick rate, with the reference's sound (`AnnotatedWriter`)."""

    def __init__(self, out: Path, reference: Path, take_size: tuple[int, int], dancer: Any) -> None:
        ref_info = probe_video(reference)
        self.dancer = dancer
        width, height = side_by_side_size((ref_info.width, ref_info.height), take_size, SIDE_HEIGHT)
        self.writer = AnnotatedWriter(out, dataclasses.replace(ref_info, width=width, height=height), dancer.fps)
        self.frames = sample_ticks(iter_frames(reference), dancer.fps, dancer.ticks)
        self.reference_size = (ref_info.width, ref_info.height)
        self._shown: tuple[int, av.VideoFrame] | None = None

    def write(self, tick: int, take_bgr: np.ndarray, user: FrameAnalysis, off: Any) -> None:
        while self._shown is None or self._shown[0] < tick:
            self._shown = next(self.frames)
        left = np.asarray(self._shown[1].to_ndarray(format="bgr24"), dtype=np.uint8)
        # Every frame of this video is a tick's own, so each half's faces are where its analysis puts them
        # (no frames in between to interpolate for); mosaicked after drawing, as on every video leaving the server.
        dancer = self._dancer_at(tick, left)
        draw_analysis(left, dancer, draw_boxes=False)
        mosaic(left, face_boxes(dancer))
        right = draw_analysis(take_bgr.copy(), user, draw_boxes=False, off=off)
        mosaic(right, face_boxes(user))
        self.writer.write(tick, side_by_side(left, right, SIDE_HEIGHT))

    def _dancer_at(self, tick: int, image: np.ndarray) -> FrameAnalysis:
        xy = self.dancer.xy[tick : tick + 1]
        poses = Poses(xy, self.dancer.confidence[tick : tick + 1], np.ones(1, np.float32))
        h, w = image.shape[:2]
        return FrameAnalysis(poses, np.zeros(1, np.int64), Detections.empty(), w, h)

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.abort()


def take_record(session_id: str, reference: str, scored: TakeScore) -> dict[str, Any]:
    """The stored session's record: a live session's fields, and `take` (its alignment and the ticks scored)."""
    s = scored.session
    latency_ms, confident = s.latency_estimate()
    return {
        "session": session_id,
        "reference": reference,
        "pose": s.pose,
        "dancer_pose": s.dancer.pose,
        "tick_fps": s.fps,
        "mirror": s.mirror,
        "processed": s.processed,
        "skipped": 0,
        "errors": s.errors,
        "warnings": s.warnings,
        "control": None,
        "live": False,
        "end_reason": None,
        "latency_ms": latency_ms,
        "latency_confident": confident,
        "tiers": s.tier_counts(),
        "take": {
            **scored.alignment.to_json(),
            "first_tick": scored.ticks.start,
            "ticks": len(scored.ticks),
            "video": VIDEO_NAME if scored.video is not None else None,
        },
    }


class TakesApi(ReferencesApi):
    """`POST /api/references/{id}/takes` and `GET /api/sessions/{id}/take.mp4` (see the module docstring); the
    take is received and checked as `ReferencesApi` receives uploads."""

    def __init__(
        self,
        references: ReferencesApi,
        sessions: SessionsApi,
        service: SessionService,
        archive: SessionArchive,
        folder: Path,
    ) -> None:
        super().__init__(references.library, references.jobs, references.max_upload_bytes, references.max_duration_s)
        self.sessions = sessions
        self.service = service
        self.archive = archive
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/references/{id}/takes", self.post_take),
            web.get(f"/api/sessions/{{session}}/{VIDEO_NAME}", self.video),
        ]

    async def post_take(self, request: web.Request) -> web.Response:
        """The take as multipart (`video`) or the raw body → 202 {"job", "session", "token"}."""
        meta = self._reference(request)
        await asyncio.to_thread(self._sweep)
        mirror = request.query.get("mirror", "1") not in ("0", "false", "no")
        profile = _profile(request)
        if request.content_length is not None and request.content_length > self.max_upload_bytes + CHUNK:
            raise self._too_large(request.content_length)  # before a byte is read (a form's fields add a little)
        reference_video = self.library.video_path(meta.id)
        path = self.library.upload_path()
        try:
            if request.content_type == "multipart/form-data":
                await self._receive(request, path)
            else:
                await self._receive_raw(request, path)
            await self._check_video(path)
            if not (await asyncio.to_thread(probe_video, path)).has_audio:
                raise api_error(web.HTTPBadRequest, NO_SOUND)
            if not (await asyncio.to_thread(probe_video, reference_video)).has_audio:
                raise api_error(web.HTTPBadRequest, NO_MUSIC)
            session = await self.service.session_for(meta, None, None, mirror)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        session_id, token = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
        job = Job(id=new_id(), reference=meta.id, title=meta.title, pose=session.pose or "", session=session_id)
        work = self._run(job, session, meta, path, token, profile)
        self.jobs.track(job, work)
        size = path.stat().st_size
        log.info("take for reference %s (%d bytes) → job %s, session %s", meta.id, size, job.id, session_id)
        return web.json_response({"job": job.id, "session": session_id, "token": token}, status=202)

    async def video(self, request: web.Request) -> web.FileResponse:
        found = await self.sessions.authorised(request, "scores.csv")
        path = self.folder / f"{found.id}.mp4"
        if not path.is_file():
            raise api_error(web.HTTPNotFound, "the session has no take video")
        disposition = f'attachment; filename="dancesync-{found.id}-{VIDEO_NAME}"'
        return web.FileResponse(path, headers={"Cache-Control": "no-store", "Content-Disposition": disposition})

    def _sweep(self) -> None:
        """Delete the videos of takes past the sessions' retention (their sessions are purged from the store)."""
        not_before = self.archive.not_before()
        for video in self.folder.glob("*.mp4"):
            try:
                if video.stat().st_mtime < not_before:
                    video.unlink()
            except FileNotFoundError:
                pass

    async def _receive_raw(self, request: web.Request, path: Path) -> None:
        limit = self.max_upload_bytes
        if request.content_length is not None and request.content_length > limit:
            raise self._too_large(request.content_length)
        size = 0
        with path.open("wb") as out:
            while chunk := await request.content.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise self._too_large(size)
                out.write(chunk)
        if size == 0:
            raise api_error(web.HTTPBadRequest, "the video file is empty")

    async def _run(
        self, job: Job, session: LiveSession[Any], meta: ReferenceMeta, take: Path, token: str, profile: str | None
    ) -> None:
        assert job.session is not None
        started = time.time()
        loop = asyncio.get_running_loop()
        video = self.folder / f"{job.session}.mp4"
        work: asyncio.Future[TakeScore] | None = None
        try:
            reference_video = self.library.video_path(meta.id)
            work = loop.run_in_executor(self.jobs.executor, self._score, job, session, reference_video, take, video)
            scored = await asyncio.shield(work)
            stored = StoredSession(
                id=job.session,
                token_hash=digest(token),
                profile_hash=digest(profile) if profile else None,
                reference=meta.id,
                title=meta.title,
                record=take_record(job.session, meta.id, scored),
                mean_score=mean_score(session),
                ticks=session.processed,
                created_at=started,
                ended_at=time.time(),
                files=session_files(session),
            )
            await self.archive.store.run(self.archive.store.save_session, stored)
        except asyncio.CancelledError:
            job.state, job.error = JobState.FAILED, "the server restarted; send the recording again"
            if work is not None:  # the worker stops at its next tick (the cancel flag); wait for it to let go
                await asyncio.gather(work, return_exceptions=True)
            raise
        except (AlignmentError, VideoError) as exc:
            job.state, job.error = JobState.FAILED, _reason(exc, take, self.library.root)
            log.info("take job %s refused: %s", job.id, exc)
        except Exception:
            job.state, job.error = JobState.FAILED, "scoring the recording failed; the server log has the details"
            log.exception("take job %s failed", job.id)
        else:
            job.state, job.progress = JobState.DONE, 1.0
            offset = scored.alignment.offset_s
            log.info("take job %s: session %s, %d ticks, offset %.3f s", job.id, job.session, stored.ticks, offset)
        finally:
            take.unlink(missing_ok=True)
            if job.state != JobState.DONE:
                video.unlink(missing_ok=True)

    def _score(self, job: Job, session: LiveSession[Any], reference_video: Path, take: Path, video: Path) -> TakeScore:
        job.state = JobState.RUNNING
        cancel = self.jobs.cancelled
        alignment = align_files(reference_video, take)
        job.progress = ALIGN_SHARE

        def progress(share: float) -> None:
            job.progress = ALIGN_SHARE + (1 - ALIGN_SHARE) * share

        scored = score_take(session, reference_video, take, alignment, video, progress, cancel)
        session.finish()
        return scored


def _reason(exc: Exception, take: Path, root: Path) -> str:
    if isinstance(exc, VideoError):
        return "not a usable video: " + video_error_reason(exc, (take, root))
    return str(exc)


def _profile(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if not header:
        return None
    if scheme.lower() != "bearer" or not is_profile_token(value.strip()):
        raise api_error(web.HTTPBadRequest, "Authorization must be 'Bearer <profile token>' (or be left out)")
    return value.strip()
