"""The dancing score through the live path: the real server in-process, the Python client over WebRTC, real
models, real footage. Score messages carry the calibrated and raw score, limb and move; completed moves arrive
as `move` messages and in moves.csv; the user's latency is estimated from reference ticks. Also: a reference
build writes its calibration and its moves, and references without them get them from a background job."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from harness.server import settings_for
from pose.calibration import CALIBRATION_NAME, MIN_SPAN, SECOND_LOOK_NAME, read_calibration
from pose.csvio import main_dancer_arrays, read_keypoints_csv
from pose.judge import Judge, score_keypoints
from pose.limbs import Limb
from pose.moves import MOVES_NAME, Tier, fixed_moves, read_moves
from pose.parts import PART_NAMES
from pose.pipeline import ModelCatalog, Models
from server import SESSIONS, create_app
from stream.client import run_session
from stream.references import ReferenceJobs, ReferenceLibrary, new_id
from stream.session import MOVE_COLUMNS, SCORE_COLUMNS
from tests.live_support import LATE_FRAMES, REFERENCE_FPS, Clips, SeededLibrary, assert_ticks_accounted, eventually

pytest_plugins = ("tests.live_fixtures",)

Client = TestClient[web.Request, web.Application]
TIERS = {t.value for t in Tier}
LIMBS = {limb.key for limb in Limb}


@pytest.fixture
async def live_client(aiohttp_client: Any, seeded: SeededLibrary, models: Models) -> Client:
    client: Client = await aiohttp_client(create_app(settings_for(seeded.data_dir), models))
    return client


def completed_moves(scores: pd.DataFrame, cut: list[dict[str, Any]], fps: float) -> list[int]:
    """The moves a session must have given a verdict: those with a scored tick, once a tick at or after their
    last tick was scored (the scorer's rule)."""
    last = int(scores["tick"].max())
    danced = {int(m) for m in scores["move"] if m != ""}
    return sorted(m["move"] for m in cut if m["move"] in danced and round(m["end"] * fps) - 1 <= last)


async def test_a_live_session_gives_scores_moves_and_a_latency(
    live_client: Client, seeded: SeededLibrary, clips: Clips, tmp_path: Path
) -> None:
    meta = seeded.reference
    cut = await (await live_client.get(f"/api/references/{meta.id}/moves.json")).json()
    assert cut["source"] == "fixed"  # the clip has no sound
    assert [(m["move"], m["start"], m["end"]) for m in cut["moves"]] == [(i, i, i + 1.0) for i in range(10)]

    result = await run_session(str(live_client.make_url("")), clips.webcam, meta.id, seconds=10, fps=5)
    runner = live_client.app[SESSIONS].get(result.session)
    await assert_ticks_accounted(result, runner)
    assert runner is not None

    scores = pd.read_csv(io.StringIO(result.scores_csv), keep_default_na=False, dtype={"move": str})
    assert tuple(scores.columns) == SCORE_COLUMNS
    assert scores["score"].between(0, 100).all() and scores["raw"].between(0, 100).all()
    assert set(scores["worst"]) <= {*PART_NAMES, ""} and set(scores["limb"]) <= {*LIMBS, ""}
    assert scores["move"].tolist() == [str(t // 10) for t in scores["tick"]]  # 1 s moves of 10 ticks
    for message in result.scores:
        assert set(message) == {"type", "tick", "t", "score", "raw", "worst", "limb", "move"}
        assert message["move"] == message["tick"] // 10

    moves = pd.read_csv(io.StringIO(result.moves_csv), keep_default_na=False)
    assert tuple(moves.columns) == MOVE_COLUMNS
    assert moves["move"].tolist() == completed_moves(scores, cut["moves"], meta.fps)
    assert len(moves) >= 1 and set(moves["tier"]) <= TIERS and set(moves["limb"]) <= {*LIMBS, ""}
    assert (moves["end_s"] - moves["start_s"]).tolist() == [1.0] * len(moves)
    by_move = {int(row["move"]): row for _, row in moves.iterrows()}
    assert result.moves, "no move message arrived"
    for message in result.moves:  # each verdict as it happened; the CSV keeps the same verdict
        row = by_move[message["move"]]
        assert (message["tier"], message["score"]) == (row["tier"], round(float(row["score"]), 2))
        assert message["offset_ms"] is None or isinstance(message["offset_ms"], int)
    assert any(m["offset_ms"] is not None and m["tier"] in TIERS for m in result.moves)

    record = result.metadata
    assert sum(record["tiers"].values()) == len(moves) and set(record["tiers"]) == TIERS
    assert isinstance(record["latency_ms"], int) and isinstance(record["latency_confident"], bool)
    assert result.stats is not None and "latency_ms" in result.stats and "latency_confident" in result.stats
    print(f"\nmean score {scores['score'].mean():.1f} (raw {scores['raw'].mean():.1f}), record {record}")

    # The same code scores offline: the session's own keypoints CSV, through a fresh Judge, gives its scores
    # exactly (a live session scores the keypoints as its CSV gives them back).
    folder = seeded.data_dir / "references" / meta.id
    _, dxy, dconf = main_dancer_arrays(read_keypoints_csv(folder / "keypoints.csv"))
    calibration = read_calibration(folder / CALIBRATION_NAME, meta.ticks)
    moves_cut = read_moves(folder / MOVES_NAME, meta.ticks)
    judge = Judge(dxy, dconf, meta.width / meta.height, meta.fps, calibration, moves_cut)
    (tmp_path / "user.csv").write_text(result.keypoints_csv)
    ticks, uxy, uconf = main_dancer_arrays(read_keypoints_csv(tmp_path / "user.csv"))
    offline = score_keypoints(judge, ticks, meta.fps, uxy, uconf, 640 / 480)
    assert [v.tick for v in offline] == scores["tick"].tolist()
    assert [f"{v.score:.2f}" for v in offline] == [f"{v:.2f}" for v in scores["score"]]
    assert [f"{v.raw:.2f}" for v in offline] == [f"{v:.2f}" for v in scores["raw"]]


async def test_a_late_webcams_latency_is_the_one_its_own_keypoints_give(
    live_client: Client, seeded: SeededLibrary, clips: Clips, tmp_path: Path
) -> None:
    """The reference's own footage as the webcam, on time and then 0.3 s late: each session's latency estimate is
    exactly what the scorer makes of the keypoints its CSV holds (a fresh Judge over them), so the estimate the
    user sees is worked out from reference ticks only. How far apart the two are is not checked: the live path
    (encode, send, decode, and on a busy machine dropped ticks, which can make the walkers' gait alias by a
    step) moves it. That the scorer finds 300 ms within one tick on real keypoints is `test_scorer`'s, and the
    live figures are bench/replay.py's."""
    meta = seeded.reference
    folder = seeded.data_dir / "references" / meta.id
    _, dxy, dconf = main_dancer_arrays(read_keypoints_csv(folder / "keypoints.csv"))
    calibration = read_calibration(folder / CALIBRATION_NAME, meta.ticks)
    moves = read_moves(folder / MOVES_NAME, meta.ticks)

    async def latency(clip: Path) -> int | None:
        result = await run_session(str(live_client.make_url("")), clip, meta.id, seconds=10, fps=10)
        runner = live_client.app[SESSIONS].get(result.session)
        assert runner is not None
        await eventually(lambda: not runner.live, what="the session to end")
        record = runner.metadata()
        print(f"\n{clip.name}: processed {record['processed']}, latency {record['latency_ms']} ms")
        assert result.metadata["latency_ms"] == record["latency_ms"] and record["passes"] == 1
        headers = {"Authorization": f"Bearer {result.token}"}
        response = await live_client.get(f"/api/sessions/{result.session}/keypoints.csv", headers=headers)
        assert response.status == 200
        (tmp_path / "user.csv").write_text(await response.text())  # as it ended, every processed tick in it
        ticks, uxy, uconf = main_dancer_arrays(read_keypoints_csv(tmp_path / "user.csv"))
        assert len(ticks) == record["processed"]
        judge = Judge(dxy, dconf, meta.width / meta.height, meta.fps, calibration, moves)
        final = score_keypoints(judge, ticks, meta.fps, uxy, uconf, 640 / 480)[-1].latency
        unknown = final.agreement == 0 and not final.confident  # as `LiveSession.latency_estimate` reports it
        assert record["latency_ms"] == (None if unknown else round(final.ms))
        assert record["latency_confident"] == (False if unknown else final.confident)
        return record["latency_ms"]

    on_time, late = await latency(clips.webcam), await latency(clips.late)
    print(f"on time {on_time} ms, late {late} ms; the footage is {1000 * LATE_FRAMES / REFERENCE_FPS:.0f} ms late")


def test_a_reference_build_writes_its_calibration_and_moves(tmp_path: Path, clips: Clips, models: Models) -> None:
    library = ReferenceLibrary(tmp_path / "references")
    meta = library.build(new_id(), clips.short, "short", REFERENCE_FPS, models)
    folder = tmp_path / "references" / meta.id
    calibration = read_calibration(folder / CALIBRATION_NAME, meta.ticks)  # ticks 0..K-1, values in [0, 1] checked
    assert meta.ticks == 40 and len(calibration) == 40 and np.isfinite(calibration.chance).any()
    seen = np.isfinite(calibration.match)
    floor = np.nan_to_num(calibration.chance[seen]) + MIN_SPAN  # a 4 s clip: no chance 3 s away mid-clip
    assert seen.any() and (calibration.match[seen] >= floor - 1e-4).all()
    ticks, _, _ = main_dancer_arrays(read_keypoints_csv(folder / SECOND_LOOK_NAME))
    assert ticks.tolist() == list(range(40))
    assert read_moves(folder / MOVES_NAME, meta.ticks) == fixed_moves(40, REFERENCE_FPS)  # no sound: fixed 1 s
    assert library.moves_json(meta)["source"] == "fixed" and len(library.moves_json(meta)["moves"]) == 4
    assert library.unscored() == []


async def test_references_built_before_scoring_existed_get_it_in_the_background(
    tmp_path: Path, seeded: SeededLibrary, models: Models
) -> None:
    """A copy of the seeded reference without its second look, calibration and moves: scored raw as fixed moves
    meanwhile, then the background job writes all three, the same as a build does. A calibration of the older
    layout (chance only) counts as missing."""
    source = seeded.data_dir / "references" / seeded.reference.id
    library = ReferenceLibrary(tmp_path / "references")
    shutil.copytree(source, library.root / seeded.reference.id)
    assert library.unscored() == []
    (library.root / seeded.reference.id / CALIBRATION_NAME).write_text("tick,chance\n0,0.5\n")
    assert [m.id for m in library.unscored()] == [seeded.reference.id]
    for name in (SECOND_LOOK_NAME, CALIBRATION_NAME, MOVES_NAME):
        (library.root / seeded.reference.id / name).unlink()
    assert [m.id for m in library.unscored()] == [seeded.reference.id]
    assert library.scoring(seeded.reference) == (None, None)
    jobs = ReferenceJobs(library, ModelCatalog(models), concurrent.futures.ThreadPoolExecutor(1))
    task = jobs.backfill()
    assert task is not None
    await asyncio.wait_for(task, timeout=300)
    assert jobs.scored == [seeded.reference.id] and library.unscored() == []
    for name in (SECOND_LOOK_NAME, CALIBRATION_NAME, MOVES_NAME):
        assert (library.root / seeded.reference.id / name).read_text() == (source / name).read_text()
    jobs.executor.shutdown()
