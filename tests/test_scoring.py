from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from pose.parts import MIRRORED, NUM_PARTS, BodyPart
from pose.scoring import MIN_COMMON, PoseScore, score_pose, window_ticks

Array = npt.NDArray[np.float64]
B = BodyPart

# A standing person in body-height units, x to the image right, y down; the person faces the camera, so their
# right side is on the image left. Arms are raised asymmetrically so that mirroring changes the pose.
_BODY = {
    B.NOSE: (0.0, 0.07), B.NECK: (0.0, 0.17), B.R_SHOULDER: (-0.11, 0.18), B.R_ELBOW: (-0.2, 0.08),
    B.R_WRIST: (-0.22, -0.08), B.L_SHOULDER: (0.11, 0.18), B.L_ELBOW: (0.14, 0.34), B.L_WRIST: (0.15, 0.49),
    B.R_HIP: (-0.07, 0.52), B.R_KNEE: (-0.1, 0.73), B.R_ANKLE: (-0.08, 0.95), B.L_HIP: (0.07, 0.52),
    B.L_KNEE: (0.12, 0.72), B.L_ANKLE: (0.2, 0.93), B.R_EYE: (-0.02, 0.05), B.L_EYE: (0.02, 0.05),
    B.R_EAR: (-0.05, 0.06), B.L_EAR: (0.05, 0.06),
}  # fmt: skip
BODY: Array = np.array([_BODY[p] for p in BodyPart])
R_ARM = {B.R_SHOULDER, B.R_ELBOW, B.R_WRIST}


def in_frame(body: Array, aspect: float, height: float = 0.6, at: tuple[float, float] = (0.5, 0.2)) -> Array:
    """The body drawn `height` frame-heights tall at `at`, in coordinates normalised to frame width/height."""
    px = body * height + np.array(at) * np.array([aspect, 1.0])
    return px / np.array([aspect, 1.0])


def mirror_image(xy: Array) -> Array:
    """What a mirrored copy of the person looks like in the same frame: x flipped, their left is now right."""
    flipped = xy * np.array([-1.0, 1.0]) + np.array([1.0, 0.0])
    return flipped[[int(p) for p in MIRRORED]]


def conf(found: Array | None = None) -> Array:
    return np.ones(NUM_PARTS) if found is None else found.astype(np.float64)


def score(user: Array, dancers: Array | list[Array], **kw: object) -> PoseScore:
    rows = np.array(dancers).reshape(-1, NUM_PARTS, 2)
    user_conf = np.where(np.isnan(user).any(axis=1), 0.0, 1.0)
    dancer_conf = np.where(np.isnan(rows).any(axis=2), 0.0, 1.0)
    return score_pose(user, user_conf, rows, dancer_conf, **kw)  # type: ignore[arg-type]


DANCER = in_frame(BODY, 1.0)


@pytest.mark.parametrize(
    "user",
    [
        pytest.param(DANCER, id="identical"),
        pytest.param(DANCER + np.array([0.2, -0.1]), id="translated"),
        pytest.param(in_frame(BODY, 1.0, height=0.3, at=(0.2, 0.5)), id="scaled-and-moved"),
        pytest.param(in_frame(BODY, 1.0, height=1.4, at=(0.9, -0.3)), id="larger-than-frame"),
    ],
)
def test_same_pose_scores_100(user: Array) -> None:
    result = score(user, DANCER)
    assert result.score == pytest.approx(100.0)
    assert result.dancer_index == 0
    assert not result.mirrored
    assert result.common == NUM_PARTS


@pytest.mark.parametrize(("user_aspect", "dancer_aspect"), [(16 / 9, 4 / 3), (4 / 3, 16 / 9), (9 / 16, 16 / 9)])
def test_aspect_ratio_is_corrected(user_aspect: float, dancer_aspect: float) -> None:
    user = in_frame(BODY, user_aspect)
    dancer = in_frame(BODY, dancer_aspect)
    kw = {"user_aspect": user_aspect, "dancer_aspect": dancer_aspect}
    assert score(user, dancer, **kw).score == pytest.approx(100.0)
    assert score(user, dancer).score < 96.0  # uncorrected, the body looks stretched sideways


def test_mirror_image_scores_100_only_with_mirror_on() -> None:
    user = mirror_image(DANCER)
    on = score(user, DANCER, mirror=True)
    off = score(user, DANCER, mirror=False)
    assert on.score == pytest.approx(100.0)
    assert on.mirrored
    assert off.score < 90.0
    assert not off.mirrored


def test_unmirrored_match_preferred_on_tie() -> None:
    symmetric = (BODY + (BODY * np.array([-1.0, 1.0]))[[int(p) for p in MIRRORED]]) / 2
    pose = in_frame(symmetric, 1.0)
    result = score(pose, [pose, pose])
    assert result.score == pytest.approx(100.0)
    assert not result.mirrored
    assert result.dancer_index == 0


@pytest.mark.parametrize("mirror", [True, False])
def test_one_wrong_arm_is_named(mirror: bool) -> None:
    user = DANCER.copy()
    user[B.R_ELBOW] = user[B.R_SHOULDER] + np.array([-0.05, 0.12])  # arm down instead of up
    user[B.R_WRIST] = user[B.R_ELBOW] + np.array([0.0, 0.12])
    result = score(user, DANCER, mirror=mirror)
    assert result.score < 90.0
    assert result.worst in R_ARM
    assert not result.mirrored


def test_worst_is_named_in_user_parts_when_mirrored() -> None:
    user = mirror_image(DANCER)
    user[B.L_WRIST] += np.array([0.0, 0.1])  # the user's left wrist, matched with the dancer's right one
    result = score(user, DANCER)
    assert result.mirrored
    assert result.worst == B.L_WRIST


@pytest.mark.parametrize(
    ("user_missing", "dancer_missing"),
    [
        pytest.param(list(BodyPart), [], id="user-empty"),
        pytest.param([], list(BodyPart), id="dancer-empty"),
        pytest.param(list(BodyPart)[:9], list(BodyPart)[9:], id="disjoint"),
        pytest.param(list(BodyPart)[MIN_COMMON - 1 :], [], id="too-few-common"),
    ],
)
def test_nothing_comparable_scores_0(user_missing: list[BodyPart], dancer_missing: list[BodyPart]) -> None:
    user, dancer = DANCER.copy(), DANCER.copy()
    user[user_missing] = np.nan
    dancer[dancer_missing] = np.nan
    assert score(user, dancer) == PoseScore.none()


def test_confidence_zero_means_missing_even_with_coordinates() -> None:
    found = np.zeros(NUM_PARTS)
    result = score_pose(DANCER, found, DANCER[None], conf()[None])
    assert result == PoseScore.none()


def test_degenerate_common_parts_score_0() -> None:
    collapsed = np.full((NUM_PARTS, 2), 0.5)
    assert score(collapsed, DANCER) == PoseScore.none()


def test_partial_bodies_compare_common_parts_only() -> None:
    user = DANCER.copy()
    user[[B.R_KNEE, B.R_ANKLE, B.L_KNEE, B.L_ANKLE]] = np.nan  # legs out of the webcam's view
    result = score(user * 1.3, DANCER)
    assert result.score == pytest.approx(100.0)
    assert result.common == NUM_PARTS - 4


def test_empty_window_scores_0() -> None:
    assert score_pose(DANCER, conf(), np.zeros((0, NUM_PARTS, 2)), np.zeros((0, NUM_PARTS))) == PoseScore.none()


def test_best_row_in_window_is_picked() -> None:
    rng = np.random.default_rng(3)
    rows = [in_frame(BODY + rng.normal(0, 0.08, BODY.shape), 1.0) for _ in range(7)]
    user = rows[4] * 0.8 + 0.05
    result = score(user, rows)
    assert result.dancer_index == 4
    assert result.score == pytest.approx(100.0)


def test_closer_pose_scores_higher() -> None:
    scores = []
    for shift in (0.0, 0.02, 0.05, 0.1, 0.2):
        user = DANCER.copy()
        user[B.L_WRIST] += shift
        scores.append(score(user, DANCER).score)
    assert scores == sorted(scores, reverse=True)
    assert len(set(scores)) == len(scores)


@pytest.mark.parametrize("seed", range(40))
def test_score_always_within_0_100(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = int(rng.integers(0, 6))
    user = rng.normal(0.5, rng.uniform(0, 3), (NUM_PARTS, 2))
    dancer = rng.normal(0.5, rng.uniform(0, 3), (m, NUM_PARTS, 2))
    user_conf = rng.uniform(-0.5, 1, NUM_PARTS)
    dancer_conf = rng.uniform(-0.5, 1, (m, NUM_PARTS))
    user[rng.random(NUM_PARTS) < 0.2] = np.nan
    result = score_pose(
        user,
        user_conf,
        dancer,
        dancer_conf,
        user_aspect=rng.uniform(0.3, 3),
        dancer_aspect=rng.uniform(0.3, 3),
        mirror=bool(rng.integers(2)),
    )
    assert 0.0 <= result.score <= 100.0
    assert (result.worst is None) == (result.dancer_index is None)
    if result.dancer_index is not None:
        assert 0 <= result.dancer_index < m
        assert result.common >= MIN_COMMON


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"user_xy": np.zeros((17, 2))}, "user_xy must have shape"),
        ({"dancer_xy": np.zeros((NUM_PARTS, 2))}, "dancer_xy must have shape"),
        ({"user_conf": np.ones(17)}, "user_conf must have shape"),
        ({"dancer_aspect": 0.0}, "dancer_aspect must be > 0"),
    ],
)
def test_bad_input_is_rejected(bad: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "user_xy": DANCER,
        "user_conf": conf(),
        "dancer_xy": DANCER[None],
        "dancer_conf": conf()[None],
    }
    args.update(bad)
    with pytest.raises(ValueError, match=message):
        score_pose(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tick", "fps", "total", "expected"),
    [
        (50, 10, 100, range(47, 54)),
        (1, 10, 100, range(0, 5)),
        (98, 10, 100, range(95, 100)),
        (20, 30, 100, range(11, 30)),
        (20, 5, 100, range(19, 22)),
        (20, 2, 100, range(20, 21)),
        (0, 1, 1, range(0, 1)),
    ],
)
def test_window_ticks(tick: int, fps: float, total: int, expected: range) -> None:
    assert window_ticks(tick, fps, total) == expected


@pytest.mark.parametrize(("tick", "fps", "total"), [(-1, 10, 100), (100, 10, 100), (0, 0, 100)])
def test_window_ticks_rejects_bad_input(tick: int, fps: float, total: int) -> None:
    with pytest.raises(ValueError):
        window_ticks(tick, fps, total)
