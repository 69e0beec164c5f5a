"""Reading videos with their container timestamps (PyAV) and writing annotated MP4s that keep the audio."""

from __future__ import annotations

import errno
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.container
import numpy as np

from pose.media.safety import OPEN_OPTIONS, MediaLimitError, check_video_size

log = logging.getLogger(__name__)


class VideoError(ValueError):
    """The file is missing, not a video, or has no frames."""


@dataclass(frozen=True)
class VideoInfo:
    """width/height in pixels; duration_s from the container (seconds); fps as the container states it."""

    path: Path
    width: int
    height: int
    duration_s: Fraction
    fps: float
    has_audio: bool


def open_video(path: Path) -> av.container.InputContainer:
    if not Path(path).is_file():
        raise VideoError(f"{path}: no such file")
    if Path(path).stat().st_size == 0:
        raise VideoError(f"{path}: empty file")
    try:
        container = av.open(str(path), options=OPEN_OPTIONS)
    except av.EOFError as exc:
        raise VideoError(f"{path}: video has zero length (no frames)") from exc
    except av.FFmpegError as exc:
        # EINVAL here means a format outside OPEN_OPTIONS' whitelist (a playlist, an image, raw video) or a header
        # FFmpeg itself refuses (an absurd picture size); FFmpeg's own text for it is "Invalid argument".
        reason = "not a supported video format" if exc.errno == errno.EINVAL else str(exc)
        raise VideoError(f"{path}: not a readable video ({reason})") from exc
    except UnicodeDecodeError as exc:
        raise VideoError(f"{path}: not a readable video ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    codec = container.streams.video[0].codec_context
    try:
        check_video_size(codec.width, codec.height)  # before any frame is decoded at that size
    except MediaLimitError as exc:
        container.close()
        raise VideoError(f"{path}: {exc}") from None
    return container


def probe_video(path: Path) -> VideoInfo:
    with open_video(path) as container:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0:
            raise VideoError(f"{path}: not a readable video (no picture size)")
        try:
            duration = _duration(container)
        except av.FFmpegError as exc:
            raise VideoError(f"{path}: not a readable video ({exc})") from exc
        if duration <= 0:
            raise VideoError(f"{path}: video has zero length")
        rate = stream.average_rate or stream.guessed_rate or 0
        return VideoInfo(Path(path), width, height, duration, float(rate), bool(container.streams.audio))


def _duration(container: av.container.InputContainer) -> Fraction:
    """The video stream's duration, else the container's, else the end of the last video packet."""
    stream = container.streams.video[0]
    if stream.duration and stream.time_base:
        return stream.duration * stream.time_base
    if container.duration:
        return Fraction(container.duration, av.time_base)
    end = 0
    for packet in container.demux(stream):
        if packet.pts is not None:
            end = max(end, packet.pts + (packet.duration or 0))
    return Fraction(end - (stream.start_time or 0)) * (stream.time_base or 0)


def iter_frames(path: Path, start_s: Fraction = Fraction(0)) -> Iterator[tuple[Fraction, av.VideoFrame]]:
    """(seconds since the stream's first timestamp, frame), in presentation order, from the container's pts.

    start_s > 0: begin at the last frame stamped at or before start_s (decoding from the keyframe before it), so
    that frames from there on are exactly those of a decode from the start. A container that cannot seek there
    is decoded from its start instead.
    """
    if start_s > 0:
        with open_video(path) as container:
            stream = container.streams.video[0]
            start = stream.start_time
            if start is not None and stream.time_base:
                target = start + math.floor(start_s / stream.time_base)
                try:
                    container.seek(target, stream=stream, backward=True, any_frame=False)
                except av.FFmpegError:
                    pass
                else:
                    frames = _decode(path, container, start)
                    first = next(frames, None)
                    if first is not None and first[0] <= start_s:
                        yield first
                        # Leading pictures of an open GOP come out after its keyframe, and broken: drop them.
                        latest = first[0]
                        for timestamp, frame in frames:
                            if timestamp > latest:
                                latest = timestamp
                                yield timestamp, frame
                        return
    with open_video(path) as container:
        yield from _decode(path, container, container.streams.video[0].start_time)


def _decode(
    path: Path, container: av.container.InputContainer, start: int | None
) -> Iterator[tuple[Fraction, av.VideoFrame]]:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    try:
        for frame in container.decode(stream):
            if frame.pts is None or frame.time_base is None:
                continue
            if start is None:
                start = frame.pts
            yield Fraction(frame.pts - start) * frame.time_base, frame
    except av.FFmpegError as exc:
        # A truncated file still gives every frame before the damage; say so instead of failing silently.
        log.warning("%s: decoding stopped early: %s", path, exc)


class AnnotatedWriter:
    """H.264 MP4 at the tick rate; on close, the source's audio is transcoded to AAC alongside it.

    OpenCV's writers drop audio; PyAV lets us keep it. Audio is copied after the video packets (not
    interleaved), which every player handles for a downloaded file; `+faststart` moves the index to the front.
    """

    def __init__(self, out: Path, source: VideoInfo, fps: float | Fraction) -> None:
        self.out, self.source = out, source
        self._partial = out.with_name(out.name + ".part")
        self._container = av.open(str(self._partial), "w", format="mp4", options={"movflags": "+faststart"})
        rate = Fraction(fps).limit_denominator(100_000)
        self._video = self._container.add_stream("libx264", rate=rate)
        self._video.width, self._video.height = source.width // 2 * 2, source.height // 2 * 2
        self._video.pix_fmt = "yuv420p"
        self._video.options = {"preset": "veryfast", "crf": "23"}
        self._video.codec_context.time_base = 1 / rate
        # Every stream must exist before the first packet is muxed (the header is written then).
        self._audio = self._add_audio_stream() if source.has_audio else None

    def write(self, tick: int, image_bgr: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(image_bgr[: self._video.height, : self._video.width], format="bgr24")
        frame.pts = tick
        self._container.mux(self._video.encode(frame))

    def close(self) -> None:
        """Flush the video, add the audio, and move the file into place (a failed run leaves no file)."""
        try:
            self._container.mux(self._video.encode(None))
            if self._audio is not None:
                self._copy_audio(self._audio)
        finally:
            self._container.close()
        self._partial.replace(self.out)

    def abort(self) -> None:
        self._container.close()
        self._partial.unlink(missing_ok=True)

    def _add_audio_stream(self) -> av.AudioStream:
        with av.open(str(self.source.path), options=OPEN_OPTIONS) as source:
            audio_in = source.streams.audio[0].codec_context
            audio_out = self._container.add_stream("aac", rate=audio_in.sample_rate or 48000)
            audio_out.layout = audio_in.layout
            return audio_out

    def _copy_audio(self, audio_out: av.AudioStream) -> None:
        with av.open(str(self.source.path), options=OPEN_OPTIONS) as source:
            audio_in = source.streams.audio[0]
            start = audio_in.start_time or 0
            for frame in source.decode(audio_in):
                if frame.pts is not None:
                    frame.pts -= start
                self._container.mux(audio_out.encode(frame))
            self._container.mux(audio_out.encode(None))
