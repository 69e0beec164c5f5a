"""The page's "Score a recording" panel in Debian's headless Chromium against the real server: a reference with a
real song (tests/test_takes.py's media), a recording of it sent through the page, then the summary, the report
and the profile's past sessions as after a live session (`tests/browser/take.mjs`, screenshots of each step)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.server import ServerProcess
from harness.takes import footage_with_sound, room_recording, song_excerpt
from pose import assets
from pose.pipeline import Models
from stream.references import ReferenceLibrary, new_id

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
DRIVER_DIR = ROOT / "tests" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
DRIVER_TIMEOUT_S = 900.0


def test_a_recording_is_scored_from_the_page(tmp_path: Path, sample_video: Path, models: Models) -> None:
    if not (shutil.which("node") and CHROMIUM.exists() and (DRIVER_DIR / "node_modules" / "playwright-core").is_dir()):
        message = "the take page test needs node, Chromium and playwright-core: run scripts/install-browser.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    assets.ensure((assets.SAMPLE_MUSIC,))
    song = song_excerpt(assets.SAMPLE_MUSIC.path(), tmp_path / "song.wav", 3.0, 12.0)
    reference = footage_with_sound(sample_video, tmp_path / "reference.mp4", 120, song)
    take_sound = room_recording(song, tmp_path / "take.wav", 0.437, 48000, 12.0)
    take = footage_with_sound(sample_video, tmp_path / "take.mp4", 120, take_sound, crf=28)
    data_dir = tmp_path / "data"
    ReferenceLibrary(data_dir / "references").build(new_id(), reference, "with music", 10.0, models)
    (data_dir / "models").symlink_to(assets.DATA_DIR.resolve() / "models")
    args = ["server.py", "--data-dir", str(data_dir), "--no-seed"]
    with ServerProcess.start(args, tmp_path / "server.log") as server:
        command = ["node", "take.mjs", "--url", f"{server.url}/", "--take", str(take), "--out", str(tmp_path)]
        done = subprocess.run(command, cwd=DRIVER_DIR, capture_output=True, text=True, timeout=DRIVER_TIMEOUT_S)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert "failure" not in result, f"{result}\n--- server\n{server.log_tail()}"
    print(json.dumps(result, indent=2))
    assert result["problems"] == []
    assert result["error"] is None
    assert result["label"].startswith("Scored: the song starts 0.44 s into your recording")
    assert result["download"] and result["summaryOpen"]
    assert result["processed"] == "116"  # ticks 0..115: k / 10 + 0.437 inside the 12 s recording
    assert result["tiers"].endswith("Miss") and result["charts"] == 2 and result["worst"] == 3
    assert result["pastSessions"] == 1
