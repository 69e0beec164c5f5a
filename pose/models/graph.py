"""A frozen TensorFlow 1.x graph (.pb) run through tf.compat.v1 on TensorFlow 2."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np

from pose.models import tf as tensorflow

GraphDef = Any  # tf.compat.v1.GraphDef, which has no usable static type
_loading_threads: ContextVar[int | None] = ContextVar("loading_threads", default=None)


@contextmanager
def graph_threads(threads: int | None) -> Iterator[None]:
    """TensorFlow's intra-op threads for graphs loaded inside the block, in this thread only (None: one per CPU):
    a server loads its live sessions' models at one thread beside exact-build models at one per CPU, and batch
    workers that share a machine load theirs at their share of the cores."""
    token = _loading_threads.set(threads)
    try:
        yield
    finally:
        _loading_threads.reset(token)


class FrozenGraph:
    """Loads a GraphDef once and runs it in its own session; `run` is safe to call from several threads.

    Each session has its own threads (`threads` intra-op, one inter-op; see `pose.models.tf`), so two graphs run
    side by side: live sessions' runs, and a session's pose run beside the background detector's.

    source: a .pb file, or a GraphDef already built in memory (a converted TF.js model).
    """

    def __init__(self, source: Path | GraphDef, threads: int | None = None) -> None:
        tf = tensorflow.load()
        graph_def = source if isinstance(source, tf.compat.v1.GraphDef) else _read_graph_def(Path(source))
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.import_graph_def(graph_def, name="")
        self.threads = threads or _loading_threads.get() or os.cpu_count() or 1
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=self.threads, inter_op_parallelism_threads=1, use_per_session_threads=True
        )
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)

    def run(self, outputs: Sequence[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        result: list[np.ndarray] = self.session.run(list(outputs), feed_dict=feed)
        return result

    def close(self) -> None:
        self.session.close()


def _read_graph_def(path: Path) -> GraphDef:
    graph_def = tensorflow.load().compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except Exception as exc:  # protobuf raises its own DecodeError
        raise ValueError(f"{path} is not a TensorFlow GraphDef: {exc}") from exc
    return graph_def
