"""The store: sessions with their result files, references and reference jobs, in SQLite (the embedded default,
`<data-dir>/dancesync.db`) or PostgreSQL (`--database postgresql://...`). The tables are in `schema`, their
migrations (Alembic) in `migrations/`; `Store.upgrade` brings any database to the newest schema at start-up.

A thin shell: synchronous SQLAlchemy Core, run on the store's own single worker thread through `Store.run`, so
no call blocks the event loop. One thread rather than SQLAlchemy's asyncio extension: SQLite takes one writer at
a time anyway, Alembic is synchronous, writes queued from the loop happen in the order they were queued, and the
store sees a handful of statements per session (one write when it ends, a read per download), so one thread is
never the bottleneck, and no async driver (aiosqlite, psycopg's async mode) is needed.

Tokens are stored as SHA-256 digests only (`digest`) and compared in constant time (`same_digest`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import hashlib
import hmac
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, delete, event, insert, inspect, or_, select, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError

from stream.store.schema import jobs, references, session_files, sessions

T = TypeVar("T")
PENDING_STATES = ("queued", "running")
RACE_ATTEMPTS = 5
MIGRATION_LOCK = 0x64616E6365  # any constant: the key of PostgreSQL's advisory lock held while migrating
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DB_NAME = "dancesync.db"


def digest(token: str) -> str:
    """What the store keeps of a token: its SHA-256 in hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def same_digest(token: str, stored: str | None) -> bool:
    """Whether `token` hashes to `stored`, in constant time (a missing digest is compared too, and never matches)."""
    return hmac.compare_digest(digest(token), stored or "-" * 64) and stored is not None


def database_url(url: str | None, data_dir: Path) -> URL:
    """`url`, or SQLite at `<data_dir>/dancesync.db`; a bare `postgresql://` uses psycopg 3 (SQLAlchemy's own
    default is psycopg2, which the project does not install)."""
    parsed = make_url(url) if url else URL.create("sqlite", database=str(data_dir / DB_NAME))
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


@dataclass(frozen=True)
class StoredSession:
    """An ended session as kept: its record (`GET /api/sessions/{id}`), digests of its token and its profile's
    token, wall-clock times (UNIX s), the mean of its tick scores (None without ticks) and its result files by
    name (`keypoints.csv`, `scores.csv`, ...)."""

    id: str
    token_hash: str
    profile_hash: str | None
    reference: str
    title: str
    record: dict[str, Any]
    mean_score: float | None
    ticks: int
    created_at: float
    ended_at: float
    files: dict[str, str]

    def summary(self) -> dict[str, Any]:
        """The entry of `GET /api/profile/sessions`."""
        return {
            "session": self.id,
            "reference": self.reference,
            "title": self.title,
            "started": self.created_at,
            "ended": self.ended_at,
            "mean_score": None if self.mean_score is None else round(self.mean_score, 2),
            "ticks": self.ticks,
            "files": sorted(self.files),
        }


@dataclass(frozen=True)
class StoredJob:
    """A reference job as kept; `source` is relative to the data dir. `owner`: the server process that claimed it
    (None: nobody has), whose claim holds until `lease_until` (UNIX s) unless renewed (stream.jobstore)."""

    id: str
    reference: str
    title: str
    pose: str
    state: str
    progress: float
    error: str | None
    source: str
    fps: float
    remove_source: bool
    created_at: float
    updated_at: float
    owner: str | None = None
    lease_until: float | None = None


class Store:
    """The database at `url`. Its methods are synchronous; call them through `run` from the event loop."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self.engine: Engine = create_engine(url, pool_pre_ping=True)
        if url.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="store")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the store's thread (calls run one at a time, in the order they were made)."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self.engine.dispose()

    # --- schema

    def upgrade(self) -> str | None:
        """Migrate the database to the newest schema (`alembic upgrade head`); the revision it is at. Servers
        starting together migrate one at a time: PostgreSQL's advisory lock for the transaction (its DDL is
        transactional, so the next one finds the schema done), a file lock beside an SQLite database."""
        config = alembic_config()
        with _sqlite_lock(self.url), self.engine.begin() as connection:
            if self.url.get_backend_name() == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        return self.revision()

    def ping(self) -> bool:
        """The database answers (raises otherwise)."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1").scalar()
        return True

    def revision(self) -> str | None:
        with self.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()

    # --- sessions

    def save_session(self, session: StoredSession) -> None:
        row = {k: getattr(session, k) for k in sessions.c.keys()}
        files = [{"session": session.id, "name": n, "content": text} for n, text in session.files.items()]
        with self.engine.begin() as connection:
            connection.execute(delete(session_files).where(session_files.c.session == session.id))
            connection.execute(delete(sessions).where(sessions.c.id == session.id))
            connection.execute(insert(sessions), [row])
            if files:
                connection.execute(insert(session_files), files)

    def load_session(self, session_id: str, not_before: float = 0.0, file: str | None = None) -> StoredSession | None:
        """The session if it ended at or after `not_before`, with its file `file` only (or all with None)."""
        with self.engine.connect() as connection:
            found = connection.execute(
                select(sessions).where(sessions.c.id == session_id, sessions.c.ended_at >= not_before)
            ).first()
            if found is None:
                return None
            query = select(session_files.c.name, session_files.c.content).where(session_files.c.session == session_id)
            if file is not None:
                query = query.where(session_files.c.name == file)
            files = {name: content for name, content in connection.execute(query)}
        return StoredSession(**found._asdict(), files=files)

    def profile_sessions(
        self, profile_hash: str, reference: str | None = None, not_before: float = 0.0
    ) -> list[StoredSession]:
        """A profile's sessions (oldest first), of one reference or all; without their files' contents (the
        `files` map their names to "")."""
        query = select(sessions).where(sessions.c.profile_hash == profile_hash, sessions.c.ended_at >= not_before)
        if reference is not None:
            query = query.where(sessions.c.reference == reference)
        with self.engine.connect() as connection:
            rows = connection.execute(query.order_by(sessions.c.created_at, sessions.c.id)).all()
            names: dict[str, dict[str, str]] = {row.id: {} for row in rows}
            if rows:
                listed = select(session_files.c.session, session_files.c.name).where(
                    session_files.c.session.in_(list(names))
                )
                for session_id, name in connection.execute(listed):
                    names[session_id][name] = ""
        return [StoredSession(**row._asdict(), files=names[row.id]) for row in rows]

    def purge_sessions(self, before: float) -> int:
        """Delete the sessions that ended before `before` (UNIX s), with their files; how many."""
        with self.engine.begin() as connection:
            old = select(sessions.c.id).where(sessions.c.ended_at < before)
            connection.execute(delete(session_files).where(session_files.c.session.in_(old)))
            return connection.execute(delete(sessions).where(sessions.c.ended_at < before)).rowcount

    # --- references

    def save_references(self, rows: Iterable[dict[str, Any]]) -> int:
        """Add the references not yet listed (rows of the `references` table); how many were new. Servers sharing
        the library list the same new references at once: whoever inserts second reads again and adds the rest."""
        rows = list(rows)
        for attempt in range(RACE_ATTEMPTS):
            try:
                with self.engine.begin() as connection:
                    known = set(connection.execute(select(references.c.id)).scalars())
                    new = [row for row in rows if row["id"] not in known]
                    if new:
                        connection.execute(insert(references), new)
                return len(new)
            except IntegrityError:
                if attempt == RACE_ATTEMPTS - 1:
                    raise
        return 0

    def list_references(self) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            return [row._asdict() for row in connection.execute(select(references).order_by(references.c.created_at))]

    # --- jobs

    def save_job(self, job: StoredJob) -> bool:
        """Write `job`, new or not, unless another owner holds its row (a server whose lease ran out and was taken
        over): then nothing is written and False returned."""
        row = {k: getattr(job, k) for k in jobs.c.keys()}
        held = jobs.c.owner.is_(None) if job.owner is None else jobs.c.owner == job.owner
        with self.engine.begin() as connection:
            changed = connection.execute(update(jobs).where(jobs.c.id == job.id, held).values(row)).rowcount
            if changed:
                return True
            if connection.execute(select(jobs.c.id).where(jobs.c.id == job.id)).first() is not None:
                return False
            connection.execute(insert(jobs), [row])
        return True

    def recent_jobs(self, since: float) -> list[StoredJob]:
        """Jobs (oldest first) still queued or running, or updated at or after `since` (UNIX s)."""
        recent = or_(jobs.c.state.in_(PENDING_STATES), jobs.c.updated_at >= since)
        query = select(jobs).where(recent).order_by(jobs.c.created_at, jobs.c.id)
        with self.engine.connect() as connection:
            return [StoredJob(**row._asdict()) for row in connection.execute(query)]

    def load_job(self, job_id: str) -> StoredJob | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return None if row is None else StoredJob(**row._asdict())

    def claim_job(self, job_id: str, owner: str, now: float, lease_s: float) -> bool:
        """Take a queued or running job that nobody holds, or whose holder's lease ran out before `now`: one
        statement, so of servers claiming together exactly one gets it. True if `owner` now holds it."""
        free = or_(jobs.c.owner.is_(None), jobs.c.lease_until < now)
        claim = (
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.state.in_(PENDING_STATES), free)
            .values(owner=owner, lease_until=now + lease_s)
        )
        with self.engine.begin() as connection:
            return bool(connection.execute(claim).rowcount == 1)

    def renew_leases(self, owner: str, until: float) -> int:
        """Extend `owner`'s claims on its pending jobs to `until`; how many it still holds."""
        renew = update(jobs).where(jobs.c.owner == owner, jobs.c.state.in_(PENDING_STATES)).values(lease_until=until)
        with self.engine.begin() as connection:
            return int(connection.execute(renew).rowcount)

    def release_jobs(self, owner: str) -> int:
        """Give up `owner`'s claims (a server shutting down): its pending jobs can be taken at once."""
        release = update(jobs).where(jobs.c.owner == owner).values(owner=None, lease_until=None)
        with self.engine.begin() as connection:
            return int(connection.execute(release).rowcount)

    def load_jobs(self, states: tuple[str, ...] | None = None) -> list[StoredJob]:
        """Jobs (oldest first), in one of `states` or all."""
        query = select(jobs).order_by(jobs.c.created_at, jobs.c.id)
        if states is not None:
            query = query.where(jobs.c.state.in_(states))
        with self.engine.connect() as connection:
            return [StoredJob(**row._asdict()) for row in connection.execute(query)]


def alembic_config() -> Config:
    """Alembic's configuration for the store's migrations, without an alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@contextlib.contextmanager
def _sqlite_lock(url: URL) -> Iterator[None]:
    """An exclusive lock on `<database>.lock` for an SQLite file (nothing for other databases)."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        yield
        return
    with open(f"{url.database}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _sqlite_pragmas(connection: Any, record: object) -> None:
    """Foreign keys on; WAL, so a reader never waits for the writer; wait up to 10 s for a lock."""
    cursor = connection.cursor()
    for pragma in ("foreign_keys=ON", "journal_mode=WAL", "busy_timeout=10000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()
