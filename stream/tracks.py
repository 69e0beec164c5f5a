"""The aiortc side of a session's video: read the webcam continuously, send back the newest frame annotated.

aiortc queues incoming frames without bound, so the webcam track is read by its own task from start to end
(`consume`), whatever the analyzer is doing; the returned track takes only the newest frame (latest wins, as
`MediaRelay(buffered=False)` does), with the user's newest skeleton drawn in limb colours and the limb the
newest verdict found off in red.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.video.reformatter import VideoReformatter

from pose.draw import draw_analysis
from pose.limbs import Limb
from pose.privacy import LiveFaces
from pose.types import FrameAnalysis

log = logging.getLogger(__name__)

FrameSink = Callable[[av.VideoFrame, float], None]


class BgrConverter:
    """Frames to (h, w, 3) uint8 BGR arrays through a scaler of its own.

    PyAV keeps one scaler per frame object, and each webcam frame goes both to the analyzer thread and to the
    returned track: two threads converting the same frame at once deadlock inside swscale (seen: the event
    loop hung for good in `to_ndarray`). So each user converts through its own single-threaded reformatter.
    """

    def __init__(self) -> None:
        self._reformatter = VideoReformatter()

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        return self._reformatter.reformat(frame, format="bgr24", threads=1).to_ndarray()


class LatestFrame:
    """The newest webcam frame and a sequence number, for exactly one reader."""

    def __init__(self) -> None:
        self.frame: av.VideoFrame | None = None
        self.seq = 0
        self.closed = False
        self._new = asyncio.Event()

    def put(self, frame: av.VideoFrame) -> None:
        self.frame, self.seq = frame, self.seq + 1
        self._new.set()

    def close(self) -> None:
        self.closed = True
        self.frame = None  # an ended session is kept for its results; its last frame need not be
        self._new.set()

    async def newer_than(self, seq: int) -> tuple[int, av.VideoFrame]:
        """Wait for a frame after `seq`; MediaStreamError once the webcam has ended."""
        while self.seq <= seq or self.frame is None:
            if self.closed:
                raise MediaStreamError
            self._new.clear()  # nothing can be put between the check and the clear: no await in between
            await self._new.wait()
        return self.seq, self.frame


async def consume(track: MediaStreamTrack, latest: LatestFrame | None, sink: FrameSink | None) -> None:
    """Read `track` until it ends, handing each video frame and its arrival time (loop time, s) on."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            frame = await track.recv()
            if not isinstance(frame, av.VideoFrame):
                continue  # audio: read only so that it does not pile up
            if latest is not None:
                latest.put(frame)
            if sink is not None:
                sink(frame, loop.time())
    except MediaStreamError:
        log.debug("%s track %s ended", track.kind, track.id)
    finally:
        if latest is not None:
            latest.close()


class AnnotatedTrack(MediaStreamTrack):
    """Sends the newest webcam frame, with the newest annotation (if any) drawn on it, at the webcam's rate."""

    kind = "video"

    def __init__(
        self,
        latest: LatestFrame,
        annotation: Callable[[], tuple[FrameAnalysis, Limb | None] | None],
        on_sent: Callable[[], None],
        on_stage: Callable[[str, float], None] | None = None,
        faces: LiveFaces | None = None,
    ) -> None:
        """`on_stage(stage, seconds)`: how long each annotated frame took to draw ("draw", with the faces
        mosaicked), and how long aiortc took with each frame handed over before it asked for the next ("encode":
        encode, packetize, send). `faces`: mosaics the faces on every frame sent (None: faces are left as they
        are)."""
        super().__init__()
        self._faces = faces
        self._latest = latest
        self._annotation = annotation
        self._on_sent = on_sent
        self._on_stage = on_stage
        self._handed_at: float | None = None  # perf_counter when the last frame was handed to aiortc
        self._seq = 0
        self._to_bgr = BgrConverter()

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._handed_at is not None and self._on_stage is not None:
            self._on_stage("encode", time.perf_counter() - self._handed_at)
        self._seq, frame = await self._latest.newer_than(self._seq)
        annotation = self._annotation()
        self._on_sent()
        if annotation is not None:
            started = time.perf_counter()
            frame = annotate(frame, annotation[0], self._to_bgr, annotation[1], self._faces)
            if self._on_stage is not None:
                self._on_stage("draw", time.perf_counter() - started)
        self._handed_at = time.perf_counter()
        return frame


def annotate(
    frame: av.VideoFrame,
    analysis: FrameAnalysis,
    to_bgr: BgrConverter,
    off: Limb | None = None,
    faces: LiveFaces | None = None,
) -> av.VideoFrame:
    """A new frame: `frame` with `analysis` drawn on it (the limb `off` in red) and, with `faces`, the faces
    mosaicked over the drawing, keeping its timestamp."""
    image = draw_analysis(to_bgr(frame), analysis, off=off)
    if faces is not None:
        faces.cover(image, analysis, asyncio.get_running_loop().time())
    out = av.VideoFrame.from_ndarray(image, format="bgr24")
    out.pts, out.time_base = frame.pts, frame.time_base
    return out
