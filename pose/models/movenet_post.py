"""MoveNet's post-processing, pure numpy: its output (COCO keypoints) mapped onto the 18-part schema.

Single-pose output (Lightning, Thunder): (17, 3) y, x, score per COCO keypoint, normalised to the input.
MultiPose output: (6, 56): six people, each 17 x (y, x, score), then box y1, x1, y2, x2 and the person's score.
Keypoints map onto the 18-part schema by name; the neck, which COCO lacks, is the shoulders' midpoint when both
are found, with the lower of their two scores. Also here: how MultiPose's input is sized for a frame.
"""

from __future__ import annotations

import numpy as np

from pose.models.base import NetworkOutput
from pose.parts import NUM_PARTS, BodyPart
from pose.types import Detections, FloatArray, Poses

COCO_KEYPOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)  # fmt: skip
# Our part index of each COCO keypoint, by name ("left_eye" → L_EYE).
COCO_TO_PART = np.array(
    [BodyPart[n.replace("left_", "l_").replace("right_", "r_").upper()] for n in COCO_KEYPOINTS], np.intp
)
# Thresholds of TF.js pose-detection's MoveNet: a keypoint is drawn at 0.3, a pose is kept at 0.25.
MIN_PART_SCORE = 0.3
MIN_PERSON_SCORE = 0.25
# MultiPose's input: TF Hub recommends 256 for the longer side, which suits people near the camera but loses small
# ones; 512 is the other way round (docs/benchmarks.md). So the side is chosen per frame from the largest person
# box: big enough for that box's longer side to span MULTIPOSE_PERSON_PX input pixels, within MULTIPOSE_SIDES
# (bench/backends.py, multipose_sides).
MULTIPOSE_SIDES = (256, 512)
MULTIPOSE_PERSON_PX = 96


def coco_to_poses(keypoints: FloatArray, person_score: FloatArray, min_part_score: float = MIN_PART_SCORE) -> Poses:
    """keypoints: (n, 17, 3) x, y (frame-normalised), score in COCO order; person_score: (n,). → Poses.

    A keypoint counts as found when its score reaches `min_part_score` and it lies in the frame (a crop or the
    letterbox may reach past the frame's edges, and the CSV holds coordinates in [0, 1]).
    """
    n = len(keypoints)
    xy = np.full((n, NUM_PARTS, 2), np.nan, np.float32)
    confidence = np.zeros((n, NUM_PARTS), np.float32)
    inside = ((keypoints[..., :2] >= 0) & (keypoints[..., :2] <= 1)).all(axis=-1)
    found = (keypoints[..., 2] >= min_part_score) & inside
    xy[:, COCO_TO_PART] = np.where(found[..., None], keypoints[..., :2], np.nan)
    confidence[:, COCO_TO_PART] = np.where(found, keypoints[..., 2], 0)
    shoulders = [BodyPart.L_SHOULDER, BodyPart.R_SHOULDER]
    both = (confidence[:, shoulders] > 0).all(axis=1)
    xy[both, BodyPart.NECK] = xy[both][:, shoulders].mean(axis=1)
    confidence[both, BodyPart.NECK] = confidence[both][:, shoulders].min(axis=1)
    return Poses(xy, confidence, person_score.astype(np.float32))


def to_frame(yx_score: FloatArray, region: FloatArray) -> FloatArray:
    """(..., 3) y, x, score normalised to the network input → (..., 3) x, y, score normalised to the frame."""
    x1, y1, x2, y2 = region
    x = x1 + yx_score[..., 1] * (x2 - x1)
    y = y1 + yx_score[..., 0] * (y2 - y1)
    return np.stack([x, y, yx_score[..., 2]], axis=-1).astype(np.float32)


def decode_single(output: NetworkOutput) -> Poses:
    """Single-pose output (17, 3) → 0 or 1 person; the person's score is the mean keypoint score."""
    keypoints = to_frame(output.tensor, output.region)[None]
    poses = coco_to_poses(keypoints, keypoints[:, :, 2].mean(axis=1))
    return poses.take(np.flatnonzero((poses.score >= MIN_PERSON_SCORE) & poses.found.any(axis=1)))


def decode_multi(output: NetworkOutput) -> Poses:
    """MultiPose output (6, 56) → the people scoring at least MIN_PERSON_SCORE, in the model's order."""
    people = output.tensor[output.tensor[:, 55] >= MIN_PERSON_SCORE]
    poses = coco_to_poses(to_frame(people[:, :51].reshape(-1, 17, 3), output.region), people[:, 55])
    return poses.take(np.flatnonzero(poses.found.any(axis=1)))


def multipose_side(
    people: Detections,
    width: int,
    height: int,
    person_px: float = MULTIPOSE_PERSON_PX,
    sides: tuple[int, int] = MULTIPOSE_SIDES,
) -> int:
    """The input's longer side for a frame: the largest box's longer side becomes `person_px`, within `sides`.

    With no box, the smaller side (TF Hub's recommendation).
    """
    if not len(people):
        return sides[0]
    x1, y1, x2, y2 = people.boxes[0] * (width, height, width, height)
    longest = max(x2 - x1, y2 - y1, 1.0)
    return int(np.clip(_multiple_of_32(person_px * max(width, height) / longest), *sides))


def multipose_input_size(width: int, height: int, side: int) -> tuple[int, int]:
    """(width, height) of MultiPose's input for a frame: the longer side `side`, both multiples of 32."""
    scale = side / max(width, height)
    return _multiple_of_32(width * scale), _multiple_of_32(height * scale)


def _multiple_of_32(value: float) -> int:
    return -(-round(value) // 32) * 32
