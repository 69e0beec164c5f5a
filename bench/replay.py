"""Live replay benchmark: the reference's own footage replayed as the webcam through the real server and the
Python client, and where the live score parts from the offline one.

    python -m bench.replay [--seconds 12] [--fps 5] [--out bench/results/replay.json]

Set-up (the scoring issue's figure): a reference of the first 15 s of the sample (vtest.avi) at 10 ticks/s
built with the default backend (so with its calibration and cut), the reference's own video.mp4 (what the page
plays) as the webcam at its own size and 30 fps (each frame three times, H.264), one session of `--seconds` at
`--fps` ticks/s, `python server.py` in its own process, the client in this one. Mean scores over the ticks
the session processed:

* live: the session's own scores.csv (calibrated and raw), the latency estimate, ticks processed;
* live_rescored: the session's keypoints.csv through `pose.judge.score_keypoints` (the one code path: equal to
  live up to the CSV's rounding);
* offline_reference: the dancer's own keypoints at the same ticks (the ceiling: a perfect copy);
* *_smoothed: the same, scoring the One-Euro filtered keypoints (what the filter would cost, `pose.judge`);
* offline_webcam: the webcam clip decoded here (no WebRTC, no clock), the frame on screen at each tick of the
  session's grid analysed by `LiveSession.process_inline` as live (detector boxes refreshed every half second,
  crop from the previous processed tick): what re-encoding the footage once more and the session's analysis
  cadence cost;
* offline_webcam_every_tick: the same at the reference's 10 ticks/s (the crop follows from consecutive ticks).

Writes bench/results/replay.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.live import prepare_data_dir
from bench.machine import RESULTS, describe, write_results
from harness.clips import cut_clip
from harness.server import ServerProcess
from pose import assets
from pose.csvio import main_dancer_arrays, read_keypoints_csv
from pose.judge import Judge, score_keypoints
from pose.media.video import iter_frames, probe_video
from pose.models import DEFAULT_BACKEND
from stream.client import run_session
from stream.references import ReferenceLibrary
from stream.session import DancerPoses, LiveSession

log = logging.getLogger("bench.replay")

RESULT = RESULTS / "replay.json"
REFERENCE_S = 15.0
START_TIMEOUT_S = 300.0


def _mean(values: Any) -> float:
    a = np.asarray(values, dtype=np.float64)
    return round(float(a.mean()), 1) if a.size else float("nan")


def _dancer(data_dir: Path, reference: str) -> tuple[DancerPoses, Path]:
    library = ReferenceLibrary(data_dir / "references")
    meta = library.get(reference)
    assert meta is not None
    calibration, moves = library.scoring(meta)
    dancer = DancerPoses.from_csv(
        library.csv_path(meta.id), meta.fps, meta.width / meta.height, meta.pose, calibration, moves
    )
    return dancer, library.root / meta.id


def offline_webcam(dancer: DancerPoses, webcam: Path, ticks: list[int], fps: float, models: Any) -> dict[str, Any]:
    """The webcam clip's frame on screen at each of `ticks` (reference ticks), through `LiveSession.process`."""
    from pose.pipeline import FrameAnalyzer

    session: LiveSession[None] = LiveSession(dancer, FrameAnalyzer(models), fps, detect=models.detector.detect)
    wanted = iter(sorted(ticks))
    target = next(wanted, None)
    previous = None
    results = []
    for t, frame in iter_frames(webcam):
        while target is not None and float(t) > target / dancer.fps:  # `previous` was on screen at the tick
            if previous is not None:
                results.append(session.process_inline(target, previous, target / dancer.fps))
            target = next(wanted, None)
        previous = frame.to_ndarray(format="bgr24")
        if target is None:
            break
    while target is not None and previous is not None:
        results.append(session.process_inline(target, previous, target / dancer.fps))
        target = next(wanted, None)
    latency = results[-1].latency if results else None
    return {
        "ticks": len(results),
        "score": _mean([r.score.score for r in results]),
        "raw": _mean([r.score.raw for r in results]),
        "latency_ms": None if latency is None else latency.ms,
    }


async def live(url: str, webcam: Path, reference: str, seconds: float, fps: float) -> dict[str, Any]:
    result = await run_session(url, webcam, reference, seconds=seconds, fps=fps)
    scores = pd.read_csv(io.StringIO(result.scores_csv), keep_default_na=False)
    return {
        "ticks": len(scores),
        "elapsed_ticks": len(result.elapsed_ticks()),
        "score": _mean(scores["score"]),
        "raw": _mean(scores["raw"]),
        "latency_ms": result.metadata.get("latency_ms"),
        "latency_confident": result.metadata.get("latency_confident"),
        "tiers": result.metadata.get("tiers"),
        "scores_csv": result.scores_csv,
        "keypoints_csv": result.keypoints_csv,
    }


def run(seconds: float, fps: float, work: Path) -> dict[str, Any]:
    from pose.pipeline import load_models

    video = assets.SAMPLE_VIDEO.path()
    assets.ensure((assets.SAMPLE_VIDEO,))
    started = time.monotonic()
    data_dir = work / "data"
    data_dir.mkdir()
    reference = prepare_data_dir(data_dir, video, REFERENCE_S)
    footage = data_dir / "references" / reference / "video.mp4"  # what the page plays: the reference's own
    webcam = cut_clip(footage, work / "webcam.mp4", round(REFERENCE_S * 10), repeat=3)
    width, height = probe_video(webcam).width, probe_video(webcam).height
    aspect = width / height
    log.warning("reference and webcam ready (%.0f s)", time.monotonic() - started)
    args = ["server.py", "--data-dir", str(data_dir), "--pose", DEFAULT_BACKEND, "--no-seed"]
    with ServerProcess.start(args, work / "server.log", "server", START_TIMEOUT_S) as server:
        session = asyncio.run(live(server.url, webcam, reference, seconds, fps))
    log.warning("live: %s", {k: v for k, v in session.items() if not k.endswith("_csv")})
    dancer, folder = _dancer(data_dir, reference)
    scores = pd.read_csv(io.StringIO(session.pop("scores_csv")), keep_default_na=False)
    ticks = scores["tick"].astype(int).tolist()
    calibration, moves = dancer.scoring()

    def judge(smoothed: bool = False) -> Judge:
        return Judge(
            dancer.xy, dancer.confidence, dancer.aspect, dancer.fps, calibration, moves, score_smoothed=smoothed
        )

    (work / "user.csv").write_text(session.pop("keypoints_csv"))
    uticks, uxy, uconf = main_dancer_arrays(read_keypoints_csv(work / "user.csv"))
    rescored = score_keypoints(judge(), uticks, dancer.fps, uxy, uconf, aspect)
    own = score_keypoints(judge(), ticks, dancer.fps, dancer.xy[ticks], dancer.confidence[ticks], dancer.aspect)
    own_smoothed = score_keypoints(
        judge(True), ticks, dancer.fps, dancer.xy[ticks], dancer.confidence[ticks], dancer.aspect
    )
    user_smoothed = score_keypoints(judge(True), uticks, dancer.fps, uxy, uconf, aspect)
    models = load_models(data_dir, pose=DEFAULT_BACKEND)
    step = round(dancer.fps / fps)
    grid = list(range(min(ticks), max(ticks) + 1, step)) if ticks else []
    every = list(range(min(ticks), max(ticks) + 1)) if ticks else []
    return {
        "machine": describe() | {"load_average": list(os.getloadavg())},
        "setup": {
            "reference_s": REFERENCE_S,
            "reference_fps": dancer.fps,
            "pose": DEFAULT_BACKEND,
            "webcam": {"size": [width, height], "fps": 30, "source": "the reference's video.mp4"},
            "session_s": seconds,
            "session_fps": fps,
            "calibrated": folder.joinpath("calibration.csv").is_file(),
        },
        "live": session,
        "live_rescored": {
            "ticks": len(rescored),
            "score": _mean([v.score for v in rescored]),
            "max_abs_difference": round(
                float(np.max(np.abs(np.array([v.score for v in rescored]) - scores["score"].to_numpy()))), 2
            )
            if len(rescored) == len(scores)
            else None,
        },
        "offline_reference": {
            "ticks": len(own),
            "score": _mean([v.score for v in own]),
            "raw": _mean([v.raw for v in own]),
        },
        "offline_reference_smoothed": {"ticks": len(own_smoothed), "score": _mean([v.score for v in own_smoothed])},
        "live_rescored_smoothed": {"ticks": len(user_smoothed), "score": _mean([v.score for v in user_smoothed])},
        "per_tick": {
            "tick": ticks,
            "live": scores["score"].tolist(),
            "rescored": [round(v.score, 2) for v in rescored],
            "rescored_ticks": [v.tick for v in rescored],
        },
        "offline_webcam": offline_webcam(dancer, webcam, grid, fps, models),
        "offline_webcam_every_tick": offline_webcam(dancer, webcam, every, dancer.fps, models),
        "total_s": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=12.0, help="the session's length (default 12 s)")
    parser.add_argument("--fps", type=float, default=5.0, help="the session's ticks per second (default 5)")
    parser.add_argument("--out", type=Path, default=RESULT, help="where the JSON goes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        figures = run(args.seconds, args.fps, Path(tmp))
    write_results(figures, args.out)
    keys = ("live", "live_rescored", "live_rescored_smoothed", "offline_reference", "offline_reference_smoothed")
    for key in (*keys, "offline_webcam", "offline_webcam_every_tick"):
        print(f"{key:<28}{json.dumps(figures[key])}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
