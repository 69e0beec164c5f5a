"""Reliability, the fast forms: lost peers and orphan offers, analyzer failures,
backpressure, a short soak, hostile media through every upload path and the CLI, and SIGTERM. Real server, real
aiortc peers, real models on real footage; faults are injected around the real analyzer. The long forms are in
bench/soak.py (`make soak`)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from harness.clips import long_webcam
from harness.reliability import (
    FaultyAnalyzer,
    RssSampler,
    SlowAnalyzer,
    backpressure_run,
    fault_run,
    long_reference,
    soak_run,
)
from harness.server import ServerProcess, settings_for
from pose.pipeline import FrameAnalyzer, Models
from server import LIVE_POOL, SESSIONS, create_app
from stream.client import ClientError, run_session
from stream.live import SessionRunner, peer_connection
from stream.references import ReferenceLibrary
from tests.live_support import Clips, SeededLibrary, eventually, media_threads, open_peer_connections
from tests.malicious import corpus

pytest_plugins = ("tests.live_fixtures",)

Client = TestClient[web.Request, web.Application]
ROOT = Path(__file__).resolve().parent.parent


def url(client: Client) -> str:
    return str(client.make_url(""))


def released(runner: SessionRunner) -> bool:
    """Ended and nothing of it left: no peer connection, no task, no analysis in flight."""
    return not runner.live and runner.pc is None and not runner.task_names() and runner._inflight is None


@pytest.fixture
async def live_client(aiohttp_client: Any, seeded: SeededLibrary, models: Models) -> Client:
    client: Client = await aiohttp_client(create_app(settings_for(seeded.data_dir), models))
    return client


# --- 3. orphan offers and lost peers


CONNECT_TIMEOUT_S = 0.5
MEDIA_TIMEOUT_S = 2.0


async def test_orphan_offers_and_killed_clients_are_released(
    aiohttp_client: Any, seeded: SeededLibrary, models: Models, clips: Clips, tmp_path: Path
) -> None:
    """An offer whose ICE never completes, and a client process killed mid-call: each session's peer connection,
    tasks and analysis are released, for the reason the session core gives (its timeouts set short here)."""
    # The orphan: an offer whose sender disappears before answering anything.
    orphans: Client = await aiohttp_client(
        create_app(settings_for(seeded.data_dir, connect_timeout_s=CONNECT_TIMEOUT_S), models)
    )
    orphan_pc = peer_connection()
    orphan_pc.createDataChannel("control")
    orphan_pc.addTransceiver("video", direction="sendrecv")
    await orphan_pc.setLocalDescription(await orphan_pc.createOffer())
    body = {"sdp": orphan_pc.localDescription.sdp, "type": "offer", "reference": seeded.reference.id, "fps": 5}
    await orphan_pc.close()
    response = await orphans.post("/api/offer", json=body)
    assert response.status == 200
    orphan = orphans.app[SESSIONS].get((await response.json())["session"])
    assert orphan is not None

    # The killed client: a real client process, SIGKILLed once the session is scoring.
    live_client: Client = await aiohttp_client(
        create_app(settings_for(seeded.data_dir, media_timeout_s=MEDIA_TIMEOUT_S), models)
    )
    registry = live_client.app[SESSIONS]
    # --reference=ID: an id may start with "-" (token_urlsafe), which argparse would take for an option
    command = [sys.executable, "-m", "stream.client", str(clips.webcam), f"--reference={seeded.reference.id}"]
    command += ["--server", url(live_client), "--out", str(tmp_path / "out"), "--seconds", "60", "--fps", "5"]
    process = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.DEVNULL)
    try:
        await eventually(lambda: any(r.session.processed >= 3 for r in registry.live()), 120, "3 scored ticks")
    finally:
        process.kill()
        await process.wait()
    (lost,) = registry.live()

    await eventually(lambda: released(lost), 60, "the lost client's session to be released")
    await eventually(lambda: released(orphan), 60, "the orphan offer to be released")
    print(f"\nkilled client: {lost.end_reason}; orphan offer: {orphan.end_reason}")
    assert lost.end_reason == f"nothing from the client for {MEDIA_TIMEOUT_S:g} s"
    assert orphan.end_reason == f"not connected after {CONNECT_TIMEOUT_S:g} s"
    assert registry.live() == [] and orphans.app[SESSIONS].live() == []
    await eventually(lambda: not open_peer_connections(), what="every peer connection closed")
    await eventually(lambda: not media_threads(), what="aiortc's media threads to stop")
    assert live_client.app[LIVE_POOL]._work_queue.empty()
    assert list((seeded.data_dir / "references" / ".uploads").iterdir()) == []


async def test_an_upload_cut_off_midway_leaves_no_temp_file(live_client: Client, seeded: SeededLibrary) -> None:
    """A client that disconnects halfway through an upload: the partial file is removed."""
    uploads = seeded.data_dir / "references" / ".uploads"
    boundary = "reliability"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="x.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    assert live_client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", live_client.server.port)
    writer.write(
        b"POST /api/references HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {10 * 2**20}\r\n\r\n".encode()
        + head
        + bytes(2 * 2**20)
    )
    await writer.drain()
    await eventually(lambda: any(uploads.iterdir()), 10, "the upload to start")
    writer.transport.abort()  # the client vanishes
    started = time.monotonic()
    await eventually(lambda: not any(uploads.iterdir()), 10, "the partial upload to be removed")
    print(f"\npartial upload removed {time.monotonic() - started:.2f} s after the client vanished")
    del reader


# --- 4. analyzer failures


async def test_analyzer_failures_never_stop_the_returned_video(
    aiohttp_client: Any, seeded: SeededLibrary, models: Models, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """1 in 10 analyses raising for 3 s, then every one for 10 s: the returned video keeps coming while every
    analysis fails, each failure is counted, and the page's stats report them while it happens. The returned
    frame rate and the longest gap are figures of `make soak` (bench.soak, faults)."""
    faulty: list[FaultyAnalyzer] = []

    def make(m: Models) -> FaultyAnalyzer:
        faulty.append(FaultyAnalyzer(FrameAnalyzer(m), every=10, sparse_s=3.0, solid_s=10.0))
        return faulty[-1]

    data_dir = seeded.data_dir
    reference = long_reference(ReferenceLibrary(data_dir / "references"), seeded.reference, 30)
    webcam = long_webcam(ROOT / "data" / "samples" / "vtest.avi", tmp_path_factory.mktemp("w") / "w.mp4", 20)
    client: Client = await aiohttp_client(create_app(settings_for(data_dir), models, make))
    figures = await fault_run(url(client), webcam, reference.id, faulty, seconds=16)
    print(f"\n{figures}")
    (runner,) = client.app[SESSIONS].sessions.values()
    await eventually(lambda: not runner.live, what="the session to end")
    errors = runner.session.errors
    assert figures.raised > 0 and 0 <= figures.raised - errors <= 1  # the last one may be in flight at the close
    assert figures.fps_solid > 0  # returned frames kept arriving while every analysis failed
    assert figures.stats_with_errors > 0 and 0 < figures.errors_reported <= errors


# --- 5. backpressure


async def test_slow_inference_keeps_the_queue_and_the_lag_bounded(
    aiohttp_client: Any, seeded: SeededLibrary, models: Models, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Each analysis 0.25 s slower than the real one, at 10 ticks/s (0.1 s a tick), for 30 s."""
    data_dir = seeded.data_dir
    reference = long_reference(ReferenceLibrary(data_dir / "references"), seeded.reference, 40)
    webcam = long_webcam(ROOT / "data" / "samples" / "vtest.avi", tmp_path_factory.mktemp("w") / "w.mp4", 32)
    app = create_app(settings_for(data_dir), models, lambda m: SlowAnalyzer(FrameAnalyzer(m), 0.25))
    client: Client = await aiohttp_client(app)
    figures = await backpressure_run(url(client), app[SESSIONS], webcam, reference.id, seconds=30, fps=10)
    print(f"\n{figures}")
    assert figures.analysis_s > figures.tick_period_s
    assert figures.max_depth <= 2  # the mailbox and the one in flight; frame ages and rates: `make soak`
    assert figures.skipped > 0 and figures.processed > 0
    assert figures.rss_end_mib - figures.rss_start_mib < 64  # 30 s is short for a slope: `make soak` runs 5 min


# --- 6. soak


async def test_short_soak_leaves_nothing_behind(live_client: Client, seeded: SeededLibrary, clips: Clips) -> None:
    """20 sessions of 2 s, back to back: threads, descriptors and tasks return to where they were; RSS levels."""
    registry = live_client.app[SESSIONS]
    await soak_run(url(live_client), registry, clips.webcam, seeded.reference.id, cycles=2, seconds=2, every=2)
    figures = await soak_run(url(live_client), registry, clips.webcam, seeded.reference.id, 20, 2.0, every=5)
    for sample in figures.samples:
        print(sample)
    first, last = figures.samples[0], figures.samples[-1]
    assert figures.failures == 0
    assert last["threads"] <= first["threads"] + 2
    assert last["fds"] <= first["fds"] + 5
    assert last["tasks"] <= first["tasks"] + 2
    assert last["live_sessions"] == 0
    assert figures.rss_growth_last_half < 0.05


# --- 7. hostile media


@pytest.fixture(scope="module")
def trap() -> Any:
    """A loopback HTTP server that must never be asked for anything; yields (url, hits)."""
    hits: list[str] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    stop = False

    def serve() -> None:
        while not stop:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            hits.append(conn.recv(1024).decode(errors="replace"))
            conn.close()

    import threading

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/segment.ts", hits
    stop = True
    thread.join()
    server.close()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, sample_video: Path, clips: Clips, trap: Any) -> dict[str, Path]:
    return corpus(tmp_path_factory.mktemp("hostile"), sample_video, trap[0], clips.short)


UPLOAD_PEAK_MIB = 150.0
CLI_TIME_S = 120.0  # a hang guard only: how fast a bad file is refused is not a test's business
CLI_PEAK_MIB = 300.0


async def test_hostile_uploads_get_a_clear_4xx_and_the_server_keeps_serving(
    aiohttp_client: Any, tmp_path: Path, models: Models, hostile: dict[str, Path], clips: Clips, trap: Any
) -> None:
    client: Client = await aiohttp_client(create_app(settings_for(tmp_path), models))
    outcomes = {}
    with RssSampler() as rss:
        for name, path in hostile.items():
            form = aiohttp.FormData(default_to_multipart=True)
            form.add_field("video", path.read_bytes(), filename=path.name, content_type="video/mp4")
            started = time.monotonic()
            response, listing = await asyncio.gather(
                client.post("/api/references", data=form), client.get("/api/references")
            )
            seconds = time.monotonic() - started
            body = await response.json()
            outcomes[name] = (response.status, round(seconds, 2), body.get("error"))
            assert listing.status == 200  # others are served meanwhile
    for name, outcome in outcomes.items():
        print(f"{name:>16}: {outcome}")
    print(f"peak RSS {rss.peak - rss.baseline:+.0f} MiB over {rss.baseline:.0f}")
    for name, (status, seconds, error) in outcomes.items():
        assert 400 <= status < 500 and error and str(tmp_path) not in error, name
    assert rss.peak - rss.baseline < UPLOAD_PEAK_MIB
    assert trap[1] == []  # no URL in a playlist was fetched
    assert list((tmp_path / "references" / ".uploads").iterdir()) == []
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("video", clips.short.read_bytes(), filename="ok.mp4", content_type="video/mp4")
    assert (await client.post("/api/references", data=form)).status == 202  # and a real video still works


# Runs argv and prints its peak RSS (KiB). A child forked from pytest (1 GB with TensorFlow) would report pytest's
# RSS as its own peak (Linux keeps the pre-exec high-water mark), so the command runs under this small parent.
PEAK_WRAPPER = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)
"""


def run_measured(command: list[str], timeout: float) -> tuple[int, str, float, float]:
    """(exit status, stderr, seconds, peak RSS MiB) of a command."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", PEAK_WRAPPER, *command], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    return done.returncode, done.stderr, time.monotonic() - started, int(done.stdout.split()[-1]) / 1024


@pytest.mark.parametrize("command", ["extract", "image"])
async def test_hostile_files_fail_the_cli_cleanly(
    hostile: dict[str, Path], tmp_path: Path, trap: Any, command: str
) -> None:
    async def one(name: str, path: Path) -> tuple[str, int, str, float, float]:
        out = tmp_path / f"{name}.csv"
        argv = [sys.executable, "-m", "pose", command, str(path)]
        argv += ["--fps", "10", "--out", str(out)] if command == "extract" else []
        code, stderr, seconds, peak = await asyncio.to_thread(run_measured, argv, CLI_TIME_S)
        assert not out.exists()
        return name, code, stderr.strip(), seconds, peak

    results = await asyncio.gather(*(one(name, path) for name, path in hostile.items()))
    for name, code, stderr, seconds, peak in results:
        print(f"{command} {name:>16}: exit {code} in {seconds:.1f} s, peak {peak:.0f} MiB: {stderr[-120:]}")
    for name, code, stderr, seconds, peak in results:
        assert code == 2 and stderr.startswith("error:") and len(stderr.splitlines()) == 1, (name, stderr)
        assert peak < CLI_PEAK_MIB, name
    assert trap[1] == []


# --- 12. graceful shutdown


async def test_sigterm_closes_sessions_cancels_jobs_and_leaves_no_partial_file(
    seeded: SeededLibrary, clips: Clips, tmp_path: Path, sample_video: Path
) -> None:
    """A real `server.py` process with a live session and a reference being built gets SIGTERM."""
    data_dir = tmp_path / "data"
    shutil.copytree(seeded.data_dir / "references", data_dir / "references", ignore=shutil.ignore_patterns(".*"))
    (data_dir / "models").symlink_to(ROOT / "data" / "models")
    args = ["server.py", "--data-dir", str(data_dir), "--no-seed", "--drain-grace", "0"]  # no grace: end them now
    server = await asyncio.to_thread(ServerProcess.start, args, tmp_path / "server.log")
    base = server.url
    try:
        async with aiohttp.ClientSession() as http:
            session = asyncio.create_task(
                run_session(base, clips.webcam, seeded.reference.id, seconds=60, fps=5), name="sigterm-client"
            )
            form = aiohttp.FormData(default_to_multipart=True)
            form.add_field("video", clips.reference.read_bytes(), filename="long.mp4", content_type="video/mp4")
            async with http.post(f"{base}/api/references", data=form) as r:
                assert r.status == 202
                job = (await r.json())["job"]
            for _ in range(1200):  # until the build runs and the session is live on the server (a busy machine is slow)
                async with http.get(f"{base}/api/jobs/{job}") as r:
                    state = (await r.json())["state"]
                async with http.get(f"{base}/api/health", params={"check": "ready"}) as r:
                    live = (await r.json())["live"]
                if (state == "running" and live >= 1) or session.done():
                    break
                await asyncio.sleep(0.1)
            assert not session.done() and live >= 1, "the session was not live when SIGTERM was to be sent"
            await asyncio.sleep(3)  # the session scores a few ticks, the job gets into its work
        sent = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(server.process.wait, 30)
        exit_s = time.monotonic() - sent
        with contextlib.suppress(aiohttp.ClientError, OSError, ClientError):  # the results download may find it gone
            await asyncio.wait_for(session, 20)
        client_s = time.monotonic() - sent
    finally:
        server.stop(timeout=0)
    log_text = server.log.read_text()
    print(f"\nserver exited {code} {exit_s:.1f} s after SIGTERM; the client saw the end within {client_s:.1f} s")
    assert code == 0, log_text[-2000:]
    assert "ends: server shutting down" in log_text
    references = data_dir / "references"
    # The interrupted build's upload is kept whole for its job, which the store queues again at the next start
    # (docs/store.md); nothing half-built or half-written is left.
    assert list((references / ".building").iterdir()) == []
    kept = list((references / ".uploads").iterdir())
    assert len(kept) == 1 and kept[0].suffix == ".upload" and kept[0].stat().st_size > 0, kept
    assert all((folder / "meta.json").is_file() for folder in references.iterdir() if not folder.name.startswith("."))
    assert not [p for p in data_dir.rglob("*") if p.name.endswith((".part", ".tmp"))]
