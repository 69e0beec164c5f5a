"""Faces mosaicked (pose.privacy): planted poses give exact face boxes, the tick-to-tick rules give exact boxes at
frame times between ticks, and the mosaic is block-constant exactly where it says. The real-footage and live
checks are at the end."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from harness.clips import cut_clip
from harness.server import settings_for
from pose.csvio import main_dancer_arrays, read_keypoints_csv
from pose.media.video import probe_video
from pose.parts import NUM_PARTS, BodyPart
from pose.pipeline import Models, extract_video
from pose.privacy import (
    BLOCKS_ACROSS,
    FROM_PERSON_BOX,
    MARGIN,
    MIN_BLOCK,
    Faces,
    FaceTrack,
    LiveFaces,
    Regions,
    SequenceMosaic,
    face_box,
    face_boxes,
    mosaic,
    mosaic_frames,
    mosaic_regions,
)
from pose.types import Detections, FloatArray, FrameAnalysis, Poses
from server import SESSIONS, create_app
from stream import tracks
from stream.client import run_session
from tests.live_support import Clips, SeededLibrary

pytest_plugins = ("tests.live_fixtures",)

W, H = 640, 480


def analysis_of(
    people: list[dict[BodyPart, tuple[float, float]]], detections: list[list[float]] | None = None
) -> FrameAnalysis:
    """A FrameAnalysis of planted people (parts in pixels of a W x H frame) and person boxes (pixels)."""
    xy = np.full((len(people), NUM_PARTS, 2), np.nan, np.float32)
    confidence = np.zeros((len(people), NUM_PARTS), np.float32)
    for i, parts in enumerate(people):
        for part, (x, y) in parts.items():
            xy[i, part] = x / W, y / H
            confidence[i, part] = 0.9
    poses = Poses(xy, confidence, np.ones(len(people), np.float32))
    people_boxes = np.array(detections or [], np.float32).reshape(-1, 4) / np.array([W, H, W, H], np.float32)
    found = Detections(people_boxes.astype(np.float32), np.ones(len(people_boxes), np.float32))
    return FrameAnalysis(poses, np.arange(len(people)), found, W, H)


def square(cx: float, cy: float, side: float) -> list[float]:
    """A face box of `side` (head widths times BOX_PER_HEAD) around (cx, cy), with the margin on a W x H frame."""
    half = side / 2 + MARGIN * min(W, H)
    return [cx - half, cy - half, cx + half, cy + half]


def boxes(*rows: Sequence[float]) -> FloatArray:
    return np.array(rows, np.float32).reshape(-1, 4)


def same(a: FloatArray, b: FloatArray) -> bool:
    """The same boxes in any order."""
    return a.shape == b.shape and np.allclose(np.sort(a, axis=0), np.sort(b, axis=0), atol=1e-3)


# --- face boxes from head parts


def test_no_head_part_gives_no_box() -> None:
    body = {BodyPart.NECK: (300.0, 200.0), BodyPart.R_SHOULDER: (270.0, 205.0), BodyPart.L_SHOULDER: (330.0, 205.0)}
    assert face_boxes(analysis_of([body])).shape == (0, 4)
    assert face_boxes(analysis_of([])).shape == (0, 4)


def test_the_ears_span_the_head() -> None:
    """Ears 40 px apart: a head 40 / 0.8 = 50 px wide, a box of 2 head widths around their middle."""
    found = face_boxes(analysis_of([{BodyPart.R_EAR: (280.0, 100.0), BodyPart.L_EAR: (320.0, 100.0)}]))
    assert same(found, boxes(square(300, 100, 100)))


def test_the_widest_estimate_wins() -> None:
    """Eyes 14 px apart say 40 px, nose to eye 8 px say 40, shoulders 110 px apart say 50: the box is 100 px,
    around the head parts."""
    person = {
        BodyPart.NOSE: (300.0, 104.0),
        BodyPart.R_EYE: (293.0, 100.0),
        BodyPart.L_EYE: (307.0, 100.0),
        BodyPart.R_SHOULDER: (245.0, 160.0),
        BodyPart.L_SHOULDER: (355.0, 160.0),
    }
    assert same(face_boxes(analysis_of([person])), boxes(square(300, 102, 100)))


def test_a_single_head_part_takes_its_size_from_the_body_or_the_frame() -> None:
    body = face_boxes(analysis_of([{BodyPart.NOSE: (300.0, 100.0), BodyPart.R_ANKLE: (310.0, 400.0)}]))
    assert same(body, boxes(square(300, 100, 2 * 300 / 6)))
    alone = face_boxes(analysis_of([{BodyPart.L_EAR: (300.0, 100.0)}]))
    assert same(alone, boxes(square(300, 100, 2 * 0.01 * H)))


def test_everyone_gets_a_box_and_a_person_box_without_a_pose_its_top() -> None:
    """Two posed people, and a third person known only by the detector's box (single-person backends)."""
    a = {BodyPart.R_EAR: (80.0, 60.0), BodyPart.L_EAR: (120.0, 60.0), BodyPart.R_ANKLE: (100.0, 300.0)}
    b = {BodyPart.R_EAR: (480.0, 60.0), BodyPart.L_EAR: (520.0, 60.0), BodyPart.R_ANKLE: (500.0, 300.0)}
    detections = [[60.0, 40.0, 140.0, 310.0], [300.0, 100.0, 380.0, 300.0]]  # the first is person a's
    found = face_boxes(analysis_of([a, b], detections))
    assert same(found, boxes(square(100, 60, 100), square(500, 60, 100), [300, 100, 380, 150]))


# --- between ticks


def test_between_two_ticks_a_face_is_interpolated() -> None:
    track = FaceTrack()
    track.add(0.0, boxes([0, 0, 10, 10], [100, 100, 120, 120]))
    track.add(1.0, boxes([4, 0, 14, 10], [100, 108, 120, 128]))
    assert same(track.covers(0.25), boxes([1, 0, 11, 10], [100, 102, 120, 122]))
    assert same(track.covers(1.0), boxes([4, 0, 14, 10], [100, 108, 120, 128]))
    assert same(track.covers(-5.0), boxes([0, 0, 10, 10], [100, 100, 120, 120]))  # before the first tick: held
    assert same(track.covers(7.0), boxes([4, 0, 14, 10], [100, 108, 120, 128]))  # after the last: held


def test_a_face_that_leaves_is_held_for_the_grace_then_dropped() -> None:
    track = FaceTrack(grace=1)
    face, other = [0, 0, 10, 10], [200, 200, 220, 220]
    track.add(0.0, boxes(face, other))
    track.add(1.0, boxes(other))
    track.add(2.0, boxes(other))
    track.add(3.0, boxes(other))
    assert same(track.covers(0.5), boxes(face, other))
    assert same(track.covers(1.0), boxes(face, other))  # missed for one tick: still covered
    assert same(track.covers(1.5), boxes(face, other))  # seen by the earlier tick only: held to the next
    assert same(track.covers(2.0), boxes(other))


def test_a_face_missed_for_one_tick_is_covered_where_it_was_and_where_it_comes_back() -> None:
    track = FaceTrack(grace=1)
    track.add(0.0, boxes([0, 0, 10, 10]))
    track.add(1.0, boxes())
    track.add(2.0, boxes([6, 2, 16, 12]))
    assert same(track.covers(1.0), boxes([0, 0, 16, 12]))
    assert same(track.covers(0.5), boxes([0, 0, 13, 11]))  # halfway from its box to the union
    assert same(track.covers(2.0), boxes([6, 2, 16, 12]))


def test_a_face_found_a_tick_late_is_covered_from_the_tick_before() -> None:
    track = FaceTrack(grace=1)
    track.add(0.0, boxes())
    track.add(1.0, boxes())
    track.add(2.0, boxes([50, 50, 60, 60]))
    assert same(track.covers(0.0), boxes())
    assert same(track.covers(1.0), boxes([50, 50, 60, 60]))  # held back one tick
    assert same(track.covers(0.5), boxes([50, 50, 60, 60]))  # and arriving: covered from the tick before that


def test_a_face_gone_longer_than_the_grace_is_a_new_face() -> None:
    track = FaceTrack(grace=0)
    track.add(0.0, boxes([0, 0, 10, 10]))
    track.add(1.0, boxes())
    track.add(2.0, boxes([2, 0, 12, 10]))
    assert same(track.covers(1.0), boxes())
    assert same(track.covers(0.5), boxes([0, 0, 10, 10]))  # held to the next tick, not interpolated
    assert same(track.covers(1.5), boxes([2, 0, 12, 10]))  # covered from the previous tick on


def test_faces_far_apart_are_not_linked() -> None:
    """A face that jumps further than its own size is a new face: both places are covered in between."""
    track = FaceTrack(grace=0)
    track.add(0.0, boxes([0, 0, 10, 10]))
    track.add(1.0, boxes([100, 0, 110, 10]))
    assert same(track.covers(0.5), boxes([0, 0, 10, 10], [100, 0, 110, 10]))


def test_a_face_that_loses_its_keypoints_is_held_where_they_put_it() -> None:
    """A pose's box links only to a pose's: the person box's top that replaces it starts a track of its own."""
    track = FaceTrack(grace=1)
    pose_box, person_top = [100, 100, 140, 140], [95, 110, 145, 125]
    track.add(0.0, Faces.of(boxes(pose_box)))
    track.add(1.0, Faces(boxes(person_top), np.array([FROM_PERSON_BOX])))
    assert same(track.covers(1.0), boxes(person_top, pose_box))


def test_frames_are_final_once_the_grace_has_passed() -> None:
    track = FaceTrack(grace=1)
    assert track.final_until() == -math.inf
    track.add(0.0, boxes())
    assert track.final_until() == -math.inf
    track.add(1.0, boxes())
    assert track.final_until() == 0.0
    track.add(2.0, boxes())
    assert track.final_until() == 1.0
    track.finish()
    assert track.final_until() == math.inf
    with pytest.raises(RuntimeError, match="finish"):
        track.add(3.0, boxes())
    with pytest.raises(ValueError, match="increasing"):
        track = FaceTrack()
        track.add(1.0, boxes())
        track.add(1.0, boxes())


# --- the mosaic


def assert_block_constant(image: np.ndarray, region: np.ndarray) -> None:
    x1, y1, x2, y2, block = (int(v) for v in region)
    for y in range(y1, y2, block):
        for x in range(x1, x2, block):
            cell = image[y : min(y + block, y2), x : min(x + block, x2)].reshape(-1, 3)
            assert (cell == cell[0]).all(), (x, y)


def test_mosaic_is_block_constant_inside_and_leaves_the_rest() -> None:
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (H, W, 3), np.uint8)
    before = image.copy()
    regions = mosaic(image, boxes([10.5, 20.2, 90.0, 61.0]))
    block = max(MIN_BLOCK, math.ceil(80 / BLOCKS_ACROSS))
    assert regions.tolist() == [[10, 20, 90, 61, block]]
    assert_block_constant(image, regions[0])
    first = before[20 : 20 + block, 10 : 10 + block].reshape(-1, 3).mean(axis=0)
    assert image[20, 10].tolist() == np.rint(first).tolist()
    outside = np.ones((H, W), bool)
    outside[20:61, 10:90] = False
    assert (image[outside] == before[outside]).all()
    assert (image[20:61, 10:90] != before[20:61, 10:90]).any()


def test_overlapping_boxes_are_merged_and_edges_clipped() -> None:
    regions = mosaic_regions(boxes([0, 0, 20, 20], [10, 10, 40, 30], [-30, 470, 12, 500], [700, 0, 720, 10]), W, H)
    assert regions[:, :4].tolist() == [[0, 0, 40, 30], [0, 470, 12, 480]]
    image = np.random.default_rng(1).integers(0, 256, (H, W, 3), np.uint8)
    for region in mosaic(image, boxes([0, 0, 20, 20], [10, 10, 40, 30], [-30, 470, 12, 500])):
        assert_block_constant(image, region)


def test_a_sequence_waits_for_the_ticks_that_decide_its_frames() -> None:
    """Ticks at 0, 1, 2 s, frames every 0.5 s: each frame gets the boxes interpolated for its time."""
    ticks = [(0.0, boxes([0, 0, 16, 16])), (1.0, boxes([12, 0, 28, 16])), (2.0, boxes([24, 0, 40, 16]))]
    times = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    frames = [(t, np.random.default_rng(i).integers(0, 256, (60, 80, 3), np.uint8)) for i, t in enumerate(times)]
    originals = [f.copy() for _, f in frames]
    done = list(mosaic_frames(iter(frames), iter(ticks)))
    assert len(done) == len(frames) and all(d is f for d, (_, f) in zip(done, frames, strict=True))
    for (t, image), original in zip(frames, originals, strict=True):
        x = 12 * min(t, 2.0)
        changed = np.argwhere((image != original).any(axis=-1))
        assert changed[:, 1].min() >= math.floor(x) and changed[:, 1].max() < math.ceil(x + 16)
        assert_block_constant(image, mosaic_regions(boxes([x, 0, x + 16, 16]), 80, 60)[0])
    sequence = SequenceMosaic(grace=1)
    assert sequence.tick(0.0, boxes()) == [] and len(sequence.frame(0.0, originals[0])) == 0
    assert sequence.tick(1.0, boxes()) == [originals[0]]  # tick 0's frame is final once tick 1 is in


def test_live_faces_add_each_new_analysis_once() -> None:
    faces = LiveFaces()
    first = analysis_of([{BodyPart.R_EAR: (280.0, 100.0), BodyPart.L_EAR: (320.0, 100.0)}])
    image = np.random.default_rng(3).integers(0, 256, (H, W, 3), np.uint8)
    assert faces.cover(image, first, 10.0)[:, :4].tolist() == [[245, 45, 355, 155]]  # 4.8 px margins, widened
    faces.cover(image, first, 10.1)
    faces.cover(image, analysis_of([]), 10.2)  # nobody: the face is held for the grace tick
    assert faces.track.newest_time() == 10.2 and faces.frames == 3
    faces.cover(image, analysis_of([]), 10.3)
    assert same(faces.track.covers(10.3), boxes())


# --- real footage: the annotated MP4


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def test_annotated_video_mosaics_every_frame_where_the_head_is(
    tmp_path: Path, sample_video: Path, models: Models
) -> None:
    """Each annotated frame's mosaic holds the main dancer's head box as the CSV places it at that tick (or held
    for it), and the decoded frames are the unmosaicked ones mosaicked there, not the unmosaicked ones."""
    clip = cut_clip(sample_video, tmp_path / "clip.mp4", 20)
    fps = 10
    on = extract_video(clip, fps, tmp_path / "on.csv", models, annotated=tmp_path / "on.mp4")
    off = extract_video(clip, fps, tmp_path / "off.csv", models, annotated=tmp_path / "off.mp4", mosaic=False)
    assert (tmp_path / "on.csv").read_text() == (tmp_path / "off.csv").read_text()
    assert len(on.mosaicked) == on.ticks == 20 and off.mosaicked == ()
    info = probe_video(clip)
    ticks, xy, confidence = main_dancer_arrays(read_keypoints_csv(tmp_path / "on.csv"))
    heads, expected = FaceTrack(), list[FloatArray]()
    for k, parts, conf in zip(ticks, xy, confidence, strict=True):
        box = face_box(np.nan_to_num(parts) * (info.width, info.height), conf > 0, min(info.width, info.height))
        heads.add(k / fps, boxes() if box is None else box[None])
        if k == ticks[-1]:
            heads.finish()
        while len(expected) < len(ticks) and len(expected) / fps <= heads.final_until():
            expected.append(heads.covers(len(expected) / fps))
    frames_on, frames_off = decoded(tmp_path / "on.mp4"), decoded(tmp_path / "off.mp4")
    assert len(frames_on) == len(frames_off) == 20
    covered = 0
    for k, (image_on, image_off, regions) in enumerate(zip(frames_on, frames_off, on.mosaicked, strict=True)):
        for head in mosaic_regions(expected[k], info.width, info.height):
            inner = head[:4] + np.array([1, 1, -1, -1])  # the CSV's 4 decimals move a box edge by under a pixel
            inside = (regions[:, :2] <= inner[:2]).all(axis=1) & (regions[:, 2:4] >= inner[2:]).all(axis=1)
            assert inside.any(), f"frame {k}: head {head[:4].tolist()} not in {regions[:, :4].tolist()}"
            covered += 1
        for region in regions:
            x1, y1, x2, y2 = (int(v) for v in region[:4])
            remade = image_off.copy()
            mosaic(remade, region[None, :4].astype(np.float32))
            on_part = image_on[y1:y2, x1:x2].astype(np.int16)
            to_mosaic = np.abs(on_part - remade[y1:y2, x1:x2]).mean()
            to_plain = np.abs(on_part - image_off[y1:y2, x1:x2]).mean()
            assert to_mosaic < to_plain, f"frame {k}, region {region.tolist()}"
    assert covered >= 1


# --- live: the returned video


async def test_the_returned_live_video_is_mosaicked_unless_the_offer_says_not(
    aiohttp_client: Any, seeded: SeededLibrary, clips: Clips, models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every frame sent back with faces found has each mosaic region block-constant as it leaves for the encoder;
    with `"mosaic": false` nothing is mosaicked and the video still flows."""
    covered: list[Regions] = []
    sent: list[np.ndarray] = []
    cover, annotate = LiveFaces.cover, tracks.annotate

    def spy_cover(self: LiveFaces, image: np.ndarray, analysis: FrameAnalysis, now: float) -> Regions:
        covered.append(cover(self, image, analysis, now))
        return covered[-1]

    def spy_annotate(frame: av.VideoFrame, *args: Any) -> av.VideoFrame:
        out = annotate(frame, *args)
        if len(covered) > len(sent):
            sent.append(out.to_ndarray(format="bgr24"))
        return out

    monkeypatch.setattr(LiveFaces, "cover", spy_cover)
    monkeypatch.setattr(tracks, "annotate", spy_annotate)
    client = await aiohttp_client(create_app(settings_for(seeded.data_dir), models))
    base = str(client.make_url("")).rstrip("/")
    result = await run_session(base, clips.webcam, seeded.reference.id, seconds=3, fps=5)
    assert result.frames_received > 0 and len(sent) == len(covered)
    assert sum(len(r) > 0 for r in covered) > 0
    for image, regions in zip(sent, covered, strict=True):
        for region in regions:
            assert_block_constant(image, region)
    before = len(covered)
    plain = await run_session(base, clips.webcam, seeded.reference.id, seconds=3, fps=5, mosaic=False)
    assert plain.frames_received > 0 and len(covered) == before
    assert client.app[SESSIONS].get(plain.session).faces is None
