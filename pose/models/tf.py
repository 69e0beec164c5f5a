"""The one place TensorFlow is imported: `load()` imports it on first use, quietly, after what must come first.

TensorFlow loads its shared libraries with RTLD_GLOBAL; pylibsrtp (aiortc's SRTP), initialised after that,
crashes the process. So `load()` imports pylibsrtp first whenever it is installed, and no entry point has to
remember the order. Nothing else in the project imports `tensorflow`; modules that need it call `load()` when
they build or run a graph, so importing them stays cheap.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

# Initialised before TensorFlow when installed (see the module docstring).
FIRST = ("pylibsrtp",)


@functools.cache
def load() -> ModuleType:
    """The `tensorflow` module, imported once per process."""
    for name in FIRST:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Every session its own intra-op pool, sized by its own config (pose.models.graph): otherwise all sessions share
    # one pool sized by the first, and a server's one-thread live models queue behind each other on it.
    os.environ.setdefault("TF_OVERRIDE_GLOBAL_THREADPOOL", "1")
    with _quiet_stderr():
        import tensorflow

    return tensorflow


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 while TensorFlow loads.

    Its C++ core logs INFO lines on import that no environment variable turns off in 2.21; they buried the CLI's
    one-line errors. Python exceptions raised meanwhile still reach the caller with their messages.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
