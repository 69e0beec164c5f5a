"""Starting a live session, as one service whatever the transport: `SessionService.start(offer)`; the server's
load as admission sees it: `SessionService.load()`.

An offer is admitted on measured load (stream.load: the live sessions' kept ticks and tick times against their
budget, over the CPU count), within the hard cap `max_sessions`. The rule that makes both hold under
concurrency: the decision and the reservation of a place happen before the first await (nothing else can run
between them; a reserved place counts at the predicted cost of a session) and the place is released on any
failure. So offers over capacity are refused before anything is loaded for them, and a crowd of simultaneous
offers gets no more than the cap. Checks that cost nothing (the SDP, the reference, the backend's name) come
first, so a bad offer is told what is wrong with it even when the server is busy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
from collections.abc import Callable

import av
from aiortc import RTCSessionDescription

from pose.pipeline import ModelCatalog, Models
from stream.core import SessionLimits
from stream.live import SessionRegistry, SessionRunner, SessionsFull, check_offer_sdp
from stream.load import LoadGauge, LoadPolicy, LoadSnapshot
from stream.protocol import OfferError, OfferRequest
from stream.references import ReferenceLibrary, ReferenceMeta
from stream.session import DancerPoses, LiveSession

log = logging.getLogger(__name__)

SessionFactory = Callable[[DancerPoses, float | None, bool, Models], LiveSession[av.VideoFrame]]


class UnknownReference(LookupError):
    """The offer names a reference the library does not hold."""


class ServerLoaded(SessionsFull):
    """The measured load leaves no room for another session (a 503 like SessionsFull)."""

    def __init__(self, snapshot: LoadSnapshot) -> None:
        super().__init__(snapshot["max_sessions"])
        self.args = (
            f"the server is busy: its {snapshot['sessions']} live sessions use {snapshot['load']:.0%} of what it can "
            "carry and another would not fit; try again in a minute",
        )
        self.snapshot = snapshot


def cpu_count() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class SessionService:
    """Turns a validated offer into a running session (see the module docstring)."""

    def __init__(
        self,
        library: ReferenceLibrary,
        registry: SessionRegistry,
        executor: concurrent.futures.Executor,
        new_session: SessionFactory,
        models: ModelCatalog,
        limits: SessionLimits | None = None,
        load_policy: LoadPolicy | None = None,
    ) -> None:
        self.library = library
        self.registry = registry
        self.executor = executor
        self.new_session = new_session
        self.models = models
        self.limits = limits or SessionLimits()
        self._dancers: dict[str, DancerPoses] = {}
        self.gauge = LoadGauge(cpu_count(), registry.max_live, load_policy)

    def load(self) -> LoadSnapshot:
        """The server's load now: live sessions (and offers being answered), the load figure, the capacity
        estimate and whether an offer would be admitted (stream.load)."""
        return self.gauge.snapshot((r.id for r in self.registry.live()), self.registry.reserved)

    async def start(self, offer: OfferRequest) -> tuple[SessionRunner, RTCSessionDescription]:
        """The running session and its answer. OfferError (the offer cannot be used), UnknownReference, or
        stream.live.SessionsFull (over the hard cap, or ServerLoaded over the measured load: nothing was loaded)."""
        check_offer_sdp(offer.sdp, offer.returned_video)
        meta = self.library.get(offer.reference)
        if meta is None:
            raise UnknownReference(offer.reference)
        if offer.pose is not None:
            try:
                self.models.resolve(offer.pose)
            except ValueError as exc:
                raise OfferError(f'"pose": {exc}') from None
        now = asyncio.get_running_loop().time()
        self.registry.purge(now)
        load = self.load()  # the decision and the reservation before the first await
        if not load["admitting"] and len(self.registry.live()) + self.registry.reserved < self.registry.max_live:
            raise ServerLoaded(load)
        reservation = self.registry.reserve(now)
        try:
            runner = await self._run(offer, meta)
        except BaseException:
            reservation.release()
            raise
        reservation.fill(runner)
        log.info(
            "session %s: reference %s at %g ticks/s, mirror %s, %s (dancer: %s), %s; admitted at load %s",
            *(runner.id, meta.id, runner.session.fps, offer.mirror, runner.session.pose, meta.pose),
            *("annotated video" if offer.returned_video else "keypoints only", load),
        )
        assert runner.pc is not None and runner.pc.localDescription is not None
        return runner, runner.pc.localDescription

    async def session_for(
        self, meta: ReferenceMeta, pose: str | None, fps: float | None, mirror: bool
    ) -> LiveSession[av.VideoFrame]:
        """A new session on `meta` with backend `pose` (None: the reference's), as every session is made (a
        live one, or a recorded take's, stream.takes). OfferError for fps that does not divide the reference's."""
        dancer = await self._dancer(meta)
        models = await self._models(pose or meta.pose)
        try:
            return self.new_session(dancer, fps, mirror, models)
        except ValueError as exc:  # fps that does not divide the reference's tick rate
            raise OfferError(str(exc)) from None

    async def _run(self, offer: OfferRequest, meta: ReferenceMeta) -> SessionRunner:
        session = await self.session_for(meta, offer.pose, offer.fps, offer.mirror)
        runner = SessionRunner(
            session, self.executor, meta.id, self.limits, offer.mosaic, offer.returned_video, self._sample
        )
        try:
            await runner.answer(offer.sdp)
        except OfferError as exc:
            await runner.close(f"bad offer: {exc}")
            raise
        except BaseException:
            await runner.close("failed to answer")
            raise
        return runner

    def _sample(self, runner: SessionRunner, now: float) -> None:
        s = runner.session
        self.gauge.sample(runner.id, now, s.processed, s.sampler.skipped, s.stages.total_s())

    async def _models(self, pose: str | None) -> Models:
        """The models for `pose`; the reference's backend may be one this server no longer offers: then the
        default (the session warns)."""
        if pose is not None and pose not in self.models.names:
            pose = None
        return await asyncio.to_thread(self.models.get, pose)

    async def _dancer(self, meta: ReferenceMeta) -> DancerPoses:
        """The reference's dancer, read once; read again while its calibration or moves are still missing (a
        background job is computing them)."""
        dancer = self._dancers.get(meta.id)
        if dancer is None or dancer.calibration is None or dancer.moves is None:
            dancer = await asyncio.to_thread(self._read_dancer, meta)
            self._dancers[meta.id] = dancer
        return dancer

    def _read_dancer(self, meta: ReferenceMeta) -> DancerPoses:
        calibration, moves = self.library.scoring(meta)
        path, aspect = self.library.csv_path(meta.id), meta.width / meta.height
        return DancerPoses.from_csv(path, meta.fps, aspect, meta.pose, calibration, moves)
