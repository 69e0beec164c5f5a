"""The track shell's small parts: frame conversion across threads, the newest-frame slot, annotation."""

from __future__ import annotations

import asyncio
import threading
from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from pose.parts import NUM_PARTS
from pose.types import Detections, FrameAnalysis, Poses
from stream.tracks import BgrConverter, LatestFrame, annotate


def noisy_frames(count: int) -> list[av.VideoFrame]:
    rng = np.random.default_rng(0)
    images = (rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(count))
    return [av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p") for image in images]


def test_two_threads_can_convert_the_same_frames_at_once() -> None:
    """With PyAV's per-frame scaler this deadlocks within a second (the analyzer thread and the returned track
    both convert each webcam frame); each BgrConverter has its own scaler."""
    frames = noisy_frames(30)
    expected = [f.to_ndarray(format="bgr24") for f in frames[:3]]

    def convert() -> None:
        to_bgr = BgrConverter()
        for _ in range(10):
            for frame in frames:
                to_bgr(frame)

    threads = [threading.Thread(target=convert, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "frame conversion deadlocked"
    assert all(np.array_equal(BgrConverter()(f), e) for f, e in zip(frames, expected, strict=False))


async def test_latest_frame_hands_over_only_the_newest() -> None:
    latest = LatestFrame()
    frames = noisy_frames(3)
    for frame in frames:
        latest.put(frame)
    seq, frame = await latest.newer_than(0)
    assert (seq, frame) == (3, frames[2])
    waiter = asyncio.create_task(latest.newer_than(seq))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    latest.close()
    with pytest.raises(MediaStreamError):
        await waiter


def test_annotation_keeps_the_timestamp() -> None:
    (frame,) = noisy_frames(1)
    frame.pts, frame.time_base = 123456, Fraction(1, 90000)
    xy = np.full((1, NUM_PARTS, 2), 0.5, np.float32)
    poses = Poses(xy, np.ones((1, NUM_PARTS), np.float32), np.ones(1, np.float32))
    analysis = FrameAnalysis(poses, np.zeros(1, np.int64), Detections.empty(), 640, 480)
    out = annotate(frame, analysis, BgrConverter())
    assert (out.pts, out.time_base, out.width, out.height) == (123456, Fraction(1, 90000), 640, 480)
    assert not np.array_equal(out.to_ndarray(format="bgr24"), frame.to_ndarray(format="bgr24"))
