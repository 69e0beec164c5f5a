"""Transcoding a reference video into what every browser plays: H.264 + AAC in a fast-start MP4 from t = 0.

The live session compares tick k of the dancer CSV with the moment the browser's `<video>` shows media time
k / F, so the CSV must be extracted from this very file: its timestamps are the browser's timeline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import av.container

from pose.media.video import VideoError, VideoInfo, open_video, probe_video

log = logging.getLogger(__name__)

KEYFRAME_INTERVAL_S = 2  # short GOPs make seeking in the page quick
DEFAULT_RATE = Fraction(30)


def transcode_for_web(source: Path, out: Path, progress: Callable[[float], None] | None = None) -> VideoInfo:
    """Write `out` (MP4: H.264 yuv420p without B-frames, AAC) with the first video frame at t = 0.

    Audio keeps its offset to the video. Frames are re-encoded with their own timestamps (variable frame
    rates survive); a frame whose timestamp does not advance is dropped. `progress` gets 0..1 (by media
    time). The file appears only when complete. Raises VideoError on unreadable input.
    """
    info = probe_video(source)
    partial = out.with_name(out.name + ".part")
    try:
        with open_video(source) as container:
            _transcode(container, partial, info, progress)
        result = probe_video(partial)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return VideoInfo(out, result.width, result.height, result.duration_s, result.fps, result.has_audio)


def _transcode(
    container: av.container.InputContainer,
    out: Path,
    info: VideoInfo,
    progress: Callable[[float], None] | None,
) -> None:
    video_in = container.streams.video[0]
    video_in.thread_type = "AUTO"
    audio_in = container.streams.audio[0] if container.streams.audio else None
    time_base = video_in.time_base or Fraction(1, 90_000)
    rate = Fraction(video_in.average_rate or video_in.guessed_rate or DEFAULT_RATE).limit_denominator(100_000)
    with av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"}) as sink:
        video_out = sink.add_stream("libx264", rate=rate)
        video_out.width, video_out.height = info.width // 2 * 2, info.height // 2 * 2
        video_out.pix_fmt = "yuv420p"
        video_out.codec_context.time_base = time_base
        gop = max(1, round(KEYFRAME_INTERVAL_S * rate))
        # No B-frames: pts == dts, so the first frame sits at 0 without an edit list for players to honour.
        video_out.options = {"preset": "veryfast", "crf": "23", "bf": "0", "g": str(gop)}
        audio_out = None
        if audio_in is not None:
            audio_out = sink.add_stream("aac", rate=audio_in.codec_context.sample_rate or 48_000)
            audio_out.layout = audio_in.codec_context.layout
        start: Fraction | None = None  # first video frame's time (s): the new zero
        last_pts: int | None = None
        streams = [video_in] if audio_in is None else [video_in, audio_in]
        try:
            for frame in container.decode(*streams):
                if frame.pts is None or frame.time_base is None:
                    continue
                seconds = frame.pts * frame.time_base
                if isinstance(frame, av.VideoFrame):
                    start = seconds if start is None else start
                    pts = round((seconds - start) / time_base)
                    if last_pts is not None and pts <= last_pts:
                        continue
                    last_pts = pts
                    _encode_video(sink, video_out, frame, pts, time_base)
                    if progress and info.duration_s:
                        progress(min(1.0, float((seconds - start) / info.duration_s)))
                elif audio_out is not None and start is not None and seconds >= start:
                    frame.pts = round((seconds - start) / frame.time_base)
                    sink.mux(audio_out.encode(frame))
        except av.FFmpegError as exc:
            log.warning("%s: decoding stopped early: %s", info.path, exc)
        if last_pts is None:
            raise VideoError(f"{info.path}: no video frame could be decoded")
        sink.mux(video_out.encode(None))
        if audio_out is not None:
            sink.mux(audio_out.encode(None))


def _encode_video(
    sink: av.container.OutputContainer, stream: av.VideoStream, frame: av.VideoFrame, pts: int, tb: Fraction
) -> None:
    if frame.width != stream.width or frame.height != stream.height or frame.format.name != "yuv420p":
        frame = frame.reformat(width=stream.width, height=stream.height, format="yuv420p")
    frame.pts, frame.time_base = pts, tb
    sink.mux(stream.encode(frame))
