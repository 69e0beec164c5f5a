"""A media file's sound track as mono float samples (the PyAV side of beat tracking, of spectrograms and of
aligning a take)."""

from __future__ import annotations

import errno
from pathlib import Path

import av
import av.container
import numpy as np
import numpy.typing as npt

from pose.media.safety import AUDIO_OPEN_OPTIONS

AUDIO_RATE = 22050  # librosa's default rate; beats need nothing finer


class AudioError(ValueError):
    """An untrusted file is not readable audio, or is longer than allowed; the message says which (no path)."""


def read_audio(path: Path, rate: int = AUDIO_RATE) -> npt.NDArray[np.float32] | None:
    """The first audio stream of `path`, mixed to mono at `rate` Hz (None when the file has no audio). A damaged
    tail ends the sound where the damage starts."""
    sound = _read(path, rate)
    return None if sound is None else sound[0]


def read_sound(path: Path) -> tuple[npt.NDArray[np.float32], int] | None:
    """The first audio stream of `path` mixed to mono at its own sample rate, and that rate in Hz; None when the
    file has no audio. Resampling is left to the caller (`pose.align` resamples both sounds it compares to one
    rate). A damaged tail ends the sound where the damage starts."""
    return _read(path, None)


def _read(path: Path, rate: int | None) -> tuple[npt.NDArray[np.float32], int] | None:
    # Opened with the safety checks' options: the file may be an upload (a recorded take).
    with av.open(str(path), options=AUDIO_OPEN_OPTIONS, metadata_errors="replace") as container:  # tags: not UTF-8
        if not container.streams.audio:
            return None
        rate = rate or container.streams.audio[0].codec_context.sample_rate or AUDIO_RATE
        return _decode_mono(container, rate, None, keep_damaged=True), rate


def read_untrusted_audio(path: Path, max_seconds: float, rate: int = AUDIO_RATE) -> npt.NDArray[np.float32]:
    """`read_audio` of an upload: only the demuxers and protocol of `AUDIO_OPEN_OPTIONS`, at most `max_seconds`
    of sound (counted as it is decoded, whatever the header claims). AudioError for anything else."""
    try:
        with av.open(str(path), options=AUDIO_OPEN_OPTIONS, metadata_errors="replace") as container:
            if not container.streams.audio:
                raise AudioError("the file has no audio stream")
            return _decode_mono(container, rate, round(max_seconds * rate))
    except av.FFmpegError as exc:
        reason = "not a supported audio format" if exc.errno == errno.EINVAL else exc.strerror or type(exc).__name__
        raise AudioError(f"not readable audio ({reason})") from None
    except (UnicodeDecodeError, MemoryError, OverflowError) as exc:
        raise AudioError(f"not readable audio ({type(exc).__name__})") from None


def _decode_mono(
    container: av.container.InputContainer, rate: int, max_samples: int | None, keep_damaged: bool = False
) -> npt.NDArray[np.float32]:
    """The first audio stream resampled to mono float at `rate`; AudioError past `max_samples` (None: no limit).
    keep_damaged: a decoding error ends the sound there (the sound before the damage is still the file's)."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    chunks: list[npt.NDArray[np.float32]] = []
    count = 0

    def add(frame: av.AudioFrame | None) -> None:
        nonlocal count
        for out in resampler.resample(frame):
            chunks.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
            count += len(chunks[-1])
        if max_samples is not None and count > max_samples:
            raise AudioError(f"the audio is longer than {_duration_text(max_samples / rate)}")

    try:
        for frame in container.decode(container.streams.audio[0]):
            add(frame)
    except av.FFmpegError:
        if not keep_damaged:
            raise
    add(None)  # the resampler's last samples
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def _duration_text(seconds: float) -> str:
    return f"{seconds / 60:g} minutes" if seconds >= 60 else f"{seconds:g} seconds"
