"""Recorded takes: how exactly a take is placed by its sound, and what scoring one costs.

Prints and writes bench/results/takes.json. Media are real (harness.takes): the sample footage with the game's
song under it is the reference; takes are the footage re-encoded with the song as a room records it.

  alignment       error (ms) of the measured offset for several offsets and take sample rates (12 s takes with
                  reverb and pink noise), each take's confidence and drift
  confidence      the coarse confidence of 12 s windows of the game's other song against the reference, and of
                  pink noise alone: what `pose.align.MIN_CONFIDENCE` must stay above
  one_minute      a 60 s reference at 10 ticks/s and a 60 s take of it: seconds to align, to score (the live
                  session fed every tick, the side-by-side MP4 written), in all; and the score difference, tick
                  by tick, between the re-encoded take and the reference's own footage on the same grid
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

from bench.machine import RESULTS, describe, write_results
from harness.takes import footage_with_sound, room_recording, song_excerpt, sox
from pose import assets
from pose.align import coarse_offset, resample
from pose.models import DEFAULT_BACKEND
from pose.pipeline import FrameAnalyzer, Models, load_models
from stream.references import ReferenceLibrary, ReferenceMeta, new_id
from stream.session import DancerPoses, LiveSession
from stream.takes import align_files, score_take

OFFSETS_S = (0.437, 1.283, -0.611, 2.904)
RATES = (48000, 44100, 22050, 16000)
EXCERPT_S = 12.0


def alignment_errors(tmp: Path, video: Path) -> list[dict[str, Any]]:
    song = assets.SAMPLE_MUSIC.path()
    reference = footage_with_sound(video, tmp / "ref12.mp4", 120, song_excerpt(song, tmp / "ref12.wav", 3.0, EXCERPT_S))
    rows = []
    for offset in OFFSETS_S:
        # A negative offset: the recording started after the song, so its sound starts later in the song.
        start, delay = (3.0 - offset, 0.0) if offset < 0 else (3.0, offset)
        sound = song_excerpt(song, tmp / "excerpt.wav", start, EXCERPT_S)
        for rate in RATES:
            take_sound = room_recording(sound, tmp / "take.wav", delay, rate, EXCERPT_S)
            take = footage_with_sound(video, tmp / "take.mp4", 120, take_sound, crf=28)
            started = time.perf_counter()
            found = align_files(reference, take)
            rows.append(
                {
                    "offset_s": offset,
                    "rate": rate,
                    "error_ms": round((found.offset_s - offset) * 1000, 3),
                    "coarse_error_ms": round((found.coarse_s - offset) * 1000, 2),
                    "confidence": round(found.confidence, 3),
                    "drift_ms": round(found.drift_s * 1000, 3),
                    "seconds": round(time.perf_counter() - started, 3),
                }
            )
            print(rows[-1])
    return rows


def other_song_confidence(tmp: Path) -> dict[str, Any]:
    song = resample(*_wav(song_excerpt(assets.SAMPLE_MUSIC.path(), tmp / "song.wav", 3.0, EXCERPT_S)))
    other = resample(*_wav(assets.SAMPLE_MUSIC_OTHER.path(), convert=tmp / "other.wav"))
    rate = 22050
    windows = [
        coarse_offset(song, other[start : start + int(EXCERPT_S * rate)])[1]
        for start in range(0, len(other) - int(EXCERPT_S * rate), int(6 * rate))
    ]
    noise = np.random.default_rng(0).standard_normal(int(EXCERPT_S * rate)).astype(np.float32) * 0.1
    return {
        "other_song_windows": len(windows),
        "other_song_max": round(max(windows), 3),
        "other_song_mean": round(float(np.mean(windows)), 3),
        "white_noise": round(coarse_offset(song, noise)[1], 3),
    }


def _wav(path: Path, convert: Path | None = None) -> tuple[np.ndarray, int]:
    """A WAV's (or, via `convert`, any SoX-readable file's) mono samples and rate."""
    if convert is not None:
        sox(path, "-c", "1", convert)
        path = convert
    with av.open(str(path)) as container:
        rate = container.streams.audio[0].codec_context.sample_rate
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    scale = 32768.0 if samples.dtype == np.int16 else 1.0
    return samples.astype(np.float32) / scale, rate


def session_on(library: ReferenceLibrary, meta: ReferenceMeta, models: Models) -> LiveSession[Any]:
    calibration, moves = library.scoring(meta)
    aspect = meta.width / meta.height
    dancer = DancerPoses.from_csv(library.csv_path(meta.id), meta.fps, aspect, meta.pose, calibration, moves)
    return LiveSession(dancer, FrameAnalyzer(models), None, True, detect=models.detector.detect, pose=models.pose.name)


def one_minute(tmp: Path, video: Path, models: Models) -> dict[str, Any]:
    song = song_excerpt(assets.SAMPLE_MUSIC_OTHER.path(), tmp / "minute.wav", 0.0, 60.0)
    source = footage_with_sound(video, tmp / "minute.mp4", 600, song)
    library = ReferenceLibrary(tmp / "references")
    started = time.perf_counter()
    meta = library.build(new_id(), source, "one minute", 10.0, models)
    build_s = time.perf_counter() - started
    take = footage_with_sound(video, tmp / "take60.mp4", 600, room_recording(song, tmp / "t.wav", 0.437, 48000, 60.0))
    footage = library.video_path(meta.id)
    started = time.perf_counter()
    alignment = align_files(footage, take)
    align_s = time.perf_counter() - started
    scored = score_take(session_on(library, meta, models), footage, take, alignment, tmp / "side.mp4")
    total_s = time.perf_counter() - started
    own = score_take(session_on(library, meta, models), footage, footage, alignment)
    pairs = zip(scored.session.scores, own.session.scores, strict=True)
    differences = np.abs([a.score - b.score for a, b in pairs])
    means = (np.mean([s.score for s in scored.session.scores]), np.mean([s.score for s in own.session.scores]))
    return {
        "reference_s": 60.0,
        "ticks": len(scored.ticks),
        "reference_build_s": round(build_s, 1),
        "align_s": round(align_s, 2),
        "score_s": round(total_s - align_s, 1),
        "total_s": round(total_s, 1),
        "offset_error_ms": round((alignment.offset_s - 0.437) * 1000, 3),
        "confidence": round(alignment.confidence, 3),
        "re_encoded_vs_footage": {
            "mean_abs_difference": round(float(differences.mean()), 2),
            "p90_abs_difference": round(float(np.percentile(differences, 90)), 2),
            "max_abs_difference": round(float(differences.max()), 2),
            "take_mean_score": round(float(means[0]), 2),
            "footage_mean_score": round(float(means[1]), 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "takes.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    assets.ensure((assets.SAMPLE_VIDEO, assets.SAMPLE_MUSIC, assets.SAMPLE_MUSIC_OTHER))
    video = assets.SAMPLE_VIDEO.path()
    with tempfile.TemporaryDirectory(prefix="dancesync-bench-takes-") as folder:
        tmp = Path(folder)
        rows = alignment_errors(tmp, video)
        confidence = other_song_confidence(tmp)
        print(confidence)
        minute = one_minute(tmp, video, load_models(pose=DEFAULT_BACKEND))
        print(minute)
    errors = [abs(r["error_ms"]) for r in rows]
    result = {
        "machine": describe(),
        "pose": DEFAULT_BACKEND,
        "alignment": {"max_abs_error_ms": max(errors), "takes": rows},
        "confidence": confidence,
        "one_minute": minute,
    }
    write_results(result, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
