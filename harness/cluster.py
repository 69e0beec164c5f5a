"""A cluster on one machine, for tests and benchmarks: a throw-away PostgreSQL (harness.postgres), any number of
`server.py` processes on that database and one shared data folder, and HAProxy in front with deploy/haproxy.cfg
(its `bind` and `server` lines pointed at free loopback ports). Everything listens on 127.0.0.1; `Cluster.stop`
ends every process it started, by its own handle.

    with Cluster.start(data_dir, work_dir, servers=2) as cluster:
        cluster.url             # the balancer
        cluster.servers[0].url  # one server, directly
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.postgres import Postgres
from harness.server import ROOT, START_TIMEOUT_S, ServerProcess, free_port

CONFIG = ROOT / "deploy" / "haproxy.cfg"
UP_TIMEOUT_S = 60.0


class HaproxyUnavailable(RuntimeError):
    """HAProxy is not installed (run scripts/install-deploy.sh)."""


def haproxy_bin() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").is_file() else None)
    if found is None:
        raise HaproxyUnavailable("HAProxy is not installed: bash scripts/install-deploy.sh")
    return found


def haproxy_config(template: str, port: int, stats_port: int, servers: Sequence[int]) -> str:
    """`template` (deploy/haproxy.cfg) with its frontend on 127.0.0.1:`port`, its stats on `stats_port`, and each
    backend's `server` lines replaced by one line per port of `servers` (named s1, s2, ...)."""
    out: list[str] = []
    binds = iter((port, stats_port))
    in_backend = False
    for line in template.splitlines():
        stripped = line.strip()
        if stripped.startswith(("frontend ", "backend ", "listen ", "defaults", "global")):
            in_backend = stripped.startswith("backend ")
        if stripped.startswith("bind "):
            line = re.sub(r"bind \S+", f"bind 127.0.0.1:{next(binds)}", line)
        elif in_backend and stripped.startswith("server "):
            if not stripped.startswith("server s1 "):
                continue
            indent = line[: len(line) - len(line.lstrip())]
            out += [f"{indent}server s{i} 127.0.0.1:{p}" for i, p in enumerate(servers, 1)]
            continue
        out.append(line)
    return "\n".join(out) + "\n"


@dataclass
class Balancer:
    """HAProxy on `url`, its stats page on `stats_url`, its output in `log`."""

    url: str
    stats_url: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, servers: Sequence[int], folder: Path) -> Balancer:
        port, stats_port = free_port(), free_port()
        config = folder / "haproxy.cfg"
        config.write_text(haproxy_config(CONFIG.read_text(), port, stats_port, servers))
        log = folder / "haproxy.log"
        with log.open("ab") as sink:
            command = [haproxy_bin(), "-db", "-f", str(config)]
            process = subprocess.Popen(command, cwd=folder, stdout=sink, stderr=subprocess.STDOUT)
        return cls(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{stats_port}", process, log)

    def states(self) -> dict[tuple[str, str], str]:
        """(backend, server) → HAProxy's status of it ("UP", "DOWN", ...), from the stats page's CSV."""
        with urllib.request.urlopen(f"{self.stats_url}/;csv", timeout=5) as response:
            rows = response.read().decode().lstrip("# ").splitlines()
        header = rows[0].split(",")
        found = {}
        for row in rows[1:]:
            cells = dict(zip(header, row.split(","), strict=False))
            if cells.get("svname") not in ("FRONTEND", "BACKEND", None):
                found[(cells["pxname"], cells["svname"])] = cells["status"]
        return found

    def wait_for(self, backend: str, server: str, status: str, timeout: float = UP_TIMEOUT_S) -> None:
        """Until HAProxy sees `server` of `backend` as `status` (its health checks run every second or two)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.process.returncode}:\n{self.log.read_text()[-2000:]}")
            try:
                if self.states().get((backend, server), "").startswith(status):
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"haproxy: {backend}/{server} not {status} after {timeout:g} s: {self.states()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Cluster:
    """PostgreSQL, `servers` on one database and `data_dir`, and the balancer (`url`) in front of them."""

    data_dir: Path
    work_dir: Path
    postgres: Postgres
    ports: list[int]
    server_args: list[str]
    servers: list[ServerProcess] = field(default_factory=list)
    balancer: Balancer | None = None

    @classmethod
    def start(cls, data_dir: Path, work_dir: Path, servers: int = 2, server_args: Sequence[str] = ()) -> Cluster:
        """Start it all (`server_args`: more options for every server, e.g. ["--max-sessions", "2"]); returns
        once every server answers and HAProxy sees each one up in both backends."""
        work_dir.mkdir(parents=True, exist_ok=True)
        cluster = cls(data_dir, work_dir, Postgres.start(), [free_port() for _ in range(servers)], list(server_args))
        try:
            for index in range(servers):
                cluster.start_server(index)
            cluster.balancer = Balancer.start(cluster.ports, work_dir)
            for index in range(servers):
                cluster.wait_up(index)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @property
    def url(self) -> str:
        assert self.balancer is not None
        return self.balancer.url

    @property
    def database_url(self) -> str:
        return self.postgres.url

    def start_server(self, index: int) -> ServerProcess:
        """Start server `index` (again) on its own port; its log is `work_dir`/server-<index>.log."""
        args = ["server.py", "--data-dir", str(self.data_dir), "--database", self.postgres.url, "--no-seed"]
        log = self.work_dir / f"server-{index}.log"
        server = ServerProcess.start(
            [*args, *self.server_args], log, f"server {index}", START_TIMEOUT_S, self.ports[index]
        )
        if index < len(self.servers):
            self.servers[index] = server
        else:
            self.servers.append(server)
        return server

    def wait_up(self, index: int, backends: Sequence[str] = ("offers", "api")) -> None:
        """Until the balancer sees server `index` up in `backends`."""
        assert self.balancer is not None
        for backend in backends:
            self.balancer.wait_for(backend, f"s{index + 1}", "UP")

    def stop(self) -> None:
        """Stop the balancer, every server (SIGTERM, then SIGKILL) and PostgreSQL."""
        if self.balancer is not None:
            self.balancer.stop()
        for server in self.servers:
            server.stop(timeout=10)
        self.postgres.stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
