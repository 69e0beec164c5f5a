"""A frame's own index burned into its pixels, so a test or a benchmark can tell exactly which frame it got back.

The index is BITS black or white CELL x CELL blocks along the top row, least significant bit first, and the same
blocks again in the row below: a frame whose two rows disagree (drawn over, or garbled by the codec) reads as None.
Blocks of 16 pixels survive two lossy encodes; only their middle is read. 16 bits: 36 minutes at 30 fps.
"""

from __future__ import annotations

import av
import numpy as np

CELL = 16
BITS = 16
WIDTH = BITS * CELL  # the strip's size: frames must be at least this wide and 2 * CELL high
HEIGHT = 2 * CELL


def burn_index(image_bgr: np.ndarray, index: int) -> None:
    """Write `index` (0 <= index < 2**BITS) into the top left of an (h, w, 3) uint8 image, in place."""
    if not 0 <= index < 1 << BITS:
        raise ValueError(f"index {index} does not fit in {BITS} bits")
    for bit in range(BITS):
        image_bgr[:HEIGHT, bit * CELL : (bit + 1) * CELL] = 255 if index >> bit & 1 else 0


def read_index(image: np.ndarray) -> int | None:
    """The index burned into an (h, w) luma or (h, w, 3) BGR image; None when its two rows disagree."""
    grey = image.mean(axis=2) if image.ndim == 3 else image
    rows = grey[:HEIGHT, :WIDTH].astype(np.float32).reshape(2, CELL, BITS, CELL)
    bits = rows[:, 4 : CELL - 4, :, 4 : CELL - 4].mean(axis=(1, 3)) > 127
    if not np.array_equal(bits[0], bits[1]):
        return None
    return int(sum(1 << i for i, bit in enumerate(bits[0]) if bit))


def read_frame_index(frame: av.VideoFrame) -> int | None:
    """`read_index` of a decoded frame, from its luma plane where it has one (no colour conversion)."""
    if frame.format.name in ("yuv420p", "yuvj420p", "nv12"):
        plane = frame.planes[0]
        rows: np.ndarray = np.frombuffer(memoryview(plane), np.uint8, count=HEIGHT * plane.line_size)
        return read_index(rows.reshape(HEIGHT, plane.line_size))
    # Never converted in place: an encoder thread may be converting the same frame (see stream.client).
    return read_index(frame.reformat(format="gray").to_ndarray())
