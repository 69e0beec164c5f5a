"""HTTP handlers of the JSON/CSV API; `server.py` wires them to routes and owns their lifetimes. The API (routes,
bodies, statuses) is described in docs/api.md and its messages are typed in stream.protocol.

Errors are JSON `{"error": message}` with a 4xx/5xx status; the messages are meant for the page's user. Both
POSTs may also get 403 (a foreign Origin), 413 (body over its limit) and 429 (rate limit), see stream.limits.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from pose.media.video import VideoError, VideoInfo, probe_video
from stream.archive import SessionArchive
from stream.limits import read_body
from stream.live import SessionRegistry, SessionsFull
from stream.protocol import OfferError, answer_message, is_profile_token, parse_offer_body
from stream.references import ReferenceJobs, ReferenceLibrary, ReferenceMeta, validate_fps, video_error_reason
from stream.results import session_files
from stream.service import SessionService, UnknownReference
from stream.store import digest, same_digest

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
FIELD_LIMIT = 1024  # bytes of a non-file form field
MAX_PARTS = 8  # parts of an upload form (video, title, fps and a few a browser may add)
MAX_OFFER_BYTES = 64 * 1024  # a browser's offer with all its candidates is 4-10 KiB
DEFAULT_FPS = 10.0
MAX_TITLE = 120
RETRY_AFTER_S = "60"  # what a client over the session cap is told to wait
SESSION_HEADER = "X-Dancesync-Session"  # names the new session (or job) for a balancer's affinity (docs/deploy.md)
JOB_HEADER = "X-Dancesync-Job"
DRAINING = "the server is shutting down and takes no new sessions; try again (another server will take it)"


def api_error(cls: type[web.HTTPException], message: str, **kwargs: Any) -> web.HTTPException:
    return cls(text=json.dumps({"error": message}), content_type="application/json", **kwargs)


class ReferencesApi:
    """`/api/references…` and `/api/jobs/…`: list, upload (a background build), serve video and CSV."""

    def __init__(
        self, library: ReferenceLibrary, jobs: ReferenceJobs, max_upload_bytes: int, max_duration_s: float
    ) -> None:
        self.library = library
        self.jobs = jobs
        self.max_upload_bytes = max_upload_bytes
        self.max_duration_s = max_duration_s

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/backends", self.backends),
            web.get("/api/references", self.list_references),
            web.post("/api/references", self.upload),
            web.get("/api/references/{id}/video", self.video),
            web.get("/api/references/{id}/keypoints.csv", self.keypoints),
            web.get("/api/references/{id}/moves.json", self.moves),
            web.get("/api/jobs", self.list_jobs),
            web.get("/api/jobs/{job}", self.job),
        ]

    async def backends(self, request: web.Request) -> web.Response:
        names = self.jobs.models.names
        return web.json_response({"default": names[0], "backends": list(names)})

    async def list_references(self, request: web.Request) -> web.Response:
        references = await asyncio.to_thread(self.library.list)
        return web.json_response([meta.summary() for meta in references])

    async def list_jobs(self, request: web.Request) -> web.Response:
        """Jobs still queued or running (e.g. the sample being seeded), so a page can say so."""
        return web.json_response([{"job": job.id, "title": job.title, **job.to_json()} for job in self.jobs.pending()])

    async def job(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["job"])
        if job is None:
            raise api_error(web.HTTPNotFound, "no such job")
        return web.json_response(job.to_json())

    async def video(self, request: web.Request) -> web.FileResponse:
        meta = self._reference(request)
        return web.FileResponse(self.library.video_path(meta.id), headers={"Cache-Control": "public, max-age=3600"})

    async def keypoints(self, request: web.Request) -> web.FileResponse:
        meta = self._reference(request)
        return web.FileResponse(self.library.csv_path(meta.id), headers={"Content-Type": "text/csv; charset=utf-8"})

    async def moves(self, request: web.Request) -> web.Response:
        meta = self._reference(request)
        return web.json_response(await asyncio.to_thread(self.library.moves_json, meta))

    def _reference(self, request: web.Request) -> ReferenceMeta:
        meta = self.library.get(request.match_info["id"])
        if meta is None:
            raise api_error(web.HTTPNotFound, "no such reference")
        return meta

    async def upload(self, request: web.Request) -> web.Response:
        """multipart/form-data: `video` (the file), optional `title`, `fps` and `pose` → 202 {"id", "job"}."""
        if request.content_type != "multipart/form-data":
            raise api_error(web.HTTPBadRequest, "send multipart/form-data with a 'video' file field")
        if request.content_length is not None and request.content_length > self.max_upload_bytes + CHUNK:
            raise self._too_large(request.content_length)
        path = self.library.upload_path()
        try:
            fields, filename = await self._receive(request, path)
            title, fps = _title(fields.get("title"), filename), parse_fps(fields.get("fps"))
            pose = self._pose(fields.get("pose"))
            await self._check_video(path)
            job = self.jobs.submit(path, title, fps, remove_source=True, pose=pose)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        log.info("upload %r (%d bytes) → reference %s, job %s", title, path.stat().st_size, job.reference, job.id)
        return web.json_response({"id": job.reference, "job": job.id}, status=202, headers={JOB_HEADER: job.id})

    async def _receive(self, request: web.Request, path: Path) -> tuple[dict[str, str], str | None]:
        """Stream the `video` part to `path` (size-limited) and collect the small fields."""
        return await receive_upload(request, "video", path, ("title", "fps", "pose"), self.max_upload_bytes)

    def _pose(self, text: str | None) -> str | None:
        if text is None or not text.strip():
            return None
        try:
            return self.jobs.models.resolve(text.strip())
        except ValueError as exc:
            raise api_error(web.HTTPBadRequest, str(exc)) from None

    def _too_large(self, size: int) -> web.HTTPException:
        return upload_too_large("video", self.max_upload_bytes, size)

    async def _check_video(self, path: Path) -> None:
        await check_video_upload(path, self.max_duration_s, (path, self.library.root))


async def receive_upload(
    request: web.Request, field: str, path: Path, names: tuple[str, ...], max_bytes: int, raw: bool = False
) -> tuple[dict[str, str], str | None]:
    """Stream the file of a multipart/form-data body's part `field` to `path` (at most `max_bytes`: 413 beyond) and
    collect the small fields `names`; with `raw`, a body of another type is the file itself. Returns the fields
    and the file's name. 400 for a malformed form, a missing or empty file."""
    if request.content_type != "multipart/form-data":
        if not raw:
            raise api_error(web.HTTPBadRequest, f"send multipart/form-data with a '{field}' file field")
        if request.content_length is not None and request.content_length > max_bytes:
            raise upload_too_large(field, max_bytes, request.content_length)
        await _save(request.content.read, path, field, max_bytes)
        return {}, None
    fields: dict[str, str] = {}
    filename: str | None = None
    got_file = False
    parts = 0
    try:
        reader = await request.multipart()
        async for part in reader:
            parts += 1
            if parts > MAX_PARTS:
                raise api_error(web.HTTPBadRequest, f"the form has more than {MAX_PARTS} fields")
            if not isinstance(part, BodyPartReader):
                raise api_error(web.HTTPBadRequest, "nested multipart bodies are not supported")
            if part.name == field and not got_file:
                filename, got_file = part.filename, True
                await _save(part.read_chunk, path, field, max_bytes)
            elif part.name == field:
                raise api_error(web.HTTPBadRequest, f"send one '{field}' file per request")
            elif part.name in names and part.name not in fields:
                fields[part.name] = await _small_field(part)
            else:  # skipped, but read within the field limit: an unknown part must not stream forever
                await _small_field(part)
    except ValueError as exc:  # a malformed multipart body
        raise api_error(web.HTTPBadRequest, f"malformed multipart body: {exc}") from None
    if not got_file:
        raise api_error(web.HTTPBadRequest, f"the form has no '{field}' file field")
    return fields, filename


async def _save(read: Callable[[int], Awaitable[bytes]], path: Path, what: str, max_bytes: int) -> None:
    size = 0
    with path.open("wb") as out:
        while chunk := await read(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise upload_too_large(what, max_bytes, size)
            out.write(chunk)
    if size == 0:
        raise api_error(web.HTTPBadRequest, f"the {what} file is empty")


def upload_too_large(what: str, max_bytes: int, size: int) -> web.HTTPException:
    return api_error(
        web.HTTPRequestEntityTooLarge,
        f"the {what} is larger than the {max_bytes / 2**20:g} MB limit",
        max_size=max_bytes,
        actual_size=size,
    )


async def check_video_upload(path: Path, max_duration_s: float, hide: tuple[Path, ...]) -> VideoInfo:
    """The probed upload; 400 (its message without the paths `hide`) when it is not a readable video or is longer
    than `max_duration_s`."""
    try:
        info = await asyncio.to_thread(probe_video, path)
    except VideoError as exc:
        raise api_error(web.HTTPBadRequest, f"not a readable video: {video_error_reason(exc, hide)}") from None
    if info.duration_s > max_duration_s:
        limit_text = f"{max_duration_s / 60:g} minutes" if max_duration_s >= 60 else f"{max_duration_s:g} seconds"
        raise api_error(web.HTTPBadRequest, f"the video is longer than {limit_text} ({float(info.duration_s):.0f} s)")
    return info


async def _small_field(part: BodyPartReader) -> str:
    data = b""
    while chunk := await part.read_chunk(FIELD_LIMIT):
        data += chunk
        if len(data) > FIELD_LIMIT:
            raise api_error(web.HTTPBadRequest, f"form field '{part.name}' is too long")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise api_error(web.HTTPBadRequest, f"form field '{part.name}' is not UTF-8 text") from None


def _title(text: str | None, filename: str | None) -> str:
    title = " ".join((text or "").split()) or Path(filename or "").stem or "Untitled"
    return title[:MAX_TITLE]


def parse_fps(text: str | None) -> float:
    """A form or query field's tick rate: DEFAULT_FPS when absent or blank, 400 outside (0, 60]."""
    if text is None or not text.strip():
        return DEFAULT_FPS
    try:
        return validate_fps(float(text))
    except ValueError:
        raise api_error(web.HTTPBadRequest, f"fps must be a number in (0, 60], got {text[:20]!r}") from None


class SessionsApi:
    """`POST /api/offer` (start a live session, stream.service), the token-protected session exports, and a
    profile's past sessions. Live and just-ended sessions are served from `registry`, stored ones from `archive`."""

    def __init__(
        self,
        service: SessionService,
        registry: SessionRegistry,
        max_offer_bytes: int = MAX_OFFER_BYTES,
        archive: SessionArchive | None = None,
        draining: Callable[[], bool] = lambda: False,
    ) -> None:
        self.service = service
        self.registry = registry
        self.max_offer_bytes = max_offer_bytes
        self.archive = archive
        self.draining = draining  # true from SIGTERM on (stream.health): offers are refused, the rest answered

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/offer", self.offer),
            web.get("/api/sessions/{session}", self.metadata),
            web.get(r"/api/sessions/{session}/{name:[a-z_]+\.csv}", self.result_file),
            web.get("/api/profile/sessions", self.profile_sessions),
        ]

    async def offer(self, request: web.Request) -> web.Response:
        """An offer body (stream.protocol) → its answer; 400 unusable, 404 unknown reference, 503 over the cap or
        draining."""
        body = await read_body(request, self.max_offer_bytes, "the offer")
        try:
            offer = parse_offer_body(body)
            if self.draining():
                raise api_error(web.HTTPServiceUnavailable, DRAINING, headers={"Retry-After": RETRY_AFTER_S})
            runner, answer = await self.service.start(offer)
        except OfferError as exc:
            raise api_error(web.HTTPBadRequest, str(exc)) from None
        except UnknownReference:
            raise api_error(web.HTTPNotFound, "no such reference") from None
        except SessionsFull as exc:
            raise api_error(web.HTTPServiceUnavailable, str(exc), headers={"Retry-After": RETRY_AFTER_S}) from None
        if self.archive is not None:
            meta = self.service.library.get(runner.reference)
            self.archive.watch(runner, offer.profile, meta.title if meta is not None else runner.reference)
        session = runner.session
        message = answer_message(answer.sdp, answer.type, runner.id, runner.token, session.pose, session.warnings)
        return web.json_response(message, headers={SESSION_HEADER: runner.id})

    async def metadata(self, request: web.Request) -> web.Response:
        found = await self._authorised(request)
        return web.json_response(found.record, headers={"Cache-Control": "no-store"})

    async def result_file(self, request: web.Request) -> web.Response:
        """One of the session's result files (stream.results), e.g. keypoints.csv, scores.csv."""
        name = request.match_info["name"]
        found = await self._authorised(request, name)
        text = found.files.get(name)
        if text is None:
            raise api_error(web.HTTPNotFound, f"the session has no {name}")
        return _csv(text, f"dancesync-{found.id}-{name}")

    async def profile_sessions(self, request: web.Request) -> web.Response:
        """The stored sessions of the profile whose token the request carries (`?reference=` for one reference),
        oldest first; a profile without sessions gets an empty list, whether or not it was ever seen."""
        token = _token(request)
        if not is_profile_token(token):
            raise api_error(web.HTTPForbidden, "a profile token is required (Authorization: Bearer <profile>)")
        if self.archive is None:
            return web.json_response({"sessions": []}, headers={"Cache-Control": "no-store"})
        reference = request.query.get("reference") or None
        store, not_before = self.archive.store, self.archive.not_before()
        stored = await store.run(store.profile_sessions, digest(token), reference, not_before)
        return web.json_response({"sessions": [s.summary() for s in stored]}, headers={"Cache-Control": "no-store"})

    async def authorised(self, request: web.Request, file: str | None = None) -> SessionResults:
        """The session the request names, if it carries its token (see `_authorised`)."""
        return await self._authorised(request, file)

    async def _authorised(self, request: web.Request, file: str | None = None) -> SessionResults:
        """The session, if the request carries its token or its profile's; 403 without a token, 404 for a wrong
        token or id alike (so neither reveals whether a session exists). `file`: the one file needed (None: all)."""
        token = _token(request)
        if not token:
            raise api_error(web.HTTPForbidden, "a session token is required (Authorization: Bearer <token>)")
        self.registry.purge(asyncio.get_running_loop().time())  # a token dies with its session's retention
        session_id = request.match_info["session"]
        runner = self.registry.get(session_id)
        if self.archive is not None and (runner is None or not runner.live):  # ended: the store has the final word
            store = self.archive.store
            stored = await store.run(store.load_session, session_id, self.archive.not_before(), file)
            if stored is not None:
                if same_digest(token, stored.token_hash) | same_digest(token, stored.profile_hash):
                    return SessionResults(stored.id, stored.record, stored.files)
                runner = None
        if runner is not None:  # live, or ended and not stored yet
            profile = self.archive.profiles.get(runner.id) if self.archive is not None else None
            if hmac.compare_digest(token.encode(), runner.token.encode()) | same_digest(token, profile):
                return SessionResults(runner.id, dict(runner.metadata()), session_files(runner.session))
        else:
            same_digest(token, None)  # compare anyway: same timing
        raise api_error(web.HTTPNotFound, "no such session, or the token does not match")


@dataclass(frozen=True)
class SessionResults:
    """What the export routes serve of a session: its id, record and result files by name."""

    id: str
    record: dict[str, Any]
    files: dict[str, str]


def _token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query.get("token", "")


def _csv(text: str, filename: str) -> web.Response:
    headers = {"Cache-Control": "no-store", "Content-Disposition": f'attachment; filename="{filename}"'}
    return web.Response(text=text, content_type="text/csv", headers=headers)
