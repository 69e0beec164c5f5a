"""Score a user's pose against the dancer's: OKS after position/scale normalisation, mirror, time window.

Pure numpy. Coordinates come normalised to [0, 1] of frame width/height (NaN where missing), so each pose is
first made isotropic (x times the frame's width/height aspect: both axes in frame heights), then normalised
over the parts both poses found ("common parts"):

* centred on the mean of the common parts,
* scaled so that their RMS distance from that centre is 1 (each pose by its own RMS, so distance to the
  camera and body size do not matter).

OKS is COCO's: the mean over common parts of exp(-d^2 / (2 s^2 k^2)), k = 2 sigma with COCO's per-part
sigmas, and s = `OKS_SCALE` RMS radii. COCO takes s = sqrt(segment area), about 0.45 of a standing full-body
person's height, while the RMS radius of their keypoints is about 0.3 of it: hence 1.5. The same s applies
when only part of the body is common, so tolerances shrink with the visible extent, as COCO's do for a small
person.

With k common parts, centring and scaling remove three of their 2k degrees of freedom, so any two points match
perfectly and three barely constrain anything: fewer than `MIN_COMMON` (5) common parts is "not comparable",
as is a set of common parts that collapses onto one point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pose.parts import MIRRORED, NUM_PARTS, OKS_SIGMAS, BodyPart

FloatArray = npt.NDArray[np.floating]
BoolArray = npt.NDArray[np.bool_]

OKS_SCALE = 1.5
MIN_COMMON = 5
WINDOW_S = 0.3
_KAPPA2 = (2.0 * OKS_SIGMAS.astype(np.float64)) ** 2
_MIRROR_INDEX = np.array([int(p) for p in MIRRORED], dtype=np.int64)
_MIN_RMS = 1e-6


@dataclass(frozen=True)
class PoseScore:
    """The best match of one user pose against a window of dancer rows.

    score: 0..100 (100 * OKS of the best match; 0 when nothing was comparable).
    worst: the user's own body part furthest off in that match (None when nothing was comparable). When
        `mirrored` is True this is the mirror of the dancer part it was compared with (`MIRRORED[worst]`).
    dancer_index: the matched row, an index into the window's rows (None when nothing was comparable).
    mirrored: whether the mirrored user pose gave the match.
    common: how many parts were compared in that match.
    """

    score: float
    worst: BodyPart | None
    dancer_index: int | None
    mirrored: bool
    common: int = 0

    @classmethod
    def none(cls) -> PoseScore:
        """The score for "nothing comparable"."""
        return cls(score=0.0, worst=None, dancer_index=None, mirrored=False, common=0)


def window_ticks(tick: int, fps: float, total_ticks: int, window_s: float = WINDOW_S) -> range:
    """Dancer ticks within ±window_s of `tick` (ticks at k / fps s), clipped to [0, total_ticks).

    Only ticks whose time lies inside the window count, so at fps < 1 / window_s it is the tick alone.
    """
    if fps <= 0 or window_s < 0:
        raise ValueError(f"fps must be > 0 and window_s >= 0, got fps={fps}, window_s={window_s}")
    if not 0 <= tick < total_ticks:
        raise ValueError(f"tick must be in [0, {total_ticks}), got {tick}")
    half = math.floor(window_s * fps + 1e-9)
    return range(max(0, tick - half), min(total_ticks, tick + half + 1))


def score_pose(
    user_xy: FloatArray,
    user_conf: FloatArray,
    dancer_xy: FloatArray,
    dancer_conf: FloatArray,
    *,
    user_aspect: float = 1.0,
    dancer_aspect: float = 1.0,
    mirror: bool = True,
    min_common: int = MIN_COMMON,
) -> PoseScore:
    """Score one user pose against m candidate dancer rows; the best (row, mirroring) wins.

    user_xy: (18, 2) normalised x, y (NaN where missing); user_conf: (18,), > 0 where found.
    dancer_xy: (m, 18, 2); dancer_conf: (m, 18) for the m dancer ticks of the window (see `window_ticks`).
    user_aspect, dancer_aspect: width / height of the frames each pose was found in.
    Ties go to the unmirrored pose, then to the earliest row.
    """
    user_pts, user_found = _validated(user_xy, user_conf, user_aspect, "user", ndim=2)
    dancer_pts, dancer_found = _validated(dancer_xy, dancer_conf, dancer_aspect, "dancer", ndim=3)
    variants = [(user_pts, user_found)]
    if mirror:
        variants.append(_mirrored(user_pts, user_found))
    users = np.stack([v[0] for v in variants])[:, None]  # (v, 1, 18, 2)
    common = np.stack([v[1] for v in variants])[:, None] & dancer_found[None]  # (v, m, 18)
    sim, valid = _similarities(users, dancer_pts[None], common, min_common)
    counts = common.sum(axis=-1)
    oks = np.where(valid, sim.sum(axis=-1) / np.maximum(counts, 1), -1.0)  # (v, m)
    if oks.size == 0 or not valid.any():
        return PoseScore.none()
    variant, row = np.unravel_index(int(np.argmax(oks)), oks.shape)
    return _result(sim[variant, row], common[variant, row], float(oks[variant, row]), int(row), bool(variant))


def isotropic_points(
    xy: FloatArray, conf: FloatArray, aspect: float, who: str = "pose"
) -> tuple[npt.NDArray[np.float64], BoolArray]:
    """Poses (..., 18, 2) in frame heights with missing parts zeroed, and their found masks (..., 18)."""
    return _validated(xy, conf, aspect, who, ndim=max(2, np.ndim(xy)))


def mirrored_points(pts: npt.NDArray[np.float64], found: BoolArray) -> tuple[npt.NDArray[np.float64], BoolArray]:
    """`isotropic_points` as seen in a mirror (left and right swapped, x negated)."""
    return pts[..., _MIRROR_INDEX, :] * np.array([-1.0, 1.0]), found[..., _MIRROR_INDEX]


def oks_terms(
    users: npt.NDArray[np.float64], dancers: npt.NDArray[np.float64], common: BoolArray, min_common: int = MIN_COMMON
) -> tuple[npt.NDArray[np.float64], BoolArray]:
    """Per-part OKS terms (..., 18) of broadcast pose pairs over their `common` parts, and which are comparable."""
    return _similarities(users, dancers, common, min_common)


def _validated(
    xy: FloatArray, conf: FloatArray, aspect: float, who: str, ndim: int
) -> tuple[npt.NDArray[np.float64], BoolArray]:
    """Isotropic points (frame heights) with missing parts zeroed, and the found mask."""
    xy = np.asarray(xy, dtype=np.float64)
    conf = np.asarray(conf, dtype=np.float64)
    if xy.ndim != ndim or xy.shape[-2:] != (NUM_PARTS, 2):
        lead = "" if ndim == 2 else "_, "
        raise ValueError(f"{who}_xy must have shape ({lead}{NUM_PARTS}, 2), got {xy.shape}")
    if conf.shape != xy.shape[:-1]:
        raise ValueError(f"{who}_conf must have shape {xy.shape[:-1]}, got {conf.shape}")
    if not aspect > 0:
        raise ValueError(f"{who}_aspect must be > 0, got {aspect}")
    found = (conf > 0) & np.isfinite(xy).all(axis=-1)
    pts = np.where(found[..., None], xy * np.array([aspect, 1.0]), 0.0)
    return pts, found


def _mirrored(pts: npt.NDArray[np.float64], found: BoolArray) -> tuple[npt.NDArray[np.float64], BoolArray]:
    """The pose seen in a mirror: x negated (centring makes the offset irrelevant), left and right swapped."""
    return pts[_MIRROR_INDEX] * np.array([-1.0, 1.0]), found[_MIRROR_INDEX]


def _similarities(
    users: npt.NDArray[np.float64], dancers: npt.NDArray[np.float64], common: BoolArray, min_common: int
) -> tuple[npt.NDArray[np.float64], BoolArray]:
    """Per-part OKS terms (v, m, 18), 0 outside common parts, and which (v, m) pairs are comparable."""
    u, u_ok = _normalised(users, common)
    d, d_ok = _normalised(dancers, common)
    d2 = ((u - d) ** 2).sum(axis=-1)
    sim = np.where(common, np.exp(-d2 / (2.0 * OKS_SCALE**2 * _KAPPA2)), 0.0)
    return sim, u_ok & d_ok & (common.sum(axis=-1) >= max(min_common, 1))


def _normalised(pts: npt.NDArray[np.float64], mask: BoolArray) -> tuple[npt.NDArray[np.float64], BoolArray]:
    """Centre on the masked mean, scale to unit RMS radius: pts (..., 18, 2) broadcast with mask (..., 18)."""
    w = mask[..., None]
    n = np.maximum(mask.sum(axis=-1), 1)[..., None]
    centre = np.where(w, pts, 0.0).sum(axis=-2) / n
    centred = np.where(w, pts - centre[..., None, :], 0.0)
    rms = np.sqrt((centred**2).sum(axis=(-2, -1)) / n[..., 0])
    ok = rms > _MIN_RMS
    return centred / np.where(ok, rms, 1.0)[..., None, None], ok


def _result(sim: FloatArray, common: BoolArray, oks: float, row: int, mirrored: bool) -> PoseScore:
    """Assemble the score for the chosen (row, mirroring); `worst` named in the user's own parts."""
    part = int(np.argmin(np.where(common, sim, np.inf)))
    worst = BodyPart(int(_MIRROR_INDEX[part])) if mirrored else BodyPart(part)
    score = min(100.0, max(0.0, 100.0 * oks))
    return PoseScore(score=score, worst=worst, dancer_index=row, mirrored=mirrored, common=int(common.sum()))


def backend_mismatch(dancer_pose: str | None, user_pose: str | None) -> str | None:
    """A warning for the user when the dancer's and the user's keypoints come from different pose backends
    (None when they match or either is unknown). Each backend places joints its own way (where a hip or the
    neck sits, which faint joints it reports), so the same pose scores lower across backends than within one:
    on the same 60 frames of vtest.avi (`make bench`, cross_scores) the mean is 98-100 within a backend, 61-64
    between tf-pose and a MoveNet, 94 between Lightning and Thunder, 80-81 between MultiPose and the single-pose
    models.
    """
    if dancer_pose is None or user_pose is None or dancer_pose == user_pose:
        return None
    return (
        f"the dancer's keypoints come from {dancer_pose} and yours from {user_pose}: the two place joints "
        "differently, so scores run lower than they would with one backend"
    )
