"""A media file's sound track as mono float samples (the PyAV side of beat tracking)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from pose.media.safety import OPEN_OPTIONS

AUDIO_RATE = 22050  # librosa's default rate; beats need nothing finer


def read_audio(path: Path, rate: int = AUDIO_RATE) -> npt.NDArray[np.float32] | None:
    """The first audio stream of `path`, mixed to mono at `rate` Hz (None when the file has no audio)."""
    with av.open(str(path), metadata_errors="replace") as container:  # tags need not be UTF-8
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = []
        for frame in container.decode(stream):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def read_sound(path: Path) -> tuple[npt.NDArray[np.float32], int] | None:
    """The first audio stream of `path` (which may be an upload: opened with the safety checks' options), mixed
    to mono at its own sample rate, and that rate in Hz; None when the file has no audio. Resampling is left to
    the caller (`pose.align` resamples both sounds it compares to one rate)."""
    with av.open(str(path), options=OPEN_OPTIONS, metadata_errors="replace") as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or AUDIO_RATE
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = []
        try:
            for frame in container.decode(stream):
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        except av.FFmpegError:  # a damaged tail: the sound before it still aligns
            pass
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return samples, rate
