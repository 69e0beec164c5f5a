"""How alike two moments of dancing are: where the body is (OKS, `pose.scoring`) and how the limbs move.

Pure numpy on poses already in frame heights (`pose.scoring.isotropic_points`). A moment is a pose and the pose
`motion_ticks` earlier. Motion is compared limb by limb: each skeleton edge is a vector from its inner to its
outer part, divided by its pose's RMS radius (so body size and distance to the camera drop out, as do walking
across the frame and the camera's framing); an edge's motion is how that vector changed over the window, and
the two motions match by exp(-|du - dd|^2 / (2 MOTION_TOL^2)). A frozen user has du = 0 and so matches only a
dancer who holds still too; one moving the other way is twice as far off as one not moving.

The similarity of a moment is (1 - MOTION_WEIGHT) * OKS + MOTION_WEIGHT * motion, in 0..1; the OKS alone
when fewer than `MIN_EDGES` edges were seen in all four poses (the first ticks of a session). With a mirror,
the mirrored user pose is tried too and the better variant wins; limbs are named in the user's own body.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pose.limbs import EDGE_A, EDGE_B, EDGE_LIMB_MATRIX, PART_LIMB_MATRIX, Limb
from pose.parts import MIRRORED
from pose.scoring import MIN_COMMON, isotropic_points, mirrored_points, oks_terms

F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

MOTION_S = 0.5  # about one step or one arm swing: long enough to see a move, short enough to stay one move
MOTION_TOL = 0.25  # RMS radii: an upper arm swung by about 45 degrees matches at 0.24
MOTION_WEIGHT = 0.5
MIN_EDGES = 3
_MIRRORED_LIMBS = np.array([int(limb.mirrored) for limb in Limb], dtype=np.int64)
_MIRRORED_PARTS = np.array([int(p) for p in MIRRORED], dtype=np.int64)


@dataclass(frozen=True)
class PoseArrays:
    """Poses (..., 18, 2) in frame heights, zero where missing, and their found masks (..., 18); `edges`, when
    given, is their `edge_vectors` worked out once (a reference's are used at every tick)."""

    pts: F64
    found: Bools
    edges: tuple[F64, Bools] | None = None

    def mirrored(self) -> PoseArrays:
        return PoseArrays(*mirrored_points(self.pts, self.found))

    def take(self, index: npt.NDArray[np.int64] | slice | int) -> PoseArrays:
        edges = None if self.edges is None else (self.edges[0][index], self.edges[1][index])
        return PoseArrays(self.pts[index], self.found[index], edges)

    def with_edges(self) -> PoseArrays:
        return PoseArrays(self.pts, self.found, edge_vectors(self))


@dataclass(frozen=True)
class Similarity:
    """The similarity of broadcast moment pairs (shape S), best variant (plain or mirrored) chosen per pair.

    total: (S) 0..1 by the rule in the module docstring, NaN where not comparable.
    raw: (S) the OKS alone of the best variant by OKS (the score without motion), NaN where not comparable.
    mirrored: (S) whether `total` came from the mirrored user.
    limbs: (S, 6) the same mix per limb, in the user's own limbs (`Limb` order), NaN where a limb was not seen.
    parts: (S, 18) the OKS term of each of the user's own parts in that variant, NaN where not compared.
    """

    total: F64
    raw: F64
    mirrored: Bools
    limbs: F64
    parts: F64


def edge_vectors(poses: PoseArrays) -> tuple[F64, Bools]:
    """Skeleton edge vectors (..., E, 2) in units of each pose's RMS radius, and which were seen (..., E)."""
    if poses.edges is not None:
        return poses.edges
    found = poses.found
    n = np.maximum(found.sum(axis=-1), 1)[..., None]
    centre = np.where(found[..., None], poses.pts, 0.0).sum(axis=-2) / n
    spread = np.where(found[..., None], poses.pts - centre[..., None, :], 0.0)
    rms = np.sqrt((spread**2).sum(axis=(-2, -1)) / n[..., 0])
    ok_scale = (rms > 1e-6) & (found.sum(axis=-1) >= MIN_COMMON)
    vec = (poses.pts[..., EDGE_B, :] - poses.pts[..., EDGE_A, :]) / np.where(ok_scale, rms, 1.0)[..., None, None]
    return vec, found[..., EDGE_A] & found[..., EDGE_B] & ok_scale[..., None]


def motion_terms(
    user_now: PoseArrays, user_prev: PoseArrays, dancer_now: PoseArrays, dancer_prev: PoseArrays
) -> tuple[F64, Bools]:
    """Per-edge motion match (..., E) of broadcast moment pairs, and which edges were seen in all four poses."""
    un, un_ok = edge_vectors(user_now)
    up, up_ok = edge_vectors(user_prev)
    dn, dn_ok = edge_vectors(dancer_now)
    dp, dp_ok = edge_vectors(dancer_prev)
    off = ((un - up) - (dn - dp)) ** 2
    ok = un_ok & up_ok & dn_ok & dp_ok
    return np.where(ok, np.exp(-off.sum(axis=-1) / (2.0 * MOTION_TOL**2)), 0.0), ok


def similarity(
    user_now: PoseArrays,
    user_prev: PoseArrays | None,
    dancer_now: PoseArrays,
    dancer_prev: PoseArrays | None,
    mirror: bool = True,
) -> Similarity:
    """Compare user moments with dancer moments (arrays broadcast like numpy's; None: no earlier pose known)."""
    variants = [_variant(user_now, user_prev, dancer_now, dancer_prev)]
    if mirror:
        prev = None if user_prev is None else user_prev.mirrored()
        total, raw, limbs, parts = _variant(user_now.mirrored(), prev, dancer_now, dancer_prev)
        variants.append((total, raw, limbs[..., _MIRRORED_LIMBS], parts[..., _MIRRORED_PARTS]))
    totals = np.stack([v[0] for v in variants])
    best = np.argmax(np.nan_to_num(totals, nan=-1.0), axis=0)
    pick = best[None]
    total = np.take_along_axis(totals, pick, axis=0)[0]
    limbs = np.take_along_axis(np.stack([v[2] for v in variants]), pick[..., None], axis=0)[0]
    parts = np.take_along_axis(np.stack([v[3] for v in variants]), pick[..., None], axis=0)[0]
    raws = np.stack([v[1] for v in variants])
    raw = np.where(np.isnan(raws).all(axis=0), np.nan, np.nanmax(np.nan_to_num(raws, nan=-1.0), axis=0))
    mirrored = best.astype(bool) & np.isfinite(total)
    return Similarity(total=total, raw=raw, mirrored=mirrored, limbs=limbs, parts=parts)


def _variant(
    user_now: PoseArrays, user_prev: PoseArrays | None, dancer_now: PoseArrays, dancer_prev: PoseArrays | None
) -> tuple[F64, F64, F64, F64]:
    """(total, oks, per-limb mix, per-part OKS) of one user variant; limbs and parts in the dancer's order."""
    common = user_now.found & dancer_now.found
    sim, valid = oks_terms(user_now.pts, dancer_now.pts, common)
    count = common.sum(axis=-1)
    oks = np.where(valid, sim.sum(axis=-1) / np.maximum(count, 1), np.nan)
    limb_count = common @ PART_LIMB_MATRIX.T
    limb_oks = np.where(limb_count > 0, (sim @ PART_LIMB_MATRIX.T) / np.maximum(limb_count, 1), np.nan)
    parts = np.where(common & valid[..., None], sim, np.nan)
    if user_prev is None or dancer_prev is None:
        return oks, oks, np.where(valid[..., None], limb_oks, np.nan), parts
    terms, seen = motion_terms(user_now, user_prev, dancer_now, dancer_prev)
    edges = seen.sum(axis=-1)
    moving = valid & (edges >= MIN_EDGES)
    motion = terms.sum(axis=-1) / np.maximum(edges, 1)
    total = np.where(moving, (1.0 - MOTION_WEIGHT) * oks + MOTION_WEIGHT * motion, oks)
    edge_count = seen @ EDGE_LIMB_MATRIX.T
    limb_motion = (terms @ EDGE_LIMB_MATRIX.T) / np.maximum(edge_count, 1)
    mixed = (1.0 - MOTION_WEIGHT) * limb_oks + MOTION_WEIGHT * limb_motion
    limbs = np.where((edge_count > 0) & moving[..., None], mixed, limb_oks)
    return total, oks, np.where(valid[..., None], limbs, np.nan), parts


def motion_ticks(fps: float) -> int:
    """Ticks between a pose and the earlier pose its motion is measured from (at least 1)."""
    return max(1, round(MOTION_S * fps))


@dataclass(frozen=True)
class Moments:
    """A keypoint sequence as moments: `now` (K, 18, 2) and `prev`, row k holding pose k - motion_ticks (missing
    for the first ticks)."""

    now: PoseArrays
    prev: PoseArrays

    @classmethod
    def from_keypoints(cls, xy: npt.ArrayLike, conf: npt.ArrayLike, aspect: float, fps: float) -> Moments:
        """xy (K, 18, 2) normalised, NaN where missing; conf (K, 18), > 0 where found; aspect: width / height."""
        now = PoseArrays(*isotropic_points(np.asarray(xy), np.asarray(conf), aspect, "keypoint"))
        w = min(motion_ticks(fps), len(now.pts))
        pts = np.concatenate([np.zeros_like(now.pts[:w]), now.pts[: len(now.pts) - w]])
        found = np.concatenate([np.zeros_like(now.found[:w]), now.found[: len(now.found) - w]])
        return cls(now.with_edges(), PoseArrays(pts, found).with_edges())

    def __len__(self) -> int:
        return len(self.now.pts)

    def take(self, index: npt.NDArray[np.int64] | slice | int) -> Moments:
        return Moments(self.now.take(index), self.prev.take(index))
