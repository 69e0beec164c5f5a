"""Batch extraction benchmark: the sample at F=10 through `pose.batch` with 1 and 2 local worker processes.

Prints and writes bench/results/extract_many.json. Per configuration (workers, TensorFlow threads per worker):
  seconds         wall time of `extract_many` on the sample, the workers already started with their models
  realtime_ratio  video seconds per wall second
  identical       whether the CSV is byte for byte the single-process `extract_video` one (threads = CPUs)
The single-process `extract_video` run (no annotated MP4) is the baseline. All figures come from one run on one
machine; the machine is shared when the JSON says so in `load_average` (1, 5 and 15 min, before and after).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.machine import RESULTS, describe, write_results
from pose import assets
from pose.batch import LocalPool, ModelChoice, RangeTask, extract_many
from pose.media.video import probe_video
from pose.pipeline import extract_video, video_ticks, warm_up
from pose.ticks import detector_every


def run_pool(video: Path, fps: float, workers: int, threads: int, expected: bytes) -> dict[str, Any]:
    pool = LocalPool(workers, ModelChoice(threads=threads))
    try:
        every = detector_every(fps)
        warm = [RangeTask(video, fps, 0, every, video_ticks(video, fps), every)] * workers
        list(pool.run(warm))  # start every worker and load its models before timing
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            extract_many([video], fps, Path(tmp), pool)
            seconds = time.perf_counter() - started
            identical = (Path(tmp) / f"{video.stem}.csv").read_bytes() == expected
    finally:
        pool.close()
    duration = float(probe_video(video).duration_s)
    return {
        "workers": workers,
        "threads_per_worker": threads,
        "seconds": seconds,
        "realtime_ratio": duration / seconds,
        "identical": identical,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=assets.SAMPLE_VIDEO.path())
    parser.add_argument("--fps", type=float, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cpus = os.cpu_count() or 1
    load_before = os.getloadavg()
    models = ModelChoice(threads=cpus).load()
    duration = float(probe_video(args.video).duration_s)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "single.csv"
        warm_up(models)  # TensorFlow's first runs, untimed
        started = time.perf_counter()
        extract_video(args.video, args.fps, out, models)
        single_s = time.perf_counter() - started
        expected = out.read_bytes()
    del models
    configs = [(1, cpus), (2, cpus), (2, 1)]
    pools = [run_pool(args.video, args.fps, w, t, expected) for w, t in configs]
    figures = {
        "machine": describe() | {"load_average": {"before": load_before, "after": os.getloadavg()}},
        "video": {"name": args.video.name, "duration_s": duration, "fps": args.fps},
        "single_process": {"seconds": single_s, "realtime_ratio": duration / single_s, "threads": cpus},
        "pools": pools,
        "aim_realtime_ratio": 10.0,
    }
    write_results(figures, RESULTS / "extract_many.json")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
