"""The server for tests and benchmarks: as its own process (`ServerProcess`), or in this process on a loopback
port (`AppServer`), with test settings (`settings_for`)."""

from __future__ import annotations

import dataclasses
import math
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from pose.pipeline import FrameAnalyzer, ModelCatalog, Models
from server import Settings, create_app
from stream.limits import Rate
from stream.session import Analyzer

ROOT = Path(__file__).resolve().parent.parent
UNLIMITED = Rate(burst=100_000, per_minute=1e6)
START_TIMEOUT_S = 180.0  # loading TensorFlow and the models on a busy machine


def settings_for(data_dir: Path, **overrides: Any) -> Settings:
    """Test settings: no seeding unless asked, two live workers as on the target machine, no rate limits and no
    admission by measured load (a figure of the machine, not of the test; the tests of each set their own)."""
    settings = Settings(data_dir=data_dir, seed_video=None, live_workers=2, admit_load=math.inf)
    unlimited = {"offer_rate": UNLIMITED, "upload_rate": UNLIMITED, "analyze_rate": UNLIMITED}
    return dataclasses.replace(settings, **{**unlimited, **overrides})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A server process on a loopback port (`url`), its output in `log`."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(
        cls,
        args: Sequence[str],
        log: Path,
        name: str = "server",
        timeout: float = START_TIMEOUT_S,
        port: int | None = None,
    ) -> ServerProcess:
        """Run `python ARGS --host 127.0.0.1 --port PORT` (default a free one) from the repository's root (ARGS
        e.g. ["server.py", "--data-dir", d] or ["-m", "bench.echo"]) and return once `GET /api/references`
        answers. RuntimeError, with the end of the log, when it exits or is not up within `timeout` s. The log is
        appended to (a restarted server keeps its earlier output)."""
        port = port or free_port()
        command = [sys.executable, *args, "--host", "127.0.0.1", "--port", str(port)]
        with log.open("ab") as sink:
            process = subprocess.Popen(command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
        running = cls(name, f"http://127.0.0.1:{port}", process, log)
        try:
            running._wait_until_up(timeout)
        except BaseException:
            running.stop()
            raise
        return running

    def _wait_until_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/references", timeout=5) as response:
                    response.read()
                return
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} not up after {timeout:g} s:\n{self.log_tail()}") from None
                time.sleep(0.5)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then SIGKILL after `timeout` s; the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AppServer:
    """`create_app(settings, models, analyzer)` in this process on a free loopback port (`url`), as a context."""

    def __init__(
        self,
        settings: Settings,
        models: Models | ModelCatalog,
        analyzer: Callable[[Models], Analyzer] = FrameAnalyzer,
    ) -> None:
        self.app = create_app(settings, models, analyzer)
        self.runner = web.AppRunner(self.app, access_log=None)

    async def __aenter__(self) -> AppServer:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()
