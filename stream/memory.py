"""Process-wide memory settings for the server (glibc only; elsewhere they do nothing)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas. glibc gives new threads arenas of their own (up to 8 per core); aiortc starts
    decoder and encoder threads for every connection, and what is freed in an ended thread's arena is seldom
    given back, so RSS crept up by ~13 MiB a session over 25 sessions (~6 MiB with 2 arenas). Call before the
    first session. False when there is no glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        done = bool(ctypes.CDLL(name).mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False
    log.debug("malloc arenas capped at %d: %s", arenas, done)
    return done
