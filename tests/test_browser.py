"""The page in real browsers and the real server: Debian's headless Chromium with a fake camera playing real
footage, and Debian's Firefox ESR with its own fake camera, once with its default ICE privacy (host addresses as
mDNS names, a=end-of-candidates) and once with real host candidates.

`tests/browser/dance.mjs` (playwright-core for Chromium, puppeteer-core over WebDriver BiDi for Firefox) opens the
page, picks the sample reference, presses Start, dances for ~10 s, watches the annotated video and the live score,
stops, and downloads both CSVs through the page, with a screenshot of each step.
The coaching scenario (Chromium) checks the dancer's skeleton overlay, the practice speed, an A-B loop and the
end-of-session report's charts.
`scripts/install-browser.sh` installs both browsers and both drivers; without them these tests skip (fail on CI).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from harness.clips import source_frames, write_clip
from harness.server import ServerProcess as Server
from pose import assets
from pose.csvio import CSV_COLUMNS
from pose.models import BACKEND_NAMES, DEFAULT_BACKEND
from stream.session import SCORE_COLUMNS

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
DRIVER_DIR = ROOT / "tests" / "browser"
DRIVER = DRIVER_DIR / "dance.mjs"
CHROMIUM = Path("/usr/bin/chromium")
FIREFOX = Path("/usr/bin/firefox-esr")
CAMERA_SIZE = (640, 480)
CAMERA_SECONDS = 12.0
REFERENCE_SECONDS = 15.0
DANCE_SECONDS = 10
SERVER_START_TIMEOUT_S = 180.0
JOB_TIMEOUT_S = 300.0
DRIVER_TIMEOUT_S = 240.0
SCORES_HEADER = list(SCORE_COLUMNS)


def _require_browser() -> None:
    missing = [
        what
        for what, ok in (
            ("node", shutil.which("node") is not None),
            (str(CHROMIUM), CHROMIUM.exists()),
            (str(FIREFOX), FIREFOX.exists()),
            ("playwright-core", (DRIVER_DIR / "node_modules" / "playwright-core").is_dir()),
            ("puppeteer-core", (DRIVER_DIR / "node_modules" / "puppeteer-core").is_dir()),
        )
        if not ok
    ]
    if missing:
        message = f"browser test needs {', '.join(missing)}: run scripts/install-browser.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


# ---------------------------------------------------------------------------------------------------------
# Media made from the real sample video


def write_camera_clip(source: Path, path: Path, seconds: float = CAMERA_SECONDS) -> Path:
    """The fake webcam: `seconds` of the 10 fps `source` as raw 640x480 yuv420p Y4M (Chromium loops it)."""
    frames = (image for _, image in zip(range(round(seconds * 10)), source_frames(source, CAMERA_SIZE, "yuv420p")))
    return write_clip(path, frames, 10, frame_format="yuv420p", codec="rawvideo", container_format="yuv4mpegpipe")


def write_sample_cut(source: Path, path: Path, seconds: float = REFERENCE_SECONDS) -> Path:
    """The sample dance the server seeds its library with, shortened: the first `seconds` of the 10 fps `source`."""
    frames = (image for _, image in zip(range(round(seconds * 10)), source_frames(source, None, "yuv420p")))
    return write_clip(path, frames, 10, frame_format="yuv420p", codec="mpeg4", bit_rate=4_000_000)


def read_y4m_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as clip:
        return [frame.to_ndarray(format="bgr24") for frame in clip.decode(video=0)]


def annotation_share(remote_bgr: np.ndarray, camera_frames: list[np.ndarray]) -> float:
    """Share of the returned frame's pixels that differ strongly from the camera frame it was made from.

    The camera frame is the clip frame closest to it; what differs beyond coding noise is what the server
    drew on it (skeletons, boxes, labels)."""

    def small(image: np.ndarray) -> np.ndarray:
        return cv2.resize(image, (160, 120), interpolation=cv2.INTER_AREA).astype(np.float32)

    target = small(remote_bgr)
    errors = [float(np.mean((small(frame) - target) ** 2)) for frame in camera_frames]
    source = camera_frames[int(np.argmin(errors))]
    diff = np.abs(remote_bgr.astype(np.int16) - source.astype(np.int16)).max(axis=2)
    return float(np.mean(diff > 80))


# ---------------------------------------------------------------------------------------------------------
# The real server


def http_json(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def server_data_dir(root: Path, sample_video: Path) -> Path:
    """A fresh data dir: the cached models (linked) and, as the sample to seed, a short cut of the real one."""
    assets.ensure(assets.MODELS)
    models = root / "models"
    models.mkdir()
    for asset in assets.MODELS:
        (models / asset.name).symlink_to(asset.path())
    samples = root / "samples"
    samples.mkdir()
    write_sample_cut(sample_video, samples / assets.SAMPLE_VIDEO.name)
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sample_video: Path) -> Iterator[Server]:
    """`python server.py` on a free port; it seeds its empty library with the sample (a 15 s cut)."""
    _require_browser()
    data_dir = server_data_dir(tmp_path_factory.mktemp("server-data"), sample_video)
    args = ["server.py", "--data-dir", str(data_dir)]
    with Server.start(args, data_dir / "server.log", timeout=SERVER_START_TIMEOUT_S) as running:
        yield running


@pytest.fixture(scope="module")
def sample_reference(server: Server) -> str:
    """The id of the sample reference, once the server has built it (transcode + keypoints)."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        jobs = http_json(f"{server.url}/api/jobs")  # before the list, so a job just done shows in the list
        if references := http_json(f"{server.url}/api/references"):
            break
        assert jobs, f"the server is not seeding the sample (or the build failed):\n{server.log_tail()}"
        assert time.monotonic() < deadline, f"seeding too slow: {jobs}"
        time.sleep(0.5)
    (reference,) = references
    assert "sample" in reference["title"].lower() and reference["ticks"] == REFERENCE_SECONDS * 10, reference
    return str(reference["id"])


@pytest.fixture(scope="module")
def camera_clip(tmp_path_factory: pytest.TempPathFactory, sample_video: Path) -> Path:
    return write_camera_clip(sample_video, tmp_path_factory.mktemp("camera") / "camera.y4m")


def run_driver(server: Server, out: Path, scenario: str, *options: str | Path) -> Any:
    """Run tests/browser/dance.mjs; its JSON result (the driver's own failure fails the test with both logs)."""
    command = ["node", str(DRIVER), "--url", f"{server.url}/", "--out", str(out), "--scenario", scenario]
    command += ["--seconds", str(DANCE_SECONDS), "--chromium", str(CHROMIUM), "--firefox", str(FIREFOX)]
    command += list(map(str, options))
    done = subprocess.run(command, cwd=DRIVER_DIR, capture_output=True, text=True, timeout=DRIVER_TIMEOUT_S)
    assert done.returncode == 0, f"driver failed:\n{done.stderr}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "failure" not in result, f"{result['failure']}\n--- driver\n{done.stderr}\n--- server\n{server.log_tail()}"
    return result


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as stream:
        header, *rows = list(csv.reader(stream))
    return header, rows


# ---------------------------------------------------------------------------------------------------------
# The tests


def test_dance_along_in_chromium(server: Server, sample_reference: str, camera_clip: Path, tmp_path: Path) -> None:
    result = run_driver(server, tmp_path, "dance", "--reference", sample_reference, "--clip", camera_clip)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    assert not [p for p in result["problems"] if p.startswith("pageerror")], result["problems"]
    assert result["dancer"]["width"] > 0 and result["dancer"]["duration"] > 0, "dancer video did not load"

    # Annotated frames arrive: the remote video has a size, its time and frame count advance.
    samples = result["samples"]
    for sample in samples:
        print(f"{sample['at']:5.1f}s dancer {sample['dancerTime']:5.2f}s remote {sample['remote']} {sample['page']}")
    assert len(samples) >= 2  # how many, and when the last: how busy the machine is
    first, last = samples[0]["remote"], samples[-1]["remote"]
    assert (last["width"], last["height"]) == CAMERA_SIZE
    assert last["currentTime"] > first["currentTime"] and last["frames"] > first["frames"]

    # The dancer video plays, and the page drives the clock from it: never backwards, then a stop. Its rate and
    # gaps are printed above; they depend on how busy the machine is.
    dancer_times = [s["dancerTime"] for s in samples]
    assert dancer_times[-1] > dancer_times[0], dancer_times
    clock = result["clock"]
    assert clock["playing"] >= 2 and clock["backwards"] == 0, clock
    assert clock["last"]["playing"] is False, clock

    # ... and they carry the skeleton: the returned frame differs from the camera frame where it is drawn.
    remote = cv2.imread(str(tmp_path / "remote-frame.png"))
    assert remote is not None and remote.shape[:2] == CAMERA_SIZE[::-1]
    assert float(remote.std()) > 20, "returned frame is blank"
    drawn = annotation_share(remote, read_y4m_frames(camera_clip))
    assert drawn > 0.002, f"only {drawn:.4%} of the returned frame is annotation"
    screenshot = cv2.imread(str(tmp_path / "dance.png"))
    assert screenshot is not None and screenshot.shape[:2] == (800, 1280) and float(screenshot.std()) > 20

    # Scores appear on the page while dancing, and the summary at the end.
    live_scores = [s["page"]["score"] for s in samples if s["page"]["score"].isdigit()]
    assert live_scores, [s["page"] for s in samples]
    assert all(0 <= int(score) <= 100 for score in live_scores)
    assert result["live"]["average"].isdigit()
    assert any(re.fullmatch(r"[a-z ]+", s["page"]["worst"]) for s in samples), "no body part named"
    summary = result["summary"]
    assert summary["average"].isdigit() and int(summary["processed"]) > 0, summary
    assert result["afterDownloads"]["error"] is None, result["afterDownloads"]

    # Both CSVs downloaded through the page.
    downloads = result["downloads"]
    assert downloads["keypoints"]["filename"].endswith("keypoints.csv")
    assert downloads["scores"]["filename"].endswith("scores.csv")
    header, rows = read_csv(Path(downloads["keypoints"]["path"]))
    assert tuple(header) == CSV_COLUMNS
    main_ticks = [int(row[0]) for row in rows if row[2] == "0"]
    assert main_ticks and len(main_ticks) == len(set(main_ticks)), "one person-0 row per processed tick"
    header, rows = read_csv(Path(downloads["scores"]["path"]))
    assert header == SCORES_HEADER
    assert len(rows) > 0 and all(0 <= float(row[2]) <= 100 for row in rows)
    assert {int(row[0]) for row in rows} <= set(main_ticks)


def test_a_keypoints_only_session_in_chromium(
    server: Server, sample_reference: str, camera_clip: Path, tmp_path: Path
) -> None:
    """The page's option: the camera is offered send-only, no video comes back, the local camera is shown and
    the user's skeleton is drawn over it from the `pose` messages; the session scores as usual."""
    result = run_driver(server, tmp_path, "keypoints", "--reference", sample_reference, "--clip", camera_clip)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    assert not [p for p in result["problems"] if p.startswith("pageerror")], result["problems"]
    assert "a=sendonly" in result["offerVideo"] and "a=sendrecv" not in result["offerVideo"]
    assert result["caption"] == "your camera, skeleton drawn here"
    dancing = [s for s in result["samples"] if s["page"]["state"] == "dancing"]
    assert dancing and all(s["video"]["local"] for s in dancing)  # the page shows its own camera
    assert any(s["overlay"]["drawn"] > 0 for s in dancing), [s["overlay"] for s in dancing]  # the skeleton
    assert result["framesBack"] == 0  # nothing decoded from the server
    assert int(result["summary"]["processed"]) > 0


def test_the_page_coaches_in_chromium(server: Server, sample_reference: str, camera_clip: Path, tmp_path: Path) -> None:
    """The dancer's skeleton over the dancer video (before and while dancing), 0.75x playback, an A-B loop whose
    seeks back to A reach the server as jumps and whose passes are each scored, and the report's uPlot charts
    once the session ends."""
    result = run_driver(server, tmp_path, "coach", "--reference", sample_reference, "--clip", camera_clip)
    print(json.dumps({k: v for k, v in result.items() if k != "coachSamples"}, indent=2))
    assert not [p for p in result["problems"] if p.startswith("pageerror")], result["problems"]
    for key in ("overlayReady", "overlayDancing"):
        overlay = result[key]
        assert overlay["width"] > 0 and overlay["drawn"] > 0, (key, overlay)  # the skeleton's pixels
    assert result["rateWhileDancing"] == 0.75 and result["coach"]["rate"] == 0.75
    loop = result["loop"]
    assert 0 <= loop["a"] < loop["b"], loop
    assert loop["jumps"], f"no seek back to A was sent: {loop}"
    for jump in loop["jumps"]:
        assert round(loop["a"], 3) <= jump["to"] < loop["b"] and jump["from"] > jump["to"], loop  # t is to the ms
    if len(loop["jumps"]) >= 2:  # a whole pass lay between them: the server scored its ticks again
        assert "Pass 2" in result["coach"]["passes"], result["coach"]
    report = result["report"]
    assert report["hidden"] is False and report["scoreCharts"] >= 1 and report["limbCharts"] >= 1, report
    tiers = r"\d+ Perfect · \d+ Good · \d+ OK · \d+ Miss|No move verdicts from this server\."
    assert re.fullmatch(tiers, report["tiers"]), report
    assert report["latency"], report
    assert all(move["lit"] > 0 for move in report["worst"]), report["worst"]
    for name in ("coach-ready", "coach-dancing", "coach-loop", "coach-report"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("scenario", "words"), [("camera-denied", "camera access was denied"), ("no-camera", "no camera")]
)
def test_camera_problems_are_explained(
    server: Server, sample_reference: str, tmp_path: Path, scenario: str, words: str
) -> None:
    result = run_driver(server, tmp_path, scenario, "--reference", sample_reference)
    page = result["afterStart"]
    assert words in (page["error"] or "").lower(), page
    assert page["state"] == "idle", "the page must be ready to try again"


MDNS_HOST = re.compile(r"^a=candidate:\S+ 1 udp \d+ [0-9a-f-]+\.local \d+ typ host", re.I)
IP_HOST = re.compile(r"^a=candidate:\S+ 1 udp \d+ [0-9a-f.:]+ \d+ typ host", re.I)


@pytest.mark.parametrize("ice", ["default", "host"])
def test_dance_along_in_firefox(server: Server, sample_reference: str, tmp_path: Path, ice: str) -> None:
    """Firefox's fake camera (a synthetic picture, no dancer in it): the session connects, annotated frames come
    back, every tick is processed and scored, and both CSVs download. "default" sends only mDNS names and
    a=end-of-candidates, which the server must still connect to; "host" sends real host addresses."""
    options = ("--reference", sample_reference, "--browser", "firefox", "--ice", ice)
    result = run_driver(server, tmp_path, "dance", *options)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    assert result["version"].startswith("firefox/"), result["version"]
    assert not [p for p in result["problems"] if p.startswith("pageerror")], result["problems"]
    candidates = result["offerCandidates"]
    assert "a=end-of-candidates" in candidates, candidates
    hosts = [line for line in candidates if re.match(r"a=candidate:\S+ 1 udp .* typ host", line, re.I)]
    expected = MDNS_HOST if ice == "default" else IP_HOST
    assert hosts and all(expected.match(line) for line in hosts), candidates

    samples = result["samples"]
    last = samples[-1]
    assert last["page"]["state"] == "dancing", last
    assert last["remote"]["width"] > 0 and result["framesBack"] > 0, "no annotated frame came back"
    summary = result["summary"]
    assert int(summary["processed"]) > 0, summary
    assert result["afterDownloads"]["error"] is None, result["afterDownloads"]

    downloads = result["downloads"]
    assert downloads["keypoints"]["filename"].endswith("keypoints.csv"), downloads
    assert downloads["scores"]["filename"].endswith("scores.csv"), downloads
    header, keypoints = read_csv(Path(downloads["keypoints"]["path"]))
    assert tuple(header) == CSV_COLUMNS
    print(f"firefox/{ice}: {len(keypoints)} keypoint rows")
    header, scores = read_csv(Path(downloads["scores"]["path"]))
    assert header == SCORES_HEADER
    ticks = {int(row[0]) for row in scores}
    # The summary shows the last stats message (every second), the CSV every tick the session finished: on a busy
    # machine the analysis in flight at the end is in the CSV only.
    assert len(ticks) == len(scores) >= int(summary["processed"]) > 0, (len(scores), summary)
    for name in ("ready", "dance", "annotated", "summary"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0


@pytest.mark.parametrize("browser", ["chromium", "firefox"])
def test_upload_through_the_page(
    server: Server, sample_reference: str, sample_video: Path, tmp_path: Path, browser: str
) -> None:
    bad = tmp_path / "holiday.mp4"
    bad.write_text("not a video at all\n")
    clip = write_sample_cut(sample_video, tmp_path / "short-dance.avi", seconds=3)
    options = ("--upload-file", clip, "--bad-file", bad, "--browser", browser)
    result = run_driver(server, tmp_path, "upload", *options)

    rejected = result["rejected"]["error"] or ""
    assert rejected.startswith("Upload failed") and "not a readable video" in rejected, rejected
    labels = result["progressLabels"]
    assert any(label.startswith(("Uploading", "Extracting", "Waiting")) for label in labels), labels
    assert labels[-1].startswith("Added"), (labels, result["uploaded"])
    assert result["uploaded"]["error"] is None
    selected = result["selected"]
    listed = {ref["id"]: ref for ref in http_json(f"{server.url}/api/references")}  # earlier tests' uploads too
    assert selected["count"] == len(listed) and selected["label"].startswith("Uploaded in the browser test"), selected
    assert listed[selected["value"]]["ticks"] == 30
    assert result["poseOptions"][0] == DEFAULT_BACKEND and sorted(result["poseOptions"]) == sorted(BACKEND_NAMES)
    assert listed[selected["value"]]["pose"] == "movenet-thunder" and "movenet-thunder" in selected["label"]
