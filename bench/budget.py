"""A CPU budget for a benchmarked process: its own cgroup with a CFS quota (cgroup v1 `cpu`, or v2 `cpu.max`).

`bench.scale --budget CORES` gives every server process the same budget, so that one server and two behind the
balancer are compared on equal CPU per server on one machine, with the clients outside any budget. Needs write
access to the cgroup file system (root in a container); without it `CpuBudget` refuses with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

PERIOD_US = 100_000
V1 = Path("/sys/fs/cgroup/cpu")
V2 = Path("/sys/fs/cgroup")


class BudgetUnavailable(RuntimeError):
    """This machine does not let the benchmark make a cgroup with a CPU quota."""


class CpuBudget:
    """A new cgroup limited to `cores` CPUs' worth of time per period; `add` moves a process (all its threads,
    and those it starts later) into it. A context manager: on exit the cgroup is removed once its processes
    have ended."""

    def __init__(self, name: str, cores: float) -> None:
        if cores <= 0:
            raise ValueError(f"a CPU budget must be positive, got {cores}")
        self.cores = cores
        quota = max(1000, round(cores * PERIOD_US))
        try:
            if (V1 / "cpu.cfs_quota_us").exists():
                self.path = V1 / f"{name}-{os.getpid()}"
                self.path.mkdir()
                (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (self.path / "cpu.cfs_quota_us").write_text(str(quota))
            elif "cpu" in (V2 / "cgroup.controllers").read_text().split():
                self.path = V2 / f"{name}-{os.getpid()}"
                self.path.mkdir()
                (self.path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            else:
                raise BudgetUnavailable("no cgroup CPU controller is mounted")
        except OSError as exc:
            raise BudgetUnavailable(f"cannot make a cgroup with a CPU quota: {exc}") from exc

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def throttled_s(self) -> float:
        """Time the group's processes were held back by the quota so far (s)."""
        stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines() if " " in line)
        if "throttled_time" in stat:  # v1: ns
            return int(stat["throttled_time"]) / 1e9
        return int(stat.get("throttled_usec", 0)) / 1e6

    def close(self) -> None:
        try:
            self.path.rmdir()
        except OSError:
            pass  # a process is still in it: the kernel keeps the group until it is empty and removed

    def __enter__(self) -> CpuBudget:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
