"""Skeletons and person boxes drawn onto BGR frames, scaled so they read the same at 640x480 and 1080p."""

from __future__ import annotations

import cv2
import numpy as np

from pose.limbs import LIMB_OF_EDGE, Limb
from pose.parts import SKELETON_EDGES
from pose.types import FrameAnalysis

# One hue per limb (BGR), left and right told apart at a glance; none of them red, which marks the limb that is off.
LIMB_COLOURS: dict[Limb, tuple[int, int, int]] = {
    Limb.LEFT_ARM: (255, 170, 0),  # azure
    Limb.RIGHT_ARM: (0, 200, 255),  # amber
    Limb.LEFT_LEG: (255, 80, 60),  # blue
    Limb.RIGHT_LEG: (0, 230, 120),  # lime
    Limb.TORSO: (230, 230, 230),  # white
    Limb.HEAD: (220, 120, 255),  # pink
}
OFF_COLOUR = (40, 40, 255)  # red
OTHER_COLOUR = (200, 200, 200)
BOX_COLOUR = (60, 200, 255)


def draw_analysis(
    image_bgr: np.ndarray, analysis: FrameAnalysis, draw_boxes: bool = True, off: Limb | None = None
) -> np.ndarray:
    """Draw in place on `image_bgr` (h, w, 3) uint8 and return it: the main dancer in limb colours (the limb
    `off`, in the person's own left/right, in red and thicker), others in grey."""
    h, w = image_bgr.shape[:2]
    unit = max(1, round(min(h, w) / 240))  # 2 px at 480p, 4-5 px at 1080p
    if draw_boxes:
        for box, score in zip(analysis.detections.boxes, analysis.detections.score, strict=True):
            _draw_box(image_bgr, box * (w, h, w, h), float(score), unit)
    scale = np.array([w, h], np.float32)
    for person in reversed(range(len(analysis.poses))):  # main dancer last, so it is drawn on top
        xy = analysis.poses.xy[person] * scale
        _draw_skeleton(image_bgr, xy, main=person == 0, unit=unit, off=off)
    return image_bgr


def _draw_skeleton(image: np.ndarray, xy: np.ndarray, main: bool, unit: int, off: Limb | None = None) -> None:
    found = np.isfinite(xy).all(axis=-1)
    points = np.where(found[:, None], xy, 0).round().astype(np.int32)
    for limb, (a, b) in zip(LIMB_OF_EDGE, SKELETON_EDGES, strict=True):
        if found[a] and found[b]:
            if not main:
                colour, width = OTHER_COLOUR, unit
            elif limb is off:
                colour, width = OFF_COLOUR, 3 * unit
            else:
                colour, width = LIMB_COLOURS[limb], 2 * unit
            cv2.line(image, tuple(points[a]), tuple(points[b]), colour, width, cv2.LINE_AA)
    for point in points[found]:
        cv2.circle(image, tuple(point), 2 * unit, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(image, tuple(point), 2 * unit, (40, 40, 40), max(1, unit // 2), cv2.LINE_AA)


def _draw_box(image: np.ndarray, box: np.ndarray, score: float, unit: int) -> None:
    x1, y1, x2, y2 = box.round().astype(int)
    cv2.rectangle(image, (x1, y1), (x2, y2), BOX_COLOUR, unit, cv2.LINE_AA)
    label = f"person {score:.2f}"
    font_scale = 0.4 * unit
    (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, unit)
    top = max(y1 - th - base - 2 * unit, 0)
    cv2.rectangle(image, (x1, top), (x1 + tw + 2 * unit, top + th + base + 2 * unit), BOX_COLOUR, -1)
    org = (x1 + unit, top + th + unit)
    cv2.putText(image, label, org, cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), unit, cv2.LINE_AA)
