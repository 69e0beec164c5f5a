"""The asyncio/aiortc shell of a live session: the peer connection, its `control` data channel, the webcam
consumer, the inference loop (one analysis in flight, in a shared executor), the timer and the session's end.

`LiveSession` (stream.session) decides what to process and `SessionCore` (stream.core) when the session ends and
what a control message is worth; this module only moves frames, messages and time. The messages are typed in
stream.protocol and described in docs/api.md.

Nothing a peer does can raise into aiortc: every handler aiortc calls is guarded (a failure is counted, logged
once per session, and the session goes on), and every task of the session is supervised: one that dies ends the
session with a reason, which the page is told in an `end` message before the connection closes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InternalError, InvalidAccessError, InvalidStateError, OperationError
from aiortc.sdp import SessionDescription

from pose.limbs import Limb
from pose.privacy import LiveFaces
from pose.types import Detections, FrameAnalysis
from stream.core import SessionCore, SessionLimits
from stream.ice import IceError, OfferIce, check_pairing, peer_unheard, prepare_offer
from stream.memory import release_free_memory
from stream.protocol import CONTROL_LABEL, OfferError, ServerMessage, SessionRecord, encode, end_message
from stream.sdpcheck import SdpError, check_sdp
from stream.session import LiveSession, TickResult
from stream.tracks import AnnotatedTrack, BgrConverter, LatestFrame, consume

log = logging.getLogger(__name__)

AGE_SAMPLES = 2000  # frame ages kept for the backpressure figures
END_FLUSH_S = 1.0  # at most this long for the `end` message to leave before the connection closes
# What each task does, for the sentence that tells the user why their session ended when it dies.
TASK_WORK = {"webcam": "reading your webcam", "inference": "the pose analysis", "drain": "reading your other tracks"}


def check_offer_sdp(sdp: str, returned_video: bool = True) -> None:
    """The offer must be well-formed SDP (stream.sdpcheck), send video (and receive it unless `returned_video`
    is False) and carry a data channel (the `control` channel)."""
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
    if returned_video and ("video", "sendrecv") not in kinds:
        raise OfferError("the offer's video must be sendrecv: the annotated video comes back on it")
    if not kinds & {("video", "sendrecv"), ("video", "sendonly")}:
        raise OfferError("the offer's video must be sendonly or sendrecv: the webcam goes out on it")
    if all(m.port == 0 for m in parsed.media if m.kind == "video") and "a=bundle-only" not in sdp:
        raise OfferError("the offer's video is switched off (port 0)")
    if not any(kind == "application" for kind, _ in kinds):
        raise OfferError(f'the offer has no data channel: create the "{CONTROL_LABEL}" channel before the offer')


def peer_connection() -> RTCPeerConnection:
    """No STUN/TURN servers: aiortc's default would query a public STUN server; host candidates suffice here."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


class SessionRunner:
    """Runs one `LiveSession` over one peer connection until either side ends it.

    The session ends when its `SessionCore` says so (timeouts, the connection failing or closing), when the
    control channel closes, or when one of its tasks dies. Then the page is sent `{"type": "end", "reason"}`,
    every task is cancelled, the in-flight analysis (if any) is waited for, the tracks are stopped and the peer
    connection closed; the results stay in `session`.
    """

    def __init__(
        self,
        session: LiveSession[av.VideoFrame],
        executor: concurrent.futures.Executor,
        reference: str = "",
        limits: SessionLimits | None = None,
        mosaic: bool = True,
        returned_video: bool = True,
        monitor: Callable[[SessionRunner, float], None] | None = None,
    ) -> None:
        """`returned_video` False: no annotated track; each tick's keypoints go out as a `pose` message instead.
        `monitor` is called with the loop time whenever a `stats` message is due (stream.load samples there)."""
        self.id = secrets.token_urlsafe(16)
        self.faces = LiveFaces() if mosaic else None  # faces mosaicked on the returned video
        self.returned_video = returned_video
        self._monitor = monitor
        self.reference = reference
        self.token = secrets.token_urlsafe(32)
        self.session = session
        self.pc: RTCPeerConnection | None = peer_connection()
        self.ended_at: float | None = None  # loop time
        self.end_reason = ""
        self.ended = asyncio.Event()  # set once closing has finished (or failed): the results are final
        self._executor = executor
        self._loop = asyncio.get_running_loop()
        self.core: SessionCore[av.VideoFrame] = SessionCore(session, limits or SessionLimits(), self._loop.time())
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()
        self._inflight: concurrent.futures.Future[TickResult] | None = None
        self._detecting: concurrent.futures.Future[tuple[Detections, float] | None] | None = None
        self._latest = LatestFrame()
        self._to_bgr = BgrConverter()  # the analyzer thread's own (see BgrConverter)
        self._detect_to_bgr = BgrConverter()  # the background detector's own
        self._decoder: threading.Thread | None = None  # aiortc's decoder thread of the webcam, for its CPU time
        self._tracks: list[MediaStreamTrack] = []
        self._channel: RTCDataChannel | None = None
        self._webcam: MediaStreamTrack | None = None
        self._logged_error = False
        self.ignored_channels = 0
        self._ice: OfferIce | None = None
        self._pending_at = 0.0  # arrival (loop time) of the frame in the mailbox
        self.peak_depth = 0  # most frames held at once between the webcam and the analyzer (mailbox + in flight)
        self.frame_ages: deque[float] = deque(maxlen=AGE_SAMPLES)  # s from a frame's arrival to its analysis
        self.pc.on("track", self._guarded(self._on_track, "track"))
        self.pc.on("datachannel", self._guarded(self._on_datachannel, "datachannel"))
        self.pc.on("connectionstatechange", self._guarded(self._on_connection_state, "connection state"))

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
        if self._ice.names_only:
            self.core.expect_peer(self._loop.time())
        self._arm()
        return pc.localDescription

    def end(self, reason: str) -> asyncio.Task[None]:
        """Start closing (idempotent; the first reason stands); the returned task finishes when the session is
        fully closed."""
        self.core.end(reason)
        if self._closing is None:
            closing = self._close(self.core.end_reason or reason)
            self._closing = asyncio.create_task(closing, name=f"session-{self.id}-close")
            self._closing.add_done_callback(self._closed)
        return self._closing

    async def close(self, reason: str = "closed by the server") -> None:
        await asyncio.shield(self.end(reason))

    def metadata(self) -> SessionRecord:
        """The session's record (`GET /api/sessions/{id}`)."""
        s = self.session
        latency_ms, confident = s.latency_estimate()
        return {
            "session": self.id,
            "reference": self.reference,
            "pose": s.pose,
            "dancer_pose": s.dancer.pose,
            "tick_fps": s.fps,
            "mirror": s.mirror,
            "processed": s.processed,
            "skipped": s.sampler.skipped,
            "errors": s.errors,
            "passes": s.sampler.passes,
            "warnings": s.warnings,
            "control": self.core.counts(),
            "live": self.live,
            "end_reason": self.end_reason or None,
            "latency_ms": latency_ms,
            "latency_confident": confident,
            "tiers": s.tier_counts(),
            "returned_video": self.returned_video,
            "stages_ms": s.stages.totals_ms(),
            "tick_ms": s.stages.tick_times(),
        }

    def task_names(self) -> list[str]:
        """Names of this session's tasks still running (for tests and diagnostics)."""
        prefix = f"session-{self.id}-"
        return [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith(prefix) and not t.done()]

    # --- peer connection events (each one guarded: see _guarded)

    def _guarded(self, handler: Callable[..., None], what: str) -> Callable[..., None]:
        """`handler` as aiortc may call it: an exception is counted and logged once per session, never raised
        into aiortc (whose receive loops it would tear down)."""

        def guarded(*args: Any) -> None:
            try:
                handler(*args)
            except Exception:
                if self.core.handler_failed():
                    log.exception("session %s: the %s handler failed (later failures are only counted)", self.id, what)

        return guarded

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tracks.append(track)
        if track.kind == "video" and self._webcam is None:
            self._webcam = track
            on_frame = self._guarded(self._on_frame, "webcam frame")
            self._spawn(consume(track, self._latest, on_frame), "webcam", on_return="your webcam stopped sending video")
            if self.returned_video:
                stages = self.session.stages.add
                annotated = AnnotatedTrack(self._latest, self._annotation, self._on_sent, stages, self.faces)
                self._tracks.append(annotated)
                if self.pc is not None:
                    self.pc.addTrack(annotated)
        else:
            self._spawn(consume(track, None, None), f"drain-{track.kind}")  # unread tracks would pile up

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != CONTROL_LABEL or self._channel is not None:
            self.ignored_channels += 1
            if self.ignored_channels == 1:
                log.info("session %s: ignoring data channel %.40r (and any more)", self.id, channel.label)
            return
        self._channel = channel
        channel.on("message", self._guarded(self._on_message, "control message"))
        channel.on("close", self._guarded(lambda: self._end_soon("the page closed the control channel"), "close"))

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState if self.pc is not None else "closed"
        log.debug("session %s: connection %s", self.id, state)
        self.core.connection_state(state, self._loop.time())
        self._after_event()

    def _on_message(self, message: str | bytes) -> None:
        self.core.on_control(message, self._loop.time())

    def _on_frame(self, frame: av.VideoFrame, now: float) -> None:
        capture = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else None
        if self.core.on_frame(frame, now, capture):
            self._pending_at = now
            self.peak_depth = max(self.peak_depth, 1 + (self._inflight is not None and not self._inflight.done()))
            self._wake.set()

    def _on_sent(self) -> None:
        self.core.on_sent(self._loop.time())

    def _annotation(self) -> tuple[FrameAnalysis, Limb | None] | None:
        return self.session.annotation(self._loop.time())

    def _end_soon(self, reason: str) -> None:
        self.core.end(reason)
        self._after_event()

    # --- the timer (the core decides; this only arms loop.call_at)

    def _arm(self) -> None:
        when = self.core.get_timer()
        if self._timer is not None and (when is None or self._timer.when() > when):
            self._timer.cancel()
            self._timer = None
        if when is not None and self._timer is None and self._closing is None:
            self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        try:
            self._check_peer()
            now = self._loop.time()
            self._sample_decoder()
            stats = self.core.handle_timer(now)
            if stats is not None:
                self._send(stats)
                if self._monitor is not None:
                    self._monitor(self, now)
        except Exception:
            log.exception("session %s: the session's timer failed", self.id)
            self.core.end("an internal error stopped the session's timer")
        self._after_event()

    def _check_peer(self) -> None:
        """When the core says so, ask stream.ice whether an mDNS-only offer's browser has reached us yet."""
        now = self._loop.time()
        if self._ice is not None and self.core.peer_check_due(now):
            self.core.peer_checked(peer_unheard(self._ice, self._remote_addresses(), self.core.since_peer(now)))

    def _sample_decoder(self) -> None:
        """The webcam decoder thread's CPU time so far, as the `decode` stage. aiortc keeps that thread private
        (one per receiver, named "video-decoder"); without it the stage stays at 0."""
        if self._decoder is None and self.pc is not None:
            for transceiver in self.pc.getTransceivers():
                if transceiver.kind == "video":
                    self._decoder = getattr(transceiver.receiver, "_RTCRtpReceiver__decoder_thread", None)
        thread = self._decoder
        if thread is None or thread.ident is None or not thread.is_alive():
            return
        try:
            cpu_s = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except (OSError, ValueError):  # the thread ended between the check and the read
            return
        self.session.stages.set_total("decode", cpu_s, self.session.frames)

    def _remote_addresses(self) -> list[str]:
        """The peer's candidates the ICE transports know: signalled, mDNS-resolved or learned from its checks."""
        transports = {t.receiver.transport.transport for t in self.pc.getTransceivers()} if self.pc else set()
        return [c.ip for transport in transports for c in transport.getRemoteCandidates()]

    def _after_event(self) -> None:
        """After anything that may have changed the core's decision: end the session, or re-arm the timer."""
        if self.core.end_reason is not None:
            self.end(self.core.end_reason)
        else:
            self._arm()

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
            sending = time.perf_counter()
            for message in self.session.record(result, now).messages(keypoints=not self.returned_video):
                self._send(message)
            self.session.stages.add("send", time.perf_counter() - sending)
            self._detect_soon()

    def _process(self, tick: int, frame: av.VideoFrame) -> TickResult:
        started = time.perf_counter()
        image = self._to_bgr(frame)
        return self.session.process(tick, image, time.perf_counter() - started)

    # --- the person detector, off the tick path: one run at a time, on the newest frame when it starts

    def _detect_soon(self) -> None:
        if self._detecting is not None or self._closing is not None or not self.session.detection_due():
            return
        self._detecting = detecting = self._executor.submit(self._detect)
        detecting.add_done_callback(lambda done: self._loop.call_soon_threadsafe(self._detected, done))

    def _detect(self) -> tuple[Detections, float] | None:
        frame = self._latest.frame  # latest wins: the newest frame when a worker is free, not when asked
        if frame is None:
            return None
        started = time.perf_counter()
        image = self._detect_to_bgr(frame)
        convert_s = time.perf_counter() - started
        boxes, seconds = self.session.detect_people(image)
        return boxes, convert_s + seconds

    def _detected(self, done: concurrent.futures.Future[tuple[Detections, float] | None]) -> None:
        self._detecting = None
        if self._closing is not None or done.cancelled():
            return
        try:
            found = done.result()
        except Exception:
            self.session.errors += 1
            if not self._logged_error:
                log.exception("session %s: the person detector failed (later failures are only counted)", self.id)
                self._logged_error = True
            return
        if found is not None:
            self.session.set_boxes(*found)

    def _log_error(self, tick: int) -> None:
        if not self._logged_error:
            log.exception("session %s: analysis of tick %d failed (later failures are only counted)", self.id, tick)
            self._logged_error = True

    def _send(self, message: ServerMessage) -> None:
        channel = self._channel
        if channel is not None and channel.readyState == "open":
            try:
                channel.send(encode(message))
            except (InvalidStateError, ConnectionError) as exc:  # closing under our feet: the end is near anyway
                log.debug("session %s: could not send %s: %r", self.id, message["type"], exc)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str, on_return: str | None = None) -> None:
        """Run `coro` as one of the session's tasks, supervised: if it raises, is cancelled by anyone but the
        session's end, or returns while `on_return` is set, the session ends with a reason."""
        task = asyncio.create_task(coro, name=f"session-{self.id}-{name}")
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._task_done(done, name, on_return))

    def _task_done(self, task: asyncio.Task[None], name: str, on_return: str | None) -> None:
        self._tasks.discard(task)
        work = TASK_WORK.get(name.partition("-")[0], name)
        if task.cancelled():
            if self._closing is None:
                log.error("session %s: its %s task was cancelled", self.id, name)
                self._end_soon(f"the server stopped {work} (an internal error)")
            return
        exc = task.exception()  # retrieved here, so never "never retrieved"
        if exc is not None:
            log.error("session %s: its %s task failed", self.id, name, exc_info=exc)
            self._end_soon(f"an internal error stopped {work}")
        elif on_return is not None:
            self._end_soon(on_return)

    def _closed(self, task: asyncio.Task[None]) -> None:
        self.ended.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("session %s: closing failed", self.id, exc_info=task.exception())

    async def _close(self, reason: str) -> None:
        log.info("session %s ends: %s", self.id, reason)
        self.end_reason = reason
        self._send(end_message(reason))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # the analyzer and the detector must be idle before the session counts as ended
        running: list[concurrent.futures.Future[Any]] = [f for f in (self._inflight, self._detecting) if f is not None]
        await asyncio.gather(*(asyncio.wrap_future(f) for f in running), return_exceptions=True)
        for track in self._tracks:
            track.stop()
        self._latest.close()
        # Ended sessions stay in memory for minutes for their results: drop the unprocessed frame, and the scaler (its
        # swscale context holds ~5 MiB of buffers; hundreds of short sessions would pin GBs).
        self.session.take_pending()
        self.session.finish()
        self._to_bgr, self._detect_to_bgr = BgrConverter(), BgrConverter()
        await self._flush_channel()
        if self.pc is not None:
            await self.pc.close()
        self.pc, self._channel, self._webcam, self._inflight, self._decoder = None, None, None, None, None
        self._tracks.clear()
        # What the session's codecs, frames and converters used is freed by now, but it leaves holes in malloc's
        # heaps that glibc keeps for good: ~3 MiB of RSS a session without this (stream.memory). A few ms.
        trim_s = await asyncio.to_thread(release_free_memory)
        self.ended_at = self._loop.time()
        s = self.session
        log.info(
            "session %s: %d ticks processed, %d skipped, %d errors; memory trimmed in %.3f s",
            *(self.id, s.processed, s.sampler.skipped, s.errors, trim_s),
        )

    async def _flush_channel(self) -> None:
        """Give the `end` message up to END_FLUSH_S to leave before the connection closes."""
        deadline = self._loop.time() + END_FLUSH_S
        channel = self._channel
        while channel is not None and channel.readyState == "open" and channel.bufferedAmount > 0:
            if self._loop.time() >= deadline:
                return
            await asyncio.sleep(0.02)


class SessionsFull(Exception):
    """The server already runs its maximum of live sessions."""

    def __init__(self, max_live: int) -> None:
        super().__init__(f"the server is busy: it runs at most {max_live} live sessions at once; try again in a minute")
        self.max_live = max_live


class Reservation:
    """A place under the session cap, held from before an offer's first await: `fill` it with the session, or
    `release` it (both idempotent)."""

    def __init__(self, registry: SessionRegistry) -> None:
        self._registry: SessionRegistry | None = registry

    def fill(self, runner: SessionRunner) -> None:
        registry, self._registry = self._registry, None
        if registry is not None:
            registry.reserved -= 1
            registry.sessions[runner.id] = runner

    def release(self) -> None:
        registry, self._registry = self._registry, None
        if registry is not None:
            registry.reserved -= 1


class SessionRegistry:
    """Live sessions, and ended ones whose results are kept for `retention_s` seconds for download."""

    def __init__(self, retention_s: float, max_live: int) -> None:
        self.retention_s = retention_s
        self.max_live = max_live
        self.sessions: dict[str, SessionRunner] = {}
        self.reserved = 0  # places taken by offers being answered

    def reserve(self, now: float) -> Reservation:
        """Take a place under the cap at once (no await), or SessionsFull; `now`: loop time, for the purge."""
        self.purge(now)
        if len(self.live()) + self.reserved >= self.max_live:
            raise SessionsFull(self.max_live)
        self.reserved += 1
        return Reservation(self)

    def live(self) -> list[SessionRunner]:
        return [r for r in self.sessions.values() if r.live]

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
