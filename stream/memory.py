"""Process-wide memory settings for the server (glibc only; elsewhere they do nothing).

Sessions come and go while the models stay: each session's codecs, frames and converters are freed when it
ends, but the holes they leave in malloc's heaps are pinned by longer-lived allocations, and glibc gives memory
back only from the top of a heap. Without the two measures below RSS grows with every session (fragmentation,
not a leak: memory in use stays flat). `python -m bench.soak` measures both; the figures are in
docs/reliability.md ("Memory").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import time

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters
M_ARENA_MAX = -8
MMAP_THRESHOLD = 256 * 1024


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def limit_malloc_arenas(arenas: int = 2, mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """Cap glibc's malloc arenas and fix its mmap threshold. Call before the first session. False when there
    is no glibc.

    Arenas: glibc gives new threads arenas of their own (up to 8 per core); aiortc starts decoder and encoder
    threads for every connection, and what is freed in an ended thread's arena is seldom given back, so RSS
    crept up by ~13 MiB a session over 25 sessions (~6 MiB with 2 arenas).

    mmap threshold: glibc serves blocks above it with mmap of their own, returned to the system when freed, but
    raises the threshold to the size of any such block freed (up to 32 MiB). Video frames (0.5-1 MiB) and codec
    buffers soon all come from the shared heaps and leave holes there. A fixed 256 KiB threshold keeps them in
    mappings of their own: over 30 sessions the heaps stopped growing after 17 and RSS levelled at ~878 MiB
    (+0.3% between sessions 15 and 30, against +4.2% by default), for no measurable inference cost (44-50 ms of
    CPU a frame either way). Within one long session it is what keeps RSS flat (no session ends to trim after).
    """
    libc = _libc()
    if libc is None:
        return False
    done = bool(libc.mallopt(M_ARENA_MAX, arenas)) and bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold))
    log.debug("malloc arenas capped at %d, mmap threshold %d B: %s", arenas, mmap_threshold, done)
    return done


def release_free_memory() -> float:
    """Give the free pages inside malloc's heaps back to the system (`malloc_trim(0)`); returns the seconds it
    took (0 without glibc). Blocks the calling thread while it walks the heaps: call it from a worker thread.

    Called after each live session ends: what the session freed sits in holes of the heaps that glibc would
    otherwise keep for good (see the module's docstring)."""
    libc = _libc()
    if libc is None:
        return 0.0
    started = time.perf_counter()
    libc.malloc_trim(0)
    return time.perf_counter() - started
