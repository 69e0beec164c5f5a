"""A WebRTC echo peer for the live benchmark's transport baseline: no models, no analysis.

    python -m bench.echo [--port 8090]

It answers the same endpoints the Python client uses (`/api/references`, `/api/offer`, the session CSVs) and sends
every webcam frame it receives straight back, unchanged, as soon as it is decoded. Latency through it is what
WebRTC on loopback costs by itself: the client's VP8 encode, the server's jitter buffer and decode, the server's
encode, the client's jitter buffer and decode.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
from collections.abc import AsyncIterator

import av
from aiohttp import web
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

REFERENCE = {"id": "echo", "title": "echo (no analysis)", "fps": 10.0, "duration_s": 3600.0, "ticks": 36000}
PEERS = web.AppKey("peers", set[RTCPeerConnection])


class EchoTrack(MediaStreamTrack):
    """Each received frame, as it comes."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.source = source

    async def recv(self) -> av.VideoFrame:
        frame = await self.source.recv()
        if not isinstance(frame, av.VideoFrame):
            raise MediaStreamError("expected video frames")
        return frame


async def references(request: web.Request) -> web.Response:
    return web.json_response([REFERENCE])


async def offer(request: web.Request) -> web.Response:
    body = await request.json()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    peers: set[RTCPeerConnection] = request.app[PEERS]
    peers.add(pc)

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "video":
            pc.addTrack(EchoTrack(track))

    @pc.on("connectionstatechange")
    async def on_state() -> None:
        if pc.connectionState in ("failed", "closed"):
            await pc.close()
            peers.discard(pc)

    await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    answer = {"sdp": pc.localDescription.sdp, "type": "answer"}
    return web.json_response(answer | {"session": secrets.token_urlsafe(16), "token": secrets.token_urlsafe(32)})


async def export(request: web.Request) -> web.Response:
    return web.Response(text="tick\n", content_type="text/csv")


async def record(request: web.Request) -> web.Response:
    return web.json_response({"session": request.match_info["session"], "pose": None})


async def close_peers(app: web.Application) -> AsyncIterator[None]:
    yield
    peers: set[RTCPeerConnection] = app[PEERS]
    await asyncio.gather(*(pc.close() for pc in list(peers)), return_exceptions=True)


def create_app() -> web.Application:
    app = web.Application()
    app[PEERS] = set()
    app.add_routes(
        [
            web.get("/api/references", references),
            web.post("/api/offer", offer),
            web.get("/api/sessions/{session}", record),
            web.get("/api/sessions/{session}/{name}", export),
        ]
    )
    app.cleanup_ctx.append(close_peers)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.echo", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    web.run_app(create_app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
