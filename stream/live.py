"""The asyncio/aiortc shell of a live session: the peer connection, its `control` data channel, the webcam
consumer, the inference loop (one analysis in flight, in a shared executor) and the session's end.

`LiveSession` (stream.session) decides what to process; this module only moves frames, messages and time.

Messages on `control` (JSON text):
    page → server  {"type": "clock", "t": dancer media time (s), "playing": bool}, >= 10 per second
    server → page  {"type": "score", "tick", "t", "score": 0..100, "worst": part name | null} per processed tick
                   {"type": "stats", "processed", "skipped", "errors", "fps" (returned track), "webcam_fps",
                    "tick_fps", "inference_ms"} every second
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import math
import secrets
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InternalError, InvalidAccessError, InvalidStateError, OperationError
from aiortc.sdp import SessionDescription

from pose.types import FrameAnalysis
from stream.ice import IceError, OfferIce, check_pairing, peer_unheard, prepare_offer
from stream.memory import release_free_memory
from stream.sdpcheck import SdpError, check_sdp
from stream.session import LiveSession, RateMeter, TickResult
from stream.tracks import AnnotatedTrack, BgrConverter, LatestFrame, consume

log = logging.getLogger(__name__)

CONTROL_LABEL = "control"
FPS_RANGE = (0.1, 60.0)  # a session's ticks per second
MAX_POSE_NAME = 40
STATS_INTERVAL_S = 1.0
CONNECT_TIMEOUT_S = 30.0  # an offer whose ICE/DTLS never completes is dropped after this
MEDIA_TIMEOUT_S = 10.0  # a connected client that sends no webcam frame and no clock message this long is gone
WATCH_INTERVAL_S = 1.0
AGE_SAMPLES = 2000  # frame ages kept for the backpressure figures


class OfferError(ValueError):
    """The offer cannot start a session; the message is for the client."""


@dataclass(frozen=True)
class OfferRequest:
    """A validated `POST /api/offer` body. fps None means the reference's own tick rate; pose None, the pose
    backend that extracted the reference (so both sides are placed alike)."""

    sdp: str
    reference: str
    fps: float | None
    mirror: bool
    pose: str | None = None


def parse_offer(body: object) -> OfferRequest:
    """Validate the JSON body of `POST /api/offer` (OfferError with a message for the client otherwise)."""
    if not isinstance(body, dict):
        raise OfferError("expected a JSON object with sdp, type, reference")
    sdp, kind, reference = body.get("sdp"), body.get("type"), body.get("reference")
    fps, mirror, pose = body.get("fps"), body.get("mirror", True), body.get("pose")
    if kind != "offer":
        raise OfferError('"type" must be "offer"')
    if not isinstance(sdp, str) or not sdp.strip():
        raise OfferError('"sdp" must be a non-empty string')
    if not isinstance(reference, str) or not reference:
        raise OfferError('"reference" must be a reference id (a string)')
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, int | float) or not math.isfinite(fps)):
        raise OfferError('"fps" must be a number')
    if fps is not None and not FPS_RANGE[0] <= fps <= FPS_RANGE[1]:
        raise OfferError(f'"fps" must be between {FPS_RANGE[0]:g} and {FPS_RANGE[1]:g} ticks per second')
    if not isinstance(mirror, bool):
        raise OfferError('"mirror" must be true or false')
    if pose is not None and not (isinstance(pose, str) and 0 < len(pose) <= MAX_POSE_NAME):
        raise OfferError('"pose" must be the name of a pose backend')
    check_offer_sdp(sdp)
    return OfferRequest(sdp, reference, None if fps is None else float(fps), mirror, pose)


def check_offer_sdp(sdp: str) -> None:
    """The offer must be well-formed SDP (stream.sdpcheck), send and receive video and carry a data channel
    (the `control` channel)."""
    try:
        check_sdp(sdp)
    except SdpError as exc:
        raise OfferError(f'"sdp" is not a valid offer: {exc}') from None
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as exc:  # the SDP parser raises whatever the malformed line provokes
        raise OfferError(f'"sdp" is not a valid session description ({type(exc).__name__})') from None
    kinds = {(m.kind, m.direction) for m in parsed.media}
    if not any(kind == "video" for kind, _ in kinds):
        raise OfferError("the offer has no video: add the webcam track before creating the offer")
    if ("video", "sendrecv") not in kinds:
        raise OfferError("the offer's video must be sendrecv: the annotated video comes back on it")
    if all(m.port == 0 for m in parsed.media if m.kind == "video") and "a=bundle-only" not in sdp:
        raise OfferError("the offer's video is switched off (port 0)")
    if not any(kind == "application" for kind, _ in kinds):
        raise OfferError(f'the offer has no data channel: create the "{CONTROL_LABEL}" channel before the offer')


def parse_clock(message: str | bytes) -> tuple[float, bool] | None:
    """(t, playing) from a `{"type": "clock", "t": s, "playing": bool}` message; None for anything else."""
    try:
        data = json.loads(message)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("type") != "clock":
        return None
    t, playing = data.get("t"), data.get("playing")
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
        return None
    if not isinstance(playing, bool):
        return None
    return float(t), playing


def peer_connection() -> RTCPeerConnection:
    """No STUN/TURN servers: aiortc's default would query a public STUN server; host candidates suffice here."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


class SessionRunner:
    """Runs one `LiveSession` over one peer connection until either side ends it.

    The session ends when the peer connection fails or closes, the control channel closes, it never connects
    within `CONNECT_TIMEOUT_S`, or, once connected, nothing (no webcam frame, no clock message) arrives for
    `MEDIA_TIMEOUT_S` (a killed client: ICE consent would only fail it after ~30 s). Then every task is
    cancelled, the in-flight analysis (if any) is waited for, the tracks are stopped and the peer connection
    closed; the results stay in `session`.
    """

    def __init__(
        self, session: LiveSession[av.VideoFrame], executor: concurrent.futures.Executor, reference: str = ""
    ) -> None:
        self.id = secrets.token_urlsafe(16)
        self.reference = reference
        self.token = secrets.token_urlsafe(32)
        self.session = session
        self.pc: RTCPeerConnection | None = peer_connection()
        self.ended_at: float | None = None  # loop time
        self.end_reason = ""
        self._executor = executor
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._inflight: concurrent.futures.Future[TickResult] | None = None
        self._latest = LatestFrame()
        self._to_bgr = BgrConverter()  # the analyzer thread's own (see BgrConverter)
        self._output_rate = RateMeter()
        self._tracks: list[MediaStreamTrack] = []
        self._channel: RTCDataChannel | None = None
        self._webcam: MediaStreamTrack | None = None
        self._logged_error = False
        self._ice: OfferIce | None = None
        self._heard_at = self._loop.time()  # last webcam frame or control message (loop time)
        self._pending_at = 0.0  # arrival (loop time) of the frame in the mailbox
        self.peak_depth = 0  # most frames held at once between the webcam and the analyzer (mailbox + in flight)
        self.frame_ages: deque[float] = deque(maxlen=AGE_SAMPLES)  # s from a frame's arrival to its analysis
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("connectionstatechange", self._on_connection_state)

    @property
    def live(self) -> bool:
        return self.ended_at is None

    async def answer(self, offer_sdp: str) -> RTCSessionDescription:
        """Apply the offer, start the session's tasks and return the answer (OfferError if unusable)."""
        pc = self.pc
        if pc is None:
            raise OfferError("the session has already ended")
        try:
            offer_sdp, self._ice = prepare_offer(offer_sdp)  # mDNS-only offers (stream.ice)
            log.info("session %s: offer ICE: %s", self.id, self._ice.summary())
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            if self._webcam is None:
                raise OfferError("the offer has no video track")
            await pc.setLocalDescription(await pc.createAnswer())
            check_pairing(self._ice, pc.localDescription.sdp)
        except OfferError:
            raise
        except IceError as exc:
            raise OfferError(str(exc)) from None
        except (ValueError, InternalError, InvalidAccessError, InvalidStateError, OperationError) as exc:
            raise OfferError(f"the offer could not be used: {exc}") from None
        except Exception as exc:  # aiortc fails on SDP it cannot use with whatever the bad value provokes
            log.info("session %s: offer refused by aiortc: %r", self.id, exc)
            raise OfferError(f"the offer could not be used ({type(exc).__name__})") from None
        self._spawn(self._inference_loop(), "inference")
        self._spawn(self._stats_loop(), "stats")
        self._spawn(self._watchdog(), "watchdog")
        return pc.localDescription

    def end(self, reason: str) -> asyncio.Task[None]:
        """Start closing (idempotent); the returned task finishes when the session is fully closed."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._close(reason), name=f"session-{self.id}-close")
        return self._closing

    async def close(self, reason: str = "closed by the server") -> None:
        await asyncio.shield(self.end(reason))

    def metadata(self) -> dict[str, Any]:
        """The session's record (`GET /api/sessions/{id}`)."""
        ended = {"live": self.live, "end_reason": self.end_reason or None}
        return {"session": self.id, "reference": self.reference, **self.session.metadata(), **ended}

    def task_names(self) -> list[str]:
        """Names of this session's tasks still running (for tests and diagnostics)."""
        prefix = f"session-{self.id}-"
        return [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith(prefix) and not t.done()]

    # --- peer connection events

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tracks.append(track)
        if track.kind == "video" and self._webcam is None:
            self._webcam = track
            self._spawn(consume(track, self._latest, self._on_frame), "webcam")
            annotated = AnnotatedTrack(self._latest, self._annotation, self._on_sent)
            self._tracks.append(annotated)
            if self.pc is not None:
                self.pc.addTrack(annotated)
        else:
            self._spawn(consume(track, None, None), f"drain-{track.kind}")  # unread tracks would pile up

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != CONTROL_LABEL or self._channel is not None:
            log.info("session %s: ignoring data channel %r", self.id, channel.label)
            return
        self._channel = channel
        channel.on("message", self._on_message)
        channel.on("close", lambda: self.end("control channel closed"))

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState if self.pc is not None else "closed"
        log.debug("session %s: connection %s", self.id, state)
        if state == "connected":
            self._heard_at = self._loop.time()
        if state in ("failed", "closed"):
            self.end(f"connection {state}")

    def _on_message(self, message: str | bytes) -> None:
        self._heard_at = self._loop.time()
        clock = parse_clock(message)
        if clock is None:
            log.debug("session %s: ignoring message %.80r", self.id, message)
            return
        self.session.on_clock(*clock, now=self._loop.time())

    def _on_frame(self, frame: av.VideoFrame, now: float) -> None:
        self._heard_at = now
        capture = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else None
        if self.session.on_frame(frame, now, capture):
            self._pending_at = now
            self.peak_depth = max(self.peak_depth, 1 + (self._inflight is not None and not self._inflight.done()))
            self._wake.set()

    def _on_sent(self) -> None:
        self._output_rate.add(self._loop.time())

    def _annotation(self) -> FrameAnalysis | None:
        return self.session.annotation(self._loop.time())

    # --- tasks

    async def _inference_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            job = self.session.take_pending()
            if job is None:
                continue
            tick, frame = job
            arrived = self._pending_at
            self._inflight = self._executor.submit(self._process, tick, frame)
            try:
                result = await asyncio.wrap_future(self._inflight)
            except Exception:
                self.session.fail(tick)
                self._log_error(tick)
                continue
            now = self._loop.time()
            self.frame_ages.append(now - arrived)
            self._send(self.session.record(result, now).message())

    def _process(self, tick: int, frame: av.VideoFrame) -> TickResult:
        return self.session.process(tick, self._to_bgr(frame))

    def _log_error(self, tick: int) -> None:
        if not self._logged_error:
            log.exception("session %s: analysis of tick %d failed (later failures are only counted)", self.id, tick)
            self._logged_error = True

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL_S)
            now = self._loop.time()
            self._send(self.session.stats(now, self._output_rate.rate(now)))

    async def _watchdog(self) -> None:
        """End a session that never connects, or whose client has gone silent (killed, unplugged)."""
        started = self._loop.time()
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            now = self._loop.time()
            connected = self.pc is not None and self.pc.connectionState == "connected"
            unheard = self._ice and peer_unheard(self._ice, self._remote_addresses(), now - started)
            if not connected and unheard:
                self.end(unheard)
                return
            if not connected and self._webcam_frames() == 0 and now - started >= CONNECT_TIMEOUT_S:
                self.end(f"not connected after {CONNECT_TIMEOUT_S:g} s")
                return
            if (connected or self._webcam_frames() > 0) and now - self._heard_at >= MEDIA_TIMEOUT_S:
                self.end(f"nothing from the client for {MEDIA_TIMEOUT_S:g} s")
                return

    def _remote_addresses(self) -> list[str]:
        """The peer's candidates the ICE transports know: signalled, mDNS-resolved or learned from its checks."""
        transports = {t.receiver.transport.transport for t in self.pc.getTransceivers()} if self.pc else set()
        return [c.ip for transport in transports for c in transport.getRemoteCandidates()]

    def _webcam_frames(self) -> int:
        return self.session.frames

    def _send(self, message: dict[str, Any]) -> None:
        if self._channel is not None and self._channel.readyState == "open":
            self._channel.send(json.dumps(message))

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=f"session-{self.id}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close(self, reason: str) -> None:
        log.info("session %s ends: %s", self.id, reason)
        self.end_reason = reason
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._inflight is not None:  # the analyzer must be idle before the session counts as ended
            await asyncio.gather(asyncio.wrap_future(self._inflight), return_exceptions=True)
        for track in self._tracks:
            track.stop()
        self._latest.close()
        # Ended sessions are kept `retention_s` for their results: drop the unprocessed frame, and the scaler (its
        # swscale context holds megabytes of buffers, which many short sessions would pin).
        self.session.take_pending()
        self.session.finish()
        self._to_bgr = BgrConverter()
        if self.pc is not None:
            await self.pc.close()
        self.pc, self._channel, self._webcam, self._inflight = None, None, None, None
        self._tracks.clear()
        # What the session's codecs, frames and converters used is freed by now, but it leaves holes in malloc's
        # heaps that glibc keeps for good (stream.memory); the trim runs in a worker thread.
        trim_s = await asyncio.to_thread(release_free_memory)
        self.ended_at = self._loop.time()
        s = self.session
        log.info(
            "session %s: %d ticks processed, %d skipped, %d errors; memory trimmed in %.3f s",
            *(self.id, s.processed, s.sampler.skipped, s.errors, trim_s),
        )


class SessionRegistry:
    """Live sessions, and ended ones whose results are kept for `retention_s` seconds for download."""

    def __init__(self, retention_s: float, max_live: int) -> None:
        self.retention_s = retention_s
        self.max_live = max_live
        self.sessions: dict[str, SessionRunner] = {}

    def live(self) -> list[SessionRunner]:
        return [r for r in self.sessions.values() if r.live]

    def add(self, runner: SessionRunner) -> None:
        self.sessions[runner.id] = runner

    def get(self, session_id: str) -> SessionRunner | None:
        return self.sessions.get(session_id)

    def purge(self, now: float) -> None:
        """Forget ended sessions older than the retention time (`now`: loop time)."""
        for sid, runner in list(self.sessions.items()):
            if runner.ended_at is not None and now - runner.ended_at > self.retention_s:
                del self.sessions[sid]

    async def purge_forever(self, interval: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            self.purge(loop.time())

    async def close_all(self) -> None:
        await asyncio.gather(*(r.close("server shutting down") for r in self.live()), return_exceptions=True)
