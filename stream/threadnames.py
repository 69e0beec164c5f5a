"""The OS names of this process's Python threads. Python (before 3.14) leaves every thread named after the
process, so `top -H`, `ps -L` and /proc show a row of "python"; giving each OS thread its Python name (aiortc's
"video-decoder", the "live-inference_N" workers, the loop's "asyncio_N" executor) shows where the CPU goes.
Linux only (/proc/self/task/TID/comm); elsewhere nothing happens.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

COMM_BYTES = 15  # the kernel keeps 15 bytes of a thread's name
INTERVAL_S = 2.0  # threads started since (a new session's decoder) are named this much later at most


def name_os_threads() -> int:
    """Name each Python thread's OS thread after it (the main thread keeps the process's name); how many were
    renamed."""
    renamed = 0
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.native_id is None:
            continue
        name = thread.name.encode()[:COMM_BYTES].decode(errors="ignore")
        comm = Path(f"/proc/self/task/{thread.native_id}/comm")
        try:
            if comm.read_text().strip() != name:
                comm.write_text(name)
                renamed += 1
        except OSError:  # ended meanwhile, or not Linux
            continue
    return renamed


async def name_os_threads_forever(interval: float = INTERVAL_S) -> None:
    while True:
        name_os_threads()
        await asyncio.sleep(interval)
