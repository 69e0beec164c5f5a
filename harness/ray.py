"""A real local Ray cluster for tests and benchmarks: `ray start --head` on loopback, in a temporary directory,
and worker nodes (`ray start --address`) beside it.

The cluster's processes are the descendants of those `ray start` processes (GCS, raylets, and the workers, which
Ray puts in sessions of their own); stopping it signals exactly those pids, so no other Ray on the machine is
touched. The nodes import this checkout first (PYTHONPATH), as the process that starts them does.
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


ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Cluster:
    address: str  # host:port of the GCS, for ray.init(address=...) and --ray
    head: int  # pid of the head's `ray start`
    nodes: tuple[int, ...] = ()  # pids of the worker nodes' `ray start`

    def processes(self, title: str = "") -> list[int]:
        """Pids of this cluster's processes whose command line (Ray's process title) starts with `title`."""
        found = []
        for pid in (p for root in (self.head, *self.nodes) for p in descendants(root)):
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
def local_cluster(num_cpus: int = 2, worker_nodes: int = 0) -> Iterator[Cluster]:
    """A head node and `worker_nodes` worker nodes, no dashboard; stopped (every process of it) on exit.

    With worker nodes, each has `num_cpus` CPUs and the head none (it runs the cluster's services only, so every
    task lands on a worker node); without, the head has `num_cpus`.
    """
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths must fit in 107 bytes
    port = _free_port()
    ray = Path(sys.executable).with_name("ray")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    common = ["--block", "--node-ip-address=127.0.0.1", f"--temp-dir={temp}", "--disable-usage-stats"]
    head_cpus = 0 if worker_nodes else num_cpus
    head_command = [str(ray), "start", "--head", f"--port={port}", f"--num-cpus={head_cpus}", *common]
    starts: list[subprocess.Popen[bytes]] = []

    def start(command: list[str], name: str) -> subprocess.Popen[bytes]:
        with (temp / f"{name}.log").open("wb") as sink:
            starts.append(subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env))
        return starts[-1]

    head = start([*head_command, "--include-dashboard=false"], "head")
    cluster = Cluster(f"127.0.0.1:{port}", head.pid)
    try:
        _wait_for_port(port, head, temp / "head.log")
        for i in range(worker_nodes):
            node_command = [str(ray), "start", f"--address={cluster.address}", f"--num-cpus={num_cpus}", *common]
            node = start(node_command, f"node{i}")
            cluster = Cluster(cluster.address, head.pid, (*cluster.nodes, node.pid))
            _wait_for_log(node, temp / f"node{i}.log")
        yield cluster
    finally:
        _stop(cluster, starts)
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
        _wait_for_log(head, log)
        return
    raise RuntimeError(f"the Ray head did not start within {START_TIMEOUT_S:.0f} s: {log.read_text()[-2000:]}")


def _wait_for_log(node: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while "Ray runtime started" not in log.read_text(errors="replace"):
        if node.poll() is not None:
            raise RuntimeError(f"ray start exited with {node.returncode}: {log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"a Ray node did not start within {START_TIMEOUT_S:.0f} s: {log.read_text()[-2000:]}")
        time.sleep(0.5)


def _stop(cluster: Cluster, starts: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to the `ray start` processes and their descendants, then SIGKILL to whatever is left after a grace
    period."""
    pids = {*(p.pid for p in starts), *cluster.processes()}
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            for start in starts:
                start.poll()  # reap
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
