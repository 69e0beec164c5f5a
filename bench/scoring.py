"""The scoring benchmark: how the score separates dancing the dance from everything else, before and after.

Reference: the main dancer (person 0) of the sample footage, vtest.avi at F=10, per backend (keypoints
extracted once with `python -m pose extract` and cached). Candidates scored against it at every tick:

  own_0.3s        the dancer's own poses up to 0.3 s early or late (shifts -3, 0, +3 ticks)
  late_0.5s       the dancer's own poses 0.5 s late (after: with and without latency centring)
  other_moment    the dancer's poses from another moment more than 5 s away (constant offsets)
  other_person    other people at the same tick (this backend's tracks if it finds several people, else
                  MultiPose's)
  mirrored        the dancer's poses mirrored, scored with mirror off and on
  frozen          one pose of the dancer held for the whole footage
  second_look     the models' second look at the same footage (`pose.calibration`): the dancer danced again
                  exactly, seen through other pixels
  lag_sweep       the dancer's own poses delayed by 0..1 s: scores and the latency estimate

before = today's `score_pose` (OKS, best of the ±0.3 s window); after = `pose.scorer.Scorer` (pose + motion,
calibrated against the reference's own chance and match, latency-centred). Means and p90 are over the ticks where
both the dancer and the candidate have a comparable pose. Move scores (1 s moves) feed the tier thresholds.
Jitter: RMS second difference of the keypoints (frame fractions) on the stillest 2 s of the dancer, raw and
through the One-Euro filter. Writes bench/results/scoring.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from bench.machine import RESULTS, describe, write_results
from pose import assets
from pose.calibration import Calibration, calibration_of
from pose.csvio import CSV_COLUMNS, main_dancer_arrays, read_keypoints_csv
from pose.models import BACKEND_NAMES
from pose.moves import TIER_THRESHOLDS, fixed_moves
from pose.oneeuro import OneEuroFilter
from pose.parts import MIRRORED, NUM_PARTS
from pose.scorer import Scorer
from pose.scoring import MIN_COMMON, score_pose, window_ticks
from pose.similarity import Moments

FPS = 10.0
RESULT = RESULTS / "scoring.json"
F32 = npt.NDArray[np.float32]
Seq = tuple[F32, F32]  # xy (K, 18, 2), conf (K, 18)


def code_version() -> str:
    """The git tree hash of `pose/` (the extraction code), which names cached CSVs: a change to it extracts them
    again instead of scoring stale keypoints; "uncommitted" when pose/ has changes or this is not a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "pose"], cwd=root, capture_output=True, check=True)
        tree = subprocess.run(["git", "rev-parse", "HEAD:pose"], cwd=root, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "uncommitted"
    return "uncommitted" if dirty.stdout.strip() else tree.stdout.decode().strip()[:12]


def keypoints(backend: str, cache: Path, second_look: bool = False) -> Path:
    """The backend's keypoint CSV of the sample footage (or its second look), extracted on first use; cached
    under the extraction code's version (`code_version`), never when pose/ has uncommitted changes."""
    version = code_version()
    path = cache / version / f"{backend}{'-second-look' if second_look else ''}.csv"
    if version == "uncommitted":
        path.unlink(missing_ok=True)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pose", "extract", str(assets.SAMPLE_VIDEO.path()), "--fps", str(FPS)]
        subprocess.run([*cmd, "--out", str(path), "--pose", backend, *(["--mirrored"] * second_look)], check=True)
    return path


def people(path: Path) -> dict[int, tuple[npt.NDArray[np.int64], F32, F32]]:
    """Every person's (ticks, xy, conf) in a keypoint CSV, person 0 (the main dancer) included."""
    frame = read_keypoints_csv(path)
    out = {}
    for _, group in frame.groupby("person"):
        rows = group.sort_values("tick")
        person = int(rows["person"].iloc[0])
        values = rows[list(CSV_COLUMNS[3:])].to_numpy(np.float32).reshape(len(rows), NUM_PARTS, 3)
        out[person] = (rows["tick"].to_numpy(np.int64), values[..., :2], np.nan_to_num(values[..., 2]))
    return out


def shifted(seq: Seq, by: int) -> Seq:
    """The sequence `by` ticks late (the first ticks empty); negative: early."""
    xy, conf = np.roll(seq[0], by, axis=0), np.roll(seq[1], by, axis=0)
    if by > 0:
        conf[:by] = 0
    elif by < 0:
        conf[by:] = 0
    return xy, conf


def mirrored(seq: Seq) -> Seq:
    index = [int(p) for p in MIRRORED]
    xy = seq[0][:, index].copy()
    xy[..., 0] = 1.0 - xy[..., 0]
    return xy, seq[1][:, index].copy()


class Bench:
    def __init__(self, ref: Seq, aspect: float, calibration: Calibration) -> None:
        self.ref, self.aspect, self.calibration = ref, aspect, calibration
        self.ticks = len(ref[0])
        self.moments = Moments.from_keypoints(ref[0], ref[1], aspect, FPS)
        self.moves = fixed_moves(self.ticks, FPS)
        self.ref_ok = (ref[1] > 0).sum(axis=1) >= MIN_COMMON

    def run(self, seq: Seq, ticks: npt.NDArray[np.int64] | None = None, **kw: Any) -> dict[str, Any]:
        """before/after figures of one candidate sequence over `ticks` (default: all)."""
        ticks = np.arange(self.ticks) if ticks is None else ticks
        scorer = Scorer(self.moments, FPS, self.calibration, self.moves, **kw)
        mirror = kw.get("mirror", True)
        before, after, raw, used = [], [], [], []
        for i, t in enumerate(ticks):
            xy, conf = seq[0][i], seq[1][i]
            verdict = scorer.add(int(t), xy, conf, self.aspect)
            if not (self.ref_ok[t] and (conf > 0).sum() >= MIN_COMMON):
                continue
            w = window_ticks(int(t), FPS, self.ticks)
            old = score_pose(xy, conf, self.ref[0][w.start : w.stop], self.ref[1][w.start : w.stop],
                             user_aspect=self.aspect, dancer_aspect=self.aspect, mirror=mirror)  # fmt: skip
            before.append(old.score)
            after.append(verdict.score)
            raw.append(verdict.raw)
            used.append(int(t))
        moves = scorer.finish()
        latency = scorer.latency
        return {
            "ticks": len(used),
            "before": _stats(before),
            "after": _stats(after),
            "after_raw": _stats(raw),
            "move_scores": [round(m.score, 1) for m in moves],
            "latency_ms": latency.ms,
            "latency_confident": latency.confident,
        }

    def full(self, seq: Seq, **kw: Any) -> dict[str, Any]:
        return self.run(seq, None, **kw)


def _spread(values: npt.NDArray[np.float64]) -> dict[str, float]:
    return {"mean": round(float(np.nanmean(values)), 3), "p10": round(float(np.nanpercentile(values, 10)), 3),
            "p90": round(float(np.nanpercentile(values, 90)), 3)}  # fmt: skip


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"mean": float("nan"), "p90": float("nan")}
    a = np.asarray(values)
    return {"mean": round(float(a.mean()), 1), "p10": round(float(np.percentile(a, 10)), 1),
            "p90": round(float(np.percentile(a, 90)), 1)}  # fmt: skip


def _merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Tick-weighted means of several runs (p90 of the pooled move scores)."""
    total = sum(r["ticks"] for r in runs) or 1
    out: dict[str, Any] = {"ticks": total, "runs": len(runs)}
    for key in ("before", "after", "after_raw"):
        out[key] = {"mean": round(sum(r[key]["mean"] * r["ticks"] for r in runs if r["ticks"]) / total, 1),
                    "p90": round(max(r[key]["p90"] for r in runs if r["ticks"]), 1)}  # fmt: skip
    out["move_scores"] = [s for r in runs for s in r["move_scores"]]
    return out


def jitter(ref: Seq, seconds: float = 2.0) -> dict[str, float]:
    """RMS second difference (frame fractions) on the stillest fully-seen stretch, raw and One-Euro filtered."""
    xy = np.where(ref[1][..., None] > 0, ref[0], np.nan).astype(np.float64)
    n = round(seconds * FPS)
    seen = (ref[1] > 0).sum(axis=1) >= 12
    centre = np.nanmean(np.where(seen[:, None, None], xy, 0.0), axis=1)  # unseen ticks are never chosen
    best, start = np.inf, 0
    for s in range(len(xy) - n):
        if seen[s : s + n].all():
            travel = float(np.nansum(np.linalg.norm(np.diff(centre[s : s + n], axis=0), axis=1)))
            if travel < best:
                best, start = travel, s
    f = OneEuroFilter()
    smooth = np.stack([f(xy[k], k / FPS) for k in range(len(xy))])

    def rms2(a: npt.NDArray[np.float64]) -> float:
        d = a[2:] - 2 * a[1:-1] + a[:-2]
        return float(np.sqrt(np.nanmean(d**2)))

    part = slice(start, start + n)
    return {"start_tick": start, "ticks": n, "centre_travel": round(best, 4),
            "raw": round(rms2(xy[part]), 5), "one_euro": round(rms2(smooth[part]), 5)}  # fmt: skip


def bench_backend(backend: str, cache: Path, others_from: Path | None) -> dict[str, Any]:
    path = keypoints(backend, cache)
    cap = cv2.VideoCapture(str(assets.SAMPLE_VIDEO.path()))
    aspect = cap.get(cv2.CAP_PROP_FRAME_WIDTH) / cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
    cap.release()
    ticks, xy, conf = main_dancer_arrays(read_keypoints_csv(path))
    ref: Seq = (xy, conf)
    _, sxy, sconf = main_dancer_arrays(read_keypoints_csv(keypoints(backend, cache, second_look=True)))
    started = time.perf_counter()
    moments = Moments.from_keypoints(xy, conf, aspect, FPS)
    calibration = calibration_of(moments, Moments.from_keypoints(sxy, sconf, aspect, FPS), FPS)
    calibration_s = time.perf_counter() - started
    b = Bench(ref, aspect, calibration)
    k = len(ticks)
    out: dict[str, Any] = {"ticks": k, "calibration_s": round(calibration_s, 1),
                           "chance": _spread(calibration.chance), "match": _spread(calibration.match)}  # fmt: skip
    out["second_look"] = b.full((sxy, sconf))
    sweep = {d: b.full(shifted(ref, d)) for d in (0, 3, 5, 8, 10)}
    out["lag_sweep"] = {f"{100 * d}ms": {"before": r["before"]["mean"], "after": r["after"]["mean"],
                                         "estimate_ms": r["latency_ms"], "confident": r["latency_confident"]}
                        for d, r in sweep.items()}  # fmt: skip
    out["own_0.3s"] = _merge([b.full(shifted(ref, -3)), sweep[0], sweep[3]])
    out["late_0.5s"] = sweep[5]
    out["late_0.5s_fixed_window"] = b.full(shifted(ref, 5), latency=False)
    out["other_moment"] = _merge([b.full(shifted(ref, d)) for d in (60, 265, 530)])
    source = path if len(people(path)) > 1 or others_from is None else others_from
    tracks = sorted(((p, v) for p, v in people(source).items() if p > 0), key=lambda pv: -len(pv[1][0]))[:4]
    out["other_person"] = _merge([b.run((v[1], v[2]), v[0]) for _, v in tracks if len(v[0]) >= 30])
    out["other_person"]["source"] = source.stem
    out["mirrored_mirror_off"] = b.full(mirrored(ref), mirror=False)
    out["mirrored_mirror_on"] = b.full(mirrored(ref), mirror=True)
    good = np.flatnonzero((conf > 0).sum(axis=1) >= 12)
    frozen = [good[len(good) // 3], good[2 * len(good) // 3]]
    out["frozen"] = _merge([b.full((np.repeat(xy[f : f + 1], k, 0), np.repeat(conf[f : f + 1], k, 0))) for f in frozen])
    out["jitter"] = jitter(ref)
    return out


def table(results: dict[str, Any]) -> str:
    rows = ["| backend | candidate | before mean (p90) | after mean (p90) |", "|---|---|---|---|"]
    for backend, r in results.items():
        for key in ("own_0.3s", "late_0.5s", "late_0.5s_fixed_window", "other_moment", "other_person",
                    "mirrored_mirror_off", "mirrored_mirror_on", "frozen", "second_look"):  # fmt: skip
            x = r[key]
            rows.append(f"| {backend} | {key} | {x['before']['mean']} ({x['before']['p90']}) | "
                        f"{x['after']['mean']} ({x['after']['p90']}) |")  # fmt: skip
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="*", default=list(BACKEND_NAMES), choices=BACKEND_NAMES)
    parser.add_argument("--cache", type=Path, default=assets.DATA_DIR / "bench-keypoints", help="keypoint CSVs")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    assets.ensure((assets.SAMPLE_VIDEO,))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    multipose = keypoints("movenet-multipose", args.cache) if "movenet-multipose" in BACKEND_NAMES else None
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    results = dict(previous.get("backends", {}))
    for backend in args.backends:
        results[backend] = bench_backend(backend, args.cache, multipose)
        document = {"machine": describe(), "fps": FPS, "tiers": [[t.value, v] for t, v in TIER_THRESHOLDS],
                    "backends": results}  # fmt: skip
        write_results(document, args.out)  # after each backend: a long run keeps its part
        print(f"{backend}: done", flush=True)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
