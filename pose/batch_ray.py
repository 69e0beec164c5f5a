"""`pose.batch` on a Ray cluster: one actor per worker, holding the models, fed ranges as they become free.

An actor whose process dies (killed, out of memory, its node lost) is restarted by Ray, which loads the models
again, and the range it was running is retried on it (`max_restarts`, `max_task_retries`): ranges are pure
functions of the video, so a retried range gives the same result. Nodes must see the videos and the model
cache at the same paths (a shared filesystem), and have dancesync installed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from pose.batch import CHECK_INTERVAL_S, Checkpoint, ModelChoice, RangeResult, RangeTask, extract_range

RESTARTS = 3  # per actor: a range that keeps killing its worker fails the run rather than looping


def connect(address: str = "auto") -> bool:
    """Join the Ray cluster at `address` as a driver, unless this process already has; True when this call
    connected (the caller then owns `ray.shutdown`).

    "auto": the cluster this machine runs (`ray start`, or RAY_ADDRESS), else a new one in this process for its
    lifetime; otherwise host:port of a head, or ray://host:port (Ray Client). ConnectionError when there is none.
    """
    # Ray's driver would otherwise install a fatal-signal handler that turns SIGTERM into an abort, taking away
    # the server's own SIGTERM handling (a graceful shutdown). Read when Ray is imported: set it before.
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    import ray

    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, log_to_driver=False)
    except ConnectionError:
        if address != "auto":
            raise
        ray.init(log_to_driver=False, include_dashboard=False)  # no cluster here: start one for this process
    return True


def cluster_cpus() -> int:
    """The CPUs of the connected cluster (at least 1)."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


class _RangeExtractor:
    def __init__(self, choice: ModelChoice) -> None:
        self._models = choice.load()

    def extract(self, task: RangeTask) -> RangeResult:
        return extract_range(self._models, task)


class RayPool:
    """`workers` actors of one CPU each on the cluster this process is connected to (`connect`; called here
    with `address` when it is not yet)."""

    def __init__(self, workers: int, choice: ModelChoice, address: str = "auto") -> None:
        import ray

        connect(address)
        actor = ray.remote(num_cpus=1, max_restarts=RESTARTS, max_task_retries=RESTARTS)(_RangeExtractor)
        self.workers = workers
        self._actors: list[Any] = [actor.remote(choice) for _ in range(workers)]

    def run(self, tasks: list[RangeTask], checkpoint: Checkpoint | None = None) -> Iterator[RangeResult]:
        import ray

        todo = list(reversed(tasks))
        running: dict[Any, Any] = {}  # result ref -> actor; what is left running when this stops, `close` kills
        idle = list(self._actors)
        while todo or running:
            while todo and idle:
                actor = idle.pop()
                running[actor.extract.remote(todo.pop())] = actor
            done, _ = ray.wait(list(running), num_returns=1, timeout=CHECK_INTERVAL_S)
            for ref in done:
                idle.append(running.pop(ref))
                yield ray.get(ref)
            if checkpoint:
                checkpoint()

    def close(self) -> None:
        import ray

        for actor in self._actors:
            ray.kill(actor)
