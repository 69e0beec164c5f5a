"""Reference jobs kept in the store and shared by every server process on the same database and library:
`StoredJobs` is `ReferenceJobs` whose jobs are written to the store (stream.store) when submitted, whenever their
state, progress or error changes (checked every `SYNC_INTERVAL_S`) and at shutdown.

Who builds what: a job is built by the one server that holds its claim in the store. A server takes a job only
while it builds nothing (its builds run one at a time): a job submitted to an idle server is its own at once;
one submitted to a busy server is written unclaimed, and the first idle server that sees it claims it (oldest
first). A claim is a lease of `lease_s`, renewed while the server lives; claiming is one conditional UPDATE, so
of two servers claiming together exactly one wins. When a server dies its lease runs out and another server (or
the same one restarted) takes the job over; a server shutting down gives its claims up at once. Every server lists
every pending job and every job that ended in the last `LISTED_S` (`pending`, `get`) from the store, a second
behind at most.

When a server takes a job left queued or running (after a restart, or from a dead server), the build starts over
(a half-built folder is removed first; extraction cannot resume mid-video), keeping its ids, title, backend and
tick rate: a user's upload is never lost. Three cases end instead: the reference already exists (the build
finished just before its server died) → done; the video to build is gone → failed, with a reason the user is
shown; the backend is one this server does not offer → failed (a cluster's servers offer the same backends).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from pose.pipeline import ModelCatalog
from stream.references import Job, JobState, ReferenceJobs, ReferenceLibrary, RemoteExtraction, new_id
from stream.store import Store, StoredJob

log = logging.getLogger(__name__)

SYNC_INTERVAL_S = 1.0
JOB_LEASE_S = 30.0  # a dead server's jobs wait this long for another server
UPLOAD_IDLE_S = 600.0  # an upload not written to for this long, and of no job, is a leftover
CLEAN_INTERVAL_S = 3600.0
LISTED_S = 3600.0  # another server's job is listed (`get`) this long after it ended
PENDING = (str(JobState.QUEUED), str(JobState.RUNNING))
SOURCE_LOST = "the server restarted and the video to build was no longer there; upload it again"


@dataclass(frozen=True)
class _Build:
    source: Path
    fps: float
    remove_source: bool
    created_at: float


class StoredJobs(ReferenceJobs):
    """`ReferenceJobs` kept in `store` and claimed by `owner` (this process, a random id by default) for
    `lease_s` at a time; sources are stored relative to `data_dir` when they are under it."""

    def __init__(
        self,
        library: ReferenceLibrary,
        models: ModelCatalog,
        executor: concurrent.futures.ThreadPoolExecutor,
        store: Store,
        data_dir: Path,
        clock: Callable[[], float] = time.time,
        lease_s: float = JOB_LEASE_S,
        owner: str | None = None,
        remote: Callable[[str], RemoteExtraction] | None = None,
    ) -> None:
        super().__init__(library, models, executor, remote)
        self.store = store
        self.data_dir = data_dir
        self.clock = clock
        self.lease_s = lease_s
        self.owner = owner or new_id()
        self._builds: dict[str, _Build] = {}
        self._mine: set[str] = set()  # the jobs this process holds: it builds them and writes them
        self._unclaimed: set[str] = set()  # submitted here while busy, to be written for any server to claim
        self._written: dict[str, tuple[str, float, str | None]] = {}
        self._flushing: asyncio.Task[None] | None = None
        self._renewed = 0.0
        self._cleaned = 0.0

    def enqueue(self, job: Job, source: Path, fps: float, remove_source: bool) -> Job:
        """A job submitted here: built here at once when this server is idle, else left for any idle server."""
        created = self._builds[job.id].created_at if job.id in self._builds else self.clock()
        self._builds[job.id] = _Build(source, fps, remove_source, created)
        if job.id in self._mine or not self.busy():
            self._mine.add(job.id)
            super().enqueue(job, source, fps, remove_source)
        else:
            self.jobs[job.id] = job
            self._unclaimed.add(job.id)
        self.flush_soon()
        return job

    def busy(self) -> bool:
        """Whether this server has a build queued or running."""
        return any(self.jobs[i].state in (JobState.QUEUED, JobState.RUNNING) for i in self._mine if i in self.jobs)

    async def clear_leftovers(self) -> None:
        """Remove what builds and uploads left behind (`ReferenceLibrary.clear_leftovers`), keeping the sources of
        pending jobs, the folders of builds whose server still holds them, and uploads being received."""
        now = self.clock()
        stored = await self.store.run(self.store.load_jobs, PENDING)
        keep = {self._path(job.source) for job in stored}
        live = [job.reference for job in stored if job.owner is not None and (job.lease_until or 0.0) >= now]
        keep |= {(self.library.building / reference).resolve() for reference in live}
        keep |= {(self.library.building / self.jobs[i].reference).resolve() for i in self._mine if i in self.jobs}
        await asyncio.to_thread(self.library.clear_leftovers, frozenset(keep), now - UPLOAD_IDLE_S)
        self._cleaned = now

    async def resume(self) -> list[Job]:
        """At start-up: list the cluster's jobs and take one left queued or running if there is one free (see the
        module docstring); the jobs taken."""
        return await self.sync()

    async def sync(self) -> list[Job]:
        """Write this server's changes, renew its claims, refresh the other servers' jobs and, when idle, claim the
        oldest free one; the jobs taken."""
        await self.flush()
        now = self.clock()
        if self._mine and now - self._renewed >= self.lease_s / 3:
            await self.store.run(self.store.renew_leases, self.owner, now + self.lease_s)
            self._renewed = now
        stored = await self.store.run(self.store.recent_jobs, now - LISTED_S)
        self._refresh(stored)
        if self.busy():
            return []
        for candidate in stored:
            free = candidate.owner is None or (candidate.lease_until or 0.0) < now
            if candidate.id in self._mine or candidate.state not in PENDING or not free:
                continue
            if await self.store.run(self.store.claim_job, candidate.id, self.owner, now, self.lease_s):
                return [self._take(candidate)]
        return []

    def _refresh(self, stored: list[StoredJob]) -> None:
        """Other servers' jobs as the store has them (the pending ones and those that ended recently)."""
        for row in stored:
            if row.id not in self._mine and row.id not in self._unclaimed:
                self._copy(row)

    def _copy(self, stored: StoredJob) -> None:
        job = self.jobs.get(stored.id)
        if job is None:
            job = self.jobs[stored.id] = Job(stored.id, stored.reference, stored.title, stored.pose)
        job.state, job.progress, job.error = JobState(stored.state), stored.progress, stored.error

    def _take(self, stored: StoredJob) -> Job:
        """Build a job this server has just claimed (see the module docstring for the cases that end at once)."""
        job = Job(id=stored.id, reference=stored.reference, title=stored.title, pose=stored.pose)
        source = self._path(stored.source)
        self._builds[job.id] = _Build(source, stored.fps, stored.remove_source, stored.created_at)
        self._mine.add(job.id)
        shutil.rmtree(self.library.building / job.reference, ignore_errors=True)  # its last server's half build
        if self.library.get(job.reference) is not None:
            job.state, job.progress = JobState.DONE, 1.0
        elif not source.is_file():
            job.state, job.error = JobState.FAILED, SOURCE_LOST
        elif job.pose not in self.models.names:
            job.state, job.error = JobState.FAILED, f"the server no longer offers the {job.pose} backend"
        else:
            self.enqueue(job, source, stored.fps, stored.remove_source)
            log.info("reference job %s (%s): taken over to build", job.id, stored.state)
            return job
        self.jobs[job.id] = job
        self.flush_soon()
        log.info("reference job %s was left %s: now %s", job.id, stored.state, job.state)
        return job

    def flush_soon(self) -> None:
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self.flush(), name="reference-jobs-flush")

    async def flush(self) -> None:
        """Write this server's jobs whose state, progress or error changed since they were last written, and the
        jobs submitted here for any server."""
        for job_id in list(self._unclaimed):
            if await self.store.run(self.store.save_job, self._stored(self.jobs[job_id], None)):
                self._written[job_id] = self._seen(self.jobs[job_id])
            self._unclaimed.discard(job_id)
        for job_id in list(self._mine):
            job = self.jobs.get(job_id)
            if job is None or self._written.get(job_id) == self._seen(job):
                continue
            if not await self.store.run(self.store.save_job, self._stored(job, self.owner)):
                log.warning("reference job %s: another server took it over (this one held it too long)", job_id)
                self._mine.discard(job_id)
                continue
            self._written[job_id] = self._seen(job)
            if job.state == JobState.DONE:
                await self.save_references()

    @staticmethod
    def _seen(job: Job) -> tuple[str, float, str | None]:
        return (str(job.state), round(job.progress, 2), job.error)

    async def save_references(self) -> int:
        """List the library's references in the store (those not yet listed); how many were new."""
        metas = await asyncio.to_thread(self.library.list)
        now = self.clock()
        rows = [
            {
                "id": meta.id,
                "title": meta.title,
                "backend": meta.pose,
                "meta": asdict(meta),
                "path": self._relative(self.library.root / meta.id),
                "created_at": now,
            }
            for meta in metas
        ]
        return await self.store.run(self.store.save_references, rows)

    async def flush_forever(self, interval: float = SYNC_INTERVAL_S) -> None:
        """`sync` every `interval`, and clear leftovers every `CLEAN_INTERVAL_S`."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sync()
                if self.clock() - self._cleaned >= CLEAN_INTERVAL_S:
                    await self.clear_leftovers()
            except Exception:
                log.exception("syncing the reference jobs with the store failed")

    async def close(self) -> None:
        """Stop the builds (`ReferenceJobs.close`), write where every job of this server stands and give up its
        claims, so another server (or the next start) takes them at once."""
        await super().close()
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
        await self.flush()
        await self.store.run(self.store.release_jobs, self.owner)

    def _stored(self, job: Job, owner: str | None) -> StoredJob:
        build = self._builds[job.id]
        now = self.clock()
        return StoredJob(
            id=job.id,
            reference=job.reference,
            title=job.title,
            pose=job.pose,
            state=str(job.state),
            progress=job.progress,
            error=job.error,
            source=self._relative(build.source),
            fps=build.fps,
            remove_source=build.remove_source,
            created_at=build.created_at,
            updated_at=now,
            owner=owner,
            lease_until=None if owner is None else now + self.lease_s,
        )

    def _relative(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.data_dir.resolve()))
        except ValueError:
            return str(path.resolve())

    def _path(self, stored: str) -> Path:
        return (self.data_dir / stored).resolve()
