"""Side-by-side benchmark of the pose backends: speed on the sample video, accuracy on the golden set.

Prints a table and writes bench/results/backends.json. Per backend:
  forward_ms        the pose network per frame with its own preprocessing (crop or resize), median, fed as
                    extraction feeds it (person boxes and the previous main dancer)
  extract           a whole extraction of vtest.avi at F=10, CSV only (what a reference upload runs): per-tick ms
                    by stage, ticks per second, real-time ratio (ticks/s ÷ F), share of ticks with a main dancer,
                    CPU ms per tick (all threads: a check on wall times taken while the machine was busy)
  live_tick_ms      one live tick on a 640x480 frame: FrameAnalyzer.analyze with held boxes (median) plus the
                    person detector's share (it runs every 0.5 s, every 5th tick at F=10)
  pck_main/pck_best golden PCK@0.25-torso (harness.golden), boxes fresh on every frame; pck_main_held_boxes: boxes
                    0.5 s old, as a live session holds them
two sweeps: the single-pose crop (frame / box / keypoints) and MultiPose's input size (fixed sides vs chosen
per frame); and cross_scores: the mean score of one backend's main dancer against another's on the same frames
(what a session loses when the dancer's and the user's keypoints come from different backends). The machine is
shared: its load average is recorded with the figures.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.machine import RESULTS, describe, write_results
from harness.golden import WARMUP_FRAMES, evaluate, pck
from pose import assets
from pose.crop import CropPolicy
from pose.media.video import iter_frames, probe_video
from pose.models import BACKEND_NAMES
from pose.models.movenet import MultiPoseMoveNet, SinglePoseMoveNet
from pose.pipeline import FrameAnalyzer, Models, extract_video, load_models
from pose.scoring import score_pose
from pose.ticks import sample_ticks
from pose.types import Detections, Poses

SAMPLES = assets.DATA_DIR / "samples"
FPS = 10
LIVE_SIZE = (640, 480)
CROSS_FRAMES = 60  # one a second
DETECT_EVERY = 5  # live and offline: the person detector every 0.5 s of video = every 5th tick at F=10
log = logging.getLogger("bench.backends")


def sample_frames(video: Path, count: int = 20) -> list[np.ndarray]:
    """`count` frames spread over the first `count` seconds of the video."""
    return [f.to_ndarray(format="bgr24") for _, f in sample_ticks(iter_frames(video), 1, count)]


Hint = tuple[np.ndarray, Detections, Poses | None]


def forward_hints(models: Models, frames: list[np.ndarray]) -> list[Hint]:
    """Each frame with its boxes and the previous frame's main dancer, as extraction feeds them (and a warm-up)."""
    analyzer = FrameAnalyzer(models)
    hints: list[Hint] = []
    previous = None
    for image in frames:
        people = models.detector.detect(image)
        hints.append((image, people, previous))
        analysis = analyzer.analyze(image, people)
        previous = analysis.main if len(analysis.poses) else None
    return hints


def forward_ms(all_models: dict[str, Models], frames: list[np.ndarray], repeats: int = 3) -> dict[str, float]:
    """Median pose forward time per backend, the backends taking turns so that other load hits them alike."""
    hints = {name: forward_hints(models, frames) for name, models in all_models.items()}
    times: dict[str, list[float]] = {name: [] for name in all_models}
    for _ in range(repeats):
        for name, models in all_models.items():
            for image, people, previous in hints[name]:
                t0 = time.perf_counter()
                models.pose.forward(image, people, previous)
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) * 1000 for name, t in times.items()}


def ssd_ms(models: Models, frames: list[np.ndarray]) -> float:
    for image in frames[:3]:
        models.detector.forward(image)
    times = []
    for image in frames:
        t0 = time.perf_counter()
        models.detector.forward(image)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def live_tick_ms(models: Models, frames: list[np.ndarray], detector_ms: float) -> float:
    """Median FrameAnalyzer.analyze on webcam-sized frames with held boxes, plus the detector's share per tick."""
    analyzer = FrameAnalyzer(models)
    images = [cv2.resize(f, LIVE_SIZE, interpolation=cv2.INTER_AREA) for f in frames]
    people = models.detector.detect(images[0])
    times = []
    for i, image in enumerate(images * 2):
        if i % DETECT_EVERY == 0:
            people = models.detector.detect(image)
        t0 = time.perf_counter()
        analyzer.analyze(image, people)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[len(images) :]) * 1000 + detector_ms / DETECT_EVERY


def extraction(models: Models, video: Path) -> dict[str, Any]:
    cpu = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        result = extract_video(video, FPS, Path(tmp) / "out.csv", models)
    cpu = time.process_time() - cpu
    tick_ms = result.seconds / result.ticks * 1000
    return {
        "ticks": result.ticks,
        "per_tick_ms": {name: s / result.ticks * 1000 for name, s in result.timings.items()} | {"total": tick_ms},
        "cpu_ms_per_tick": cpu / result.ticks * 1000,  # all threads; less sensitive to other loads than wall time
        "ticks_per_s": 1000 / tick_ms,
        "realtime_ratio": 1000 / tick_ms / FPS,
        "main_found_share": result.found / result.ticks,
    }


def golden_pck(models: Models) -> dict[str, float]:
    fresh = evaluate(lambda: FrameAnalyzer(models), SAMPLES)
    held = evaluate(lambda: FrameAnalyzer(models), SAMPLES, detect_every=WARMUP_FRAMES + 1)
    return {"pck_main": pck(fresh, True), "pck_best": pck(fresh, False), "pck_main_held_boxes": pck(held, True)}


def sweep(models: Models, frames: list[np.ndarray], settings: dict[str, Callable[[], None]]) -> dict[str, Any]:
    """Golden PCK and forward time of one backend under each setting (a function that applies it)."""
    out = {}
    for label, apply in settings.items():
        apply()
        scores = evaluate(lambda: FrameAnalyzer(models), SAMPLES)
        out[label] = {
            "pck_main": pck(scores, True),
            "pck_best": pck(scores, False),
            "forward_ms": forward_ms({label: models}, frames, repeats=1)[label],
        }
        log.info("  %s: %s", label, out[label])
    return out


def crop_sweep(models: Models, frames: list[np.ndarray]) -> dict[str, Any]:
    pose = models.pose
    assert isinstance(pose, SinglePoseMoveNet)
    default = pose.crop

    def use(policy: CropPolicy) -> Callable[[], None]:
        return lambda: setattr(pose, "crop", policy)

    try:
        return sweep(models, frames, {p.value: use(p) for p in CropPolicy})
    finally:
        pose.crop = default


def multipose_sweep(models: Models, frames: list[np.ndarray]) -> dict[str, Any]:
    pose = models.pose
    assert isinstance(pose, MultiPoseMoveNet)
    default = pose.sides

    def use(sides: tuple[int, int]) -> Callable[[], None]:
        return lambda: setattr(pose, "sides", sides)

    settings = {str(side): use((side, side)) for side in (256, 384, 512)}
    settings[f"{default[0]}-{default[1]} per frame (default)"] = use(default)
    try:
        return sweep(models, frames, settings)
    finally:
        pose.sides = default


def cross_scores(all_models: dict[str, Models], frames: list[np.ndarray]) -> dict[str, dict[str, float]]:
    """{dancer backend: {user backend: mean score}} over the frames where both found a main dancer."""
    found: dict[str, list[Poses | None]] = {}
    for name, models in all_models.items():
        analyzer = FrameAnalyzer(models)
        found[name] = [(a.poses.take([0]) if len(a.poses) else None) for a in map(analyzer.analyze, frames)]
    aspect = frames[0].shape[1] / frames[0].shape[0]
    table: dict[str, dict[str, float]] = {}
    for dancer, dancer_poses in found.items():
        table[dancer] = {}
        for user, user_poses in found.items():
            scores = [
                score_pose(u.xy[0], u.confidence[0], d.xy, d.confidence, user_aspect=aspect, dancer_aspect=aspect).score
                for d, u in zip(dancer_poses, user_poses, strict=True)
                if d is not None and u is not None
            ]
            table[dancer][user] = round(statistics.fmean(scores), 1) if scores else float("nan")
    return table


def run(video: Path, backends: tuple[str, ...]) -> dict[str, Any]:
    """Timings first, for all backends back to back (the machine is shared: the shorter that window, the better),
    then accuracy, which does not depend on the load."""
    info = probe_video(video)
    frames = sample_frames(video)
    all_models = {name: load_models(pose=name) for name in backends}
    figures: dict[str, Any] = {
        "machine": describe() | {"load_average_before_timing": os.getloadavg()},
        "video": {"name": video.name, "width": info.width, "height": info.height, "fps": FPS},
        "backends": {name: {} for name in backends},
    }
    detector = ssd_ms(next(iter(all_models.values())), frames)
    forward = forward_ms(all_models, frames)
    for name, models in all_models.items():
        log.info("%s: timing", name)
        row = figures["backends"][name]
        row |= {"forward_ms": forward[name], "ssd_ms": detector}
        row["live_tick_ms"] = live_tick_ms(models, frames, detector)
        row["extract"] = extraction(models, video)
    figures["machine"]["load_average_after_timing"] = os.getloadavg()
    for name, models in all_models.items():
        log.info("%s: accuracy", name)
        row = figures["backends"][name]
        row |= golden_pck(models)
        if isinstance(models.pose, SinglePoseMoveNet):
            row["crop"] = crop_sweep(models, frames)
        if isinstance(models.pose, MultiPoseMoveNet):
            row["multipose_sides"] = multipose_sweep(models, frames)
        log.info("  %s", {k: v for k, v in row.items() if k not in ("crop", "multipose_sides")})
    figures["cross_scores"] = cross_scores(all_models, sample_frames(video, CROSS_FRAMES))
    return figures


def table(figures: dict[str, Any]) -> str:
    """The headline figures as a Markdown table."""
    lines = [
        "| backend | forward ms | extraction ms/tick | ticks/s | real-time ratio at F=10 | live ms/tick | main found "
        "| PCK main | PCK best | extraction CPU ms/tick |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in figures["backends"].items():
        ex = row["extract"]
        lines.append(
            f"| {name} | {row['forward_ms']:.1f} | {ex['per_tick_ms']['total']:.1f} | {ex['ticks_per_s']:.1f} "
            f"| {ex['realtime_ratio']:.2f} | {row['live_tick_ms']:.1f} | {ex['main_found_share']:.0%} "
            f"| {row['pck_main']:.3f} | {row['pck_best']:.3f} | {ex['cpu_ms_per_tick']:.1f} |"
        )
    for name, row in figures["backends"].items():
        for sweep_name in ("crop", "multipose_sides"):
            if sweep_name in row:
                lines += [
                    "",
                    f"{name}, {sweep_name}:",
                    "| setting | PCK main | PCK best | forward ms |",
                    "|---|---|---|---|",
                ]
                for label, s in row[sweep_name].items():
                    lines.append(f"| {label} | {s['pck_main']:.3f} | {s['pck_best']:.3f} | {s['forward_ms']:.1f} |")
    cross = figures.get("cross_scores", {})
    if cross:
        names = list(cross)
        lines += ["", "mean score, dancer (rows) vs user (columns) on the same frames:", f"| | {' | '.join(names)} |"]
        lines += ["|---" * (len(names) + 1) + "|"]
        lines += [f"| {d} | {' | '.join(f'{cross[d][u]:.1f}' for u in names)} |" for d in names]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=assets.SAMPLE_VIDEO.path())
    parser.add_argument("--backend", action="append", choices=BACKEND_NAMES, help="only these (default: all)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    figures = run(args.video, tuple(args.backend or BACKEND_NAMES))
    write_results(figures, RESULTS / "backends.json")
    print(table(figures))


if __name__ == "__main__":
    main()
