"""Where a recorded take sits on the reference's timeline, found from their sound: the take's offset, how sure
that is, and whether the take's clock drifts against the reference's.

`offset_s` is take time minus reference time for the same moment of the song: reference time t is take time
t + offset_s (positive when the recording started before the song). Steps:

1. Both sounds are mixed to mono and resampled to `ALIGN_RATE` (scipy's polyphase resampler).
2. Coarse: log-mel frames (`MEL_BANDS` bands, `HOP` samples a frame, each band standardised) are
   cross-correlated over every lag at which the two share at least `MIN_SHARE` of the shorter one (and
   `MIN_OVERLAP_S`), FFT by FFT (scipy.signal.correlate), normalised by both sides' energy over the frames
   they share; the peak, refined by a parabola through it and its neighbours, is the coarse offset. Spectral
   frames survive a phone's noise, a room's reverb and a different sample rate, where the raw waveforms of a
   long stretch do not correlate cleanly, and they tell songs apart where a bare onset envelope, whose beats
   repeat, does not.
3. Fine: the waveforms are cross-correlated (normalised) over lags within `FINE_SEARCH_S` of the coarse
   offset, on the stretch both cover (at most `FINE_SPAN_S`, centred), with a parabola through the peak for a
   sub-sample offset.
4. Drift: the same fine step on `SEGMENT_S` at the start, middle and end of that shared stretch, searching
   `SEGMENT_SEARCH_S` around the offset; drift_s is the end's offset minus the start's.

Confidence is the coarse peak's normalised correlation: 1 for identical sound, near 0 for unrelated sound.

Refusals (`AlignmentError`, whose text is meant for the user): no sound in the take or in the reference
(a peak level under `SILENCE_PEAK`), less than `MIN_OVERLAP_S` of the song in common, a confidence under
`MIN_CONFIDENCE` (another song, or the song drowned out), or |drift| over `MAX_DRIFT_S`. The thresholds come
from measurements on real music under noise, reverb and resampling (`bench.takes`, docs/benchmarks.md):

* `MIN_CONFIDENCE` 0.6: 12 s takes of the song delayed by up to 2.9 s, resampled to 16-48 kHz, with pink noise
  and reverb (or band-limited to a phone's 200-3000 Hz) score 0.72 to 0.91; 12 s windows of the same game's
  other songs (the same instruments and tempo) score 0.2 to 0.45, noise alone under 0.05.
* `MAX_DRIFT_S` 0.05: half a tick at 10 ticks a second, past which the tick grid lands on other frames at the
  take's end than at its start; takes on a steady clock measure under 1 ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import numpy.typing as npt
from scipy import signal

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

ALIGN_RATE = 22050
HOP = 256  # 11.6 ms frames at ALIGN_RATE
MEL_BANDS = 40
FINE_SEARCH_S = 0.05  # several envelope frames either side of the coarse peak
FINE_SPAN_S = 20.0
SEGMENT_S = 6.0
SEGMENT_SEARCH_S = 0.25
SILENCE_PEAK = 1e-3  # -60 dBFS
MIN_OVERLAP_S = 3.0
MIN_SHARE = 0.5  # of the shorter sound: lags sharing less are not considered
MIN_CONFIDENCE = 0.6
MAX_DRIFT_S = 0.05


NO_SOUND = "the recording has no sound: its music is what places it on the dance, so record with the song playing"
NO_MUSIC = "this reference has no music to align a recording to"


class AlignmentError(ValueError):
    """The take cannot be placed on the reference's timeline; the message says why, for the user."""


@dataclass(frozen=True)
class Segment:
    """The offset measured on the stretch of the take from `start_s` to `end_s` (take time)."""

    start_s: float
    end_s: float
    offset_s: float


@dataclass(frozen=True)
class Alignment:
    """offset_s: take time - reference time (s); coarse_s: the envelope step's offset; confidence: 0..1
    (see the module docstring); segments: start, middle and end of the shared stretch; drift_s: the end
    segment's offset minus the start's; overlap_s: how much of the song both hold."""

    offset_s: float
    coarse_s: float
    confidence: float
    segments: tuple[Segment, ...]
    drift_s: float
    overlap_s: float

    def to_json(self) -> dict[str, object]:
        return {
            "offset_s": round(self.offset_s, 6),
            "coarse_s": round(self.coarse_s, 6),
            "confidence": round(self.confidence, 4),
            "drift_s": round(self.drift_s, 6),
            "overlap_s": round(self.overlap_s, 3),
            "segments": [
                {"start_s": round(s.start_s, 3), "end_s": round(s.end_s, 3), "offset_s": round(s.offset_s, 6)}
                for s in self.segments
            ],
        }


def resample(samples: npt.ArrayLike, rate: int, target: int = ALIGN_RATE) -> F32:
    """Mono samples (n,) or (n, channels) at `rate` Hz, mixed down and resampled to `target` Hz."""
    y = np.asarray(samples, dtype=np.float64)
    if y.ndim == 2:
        y = y.mean(axis=1)
    if y.ndim != 1 or rate <= 0:
        raise ValueError(f"need samples (n,) or (n, channels) and a rate > 0, got {y.shape}, {rate}")
    if rate != target:
        ratio = Fraction(target, rate)
        y = signal.resample_poly(y, ratio.numerator, ratio.denominator)
    return y.astype(np.float32)


def align(reference: npt.ArrayLike, reference_rate: int, take: npt.ArrayLike, take_rate: int) -> Alignment:
    """The take's place on the reference's timeline (see the module docstring); AlignmentError to refuse it."""
    ref = resample(reference, reference_rate)
    tak = resample(take, take_rate)
    if tak.size == 0 or float(np.max(np.abs(tak))) < SILENCE_PEAK:
        raise AlignmentError(NO_SOUND)
    if ref.size == 0 or float(np.max(np.abs(ref))) < SILENCE_PEAK:
        raise AlignmentError(NO_MUSIC)
    coarse, confidence = coarse_offset(ref, tak)
    start, end = _shared(ref, tak, coarse)
    overlap = end - start
    if confidence < MIN_CONFIDENCE or overlap < MIN_OVERLAP_S:
        if overlap < MIN_OVERLAP_S and confidence >= MIN_CONFIDENCE:
            raise AlignmentError(
                f"the recording shares only {overlap:.1f} s of the song with the reference; it needs at least "
                f"{MIN_OVERLAP_S:g} s"
            )
        raise AlignmentError(
            f"the recording's sound does not match this reference's song (confidence {confidence:.2f}, needs "
            f"{MIN_CONFIDENCE:g}): is it the same song, and loud enough over the room?"
        )
    middle = (start + end) / 2
    span = min(FINE_SPAN_S, overlap)
    offset = fine_offset(ref, tak, coarse, middle - span / 2, middle + span / 2, FINE_SEARCH_S)
    length = min(SEGMENT_S, overlap / 3)
    segments = tuple(
        Segment(a, a + length, fine_offset(ref, tak, offset, a, a + length, SEGMENT_SEARCH_S))
        for a in (start, middle - length / 2, end - length)
    )
    drift = segments[-1].offset_s - segments[0].offset_s
    if abs(drift) > MAX_DRIFT_S:
        raise AlignmentError(
            f"the recording's clock drifts against the song: {drift * 1000:+.0f} ms from its start to its end "
            f"(at most {MAX_DRIFT_S * 1000:.0f} ms); was it sped up, slowed down or edited?"
        )
    return Alignment(offset, coarse, confidence, segments, drift, overlap)


def features(samples: F32) -> F64:
    """(MEL_BANDS, frames) log-mel energies, one frame per HOP samples at ALIGN_RATE, each band standardised."""
    import librosa  # seconds to import: only when aligning

    mel = librosa.feature.melspectrogram(y=samples, sr=ALIGN_RATE, hop_length=HOP, n_mels=MEL_BANDS)
    db = librosa.power_to_db(mel, ref=np.max, top_db=80.0).astype(np.float64)
    return (db - db.mean(axis=1, keepdims=True)) / np.maximum(db.std(axis=1, keepdims=True), 1e-6)


def coarse_offset(reference: F32, take: F32) -> tuple[float, float]:
    """(offset s, confidence) from the log-mel frames' cross-correlation over every lag that shares enough."""
    ref, tak = features(reference), features(take)
    n_ref, n_tak = ref.shape[1], tak.shape[1]
    if n_ref < 2 or n_tak < 2:
        return 0.0, 0.0

    def xcorr(x: F64, y: F64) -> F64:
        # xcorr(tak, ref)[i] pairs take frame n + lag with reference frame n, lag = i - (n_ref - 1).
        return np.asarray(signal.correlate(x, y, mode="full", method="fft"), dtype=np.float64)

    products = sum((xcorr(tak[b], ref[b]) for b in range(MEL_BANDS)), start=np.zeros(n_ref + n_tak - 1))
    ref_energy = xcorr(np.ones(n_tak), (ref**2).sum(axis=0))
    tak_energy = xcorr((tak**2).sum(axis=0), np.ones(n_ref))
    shared = xcorr(np.ones(n_tak), np.ones(n_ref))
    least = max(MIN_OVERLAP_S * ALIGN_RATE / HOP, MIN_SHARE * min(n_ref, n_tak))
    score = np.where(shared >= least - 0.5, products / np.sqrt(np.maximum(ref_energy * tak_energy, 1e-12)), -1.0)
    peak = int(np.argmax(score))
    lag = peak - (n_ref - 1) + _parabola(score, peak)
    return lag * HOP / ALIGN_RATE, float(np.clip(score[peak], 0.0, 1.0))


def fine_offset(reference: F32, take: F32, around_s: float, start_s: float, end_s: float, search_s: float) -> float:
    """The offset within `search_s` of `around_s` that best lines up the take's waveform from `start_s` to
    `end_s` (take time) with the reference's, to a fraction of a sample."""
    a, b = round(start_s * ALIGN_RATE), round(end_s * ALIGN_RATE)
    chunk = take[max(0, a) : max(0, b)].astype(np.float64)
    centre = round(around_s * ALIGN_RATE)
    reach = math.ceil(search_s * ALIGN_RATE)
    # Reference samples a - offset .. b - offset for every offset in centre ± reach (zeros outside the file).
    lo = a - centre - reach
    window = _padded(reference, lo, b - a + 2 * reach)
    if chunk.size < 2 or not np.any(chunk):
        return around_s
    products = signal.correlate(window, chunk, mode="valid", method="fft")  # index j: offset centre + reach - j
    energy = np.sqrt(np.maximum(signal.correlate(window**2, np.ones_like(chunk), mode="valid", method="fft"), 1e-12))
    score = products / energy
    j = int(np.argmax(score))
    return (centre + reach - (j + _parabola(score, j))) / ALIGN_RATE


def _padded(samples: F32, start: int, length: int) -> F64:
    out = np.zeros(length, np.float64)
    a, b = max(0, start), min(len(samples), start + length)
    if b > a:
        out[a - start : b - start] = samples[a:b]
    return out


def _shared(reference: F32, take: F32, offset_s: float) -> tuple[float, float]:
    """The stretch of take time (start, end) in s that both sounds cover at `offset_s`."""
    start = max(0.0, offset_s)
    end = min(len(take) / ALIGN_RATE, len(reference) / ALIGN_RATE + offset_s)
    return start, max(start, end)


def _parabola(values: F64, i: int) -> float:
    """The peak's position relative to index i (-0.5..0.5) from a parabola through i-1, i, i+1."""
    if i <= 0 or i >= len(values) - 1:
        return 0.0
    left, mid, right = values[i - 1], values[i], values[i + 1]
    curve = left - 2 * mid + right
    return float(np.clip(0.5 * (left - right) / curve, -0.5, 0.5)) if curve < 0 else 0.0
