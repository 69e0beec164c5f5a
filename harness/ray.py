"""A real local Ray cluster for tests and benchmarks: `ray start --head` on loopback, in a temporary directory.

The cluster's processes are the head's descendants (GCS, raylet, and the workers, which Ray puts in sessions of
their own); stopping it signals exactly those pids, so no other Ray on the machine is touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Cluster:
    address: str  # host:port of the GCS, for ray.init(address=...) and --ray
    head: int  # pid of `ray start`

    def processes(self, title: str = "") -> list[int]:
        """Pids of this cluster's processes whose command line (Ray's process title) starts with `title`."""
        found = []
        for pid in descendants(self.head):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmdline.startswith(title):
                found.append(pid)
        return found


def descendants(root: int) -> list[int]:
    """Pids of every live process below `root` (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def local_cluster(num_cpus: int = 2) -> Iterator[Cluster]:
    """A head node with `num_cpus` CPUs, no dashboard; stopped (its whole process group) on exit."""
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths must fit in 107 bytes
    port = _free_port()
    ray = Path(sys.executable).with_name("ray")
    command = [
        *(str(ray), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1"),
        *(f"--num-cpus={num_cpus}", f"--temp-dir={temp}", "--include-dashboard=false", "--disable-usage-stats"),
    ]
    log = (temp / "start.log").open("wb")
    head = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    cluster = Cluster(f"127.0.0.1:{port}", head.pid)
    try:
        _wait_for_port(port, head, temp / "start.log")
        yield cluster
    finally:
        _stop(cluster, head)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for_port(port: int, head: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start exited with {head.returncode}: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.5)
            continue
        if "Ray runtime started" in log.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise RuntimeError(f"the Ray head did not start within {START_TIMEOUT_S:.0f} s: {log.read_text()[-2000:]}")


def _stop(cluster: Cluster, head: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the head and its descendants, then SIGKILL to whatever is left after a grace period."""
    pids = {head.pid, *cluster.processes()}
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            head.poll()  # reap the head
            pids = {pid for pid in pids if _alive(pid)}
            if not pids:
                return
            time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
