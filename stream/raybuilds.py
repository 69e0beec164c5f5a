"""Reference builds' extraction on a Ray cluster (`server.py --ray auto|ADDRESS`).

A build still transcodes the upload and publishes the reference on the server (`ReferenceLibrary.build`); its
keypoint extraction, the slow part, is split into tick ranges run by one-CPU actors across the cluster
(`pose.batch_ray.RayPool`, as many as the cluster has CPUs) and joined exactly on the server
(`pose.batch.extract_to`), so the CSV is byte for byte the one a build in the server's own process writes. The
actors are made for each build and killed after it, so the cluster's CPUs are free between builds.

A worker process lost mid-range (killed, out of memory, its node gone) is restarted by Ray and its range retried
(`pose.batch_ray.RESTARTS`); if the cluster cannot finish the build, the job fails like any other build. Either
way the reference appears only complete (the build folder is renamed into the library at its end).

The cluster's nodes must see the server's data dir (the video being built and the models) at the same path (a
shared filesystem) and have dancesync installed. Workers run TensorFlow with this machine's CPU count as their
intra-op threads: TensorFlow's sums depend on it in the last digits, so the CSV then equals a local build's.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pose.batch import ModelChoice, extract_to, range_seconds, split_ticks
from pose.pipeline import Progress, video_ticks
from pose.ticks import detector_every


@dataclass(frozen=True)
class RayExtraction:
    """Extraction with one pose backend on the connected cluster (what `ReferenceLibrary.build` calls)."""

    pose: str
    choice: ModelChoice

    def extract(
        self,
        video: Path,
        fps: float,
        out_csv: Path,
        progress: Progress,
        checkpoint: Callable[[], None],
        mirrored: bool = False,
    ) -> int:
        """Write `out_csv` (atomically) from ranges of `video` run on the cluster (mirrored: the models' second
        look); the ticks written."""
        from pose.batch_ray import RayPool, cluster_cpus
        from pose.media.video import probe_video

        total = video_ticks(video, fps)
        range_s = range_seconds(float(probe_video(video).duration_s), cluster_cpus())
        ranges = len(split_ticks(total, detector_every(fps), max(1, round(range_s * fps))))
        pool = RayPool(max(1, min(cluster_cpus(), ranges)), self.choice)
        try:
            done = extract_to(
                {video: out_csv}, fps, pool, range_s, progress=progress, checkpoint=checkpoint, mirrored=mirrored
            )
        finally:
            pool.close()
        return done[0].ticks


class RayBuilds:
    """The server's connection to the cluster at `address`, and the extraction for each backend (`__call__`)."""

    def __init__(self, address: str, data_dir: Path, pose_size: tuple[int, int] | None = None) -> None:
        self.address = address
        self.data_dir = data_dir
        self.pose_size = pose_size
        self._owned = False
        self._lock = threading.Lock()

    def connect(self) -> None:
        """Join the cluster (blocking; at start-up, so a wrong address fails the start with Ray's reason)."""
        from pose.batch_ray import connect

        with self._lock:
            self._owned = connect(self.address) or self._owned

    def __call__(self, pose: str) -> RayExtraction:
        choice = ModelChoice(self.data_dir, pose, self.pose_size, os.cpu_count())
        return RayExtraction(pose, choice)

    def close(self) -> None:
        """Leave the cluster if `connect` joined it (a cluster started for this process stops with it)."""
        import ray

        with self._lock:
            if self._owned:
                ray.shutdown()
                self._owned = False
