"""A dancesync client without a browser: a video file plays the webcam, the clock runs as a page's would.

    python -m stream.client VIDEO --reference ID [--server URL] [--out DIR] [--seconds S] [--start S] [--fps F]
                              [--no-mirror] [--pose BACKEND] [--no-mosaic] [--keypoints-only]

The clock starts at `--start` (default 0) when the first webcam frame is handed to WebRTC and follows the frames
sent: it is `--start` + the media time of the newest frame handed to WebRTC (+ the time since, up to one frame
interval), sent on the `control` channel 20 times a second. So the clip's dancer is always where the clock says,
as a webcam's user is. A file player hands every frame, later and later when the machine encodes slower than
real time; like a webcam, the client drops a frame that is more than `LATE_DROP_S` behind the time since the
first (`ClientResult.frames_dropped`), so the clock keeps the pace of the wall clock: the server's clock model
(`stream.clock`) runs at the playback rate between messages, and a clock that stalls with the encoder would have
it run ahead of the frames.

The returned annotated video is recorded (with `--keypoints-only` the server returns no video: the `pose` messages
are kept instead, and the webcam is offered send-only); the keypoint, score and move CSVs and the session's metadata
(session.json: pose backends, tick rate, tick counts, warnings, latency, tier counts) are downloaded with the
session's token. `run_session` does the same for tests and benchmarks (with hooks that see every frame sent and
received).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
from aiortc import MediaStreamTrack, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole, MediaPlayer, MediaRecorder
from aiortc.mediastreams import MediaStreamError

from stream.live import peer_connection
from stream.protocol import CONTROL_LABEL, clock_message, offer_body, parse_answer, parse_server_message

log = logging.getLogger(__name__)

CLOCK_INTERVAL_S = 0.05
CONNECT_TIMEOUT_S = 30.0
SETTLE_S = 1.0  # after the clock stops: time for the last analysis and its score to come back
FRAME_SLACK_S = 1 / 15  # the clock runs on from the newest frame sent for at most this long (two 30 fps frames)
LATE_DROP_S = 1 / 15  # a frame further behind than this is dropped, as a webcam drops what the encoder misses

# (frame, loop time). Convert frames in a hook with a `stream.tracks.BgrConverter` of its own, not `to_ndarray`:
# aiortc's encoder thread may be converting the same frame, and PyAV's per-frame scaler is not thread-safe.
FrameHook = Callable[[av.VideoFrame, float], None]
# Runs beside the clock once connected, with the control channel (tests send hostile messages on it).
ChannelHook = Callable[[RTCDataChannel], Coroutine[Any, Any, None]]


class ClientError(RuntimeError):
    """The server refused or the connection failed; the message says why."""


@dataclass
class ClientResult:
    """What one session gave back. clock_start/clock_end: the first and last clock time sent while playing (s)."""

    session: str
    token: str
    fps: float  # the session's tick rate
    reference_fps: float
    pose: str = ""  # the session's pose backend
    warnings: list[str] = field(default_factory=list)  # the server's, about this session
    reference_ticks: int = 0
    clock_start: float | None = None
    clock_end: float | None = None
    clock_messages: int = 0
    frames_sent: int = 0
    frames_dropped: int = 0  # by the client, too late to send (see the module docstring)
    frames_received: int = 0
    scores: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] | None = None
    stats_log: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (loop time received, message)
    end_reason: str | None = None  # the server's `end` message, if it ended the session
    keypoints_csv: str = ""
    scores_csv: str = ""
    moves_csv: str = ""
    moves: list[dict[str, Any]] = field(default_factory=list)  # the `move` messages, in arrival order
    poses: list[dict[str, Any]] = field(default_factory=list)  # the `pose` messages (keypoints-only sessions)
    score_times: dict[int, float] = field(default_factory=dict)  # tick → loop time its first `score` came
    metadata: dict[str, Any] = field(default_factory=dict)  # GET /api/sessions/{id} after the session
    files: list[Path] = field(default_factory=list)

    def elapsed_ticks(self) -> list[int]:
        """Reference ticks of the session's tick rate whose time the clock passed while playing."""
        if self.clock_start is None or self.clock_end is None:
            return []
        step = round(self.reference_fps / self.fps)
        first = math.floor(self.clock_start * self.fps + 1e-9)
        last = math.floor(self.clock_end * self.fps + 1e-9)
        return [j * step for j in range(first, last + 1) if j * step < self.reference_ticks]


class _SentTrack(MediaStreamTrack):
    """The webcam: frames from the player, noting when the first one goes out."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack, hook: FrameHook | None) -> None:
        super().__init__()
        self.source = source
        self.hook = hook
        self.first_sent = asyncio.Event()
        self.started_at = 0.0
        self.count = 0
        self.dropped = 0
        self.media_s = 0.0  # media time of the newest frame handed over (from the first frame)
        self.sent_at = 0.0  # loop time it was handed over
        self._first_media_s: float | None = None

    async def recv(self) -> av.VideoFrame:
        while True:
            frame = await self.source.recv()
            if not isinstance(frame, av.VideoFrame):
                raise MediaStreamError("expected video frames")
            now = asyncio.get_running_loop().time()
            media = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else None
            if media is None or self._first_media_s is None:
                break
            if (now - self.started_at) - (media - self._first_media_s) <= LATE_DROP_S:
                break
            self.dropped += 1
        if not self.first_sent.is_set():
            self.started_at = now
            self._first_media_s = media
            self.first_sent.set()
        if media is not None and self._first_media_s is not None:
            self.media_s = media - self._first_media_s
        else:
            self.media_s = now - self.started_at
        self.sent_at = now
        self.count += 1
        if self.hook is not None:
            self.hook(frame, now)
        return frame

    def stop(self) -> None:
        super().stop()
        self.source.stop()


class _TapTrack(MediaStreamTrack):
    """The returned track as received, counted and handed to a hook, for the recorder to read."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack, hook: FrameHook | None) -> None:
        super().__init__()
        self.source = source
        self.hook = hook
        self.count = 0

    async def recv(self) -> av.VideoFrame:
        frame = await self.source.recv()
        if not isinstance(frame, av.VideoFrame):
            raise MediaStreamError("expected video frames")
        self.count += 1
        if self.hook is not None:
            self.hook(frame, asyncio.get_running_loop().time())
        return frame


async def run_session(
    server: str,
    video: Path,
    reference: str,
    out_dir: Path | None = None,
    *,
    seconds: float | None = None,
    start: float = 0.0,
    fps: float | None = None,
    mirror: bool = True,
    pose: str | None = None,
    profile: str | None = None,
    mosaic: bool | None = None,
    returned_video: bool = True,
    on_sent: FrameHook | None = None,
    on_received: FrameHook | None = None,
    on_connected: ChannelHook | None = None,
) -> ClientResult:
    """Dance `video` against `reference` on `server` (e.g. "http://127.0.0.1:8080") for `seconds` (default: until
    the video or the reference ends), the dancer video starting at `start` s when the webcam's first frame goes
    out; with `out_dir`, save annotated.mp4, keypoints.csv, scores.csv, moves.csv and session.json there. `pose`: the
    server's pose backend for this session (default: the one that extracted the reference); `profile`: a profile
    token (stream.protocol) that lists the session among its past ones; `mosaic`: False asks for the returned
    video without faces mosaicked (None: the server's default, mosaicked); `returned_video` False: a
    keypoints-only session (no annotated.mp4). `on_connected` runs beside the clock (and is cancelled with it)."""
    base = server.rstrip("/")
    async with aiohttp.ClientSession() as http:
        meta = await _reference(http, base, reference)
        limit = min(start + (seconds or math.inf), float(meta["duration_s"]))
        player = MediaPlayer(str(video))
        if player.video is None:
            raise ClientError(f"{video}: no video stream")
        webcam = _SentTrack(player.video, on_sent)
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
        record = out_dir is not None and returned_video
        sink = MediaRecorder(str(out_dir / "annotated.mp4")) if record and out_dir else MediaBlackhole()
        drains = MediaBlackhole()
        if player.audio is not None:
            drains.addTrack(player.audio)  # a webcam sends no sound, but the player decodes it anyway
        pc = peer_connection()
        fields = {"reference": reference, "mirror": mirror, "fps": fps, "pose": pose, "profile": profile}
        fields["mosaic"] = mosaic
        fields["returned_video"] = returned_video
        try:
            result, channel, returned = await _connect(http, base, pc, webcam, sink, on_received, fields)
            result.reference_fps, result.reference_ticks = float(meta["fps"]), int(meta["ticks"])
            await sink.start()
            await drains.start()
            await _wait_connected(pc, channel, webcam)
            beside = asyncio.create_task(on_connected(channel)) if on_connected is not None else None
            try:
                await _drive_clock(channel, webcam, start, limit, result)
            finally:
                if beside is not None:
                    beside.cancel()
                    await asyncio.gather(beside, return_exceptions=True)
            await asyncio.sleep(SETTLE_S)
            result.frames_sent, result.frames_received = webcam.count, returned[0].count if returned else 0
            result.frames_dropped = webcam.dropped
        finally:
            await pc.close()
            webcam.stop()
            if player.audio is not None:
                player.audio.stop()
            await sink.stop()
            await drains.stop()
        await _download(http, base, result, out_dir, annotated=returned_video)
    return result


async def _reference(http: aiohttp.ClientSession, base: str, reference: str) -> dict[str, Any]:
    async with http.get(f"{base}/api/references") as response:
        await _check(response, "listing references")
        for meta in await response.json():
            if meta.get("id") == reference:
                return dict(meta)
    raise ClientError(f"the server has no reference {reference!r}")


async def _connect(
    http: aiohttp.ClientSession,
    base: str,
    pc: RTCPeerConnection,
    webcam: _SentTrack,
    sink: MediaRecorder | MediaBlackhole,
    on_received: FrameHook | None,
    fields: dict[str, Any],
) -> tuple[ClientResult, RTCDataChannel, list[_TapTrack]]:
    """Offer (control channel first, then the webcam), post it with the offer's other `fields` (those not None),
    apply the answer."""
    channel = pc.createDataChannel(CONTROL_LABEL)
    returned: list[_TapTrack] = []

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "video" and not returned:
            returned.append(_TapTrack(track, on_received))
            sink.addTrack(returned[0])

    if fields["returned_video"]:
        pc.addTrack(webcam)
    else:
        pc.addTransceiver(webcam, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    reference, fps, mirror, pose, profile = (fields[k] for k in ("reference", "fps", "mirror", "pose", "profile"))
    body = offer_body(
        sdp, reference, fps, mirror, pose, profile, fields.get("mosaic"), returned_video=fields["returned_video"]
    )
    async with http.post(f"{base}/api/offer", data=body, headers={"Content-Type": "application/json"}) as response:
        await _check(response, "starting the session")
        try:
            answer = parse_answer(await response.json())
        except ValueError as exc:
            raise ClientError(f"starting the session: {exc}") from None
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    result = ClientResult(answer["session"], answer["token"], fps=fields["fps"] or 0.0, reference_fps=0.0)
    result.pose, result.warnings = answer["pose"] or "", answer["warnings"]

    @channel.on("message")
    def on_message(message: str | bytes) -> None:
        data = parse_server_message(message)
        if data is None:
            return
        if data["type"] == "score":
            result.scores.append(dict(data))
            result.score_times.setdefault(data["tick"], asyncio.get_running_loop().time())
        elif data["type"] == "pose":
            result.poses.append(dict(data))
        elif data["type"] == "move":
            result.moves.append(dict(data))
        elif data["type"] == "stats":
            result.stats = dict(data)
            result.stats_log.append((asyncio.get_running_loop().time(), result.stats))
            result.fps = float(data["tick_fps"])
        elif data["type"] == "end":
            result.end_reason = data["reason"]

    return result, channel, returned


async def _wait_connected(pc: RTCPeerConnection, channel: RTCDataChannel, webcam: _SentTrack) -> None:
    opened = asyncio.Event()
    if channel.readyState == "open":
        opened.set()
    channel.on("open", opened.set)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await opened.wait()
            await webcam.first_sent.wait()
    except TimeoutError:
        raise ClientError(f"no connection after {CONNECT_TIMEOUT_S:g} s (state {pc.connectionState})") from None


async def _drive_clock(
    channel: RTCDataChannel, webcam: _SentTrack, start: float, limit: float, result: ClientResult
) -> None:
    """Send the clock (from `start` s at the first webcam frame, following the frames sent) while the webcam
    plays, until `limit` s of reference time; then pause."""
    loop = asyncio.get_running_loop()
    t = start
    while channel.readyState == "open" and webcam.readyState == "live":
        since = min(max(0.0, loop.time() - webcam.sent_at), FRAME_SLACK_S)
        t = max(t, start + webcam.media_s + since)
        if t >= limit:
            t = limit
            break
        channel.send(clock_message(t, True))
        result.clock_start = t if result.clock_start is None else result.clock_start
        result.clock_end = t
        result.clock_messages += 1
        await asyncio.sleep(CLOCK_INTERVAL_S)
    if channel.readyState == "open":
        channel.send(clock_message(t, False))
        result.clock_end = t


async def _download(
    http: aiohttp.ClientSession, base: str, result: ClientResult, out_dir: Path | None, annotated: bool = True
) -> None:
    headers = {"Authorization": f"Bearer {result.token}"}
    for name in ("keypoints.csv", "scores.csv", "moves.csv"):
        async with http.get(f"{base}/api/sessions/{result.session}/{name}", headers=headers) as response:
            await _check(response, f"downloading {name}")
            text = await response.text()
        setattr(result, name.replace(".", "_"), text)
        if out_dir is not None:
            (out_dir / name).write_text(text)
            result.files.append(out_dir / name)
    async with http.get(f"{base}/api/sessions/{result.session}", headers=headers) as response:
        await _check(response, "downloading the session's metadata")
        result.metadata = await response.json()
    if out_dir is not None:
        (out_dir / "session.json").write_text(json.dumps(result.metadata, indent=2) + "\n")
        result.files += [out_dir / "session.json"]
        if annotated:
            result.files.insert(0, out_dir / "annotated.mp4")


async def _check(response: aiohttp.ClientResponse, doing: str) -> None:
    if response.status < 400:
        return
    text = await response.text()
    with contextlib.suppress(ValueError):
        text = str(json.loads(text).get("error", text))
    raise ClientError(f"{doing}: HTTP {response.status}: {text[:300]}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stream.client", description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path, help="a video file to play as the webcam")
    parser.add_argument("--reference", required=True, help="reference id (GET /api/references)")
    parser.add_argument("--server", default="http://127.0.0.1:8080", help="server URL (default %(default)s)")
    parser.add_argument("--out", type=Path, help="folder for annotated.mp4 and the CSVs (default: session-<id>)")
    parser.add_argument("--seconds", type=float, help="stop after this long (default: end of video or reference)")
    parser.add_argument("--start", type=float, default=0.0, help="start the dancer video here (s, default 0)")
    parser.add_argument("--fps", type=float, help="ticks per second (default: the reference's)")
    parser.add_argument("--no-mirror", action="store_true", help="don't also score the mirrored pose")
    parser.add_argument("--pose", help="the server's pose backend for you (default: the one the reference used)")
    parser.add_argument("--no-mosaic", action="store_true", help="ask for the returned video without faces mosaicked")
    parser.add_argument("--keypoints-only", action="store_true", help="no returned video: keypoints per tick instead")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v, -vv)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not args.video.is_file():
        print(f"error: {args.video}: no such file", file=sys.stderr)
        return 2
    out = args.out or Path(f"session-{args.reference[:8]}")
    try:
        result = asyncio.run(
            run_session(
                args.server,
                args.video,
                args.reference,
                out,
                seconds=args.seconds,
                start=args.start,
                fps=args.fps,
                mirror=not args.no_mirror,
                pose=args.pose,
                mosaic=False if args.no_mosaic else None,
                returned_video=not args.keypoints_only,
            )
        )
    except (ClientError, aiohttp.ClientError, OSError, MediaStreamError, av.FFmpegError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    scores = [s["score"] for s in result.scores]
    mean = sum(scores) / len(scores) if scores else float("nan")
    elapsed = len(result.elapsed_ticks())
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"session {result.session} ({result.pose}): {len(scores)} of {elapsed} ticks scored, mean score {mean:.1f}")
    latency, tiers = result.metadata.get("latency_ms"), result.metadata.get("tiers") or {}
    if latency is not None:
        trusted = "" if result.metadata.get("latency_confident") else " (not yet confident)"
        print(f"you were {abs(latency)} ms {'behind' if latency >= 0 else 'ahead of'} the music{trusted}")
    print(f"{len(result.moves)} moves: " + ", ".join(f"{n} {tier}" for tier, n in tiers.items()))
    for path in result.files:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
