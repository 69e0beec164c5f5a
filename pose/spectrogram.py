"""The STFT log-magnitude spectrogram of mono audio, as a greyscale PNG (pure: samples in, bytes out).

The rules, which `docs/api.md` states for the API's users:

* frames: a Hann window (periodic, `n_fft` samples) every `hop` samples, centred on sample t · hop of the signal
  zero-padded by n_fft / 2 on each side (librosa's `center=True`, `pad_mode="constant"`), so a signal of N samples
  has 1 + N // hop frames, and n_fft / 2 + 1 frequency bins, bin b at b · sample_rate / n_fft Hz;
* scale: 20 · log10(|X| / ref) dB, where ref = sum(window) / 2 is the magnitude a full-scale sine (amplitude 1)
  centred on a bin reaches: 0 dB is a full-scale tone, silence is the floor;
* picture: one column per frame (time runs left to right), one row per bin with the lowest frequency at the
  bottom (row r is bin n_fft / 2 - r), grey level round(255 · (dB - floor) / (ceiling - floor)) clipped to 0..255.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

BLOCK_FRAMES = 4096  # frames computed at once: bounds the complex STFT held in memory (~34 MB at n_fft 2048)


@dataclass(frozen=True)
class StftParams:
    """What a spectrogram is computed with; defaults are librosa's (22050 Hz, n_fft 2048, hop 512, Hann)."""

    sample_rate: int = 22050
    n_fft: int = 2048
    hop: int = 512
    window: str = "hann"
    db_floor: float = -80.0
    db_ceiling: float = 0.0

    def __post_init__(self) -> None:
        if self.n_fft < 2 or self.n_fft % 2 or not 0 < self.hop <= self.n_fft or self.sample_rate <= 0:
            raise ValueError(f"unusable STFT parameters: {self}")
        if not self.db_floor < self.db_ceiling:
            raise ValueError(f"the dB floor must be below the ceiling: {self}")

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def frames(self, samples: int) -> int:
        """Frames of a signal of `samples` samples: 1 + samples // hop."""
        return 1 + samples // self.hop

    def bin_hz(self, b: int) -> float:
        return b * self.sample_rate / self.n_fft

    def describe(self) -> dict[str, Any]:
        """The parameters as the API reports them (JSON field names; the headers carry the same values)."""
        return {**asdict(self), "center": True, "scale": "dB re full-scale sine", "rows": "low frequency at the bottom"}


def window_ref(params: StftParams) -> float:
    """The magnitude of a full-scale sine centred on a bin: sum(window) / 2."""
    import librosa

    return float(librosa.filters.get_window(params.window, params.n_fft, fftbins=True).sum() / 2)


def log_magnitude(samples: npt.NDArray[np.float32], params: StftParams) -> npt.NDArray[np.float32]:
    """(bins, frames) dB re full-scale sine (see the module docstring); bin 0 (DC) first. Computed in blocks of
    BLOCK_FRAMES frames with identical results to one call (each frame reads only its own samples)."""
    import librosa  # imported here: it takes seconds

    if samples.ndim != 1:
        raise ValueError(f"expected mono samples (n,), got shape {samples.shape}")
    half = params.n_fft // 2
    padded = np.pad(samples.astype(np.float32, copy=False), half)  # librosa's centring, done once for all blocks
    total = params.frames(len(samples))
    ref = window_ref(params)
    out = np.empty((params.bins, total), np.float32)
    for start in range(0, total, BLOCK_FRAMES):
        stop = min(total, start + BLOCK_FRAMES)
        chunk = padded[start * params.hop : (stop - 1) * params.hop + params.n_fft]
        spectrum = librosa.stft(chunk, n_fft=params.n_fft, hop_length=params.hop, window=params.window, center=False)
        magnitude = np.abs(spectrum)
        out[:, start:stop] = 20 * np.log10(np.maximum(magnitude, np.finfo(np.float32).tiny) / ref)
    return out


def to_image(db: npt.NDArray[np.float32], params: StftParams) -> npt.NDArray[np.uint8]:
    """(bins, frames) dB → uint8 picture, lowest frequency at the bottom (see the module docstring)."""
    span = params.db_ceiling - params.db_floor
    grey = np.rint((db - params.db_floor) * (255 / span))
    return np.ascontiguousarray(np.clip(grey, 0, 255).astype(np.uint8)[::-1])


def spectrogram_png(samples: npt.NDArray[np.float32], params: StftParams) -> tuple[bytes, tuple[int, int]]:
    """The PNG (8-bit greyscale) of `samples` at params.sample_rate, and its (rows, columns) = (bins, frames)."""
    image = to_image(log_magnitude(samples, params), params)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"could not encode a {image.shape[1]}x{image.shape[0]} PNG")
    return encoded.tobytes(), (image.shape[0], image.shape[1])
