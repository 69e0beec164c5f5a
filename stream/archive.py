"""Keeping ended sessions: each session started is watched, and when it has ended its record and result files go
to the store (stream.store) with digests of its token and of its profile's token. Ended sessions are then served
from the store, by any server process that shares the database and after restarts.

Retention: a stored session is kept `retention_s` after its end (None or 0: for ever); expired rows are deleted
at start-up and every `PURGE_INTERVAL_S`, and a read never returns an expired one in between.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from stream.live import SessionRunner
from stream.results import mean_score, session_files
from stream.store import Store, StoredSession, digest

log = logging.getLogger(__name__)

PURGE_INTERVAL_S = 3600.0


class SessionArchive:
    """Stores sessions as they end; `clock` is wall-clock time (UNIX s)."""

    def __init__(self, store: Store, retention_s: float | None, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.retention_s = retention_s or None
        self.clock = clock
        self.profiles: dict[str, str] = {}  # session id → its profile's digest, until the session is stored
        self._tasks: set[asyncio.Task[None]] = set()

    def not_before(self) -> float:
        """The oldest end time still kept (UNIX s)."""
        return 0.0 if self.retention_s is None else self.clock() - self.retention_s

    def watch(self, runner: SessionRunner, profile: str | None, title: str) -> None:
        """Store `runner`'s session once it has ended (`profile`: the raw profile token from the offer)."""
        if profile is not None:
            self.profiles[runner.id] = digest(profile)
        task = asyncio.create_task(self._keep(runner, title, self.clock()), name=f"archive-{runner.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _keep(self, runner: SessionRunner, title: str, started: float) -> None:
        await runner.ended.wait()
        session = runner.session
        stored = StoredSession(
            id=runner.id,
            token_hash=digest(runner.token),
            profile_hash=self.profiles.get(runner.id),
            reference=runner.reference,
            title=title,
            record=dict(runner.metadata()),
            mean_score=mean_score(session),
            ticks=len(session.scores),
            created_at=started,
            ended_at=self.clock(),
            files=session_files(session),
        )
        try:
            await self.store.run(self.store.save_session, stored)
        except Exception:  # still served from memory (stream.live.SessionRegistry) until its retention there
            log.exception("session %s: could not store its results", runner.id)
        else:
            self.profiles.pop(runner.id, None)  # the store answers for it from now on

    async def purge(self) -> int:
        if self.retention_s is None:
            return 0
        purged = await self.store.run(self.store.purge_sessions, self.not_before())
        if purged:
            log.info("deleted %d sessions that ended more than %g s ago", purged, self.retention_s)
        return purged

    async def purge_forever(self, interval: float = PURGE_INTERVAL_S) -> None:
        while True:
            try:
                await self.purge()
            except Exception:
                log.exception("purging old sessions failed")
            await asyncio.sleep(interval)

    async def close(self) -> None:
        """Wait until every ended session is stored (call after the live ones were ended)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)
