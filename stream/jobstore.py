"""Reference jobs that survive a restart: `StoredJobs` is `ReferenceJobs` whose jobs are written to the store
(stream.store) when submitted, whenever their state, progress or error changes (checked every `FLUSH_INTERVAL_S`)
and at shutdown.

At the next start (`resume`), each job left queued or running is queued again, in its original order, with its
ids, title, backend and tick rate: a user's upload is not lost to a restart, and a build that was running starts
over (its half-built folder is removed at start-up; a build cannot continue from the middle of a video). Two cases
end instead: the reference already exists (the build finished just before the server died) → done; the video to
build is gone → failed, with a reason the user is shown.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from pose.pipeline import ModelCatalog
from stream.references import Job, JobState, ReferenceJobs, ReferenceLibrary
from stream.store import Store, StoredJob

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 1.0
PENDING = (str(JobState.QUEUED), str(JobState.RUNNING))
SOURCE_LOST = "the server restarted and the video to build was no longer there; upload it again"


@dataclass(frozen=True)
class _Build:
    source: Path
    fps: float
    remove_source: bool
    created_at: float


class StoredJobs(ReferenceJobs):
    """`ReferenceJobs` kept in `store`; sources are stored relative to `data_dir` when they are under it."""

    def __init__(
        self,
        library: ReferenceLibrary,
        models: ModelCatalog,
        executor: concurrent.futures.ThreadPoolExecutor,
        store: Store,
        data_dir: Path,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(library, models, executor)
        self.store = store
        self.data_dir = data_dir
        self.clock = clock
        self._builds: dict[str, _Build] = {}
        self._written: dict[str, tuple[str, float, str | None]] = {}
        self._flushing: asyncio.Task[None] | None = None

    def enqueue(self, job: Job, source: Path, fps: float, remove_source: bool) -> Job:
        created = self._builds[job.id].created_at if job.id in self._builds else self.clock()
        self._builds[job.id] = _Build(source, fps, remove_source, created)
        super().enqueue(job, source, fps, remove_source)
        self.flush_soon()
        return job

    async def pending_sources(self) -> frozenset[Path]:
        """The videos of the stored jobs still to build (kept by `ReferenceLibrary.clear_leftovers`)."""
        stored = await self.store.run(self.store.load_jobs, PENDING)
        return frozenset(self._path(job.source) for job in stored)

    async def resume(self) -> list[Job]:
        """Queue again the stored jobs left queued or running (see the module docstring); the jobs queued."""
        resumed = []
        for stored in await self.store.run(self.store.load_jobs, PENDING):
            job = Job(id=stored.id, reference=stored.reference, title=stored.title, pose=stored.pose)
            source = self._path(stored.source)
            self._builds[job.id] = _Build(source, stored.fps, stored.remove_source, stored.created_at)
            if self.library.get(job.reference) is not None:
                job.state, job.progress = JobState.DONE, 1.0
            elif not source.is_file():
                job.state, job.error = JobState.FAILED, SOURCE_LOST
            elif job.pose not in self.models.names:
                job.state, job.error = JobState.FAILED, f"the server no longer offers the {job.pose} backend"
            else:
                self.enqueue(job, source, stored.fps, stored.remove_source)
                resumed.append(job)
                continue
            self.jobs[job.id] = job
            log.info("reference job %s left %s at the last shutdown: now %s", job.id, stored.state, job.state)
        if resumed:
            log.info("resumed %d reference jobs left queued or running at the last shutdown", len(resumed))
        await self.flush()
        return resumed

    def flush_soon(self) -> None:
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self.flush(), name="reference-jobs-flush")

    async def flush(self) -> None:
        """Write the jobs whose state, progress or error changed since they were last written."""
        for job in list(self.jobs.values()):
            if job.id not in self._builds:  # not a build (`ReferenceJobs.track`): not kept
                continue
            seen = (str(job.state), round(job.progress, 2), job.error)
            if self._written.get(job.id) == seen:
                continue
            await self.store.run(self.store.save_job, self._stored(job))
            self._written[job.id] = seen
            if job.state == JobState.DONE:
                await self.save_references()

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

    async def flush_forever(self, interval: float = FLUSH_INTERVAL_S) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush()
            except Exception:
                log.exception("writing the reference jobs to the store failed")

    async def close(self) -> None:
        """Stop the builds (`ReferenceJobs.close`) and write where every job stands."""
        await super().close()
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
        await self.flush()

    def _stored(self, job: Job) -> StoredJob:
        build = self._builds[job.id]
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
            updated_at=self.clock(),
        )

    def _relative(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.data_dir.resolve()))
        except ValueError:
            return str(path.resolve())

    def _path(self, stored: str) -> Path:
        return (self.data_dir / stored).resolve()
