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

from stream.client import ClientResult
from stream.live import SessionRunner
from stream.references import ReferenceMeta

REFERENCE_FPS = 10.0
INDEXED_FPS = 30
LATE_FRAMES = 3  # the late clip's delay, in frames of the 10 fps sample: 300 ms
MEDIA_THREADS = ("video-decoder", "audio-decoder", "media-player")  # aiortc's per-connection/per-player threads


@dataclass(frozen=True)
class Clips:
    """short: 4 s of the sample at 10 fps; reference: its first 10 s at 10 fps; webcam: 10.5 s at 640x480 and 30 fps
    (each sample frame shown 3 times, as a VGA webcam would); indexed: 8 s at 30 fps with the frame index burned in;
    late: the reference clip as a 30 fps webcam running 0.3 s behind it (its first frame held 0.3 s longer)."""

    short: Path
    reference: Path
    webcam: Path
    indexed: Path
    late: Path


@dataclass(frozen=True)
class SeededLibrary:
    data_dir: Path
    reference: ReferenceMeta


def open_peer_connections() -> list[RTCPeerConnection]:
    gc.collect()
    # type(), not isinstance(): the heap may hold weak proxies whose referent is gone, and isinstance() on one
    # raises ReferenceError.
    return [o for o in gc.get_objects() if type(o) is RTCPeerConnection and o.connectionState != "closed"]


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


# Frames that may be between the webcam and the analyzer when a session closes: the mailbox and the one in flight.
HELD_AT_CLOSE = 2


async def assert_ticks_accounted(result: ClientResult, runner: SessionRunner | None) -> None:
    """The tick bookkeeping of a session, checked exactly once it has ended, whatever the machine's speed: every
    tick the sampler decided was processed, skipped (a failure counts as skipped) or still held when the session
    closed; processed ticks are unique, on the session's tick grid and on the reference's timeline, with one score
    each; the downloads and the record agree with the server's counts. How many ticks a session keeps is a figure
    of `make bench` (bench.live), not of the tests."""
    assert runner is not None, "the session is not in the registry"
    await eventually(lambda: not runner.live, what="the session to end")
    session, sampler = runner.session, runner.session.sampler
    held = sampler.elapsed - session.processed - sampler.skipped
    assert 0 <= held <= HELD_AT_CLOSE, (sampler.elapsed, session.processed, sampler.skipped)
    assert session.processed > 0, "nothing was analysed"
    ticks = [s.tick for s in session.scores]
    assert len(ticks) == len(set(ticks)) == session.processed
    assert all(t % session.step == 0 and 0 <= t < result.reference_ticks for t in ticks), ticks
    downloaded = [int(line.split(",", 1)[0]) for line in result.keypoints_csv.splitlines()[1:]]
    assert downloaded == sorted(downloaded) and set(downloaded) <= set(ticks)
    assert {m["tick"] for m in result.scores} <= set(downloaded)  # a score message per tick, until the channel closed
    record = runner.metadata()
    assert (record["processed"], record["skipped"]) == (session.processed, sampler.skipped)
