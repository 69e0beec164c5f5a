"""The analysis API: `POST /api/analyze/image`, `/video` and `/audio` (docs/api.md, "Analysis API").

Thin handlers over pure cores: an image's report is `python -m pose image --json`'s (`pose.cli.analyze_image`),
a video's ticks are extraction's (`pose.pipeline.analyze_ticks`), a sound's picture is `pose.spectrogram`'s.
Uploads are received, limited and checked as reference uploads are (`stream.api.receive_upload`,
`check_video_upload`, `pose.media.safety`); errors are the API's `{"error": message}` with a 4xx, never a server
path. Model work runs on the server's inference executor one call at a time, so the event loop is never blocked.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

from pose.cli import UsageError, analyze_image, decode_image
from pose.media.audio import AudioError, read_untrusted_audio
from pose.media.safety import header_image_size
from pose.media.video import VideoError
from pose.pipeline import ModelCatalog, Models, analyze_ticks
from pose.spectrogram import StftParams, spectrogram_png
from pose.ticks import tick_count, tick_time
from pose.types import FrameAnalysis, analysis_to_dict
from stream.api import api_error, check_video_upload, parse_fps, receive_upload
from stream.limits import read_body
from stream.references import video_error_reason

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 64 * 2**20  # an image is decoded in memory: a 50 MP PNG is at most ~150 MB raw, JPEGs far less
NDJSON = "application/x-ndjson"
STFT = StftParams()
_BASE64 = re.compile(rb"[A-Za-z0-9+/=_\-\s]+")
_DATA_URL = re.compile(rb"data:[\w.+/-]*(?:;[\w.+-]+=[\w.+-]+)*;base64,", re.IGNORECASE)
TickStream = Generator[tuple[int, np.ndarray, FrameAnalysis], None, None]


def image_body(data: bytes) -> bytes:
    """The encoded image in a request body: the bytes themselves, or base64 text of them (standard or URL-safe
    alphabet, whitespace ignored), optionally as a `data:…;base64,` URL. ValueError for bad base64."""
    data = data.strip()
    match = _DATA_URL.match(data)
    if match is not None:
        data = data[match.end() :]
    elif data.startswith(b"data:"):
        raise ValueError("not base64: a data: URL must say so (data:image/png;base64,...)")
    elif header_image_size(data) is not None or not _BASE64.fullmatch(data):
        return data  # binary: an image (or not, which decoding will say)
    text = re.sub(rb"\s+", b"", data).replace(b"-", b"+").replace(b"_", b"/")
    try:
        return base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not valid base64 ({exc})") from None


def spectrogram_headers(params: StftParams, samples: int, shape: tuple[int, int]) -> dict[str, str]:
    """The STFT's parameters as response headers (the JSON twin has the same values as fields)."""
    return {
        "X-STFT-Sample-Rate": str(params.sample_rate),
        "X-STFT-N-FFT": str(params.n_fft),
        "X-STFT-Hop": str(params.hop),
        "X-STFT-Window": params.window,
        "X-STFT-Center": "true",
        "X-STFT-Scale": "dB re full-scale sine",
        "X-STFT-dB-Floor": f"{params.db_floor:g}",
        "X-STFT-dB-Ceiling": f"{params.db_ceiling:g}",
        "X-STFT-Samples": str(samples),
        "X-STFT-Bins": str(shape[0]),
        "X-STFT-Frames": str(shape[1]),
    }


def warm_up_spectrogram() -> None:
    """Compute one tiny spectrogram: librosa loads its modules on first use (seconds), better at start-up than in a
    user's first request."""
    spectrogram_png(np.zeros(STFT.n_fft, np.float32), STFT)


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


class AnalyzeApi:
    """The three routes. `pool` runs model work (the live inference executor); `upload_path` names a file for an
    upload being received (removed when the request ends); `hide`: paths never shown in an error; at most
    `max_videos` video analyses run at once (503 with Retry-After beyond)."""

    def __init__(
        self,
        models: ModelCatalog,
        pool: concurrent.futures.Executor,
        upload_path: Callable[[], Path],
        max_upload_bytes: int,
        max_duration_s: float,
        max_videos: int = 1,
        hide: tuple[Path, ...] = (),
    ) -> None:
        self.models = models
        self.pool = pool
        self.upload_path = upload_path
        self.max_upload_bytes = max_upload_bytes
        self.max_image_bytes = min(max_upload_bytes, MAX_IMAGE_BYTES)
        self.max_duration_s = max_duration_s
        self.max_videos = max_videos
        self.hide = hide
        self.videos_running = 0

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/analyze/image", self.image),
            web.post("/api/analyze/video", self.video),
            web.post("/api/analyze/audio", self.audio),
        ]

    async def image(self, request: web.Request) -> web.Response:
        """multipart `image` (and `pose`), or the image / its base64 as the body → `image --json`'s report."""
        base64_limit = self.max_image_bytes * 4 // 3 + 1024  # base64 text, a data: URL's prefix
        if request.content_type == "multipart/form-data":
            path = self.upload_path()
            try:
                fields, _ = await receive_upload(request, "image", path, ("pose",), base64_limit)
                data = await asyncio.to_thread(path.read_bytes)
            finally:
                path.unlink(missing_ok=True)
        else:
            fields, data = {}, await read_body(request, base64_limit, "the image")
        if not data.strip():
            raise api_error(web.HTTPBadRequest, "the image is empty")
        try:
            data = image_body(data)
        except ValueError as exc:
            raise api_error(web.HTTPBadRequest, f"the image is {exc}") from None
        if len(data) > self.max_image_bytes:
            raise api_error(
                web.HTTPRequestEntityTooLarge, f"the image is larger than the {self.max_image_bytes / 2**20:g} MB limit"
            )
        if header_image_size(data) is None:
            raise api_error(web.HTTPBadRequest, "not a readable image: send a PNG, JPEG, GIF, BMP or WebP")
        models = await self._models(fields.get("pose") or request.query.get("pose"))
        try:
            image = await asyncio.to_thread(decode_image, data)
        except UsageError as exc:
            raise api_error(web.HTTPBadRequest, str(exc)) from None
        loop = asyncio.get_running_loop()
        _, report = await loop.run_in_executor(self.pool, analyze_image, models, image)
        return web.json_response(report)

    async def video(self, request: web.Request) -> web.StreamResponse:
        """multipart `video` (and `fps`, `pose`), or the video as the body → JSON lines, one per tick (docs/api.md)."""
        if self.videos_running >= self.max_videos:  # checked and taken before the first await
            message = f"the server is analysing {self.max_videos} video(s) already; try again in a minute"
            raise api_error(web.HTTPServiceUnavailable, message, headers={"Retry-After": "60"})
        self.videos_running += 1
        path = self.upload_path()
        try:
            fields, _ = await receive_upload(request, "video", path, ("fps", "pose"), self.max_upload_bytes, raw=True)
            fps = parse_fps(fields.get("fps") or request.query.get("fps"))
            models = await self._models(fields.get("pose") or request.query.get("pose"))
            info = await check_video_upload(path, self.max_duration_s, (path, *self.hide))
            response = web.StreamResponse(headers={"Content-Type": NDJSON, "Cache-Control": "no-store"})
            await response.prepare(request)
            header = {
                "type": "video",
                "width": info.width,
                "height": info.height,
                "duration_s": round(float(info.duration_s), 6),
                "source_fps": round(info.fps, 6),
                "fps": fps,
                "ticks": tick_count(info.duration_s, fps),
                "pose": models.pose.name,
            }
            await response.write(_line(header))
            await self._stream_ticks(response, analyze_ticks(path, fps, models), fps, (path, *self.hide))
            with contextlib.suppress(ConnectionResetError):  # a client gone before the end (logged above)
                await response.write_eof()
            return response
        finally:
            self.videos_running -= 1
            path.unlink(missing_ok=True)

    async def _stream_ticks(
        self, response: web.StreamResponse, ticks: TickStream, fps: float, hide: tuple[Path, ...]
    ) -> None:
        """One line per tick, then `end` (or `error`: the ticks so far stand); each tick's work on the pool. A
        client that goes away stops the analysis at the next tick."""
        started, done, found = time.perf_counter(), 0, 0
        step: concurrent.futures.Future[Any] | None = None
        try:
            while True:
                step = self.pool.submit(next, ticks, None)
                item = await asyncio.wrap_future(step)
                if item is None:
                    break
                k, _, analysis = item
                found += len(analysis.poses) > 0
                done += 1
                tick = {"type": "tick", "tick": k, "time_s": float(tick_time(k, fps)), **analysis_to_dict(analysis)}
                await response.write(_line(tick))
            end = {"type": "end", "ticks": done, "found": found, "seconds": round(time.perf_counter() - started, 3)}
            await response.write(_line(end))
        except ConnectionResetError:
            log.info("video analysis: the client went away after %d ticks", done)
        except Exception as exc:
            if isinstance(exc, VideoError):
                reason = video_error_reason(exc, hide)
            else:
                log.exception("video analysis failed after %d ticks", done)
                reason = "an internal error (logged on the server)"
            failed = {"type": "error", "error": f"the analysis stopped: {reason}", "ticks": done}
            with contextlib.suppress(ConnectionResetError):
                await response.write(_line(failed))
        finally:
            await asyncio.to_thread(_close, ticks, step)

    async def audio(self, request: web.Request) -> web.Response:
        """multipart `audio`, or the file as the body → the spectrogram PNG (`?format=json`: parameters + base64)."""
        answer = request.query.get("format", "png")
        if answer not in ("png", "json"):
            raise api_error(web.HTTPBadRequest, f"format must be png or json, got {answer[:20]!r}")
        path = self.upload_path()
        try:
            await receive_upload(request, "audio", path, (), self.max_upload_bytes, raw=True)
            samples = await asyncio.to_thread(read_untrusted_audio, path, self.max_duration_s, STFT.sample_rate)
        except AudioError as exc:
            raise api_error(web.HTTPBadRequest, str(exc)) from None
        finally:
            path.unlink(missing_ok=True)
        if len(samples) == 0:
            raise api_error(web.HTTPBadRequest, "the audio has no samples")
        png, shape = await asyncio.to_thread(spectrogram_png, samples, STFT)
        if answer == "json":
            described = {**STFT.describe(), "samples": len(samples), "bins": shape[0], "frames": shape[1]}
            return web.json_response({**described, "png": base64.b64encode(png).decode()})
        headers = spectrogram_headers(STFT, len(samples), shape)
        return web.Response(body=png, content_type="image/png", headers=headers)

    async def _models(self, name: str | None) -> Models:
        """The models with pose backend `name` (blank or None: the server's default); 400 for one not offered."""
        try:
            chosen = self.models.resolve((name or "").strip() or None)
        except ValueError as exc:
            raise api_error(web.HTTPBadRequest, str(exc)) from None
        return await asyncio.to_thread(self.models.get, chosen)


def _close(ticks: TickStream, step: concurrent.futures.Future[Any] | None) -> None:
    """Close the tick generator (its video file) once the step in flight, if any, has returned."""
    if step is not None:
        concurrent.futures.wait([step])
    ticks.close()
