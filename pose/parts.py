"""The 18 body parts, named once: CSV columns, skeleton edges, PAF pairs and OKS sigmas derive from here."""

from __future__ import annotations

import enum

import numpy as np


class BodyPart(enum.IntEnum):
    """COCO-18 parts in tf-pose-estimation's channel order. Left/right are the person's own."""

    NOSE = 0
    NECK = 1
    R_SHOULDER = 2
    R_ELBOW = 3
    R_WRIST = 4
    L_SHOULDER = 5
    L_ELBOW = 6
    L_WRIST = 7
    R_HIP = 8
    R_KNEE = 9
    R_ANKLE = 10
    L_HIP = 11
    L_KNEE = 12
    L_ANKLE = 13
    R_EYE = 14
    L_EYE = 15
    R_EAR = 16
    L_EAR = 17

    @property
    def key(self) -> str:
        """Lower-case name used in CSV headers and JSON ("r_shoulder")."""
        return self.name.lower()


NUM_PARTS = len(BodyPart)
PART_NAMES: tuple[str, ...] = tuple(p.key for p in BodyPart)

# OpenPose/tf-pose limb list: (part_a, part_b) and the PAF channel pair (x, y) that joins them.
# Order matters: person assembly walks the limbs in this order so that the neck-rooted tree grows outwards.
PAF_LIMBS: tuple[tuple[BodyPart, BodyPart], ...] = (
    (BodyPart.NECK, BodyPart.R_SHOULDER),
    (BodyPart.NECK, BodyPart.L_SHOULDER),
    (BodyPart.R_SHOULDER, BodyPart.R_ELBOW),
    (BodyPart.R_ELBOW, BodyPart.R_WRIST),
    (BodyPart.L_SHOULDER, BodyPart.L_ELBOW),
    (BodyPart.L_ELBOW, BodyPart.L_WRIST),
    (BodyPart.NECK, BodyPart.R_HIP),
    (BodyPart.R_HIP, BodyPart.R_KNEE),
    (BodyPart.R_KNEE, BodyPart.R_ANKLE),
    (BodyPart.NECK, BodyPart.L_HIP),
    (BodyPart.L_HIP, BodyPart.L_KNEE),
    (BodyPart.L_KNEE, BodyPart.L_ANKLE),
    (BodyPart.NECK, BodyPart.NOSE),
    (BodyPart.NOSE, BodyPart.R_EYE),
    (BodyPart.R_EYE, BodyPart.R_EAR),
    (BodyPart.NOSE, BodyPart.L_EYE),
    (BodyPart.L_EYE, BodyPart.L_EAR),
    (BodyPart.R_SHOULDER, BodyPart.R_EAR),
    (BodyPart.L_SHOULDER, BodyPart.L_EAR),
)
# Channel indices into the 38 PAF maps (tf-pose's CocoPairsNetwork), one (x, y) pair per limb above.
PAF_CHANNELS: tuple[tuple[int, int], ...] = (
    (12, 13), (20, 21), (14, 15), (16, 17), (22, 23), (24, 25), (0, 1), (2, 3), (4, 5),
    (6, 7), (8, 9), (10, 11), (28, 29), (30, 31), (34, 35), (32, 33), (36, 37), (18, 19), (26, 27),
)  # fmt: skip

# Edges drawn on screen: the first 17 PAF limbs (the ear-shoulder links are for assembly only).
SKELETON_EDGES: tuple[tuple[BodyPart, BodyPart], ...] = PAF_LIMBS[:17]

# Mirror image of each part, for scoring a user who dances facing the dancer.
MIRRORED: tuple[BodyPart, ...] = tuple(
    BodyPart[p.name.replace("R_", "#").replace("L_", "R_").replace("#", "L_")] for p in BodyPart
)

# COCO keypoint sigmas (cocoapi), neck taken as the shoulders' value since COCO has no neck.
OKS_SIGMAS: np.ndarray = np.array(
    [0.026, 0.079, 0.079, 0.072, 0.062, 0.079, 0.072, 0.062, 0.107, 0.087,
     0.089, 0.107, 0.087, 0.089, 0.025, 0.025, 0.035, 0.035],
    dtype=np.float32,
)  # fmt: skip
