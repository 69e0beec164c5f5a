"""The user's skeleton on the returned video: limb colours, the limb that is off in red, others in grey."""

from __future__ import annotations

import numpy as np

from pose.draw import LIMB_COLOURS, OFF_COLOUR, OTHER_COLOUR, draw_analysis
from pose.limbs import Limb
from pose.parts import NUM_PARTS, BodyPart
from pose.types import Detections, FrameAnalysis, Poses

# A person facing the camera, in frame fractions: their left side is on the image's right.
JOINTS = {
    BodyPart.NOSE: (0.5, 0.15), BodyPart.NECK: (0.5, 0.25),
    BodyPart.R_SHOULDER: (0.4, 0.25), BodyPart.R_ELBOW: (0.3, 0.4), BodyPart.R_WRIST: (0.25, 0.55),
    BodyPart.L_SHOULDER: (0.6, 0.25), BodyPart.L_ELBOW: (0.7, 0.4), BodyPart.L_WRIST: (0.75, 0.55),
    BodyPart.R_HIP: (0.45, 0.55), BodyPart.R_KNEE: (0.44, 0.72), BodyPart.R_ANKLE: (0.43, 0.9),
    BodyPart.L_HIP: (0.55, 0.55), BodyPart.L_KNEE: (0.56, 0.72), BodyPart.L_ANKLE: (0.57, 0.9),
}  # fmt: skip


def person(shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    xy = np.full((NUM_PARTS, 2), np.nan, np.float32)
    conf = np.zeros(NUM_PARTS, np.float32)
    for part, (x, y) in JOINTS.items():
        xy[part], conf[part] = (x + shift, y), 0.9
    return xy, conf


def colour_between(image: np.ndarray, a: BodyPart, b: BodyPart, shift: float = 0.0) -> tuple[int, ...]:
    h, w = image.shape[:2]
    (xa, ya), (xb, yb) = JOINTS[a], JOINTS[b]
    x, y = ((xa + xb) / 2 + shift) * w, (ya + yb) / 2 * h
    return tuple(int(v) for v in image[round(y), round(x)])


def test_the_main_dancer_is_drawn_in_limb_colours_with_the_limb_that_is_off_in_red() -> None:
    (xy0, c0), (xy1, c1) = person(), person(shift=0.2)
    poses = Poses(np.stack([xy0, xy1]), np.stack([c0, c1]), np.ones(2, np.float32))
    analysis = FrameAnalysis(poses, np.array([1, 2]), Detections.empty(), 640, 480)
    image = draw_analysis(np.zeros((480, 640, 3), np.uint8), analysis, off=Limb.LEFT_ARM)
    assert colour_between(image, BodyPart.L_ELBOW, BodyPart.L_WRIST) == OFF_COLOUR
    assert colour_between(image, BodyPart.R_ELBOW, BodyPart.R_WRIST) == LIMB_COLOURS[Limb.RIGHT_ARM]
    assert colour_between(image, BodyPart.L_KNEE, BodyPart.L_ANKLE) == LIMB_COLOURS[Limb.LEFT_LEG]
    assert colour_between(image, BodyPart.R_KNEE, BodyPart.R_ANKLE, shift=0.2) == OTHER_COLOUR  # not the dancer
    plain = draw_analysis(np.zeros((480, 640, 3), np.uint8), analysis)
    assert colour_between(plain, BodyPart.L_ELBOW, BodyPart.L_WRIST) == LIMB_COLOURS[Limb.LEFT_ARM]
    assert OFF_COLOUR not in LIMB_COLOURS.values()
