"""A media file's sound track as mono float samples (the PyAV side of beat tracking)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

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
