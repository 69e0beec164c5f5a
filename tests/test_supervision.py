"""Every task of a live session is supervised: each kind (the webcam consumer, the inference loop, the drain of
an extra track, the timer) killed by a cancel or an exception ends the session with a reason the page is told
in an `end` message, and releases everything. Real server, a real aiortc peer sending two video tracks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiortc  # noqa: F401  (pylibsrtp segfaults when it initialises after TensorFlow: load it first)
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

from harness.server import settings_for
from pose.pipeline import Models
from server import SESSIONS, create_app
from stream.live import SessionRunner, peer_connection
from stream.protocol import CONTROL_LABEL, offer_body, parse_answer, parse_server_message
from tests.live_support import SeededLibrary, eventually, open_peer_connections

pytest_plugins = ("tests.live_fixtures",)

Client = TestClient[web.Request, web.Application]


class Peer:
    """A real aiortc peer: the control channel and two synthetic video tracks (the second is drained)."""

    def __init__(self) -> None:
        self.pc: RTCPeerConnection = peer_connection()
        self.ends: list[str] = []
        channel = self.pc.createDataChannel(CONTROL_LABEL)

        @channel.on("message")
        def on_message(message: str | bytes) -> None:
            parsed = parse_server_message(message)
            if parsed is not None and parsed["type"] == "end":
                self.ends.append(parsed["reason"])

        self.pc.addTrack(VideoStreamTrack())
        self.pc.addTrack(VideoStreamTrack())

    async def start(self, client: Client, reference: str) -> SessionRunner:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        body = offer_body(self.pc.localDescription.sdp, reference)
        response = await client.post("/api/offer", data=body, headers={"Content-Type": "application/json"})
        assert response.status == 200, await response.text()
        answer = parse_answer(await response.json())
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        runner = client.app[SESSIONS].get(answer["session"])
        assert runner is not None
        return runner


def task_of(runner: SessionRunner, kind: str) -> asyncio.Task[Any]:
    (task,) = [t for t in asyncio.all_tasks() if t.get_name() == f"session-{runner.id}-{kind}"]
    return task


async def boom(*args: Any) -> Any:
    raise RuntimeError("injected failure")


def raising_once(original: Callable[..., Any]) -> Callable[..., Any]:
    """`original`, except that its first call raises."""
    calls = [0]

    def wrapper(*args: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("injected failure")
        return original(*args)

    return wrapper


def kill(runner: SessionRunner, kind: str, mode: str) -> None:
    if kind == "timer":
        runner.core.handle_timer = raising_once(runner.core.handle_timer)  # type: ignore[method-assign]
    elif mode == "cancel":
        task_of(runner, kind).cancel()
    elif kind == "inference":
        runner.session.take_pending = raising_once(runner.session.take_pending)  # type: ignore[method-assign]
        runner._wake.set()
    else:  # the track the task reads raises on its next frame
        webcam = runner._webcam
        tracks = [t for t in runner._tracks if t.kind == "video" and hasattr(t, "_queue")]
        track = webcam if kind == "webcam" else next(t for t in tracks if t is not webcam)
        assert track is not None
        track.recv = boom  # type: ignore[method-assign]


EXPECTED = {
    ("webcam", "raise"): "an internal error stopped reading your webcam",
    ("webcam", "cancel"): "the server stopped reading your webcam (an internal error)",
    ("inference", "raise"): "an internal error stopped the pose analysis",
    ("inference", "cancel"): "the server stopped the pose analysis (an internal error)",
    ("drain-video", "raise"): "an internal error stopped reading your other tracks",
    ("drain-video", "cancel"): "the server stopped reading your other tracks (an internal error)",
    ("timer", "raise"): "an internal error stopped the session's timer",
}


@pytest.mark.parametrize(("kind", "mode"), list(EXPECTED))
async def test_a_dead_task_ends_its_session_with_a_reason_and_releases_everything(
    aiohttp_client: Any, seeded: SeededLibrary, models: Models, kind: str, mode: str
) -> None:
    client: Client = await aiohttp_client(create_app(settings_for(seeded.data_dir), models))
    peer = Peer()
    try:
        runner = await peer.start(client, seeded.reference.id)
        names: Callable[[], list[str]] = runner.task_names
        await eventually(
            lambda: runner.session.frames > 0 and {f"session-{runner.id}-drain-video"} <= set(names()),
            30,
            "webcam frames and the drain task",
        )
        kill(runner, kind, mode)
        await eventually(lambda: not runner.live, 30, "the session to end")
        await eventually(lambda: bool(peer.ends), 10, "the end message")
        print(f"\n{kind} ({mode}): ended with {runner.end_reason!r}; the page was told {peer.ends}")
        assert runner.end_reason == EXPECTED[kind, mode]
        assert peer.ends == [runner.end_reason]
        assert runner.pc is None and runner.task_names() == [] and runner._inflight is None
        assert runner._timer is None and runner.core.get_timer() is None
        assert client.app[SESSIONS].live() == [] and client.app[SESSIONS].reserved == 0
    finally:
        await peer.pc.close()
    await eventually(lambda: not open_peer_connections(), what="every peer connection closed")
