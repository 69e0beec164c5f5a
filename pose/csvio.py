"""The keypoint CSV: the contract between offline extraction, live sessions, scoring and export.

Columns: tick, time_s, person, then {part}_x, {part}_y, {part}_score for the 18 parts in `BodyPart` order.
x and y are normalised to [0, 1] of the frame width/height with 4 decimals; a part not found has empty cells.
person 0 is the main dancer and every tick has exactly one person-0 row (all parts empty when nobody is found);
other people follow with their track ids (≥ 1).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import numpy as np
import numpy.typing as npt
import pandas as pd

from pose.parts import NUM_PARTS, PART_NAMES
from pose.types import FrameAnalysis

CSV_COLUMNS: tuple[str, ...] = (
    "tick",
    "time_s",
    "person",
    *(f"{part}_{field}" for part in PART_NAMES for field in ("x", "y", "score")),
)
Row = list[str]


def keypoint_rows(tick: int, time_s: float, analysis: FrameAnalysis) -> list[Row]:
    """The rows of one tick: the main dancer (person 0, possibly empty) first, then the others by track id."""
    head = [str(tick), _number(time_s, 6)]
    poses = analysis.poses
    if not len(poses):
        return [[*head, "0", *([""] * (3 * NUM_PARTS))]]
    rows = []
    for i in range(len(poses)):
        person = 0 if i == 0 else int(analysis.ids[i])
        cells = []
        for (x, y), score in zip(poses.xy[i], poses.confidence[i], strict=True):
            found = score > 0 and np.isfinite(x)
            cells += [_number(x, 4), _number(y, 4), _number(score, 4)] if found else ["", "", ""]
        rows.append([*head, str(person), *cells])
    return rows


def as_written(xy: npt.ArrayLike, conf: npt.ArrayLike) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """One person's keypoints (xy (18, 2), conf (18,)) exactly as a keypoint CSV gives them back
    (`main_dancer_arrays` of the row `keypoint_rows` writes): what scores them live is what scores them later."""
    xy_arr, conf_arr = np.asarray(xy, dtype=np.float64), np.asarray(conf, dtype=np.float64)
    found = (conf_arr > 0) & np.isfinite(xy_arr[:, 0])
    back = np.full((NUM_PARTS, 3), np.nan, dtype=np.float32)
    for i in np.flatnonzero(found):
        back[i] = [float(_number(v, 4)) for v in (xy_arr[i, 0], xy_arr[i, 1], conf_arr[i])]
    return back[:, :2], np.nan_to_num(back[:, 2])


def _number(value: float, decimals: int) -> str:
    text = f"{float(value):.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


class KeypointCsvWriter:
    """Writes the header, then the rows of one tick per `append` (rows are built by `keypoint_rows`)."""

    def __init__(self, stream: TextIO) -> None:
        self._writer = csv.writer(stream, lineterminator="\n")
        self._writer.writerow(CSV_COLUMNS)

    def append(self, tick: int, time_s: float, analysis: FrameAnalysis) -> None:
        self._writer.writerows(keypoint_rows(tick, time_s, analysis))


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; it becomes `path` when the block succeeds and is removed otherwise."""
    partial = path.with_name(path.name + ".part")
    try:
        yield partial
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def read_keypoints_csv(path: Path) -> pd.DataFrame:
    """Read a keypoint CSV, checking the header; parts not found read as NaN."""
    frame = pd.read_csv(path)
    if tuple(frame.columns) != CSV_COLUMNS:
        raise ValueError(f"{path}: not a dancesync keypoint CSV (unexpected columns)")
    return frame


def main_dancer_arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ticks (n,), xy (n, 18, 2) NaN where missing, confidence (n, 18) 0 where missing) of the person-0 rows."""
    main = frame[frame["person"] == 0].sort_values("tick")
    values = main[list(CSV_COLUMNS[3:])].to_numpy(np.float32).reshape(len(main), NUM_PARTS, 3)
    return main["tick"].to_numpy(np.int64), values[..., :2], np.nan_to_num(values[..., 2])
