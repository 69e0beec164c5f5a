"""The analysis API against the real app and models on real media: images answer the CLI's JSON, videos stream
extraction's ticks, sounds give the documented spectrogram; hostile input gets a 4xx and the server keeps serving."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import av
import cv2
import numpy as np
import pandas as pd
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from harness.clips import cut_clip
from harness.server import ROOT, settings_for
from pose import assets
from pose.csvio import read_keypoints_csv
from pose.media.audio import read_audio
from pose.models import DEFAULT_BACKEND
from pose.parts import PART_NAMES
from pose.pipeline import Models
from pose.spectrogram import StftParams, log_magnitude, spectrogram_png, to_image
from pose.ticks import tick_count
from server import LIVE_POOL, create_app
from stream.analyze import image_body
from stream.rates import Rate
from tests.live_support import Clips
from tests.malicious import absurd_wav, bomb_png, hls_playlist, huge_y4m

pytest_plugins = ("tests.live_fixtures",)

Client = TestClient[web.Request, web.Application]
STFT = StftParams()
TONE_BIN = 100  # the planted tone sits exactly on this bin's centre frequency


def run_pose(*args: str | Path) -> str:
    """`python -m pose ARGS` (the server's default backend); its stdout."""
    command = [sys.executable, "-m", "pose", *map(str, args), "--data-dir", str(assets.DATA_DIR)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def form(field: str, data: bytes, filename: str, **fields: str) -> aiohttp.FormData:
    made = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        made.add_field(name, value)
    made.add_field(field, data, filename=filename, content_type="application/octet-stream")
    return made


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """Mono 16-bit PCM WAV of float samples in [-1, 1], written by PyAV."""
    pcm = np.round(np.clip(samples, -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), "w", format="wav") as sink:
        stream = sink.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        sink.mux(stream.encode(frame))
        sink.mux(stream.encode(None))
    return path


def decode_png(data: bytes) -> np.ndarray:
    picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert picture is not None, "not a PNG"
    return picture


def tone(seconds: float, rate: int, hz: float, amplitude: float = 0.5) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * hz * np.arange(round(seconds * rate)) / rate)


def music_wav(out: Path) -> Path:
    """The project's sample music (a game's Ogg soundtrack), its first 12 s as a stereo 44.1 kHz WAV, by PyAV."""
    assets.ensure((assets.SAMPLE_MUSIC,))
    music = av.open(str(assets.SAMPLE_MUSIC.path()), metadata_errors="replace")  # its tags are not UTF-8
    with music as source, av.open(str(out), "w", format="wav") as sink:
        audio = source.streams.audio[0]
        stream = sink.add_stream("pcm_s16le", rate=44100, layout="stereo")
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=44100)
        for frame in source.decode(audio):
            if frame.time is not None and frame.time >= 12:
                break
            for out_frame in resampler.resample(frame):
                sink.mux(stream.encode(out_frame))
        sink.mux(stream.encode(None))
    return out


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path, models: Models) -> Client:
    made: Client = await aiohttp_client(create_app(settings_for(tmp_path, max_duration_s=12.5), models))
    return made


async def read_lines(response: aiohttp.ClientResponse) -> list[dict[str, Any]]:
    assert response.status == 200, await response.text()
    assert response.content_type == "application/x-ndjson"
    return [json.loads(line) for line in (await response.text()).splitlines()]


# --- pure parts


@pytest.mark.filterwarnings("ignore:n_fft=2048 is too large")  # librosa, on the short signals compared whole
@pytest.mark.parametrize("samples", [0, 1, 511, 512, 513, 2048, 22050, 9 * 4096 * 512 // 8 + 5])
def test_spectrogram_shape_is_the_documented_formula_and_blocks_change_nothing(samples: int) -> None:
    import librosa

    rng = np.random.default_rng(samples)
    y = rng.uniform(-1, 1, samples).astype(np.float32)
    db = log_magnitude(y, STFT)
    assert db.shape == (STFT.n_fft // 2 + 1, 1 + samples // STFT.hop) == (STFT.bins, STFT.frames(samples))
    if samples:  # one librosa call over the whole signal (centred, zero padding) gives the same numbers
        whole = np.abs(librosa.stft(y, n_fft=STFT.n_fft, hop_length=STFT.hop, window="hann", pad_mode="constant"))
        reference = 20 * np.log10(np.maximum(whole, np.finfo(np.float32).tiny) / (STFT.n_fft / 4))
        np.testing.assert_allclose(db, reference, atol=1e-3)
    png, shape = spectrogram_png(y, STFT)
    decoded = decode_png(png)
    assert decoded.dtype == np.uint8 and decoded.shape == shape == db.shape
    assert np.array_equal(decoded, to_image(db, STFT))


def test_a_planted_full_scale_tone_is_0_db_on_its_bin() -> None:
    hz = STFT.bin_hz(TONE_BIN)
    db = log_magnitude(tone(2.0, STFT.sample_rate, hz, amplitude=1.0).astype(np.float32), STFT)
    inner = db[:, 4:-4]  # frames whose window lies wholly inside the tone
    assert set(np.argmax(inner, axis=0).tolist()) == {TONE_BIN}
    np.testing.assert_allclose(inner[TONE_BIN], 0.0, atol=1e-3)
    image = to_image(db, STFT)
    assert set(np.argmax(image[:, 4:-4], axis=0).tolist()) == {STFT.n_fft // 2 - TONE_BIN}  # low at the bottom
    assert set(image[STFT.n_fft // 2 - TONE_BIN, 4:-4].tolist()) == {255}


def test_image_bodies_are_bytes_base64_or_data_urls(solo_image: Path) -> None:
    raw = solo_image.read_bytes()
    encoded = base64.b64encode(raw)
    urlsafe = base64.urlsafe_b64encode(raw).rstrip(b"=")
    wrapped = b"\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    for body in (raw, encoded, urlsafe, wrapped + b"\n", b"data:image/jpeg;base64," + encoded):
        assert image_body(body) == raw
    for bad in (b"data:image/png,notbase64", b"data:image/png;base64,@@@@", b"abcde"):
        with pytest.raises(ValueError):
            image_body(bad)


# --- the endpoints


async def test_the_image_endpoint_answers_the_cli_json_in_every_form(
    client: Client, solo_image: Path, pair_image: Path
) -> None:
    expected = await asyncio.gather(
        *(asyncio.to_thread(run_pose, "image", path, "--json") for path in (solo_image, pair_image))
    )
    for path, cli_json in zip((solo_image, pair_image), expected, strict=True):
        want = json.loads(cli_json)
        raw = path.read_bytes()
        encoded = base64.b64encode(raw).decode()
        mime = "image/png" if path.suffix == ".png" else "image/jpeg"
        text = {"Content-Type": "text/plain"}
        requests: dict[str, tuple[Any, dict[str, str]]] = {
            "multipart": (form("image", raw, path.name), {}),
            "raw": (raw, {"Content-Type": mime}),
            "base64": (encoded, text),
            "data URL": (f"data:{mime};base64,{encoded}", text),
        }
        for name, (body, headers) in requests.items():
            response = await client.post("/api/analyze/image", data=body, headers=headers)
            assert response.status == 200, (name, await response.text())
            assert await response.json() == want, name
        print(f"\n{path.name}: {len(want['persons'])} people, {len(want['detections'])} boxes, 4 forms == the CLI's")
    assert len(json.loads(expected[1])["detections"]) >= 2  # two players: the detector boxes both


def assert_rows_match(tick: dict[str, Any], rows: pd.DataFrame) -> None:
    """A tick line against the CSV rows of the same tick: the same people in the same order with the same ids,
    the same parts found with the same scores, and the same positions up to the two formats' rounding
    (the line: 0.1 px; the CSV: 1e-4 of the frame)."""
    width, height = tick["width"], tick["height"]
    persons = tick["persons"] or [{"id": 0, "keypoints": dict.fromkeys(PART_NAMES)}]
    assert [p["id"] for p in persons] == rows["person"].tolist()
    for person, (_, row) in zip(persons, rows.iterrows(), strict=True):
        for part in PART_NAMES:
            point = person["keypoints"][part]
            if point is None:
                assert np.isnan(row[f"{part}_x"]), part
                continue
            assert point[2] == pytest.approx(row[f"{part}_score"], abs=1e-9), part
            assert abs(point[0] - row[f"{part}_x"] * width) <= 0.05 + 0.5e-4 * width + 1e-6, part
            assert abs(point[1] - row[f"{part}_y"] * height) <= 0.05 + 0.5e-4 * height + 1e-6, part


async def test_the_video_endpoint_streams_every_tick_as_extraction_does(
    client: Client, clips: Clips, tmp_path: Path
) -> None:
    fps = 5
    out = tmp_path / "short.csv"
    command = ("extract", clips.short, "--fps", str(fps), "--out", out)
    extracted = asyncio.create_task(asyncio.to_thread(run_pose, *command))
    response = await client.post("/api/analyze/video", data=form("video", clips.short.read_bytes(), "s.mp4", fps="5"))
    lines = await read_lines(response)
    await extracted
    header, ticks, end = lines[0], lines[1:-1], lines[-1]
    with av.open(str(clips.short)) as container:
        stream = container.streams.video[0]
        assert stream.duration is not None and stream.time_base is not None
        duration = Fraction(stream.duration * stream.time_base)
    total = tick_count(duration, fps)
    assert header == {
        "type": "video",
        "width": 768,
        "height": 576,
        "duration_s": float(duration),
        "source_fps": 10.0,
        "fps": 5.0,
        "ticks": total,
        "pose": DEFAULT_BACKEND,
    }
    assert total == 20 and [t["tick"] for t in ticks] == list(range(total))
    assert [t["time_s"] for t in ticks] == [k / fps for k in range(total)]
    assert {t["type"] for t in ticks} == {"tick"} and end["type"] == "end"
    assert end["ticks"] == total and end["found"] == sum(1 for t in ticks if t["persons"])
    frame = read_keypoints_csv(out)
    assert sorted(set(frame["tick"])) == list(range(total))
    for tick in ticks:
        assert_rows_match(tick, frame[frame["tick"] == tick["tick"]])
    people = sum(len(t["persons"]) for t in ticks)
    print(f"\n{total} ticks at {fps}/s, {people} people, {end['found']} with a dancer; rows equal extract's CSV")

    # The raw body with fps in the query, at a rate that does not divide the video's: K = ceil(D * F).
    response = await client.post("/api/analyze/video?fps=3", data=clips.short.read_bytes())
    lines = await read_lines(response)
    assert lines[0]["ticks"] == tick_count(duration, 3) == 12
    assert [t["tick"] for t in lines[1:-1]] == list(range(12)) and lines[-1]["ticks"] == 12


async def test_a_second_video_waits_for_the_first_and_a_client_that_leaves_frees_its_place(
    client: Client, clips: Clips
) -> None:
    pool, release = client.app[LIVE_POOL], threading.Event()
    blockers = [pool.submit(release.wait) for _ in range(2)]  # hold both inference workers: no tick can run yet
    first = await client.post("/api/analyze/video?fps=5", data=clips.short.read_bytes())
    assert json.loads(await first.content.readline())["type"] == "video"
    second = await client.post("/api/analyze/video?fps=5", data=clips.short.read_bytes())
    refused = await second.json()
    print(f"\nsecond video while the first runs: {second.status} {refused}")
    assert second.status == 503 and second.headers["Retry-After"] == "60" and "already" in refused["error"]
    first.close()  # the client goes away mid-stream
    release.set()
    for blocker in blockers:
        await asyncio.wrap_future(blocker)
    for _ in range(200):  # the probe is refused 503 while the place is taken, 400 (bad fps) once it is free
        probe = await client.post("/api/analyze/video?fps=0", data=b"x")
        if probe.status == 400:
            break
        await asyncio.sleep(0.1)
    assert probe.status == 400
    lines = await read_lines(await client.post("/api/analyze/video?fps=2", data=clips.short.read_bytes()))
    assert [t["tick"] for t in lines[1:-1]] == list(range(8)) and lines[-1]["type"] == "end"


async def test_the_spectrogram_of_real_music_has_the_documented_shape(client: Client, tmp_path: Path) -> None:
    wav = music_wav(tmp_path / "music.wav")
    samples = read_audio(wav)
    assert samples is not None
    response = await client.post("/api/analyze/audio", data=form("audio", wav.read_bytes(), "music.wav"))
    assert response.status == 200, await response.text()
    assert response.content_type == "image/png"
    headers = {k: v for k, v in response.headers.items() if k.startswith("X-STFT-")}
    frames = 1 + len(samples) // STFT.hop
    assert headers == {
        "X-STFT-Sample-Rate": "22050",
        "X-STFT-N-FFT": "2048",
        "X-STFT-Hop": "512",
        "X-STFT-Window": "hann",
        "X-STFT-Center": "true",
        "X-STFT-Scale": "dB re full-scale sine",
        "X-STFT-dB-Floor": "-80",
        "X-STFT-dB-Ceiling": "0",
        "X-STFT-Samples": str(len(samples)),
        "X-STFT-Bins": "1025",
        "X-STFT-Frames": str(frames),
    }
    png = await response.read()
    picture = decode_png(png)
    assert picture.shape == (1025, frames) and picture.dtype == np.uint8
    assert np.array_equal(picture, to_image(log_magnitude(samples, STFT), STFT))

    twin = await client.post("/api/analyze/audio?format=json", data=wav.read_bytes())
    described = await twin.json()
    assert base64.b64decode(described.pop("png")) == png
    assert described == {
        "sample_rate": 22050,
        "n_fft": 2048,
        "hop": 512,
        "window": "hann",
        "db_floor": -80.0,
        "db_ceiling": 0.0,
        "center": True,
        "scale": "dB re full-scale sine",
        "rows": "low frequency at the bottom",
        "samples": len(samples),
        "bins": 1025,
        "frames": frames,
    }
    print(f"\n12 s of music at 44.1 kHz stereo: {len(samples)} samples at 22050 Hz, a 1025x{frames} PNG")


@pytest.mark.parametrize("rate", [22050, 44100])
async def test_a_planted_tone_peaks_on_its_row(client: Client, tmp_path: Path, rate: int) -> None:
    hz = STFT.bin_hz(TONE_BIN)  # exactly on a bin of the 22050 Hz analysis, whatever the file's own rate
    samples = round(3.0 * STFT.sample_rate) + 77
    wav = write_wav(tmp_path / "tone.wav", tone(samples / STFT.sample_rate, rate, hz), rate)
    response = await client.post("/api/analyze/audio", data=wav.read_bytes())
    assert response.status == 200, await response.text()
    count = int(response.headers["X-STFT-Samples"])
    if rate == STFT.sample_rate:
        assert count == samples  # nothing resampled, nothing lost
    picture = decode_png(await response.read())
    assert picture.shape == (STFT.bins, 1 + count // STFT.hop)
    inner = picture[:, 8:-8]
    peaks = set(np.argmax(inner, axis=0).tolist())
    level = 255 * (STFT.db_ceiling - STFT.db_floor + 20 * np.log10(0.5)) / (STFT.db_ceiling - STFT.db_floor)
    print(f"\n{hz:.2f} Hz at {rate} Hz: peak rows {peaks}, levels {set(inner[STFT.n_fft // 2 - TONE_BIN].tolist())}")
    assert peaks == {STFT.n_fft // 2 - TONE_BIN}
    assert set(inner[STFT.n_fft // 2 - TONE_BIN].tolist()) == {round(level)}  # -6.02 dB: half of full scale


async def test_hostile_input_gets_a_4xx_with_the_error_shape_and_the_server_keeps_serving(
    aiohttp_client: Any, tmp_path: Path, models: Models, clips: Clips, sample_video: Path, solo_image: Path
) -> None:
    settings = settings_for(tmp_path / "data", max_upload_bytes=2 * 2**20, max_duration_s=3.0)
    app = create_app(settings, models)
    client: Client = await aiohttp_client(app)
    files = tmp_path / "hostile"
    files.mkdir()
    bomb = bomb_png(files / "bomb.png").read_bytes()
    short = clips.short.read_bytes()  # 4 s: over the 3 s limit
    one_second = cut_clip(sample_video, files / "one.mp4", 10).read_bytes()
    wav = write_wav(files / "long.wav", tone(4.0, 8000, 440.0), 8000).read_bytes()
    cases: dict[str, tuple[str, Any, int, str]] = {
        "image: empty body": ("image", b"", 400, "empty"),
        "image: text": ("image", b"hello world, not an image", 400, "not a readable image"),
        "image: bad base64": ("image", b"data:image/png;base64,@@@@", 400, "base64"),
        "image: base64 of text": ("image", base64.b64encode(b"plain text"), 400, "not a readable image"),
        "image: PNG bomb": ("image", bomb, 400, "megapixels"),
        "image: PNG bomb in base64": ("image", base64.b64encode(bomb), 400, "megapixels"),
        "image: broken PNG": ("image", b"\x89PNG\r\n\x1a\n" + bytes(100), 400, "not a readable image"),
        "image: a video": ("image", one_second, 400, "not a readable image"),
        "image: too large": ("image", bytes(3 * 2**20), 413, "larger than"),
        "image: no image field": ("image", form("picture", b"x", "x.png"), 400, "no 'image'"),
        "image: unknown backend": ("image?pose=nope", solo_image.read_bytes(), 400, "unknown pose backend"),
        "video: empty body": ("video", b"", 400, "empty"),
        "video: random bytes": ("video", np.random.default_rng(1).bytes(50_000), 400, "not a readable video"),
        "video: an image": ("video", solo_image.read_bytes(), 400, "not a readable video"),
        "video: huge picture": ("video", huge_y4m(files / "huge.mp4").read_bytes(), 400, "not a readable video"),
        "video: HLS playlist": (
            "video",
            hls_playlist(files / "hls.mp4", "http://127.0.0.1:9/x.ts", clips.short).read_bytes(),
            400,
            "not a readable video",
        ),
        "video: too long": ("video", short, 400, "longer than 3 seconds"),
        "video: too large": ("video", bytes(3 * 2**20), 413, "larger than"),
        "video: fps 0": ("video?fps=0", one_second, 400, "fps"),
        "video: fps 1000": ("video?fps=1000", one_second, 400, "fps"),
        "video: fps nan": ("video", form("video", one_second, "v.mp4", fps="nan"), 400, "fps"),
        "audio: empty body": ("audio", b"", 400, "empty"),
        "audio: absurd WAV header": ("audio", absurd_wav(files / "absurd.wav").read_bytes(), 400, "not readable"),
        "audio: an image": ("audio", solo_image.read_bytes(), 400, "not readable audio"),
        "audio: a video without sound": ("audio", one_second, 400, "no audio"),
        "audio: random bytes": ("audio", np.random.default_rng(2).bytes(50_000), 400, "not readable audio"),
        "audio: too long": ("audio", wav, 400, "longer than 3 seconds"),
        "audio: bad format": ("audio?format=bmp", wav, 400, "format"),
    }
    outcomes = {}
    for name, (path, body, _, _) in cases.items():
        response = await client.post(f"/api/analyze/{path}", data=body)
        assert response.content_type == "application/json", name
        outcomes[name] = (response.status, (await response.json())["error"])
        print(f"{name:>28}: {outcomes[name]}")
    for name, (_, _, status, message) in cases.items():
        got_status, error = outcomes[name]
        assert got_status == status and message in error and str(tmp_path) not in error, (name, outcomes[name])
    assert list((tmp_path / "data" / "references" / ".uploads").iterdir()) == []
    fine = await client.post("/api/analyze/image", data=solo_image.read_bytes())
    assert fine.status == 200 and (await fine.json())["persons"]
    lines = await read_lines(await client.post("/api/analyze/video?fps=2", data=one_second))
    assert [t["tick"] for t in lines[1:-1]] == [0, 1] and lines[-1]["type"] == "end"


async def test_analysis_requests_over_the_rate_get_429(aiohttp_client: Any, tmp_path: Path, models: Models) -> None:
    rates = {"analyze_rate": Rate(burst=2, per_minute=1), "upload_rate": Rate(burst=1, per_minute=1)}
    client: Client = await aiohttp_client(create_app(settings_for(tmp_path, **rates), models))
    images = [(await client.post("/api/analyze/image", data=b"")).status for _ in range(3)]
    sounds = [(await client.post("/api/analyze/audio", data=b"")).status for _ in range(3)]
    videos = [(await client.post("/api/analyze/video", data=b"")).status for _ in range(2)]
    print(f"\nimages (burst 2): {images}; audio (burst 2): {sounds}; videos (burst 1): {videos}")
    assert images == sounds == [400, 400, 429] and videos == [400, 429]
    refused = await client.post("/api/analyze/image", data=b"")
    assert int(refused.headers["Retry-After"]) > 0 and "too many requests" in (await refused.json())["error"]
