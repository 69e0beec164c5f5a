"""Generated clips for the tests and benchmarks, all written by one function, `write_clip`.

The clips are cut from the real sample footage, or made so that their content makes the right answer exact (each
frame shows its own index, `harness.frameindex`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import av.container
import numpy as np

from harness.frameindex import burn_index

# Quick to write, and sharp enough for the models and for the burned-in index; no B-frames, so pts == dts.
H264 = {"preset": "ultrafast", "crf": "18", "bf": "0"}
INDEXED_SIZE = (320, 240)


def write_clip(
    path: Path,
    frames: Iterable[np.ndarray],
    rate: int | Fraction,
    *,
    frame_format: str = "bgr24",
    codec: str = "libx264",
    options: dict[str, str] | None = None,
    timestamps: Sequence[Fraction] | None = None,
    time_base: Fraction | None = None,
    size: tuple[int, int] | None = None,
    bit_rate: int | None = None,
    container_format: str | None = None,
    audio_seconds: float = 0.0,
    audio_file: Path | None = None,
) -> Path:
    """Encode `frames` ((h, w, ...) arrays in `frame_format`) into `path` as `codec` (H.264 by default) in yuv420p.

    Frame i is shown at i / rate, or at timestamps[i] seconds (variable frame rates allowed) in units of
    `time_base` (1/rate by default). The size is the first frame's, or `size` (width, height), which also allows
    a clip with no frames (a valid container, zero length). `audio_seconds` > 0 adds a 440 Hz AAC tone;
    `audio_file` adds that file's sound as AAC at its own rate, its first sample at t = 0.
    """
    time_base = time_base or Fraction(1, 1) / Fraction(rate)
    with av.open(str(path), "w", format=container_format) as sink:
        stream = sink.add_stream(codec, rate=rate)
        if not isinstance(stream, av.VideoStream):
            raise ValueError(f"{codec} is not a video codec")
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = time_base
        stream.options = dict(H264 if options is None and codec == "libx264" else options or {})
        if bit_rate:
            stream.bit_rate = bit_rate
        if size:
            stream.width, stream.height = size
        audio = sink.add_stream("aac", rate=48000) if audio_seconds else None
        sound = add_sound_stream(sink, audio_file) if audio_file else None
        written = 0
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format=frame_format)
            if i == 0 and not size:
                stream.width, stream.height = frame.width, frame.height
            pts = i if timestamps is None else round(timestamps[i] / time_base)
            frame.pts, frame.time_base = pts, time_base
            sink.mux(stream.encode(frame))
            written += 1
        if written:
            sink.mux(stream.encode(None))
        else:
            sink.start_encoding()
        if audio is not None:
            _write_tone(sink, audio, audio_seconds)
        if sound is not None and audio_file is not None:
            write_sound(sink, sound, audio_file)
    return path


def add_sound_stream(container: av.container.OutputContainer, source: Path) -> av.AudioStream:
    with av.open(str(source)) as sound:
        context = sound.streams.audio[0].codec_context
        stream = container.add_stream("aac", rate=context.sample_rate)
        stream.layout = "mono" if context.channels == 1 else "stereo"  # a WAV's layout may be unnamed
        return stream


def write_sound(container: av.container.OutputContainer, audio: av.AudioStream, source: Path) -> None:
    with av.open(str(source)) as sound:
        written = 0
        for frame in sound.decode(audio=0):
            frame.pts, written = written, written + frame.samples
            container.mux(audio.encode(frame))
    container.mux(audio.encode(None))


def _write_tone(container: av.container.OutputContainer, audio: av.AudioStream, seconds: float) -> None:
    rate, chunk = 48000, 1024
    samples = np.sin(2 * np.pi * 440 * np.arange(int(rate * seconds)) / rate).astype(np.float32)
    for start in range(0, len(samples), chunk):
        block = samples[start : start + chunk][None]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        container.mux(audio.encode(frame))
    container.mux(audio.encode(None))


def source_frames(
    source: Path, size: tuple[int, int] | None = None, frame_format: str = "bgr24"
) -> Iterator[np.ndarray]:
    """The frames of a video, once, optionally resized to `size` (width, height)."""
    with av.open(str(source)) as container:
        for frame in container.decode(video=0):
            width, height = size or (frame.width, frame.height)
            yield frame.reformat(width=width, height=height, format=frame_format).to_ndarray()


def looped_frames(source: Path, size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """The frames of a video as BGR, looped forever."""
    while True:
        yield from source_frames(source, size)


def indexed_frame(index: int, size: tuple[int, int] = INDEXED_SIZE) -> np.ndarray:
    """A grey (height, width, 3) uint8 BGR frame showing `index` (`harness.frameindex`)."""
    image = np.full((size[1], size[0], 3), 90, np.uint8)
    burn_index(image, index)
    return image


def write_indexed_clip(
    path: Path,
    timestamps: Sequence[Fraction],
    time_base: Fraction = Fraction(1, 1000),
    audio_seconds: float = 0.0,
) -> Path:
    """An H.264 clip whose frame i shows i and is shown at timestamps[i], optionally with a tone."""
    frames = (indexed_frame(i) for i in range(len(timestamps)))
    return write_clip(path, frames, 30, timestamps=timestamps, time_base=time_base, audio_seconds=audio_seconds)


def cut_clip(
    source: Path, out: Path, frames: int, repeat: int = 1, size: tuple[int, int] | None = None, late: int = 0
) -> Path:
    """The first `frames` frames of the 10 fps `source` as H.264 at 10 * `repeat` fps, each frame shown `repeat`
    times (as a webcam faster than the footage would), optionally resized to `size` (width, height). `late`:
    the first frame is shown `late` more times before the others, so the clip runs `late` / 10 s behind the
    source (a dancer that late)."""
    first = zip(range(frames), source_frames(source, size, "yuv420p"))
    held = itertools.chain.from_iterable(([image] * (1 + late) if i == 0 else [image]) for i, image in first)
    images = (image for image in held for _ in range(repeat))
    return write_clip(out, images, 10 * repeat, frame_format="yuv420p", options={**H264, "crf": "23"})


def long_webcam(source: Path, out: Path, seconds: float, fps: int = 30, size: tuple[int, int] = (640, 480)) -> Path:
    """`seconds` of webcam-like H.264 at `fps`: the 10 fps source's frames forward then backward, each shown
    fps / 10 times."""
    images = list(source_frames(source, size, "yuv420p"))
    cycle = images + images[-2:0:-1]
    repeat = max(1, fps // 10)
    frames = (cycle[(i // repeat) % len(cycle)] for i in range(round(seconds * fps)))
    return write_clip(out, frames, fps, frame_format="yuv420p", options={**H264, "crf": "28"})
