"""Google's MoveNet (TF Hub; TF.js graph models converted in process by `pose.models.tfjs`) as PoseBackends.

Input `input:0`: int32 RGB 0..255, NHWC; output `Identity:0`, decoded by `pose.models.movenet_post`.
Single-pose models (Lightning 192x192, Thunder 256x256) run on a square crop around the main dancer
(`pose.crop`); MultiPose on the whole frame, scaled so that the largest person is big enough (`multipose_side`)
and letterboxed to multiples of 32.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pose.crop import CropPolicy, choose_region, cut
from pose.models.base import NetworkOutput
from pose.models.graph import FrozenGraph
from pose.models.movenet_post import (
    MULTIPOSE_PERSON_PX,
    MULTIPOSE_SIDES,
    decode_multi,
    decode_single,
    multipose_input_size,
    multipose_side,
)
from pose.models.tfjs import load_graph_model
from pose.types import Detections, Poses

INPUT = "input:0"
OUTPUT = "Identity:0"


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
        return decode_single(output)


class MultiPoseMoveNet:
    """MoveNet MultiPose Lightning: up to six people on the whole frame, scaled by `multipose_side`."""

    multi_person = True

    def __init__(
        self,
        name: str,
        model_json: Path,
        person_px: float = MULTIPOSE_PERSON_PX,
        sides: tuple[int, int] = MULTIPOSE_SIDES,
    ) -> None:
        if sides[0] % 32 or sides[1] % 32 or not 0 < sides[0] <= sides[1]:
            raise ValueError(f"sides must be multiples of 32, smallest first, got {sides}")
        self.name = name
        self.person_px = person_px
        self.sides = sides
        self._graph = FrozenGraph(load_graph_model(model_json))

    def forward(self, image_bgr: np.ndarray, people: Detections, previous: Poses | None = None) -> NetworkOutput:
        """The whole frame, padded at the right or bottom up to the input's multiple-of-32 shape."""
        h, w = image_bgr.shape[:2]
        side = multipose_side(people, w, h, self.person_px, self.sides)
        size = multipose_input_size(w, h, side)
        scale = side / max(w, h)
        patch, region = cut(image_bgr, np.array([0, 0, size[0] / scale, size[1] / scale], np.float32), size)
        (output,) = self._graph.run([OUTPUT], {INPUT: _rgb_int32(patch)})
        return NetworkOutput(np.asarray(output[0]), region)

    def decode(self, output: NetworkOutput) -> Poses:
        return decode_multi(output)
