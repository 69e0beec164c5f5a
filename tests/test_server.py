"""The HTTP API against the real app: the reference library (upload → job → video/CSV), seeding, offer
validation. Real models, real footage; the WebRTC sessions themselves are in test_live.py."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import aiohttp
import av
import pandas as pd
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiortc import VideoStreamTrack

from harness.server import settings_for
from pose.csvio import CSV_COLUMNS
from pose.models import DEFAULT_BACKEND
from pose.pipeline import Models
from server import JOBS, LIBRARY, SESSIONS, create_app
from stream.live import peer_connection
from tests.live_support import Clips, SeededLibrary, eventually, open_peer_connections

pytest_plugins = ("tests.live_fixtures",)

Client = TestClient[web.Request, web.Application]


async def wait_for_job(client: Client, job: str, timeout: float = 120.0) -> list[dict[str, Any]]:
    """Poll the job until it is done or failed; returns every status seen."""
    seen: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        response = await client.get(f"/api/jobs/{job}")
        assert response.status == 200
        seen.append(await response.json())
        if seen[-1]["state"] in ("done", "failed"):
            return seen
        await asyncio.sleep(0.2)
    pytest.fail(f"job {job} not finished after {timeout} s: {seen[-1]}")


def upload_form(path: Path | None, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        form.add_field(name, value)
    if path is not None:
        form.add_field("video", path.read_bytes(), filename=path.name, content_type="video/mp4")
    return form


@pytest.fixture
async def empty_client(aiohttp_client: Any, tmp_path: Path, models: Models) -> Client:
    client: Client = await aiohttp_client(create_app(settings_for(tmp_path, max_upload_bytes=4 * 2**20), models))
    return client


async def test_upload_builds_a_playable_reference(empty_client: Client, clips: Clips, tmp_path: Path) -> None:
    response = await empty_client.post("/api/references", data=upload_form(clips.short, title=" Short  clip ", fps="5"))
    assert response.status == 202, await response.text()
    created = await response.json()
    states = await wait_for_job(empty_client, created["job"])
    assert states[-1] == {
        "state": "done",
        "progress": 1.0,
        "error": None,
        "reference": created["id"],
        "pose": DEFAULT_BACKEND,
    }
    progress = [s["progress"] for s in states]
    assert progress == sorted(progress) and all(0 <= p <= 1 for p in progress)

    listing = await (await empty_client.get("/api/references")).json()
    assert listing == [
        {
            "id": created["id"],
            "title": "Short clip",
            "fps": 5.0,
            "duration_s": 4.0,
            "ticks": 20,
            "pose": DEFAULT_BACKEND,
        }
    ]

    ranged = await empty_client.get(f"/api/references/{created['id']}/video", headers={"Range": "bytes=100-199"})
    assert ranged.status == 206
    assert ranged.headers["Content-Range"].startswith("bytes 100-199/")
    assert ranged.content_type == "video/mp4"
    assert len(await ranged.read()) == 100

    video = tmp_path / "downloaded.mp4"
    video.write_bytes(await (await empty_client.get(f"/api/references/{created['id']}/video")).read())
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        first = next(container.decode(stream))
        assert first.pts == 0  # the browser's timeline starts where the CSV's does

    csv_response = await empty_client.get(f"/api/references/{created['id']}/keypoints.csv")
    assert csv_response.status == 200
    frame = pd.read_csv(io.StringIO(await csv_response.text()))
    assert tuple(frame.columns) == CSV_COLUMNS
    assert frame[frame["person"] == 0]["tick"].tolist() == list(range(20))
    assert list(empty_client.app[LIBRARY].uploads.iterdir()) == []  # the upload was cleaned up


@pytest.mark.parametrize(
    ("make_request", "status", "message"),
    [
        (lambda c, clip: c.post("/api/references", json={"video": "x"}), 400, "multipart"),
        (lambda c, clip: c.post("/api/references", data=upload_form(None, title="t")), 400, "no 'video'"),
        (lambda c, clip: c.post("/api/references", data=upload_form(clip, fps="fast")), 400, "fps"),
        (lambda c, clip: c.post("/api/references", data=upload_form(clip, fps="0")), 400, "fps"),
        (lambda c, clip: c.post("/api/references", data=upload_form(clip, fps="1000")), 400, "fps"),
        (lambda c, clip: c.post("/api/references", data=upload_form(clip, title="x" * 5000)), 400, "too long"),
    ],
)
async def test_bad_uploads_are_refused(
    empty_client: Client, clips: Clips, make_request: Any, status: int, message: str
) -> None:
    response = await make_request(empty_client, clips.short)
    assert response.status == status
    assert message in (await response.json())["error"]
    assert list(empty_client.app[LIBRARY].uploads.iterdir()) == []
    assert empty_client.app[JOBS].jobs == {}


async def test_an_upload_that_is_not_a_video_is_refused(empty_client: Client, tmp_path: Path) -> None:
    fake = tmp_path / "dance.mp4"
    fake.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not really a video" * 1000)
    response = await empty_client.post("/api/references", data=upload_form(fake))
    assert response.status == 400
    error = (await response.json())["error"]
    assert error.startswith("not a readable video") and str(tmp_path) not in error  # no server paths leak
    assert list(empty_client.app[LIBRARY].uploads.iterdir()) == []


async def test_an_upload_over_the_size_limit_gets_413(empty_client: Client, tmp_path: Path) -> None:
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\x00" * (5 * 2**20))
    response = await empty_client.post("/api/references", data=upload_form(big))
    assert response.status == 413
    assert "limit" in (await response.json())["error"]
    assert list(empty_client.app[LIBRARY].uploads.iterdir()) == []


@pytest.mark.parametrize(
    "path",
    [
        "/api/jobs/nope",
        "/api/jobs/AAAAAAAAAAAAAAAAAAAAAA",
        "/api/references/AAAAAAAAAAAAAAAAAAAAAA/video",
        "/api/references/..%2F..%2Fetc/keypoints.csv",
        "/api/references/.uploads/video",
    ],
)
async def test_unknown_ids_are_404(empty_client: Client, path: str) -> None:
    response = await empty_client.get(path)
    assert response.status == 404


async def test_an_empty_library_is_seeded_in_the_background(
    aiohttp_client: Any, tmp_path: Path, clips: Clips, models: Models
) -> None:
    settings = settings_for(tmp_path, seed_video=clips.short, seed_fps=5.0)
    client: Client = await aiohttp_client(create_app(settings, models))
    pending = await (await client.get("/api/jobs")).json()
    assert len(pending) == 1 and pending[0]["state"] in ("queued", "running")
    states = await wait_for_job(client, pending[0]["job"])
    assert states[-1]["state"] == "done"
    listing = await (await client.get("/api/references")).json()
    assert [(r["id"], r["ticks"]) for r in listing] == [(pending[0]["reference"], 20)]
    assert clips.short.is_file()  # the seed is read, never moved or deleted


# --- signalling


@pytest.fixture
async def seeded_client(aiohttp_client: Any, seeded: SeededLibrary, models: Models) -> Client:
    client: Client = await aiohttp_client(create_app(settings_for(seeded.data_dir), models))
    return client


async def make_offer(video: str | None = "sendrecv", channel: bool = True) -> str:
    """A real aiortc offer with the given video direction (None: no video) and optionally the control channel."""
    pc = peer_connection()
    try:
        if channel:
            pc.createDataChannel("control")
        if video is not None:
            pc.addTransceiver(VideoStreamTrack() if video != "recvonly" else "video", direction=video)
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


def without_lines(sdp: str, prefix: str) -> str:
    return "\r\n".join(line for line in sdp.splitlines() if not line.startswith(prefix)) + "\r\n"


async def test_malformed_offers_get_400_and_leave_no_peer_connection(
    seeded_client: Client, seeded: SeededLibrary
) -> None:
    good = await make_offer()
    ref = seeded.reference.id
    cases: list[tuple[Any, int, str]] = [
        ("not json", 400, "JSON"),
        ([1, 2], 400, "JSON object"),
        ({"type": "offer", "reference": ref}, 400, '"sdp"'),
        ({"sdp": good, "type": "answer", "reference": ref}, 400, '"type"'),
        ({"sdp": good, "type": "offer"}, 400, '"reference"'),
        ({"sdp": good, "type": "offer", "reference": ref, "fps": "ten"}, 400, '"fps"'),
        ({"sdp": good, "type": "offer", "reference": ref, "fps": True}, 400, '"fps"'),
        ({"sdp": good, "type": "offer", "reference": ref, "fps": 3}, 400, "divide"),
        ({"sdp": good, "type": "offer", "reference": ref, "fps": 20}, 400, "fps"),
        ({"sdp": good, "type": "offer", "reference": ref, "mirror": "yes"}, 400, '"mirror"'),
        ({"sdp": "garbage", "type": "offer", "reference": ref}, 400, "not a valid offer"),
        ({"sdp": await make_offer(video=None), "type": "offer", "reference": ref}, 400, "no video"),
        ({"sdp": await make_offer(channel=False), "type": "offer", "reference": ref}, 400, "data channel"),
        ({"sdp": await make_offer(video="sendonly"), "type": "offer", "reference": ref}, 400, "sendrecv"),
        (
            {"sdp": await make_offer(video="recvonly"), "type": "offer", "reference": ref, "returned_video": False},
            400,
            "sendonly or sendrecv",
        ),
        ({"sdp": good, "type": "offer", "reference": ref, "returned_video": "no"}, 400, '"returned_video"'),
        ({"sdp": without_lines(good, "a=ice-ufrag"), "type": "offer", "reference": ref}, 400, "ICE credentials"),
        ({"sdp": good, "type": "offer", "reference": "AAAAAAAAAAAAAAAAAAAAAA"}, 404, "no such reference"),
    ]
    for body, status, message in cases:
        data = body if isinstance(body, str) else json.dumps(body)
        response = await seeded_client.post("/api/offer", data=data, headers={"Content-Type": "application/json"})
        assert response.status == status, (body, await response.text())
        assert message in (await response.json())["error"], body
    assert seeded_client.app[SESSIONS].sessions == {}
    await eventually(lambda: not open_peer_connections(), what="every peer connection closed")
