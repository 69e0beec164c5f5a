"""Generated clips whose content makes the right answer exact: each frame shows its own index."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CELL = 16  # one bit per 16x16 block survives lossy coding
BITS = 12


def frame_with_index(index: int, width: int = 320, height: int = 240) -> np.ndarray:
    """(height, width, 3) uint8 BGR with `index` written as BITS black/white blocks along the top row."""
    image = np.full((height, width, 3), 90, np.uint8)
    for bit in range(BITS):
        value = 255 if index >> bit & 1 else 0
        image[:CELL, bit * CELL : (bit + 1) * CELL] = value
    return image


def read_index(image_bgr: np.ndarray) -> int:
    blocks = image_bgr[4 : CELL - 4, : BITS * CELL].reshape(CELL - 8, BITS, CELL, 3)
    bits = blocks.mean(axis=(0, 2, 3)) > 127
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def write_indexed_clip(
    path: Path,
    timestamps: Sequence[Fraction],
    time_base: Fraction = Fraction(1, 1000),
    audio_seconds: float = 0.0,
) -> Path:
    """An H.264 clip whose frame i is shown at timestamps[i] (variable frame rate allowed), optional sine audio."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.time_base = time_base
        stream.options = {"preset": "ultrafast", "crf": "18", "bf": "0"}
        audio = container.add_stream("aac", rate=48000) if audio_seconds else None
        for i, t in enumerate(timestamps):
            frame = av.VideoFrame.from_ndarray(frame_with_index(i), format="bgr24")
            frame.pts, frame.time_base = round(t / time_base), time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if audio is not None:
            _write_tone(container, audio, audio_seconds)
    return path


def _write_tone(container: av.container.OutputContainer, audio: av.AudioStream, seconds: float) -> None:
    rate, chunk = 48000, 1024
    samples = np.sin(2 * np.pi * 440 * np.arange(int(rate * seconds)) / rate).astype(np.float32)
    for start in range(0, len(samples), chunk):
        block = samples[start : start + chunk][None]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        container.mux(audio.encode(frame))
    container.mux(audio.encode(None))
