"""A real local Ray cluster for the tests (used via `pytest_plugins`), started once per test run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.ray import Cluster, local_cluster


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Cluster]:
    """A head and one worker node with 2 CPUs (where every task runs), this process their driver."""
    import ray

    with local_cluster(num_cpus=2, worker_nodes=1) as cluster:
        ray.init(address=cluster.address, log_to_driver=False)
        try:
            yield cluster
        finally:
            ray.shutdown()
