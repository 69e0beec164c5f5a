"""Live sessions end to end: the real server (in-process, on loopback), a real aiortc peer (the Python client)
playing real footage as the webcam, real models. Covers the tick bookkeeping, CSV exports and their tokens, cleanup
after the session, the sync of ticks to webcam frames, and analyzer failures."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import av
import numpy as np
import pandas as pd
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from harness.frameindex import read_index
from harness.server import settings_for
from pose.csvio import CSV_COLUMNS
from pose.parts import PART_NAMES
from pose.pipeline import FrameAnalyzer, Models
from pose.types import Detections, FrameAnalysis
from server import SERVICE, SESSIONS, create_app
from stream.client import ClientResult, run_session
from stream.live import SessionRunner
from stream.protocol import offer_body
from stream.session import MOVE_COLUMNS, SCORE_COLUMNS
from tests.live_support import (
    INDEXED_FPS,
    Clips,
    SeededLibrary,
    assert_ticks_accounted,
    eventually,
    media_threads,
    open_peer_connections,
)
from tests.test_server import make_offer

pytest_plugins = ("tests.live_fixtures",)

Client = TestClient[web.Request, web.Application]
JSON = {"Content-Type": "application/json"}


def url(client: Client) -> str:
    return str(client.make_url(""))


def runner_of(client: Client, result: ClientResult) -> SessionRunner:
    runner = client.app[SESSIONS].get(result.session)
    assert runner is not None
    return runner


async def assert_session_released(client: Client, runner: SessionRunner) -> None:
    """Ended, and nothing of it left running: no peer connection, no task, no media thread."""
    await eventually(lambda: not runner.live, what="the session to end")
    assert runner.pc is None
    assert runner.task_names() == []
    assert client.app[SESSIONS].live() == []
    await eventually(lambda: not open_peer_connections(), what="every peer connection closed")
    await eventually(lambda: not media_threads(), what="aiortc's decoder and player threads to stop")


@pytest.fixture
async def live_client(aiohttp_client: Any, seeded: SeededLibrary, models: Models) -> Client:
    client: Client = await aiohttp_client(create_app(settings_for(seeded.data_dir), models))
    return client


async def test_client_session_covers_the_elapsed_ticks(
    live_client: Client, seeded: SeededLibrary, clips: Clips
) -> None:
    """~10 s of real footage at 5 ticks/s against a 10 ticks/s reference: every other reference tick."""
    result = await run_session(url(live_client), clips.webcam, seeded.reference.id, seconds=10, fps=5)

    keypoints = pd.read_csv(io.StringIO(result.keypoints_csv))
    assert tuple(keypoints.columns) == CSV_COLUMNS
    ticks = keypoints["tick"].tolist()
    assert len(ticks) == len(set(ticks)) and ticks == sorted(ticks)
    assert (keypoints["person"] == 0).all()
    assert all(t % 2 == 0 and 0 <= t < seeded.reference.ticks for t in ticks)  # on the reference's timeline
    assert np.allclose(keypoints["time_s"], keypoints["tick"] / seeded.reference.fps)
    print(f"\nticks processed {len(ticks)} of {len(result.elapsed_ticks())} elapsed; {result.stats}")
    await assert_ticks_accounted(result, live_client.app[SESSIONS].get(result.session))

    scores = pd.read_csv(io.StringIO(result.scores_csv), keep_default_na=False)
    assert tuple(scores.columns) == SCORE_COLUMNS
    assert scores["tick"].tolist() == ticks
    assert scores["score"].between(0, 100).all()
    assert set(scores["worst"]) <= {*PART_NAMES, ""}
    assert sorted(m["tick"] for m in result.scores) == ticks  # one score message per processed tick
    assert result.frames_received > 0  # its pace is a figure of `make bench` (bench.live)

    runner = runner_of(live_client, result)
    await assert_session_released(live_client, runner)
    await check_export_tokens(live_client, result)


async def check_export_tokens(client: Client, result: ClientResult) -> None:
    """Kept after the end, for the token only: 403 without one, 404 for a wrong one or an unknown session."""
    base = f"/api/sessions/{result.session}"
    exports = (
        ("keypoints.csv", result.keypoints_csv),
        ("scores.csv", result.scores_csv),
        ("moves.csv", result.moves_csv),
    )
    for name, text in exports:
        by_query = await client.get(f"{base}/{name}", params={"token": result.token})
        assert by_query.status == 200 and await by_query.text() == text
        assert by_query.headers["Cache-Control"] == "no-store"
        assert (await client.get(f"{base}/{name}")).status == 403
        wrong = await client.get(f"{base}/{name}", headers={"Authorization": f"Bearer {result.token[:-2]}xx"})
        assert wrong.status == 404
        other = await client.get(
            f"/api/sessions/{'A' * 22}/{name}", headers={"Authorization": f"Bearer {result.token}"}
        )
        assert other.status == 404 and await other.text() == await wrong.text()  # indistinguishable


class IndexSpy:
    """The real analyzer, noting which frame (by its burned-in index) each tick was analysed on."""

    def __init__(self, inner: FrameAnalyzer, seen: list[int]) -> None:
        self.inner = inner
        self.seen = seen

    def analyze(self, image_bgr: np.ndarray, people: Detections | None = None) -> FrameAnalysis:
        index = read_index(image_bgr)
        assert index is not None, "the burned-in index is unreadable"
        self.seen.append(index)
        return self.inner.analyze(image_bgr, people)


async def test_each_tick_is_analysed_on_the_webcam_frame_of_that_tick(
    aiohttp_client: Any, seeded: SeededLibrary, clips: Clips, models: Models
) -> None:
    """The webcam shows frame i at i/30 s while the clock says the dancer is at 2 + i/30 s (a known offset, as
    after a seek): ticks start at the dancer's 2 s, and later ticks are analysed on later frames, each frame at
    most once. How close frame i lands to tick 10 * (2 + i/30) depends on how late frames arrive against clock
    messages, which a busy machine stretches; the range is printed, not asserted."""
    seen: list[int] = []
    app = create_app(settings_for(seeded.data_dir), models, lambda m: IndexSpy(FrameAnalyzer(m), seen))
    client: Client = await aiohttp_client(app)
    result = await run_session(url(client), clips.indexed, seeded.reference.id, seconds=6, start=2.0, fps=10)
    runner = runner_of(client, result)
    await eventually(lambda: not runner.live, what="the session to end")
    ticks = [s.tick for s in runner.session.scores]
    assert ticks and 0 <= len(seen) - len(ticks) <= 1  # the last analysis may have been in flight at the close
    assert min(ticks) >= 20  # nothing before the dancer's start
    offsets = [index / INDEXED_FPS + 2.0 - tick / 10 for index, tick in zip(seen, ticks, strict=False)]
    print(f"\nframe time - tick time over {len(ticks)} ticks: {min(offsets):+.3f} .. {max(offsets):+.3f} s")
    pairs = sorted(zip(ticks, seen, strict=False))
    assert all(f0 < f1 for (_, f0), (_, f1) in itertools.pairwise(pairs)), pairs


class FlakyAnalyzer:
    """The real analyzer, failing on the first call and every third after it (calls 1, 4, 7, ...)."""

    def __init__(self, inner: FrameAnalyzer) -> None:
        self.inner = inner
        self.calls = 0

    def analyze(self, image_bgr: np.ndarray, people: Detections | None = None) -> FrameAnalysis:
        self.calls += 1
        if self.calls % 3 == 1:
            raise RuntimeError("simulated analyzer failure")
        return self.inner.analyze(image_bgr, people)


async def test_analyzer_failures_are_counted_and_the_video_keeps_flowing(
    aiohttp_client: Any, seeded: SeededLibrary, clips: Clips, models: Models
) -> None:
    made: list[FlakyAnalyzer] = []

    def make(m: Models) -> FlakyAnalyzer:
        made.append(FlakyAnalyzer(FrameAnalyzer(m)))
        return made[-1]

    app = create_app(settings_for(seeded.data_dir), models, make)
    client: Client = await aiohttp_client(app)
    result = await run_session(url(client), clips.webcam, seeded.reference.id, seconds=4, fps=5)
    runner = runner_of(client, result)
    await assert_ticks_accounted(result, runner)
    session, (analyzer,) = runner.session, made
    finished = session.processed + session.errors  # every call but one in flight at the close
    assert 0 <= analyzer.calls - finished <= 1 and session.errors == (finished + 2) // 3
    assert session.sampler.skipped >= session.errors  # a failed tick counts as skipped, never as processed
    assert result.frames_received > 0
    assert len(pd.read_csv(io.StringIO(result.keypoints_csv))) == session.processed
    await assert_session_released(client, runner)


async def test_command_line_client_saves_video_and_csvs(
    live_client: Client, seeded: SeededLibrary, clips: Clips, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "stream.client", str(clips.webcam), "--reference", seeded.reference.id]
    command += ["--server", url(live_client), "--out", str(out), "--seconds", "3", "--fps", "5"]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode == 0, stderr.decode()
    assert "ticks scored" in stdout.decode()
    names = ["annotated.mp4", "keypoints.csv", "moves.csv", "scores.csv", "session.json"]
    assert sorted(p.name for p in out.iterdir()) == names
    assert tuple(pd.read_csv(out / "moves.csv").columns) == MOVE_COLUMNS
    assert tuple(pd.read_csv(out / "keypoints.csv").columns) == CSV_COLUMNS
    record = json.loads((out / "session.json").read_text())
    assert record["pose"] == record["dancer_pose"] == seeded.reference.pose and record["processed"] > 0
    with av.open(str(out / "annotated.mp4")) as container:
        assert container.streams.video[0].frames > 0


async def test_the_server_can_end_a_live_session(live_client: Client, seeded: SeededLibrary, clips: Clips) -> None:
    """Shutdown closes live sessions: the client sees the channel close, and the results stay downloadable."""
    registry = live_client.app[SESSIONS]
    task = asyncio.create_task(run_session(url(live_client), clips.webcam, seeded.reference.id, seconds=30, fps=5))
    await eventually(lambda: any(r.session.processed >= 3 for r in registry.live()), timeout=30, what="3 ticks")
    (runner,) = registry.live()
    await registry.close_all()
    assert runner.end_reason == "server shutting down"
    result = await asyncio.wait_for(task, timeout=15)
    assert result.session == runner.id and result.clock_end is not None and result.clock_end < 30  # ended early
    assert result.end_reason == "server shutting down"  # the page is told why, before the channel closes
    assert len(pd.read_csv(io.StringIO(result.keypoints_csv))) == runner.session.processed >= 3
    await assert_session_released(live_client, runner)


async def test_a_keypoints_only_session_returns_no_video_and_a_pose_message_per_tick(
    live_client: Client, seeded: SeededLibrary, clips: Clips
) -> None:
    """The offer asks for no returned video: nothing is drawn or sent back on the video track, and each
    processed tick's keypoints come on the data channel before its score."""
    result = await run_session(
        url(live_client), clips.webcam, seeded.reference.id, seconds=5, fps=10, returned_video=False
    )
    runner = runner_of(live_client, result)
    await assert_ticks_accounted(result, runner)
    assert result.frames_received == 0 and result.metadata["returned_video"] is False
    pose_ticks = [p["tick"] for p in result.poses]
    assert pose_ticks == [s["tick"] for s in result.scores]  # one pose message per score message, in order
    assert set(pose_ticks) <= {s.tick for s in runner.session.scores}
    assert all(len(p["keypoints"]) == len(PART_NAMES) for p in result.poses)
    assert any(k is not None for p in result.poses for k in p["keypoints"])  # someone is found in the footage
    counts = runner.session.stages.counts
    assert counts["draw"] == counts["encode"] == 0 and counts["pose"] == runner.session.processed
    assert 1 <= counts["detect"] <= runner.session.processed  # the first tick's, then the background runs
    assert result.metadata["tick_ms"]["n"] == runner.session.processed
    await assert_session_released(live_client, runner)


async def test_an_offer_over_the_measured_load_gets_503_with_retry_after(
    aiohttp_client: Any, seeded: SeededLibrary, clips: Clips, models: Models
) -> None:
    """With the admission threshold near zero, any measured session fills the server: a second offer is refused
    with 503 and Retry-After although the hard cap has room; an idle server takes a session again."""
    app = create_app(settings_for(seeded.data_dir, admit_load=1e-6, max_sessions=5), models)
    client: Client = await aiohttp_client(app)
    service = app[SERVICE]
    refused: list[tuple[int, str | None, dict[str, Any]]] = []

    async def second_offer(channel: Any) -> None:
        await eventually(lambda: service.load()["measured"] == 1, timeout=30, what="the session to be measured")
        response = await client.post(
            "/api/offer", data=offer_body(await make_offer(), seeded.reference.id), headers=JSON
        )
        refused.append((response.status, response.headers.get("Retry-After"), await response.json()))

    result = await run_session(
        url(client), clips.webcam, seeded.reference.id, seconds=9, fps=10, on_connected=second_offer
    )
    assert [(status, retry) for status, retry, _ in refused] == [(503, "60")]
    assert "busy" in refused[0][2]["error"]
    runner = runner_of(client, result)
    await eventually(lambda: not runner.live, what="the session to end")
    idle = service.load()
    assert (idle["sessions"], idle["admitting"]) == (0, True) and idle["session_cost"] is not None
    response = await client.post("/api/offer", data=offer_body(await make_offer(), seeded.reference.id), headers=JSON)
    assert response.status == 200
    await app[SESSIONS].close_all()
