"""The store (stream.store) on SQLite and on a real PostgreSQL: migrations from an empty database, round trips,
retention; and through the real server: a live session's results after a restart, tokens kept only as digests,
profiles that see only their own sessions, a queued reference job that survives a restart."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import json
import secrets
from pathlib import Path
from typing import Any

import aiohttp
import pandas as pd
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url

from harness.server import AppServer, settings_for
from pose.pipeline import Models
from server import ARCHIVE, JOBS, SESSIONS, STORE
from stream.client import ClientResult, run_session
from stream.protocol import OfferError, offer_body, parse_offer_body
from stream.store import Store, StoredJob, StoredSession, alembic_config, database_url, digest, same_digest
from stream.store.schema import metadata, session_files, sessions
from tests.live_support import Clips, SeededLibrary, eventually

pytest_plugins = ("tests.live_fixtures", "tests.store_fixtures")


def open_store(url: str) -> Store:
    store = Store(database_url(url, Path()))
    store.upgrade()
    return store


def stored(session_id: str, ended_at: float, profile: str | None = None, reference: str = "r" * 22) -> StoredSession:
    return StoredSession(
        id=session_id,
        token_hash=digest(f"token-{session_id}"),
        profile_hash=None if profile is None else digest(profile),
        reference=reference,
        title="a dance",
        record={"session": session_id, "processed": 3, "warnings": ["é ☃"], "live": False},
        mean_score=61.25,
        ticks=3,
        created_at=ended_at - 30,
        ended_at=ended_at,
        files={"keypoints.csv": "tick,time_s\r\n0,0\r\n", "scores.csv": "tick,score\n0,61.25\n"},
    )


def profile_token() -> str:
    return secrets.token_urlsafe(32)


# --- the store itself, on both engines


def test_migrations_from_empty_to_head_match_the_schema(store_url: str) -> None:
    store = Store(database_url(store_url, Path()))
    try:
        assert store.revision() is None
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert store.upgrade() == head == "0002"
        assert store.upgrade() == head  # idempotent
        found = inspect(store.engine)
        assert set(found.get_table_names()) == {*metadata.tables, "alembic_version"}
        for name, table in metadata.tables.items():
            columns = {c["name"]: c for c in found.get_columns(name)}
            assert list(columns) == [c.name for c in table.columns], name
            assert {n: c["nullable"] for n, c in columns.items()} == {c.name: c.nullable for c in table.columns}
            primary = found.get_pk_constraint(name)["constrained_columns"]
            assert primary == [c.name for c in table.primary_key.columns], name
            indexed = {tuple(i["column_names"]) for i in found.get_indexes(name)}
            assert indexed >= {tuple(c.name for c in i.columns) for i in table.indexes}, name
    finally:
        store.close()


def test_sessions_round_trip_and_per_profile(store_url: str) -> None:
    store = open_store(store_url)
    try:
        a, b = profile_token(), profile_token()
        saved = [stored("s1", 1000.0, a), stored("s2", 2000.0, b), stored("s3", 3000.0, a, reference="q" * 22)]
        for session in saved:
            store.save_session(session)
        assert store.load_session("s1") == saved[0]
        assert store.load_session("s1", file="scores.csv") == dataclasses.replace(
            saved[0], files={"scores.csv": saved[0].files["scores.csv"]}
        )
        assert store.load_session("s1", not_before=1000.5) is None
        assert store.load_session("nope") is None
        assert [s.id for s in store.profile_sessions(digest(a))] == ["s1", "s3"]
        assert [s.id for s in store.profile_sessions(digest(a), reference="q" * 22)] == ["s3"]
        assert [s.id for s in store.profile_sessions(digest(b))] == ["s2"]
        assert store.profile_sessions(digest(profile_token())) == []
        listed = store.profile_sessions(digest(a))[0]
        assert listed.files == {"keypoints.csv": "", "scores.csv": ""}
        assert listed.summary()["files"] == ["keypoints.csv", "scores.csv"]
        store.save_session(dataclasses.replace(saved[0], ticks=4))  # saved again: replaced, not doubled
        assert store.load_session("s1") == dataclasses.replace(saved[0], ticks=4)
    finally:
        store.close()


def test_retention_purges_old_sessions_and_their_files(store_url: str) -> None:
    store = open_store(store_url)
    try:
        for session_id, ended in (("old", 100.0), ("edge", 200.0), ("new", 300.0)):
            store.save_session(stored(session_id, ended))
        assert store.purge_sessions(before=200.0) == 1
        assert store.purge_sessions(before=200.0) == 0
        with store.engine.connect() as connection:
            assert sorted(connection.execute(select(sessions.c.id)).scalars()) == ["edge", "new"]
            assert sorted(set(connection.execute(select(session_files.c.session)).scalars())) == ["edge", "new"]
    finally:
        store.close()


def test_jobs_round_trip(store_url: str) -> None:
    store = open_store(store_url)
    try:
        job = StoredJob("j1", "ref", "t", "movenet-lightning", "queued", 0.0, None, "x/y.upload", 10.0, True, 1.0, 1.0)
        store.save_job(job)
        running = dataclasses.replace(job, state="running", progress=0.5, updated_at=2.0)
        store.save_job(running)
        done = dataclasses.replace(job, id="j2", state="done", progress=1.0, created_at=3.0)
        store.save_job(done)
        assert store.load_jobs() == [running, done]
        assert store.load_jobs(("queued", "running")) == [running]
    finally:
        store.close()


def test_token_digests_compare_exactly() -> None:
    token = secrets.token_urlsafe(32)
    assert digest(token) == hashlib.sha256(token.encode()).hexdigest()
    assert same_digest(token, digest(token))
    assert not same_digest(token[:-1], digest(token))
    assert not same_digest(token, None)
    assert not same_digest("", None)


def test_database_url_defaults_to_sqlite_and_psycopg() -> None:
    assert database_url(None, Path("/srv/d")).render_as_string() == "sqlite:////srv/d/dancesync.db"
    assert database_url("postgresql://u:p@h/db", Path()).drivername == "postgresql+psycopg"
    assert database_url("postgresql+psycopg://u@h/db", Path()) == make_url("postgresql+psycopg://u@h/db")


def test_offer_profile_is_validated() -> None:
    token = profile_token()
    assert parse_offer_body(offer_body("v=0", "r", profile=token).encode()).profile == token
    assert parse_offer_body(offer_body("v=0", "r").encode()).profile is None
    for bad in (token[:-1], token + "A", token[:-1] + "=", 42, "", " " * 43):
        body = offer_body("v=0", "r").replace('"mirror"', f'"profile": {json.dumps(bad)}, "mirror"')
        with pytest.raises(OfferError, match='"profile"'):
            parse_offer_body(body.encode())


# --- through the real server


async def get(http: aiohttp.ClientSession, url: str, token: str) -> tuple[int, bytes]:
    async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status, await response.read()


def all_rows_text(store: Store) -> str:
    with store.engine.connect() as connection:
        return "\n".join(
            repr(row) for table in metadata.tables for row in connection.execute(text(f'SELECT * FROM "{table}"'))
        )


async def test_live_results_survive_a_restart_and_stay_per_profile(
    store_url: str, seeded: SeededLibrary, clips: Clips, models: Models
) -> None:
    """Two real sessions (two profiles) through the real server; the app is restarted on the same database."""
    settings = settings_for(seeded.data_dir, database_url=store_url)
    a, b = profile_token(), profile_token()
    reference = seeded.reference.id
    before: dict[str, dict[str, bytes]] = {}
    async with AppServer(settings, models) as server, aiohttp.ClientSession() as http:
        results: list[ClientResult] = await asyncio.gather(
            *(run_session(server.url, clips.webcam, reference, seconds=3, fps=5, profile=p) for p in (a, b))
        )
        registry = server.app[SESSIONS]
        for result in results:
            runner = registry.get(result.session)
            assert runner is not None
            await eventually(runner.ended.is_set, timeout=30, what="the session to end")
        await server.app[ARCHIVE].close()  # every ended session is in the store
        for result in results:
            base = f"{server.url}/api/sessions/{result.session}"
            before[result.session] = {
                name: (await get(http, f"{base}/{name}", result.token))[1]
                for name in ("keypoints.csv", "moves.csv", "scores.csv")
            }
            status, record = await get(http, base, result.token)
            assert status == 200
            before[result.session]["record"] = record
        store = server.app[STORE]
        rows = all_rows_text(store)

    for result, profile in zip(results, (a, b), strict=True):
        assert result.token not in rows and profile not in rows  # only their digests are kept
        assert digest(result.token) in rows and digest(profile) in rows
    if store_url.startswith("sqlite"):
        path = Path(make_url(store_url).database or "")
        for file in path.parent.glob(path.name + "*"):  # the database, its WAL and shared memory
            raw = file.read_bytes()
            assert not any(secret.encode() in raw for r in results for secret in (r.token, a, b)), file

    async with AppServer(settings, models) as server, aiohttp.ClientSession() as http:
        assert server.app[SESSIONS].sessions == {}  # nothing in memory: what follows comes from the store
        for result, own, other in ((results[0], a, b), (results[1], b, a)):
            base = f"{server.url}/api/sessions/{result.session}"
            saved = before[result.session]
            for name in ("keypoints.csv", "moves.csv", "scores.csv"):
                assert await get(http, f"{base}/{name}", result.token) == (200, saved[name])
                assert await get(http, f"{base}/{name}", own) == (200, saved[name])  # the profile's token too
                assert (await get(http, f"{base}/{name}", other))[0] == 404
                assert (await get(http, f"{base}/{name}", result.token[:-2] + "xx"))[0] == 404
                assert (await get(http, f"{base}/{name}", profile_token()))[0] == 404
            assert (await get(http, f"{base}/moves-not-there.csv", result.token))[0] == 404
            status, record = await get(http, base, result.token)
            assert status == 200 and record == saved["record"]
            assert (await get(http, base, other))[0] == 404

            status, body = await get(http, f"{server.url}/api/profile/sessions?reference={reference}", own)
            assert status == 200
            listed = json.loads(body)["sessions"]
            assert [s["session"] for s in listed] == [result.session]
            scores = pd.read_csv(io.BytesIO(saved["scores.csv"]))
            entry = listed[0]
            assert entry["reference"] == reference and entry["title"] == seeded.reference.title
            assert entry["ticks"] == len(scores) > 0
            assert abs(entry["mean_score"] - scores["score"].mean()) <= 0.01  # the CSV's scores are rounded to 0.01
            assert entry["started"] < entry["ended"]
            assert entry["files"] == ["keypoints.csv", "moves.csv", "scores.csv"]
        empty = await get(http, f"{server.url}/api/profile/sessions", profile_token())
        assert empty == (200, b'{"sessions": []}')
        assert (await get(http, f"{server.url}/api/profile/sessions", results[0].token[:40]))[0] == 403
        other_reference = await get(http, f"{server.url}/api/profile/sessions?reference={'Z' * 22}", a)
        assert other_reference == (200, b'{"sessions": []}')


async def test_an_expired_session_is_refused_and_purged(
    tmp_path: Path, seeded: SeededLibrary, clips: Clips, models: Models
) -> None:
    """retention_s applies to the store: a read past it is refused at once, and the purge deletes the rows."""
    settings = settings_for(seeded.data_dir, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", retention_s=2.0)
    async with AppServer(settings, models) as server, aiohttp.ClientSession() as http:
        result = await run_session(server.url, clips.webcam, seeded.reference.id, seconds=2, fps=5)
        runner = server.app[SESSIONS].get(result.session)
        assert runner is not None
        await eventually(runner.ended.is_set, timeout=30, what="the session to end")
        archive = server.app[ARCHIVE]
        await archive.close()
        url = f"{server.url}/api/sessions/{result.session}/scores.csv"
        assert (await get(http, url, result.token))[0] == 200
        store = server.app[STORE]
        found = await store.run(store.load_session, result.session)
        assert found is not None
        await eventually(lambda: archive.clock() > found.ended_at + 2.0, timeout=5, what="the retention to pass")
        server.app[SESSIONS].sessions.clear()  # as after the memory's own (shorter or equal) retention
        assert (await get(http, url, result.token))[0] == 404
        assert await archive.purge() == 1
        assert await store.run(store.load_session, result.session) is None


async def upload(http: aiohttp.ClientSession, url: str, video: Path, title: str) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("video", video.read_bytes(), filename=video.name, content_type="video/mp4")
    form.add_field("title", title)
    async with http.post(f"{url}/api/references", data=form) as response:
        assert response.status == 202, await response.text()
        return dict(await response.json())


async def test_queued_jobs_survive_a_restart(tmp_path: Path, clips: Clips, models: Models) -> None:
    """Two uploads, one worker: the app stops with one build running and one queued; the next start builds both
    under the ids the uploads were given."""
    settings = settings_for(tmp_path, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    async with AppServer(settings, models) as server, aiohttp.ClientSession() as http:
        jobs = [await upload(http, server.url, clips.short, f"upload {i}") for i in range(2)]
        assert [j.id for j in server.app[JOBS].pending()] == [j["job"] for j in jobs]
    after_stop = Store(database_url(settings.database_url, tmp_path))
    try:
        left = after_stop.load_jobs()
        assert [j.id for j in left] == [j["job"] for j in jobs]
        assert {j.state for j in left} <= {"queued", "running"}
        uploads = sorted(p.name for p in (tmp_path / "references" / ".uploads").iterdir())
        assert uploads == sorted(Path(j.source).name for j in left)  # kept for the resumed builds
    finally:
        after_stop.close()

    async with AppServer(settings, models) as server, aiohttp.ClientSession() as http:
        for job in jobs:
            async with http.get(f"{server.url}/api/jobs/{job['job']}") as response:
                assert response.status == 200
                assert (await response.json())["reference"] == job["id"]

        async def states() -> list[str]:
            return [str(server.app[JOBS].jobs[j["job"]].state) for j in jobs]

        deadline = asyncio.get_running_loop().time() + 600
        while await states() != ["done", "done"]:
            assert "failed" not in await states()
            assert asyncio.get_running_loop().time() < deadline, await states()
            await asyncio.sleep(0.5)
        async with http.get(f"{server.url}/api/references") as response:
            listed = {r["id"]: r["title"] for r in await response.json()}
        assert listed == {job["id"]: f"upload {i}" for i, job in enumerate(jobs)}
        assert list((tmp_path / "references" / ".uploads").iterdir()) == []
        store = server.app[STORE]
        await server.app[JOBS].flush()
        assert {j.state for j in await store.run(store.load_jobs)} == {"done"}
        catalogue = await store.run(store.list_references)
        assert {r["id"]: r["path"] for r in catalogue} == {j["id"]: f"references/{j['id']}" for j in jobs}


def test_server_options_for_the_store() -> None:
    from server import DEFAULT_RETENTION_DAYS, Settings, build_parser

    args = build_parser().parse_args(["--database", "postgresql://u@h/db", "--retention-days", "0"])
    assert (args.database, args.retention_days) == ("postgresql://u@h/db", 0)
    defaults = build_parser().parse_args([])
    assert defaults.database is None and defaults.retention_days == DEFAULT_RETENTION_DAYS == 90
    assert Settings().retention_s == 90 * 86400 and Settings().database_url is None
