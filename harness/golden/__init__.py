"""The golden set (keypoints placed by hand on the sample media) and PCK of a pose pipeline against it.

PCK@alpha: a labelled part counts as correct when the pipeline found it within alpha times the person's torso length
(neck to mid-hip) of where it was placed; a part the pipeline did not find counts as wrong. Two figures:
  main  the main dancer (person 0, what the CSV's person-0 rows and scoring use) against the golden main person;
  best  every golden person against the predicted person that gets most of their parts right.
Video frames are analysed after the `warmup` frames before them, in order and with one FrameAnalyzer, as in an
extraction at the video's own frame rate, so that what carries between ticks (tracking, crops) is in place. The
person detector runs on every frame, or, with `detect_every` n > 1, on the first and every n-th after it with the
boxes held in between, as a live session holds them (n = warmup + 1: the golden frame gets boxes warmup frames old).

Besides PCK, each backend's own output on the golden frames is stored (outputs/<backend>.json, written by
`pytest tests/test_golden.py --regen-golden`) and a run is compared with it part by part: the same people, the
same parts found, every part within PIXEL_TOLERANCE pixels. PCK says whether a backend is good enough; the stored
output says whether a change moved anything at all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pose.media.video import iter_frames
from pose.parts import NUM_PARTS, PART_NAMES, BodyPart
from pose.pipeline import FrameAnalyzer
from pose.types import FloatArray, FrameAnalysis

GOLDEN_DIR = Path(__file__).resolve().parent
GOLDEN_FILE = GOLDEN_DIR / "keypoints.json"
ALPHA = 0.25
OUTPUTS_DIR = GOLDEN_DIR / "outputs"
WARMUP_FRAMES = 5  # half a second of vtest.avi
# Two pixels: more than the run-to-run noise of TensorFlow's CPU kernels (thread count, instruction set), far less
# than any change to a model's pre- or post-processing moves a joint.
PIXEL_TOLERANCE = 2.0
_RIGHT_LEG = [BodyPart.R_HIP, BodyPart.R_KNEE, BodyPart.R_ANKLE]
_LEFT_LEG = [BodyPart.L_HIP, BodyPart.L_KNEE, BodyPart.L_ANKLE]


@dataclass(frozen=True)
class GoldenPerson:
    """xy: (18, 2) float32 pixels, NaN where the part was not placed; torso_px: neck to mid-hip in pixels.

    legs_side_ambiguous: which leg is the left one could not be judged (someone walking across the view), so
    the legs are scored both ways round and the better counts.
    """

    main: bool
    torso_px: float
    xy: FloatArray
    legs_side_ambiguous: bool = False

    def __post_init__(self) -> None:
        if self.xy.shape != (NUM_PARTS, 2):
            raise ValueError(f"xy must have shape ({NUM_PARTS}, 2), got {self.xy.shape}")

    @property
    def labelled(self) -> int:
        return int(np.isfinite(self.xy[:, 0]).sum())


@dataclass(frozen=True)
class GoldenFrame:
    """One image (frame 0) or one frame of a video (0-based decode index) with its labelled people."""

    source: str
    frame: int
    persons: tuple[GoldenPerson, ...]


@dataclass(frozen=True)
class PersonScore:
    """How one golden person fared: parts labelled, correct in the main dancer, correct in the best match."""

    source: str
    frame: int
    main: bool
    labelled: int
    correct_as_main: int
    correct_best: int


def load_golden(path: Path = GOLDEN_FILE) -> list[GoldenFrame]:
    doc = json.loads(Path(path).read_text())
    return [GoldenFrame(f["source"], int(f["frame"]), tuple(_person(p) for p in f["persons"])) for f in doc["frames"]]


def _person(entry: dict[str, Any]) -> GoldenPerson:
    unknown = set(entry["keypoints"]) - set(PART_NAMES)
    if unknown:
        raise ValueError(f"unknown parts in the golden set: {sorted(unknown)}")
    xy = np.full((NUM_PARTS, 2), np.nan, np.float32)
    for name, point in entry["keypoints"].items():
        xy[PART_NAMES.index(name)] = point
    return GoldenPerson(bool(entry["main"]), float(entry["torso_px"]), xy, bool(entry["legs_side_ambiguous"]))


def correct_parts(truth: GoldenPerson, predicted_px: FloatArray, alpha: float = ALPHA) -> int:
    """How many labelled parts `predicted_px` ((18, 2) pixels, NaN where not found) has within alpha·torso."""
    count = _count_within(truth, predicted_px, alpha)
    if truth.legs_side_ambiguous:
        swapped = predicted_px.copy()
        swapped[_RIGHT_LEG + _LEFT_LEG] = predicted_px[_LEFT_LEG + _RIGHT_LEG]
        count = max(count, _count_within(truth, swapped, alpha))
    return count


def _count_within(truth: GoldenPerson, predicted_px: FloatArray, alpha: float) -> int:
    error = np.linalg.norm(predicted_px - truth.xy, axis=1)
    with np.errstate(invalid="ignore"):
        return int((error <= alpha * truth.torso_px).sum())  # NaN (unlabelled or not found) compares False


def score_frame(golden: GoldenFrame, analysis: FrameAnalysis, alpha: float = ALPHA) -> list[PersonScore]:
    predicted = analysis.poses.xy * np.array([analysis.width, analysis.height], np.float32)
    scores = []
    for person in golden.persons:
        correct = [correct_parts(person, xy, alpha) for xy in predicted]
        scores.append(
            PersonScore(
                golden.source,
                golden.frame,
                person.main,
                person.labelled,
                correct_as_main=correct[0] if correct else 0,
                correct_best=max(correct, default=0),
            )
        )
    return scores


def pck(scores: Iterable[PersonScore], main_only: bool) -> float:
    """Share of labelled parts found correctly: main dancers against person 0, or everyone against best matches."""
    picked = [s for s in scores if s.main or not main_only]
    labelled = sum(s.labelled for s in picked)
    correct = sum(s.correct_as_main if main_only else s.correct_best for s in picked)
    return correct / labelled if labelled else float("nan")


def analyse(
    new_analyzer: Callable[[], FrameAnalyzer],
    media_dir: Path,
    golden: list[GoldenFrame] | None = None,
    warmup: int = WARMUP_FRAMES,
    detect_every: int = 1,
) -> list[tuple[GoldenFrame, FrameAnalysis]]:
    """Each golden frame with the pipeline's analysis of it; `new_analyzer` makes a fresh analyzer (one per frame)."""
    golden = load_golden() if golden is None else golden
    results = []
    for frame in golden:
        analyzer = new_analyzer()
        analysis = None
        for i, image in enumerate(_frames_up_to(media_dir / frame.source, frame.frame, warmup)):
            if i % detect_every == 0:
                people = analyzer.models.detector.detect(image)
            analysis = analyzer.analyze(image, people)
        assert analysis is not None
        results.append((frame, analysis))
    return results


def evaluate(
    new_analyzer: Callable[[], FrameAnalyzer],
    media_dir: Path,
    golden: list[GoldenFrame] | None = None,
    warmup: int = WARMUP_FRAMES,
    alpha: float = ALPHA,
    detect_every: int = 1,
) -> list[PersonScore]:
    """Score a pipeline on the golden set; `new_analyzer` makes a fresh analyzer (one per golden frame)."""
    return score_analyses(analyse(new_analyzer, media_dir, golden, warmup, detect_every), alpha)


def score_analyses(analyses: Iterable[tuple[GoldenFrame, FrameAnalysis]], alpha: float = ALPHA) -> list[PersonScore]:
    return [score for frame, analysis in analyses for score in score_frame(frame, analysis, alpha)]


# --- stored outputs


def outputs_path(backend: str) -> Path:
    return OUTPUTS_DIR / f"{backend}.json"


def outputs_of(analyses: Iterable[tuple[GoldenFrame, FrameAnalysis]]) -> dict[str, Any]:
    """The stored form of a backend's analyses: per frame, every person (main dancer first) as 18 parts, each
    [x, y] in pixels (to 0.01) or null where not found."""
    frames = []
    for frame, analysis in analyses:
        scale = np.array([analysis.width, analysis.height], np.float32)
        people = [
            [None if np.isnan(x) else [round(float(x), 2), round(float(y), 2)] for x, y in xy * scale]
            for xy in analysis.poses.xy
        ]
        frames.append({"source": frame.source, "frame": frame.frame, "people": people})
    return {"parts": list(PART_NAMES), "frames": frames}


def write_outputs(path: Path, outputs: dict[str, Any]) -> None:
    """JSON with one line per person, so that a change shows in a diff as the people it moved."""
    frames = []
    for frame in outputs["frames"]:
        people = ",\n".join("  " + json.dumps(person) for person in frame["people"])
        head = json.dumps({"source": frame["source"], "frame": frame["frame"]})[:-1]
        frames.append(f'{head}, "people": [\n{people}\n]}}')
    text = '{"parts": ' + json.dumps(outputs["parts"]) + ',\n"frames": [\n' + ",\n".join(frames) + "\n]}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_text(text)
    partial.replace(path)


def load_outputs(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def compare_outputs(stored: dict[str, Any], actual: dict[str, Any], tolerance_px: float = PIXEL_TOLERANCE) -> list[str]:
    """Every difference between two stored outputs, one line each (none: they agree)."""
    if stored["parts"] != actual["parts"]:
        return ["the part names differ"]
    found = {(f["source"], f["frame"]): f["people"] for f in actual["frames"]}
    problems = []
    for frame in stored["frames"]:
        where = f"{frame['source']}:{frame['frame']}"
        people = found.pop((frame["source"], frame["frame"]), None)
        if people is None:
            problems.append(f"{where}: not analysed")
        elif len(people) != len(frame["people"]):
            problems.append(f"{where}: {len(people)} people, stored {len(frame['people'])}")
        else:
            for person, (want, got) in enumerate(zip(frame["people"], people, strict=True)):
                problems += _compare_person(f"{where} person {person}", stored["parts"], want, got, tolerance_px)
    problems += [f"{source}:{index}: not in the stored output" for source, index in found]
    return problems


def _compare_person(
    where: str, parts: list[str], want: list[list[float] | None], got: list[list[float] | None], tolerance_px: float
) -> list[str]:
    problems = []
    for name, a, b in zip(parts, want, got, strict=True):
        if (a is None) != (b is None):
            problems.append(f"{where} {name}: {'found' if b is not None else 'not found'}, stored the opposite")
        elif a is not None and b is not None and (d := float(np.hypot(a[0] - b[0], a[1] - b[1]))) > tolerance_px:
            problems.append(f"{where} {name}: {d:.1f} px from the stored {a}")
    return problems


def _frames_up_to(path: Path, index: int, warmup: int) -> list[np.ndarray]:
    """The frame `index` of a video (or the image itself) and up to `warmup` frames before it, in order."""
    if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{path}: not a readable image")
        return [image]
    frames: list[np.ndarray] = []
    for i, (_, frame) in enumerate(iter_frames(path)):
        if i >= index - warmup:
            frames.append(frame.to_ndarray(format="bgr24"))
        if i == index:
            return frames
    raise ValueError(f"{path} has no frame {index}")
