"""SSDLite MobileNetV2 person detector (TF Object Detection API frozen graph, one class: person)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pose.models.graph import FrozenGraph
from pose.types import Detections

INPUT = "image_tensor:0"  # uint8 RGB, NHWC; the graph resizes to 300x300 itself
OUTPUTS = ("detection_boxes:0", "detection_scores:0", "num_detections:0")
SIZE = (300, 300)


class PersonDetector:
    """Person boxes with score ≥ `min_score`, largest first."""

    def __init__(self, graph_path: Path, min_score: float = 0.5) -> None:
        self.min_score = min_score
        self._graph = FrozenGraph(graph_path)

    def forward(self, image_bgr: np.ndarray) -> list[np.ndarray]:
        # Resizing here rather than in the graph feeds 270 KB instead of a full frame through the session.
        rgb = cv2.cvtColor(cv2.resize(image_bgr, SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        return self._graph.run(OUTPUTS, {INPUT: rgb[None]})

    def decode(self, output: list[np.ndarray]) -> Detections:
        boxes_yx, scores, count = output
        n = int(count[0])
        keep = scores[0, :n] >= self.min_score
        boxes = boxes_yx[0, :n][keep][:, [1, 0, 3, 2]].astype(np.float32)  # y1 x1 y2 x2 → x1 y1 x2 y2
        found = Detections(np.clip(boxes, 0.0, 1.0), scores[0, :n][keep].astype(np.float32))
        area = (found.boxes[:, 2] - found.boxes[:, 0]) * (found.boxes[:, 3] - found.boxes[:, 1])
        return found.take(np.argsort(-area, kind="stable"))

    def detect(self, image_bgr: np.ndarray) -> Detections:
        return self.decode(self.forward(image_bgr))
