"""Many servers on one database and one library: job claims and their leases on SQLite and PostgreSQL, a dead
server's job taken over, and a real cluster (harness.cluster: PostgreSQL, two `server.py` processes, HAProxy with
deploy/haproxy.cfg) through which Python clients dance: results read back through the other server, a server
killed mid-session, a drain on SIGTERM, and a restart of both; and the same cluster building a reference uploaded
through the balancer on a real local Ray cluster (harness.ray), which both servers then serve."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import secrets
import shutil
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harness.clips import cut_clip
from harness.cluster import Cluster, haproxy_config
from harness.ray import Cluster as RayCluster
from harness.server import ROOT, ServerProcess
from pose.calibration import SECOND_LOOK_NAME
from pose.pipeline import ModelCatalog, Models, extract_video
from stream.client import ClientResult, run_session
from stream.jobstore import SOURCE_LOST, StoredJobs
from stream.protocol import offer_body
from stream.references import CSV_NAME, VIDEO_NAME, JobState, ReferenceLibrary
from stream.store import Store, StoredJob, database_url
from tests.live_support import Clips, SeededLibrary

pytest_plugins = ("tests.live_fixtures", "tests.store_fixtures", "tests.ray_fixtures")

SECONDS = 3.0  # each client session
FPS = 5.0
RESULT_FILES = ("keypoints.csv", "scores.csv", "moves.csv")
# How a session ends when its client hangs up (which of its channel, track or connection the server sees close
# first varies); a server that ends it says otherwise ("server shutting down", a timeout).
CLIENT_ENDS = {"the page closed the control channel", "your webcam stopped sending video", "connection closed"}


def job_row(job_id: str, state: str = "queued", owner: str | None = None, lease: float | None = None) -> StoredJob:
    return StoredJob(
        job_id, "r" * 22, "t", "movenet-lightning", state, 0.0, None, "references/.uploads/gone.upload", 10.0, True,
        1.0, 1.0, owner, lease,
    )  # fmt: skip


def open_store(url: str) -> Store:
    store = Store(database_url(url, Path()))
    store.upgrade()
    return store


def test_one_claim_wins_and_a_lapsed_lease_is_taken_over(store_url: str) -> None:
    store = open_store(store_url)
    try:
        assert store.save_job(job_row("j1"))  # submitted to a busy server: nobody holds it
        assert store.claim_job("j1", "A", 100.0, 30.0)
        assert not store.claim_job("j1", "B", 110.0, 30.0)  # A holds it until 130
        assert store.renew_leases("A", 160.0) == 1
        assert not store.claim_job("j1", "B", 150.0, 30.0)
        assert store.claim_job("j1", "B", 161.0, 30.0)  # A stopped renewing: its lease lapsed
        taken = store.load_job("j1")
        assert taken is not None and (taken.owner, taken.lease_until) == ("B", 191.0)
        assert not store.save_job(dataclasses.replace(taken, owner="A", state="running"))  # A's late write is lost
        assert store.save_job(dataclasses.replace(taken, state="done", progress=1.0))
        assert not store.claim_job("j1", "C", 500.0, 30.0)  # done: nothing to claim
        assert store.release_jobs("B") == 1
        assert store.load_job("j1") == dataclasses.replace(
            taken, state="done", progress=1.0, owner=None, lease_until=None
        )
    finally:
        store.close()


async def test_a_dead_servers_job_is_taken_over_after_its_lease(tmp_path: Path, models: Models) -> None:
    """Two servers' job lists on one database, with their clock passed in: the job a dead server held is left alone
    until its lease lapses, then taken by exactly one of them, its half-built folder removed; the other lists it."""
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    library = ReferenceLibrary(tmp_path / "references")
    now = [100.0]
    pools = [concurrent.futures.ThreadPoolExecutor(1) for _ in range(2)]
    a, b = (
        StoredJobs(library, ModelCatalog(models), pool, store, tmp_path, lambda: now[0], 30.0, name * 22)
        for pool, name in zip(pools, "AB", strict=True)
    )
    dead = job_row("j" * 22, "running", owner="D" * 22, lease=130.0)
    half_built = library.building / dead.reference
    try:
        await store.run(store.save_job, dead)
        half_built.mkdir()
        now[0] = 110.0
        assert await a.sync() == [] and await b.sync() == []
        assert [j.id for j in a.pending()] == [j.id for j in b.pending()] == [dead.id]  # listed, not taken
        assert half_built.is_dir()
        now[0] = 131.0
        (taken,) = await a.sync()
        assert await b.sync() == []
        assert (taken.id, taken.state, taken.error) == (dead.id, JobState.FAILED, SOURCE_LOST)  # its upload is gone
        assert not half_built.exists()
        await a.flush()
        row = await store.run(store.load_job, dead.id)
        assert row is not None and (row.state, row.owner) == ("failed", a.owner)
        await b.sync()
        listed = b.get(dead.id)
        assert listed is not None and (listed.state, listed.error) == (JobState.FAILED, SOURCE_LOST)
    finally:
        for jobs in (a, b):
            await jobs.close()
        for pool in pools:
            pool.shutdown()
        store.close()


def test_the_cluster_config_is_deploy_haproxy_cfg_with_its_ports() -> None:
    template = (ROOT / "deploy" / "haproxy.cfg").read_text()
    config = haproxy_config(template, 9000, 9001, [9100, 9200, 9300])
    lines = [line.strip() for line in config.splitlines()]
    assert [line for line in lines if line.startswith("bind ")] == ["bind 127.0.0.1:9000", "bind 127.0.0.1:9001"]
    servers = [line for line in lines if line.startswith("server ")]
    assert servers == 2 * ["server s1 127.0.0.1:9100", "server s2 127.0.0.1:9200", "server s3 127.0.0.1:9300"]
    assert len(lines) - len(servers) == len(template.splitlines()) - 4  # nothing else changed


# --- the cluster


async def get(http: aiohttp.ClientSession, url: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(url, headers=headers) as response:
        body = await (response.json() if response.content_type == "application/json" else response.text())
        return response.status, body


async def results(http: aiohttp.ClientSession, base: str, session: str, token: str) -> dict[str, Any]:
    """A session's result files and tick count as `base` serves them, and whether it is still live (404 → {})."""
    status, record = await get(http, f"{base}/api/sessions/{session}", token)
    if status != 200:
        return {}
    found: dict[str, Any] = {"processed": record["processed"], "live": record["live"]}
    for name in RESULT_FILES:
        status, found[name] = await get(http, f"{base}/api/sessions/{session}/{name}", token)
        assert status == 200, (name, status)
    return found


async def stored(http: aiohttp.ClientSession, base: str, session: str, token: str) -> dict[str, Any]:
    """The session's results from `base` once it has them (another server stores them when the session ends)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while not (found := await results(http, base, session, token)) or found["live"]:
        assert loop.time() < deadline, f"{session} not stored, as {base} sees it"
        await asyncio.sleep(0.2)
    return found


def as_downloaded(result: ClientResult) -> dict[str, Any]:
    """What the client downloaded right after its session (the CSVs, final by then; the record may still be live)."""
    files = {"keypoints.csv": result.keypoints_csv, "scores.csv": result.scores_csv, "moves.csv": result.moves_csv}
    return {"processed": result.metadata["processed"], "live": False, **files}


async def health(http: aiohttp.ClientSession, server: ServerProcess) -> tuple[int, dict[str, Any]]:
    status, body = await get(http, f"{server.url}/api/health")
    return status, dict(body)


@pytest.fixture
def cluster_dir(tmp_path: Path, seeded: SeededLibrary) -> Path:
    """A data folder for the cluster: the seeded library and the fetched models."""
    data_dir = tmp_path / "data"
    shutil.copytree(seeded.data_dir / "references", data_dir / "references", ignore=shutil.ignore_patterns(".*"))
    (data_dir / "models").symlink_to(ROOT / "data" / "models")
    return data_dir


async def test_two_servers_behind_haproxy(
    cluster_dir: Path, tmp_path: Path, seeded: SeededLibrary, clips: Clips
) -> None:
    reference = seeded.reference.id
    profile = secrets.token_urlsafe(32)
    args = ["--drain-grace", "300"]
    cluster = await asyncio.to_thread(Cluster.start, cluster_dir, tmp_path / "cluster", 2, args)

    def dance(base: str, seconds: float = SECONDS) -> asyncio.Task[ClientResult]:
        session = run_session(base, clips.webcam, reference, seconds=seconds, fps=FPS, profile=profile)
        return asyncio.create_task(session)

    try:
        a, b = cluster.servers
        async with aiohttp.ClientSession() as http:
            for server in (a, b):
                status, report = await health(http, server)
                assert status == 200, report
                assert (report["ready"], report["database"], report["draining"], report["live"]) == (
                    True,
                    True,
                    False,
                    0,
                )
                assert report["capacity"] == report["admission"]["max_sessions"] and report["load"] == 0.0
            assert (await health(http, a))[1]["instance"] != (await health(http, b))[1]["instance"]

            # 1. A session through the balancer; its results read back through each server directly.
            first = await dance(cluster.url)
            assert first.metadata["processed"] > 0 and first.end_reason is None
            for server in (a, b):
                assert await stored(http, server.url, first.session, first.token) == as_downloaded(first)
            assert await end_reason(http, cluster.url, first.session, first.token) in CLIENT_ENDS
            ended = {first.session: (first.token, as_downloaded(first))}

            # 2. A session on each server; one server is killed mid-session, the other's session ends normally.
            doomed, survivor = dance(a.url, 30), dance(b.url)
            await eventually_live(http, a, 1)
            await eventually_live(http, b, 1)
            a.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(a.process.wait, 30)
            kept = await survivor
            with contextlib.suppress(Exception):
                await asyncio.wait_for(doomed, 60)
            assert doomed.done() and doomed.exception() is not None  # its server is gone
            assert kept.end_reason is None and kept.metadata["errors"] == 0 and kept.metadata["processed"] > 0
            assert await stored(http, cluster.url, kept.session, kept.token) == as_downloaded(kept)
            assert await end_reason(http, cluster.url, kept.session, kept.token) in CLIENT_ENDS
            ended[kept.session] = (kept.token, as_downloaded(kept))
            assert (await health(http, b))[1]["live"] == 0

            # 3. Server A back; then SIGTERM on it while it runs a session: offers to it get 503, the balancer
            # sends them to B; A's session goes on and ends normally, is stored, and A exits.
            a = await asyncio.to_thread(cluster.start_server, 0)
            await asyncio.to_thread(cluster.wait_up, 0)
            draining = dance(a.url, 6)
            await eventually_live(http, a, 1)
            a.process.send_signal(signal.SIGTERM)
            status, report = await health(http, a)
            while not report["draining"]:
                await asyncio.sleep(0.1)
                status, report = await health(http, a)
            assert status == 503 and (report["live"], report["accepting"]) == (1, False)
            offer = offer_body("v=0\r\n", reference)
            async with http.post(f"{a.url}/api/offer", data=offer) as response:
                assert response.status == 503 and response.headers["Retry-After"] == "60"
            moved = await dance(cluster.url)
            assert f"session {moved.session}:" in b.log.read_text()
            assert f"session {moved.session}:" not in a.log.read_text()
            ended[moved.session] = (moved.token, as_downloaded(moved))
            with contextlib.suppress(Exception):
                await draining  # its download may find A gone already
            assert await asyncio.to_thread(a.process.wait, 120) == 0
            status, listed = await get(http, f"{cluster.url}/api/profile/sessions", profile)
            assert status == 200
            sessions = [s["session"] for s in listed["sessions"]]
            assert set(ended) < set(sessions) and len(sessions) == len(ended) + 1  # the killed session never ended
            (last,) = set(sessions) - set(ended)
            drained = await stored(http, b.url, last, profile)
            assert drained["processed"] > 0
            assert await end_reason(http, b.url, last, profile) in CLIENT_ENDS  # ended by its client, in the grace

            # 4. Both servers restarted: nothing that had ended is lost, and any server answers for it.
            assert b.stop() == 0
            for index in (0, 1):
                await asyncio.to_thread(cluster.start_server, index)
            for index in (0, 1):
                await asyncio.to_thread(cluster.wait_up, index)
            for session, (token, downloaded) in ended.items():
                for base in (cluster.url, *(s.url for s in cluster.servers)):
                    assert await results(http, base, session, token) == downloaded
    finally:
        await asyncio.to_thread(cluster.stop)
    print(f"\ncluster: {len(ended) + 1} sessions stored across 2 servers, 1 lost with its killed server")


async def test_a_reference_uploaded_through_the_balancer_is_built_on_ray_and_served_by_both_servers(
    cluster_dir: Path, tmp_path: Path, sample_video: Path, models: Models, ray_cluster: RayCluster
) -> None:
    """Both servers join the Ray cluster; whichever takes the upload builds it there, and the other serves it."""
    clip = cut_clip(sample_video, tmp_path / "upload.mp4", 40)
    cluster = await asyncio.to_thread(
        Cluster.start, cluster_dir, tmp_path / "cluster", 2, ["--ray", ray_cluster.address]
    )
    try:
        async with aiohttp.ClientSession() as http:
            form = aiohttp.FormData()
            form.add_field("video", clip.read_bytes(), filename=clip.name, content_type="video/mp4")
            form.add_field("title", "through the balancer")
            form.add_field("fps", "10")
            async with http.post(f"{cluster.url}/api/references", data=form) as response:
                assert response.status == 202, await response.text()
                job = dict(await response.json())
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 600
            while True:
                status, found = await get(http, f"{cluster.url}/api/jobs/{job['job']}")
                if status == 200 and found["state"] in ("done", "failed"):
                    break
                assert loop.time() < deadline, f"job not finished: {status} {found}"
                await asyncio.sleep(0.5)
            assert (found["state"], found["error"], found["reference"]) == ("done", None, job["id"])
            logs = [server.log.read_text() for server in cluster.servers]
            assert all("reference builds extract on the Ray cluster" in log for log in logs)
            assert sum(f"reference {job['id']} (" in log for log in logs) == 1  # one server built it
            folder = cluster_dir / "references" / job["id"]
            assert extract_video(folder / VIDEO_NAME, 10, tmp_path / "local.csv", models).ticks > 0
            extract_video(folder / VIDEO_NAME, 10, tmp_path / "looked.csv", models, mirrored=True)
            assert (folder / CSV_NAME).read_bytes() == (tmp_path / "local.csv").read_bytes()
            assert (folder / SECOND_LOOK_NAME).read_bytes() == (tmp_path / "looked.csv").read_bytes()
            for server in cluster.servers:
                status, listed = await get(http, f"{server.url}/api/references")
                assert status == 200 and job["id"] in [r["id"] for r in listed], (server.name, listed)
                status, csv = await get(http, f"{server.url}/api/references/{job['id']}/keypoints.csv")
                assert (status, csv) == (200, (folder / CSV_NAME).read_text()), server.name
    finally:
        await asyncio.to_thread(cluster.stop)


async def end_reason(http: aiohttp.ClientSession, base: str, session: str, token: str) -> str:
    status, record = await get(http, f"{base}/api/sessions/{session}", token)
    assert status == 200 and not record["live"], record
    return str(record["end_reason"])


async def eventually_live(http: aiohttp.ClientSession, server: ServerProcess, live: int) -> None:
    """Until the server's health counts `live` sessions."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while (await health(http, server))[1]["live"] != live:
        assert loop.time() < deadline, f"{server.name}: not {live} live sessions"
        await asyncio.sleep(0.2)
