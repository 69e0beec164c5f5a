"""Reference builds through the real server with `--ray`: extraction on a real local Ray cluster (a head and one
worker node), the CSV byte for byte a local build's although a worker process is killed mid-build; a restart
mid-build.

Real models on real footage: 4 s of the sample at F=10 (40 ticks), split into 1 s ranges across the 2 workers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harness.clips import cut_clip
from harness.ray import Cluster
from harness.server import AppServer, ServerProcess, settings_for
from pose.calibration import SECOND_LOOK_NAME
from pose.pipeline import Models, extract_video
from server import JOBS, Settings, build_parser
from stream.references import CSV_NAME, VIDEO_NAME

pytest_plugins = ("tests.ray_fixtures",)

FPS = 10.0
BUSY = "ray::_RangeExtractor.extract"  # Ray's process title of an actor running a range


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory, sample_video: Path) -> Path:
    return cut_clip(sample_video, tmp_path_factory.mktemp("raybuilds") / "short.mp4", 40)


def ray_settings(data_dir: Path, cluster: Cluster) -> Settings:
    """The server's data dir, with the models the workers load (nodes see the data dir at the same path)."""
    from pose import assets

    data_dir.mkdir(exist_ok=True)
    (data_dir / "models").symlink_to(assets.DATA_DIR / "models")
    return settings_for(data_dir, ray_address=cluster.address, database_url=f"sqlite:///{data_dir / 'db.sqlite'}")


async def upload(http: aiohttp.ClientSession, url: str, video: Path, title: str) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("video", video.read_bytes(), filename=video.name, content_type="video/mp4")
    form.add_field("title", title)
    form.add_field("fps", str(FPS))
    async with http.post(f"{url}/api/references", data=form) as response:
        assert response.status == 202, await response.text()
        return dict(await response.json())


async def finished(http: aiohttp.ClientSession, url: str, job: str, timeout: float = 600) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        async with http.get(f"{url}/api/jobs/{job}") as response:
            status = dict(await response.json())
        if status["state"] in ("done", "failed"):
            return status
        await asyncio.sleep(0.2)
    pytest.fail(f"job {job} not finished after {timeout} s: {status}")


def local_csv(folder: Path, models: Models, out: Path, mirrored: bool = False) -> bytes:
    """What a build in the server's own process extracts from the reference's video (mirrored: its second look)."""
    extract_video(folder / VIDEO_NAME, FPS, out, models, mirrored=mirrored)
    return out.read_bytes()


def published(references: Path) -> list[str]:
    return sorted(p.name for p in references.iterdir() if not p.name.startswith("."))


def test_the_ray_option() -> None:
    assert build_parser().parse_args(["--ray", "auto"]).ray == "auto"
    assert build_parser().parse_args([]).ray is None and Settings().ray_address is None


def test_a_server_on_ray_still_shuts_down_cleanly_on_sigterm(tmp_path: Path, ray_cluster: Cluster) -> None:
    """Ray's driver would turn SIGTERM into an abort; the server keeps its own graceful shutdown."""
    data_dir = ray_settings(tmp_path / "data", ray_cluster).data_dir
    command = ["server.py", "--data-dir", str(data_dir), "--no-seed", "--ray", ray_cluster.address]
    with ServerProcess.start(command, tmp_path / "server.log") as server:
        assert server.stop() == 0, server.log_tail()
    assert "reference builds extract on the Ray cluster" in server.log.read_text()


async def test_a_build_on_ray_equals_a_local_build_with_a_worker_killed_mid_range(
    tmp_path: Path, short: Path, models: Models, ray_cluster: Cluster
) -> None:
    """The killed worker's range is retried (its actor restarted); the reference appears only once complete."""
    settings = ray_settings(tmp_path / "data", ray_cluster)
    killed: list[int] = []
    published_at_kill: list[list[str]] = []
    stop = threading.Event()

    def kill_one_busy_worker() -> None:
        while not stop.is_set():
            busy = ray_cluster.processes(BUSY)
            if busy:
                published_at_kill.append(published(settings.references_dir))
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_busy_worker)
    async with AppServer(settings, models) as server, aiohttp.ClientSession() as http:
        killer.start()
        try:
            job = await upload(http, server.url, short, "killed worker")
            status = await finished(http, server.url, job["job"])
        finally:
            stop.set()
            killer.join()
    assert len(killed) == 1, "no worker was caught mid-range"
    assert published_at_kill == [[]], "the reference may appear only complete"
    expected = {"state": "done", "progress": 1.0, "error": None, "reference": job["id"], "pose": models.pose.name}
    assert status == expected
    assert published(settings.references_dir) == [job["id"]]
    folder = settings.references_dir / job["id"]
    assert (folder / CSV_NAME).read_bytes() == local_csv(folder, models, tmp_path / "local.csv")
    second = local_csv(folder, models, tmp_path / "second.csv", mirrored=True)
    assert (folder / SECOND_LOOK_NAME).read_bytes() == second


async def test_a_build_on_ray_stopped_by_a_restart_is_built_at_the_next_start(
    tmp_path: Path, short: Path, models: Models, ray_cluster: Cluster
) -> None:
    """The server stops while the build's ranges run on the cluster; the next start builds it from the start."""
    settings = ray_settings(tmp_path / "data", ray_cluster)
    async with AppServer(settings, models) as server, aiohttp.ClientSession() as http:
        job = await upload(http, server.url, short, "restarted")
        deadline = time.monotonic() + 300
        while not ray_cluster.processes(BUSY):  # the build is extracting on the cluster
            assert time.monotonic() < deadline, "no range started on the cluster"
            await asyncio.sleep(0.05)
        assert [(j.id, str(j.state)) for j in server.app[JOBS].pending()] == [(job["job"], "running")]
    assert published(settings.references_dir) == []
    async with AppServer(settings, models) as server, aiohttp.ClientSession() as http:
        status = await finished(http, server.url, job["job"])
    assert (status["state"], status["reference"]) == ("done", job["id"])
    assert published(settings.references_dir) == [job["id"]]
    folder = settings.references_dir / job["id"]
    assert (folder / CSV_NAME).read_bytes() == local_csv(folder, models, tmp_path / "local.csv")
