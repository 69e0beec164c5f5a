"""Helpers for the server tests: the clips they use, leak checks, waiting for a condition. The fixtures built on
them are in tests/live_fixtures.py; clip writing and test settings are in `harness`."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection

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


@dataclass(frozen=True)
class SeededLibrary:
    data_dir: Path
    reference: ReferenceMeta


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
