"""The six limbs a dancer is told about, derived from `BodyPart`: each part belongs to exactly one limb."""

from __future__ import annotations

import enum

import numpy as np

from pose.parts import NUM_PARTS, SKELETON_EDGES, BodyPart


class Limb(enum.IntEnum):
    """Left and right are the person's own, as in `BodyPart`."""

    LEFT_ARM = 0
    RIGHT_ARM = 1
    LEFT_LEG = 2
    RIGHT_LEG = 3
    TORSO = 4
    HEAD = 5

    @property
    def key(self) -> str:
        """Lower-case name used in CSVs and JSON ("left_arm")."""
        return self.name.lower()

    @property
    def label(self) -> str:
        """What the dancer reads ("left arm")."""
        return self.name.lower().replace("_", " ")

    @property
    def mirrored(self) -> Limb:
        return Limb[self.name.replace("LEFT", "#").replace("RIGHT", "LEFT").replace("#", "RIGHT")]


def _limb_of(part: BodyPart) -> Limb:
    name = part.name
    if part in (BodyPart.NECK, BodyPart.R_HIP, BodyPart.L_HIP):
        return Limb.TORSO
    if name.endswith(("SHOULDER", "ELBOW", "WRIST")):
        return Limb.LEFT_ARM if name.startswith("L_") else Limb.RIGHT_ARM
    if name.endswith(("KNEE", "ANKLE")):
        return Limb.LEFT_LEG if name.startswith("L_") else Limb.RIGHT_LEG
    return Limb.HEAD


# Shoulders count with their arm: a shrug or an arm swing moves them, the torso is neck and hips.
LIMB_OF_PART: tuple[Limb, ...] = tuple(_limb_of(p) for p in BodyPart)
# The skeleton edges whose motion is compared, each given to the limb of its outer part.
MOTION_EDGES: tuple[tuple[BodyPart, BodyPart], ...] = SKELETON_EDGES
LIMB_OF_EDGE: tuple[Limb, ...] = tuple(LIMB_OF_PART[b] for _, b in MOTION_EDGES)
NUM_LIMBS = len(Limb)

# (limbs, parts) and (limbs, edges) 0/1 matrices: per-limb means are one matrix product.
PART_LIMB_MATRIX = np.array([[LIMB_OF_PART[p] == limb for p in range(NUM_PARTS)] for limb in Limb], dtype=np.float64)
EDGE_LIMB_MATRIX = np.array([[e == limb for e in LIMB_OF_EDGE] for limb in Limb], dtype=np.float64)
EDGE_A = np.array([int(a) for a, _ in MOTION_EDGES], dtype=np.int64)
EDGE_B = np.array([int(b) for _, b in MOTION_EDGES], dtype=np.int64)
