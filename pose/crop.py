"""Where a single-person model looks: a padded square around the main dancer, cut out of the frame.

The square comes from the main person box, or from the dancer's keypoints on the previous tick (MoveNet's own
demos: centred on the hips, 1.9x the torso's and 1.2x the body's extent from there), or is the whole frame
padded to a square. Regions are in frame pixels, x1, y1, x2, y2, and may reach past the frame (padded black).
"""

from __future__ import annotations

import enum

import cv2
import numpy as np

from pose.parts import BodyPart
from pose.types import Detections, FloatArray, Poses

TORSO_EXPAND = 1.9  # MoveNet demo: half-side ≥ 1.9x the farthest torso joint from the hip centre
BODY_EXPAND = 1.2  # ... and ≥ 1.2x the farthest joint of all
BOX_EXPAND = 1.25  # side = 1.25x the box's longer side: SSD boxes hug the body and can clip a raised hand
_TORSO = (BodyPart.L_SHOULDER, BodyPart.R_SHOULDER, BodyPart.L_HIP, BodyPart.R_HIP)
_HIPS = (BodyPart.L_HIP, BodyPart.R_HIP)
_SHOULDERS = (BodyPart.L_SHOULDER, BodyPart.R_SHOULDER)


class CropPolicy(enum.Enum):
    """How the square is chosen; each falls back to the next source when its own is missing.

    FRAME: the whole frame. BOX: the main person box, else the previous tick's keypoints, else the frame.
    KEYPOINTS: the previous tick's keypoints (only when they lie in the main box, if there is one, so the crop
    stays on the dancer the boxes choose), else the box, else the frame.
    """

    FRAME = "frame"
    BOX = "box"
    KEYPOINTS = "keypoints"


def whole_frame(width: int, height: int) -> FloatArray:
    """The frame padded equally on both sides of its shorter axis to a square."""
    side = max(width, height)
    x1, y1 = (width - side) / 2, (height - side) / 2
    return np.array([x1, y1, x1 + side, y1 + side], np.float32)


def around_box(box: FloatArray, width: int, height: int) -> FloatArray:
    """A square on the centre of `box` (normalised x1, y1, x2, y2), BOX_EXPAND times its longer side."""
    x1, y1, x2, y2 = box * (width, height, width, height)
    half = BOX_EXPAND * max(x2 - x1, y2 - y1) / 2
    return _square((x1 + x2) / 2, (y1 + y2) / 2, half, width, height)


def around_keypoints(pose: Poses, width: int, height: int) -> FloatArray | None:
    """MoveNet's crop around one person's keypoints, or None when no shoulder or no hip was found."""
    xy = pose.xy[0] * (width, height)
    found = pose.found[0]
    if not (found[list(_HIPS)].any() and found[list(_SHOULDERS)].any()):
        return None
    cx, cy = np.nanmean(xy[[p for p in _HIPS if found[p]]], axis=0)
    reach = np.abs(xy - (cx, cy))
    torso = np.max(reach[[p for p in _TORSO if found[p]]])
    body = np.max(reach[found])
    half = max(TORSO_EXPAND * torso, BODY_EXPAND * body)
    half = min(half, max(cx, width - cx, cy, height - cy))  # the demo's cap: no farther than the farthest edge
    return _square(cx, cy, half, width, height)


def _square(cx: float, cy: float, half: float, width: int, height: int) -> FloatArray:
    if 2 * half >= max(width, height):  # as big as the frame anyway: take all of it, centred
        return whole_frame(width, height)
    return np.array([cx - half, cy - half, cx + half, cy + half], np.float32)


def choose_region(
    policy: CropPolicy, people: Detections, previous: Poses | None, width: int, height: int
) -> FloatArray:
    """(4,) float32 pixel region x1, y1, x2, y2 to run a single-person model on."""
    if policy is CropPolicy.FRAME:
        return whole_frame(width, height)
    box = people.boxes[0] if len(people) else None
    keypoints = around_keypoints(previous, width, height) if previous is not None and len(previous) else None
    if policy is CropPolicy.KEYPOINTS and keypoints is not None:
        if box is None or _centre_inside(keypoints, box * (width, height, width, height)):
            return keypoints
    if box is not None:
        return around_box(box, width, height)
    return keypoints if keypoints is not None else whole_frame(width, height)


def _centre_inside(region: FloatArray, box: FloatArray) -> bool:
    cx, cy = (region[0] + region[2]) / 2, (region[1] + region[3]) / 2
    return bool(box[0] <= cx <= box[2] and box[1] <= cy <= box[3])


def cut(image: np.ndarray, region: FloatArray, size: tuple[int, int]) -> tuple[np.ndarray, FloatArray]:
    """The pixels of `region` resized to `size` (width, height), black outside the frame.

    Returns the patch and the region actually cut (rounded to whole pixels), normalised to the frame.
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(v) for v in np.round(region))
    x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
    ix1, iy1, ix2, iy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if (ix1, iy1, ix2, iy2) == (x1, y1, x2, y2):
        patch = image[y1:y2, x1:x2]
    else:
        patch = np.zeros((y2 - y1, x2 - x1, 3), np.uint8)
        if ix2 > ix1 and iy2 > iy1:
            patch[iy1 - y1 : iy2 - y1, ix1 - x1 : ix2 - x1] = image[iy1:iy2, ix1:ix2]
    shrink = patch.shape[1] > size[0] or patch.shape[0] > size[1]
    resized = cv2.resize(patch, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return resized, np.array([x1 / w, y1 / h, x2 / w, y2 / h], np.float32)
