"""Helpers for the server tests: clips cut from the real sample video, test settings, leak checks.
The fixtures built on them are in tests/live_fixtures.py."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
from aiortc import RTCPeerConnection

from server import Settings
from stream.rates import Rate
from stream.references import ReferenceMeta

REFERENCE_FPS = 10.0
INDEXED_FPS = 30
MEDIA_THREADS = ("video-decoder", "audio-decoder", "media-player")  # aiortc's per-connection/per-player threads


@dataclass(frozen=True)
class Clips:
    """short: 4 s of the sample at 10 fps; reference: its first 10 s at 10 fps; webcam: 10.5 s at 640x480 and 30 fps
    (each sample frame shown 3 times, as a VGA webcam would); indexed: 8 s at 30 fps with the frame index burned in."""

    short: Path
    reference: Path
    webcam: Path
    indexed: Path


def cut_clip(source: Path, out: Path, frames: int, repeat: int = 1, size: tuple[int, int] | None = None) -> Path:
    """The first `frames` frames of `source` as H.264 at 10 * `repeat` fps, each frame shown `repeat` times,
    optionally resized to `size` (width, height)."""
    rate = 10 * repeat
    with av.open(str(source)) as src, av.open(str(out), "w") as sink:
        stream = sink.add_stream("libx264", rate=rate)
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        stream.codec_context.time_base = Fraction(1, rate)
        pts = 0
        for i, frame in enumerate(src.decode(video=0)):
            if i >= frames:
                break
            width, height = size or (frame.width, frame.height)
            if i == 0:
                stream.width, stream.height = width, height
            image = frame.reformat(width=width, height=height).to_ndarray(format="yuv420p")
            for _ in range(repeat):
                copy = av.VideoFrame.from_ndarray(image, format="yuv420p")
                copy.pts, copy.time_base = pts, Fraction(1, rate)
                sink.mux(stream.encode(copy))
                pts += 1
        sink.mux(stream.encode(None))
    return out


@dataclass(frozen=True)
class SeededLibrary:
    data_dir: Path
    reference: ReferenceMeta


UNLIMITED = Rate(burst=100_000, per_minute=1e6)


def settings_for(data_dir: Path, **overrides: Any) -> Settings:
    """Test settings: no seeding unless asked, two live workers as on the target machine, no rate limits (the
    tests of the limits set their own)."""
    settings = Settings(data_dir=data_dir, seed_video=None, live_workers=2, offer_rate=UNLIMITED, upload_rate=UNLIMITED)
    return dataclasses.replace(settings, **overrides)


def open_peer_connections() -> list[RTCPeerConnection]:
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, RTCPeerConnection) and o.connectionState != "closed"]


def media_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in MEDIA_THREADS]


async def eventually(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Wait until `condition()` holds (polling), failing after `timeout` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)
