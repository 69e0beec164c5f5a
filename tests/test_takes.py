"""Recorded takes on real media: the sample footage with a real song under it is the reference; the take is the
same footage re-encoded with the song as a phone in a room records it (delayed by a known offset, resampled,
reverb and pink noise, by SoX). Alignment, refusals, and the take scored through the server as its own footage
scores offline."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pandas as pd
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from harness.server import settings_for
from harness.takes import footage_with_sound, room_recording, song_excerpt, with_sound
from pose import assets
from pose.align import MAX_DRIFT_S, NO_SOUND, Alignment, AlignmentError, align
from pose.media.audio import read_sound
from pose.pipeline import FrameAnalyzer, Models
from pose.takes import take_ticks
from server import LIBRARY, create_app
from stream.rates import Rate
from stream.references import ReferenceLibrary, ReferenceMeta, new_id
from stream.session import DancerPoses, LiveSession
from stream.takes import align_files, score_take

Client = TestClient[web.Request, web.Application]

FPS = 10.0
FRAMES = 120  # 12 s of the footage
SECONDS = FRAMES / FPS
DELAY_S = 0.437  # the take's sound starts this much after its first frame: the song's t = 0 is take time 0.437
ALIGN_TOLERANCE_S = 0.020
# A take re-encoded from the footage scores on the same ticks what the reference's own footage scores, but for
# the two H.264 encodes of each frame: the sample's people are small and their keypoints move by a pixel or two.
# The raw similarity moves by 4.9 points on average on this take (the calibrated score, which stretches the top of
# the raw scale, by 10.5; docs/benchmarks.md, "Recorded takes").
MEAN_RAW_TOLERANCE = 10.0


@dataclass(frozen=True)
class TakeMedia:
    song: Path  # the reference's 12 s of music
    reference: Path  # the footage with the song
    take: Path  # the footage re-encoded, the song delayed, resampled to 48 kHz, reverb and noise
    take_22k: Path  # the same at 22.05 kHz, delayed 1.283 s
    other_song: Path  # the footage with another song of the game
    silent: Path  # the footage without an audio stream
    drifting: Path  # the song 1 % fast


@pytest.fixture(scope="module")
def take_media(tmp_path_factory: pytest.TempPathFactory, sample_video: Path) -> TakeMedia:
    assets.ensure((assets.SAMPLE_MUSIC, assets.SAMPLE_MUSIC_OTHER))
    d = tmp_path_factory.mktemp("takes")
    song = song_excerpt(assets.SAMPLE_MUSIC.path(), d / "song.wav", 3.0, SECONDS)
    other = song_excerpt(assets.SAMPLE_MUSIC_OTHER.path(), d / "other.wav", 20.0, SECONDS)

    def take(name: str, sound: Path | None) -> Path:
        return footage_with_sound(sample_video, d / f"{name}.mp4", FRAMES, sound, crf=28)

    return TakeMedia(
        song=song,
        reference=footage_with_sound(sample_video, d / "reference.mp4", FRAMES, song),
        take=take("take", room_recording(song, d / "take.wav", DELAY_S, 48000, SECONDS)),
        take_22k=take("take22k", room_recording(song, d / "take22k.wav", 1.283, 22050, SECONDS)),
        other_song=take("other", room_recording(other, d / "other-take.wav", DELAY_S, 48000, SECONDS)),
        silent=take("silent", None),
        drifting=take("drift", room_recording(song, d / "drift.wav", DELAY_S, 48000, SECONDS, speed=1.01)),
    )


@pytest.mark.parametrize(("name", "delay"), [("take", DELAY_S), ("take_22k", 1.283)])
def test_a_take_is_aligned_by_its_sound(take_media: TakeMedia, name: str, delay: float) -> None:
    alignment = align_files(take_media.reference, getattr(take_media, name))
    assert abs(alignment.offset_s - delay) <= ALIGN_TOLERANCE_S
    assert [abs(s.offset_s - delay) <= ALIGN_TOLERANCE_S for s in alignment.segments] == [True] * 3
    assert abs(alignment.drift_s) <= ALIGN_TOLERANCE_S


def test_the_wrong_song_no_sound_and_drift_are_refused(take_media: TakeMedia) -> None:
    with pytest.raises(AlignmentError, match="does not match this reference's song"):
        align_files(take_media.reference, take_media.other_song)
    with pytest.raises(AlignmentError) as no_audio:
        align_files(take_media.reference, take_media.silent)
    assert str(no_audio.value) == NO_SOUND
    with pytest.raises(AlignmentError, match="drifts against the song"):
        align_files(take_media.reference, take_media.drifting)
    sound = read_sound(take_media.take)
    assert sound is not None
    with pytest.raises(AlignmentError) as silence:  # an audio stream of silence is no sound either
        align(*sound, sound[0] * 0, sound[1])
    assert str(silence.value) == NO_SOUND
    assert MAX_DRIFT_S < 0.01 * SECONDS  # the drifting take is 120 ms off by its end


def test_take_ticks_cover_the_take() -> None:
    assert take_ticks(120, 10, 0.437, 12) == range(0, 116)  # k / 10 + 0.437 < 12
    assert take_ticks(120, 10, -0.25, 12) == range(3, 120)  # the take started 0.25 s into the song
    assert take_ticks(120, 10, 0.4, 12) == range(0, 116)  # 11.6 + 0.4 = 12 is outside
    assert take_ticks(120, 10, 20.0, 12) == range(0, 0)


@pytest.fixture(scope="module")
def reference_dir(
    tmp_path_factory: pytest.TempPathFactory, take_media: TakeMedia, models: Models
) -> tuple[Path, ReferenceMeta]:
    data_dir = tmp_path_factory.mktemp("takes-server")
    meta = ReferenceLibrary(data_dir / "references").build(new_id(), take_media.reference, "with music", FPS, models)
    return data_dir, meta


@pytest.fixture
async def client(aiohttp_client: Any, reference_dir: tuple[Path, ReferenceMeta], models: Models) -> Client:
    app = create_app(settings_for(reference_dir[0]), models)
    result: Client = await aiohttp_client(app)
    return result


def take_form(path: Path) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("video", path.read_bytes(), filename=path.name, content_type="video/mp4")
    return form


async def finished(client: Client, job: str, timeout: float = 600.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        status: dict[str, Any] = await (await client.get(f"/api/jobs/{job}")).json()
        if status["state"] in ("done", "failed"):
            return status
        await asyncio.sleep(0.25)
    pytest.fail(f"job {job} not finished after {timeout} s")


def offline_session(library: ReferenceLibrary, meta: ReferenceMeta, models: Models) -> LiveSession[Any]:
    """A session on the reference as the server makes one (server.create_app's factory, default arguments)."""
    chance, moves = library.scoring(meta)
    dancer = DancerPoses.from_csv(
        library.csv_path(meta.id), meta.fps, meta.width / meta.height, meta.pose, chance, moves
    )
    return LiveSession(dancer, FrameAnalyzer(models), None, True, detect=models.detector.detect, pose=models.pose.name)


async def test_a_take_is_scored_as_its_own_footage_scores(
    client: Client, take_media: TakeMedia, reference_dir: tuple[Path, ReferenceMeta], models: Models, tmp_path: Path
) -> None:
    meta = reference_dir[1]
    library = client.app[LIBRARY]
    footage = library.video_path(meta.id)
    # The reference's own pictures (copied, not re-encoded), the song under them as the room records it.
    sound = room_recording(take_media.song, tmp_path / "take.wav", DELAY_S, 48000, SECONDS)
    take = with_sound(footage, sound, tmp_path / "take.mp4")
    response = await client.post(f"/api/references/{meta.id}/takes", data=take_form(take))
    assert response.status == 202, await response.text()
    created = await response.json()
    status = await finished(client, created["job"])
    assert status["state"] == "done", status
    assert status["session"] == created["session"]
    auth = {"Authorization": f"Bearer {created['token']}"}

    record = await (await client.get(f"/api/sessions/{created['session']}", headers=auth)).json()
    aligned = record["take"]
    assert abs(aligned["offset_s"] - DELAY_S) <= ALIGN_TOLERANCE_S
    covered = take_ticks(meta.ticks, FPS, aligned["offset_s"], SECONDS)
    assert covered == range(0, 116)
    assert (aligned["first_tick"], aligned["ticks"], record["processed"]) == (0, 116, 116)

    texts = {}
    for name in ("keypoints.csv", "scores.csv", "moves.csv"):
        got = await client.get(f"/api/sessions/{created['session']}/{name}", headers=auth)
        assert got.status == 200, name
        texts[name] = await got.text()
    files = {name: pd.read_csv(io.StringIO(text)) for name, text in texts.items()}
    assert files["keypoints.csv"]["tick"].tolist() == list(covered)  # one row per reference tick, in step with its CSV
    assert files["scores.csv"]["tick"].tolist() == list(covered)
    assert files["scores.csv"]["time_s"].tolist() == pytest.approx([k / FPS for k in covered])
    assert len(files["moves.csv"]) > 0

    # Offline, the reference's own footage through the same session and scorer on the same shifted grid: the very
    # same rows, scores and verdicts.
    offline = score_take(
        offline_session(library, meta, models), footage, footage, Alignment(DELAY_S, DELAY_S, 1, (), 0, SECONDS)
    )
    assert offline.ticks == covered
    offline.session.finish()
    assert offline.session.scores_csv() == texts["scores.csv"]
    assert offline.session.moves_csv() == texts["moves.csv"]
    assert offline.session.keypoints_csv() == texts["keypoints.csv"]

    video = tmp_path / "side.mp4"
    got = await client.get(f"/api/sessions/{created['session']}/take.mp4", headers=auth)
    assert got.status == 200
    video.write_bytes(await got.read())
    with av.open(str(video)) as container:
        assert container.streams.audio  # the reference's song
        stream = container.streams.video[0]
        assert stream.codec_context.height == 480
        assert sum(1 for _ in container.decode(stream)) == len(covered)
    assert (await client.get(f"/api/sessions/{created['session']}/take.mp4")).status == 403
    assert list(library.uploads.iterdir()) == []


async def test_a_re_encoded_take_scores_within_the_re_encoding_tolerance(
    take_media: TakeMedia, reference_dir: tuple[Path, ReferenceMeta], models: Models
) -> None:
    library = ReferenceLibrary(reference_dir[0] / "references")
    meta = reference_dir[1]
    footage = library.video_path(meta.id)
    alignment = align_files(footage, take_media.take)
    take = score_take(offline_session(library, meta, models), footage, take_media.take, alignment)
    own = score_take(offline_session(library, meta, models), footage, footage, alignment)
    assert [s.tick for s in take.session.scores] == [s.tick for s in own.session.scores] == list(range(116))
    differences = np.abs([a.raw - b.raw for a, b in zip(take.session.scores, own.session.scores, strict=True)])
    assert differences.mean() <= MEAN_RAW_TOLERANCE, (differences.mean(), np.percentile(differences, 90))


@pytest.mark.parametrize(
    ("media", "sentence"),
    [("other_song", "does not match this reference's song"), ("drifting", "drifts against the song")],
)
async def test_a_take_of_another_song_fails_with_the_reason(
    client: Client, take_media: TakeMedia, reference_dir: tuple[Path, ReferenceMeta], media: str, sentence: str
) -> None:
    meta = reference_dir[1]
    body = getattr(take_media, media).read_bytes()
    response = await client.post(f"/api/references/{meta.id}/takes", data=body)  # the raw body
    assert response.status == 202, await response.text()
    created = await response.json()
    status = await finished(client, created["job"])
    assert status["state"] == "failed" and sentence in status["error"]
    auth = {"Authorization": f"Bearer {created['token']}"}
    assert (await client.get(f"/api/sessions/{created['session']}", headers=auth)).status == 404


async def test_a_take_without_audio_or_a_video_is_refused(
    client: Client, take_media: TakeMedia, reference_dir: tuple[Path, ReferenceMeta], tmp_path: Path
) -> None:
    meta = reference_dir[1]
    response = await client.post(f"/api/references/{meta.id}/takes", data=take_form(take_media.silent))
    assert response.status == 400
    assert (await response.json())["error"] == NO_SOUND
    fake = tmp_path / "take.mp4"
    fake.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not a video" * 100)
    response = await client.post(f"/api/references/{meta.id}/takes", data=fake.read_bytes())
    assert response.status == 400 and (await response.json())["error"].startswith("not a readable video")
    response = await client.post(f"/api/references/{'x' * 22}/takes", data=take_form(take_media.take))
    assert response.status == 404
    assert list(client.app[LIBRARY].uploads.iterdir()) == []


async def test_takes_have_the_upload_limits(
    aiohttp_client: Any, take_media: TakeMedia, reference_dir: tuple[Path, ReferenceMeta], models: Models
) -> None:
    settings = settings_for(reference_dir[0], max_upload_bytes=64 * 1024, upload_rate=Rate(burst=2, per_minute=1))
    client: Client = await aiohttp_client(create_app(settings, models))
    path = f"/api/references/{reference_dir[1].id}/takes"
    too_big = await client.post(path, data=take_form(take_media.take))
    assert too_big.status == 413 and "larger than" in (await too_big.json())["error"]
    raw = await client.post(path, data=take_media.take.read_bytes())
    assert raw.status == 413
    limited = await client.post(path, data=take_form(take_media.take))
    assert limited.status == 429 and "Retry-After" in limited.headers
    assert list(client.app[LIBRARY].uploads.iterdir()) == []
