"""`pose.batch` on a Ray cluster: one actor per worker, holding the models, fed ranges by an ActorPool.

An actor whose process dies (killed, out of memory, its node lost) is restarted by Ray, which loads the models
again, and the range it was running is retried on it (`max_restarts`, `max_task_retries`): ranges are pure
functions of the video, so a retried range gives the same result. Nodes must see the videos and the model
cache at the same paths (a shared filesystem), and have dancesync installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pose.batch import ModelChoice, RangeResult, RangeTask, extract_range

RESTARTS = 3  # per actor: a range that keeps killing its worker fails the run rather than looping


class _RangeExtractor:
    def __init__(self, choice: ModelChoice) -> None:
        self._models = choice.load()

    def extract(self, task: RangeTask) -> RangeResult:
        return extract_range(self._models, task)


class RayPool:
    """`workers` actors of one CPU each on the cluster at `address` ("auto": the one this machine runs, or a
    new local one when there is none; else host:port or ray://host:port)."""

    def __init__(self, workers: int, choice: ModelChoice, address: str = "auto") -> None:
        import ray
        from ray.util import ActorPool

        if not ray.is_initialized():
            try:
                ray.init(address=address, log_to_driver=False)
            except ConnectionError:
                if address != "auto":
                    raise
                ray.init(log_to_driver=False, include_dashboard=False)  # no cluster here: start one for this run
        actor = ray.remote(num_cpus=1, max_restarts=RESTARTS, max_task_retries=RESTARTS)(_RangeExtractor)
        self.workers = workers
        self._actors: list[Any] = [actor.remote(choice) for _ in range(workers)]
        self._pool = ActorPool(self._actors)

    def run(self, tasks: list[RangeTask]) -> Iterator[RangeResult]:
        def submit(actor: Any, task: RangeTask) -> Any:
            return actor.extract.remote(task)

        yield from self._pool.map_unordered(submit, tasks)

    def close(self) -> None:
        import ray

        for actor in self._actors:
            ray.kill(actor)
