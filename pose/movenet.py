"""Google's MoveNet (TF Hub; TF.js graph models converted in process by `pose.tfjs`) as PoseBackends.

Input `input:0`: int32 RGB 0..255, NHWC. Output `Identity:0`: single-pose (Lightning 192x192, Thunder 256x256)
[1, 1, 17, 3] y, x, score per COCO keypoint, normalised to the input; MultiPose (any size, multiples of 32)
[1, 6, 56]: six people, each 17 x (y, x, score), then box y1, x1, y2, x2 and the person's score.

Single-pose models run on a square crop around the main dancer (`pose.crop`); MultiPose on the whole frame,
letterboxed to a multiple of 32. Keypoints map onto the 18-part schema by name; the neck, which COCO lacks, is
the shoulders' midpoint when both are found, with the lower of their two scores.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pose.backends import NetworkOutput
from pose.crop import CropPolicy, choose_region, cut
from pose.graph import FrozenGraph
from pose.parts import NUM_PARTS, BodyPart
from pose.tfjs import load_graph_model
from pose.types import Detections, FloatArray, Poses

INPUT = "input:0"
OUTPUT = "Identity:0"
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
MULTIPOSE_MAX_SIDE = 256  # TF Hub: "the larger dimension is recommended to be 256"


def coco_to_poses(keypoints: FloatArray, person_score: FloatArray, min_part_score: float = MIN_PART_SCORE) -> Poses:
    """keypoints: (n, 17, 3) x, y (frame-normalised), score in COCO order; person_score: (n,). → Poses."""
    n = len(keypoints)
    xy = np.full((n, NUM_PARTS, 2), np.nan, np.float32)
    confidence = np.zeros((n, NUM_PARTS), np.float32)
    found = keypoints[..., 2] >= min_part_score
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


def _multiple_of_32(value: float) -> int:
    return -(-round(value) // 32) * 32


def _rgb_int32(patch_bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(patch_bgr, cv2.COLOR_BGR2RGB)[None].astype(np.int32)


class SinglePoseMoveNet:
    """MoveNet Lightning or Thunder: one person, on a square crop chosen by `crop` (see `pose.crop`).

    BOX is the default: on the golden set it scores as well as or better than the keypoint crop, and the whole
    frame loses most small people (bench/backends.py measures all three).
    """

    multi_person = False

    def __init__(self, name: str, model_json: Path, input_size: int, crop: CropPolicy = CropPolicy.BOX) -> None:
        self.name = name
        self.input_size = input_size
        self.crop = crop
        self._graph = FrozenGraph(load_graph_model(model_json))

    def forward(self, image_bgr: np.ndarray, people: Detections, previous: Poses | None = None) -> NetworkOutput:
        h, w = image_bgr.shape[:2]
        region = choose_region(self.crop, people, previous, w, h)
        patch, cut_region = cut(image_bgr, region, (self.input_size, self.input_size))
        (output,) = self._graph.run([OUTPUT], {INPUT: _rgb_int32(patch)})
        return NetworkOutput(np.asarray(output[0, 0]), cut_region)

    def decode(self, output: NetworkOutput) -> Poses:
        keypoints = to_frame(output.tensor, output.region)[None]
        poses = coco_to_poses(keypoints, keypoints[:, :, 2].mean(axis=1))
        keep = (poses.score >= MIN_PERSON_SCORE) & poses.found.any(axis=1)
        return poses.take(np.flatnonzero(keep))


class MultiPoseMoveNet:
    """MoveNet MultiPose Lightning: up to six people on the whole frame, its longer side scaled to `max_side`."""

    multi_person = True

    def __init__(self, name: str, model_json: Path, max_side: int = MULTIPOSE_MAX_SIDE) -> None:
        if max_side % 32:
            raise ValueError(f"max_side must be a multiple of 32, got {max_side}")
        self.name = name
        self.max_side = max_side
        self._graph = FrozenGraph(load_graph_model(model_json))

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the network input for a frame: multiples of 32, the longer side `max_side`."""
        scale = self.max_side / max(width, height)
        return _multiple_of_32(width * scale), _multiple_of_32(height * scale)

    def forward(self, image_bgr: np.ndarray, people: Detections, previous: Poses | None = None) -> NetworkOutput:
        """The whole frame, padded at the right or bottom up to the input's multiple-of-32 shape."""
        h, w = image_bgr.shape[:2]
        size = self.input_size(w, h)
        scale = self.max_side / max(w, h)
        patch, region = cut(image_bgr, np.array([0, 0, size[0] / scale, size[1] / scale], np.float32), size)
        (output,) = self._graph.run([OUTPUT], {INPUT: _rgb_int32(patch)})
        return NetworkOutput(np.asarray(output[0]), region)

    def decode(self, output: NetworkOutput) -> Poses:
        people = output.tensor[output.tensor[:, 55] >= MIN_PERSON_SCORE]
        keypoints = to_frame(people[:, :51].reshape(-1, 17, 3), output.region)
        poses = coco_to_poses(keypoints, people[:, 55])
        return poses.take(np.flatnonzero(poses.found.any(axis=1)))
