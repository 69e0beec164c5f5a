"""`python -m pose`: extract a dance video's keypoints to CSV, analyse one image, or fetch the models."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import cv2
import numpy as np
from tqdm import tqdm

from pose import assets
from pose.draw import draw_analysis
from pose.models import BACKEND_NAMES, DEFAULT_BACKEND, backend_spec
from pose.privacy import face_boxes, mosaic
from pose.ticks import as_rate

if TYPE_CHECKING:
    from pose.pipeline import Models
    from pose.types import FrameAnalysis

log = logging.getLogger("pose")


class UsageError(ValueError):
    """Bad input from the user: reported as one line, exit status 2."""


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=assets.DATA_DIR, help="model cache (default: data/)")
    parser.add_argument(
        "--pose", choices=BACKEND_NAMES, default=DEFAULT_BACKEND, help="pose model (default: %(default)s)"
    )
    width, height = backend_spec("tfpose").input_size
    parser.add_argument("--pose-size", type=parse_size, help=f"tf-pose's network input WxH (default {width}x{height})")


def parse_size(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT → (width, height), for argparse."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return w, h


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number ≥ 1, got {text!r}")
    return value


def _fps(text: str) -> float:
    try:
        value = float(text)
        as_rate(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, like every other error here (argparse would add the usage text)."""
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m pose", description=__doc__)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v, -vv)")
    commands = parser.add_subparsers(dest="command", required=True)

    extract = commands.add_parser("extract", help="dancer keypoints of a video, one row per tick, to CSV")
    extract.add_argument("video", type=Path)
    extract.add_argument("--fps", type=_fps, required=True, help="ticks per second (F)")
    extract.add_argument("--out", type=Path, required=True, help="CSV to write")
    extract.add_argument("--annotated", type=Path, help="also write an MP4 with the skeletons drawn (keeps audio)")
    extract.add_argument(
        "--mirrored",
        action="store_true",
        help="analyse every frame flipped left to right, keypoints flipped back (a reference's second look)",
    )
    extract.add_argument("--no-mosaic", action="store_true", help="leave faces in the annotated MP4 unmosaicked")
    add_model_arguments(extract)

    many = commands.add_parser(
        "extract-many", help="keypoint CSVs of many videos (long ones split into tick ranges) across workers"
    )
    many.add_argument("videos", type=Path, nargs="+")
    many.add_argument("--fps", type=_fps, required=True, help="ticks per second (F)")
    many.add_argument("--out-dir", type=Path, required=True, help="folder for the CSVs, one <video stem>.csv each")
    many.add_argument("--workers", type=_positive, default=os.cpu_count() or 1, help="default: one per CPU")
    many.add_argument("--ray", metavar="auto|ADDRESS", help="workers on a Ray cluster (default: local)")
    many.add_argument(
        "--range-s", type=_fps, default=10.0, help="seconds of video per range handed to a worker (default 10)"
    )
    many.add_argument(
        "--threads",
        type=_positive,
        help="TensorFlow threads per worker (default: this machine's CPU count, whose CSVs are exactly extract's;"
        " 1 is faster when the workers fill the cores, and may differ from extract in the last digits)",
    )
    add_model_arguments(many)

    image = commands.add_parser("image", help="people, keypoints and person boxes of one image")
    image.add_argument("image", type=Path)
    image.add_argument("--json", action="store_true", help="print JSON (default: a short summary)")
    image.add_argument("--annotated", type=Path, help="also write the image with skeletons drawn")
    image.add_argument("--no-mosaic", action="store_true", help="leave faces in the annotated image unmosaicked")
    add_model_arguments(image)

    commands.add_parser("fetch", help="fetch and verify the models and sample media")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    commands = {"extract": run_extract, "extract-many": run_extract_many, "image": run_image, "fetch": run_fetch}
    try:
        return commands[args.command](args)
    except (UsageError, assets.AssetError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return 130


def run_extract(args: argparse.Namespace) -> int:
    from pose.media.video import probe_video

    probe_video(args.video)  # fail on bad input before spending seconds loading TensorFlow and the models
    from pose.pipeline import extract_video, load_models

    models = load_models(args.data_dir, args.pose_size, args.pose)
    with tqdm(unit="tick", desc=args.video.name, dynamic_ncols=True) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = extract_video(
            args.video,
            args.fps,
            args.out,
            models,
            args.annotated,
            progress,
            mirrored=args.mirrored,
            mosaic=not args.no_mosaic,
        )
    log.info("%d ticks, main dancer found on %d, %.1f s", result.ticks, result.found, result.seconds)
    print(f"wrote {args.out} ({result.ticks} ticks by {models.pose.name}, dancer found on {result.found})")
    return 0


def run_extract_many(args: argparse.Namespace) -> int:
    from pose.batch import LocalPool, ModelChoice, Runner, extract_many
    from pose.media.video import probe_video

    for video in args.videos:
        probe_video(video)  # every input checked before any worker starts
    # TensorFlow's results may depend on its thread count in the last digits, so by default every worker runs
    # with this machine's, as `extract` does here: the CSVs are then exactly `extract`'s.
    choice = ModelChoice(args.data_dir, args.pose, args.pose_size, args.threads or os.cpu_count())
    runner: Runner
    if args.ray:
        from pose.batch_ray import RayPool

        runner = RayPool(args.workers, choice, args.ray)
    else:
        runner = LocalPool(args.workers, choice)
    try:
        with tqdm(unit="tick", desc=f"{len(args.videos)} video(s)", dynamic_ncols=True) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            finished = extract_many(args.videos, args.fps, args.out_dir, runner, args.range_s, progress=progress)
    finally:
        runner.close()
    for done in finished:
        print(f"wrote {done.out} ({done.ticks} ticks, dancer found on {done.found})")
    return 0


def run_image(args: argparse.Namespace) -> int:
    image = read_image(args.image)
    from pose.pipeline import load_models

    models = load_models(args.data_dir, args.pose_size, args.pose)
    analysis, report = analyze_image(models, image)
    if args.annotated:
        drawn = draw_analysis(image, analysis)
        if not args.no_mosaic:
            mosaic(drawn, face_boxes(analysis))
        if not cv2.imwrite(str(args.annotated), drawn):
            raise UsageError(f"{args.annotated}: could not write an image there")
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{args.image}: {len(report['persons'])} people, {len(report['detections'])} person box(es)")
    return 0


def analyze_image(models: Models, image: np.ndarray) -> tuple[FrameAnalysis, dict[str, Any]]:
    """One image's analysis and its report, the JSON of `image --json` (and of `POST /api/analyze/image`)."""
    from pose.pipeline import FrameAnalyzer
    from pose.types import analysis_to_dict

    analysis = FrameAnalyzer(models).analyze(image)
    return analysis, {"pose": models.pose.name, **analysis_to_dict(analysis)}


def read_image(path: Path) -> np.ndarray:
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    return decode_image(path.read_bytes(), str(path))


def decode_image(data: bytes, name: str | None = None) -> np.ndarray:
    """An encoded image → (h, w, 3) BGR; UsageError (its message starting with `name`, if any) when it is not one
    or its header claims more pixels than the limits allow (a decompression bomb is refused before OpenCV decodes
    it)."""
    prefix = f"{name}: " if name else ""
    from pose.media.safety import MediaLimitError, check_image_header

    try:
        check_image_header(data)
    except MediaLimitError as exc:
        raise UsageError(f"{prefix}{exc}") from None
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # we report a bad image ourselves
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise UsageError(f"{prefix}not a readable image")
    return image


def run_fetch(args: argparse.Namespace) -> int:
    return assets.main()
