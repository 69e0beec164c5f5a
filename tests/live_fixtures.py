"""Fixtures for the server tests (used via `pytest_plugins`): clips cut from the real sample video and a library
seeded with one real reference, built once per test run with the session's model set."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.clips import cut_clip, write_indexed_clip
from stream.references import ReferenceLibrary, new_id
from tests.live_support import INDEXED_FPS, LATE_FRAMES, REFERENCE_FPS, Clips, SeededLibrary

if TYPE_CHECKING:
    from pose.pipeline import Models


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory, sample_video: Path) -> Clips:
    folder = tmp_path_factory.mktemp("clips")
    indexed = [Fraction(i, INDEXED_FPS) for i in range(8 * INDEXED_FPS)]
    return Clips(
        short=cut_clip(sample_video, folder / "short.mp4", 40),
        reference=cut_clip(sample_video, folder / "reference.mp4", 100),
        webcam=cut_clip(sample_video, folder / "webcam.mp4", 105, repeat=3, size=(640, 480)),
        indexed=write_indexed_clip(folder / "indexed.mp4", indexed),
        late=cut_clip(sample_video, folder / "late.mp4", 100, repeat=3, size=(640, 480), late=LATE_FRAMES),
    )


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory, clips: Clips, models: Models) -> SeededLibrary:
    """A library holding one real reference (10 s of the sample at 10 ticks/s), built once per run."""
    data_dir = tmp_path_factory.mktemp("seeded")
    library = ReferenceLibrary(data_dir / "references")
    meta = library.build(new_id(), clips.reference, "sample, 10 s", REFERENCE_FPS, models)
    return SeededLibrary(data_dir, meta)
