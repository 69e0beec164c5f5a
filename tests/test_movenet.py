"""MoveNet's pure parts: COCO → our 18 parts, output decoding, the crop around the dancer, the letterbox size."""

from __future__ import annotations

import numpy as np
import pytest

from pose.crop import BOX_EXPAND, CropPolicy, around_box, around_keypoints, choose_region, cut, whole_frame
from pose.models import NetworkOutput
from pose.models.movenet_post import (
    COCO_KEYPOINTS,
    COCO_TO_PART,
    MIN_PART_SCORE,
    coco_to_poses,
    decode_multi,
    decode_single,
    multipose_input_size,
    multipose_side,
    to_frame,
)
from pose.parts import NUM_PARTS, BodyPart
from pose.types import Detections, Poses


def test_coco_parts_map_by_name_onto_everything_but_the_neck() -> None:
    assert len(set(COCO_TO_PART.tolist())) == 17
    assert set(range(NUM_PARTS)) - set(COCO_TO_PART.tolist()) == {BodyPart.NECK}
    assert COCO_TO_PART[COCO_KEYPOINTS.index("left_eye")] == BodyPart.L_EYE
    assert COCO_TO_PART[COCO_KEYPOINTS.index("right_ankle")] == BodyPart.R_ANKLE


def _keypoints(score: float = 0.9) -> np.ndarray:
    """(1, 17, 3) x, y, score: keypoint i at (i / 20, 1 - i / 20)."""
    i = np.arange(17, dtype=np.float32)
    return np.stack([i / 20, 1 - i / 20, np.full(17, score, np.float32)], axis=-1)[None]


def test_neck_is_the_shoulders_midpoint_with_the_lower_score() -> None:
    keypoints = _keypoints()
    left, right = COCO_KEYPOINTS.index("left_shoulder"), COCO_KEYPOINTS.index("right_shoulder")
    keypoints[0, left, 2], keypoints[0, right, 2] = 0.8, 0.6
    poses = coco_to_poses(keypoints, np.array([0.9], np.float32))
    expected = (keypoints[0, left, :2] + keypoints[0, right, :2]) / 2
    np.testing.assert_allclose(poses.xy[0, BodyPart.NECK], expected)
    assert poses.confidence[0, BodyPart.NECK] == pytest.approx(0.6)
    np.testing.assert_allclose(poses.xy[0, BodyPart.L_SHOULDER], keypoints[0, left, :2])


def test_low_scores_and_points_outside_the_frame_are_not_found_and_take_the_neck_with_them() -> None:
    keypoints = _keypoints()
    right = COCO_KEYPOINTS.index("right_shoulder")
    keypoints[0, right, 2] = MIN_PART_SCORE - 0.01
    keypoints[0, COCO_KEYPOINTS.index("nose"), 0] = -0.02  # in the black padding left of the frame
    poses = coco_to_poses(keypoints, np.array([0.9], np.float32))
    for part in (BodyPart.R_SHOULDER, BodyPart.NECK, BodyPart.NOSE):
        assert poses.confidence[0, part] == 0 and np.isnan(poses.xy[0, part]).all()
    assert poses.found[0].sum() == 15


def test_network_coordinates_map_through_the_region_onto_the_frame() -> None:
    yx_score = np.array([[0.0, 0.0, 0.5], [1.0, 1.0, 0.7], [0.5, 0.25, 0.9]], np.float32)
    region = np.array([-0.25, 0.1, 0.75, 0.9], np.float32)
    xy_score = to_frame(yx_score, region)
    np.testing.assert_allclose(xy_score, [[-0.25, 0.1, 0.5], [0.75, 0.9, 0.7], [0.0, 0.5, 0.9]], atol=1e-6)


def test_single_pose_keeps_one_person_unless_its_mean_score_is_low() -> None:
    yx = np.stack([np.linspace(0.1, 0.9, 17), np.full(17, 0.5), np.full(17, 0.8)], axis=-1).astype(np.float32)
    poses = decode_single(NetworkOutput(yx, np.array([0.5, 0.0, 1.0, 1.0], np.float32)))
    assert len(poses) == 1 and poses.score[0] == pytest.approx(0.8)
    np.testing.assert_allclose(poses.xy[0, BodyPart.NOSE], [0.75, 0.1])
    yx[:, 2] = 0.2
    assert len(decode_single(NetworkOutput(yx))) == 0


def test_multipose_keeps_the_people_that_score_enough() -> None:
    people = np.zeros((6, 56), np.float32)
    people[:, 2:51:3] = 0.9  # every keypoint confident
    people[:, 0:51:3] = people[:, 1:51:3] = 0.5
    people[:, 55] = [0.9, 0.1, 0.3, 0.0, 0.0, 0.24]
    poses = decode_multi(NetworkOutput(people))
    np.testing.assert_allclose(poses.score, [0.9, 0.3])


@pytest.mark.parametrize(
    ("size", "expected"), [((768, 576), (256, 192)), ((548, 342), (256, 160)), ((480, 640), (192, 256))]
)
def test_multipose_input_keeps_the_aspect_in_multiples_of_32(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert multipose_input_size(*size, side=256) == expected


def test_multipose_side_grows_for_small_people_within_its_limits() -> None:
    def boxes(*rows: tuple[float, float, float, float]) -> Detections:
        return Detections(np.array(rows, np.float32), np.full(len(rows), 0.9, np.float32))

    assert multipose_side(Detections.empty(), 768, 576) == 256
    assert multipose_side(boxes((0.1, 0.1, 0.9, 0.9)), 768, 576) == 256  # near the camera: TF Hub's size
    # A 144 px tall person (0.25 of 576) at 96 px: 96 * 768 / 144 = 512.
    assert multipose_side(boxes((0.5, 0.5, 0.55, 0.75)), 768, 576) == 512
    assert multipose_side(boxes((0.5, 0.5, 0.55, 0.75)), 768, 576, person_px=72) == 384
    assert multipose_side(boxes((0.5, 0.5, 0.51, 0.52)), 768, 576) == 512  # tiny: capped


def test_whole_frame_is_padded_to_a_centred_square() -> None:
    np.testing.assert_array_equal(whole_frame(768, 576), [0, -96, 768, 672])
    np.testing.assert_array_equal(whole_frame(300, 400), [-50, 0, 350, 400])


def test_box_crop_is_a_square_around_the_box_centre() -> None:
    box = np.array([0.5, 0.25, 0.55, 0.5], np.float32)  # 40 x 144 px of an 800 x 576 frame
    region = around_box(box, 800, 576)
    side = BOX_EXPAND * 144
    np.testing.assert_allclose(region, [420 - side / 2, 216 - side / 2, 420 + side / 2, 216 + side / 2], rtol=1e-6)
    np.testing.assert_array_equal(around_box(np.array([0, 0, 1, 1], np.float32), 800, 576), whole_frame(800, 576))


def _standing(width: int = 640, height: int = 480) -> Poses:
    """A person with shoulders at y=100, hips at y=200, ankles at y=300, centred on x=320 (pixels)."""
    xy = np.full((1, NUM_PARTS, 2), np.nan, np.float32)
    parts = {
        BodyPart.R_SHOULDER: (300, 100), BodyPart.L_SHOULDER: (340, 100), BodyPart.R_HIP: (305, 200),
        BodyPart.L_HIP: (335, 200), BodyPart.R_ANKLE: (305, 300), BodyPart.L_ANKLE: (335, 300),
    }  # fmt: skip
    for part, (x, y) in parts.items():
        xy[0, part] = (x / width, y / height)
    confidence = np.where(np.isnan(xy[..., 0]), 0, 0.9).astype(np.float32)
    return Poses(xy, confidence, np.array([0.9], np.float32))


def test_keypoint_crop_follows_movenets_demo() -> None:
    region = around_keypoints(_standing(), 640, 480)
    assert region is not None
    # Centre: the hips' midpoint (320, 200). Half-side: max(1.9 x torso reach 100, 1.2 x body reach 100) = 190.
    np.testing.assert_allclose(region, [130, 10, 510, 390], rtol=1e-6)
    no_hips = _standing()
    no_hips.confidence[0, [BodyPart.R_HIP, BodyPart.L_HIP]] = 0
    assert around_keypoints(no_hips, 640, 480) is None


def test_choose_region_falls_back_box_then_keypoints_then_frame() -> None:
    box = Detections(np.array([[0.1, 0.1, 0.3, 0.6]], np.float32), np.array([0.9], np.float32))
    previous = _standing()
    by_box = around_box(box.boxes[0], 640, 480)
    by_keypoints = around_keypoints(previous, 640, 480)
    frame = whole_frame(640, 480)
    np.testing.assert_array_equal(choose_region(CropPolicy.FRAME, box, previous, 640, 480), frame)
    np.testing.assert_array_equal(choose_region(CropPolicy.BOX, box, previous, 640, 480), by_box)
    np.testing.assert_array_equal(choose_region(CropPolicy.BOX, Detections.empty(), previous, 640, 480), by_keypoints)
    np.testing.assert_array_equal(choose_region(CropPolicy.BOX, Detections.empty(), None, 640, 480), frame)
    # KEYPOINTS trusts the previous keypoints only while they lie in the main box.
    np.testing.assert_array_equal(choose_region(CropPolicy.KEYPOINTS, box, previous, 640, 480), by_box)
    around = Detections(np.array([[0.4, 0.2, 0.6, 0.7]], np.float32), np.array([0.9], np.float32))
    np.testing.assert_array_equal(choose_region(CropPolicy.KEYPOINTS, around, previous, 640, 480), by_keypoints)


def test_cut_pads_black_outside_the_frame_and_reports_the_region() -> None:
    image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3) + 1  # no zero pixels inside the frame
    patch, region = cut(image, np.array([-2, -1, 4, 5], np.float32), (6, 6))  # 6 x 6: no resampling
    assert (patch[:1] == 0).all() and (patch[:, :2] == 0).all() and (patch[5:] == 0).all()
    np.testing.assert_array_equal(patch[1:5, 2:6], image[:, :4])
    np.testing.assert_allclose(region, [-2 / 6, -1 / 4, 4 / 6, 5 / 4])
    inside, _ = cut(image, np.array([1, 1, 3, 3], np.float32), (2, 2))
    np.testing.assert_array_equal(inside, image[1:3, 1:3])
