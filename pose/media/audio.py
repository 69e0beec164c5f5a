"""A media file's sound track as mono float samples (the PyAV side of beat tracking and of aligning a take)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from pose.media.safety import OPEN_OPTIONS

AUDIO_RATE = 22050  # librosa's default rate; beats need nothing finer


def read_audio(path: Path, rate: int = AUDIO_RATE) -> npt.NDArray[np.float32] | None:
    """The first audio stream of `path`, mixed to mono at `rate` Hz (None when the file has no audio)."""
    sound = _decode(path, rate)
    return None if sound is None else sound[0]


def read_sound(path: Path) -> tuple[npt.NDArray[np.float32], int] | None:
    """The first audio stream of `path` mixed to mono at its own sample rate, and that rate in Hz; None when the
    file has no audio. Resampling is left to the caller (`pose.align` resamples both sounds it compares to one
    rate). A damaged tail ends the sound where the damage starts."""
    return _decode(path, None)


def _decode(path: Path, rate: int | None) -> tuple[npt.NDArray[np.float32], int] | None:
    # Opened with the safety checks' options: the file may be an upload (a recorded take).
    with av.open(str(path), options=OPEN_OPTIONS, metadata_errors="replace") as container:  # tags need not be UTF-8
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        rate = rate or stream.codec_context.sample_rate or AUDIO_RATE
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = []
        try:
            for frame in container.decode(stream):
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        except av.FFmpegError:  # the sound before the damage is still the file's sound
            pass
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return (np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)), rate
