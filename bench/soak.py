"""Long reliability runs against the real server in this process, on loopback, with the real
models and the Python client, written to bench/results/reliability.json (each part as it finishes):

    soak          N cycles of connect -> stream S s -> close; RSS, threads, fds, asyncio tasks every K cycles
    backpressure  one session with inference slower than the tick rate for S s: queue depth, frame age, RSS slope
    faults        one session whose analyzer raises on 1 tick in 10, then on every tick for 10 s: returned FPS

    python -m bench.soak [--parts soak,backpressure,faults] [--cycles 200] [--cycle-s 10] [--every 50]
                         [--backpressure-s 300] [--pose BACKEND]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.machine import RESULTS, describe, write_results
from harness.clips import cut_clip, long_webcam
from harness.reliability import FaultyAnalyzer, SlowAnalyzer, backpressure_run, fault_run, long_reference, soak_run
from harness.server import AppServer, settings_for
from pose import assets
from pose.models import BACKEND_NAMES, DEFAULT_BACKEND
from pose.pipeline import FrameAnalyzer, Models, load_models
from server import SESSIONS
from stream.memory import MMAP_THRESHOLD, limit_malloc_arenas
from stream.references import ReferenceLibrary, new_id

log = logging.getLogger("bench.soak")
RESULT = RESULTS / "reliability.json"
SLOW_DELAY_S = 0.25  # added to each analysis in the backpressure run (10 ticks/s: 0.1 s a tick)


def save(results: dict[str, Any], out: Path) -> None:
    write_results(results, out)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    parts = set(args.parts.split(","))
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results["machine"] = {**describe(), "pose": args.pose, "malloc": args.malloc}
    work = Path(tempfile.mkdtemp(prefix="dancesync-soak-"))
    try:
        return await _run_parts(args, parts, results, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def _run_parts(args: argparse.Namespace, parts: set[str], results: dict[str, Any], work: Path) -> dict[str, Any]:
    assets.ensure((assets.SAMPLE_VIDEO,))
    sample = assets.SAMPLE_VIDEO.path()
    models = load_models(assets.DATA_DIR, pose=args.pose)
    library = ReferenceLibrary(work / "references")
    log.info("building the reference (10 s of the sample at 10 ticks/s) in %s", work)
    base = library.build(new_id(), cut_clip(sample, work / "reference.mp4", 100), "sample, 10 s", 10.0, models)
    settings = settings_for(work)

    if "soak" in parts:
        webcam = long_webcam(sample, work / "webcam-soak.mp4", args.cycle_s + 3)
        reference = long_reference(library, base, args.cycle_s + 10)
        async with AppServer(settings, models) as server:

            def progress(sample: dict[str, float]) -> None:
                log.info("soak %s", sample)

            figures = await soak_run(
                server.url, server.app[SESSIONS], webcam, reference.id, args.cycles, args.cycle_s, args.every, progress
            )
        results["soak"] = dataclasses.asdict(figures)
        save(results, args.out)

    if "backpressure" in parts:
        webcam = long_webcam(sample, work / "webcam-long.mp4", args.backpressure_s + 5)
        reference = long_reference(library, base, args.backpressure_s + 20)
        slow = lambda m: SlowAnalyzer(FrameAnalyzer(m), SLOW_DELAY_S)  # noqa: E731
        async with AppServer(settings, models, slow) as server:
            bp = await backpressure_run(server.url, server.app[SESSIONS], webcam, reference.id, args.backpressure_s, 10)
        results["backpressure"] = {"delay_added_s": SLOW_DELAY_S, **dataclasses.asdict(bp)}
        log.info("backpressure %s", results["backpressure"])
        save(results, args.out)

    if "faults" in parts:
        webcam = long_webcam(sample, work / "webcam-faults.mp4", 24)
        reference = long_reference(library, base, 30)
        made: list[FaultyAnalyzer] = []

        def faulty(m: Models) -> FaultyAnalyzer:
            made.append(FaultyAnalyzer(FrameAnalyzer(m), every=10, sparse_s=5.0, solid_s=10.0))
            return made[-1]

        async with AppServer(settings, models, faulty) as server:
            faults = await fault_run(server.url, webcam, reference.id, made, seconds=20)
        results["faults"] = {"every": 10, "sparse_s": 5.0, "solid_s": 10.0, **dataclasses.asdict(faults)}
        log.info("faults %s", results["faults"])
        save(results, args.out)

    results["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save(results, args.out)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="soak,backpressure,faults", help="comma-separated (default: all)")
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--cycle-s", type=float, default=10.0, help="seconds streamed per soak cycle")
    parser.add_argument("--every", type=int, default=50, help="sample the process every this many cycles")
    parser.add_argument("--backpressure-s", type=float, default=300.0)
    parser.add_argument("--pose", choices=BACKEND_NAMES, default=DEFAULT_BACKEND)
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--default-malloc", action="store_true", help="keep glibc's default malloc settings")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("aioice", "aiortc", "stream.live", "stream.references"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args.malloc = "glibc default (the trim after each session still runs)"
    if not args.default_malloc and limit_malloc_arenas():  # as server.py does
        args.malloc = f"2 arenas, mmap threshold {MMAP_THRESHOLD // 1024} KiB, malloc_trim after each session"
    results = asyncio.run(run(args))
    print(json.dumps({k: v for k, v in results.items() if k != "soak"}, indent=2))
    if "soak" in results:
        print(json.dumps(results["soak"]["samples"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
