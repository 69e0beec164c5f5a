"""Hostile input against the real app: malformed offers (a seeded fuzz of a real
aiortc offer), the body/session/rate limits, paths and ids, authorisation of session exports, CSV injection,
cross-origin requests and a crowd of simultaneous offers. Each test prints what it saw; it asserts exact outcomes."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import random
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from harness.clips import cut_clip
from harness.server import settings_for
from pose.calibration import CALIBRATION_NAME, SECOND_LOOK_NAME
from pose.moves import MOVES_NAME
from pose.pipeline import Models
from server import JOBS, LIBRARY, SESSIONS, allowed_hosts, create_app
from stream.csvsafe import FORMULA_STARTS, NUMBER, csv_text
from stream.limits import host_name, origin_allowed
from stream.rates import Rate, RateLimiter
from stream.references import is_id, new_id
from stream.sdpcheck import check_sdp
from stream.session import MOVE_TEXT_COLUMNS, SCORE_COLUMNS, SCORE_TEXT_COLUMNS
from stream.store import DB_NAME
from tests.live_support import Clips, SeededLibrary, eventually, open_peer_connections
from tests.test_server import make_offer, upload_form, wait_for_job

pytest_plugins = ("tests.live_fixtures",)

Client = TestClient[web.Request, web.Application]
JSON = {"Content-Type": "application/json"}

FUZZ_SEED = 4
FUZZ_CASES = 500
REQUEST_TIMEOUT_S = 10.0


@pytest.fixture
async def client(aiohttp_client: Any, seeded: SeededLibrary, models: Models) -> Client:
    made: Client = await aiohttp_client(create_app(settings_for(seeded.data_dir), models))
    return made


def offer_body(sdp: str, reference: str, **extra: Any) -> str:
    return json.dumps({"sdp": sdp, "type": "offer", "reference": reference, **extra})


# --- 1. malformed offers: a seeded fuzz

NUMBER_GARBAGE = ["", "-1", "99999999999999999999", "NaN", "1e3", "0x10", "1.5", "+5", "\u0663", "\u2603", " 1"]
TOKEN_GARBAGE = ["", "\u2603", "a b", '"x"', "%00", "<x>", "A" * 300, "../../etc/passwd", "x;y"]
CONTROL = ["\x00", "\x01", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x7f", "\r", "\t"]
# Fields of the lines the server checks: line prefix → [(field index after the prefix, "n"umber or "t"oken)].
FIELDS: dict[str, list[tuple[int, str]]] = {
    "m=": [(1, "n"), (2, "t")],
    "c=": [(0, "t"), (1, "t"), (2, "t")],
    "o=": [(1, "n"), (2, "n"), (3, "t"), (4, "t"), (5, "t")],
    "t=": [(0, "n"), (1, "n")],
    "a=candidate:": [(0, "t"), (1, "n"), (2, "t"), (3, "n"), (4, "t"), (5, "n"), (6, "t"), (7, "t")],
    "a=rtpmap:": [(0, "n"), (1, "t")],
    "a=fingerprint:": [(0, "t"), (1, "t")],
    "a=ice-ufrag:": [(0, "t")],
    "a=ice-pwd:": [(0, "t")],
    "a=mid:": [(0, "t")],
    "a=setup:": [(0, "t")],
    "a=sctp-port:": [(0, "n"), (0, "t")],
    "a=max-message-size:": [(0, "n")],
    "a=ssrc:": [(0, "n")],
    "a=ssrc-group:": [(1, "n")],
    "a=extmap:": [(0, "n")],
    "a=fmtp:": [(0, "n")],
    "a=rtcp-fb:": [(0, "n")],
    "a=rtcp:": [(0, "n")],
}
FAMILIES = "garble garble garble delete control truncate duplicate reorder junk conflict direction drop-section huge"
FAMILIES_LIST = FAMILIES.split()
REQUIRED = ("v=", "o=", "s=", "t=", "m=", "c=", "a=mid:", "a=ice-ufrag:", "a=ice-pwd:", "a=setup:", "a=sctp-port:")


def sections(lines: list[str]) -> list[tuple[int, int]]:
    """(start, end) line ranges of the m-sections."""
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    return list(zip(starts, [*starts[1:], len(lines)], strict=True))


def mutate(sdp: str, rng: random.Random) -> tuple[str, str]:
    """One mutation of a valid offer that makes it invalid, and the mutation's family name."""
    lines = sdp.rstrip("\r\n").split("\r\n")
    family = rng.choice(FAMILIES_LIST)
    if family == "garble":
        choices = [(i, f) for i, line in enumerate(lines) for p, fs in FIELDS.items() if line.startswith(p) for f in fs]
        i, (index, kind) = rng.choice(choices)
        prefix = next(p for p in FIELDS if lines[i].startswith(p))
        fields = lines[i][len(prefix) :].split(" ")
        fields[index] = rng.choice(NUMBER_GARBAGE if kind == "n" else TOKEN_GARBAGE)
        lines[i] = prefix + " ".join(fields)
    elif family == "delete":
        prefix = rng.choice([*REQUIRED, "a=rtpmap:", "a=fingerprint:"])
        if prefix == "a=fingerprint:":  # every fingerprint of one section
            start, end = rng.choice(sections(lines))
            lines = [line for i, line in enumerate(lines) if not (start <= i < end and line.startswith(prefix))]
        else:
            lines.pop(rng.choice([i for i, line in enumerate(lines) if line.startswith(prefix)]))
    elif family == "control":
        i = rng.randrange(len(lines))
        at = rng.randrange(len(lines[i]) + 1)
        lines[i] = lines[i][:at] + rng.choice(CONTROL) + lines[i][at:]
    elif family == "truncate":
        text = "\r\n".join(lines)
        return text[: rng.randrange(text.rindex("a=setup:"))], family
    elif family == "duplicate":  # a second video section with the same mid
        start, end = sections(lines)[0]
        lines[end:end] = lines[start:end]
    elif family == "reorder":
        lines[0], lines[1] = lines[1], lines[0]
    elif family == "junk":
        lines.insert(rng.randrange(len(lines)), rng.choice(["garbage", "x=foo", "A=1", "=", "a", "m", "a=\u2603"]))
    elif family == "conflict":
        prefix = rng.choice(["a=ice-ufrag:", "a=setup:", "a=mid:"])
        i = rng.choice([i for i, line in enumerate(lines) if line.startswith(prefix)])
        other = {"a=ice-ufrag:": "zzzz", "a=setup:": "active" if "actpass" in lines[i] else "actpass", "a=mid:": "9"}
        lines.insert(i + 1, prefix + other[prefix])
    elif family == "direction":
        lines = [rng.choice(["a=sendonly", "a=recvonly", "a=inactive"]) if x == "a=sendrecv" else x for x in lines]
    elif family == "drop-section":
        start, end = rng.choice(sections(lines))
        del lines[start:end]
    else:  # huge: too many lines, one enormous line, or a body over the offer limit
        size = rng.choice(["lines", "line", "body"])
        extra = {"lines": ["a=x-fill:1"] * 1200, "line": ["a=x-long:" + "A" * 40_000], "body": ["a=x:" + "B" * 70_000]}
        lines[-1:-1] = extra[size]
        family = f"huge-{size}"
    return "\r\n".join(lines) + "\r\n", family


def json_cases(good: str, ref: str) -> list[tuple[str | bytes, str]]:
    """Bodies that are not JSON, have the wrong types, or are huge (body, label)."""
    base = {"sdp": good, "type": "offer", "reference": ref}
    bad_values: list[tuple[str, Any]] = [
        ("sdp", None),
        ("sdp", 42),
        ("sdp", ["v=0"]),
        ("sdp", {"v": 0}),
        ("sdp", ""),
        ("type", None),
        ("type", "answer"),
        ("type", ["offer"]),
        ("reference", None),
        ("reference", 7),
        ("reference", ""),
        ("reference", "../../etc/passwd"),
        ("reference", "A" * 50_000),
        ("fps", "10"),
        ("fps", True),
        ("fps", -5),
        ("fps", 0),
        ("fps", 5e-324),
        ("fps", 1e308),
        ("fps", [10]),
        ("mirror", "true"),
        ("mirror", 1),
        ("mirror", None),
    ]
    cases: list[tuple[str | bytes, str]] = [
        ("", "empty"),
        ("not json", "not JSON"),
        ("{", "truncated JSON"),
        (b"\xff\xfe\x00garbage", "bad UTF-8"),
        ("[" * 50_000 + "]" * 50_000, "deeply nested"),
        ("null", "null"),
        ("42", "a number"),
        ('"offer"', "a string"),
        ("[]", "a list"),
        (json.dumps({**base, "fps": float("nan")}), "fps NaN"),
        (json.dumps(base).replace('"offer"', '"offer", "type": "answer"'), "duplicate key"),
        (json.dumps({**base, "sdp": good * 20}), "sdp over the body limit"),
        (json.dumps({**base, "x": "y" * 100_000}), "huge unknown field"),
    ]
    cases += [(json.dumps({**base, key: value}), f"{key}={str(value)[:20]}") for key, value in bad_values]
    cases += [(json.dumps({k: v for k, v in base.items() if k != key}), f"no {key}") for key in base]
    return cases


async def post_offer(client: Client, body: str | bytes, **headers: str) -> tuple[int, dict[str, Any], float]:
    started = time.perf_counter()
    response = await client.post(
        "/api/offer",
        data=body,
        headers={**JSON, **headers},
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
    )
    payload = await response.json(content_type=None)
    return response.status, payload, time.perf_counter() - started


async def test_fuzzed_offers_get_a_clear_4xx_and_leave_nothing_open(client: Client, seeded: SeededLibrary) -> None:
    ref = seeded.reference.id
    good = await make_offer()
    rng = random.Random(FUZZ_SEED)
    cases = [mutate(good, rng) for _ in range(FUZZ_CASES)]
    bodies = [(offer_body(sdp, ref), family) for sdp, family in cases] + json_cases(good, ref)
    statuses: Counter[int] = Counter()
    families: Counter[str] = Counter()
    slowest = 0.0
    for body, label in bodies:
        status, payload, seconds = await post_offer(client, body)
        slowest = max(slowest, seconds)
        statuses[status] += 1
        families[label.split("=")[0]] += 1
        assert 400 <= status < 500, (label, status, payload, body[:300])
        assert isinstance(payload, dict) and isinstance(payload.get("error"), str) and payload["error"], payload
    print(
        f"\n{len(bodies)} bad offers ({len(cases)} mutated SDPs, seed {FUZZ_SEED}, {len(bodies) - len(cases)} bad"
        f" bodies): statuses {dict(sorted(statuses.items()))}, 0 5xx, slowest answer {slowest * 1000:.0f} ms;"
        f" mutation families {dict(families.most_common(14))}"
    )
    assert client.app[SESSIONS].sessions == {}
    await eventually(lambda: not open_peer_connections(), what="every peer connection closed")
    print(f"peer connections open afterwards: {len(open_peer_connections())}")

    status, payload, _ = await post_offer(client, offer_body(await make_offer(), ref))
    assert status == 200 and payload["type"] == "answer" and payload["token"], payload  # still serving
    await client.app[SESSIONS].close_all()
    await eventually(lambda: not open_peer_connections(), what="the valid session's peer connection closed")


# --- 2. limits


async def chunked_upload(path_bytes: int, peak: list[int], uploads: Path) -> AsyncIterator[bytes]:
    """A multipart body with a `video` part of `path_bytes` bytes, streamed without a Content-Length; notes the
    largest upload file on disk between chunks in `peak`."""
    boundary = "hardening-boundary"
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="big.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    chunk = b"\x00" * (64 * 1024)
    sent = 0
    while sent < path_bytes:
        peak[0] = max([peak[0], *(p.stat().st_size for p in uploads.iterdir())])
        yield chunk
        sent += len(chunk)
        await asyncio.sleep(0)
    yield f"\r\n--{boundary}--\r\n".encode()


@pytest.mark.parametrize("streamed", [True, False])
async def test_twice_the_upload_limit_gets_413_and_never_more_than_the_limit_on_disk(
    aiohttp_client: Any, tmp_path: Path, models: Models, streamed: bool
) -> None:
    limit = 1 * 2**20
    app = create_app(settings_for(tmp_path / "data", max_upload_bytes=limit), models)
    client: Client = await aiohttp_client(app)
    uploads = app[LIBRARY].uploads
    peak = [0]
    if streamed:
        body: Any = chunked_upload(2 * limit, peak, uploads)
        headers = {"Content-Type": "multipart/form-data; boundary=hardening-boundary"}
        response = await client.post("/api/references", data=body, headers=headers)
    else:
        big = tmp_path / "big.mp4"
        big.write_bytes(b"\x00" * (2 * limit))
        response = await client.post("/api/references", data=upload_form(big))
    assert response.status == 413, await response.text()
    assert "limit" in (await response.json())["error"]
    await eventually(lambda: not list(uploads.iterdir()), what="the partial upload removed")
    print(
        f"\n{'streamed (no Content-Length)' if streamed else 'with Content-Length'}: 2 MiB against a 1 MiB limit →"
        f" {response.status}, largest upload file on disk {peak[0]} bytes (limit {limit}), 0 files left"
    )
    assert peak[0] <= limit
    assert app[JOBS].jobs == {}


async def test_a_form_with_endless_extra_parts_is_refused(client: Client) -> None:
    form = aiohttp.FormData(default_to_multipart=True)
    for i in range(20):
        form.add_field(f"extra{i}", "x")
    response = await client.post("/api/references", data=form)
    assert response.status == 400 and "more than" in (await response.json())["error"]
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("junk", b"\x00" * 2**20, filename="junk.bin")
    response = await client.post("/api/references", data=form)
    assert response.status == 400 and "too long" in (await response.json())["error"]


async def test_offer_bodies_over_the_limit_get_413(client: Client) -> None:
    status, payload, _ = await post_offer(client, "x" * (100 * 1024))
    assert status == 413 and "limit" in payload["error"]


async def test_sessions_over_the_cap_get_503(aiohttp_client: Any, seeded: SeededLibrary, models: Models) -> None:
    app = create_app(settings_for(seeded.data_dir, max_sessions=2), models)
    client: Client = await aiohttp_client(app)
    ref = seeded.reference.id
    statuses = []
    for _ in range(3):
        response = await client.post("/api/offer", data=offer_body(await make_offer(), ref), headers=JSON)
        statuses.append(response.status)
    payload = await response.json()
    print(f"\n3 offers against max_sessions=2: {statuses}; {payload['error']!r}")
    assert statuses == [200, 200, 503]
    assert "at most 2 live sessions" in payload["error"] and response.headers["Retry-After"]
    assert len(app[SESSIONS].live()) == 2
    await app[SESSIONS].close_all()
    response = await client.post("/api/offer", data=offer_body(await make_offer(), ref), headers=JSON)
    assert response.status == 200  # a freed place is taken again
    await app[SESSIONS].close_all()
    await eventually(lambda: not open_peer_connections(), what="every peer connection closed")


async def test_twenty_offers_at_once_against_a_cap_of_three_give_exactly_three_sessions(
    aiohttp_client: Any, seeded: SeededLibrary, models: Models
) -> None:
    """The cap holds under concurrency: a place is reserved before the first await (stream.service)."""
    app = create_app(settings_for(seeded.data_dir, max_sessions=3), models)
    client: Client = await aiohttp_client(app)
    bodies = [offer_body(await make_offer(), seeded.reference.id) for _ in range(20)]
    responses = await asyncio.gather(*(client.post("/api/offer", data=body, headers=JSON) for body in bodies))
    statuses = Counter(r.status for r in responses)
    busy = [r for r in responses if r.status == 503]
    payloads = [await r.json() for r in busy]
    print(f"\n20 offers at once against max_sessions=3: {dict(statuses)}; {payloads[0]['error']!r}")
    assert statuses == {200: 3, 503: 17}
    assert all(r.headers["Retry-After"] == "60" for r in busy)
    assert all("at most 3 live sessions" in p["error"] for p in payloads)
    registry = app[SESSIONS]
    assert len(registry.live()) == 3 and len(registry.sessions) == 3 and registry.reserved == 0
    await registry.close_all()
    retry = await client.post("/api/offer", data=offer_body(await make_offer(), seeded.reference.id), headers=JSON)
    assert retry.status == 200  # the places are free again
    await registry.close_all()
    await eventually(lambda: not open_peer_connections(), what="every peer connection closed")


def test_rate_limiter_refills_with_time() -> None:
    limiter = RateLimiter(Rate(burst=2, per_minute=6), max_clients=3)  # a token every 10 s
    assert [limiter.take("a", 0.0), limiter.take("a", 0.0)] == [0.0, 0.0]
    assert limiter.take("a", 0.0) == pytest.approx(10.0)
    assert limiter.take("b", 0.0) == 0.0  # per client
    assert limiter.take("a", 5.0) == pytest.approx(5.0)
    assert limiter.take("a", 10.0) == 0.0
    for client in "cdef":
        limiter.take(client, 11.0)
    assert len(limiter) == 3  # bounded memory: the least recently seen are forgotten


async def test_offers_and_uploads_over_the_rate_get_429(
    aiohttp_client: Any, seeded: SeededLibrary, models: Models
) -> None:
    rates = {"offer_rate": Rate(burst=3, per_minute=1), "upload_rate": Rate(burst=2, per_minute=1)}
    client: Client = await aiohttp_client(create_app(settings_for(seeded.data_dir, **rates), models))
    offers = [(await client.post("/api/offer", data="{}", headers=JSON)) for _ in range(6)]
    uploads = [(await client.post("/api/references", json={})) for _ in range(4)]
    offer_statuses, upload_statuses = [r.status for r in offers], [r.status for r in uploads]
    print(f"\noffers (burst 3): {offer_statuses}; uploads (burst 2): {upload_statuses}")
    assert offer_statuses == [400] * 3 + [429] * 3  # every attempt counts, refused or not
    assert upload_statuses == [400] * 2 + [429] * 2
    refused = offers[-1]
    assert int(refused.headers["Retry-After"]) > 0 and "too many requests" in (await refused.json())["error"]
    assert (await client.get("/api/references")).status == 200  # reading is not limited


async def test_a_1080p_upload_is_accepted_and_scaled_for_inference(
    aiohttp_client: Any, tmp_path: Path, models: Models, sample_video: Path, clips: Clips
) -> None:
    """Big inputs are never refused for their size: a 1080p clip builds the same reference as the original."""
    full_hd = cut_clip(sample_video, tmp_path / "1080p.mp4", 20, size=(1920, 1080))
    client: Client = await aiohttp_client(create_app(settings_for(tmp_path / "data"), models))
    found = {}
    for name, clip in (("1080p", full_hd), ("original", cut_clip(sample_video, tmp_path / "orig.mp4", 20))):
        response = await client.post("/api/references", data=upload_form(clip, fps="5"))
        assert response.status == 202, await response.text()
        created = await response.json()
        assert (await wait_for_job(client, created["job"]))[-1]["state"] == "done"
        meta = client.app[LIBRARY].get(created["id"])
        assert meta is not None and meta.ticks == 10
        rows = list(csv.DictReader(io.StringIO(client.app[LIBRARY].csv_path(meta.id).read_text())))
        found[name] = sum(1 for r in rows if r["person"] == "0" and r["neck_x"])
        print(f"\n{name}: {meta.width}x{meta.height}, {meta.ticks} ticks, main dancer's neck found {found[name]}")
    assert found["1080p"] >= found["original"] - 2


async def test_an_upload_over_the_duration_limit_is_refused(
    aiohttp_client: Any, tmp_path: Path, models: Models, clips: Clips
) -> None:
    app = create_app(settings_for(tmp_path / "data", max_duration_s=3.0), models)
    client: Client = await aiohttp_client(app)
    response = await client.post("/api/references", data=upload_form(clips.short))  # 4 s
    error = (await response.json())["error"]
    print(f"\na 4 s video against a 3 s limit: {response.status} {error!r}")
    assert response.status == 400 and "longer than" in error
    assert list(app[LIBRARY].uploads.iterdir()) == [] and app[JOBS].jobs == {}


# --- 8. paths and ids

HOSTILE_NAMES = [
    "../../{m}.mp4",
    "/tmp/{m}.mp4",
    "..\\..\\{m}.mp4",
    "%2e%2e%2f%2e%2e%2f{m}.mp4",
    "..%252f..%252f{m}.mp4",
    "....//....//{m}.mp4",
    "references/../../{m}.mp4",
    "C:\\Windows\\{m}.mp4",
]


async def test_hostile_file_names_never_write_outside_the_data_dir(
    aiohttp_client: Any, tmp_path: Path, models: Models, clips: Clips
) -> None:
    marker = f"escape-{random.Random().getrandbits(64):016x}"
    data = tmp_path / "work" / "data"
    client: Client = await aiohttp_client(create_app(settings_for(data), models))
    before = {p for p in tmp_path.rglob("*") if p.is_file()}
    jobs = []
    for name in HOSTILE_NAMES:
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("title", name.format(m=marker))
        form.add_field("fps", "2")
        form.add_field("video", clips.short.read_bytes(), filename=name.format(m=marker), content_type="video/mp4")
        response = await client.post("/api/references", data=form)
        assert response.status == 202, await response.text()
        created = await response.json()
        server_made = r"[A-Za-z0-9_][A-Za-z0-9_-]{22}"  # new_id(): 17 random bytes, URL-safe, no leading "-"
        assert re.fullmatch(server_made, created["id"]) and re.fullmatch(server_made, created["job"])
        jobs.append(created["job"])
    for job in jobs:
        assert (await wait_for_job(client, job))[-1]["state"] == "done"
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and p not in before and data not in p.parents]
    escaped = [p for p in Path("/tmp").glob(f"*{marker}*")] + [p for p in tmp_path.rglob(f"*{marker}*")]
    names = {p.name for p in data.rglob("*") if p.is_file()}
    print(f"\n{len(HOSTILE_NAMES)} uploads with hostile names: {len(outside)} files outside the data dir, {names}")
    assert outside == [] and escaped == []
    store = {DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}.lock"}  # the store's SQLite files (and its lock)
    reference_files = {"video.mp4", "keypoints.csv", "meta.json", CALIBRATION_NAME, SECOND_LOOK_NAME, MOVES_NAME}
    assert names <= {*reference_files, *store}  # every other file is under a server-made id


DOWNLOADS = [
    "/api/references/{ref}/../../../server.py",
    "/api/references/..%2F..%2F..%2Fserver.py/video",
    "/api/references/%2e%2e/keypoints.csv",
    "/api/references/.building/video",
    "/api/references/.uploads/keypoints.csv",
    "/api/references/{ref}%2Fmeta.json/video",
    "/api/references/{ref}/meta.json",
    "/api/references/{ref}x/video",
    "/api/references/{ref_upper}/video",
    "/api/references/..\\..\\server.py/video",
    "/api/references/%5C..%5Cserver.py/video",
    "/api/references//etc/passwd/video",
    "/api/references/%2Fetc%2Fpasswd/keypoints.csv",
    "/api/jobs/..%2F..%2Fserver.py",
    "/api/jobs/{ref}",
    "/api/sessions/..%2F{ref}/keypoints.csv?token=x",
    "/api/sessions/{ref}/keypoints.csv?token=x",
    "/static/..%2Fserver.py",
    "/static/%2e%2e/server.py",
    "/static/../server.py",
    "/static/..%5Cserver.py",
    "/%2e%2e/server.py",
]


async def test_downloads_of_anything_but_a_known_id_are_404(client: Client, seeded: SeededLibrary) -> None:
    ref = seeded.reference.id
    statuses: Counter[int] = Counter()
    for template in DOWNLOADS:
        path = template.format(ref=ref, ref_upper=ref.swapcase())
        response = await client.get(path, allow_redirects=False)
        statuses[response.status] += 1
        assert response.status == 404, (path, response.status, (await response.read())[:200])
    print(f"\n{len(DOWNLOADS)} hostile download paths: {dict(statuses)}")
    assert (await client.get(f"/api/references/{ref}/keypoints.csv")).status == 200


def test_reference_ids_are_random_and_never_read_as_an_option() -> None:
    ids = [new_id() for _ in range(5000)]  # about 78 would start with "-" if nothing prevented it
    assert len(set(ids)) == len(ids) and all(is_id(i) and not i.startswith("-") for i in ids)
    assert min(token_bits(i) for i in ids) >= 128


# --- 9. authorisation


def token_bits(token: str) -> int:
    return 8 * len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


async def test_one_user_cannot_read_another_users_session(
    aiohttp_client: Any, seeded: SeededLibrary, models: Models
) -> None:
    app = create_app(settings_for(seeded.data_dir, retention_s=1.0), models)
    client: Client = await aiohttp_client(app)
    users = []
    for _ in range(2):
        response = await client.post(
            "/api/offer", data=offer_body(await make_offer(), seeded.reference.id), headers=JSON
        )
        users.append(await response.json())
    a, b = users
    assert min(token_bits(u["token"]) for u in users) >= 128 and min(token_bits(u["session"]) for u in users) >= 128

    def attempts(target: dict[str, Any], other: dict[str, Any]) -> list[tuple[dict[str, str], dict[str, str]]]:
        own = target["token"]
        return [
            ({}, {}),
            ({"Authorization": f"Bearer {other['token']}"}, {}),
            ({}, {"token": other["token"]}),
            ({"Authorization": f"Bearer {own[:-1]}"}, {}),
            ({"Authorization": f"Bearer {own}x"}, {}),
            ({"Authorization": f"Bearer {own.swapcase()}"}, {}),
            ({"Authorization": "Bearer "}, {}),
            ({"Authorization": f"Basic {own}"}, {}),
            ({"Authorization": f"Bearer {other['session']}"}, {}),
            ({"Authorization": f"Bearer {target['session']}"}, {}),
            ({}, {"token": ""}),
        ]

    refused = total = 0
    for target, other in ((a, b), (b, a)):
        base = f"/api/sessions/{target['session']}"
        for path in (base, *(f"{base}/{n}" for n in ("keypoints.csv", "scores.csv", "video.mp4", "annotated.mp4"))):
            for headers, query in attempts(target, other):
                response = await client.get(path, headers=headers, params=query)
                total += 1
                refused += response.status in (403, 404)
                assert response.status in (403, 404), (path, headers, query, response.status)
    print(f"\ncross-user reads refused: {refused}/{total} ({refused / total:.0%})")
    for user in users:
        ok = await client.get(
            f"/api/sessions/{user['session']}/scores.csv", headers={"Authorization": f"Bearer {user['token']}"}
        )
        assert ok.status == 200 and (await ok.text()).splitlines()[0] == ",".join(SCORE_COLUMNS)

    await app[SESSIONS].close_all()  # ended: downloadable for retention_s (1 s), then gone with its token
    still = await client.get(f"/api/sessions/{a['session']}/scores.csv", params={"token": a["token"]})
    await asyncio.sleep(1.3)
    expired = await client.get(f"/api/sessions/{a['session']}/scores.csv", params={"token": a["token"]})
    print(f"after the end: {still.status}; after the 1 s retention: {expired.status}")
    assert still.status == 200 and expired.status == 404
    await eventually(lambda: not open_peer_connections(), what="every peer connection closed")


# --- 10. CSV injection

HOSTILE_TEXT = [
    '=HYPERLINK("http://evil.example","x")',
    "+1+1",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1,1)",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    "=cmd|' /C notepad'!'A1'",
]


def assert_csv_safe(text: str, text_columns: tuple[str, ...]) -> int:
    """Re-parse `text`: no text cell begins with a formula character, every other cell is a number or empty.
    Returns the cells checked."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    cells = 0
    for row in reader:
        for name, cell in zip(header, row, strict=True):
            cells += 1
            if name in text_columns:
                assert not cell.startswith(FORMULA_STARTS), (name, cell)
            else:
                assert cell == "" or NUMBER.fullmatch(cell), (name, cell)
    return cells


def test_text_cells_are_neutralised_and_numbers_checked() -> None:
    header = ("tick", "time_s", "title", "worst")
    rows = [[str(i), f"{i / 10:g}", text, text[::-1]] for i, text in enumerate(HOSTILE_TEXT)]
    text = csv_text(header, rows, text_columns=("title", "worst"))
    cells = assert_csv_safe(text, ("title", "worst"))
    parsed = list(csv.reader(io.StringIO(text)))[1:]
    assert [row[2] for row in parsed] == ["'" + re.sub(r"[\t\r\n]", " ", t) for t in HOSTILE_TEXT]  # kept, as text
    assert all(len(row) == len(header) for row in parsed)
    print(f"\n{len(HOSTILE_TEXT)} hostile texts: {cells} cells re-parsed, 0 begin with = + - @ tab CR LF")
    for bad in ("=1+1", "1;2", "nan", "1e", " 1", "-", "+1"):
        with pytest.raises(ValueError, match="must hold a number"):
            csv_text(header, [["1", bad, "", ""]], text_columns=("title", "worst"))


async def test_every_served_csv_is_safe_after_a_hostile_title(
    aiohttp_client: Any, tmp_path: Path, models: Models, clips: Clips
) -> None:
    client: Client = await aiohttp_client(create_app(settings_for(tmp_path / "data"), models))
    checked = 0
    for title in HOSTILE_TEXT[:3]:
        response = await client.post("/api/references", data=upload_form(clips.short, title=title, fps="2"))
        assert response.status == 202, await response.text()
        created = await response.json()
        assert (await wait_for_job(client, created["job"]))[-1]["state"] == "done"
        served = await client.get(f"/api/references/{created['id']}/keypoints.csv")
        checked += assert_csv_safe(await served.text(), ())
        response = await client.post("/api/offer", data=offer_body(await make_offer(), created["id"]), headers=JSON)
        session = await response.json()
        for name, text_columns in (
            ("keypoints.csv", ()),
            ("scores.csv", SCORE_TEXT_COLUMNS),
            ("moves.csv", MOVE_TEXT_COLUMNS),
        ):
            served = await client.get(f"/api/sessions/{session['session']}/{name}", params={"token": session["token"]})
            checked += assert_csv_safe(await served.text(), text_columns)
        await client.app[SESSIONS].close_all()  # ended sessions keep their CSVs and free their place
    print(f"\nserved CSVs after hostile titles: {checked} cells, 0 formula starts, numbers all numeric")
    await client.app[SESSIONS].close_all()


# --- 11. cross-origin


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://127.0.0.1:8080", True),
        ("http://127.0.0.1:9999", False),
        ("https://dance.example", True),
        ("https://dance.example.evil.com", False),
        ("null", False),
        ("http://evil.example", False),
        ("file://", False),
        ("http://127.0.0.1:8080/path", False),
    ],
)
def test_origin_rule(origin: str, allowed: bool) -> None:
    assert origin_allowed(origin, "127.0.0.1:8080", {"https://dance.example"}) is allowed


async def test_cross_origin_offers_and_uploads_are_refused(
    aiohttp_client: Any, seeded: SeededLibrary, models: Models
) -> None:
    settings = settings_for(seeded.data_dir, allowed_origins=("https://dance.example",), max_sessions=5)
    client: Client = await aiohttp_client(create_app(settings, models))
    ref = seeded.reference.id
    own = str(client.make_url("")).rstrip("/")
    seen: dict[str, list[int]] = {}

    async def offer(origin: str | None) -> aiohttp.ClientResponse:
        headers = {**JSON, **({"Origin": origin} if origin else {})}
        return await client.post("/api/offer", data=offer_body(await make_offer(), ref), headers=headers)

    async def upload(origin: str | None) -> aiohttp.ClientResponse:
        return await client.post("/api/references", json={}, headers={"Origin": origin} if origin else {})

    for origin in ("http://evil.example", "null", "https://dance.example.evil.com", own.replace("127.0.0.1", "lh")):
        responses = [await offer(origin), await upload(origin)]
        seen[origin] = [r.status for r in responses]
        for r in responses:
            assert r.status == 403 and "not allowed" in (await r.json())["error"]
        preflight = await client.options(
            "/api/offer", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status == 403
    for passing in (own, "https://dance.example", None):
        response = await offer(passing)
        seen[str(passing)] = [response.status, (await upload(passing)).status]
        assert response.status == 200, await response.text()
        cors = response.headers.get("Access-Control-Allow-Origin")
        assert cors == ("https://dance.example" if passing == "https://dance.example" else None)
    preflight = await client.options(
        "/api/offer", headers={"Origin": "https://dance.example", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status == 204 and "POST" in preflight.headers["Access-Control-Allow-Methods"]
    print(f"\n(offer, upload) statuses by Origin: {seen}")
    assert all(s[1] == 400 for o, s in seen.items() if o in (own, "https://dance.example", "None"))  # passed the check
    await client.app[SESSIONS].close_all()
    await eventually(lambda: not open_peer_connections(), what="every peer connection closed")


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("127.0.0.1:8080", "127.0.0.1"),
        ("LocalHost", "localhost"),
        ("[::1]:80", "::1"),
        ("evil.example:80", "evil.example"),
    ],
)
def test_host_names_drop_the_port(host: str, name: str) -> None:
    assert host_name(host) == name


async def test_requests_addressed_to_another_host_name_are_refused(
    aiohttp_client: Any, seeded: SeededLibrary, models: Models
) -> None:
    """DNS rebinding: a page on evil.example, its name now resolving to 127.0.0.1, is same-origin with the server
    by Origin and Host alike; only the name in Host gives it away."""
    hosts = allowed_hosts("127.0.0.1", [])
    assert hosts is not None and allowed_hosts("0.0.0.0", []) is None
    assert allowed_hosts("0.0.0.0", ["a.b:1"]) == ("a.b",)
    client: Client = await aiohttp_client(create_app(settings_for(seeded.data_dir, allowed_hosts=hosts), models))
    port = client.port
    rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    for method, path in (("GET", "/api/references"), ("POST", "/api/offer"), ("POST", "/api/references")):
        refused = await client.request(method, path, headers=rebound, data=b"{}")
        assert refused.status == 403 and "host name" in (await refused.json())["error"]
        own = await client.request(method, path, headers={"Host": f"localhost:{port}"}, data=b"{}")
        assert own.status != 403
    assert (await client.get("/api/references")).status == 200  # the test client's own Host: 127.0.0.1:port


def semantic_mutations(good: str) -> dict[str, str]:
    """Offers that pass the syntax check but ask aiortc for odd things (its own failures, not ours, are tested)."""

    def sub(pattern: str, replacement: str) -> str:
        return re.sub(pattern, replacement, good, flags=re.MULTILINE)

    ufrags = iter(["aaaa", "bbbb"])
    return {
        "no common codec": sub(r"^a=rtpmap:(\d+) \w+/", r"a=rtpmap:\1 FOO/"),
        "setup active": sub(r"^a=setup:actpass", "a=setup:active"),
        "setup passive": sub(r"^a=setup:actpass", "a=setup:passive"),
        "sctp port 0": sub(r"^a=sctp-port:\d+", "a=sctp-port:0"),
        "video port 0": sub(r"^m=video \d+", "m=video 0"),
        "no rtcp-mux": sub(r"^a=rtcp-mux\r\n", ""),
        "sha-1 fingerprint only": sub(r"^a=fingerprint:sha-(256|384|512) .*\r\n", "").replace(
            "a=setup:", "a=fingerprint:sha-1 " + ":".join(["AB"] * 20) + "\r\na=setup:"
        ),
        "ICE credentials differ per section": re.sub(
            r"^a=ice-ufrag:.*$", lambda _: f"a=ice-ufrag:{next(ufrags)}", good, flags=re.MULTILINE
        ),
        "no BUNDLE": sub(r"^a=group:BUNDLE.*\r\n", ""),
        "extmap id 15": sub(r"^a=extmap:1 ", "a=extmap:15 "),
        "bad H264 profile": sub(r"profile-level-id=\w+", "profile-level-id=zzzzzz"),
        "clock rate 1": sub(r"^a=rtpmap:(\d+) VP8/90000", r"a=rtpmap:\1 VP8/1"),
        "apt to a missing type": sub(r"apt=97", "apt=55"),
        "candidate port 0": sub(r"^(a=candidate:\S+ \d \w+ \d+ \S+) \d+", r"\1 0"),
        "no candidates": sub(r"^a=candidate:.*\r\n", ""),
        "three-ssrc FID": sub(r"^a=ssrc-group:FID (\d+ \d+)", r"a=ssrc-group:FID \1 12345"),
        "msid garbage": sub(r"^a=msid:.*$", "a=msid:{}{}{} x y z"),
        "sctp max-message-size 0": sub(r"^a=max-message-size:\d+", "a=max-message-size:0"),
    }


async def test_odd_but_well_formed_offers_get_an_answer_or_a_clear_4xx(client: Client, seeded: SeededLibrary) -> None:
    good = await make_offer()
    outcomes: dict[str, str] = {}
    for name, sdp in semantic_mutations(good).items():
        assert sdp != good, name
        status, payload, _ = await post_offer(client, offer_body(sdp, seeded.reference.id))
        outcomes[name] = f"{status} {payload.get('error', '')}".strip()
        assert status == 200 or 400 <= status < 500, (name, status, payload)
        assert status == 200 or payload["error"], payload
        await client.app[SESSIONS].close_all()  # an answered one: its place under the session cap is freed
    print("\n" + "\n".join(f"  {name}: {outcome}" for name, outcome in outcomes.items()))
    assert outcomes["video port 0"].startswith("400") and "port 0" in outcomes["video port 0"]  # no video would come
    await client.app[SESSIONS].close_all()
    await eventually(lambda: not open_peer_connections(), what="every peer connection closed")


FIREFOX_STYLE_OFFER = """v=0
o=mozilla...THIS_IS_SDPARTA-99.0 6372335853064353453 0 IN IP4 0.0.0.0
s=-
t=0 0
a=fingerprint:sha-256 0F:74:31:25:CB:A2:13:EC:28:6F:6D:2C:61:FF:5D:C2:BC:B9:DB:3D:98:14:8D:1A:BB:EA:33:0C:A4:60:A8:8E
a=group:BUNDLE 0 1
a=ice-options:trickle
a=msid-semantic:WMS *
m=video 49753 UDP/TLS/RTP/SAVPF 120 124 126 127
c=IN IP4 192.168.1.2
a=candidate:0 1 UDP 2122252543 192.168.1.2 49753 typ host
a=candidate:1 1 UDP 2122187007 6f1c0b3e-3b0e-4a5c-9d55-4e1f2b0b8c11.local 53211 typ host
a=candidate:2 1 TCP 2105524479 192.168.1.2 9 typ host tcptype active
a=candidate:3 1 UDP 1686052863 203.0.113.7 49753 typ srflx raddr 192.168.1.2 rport 49753
a=sendrecv
a=end-of-candidates
a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:4/recvonly http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=fmtp:126 profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1
a=fmtp:120 max-fs=12288;max-fr=60
a=fmtp:124 apt=120
a=ice-pwd:9b3e5e0c4e8c3f5a8a1e2d3c4b5a6978
a=ice-ufrag:2b7c8d1e
a=mid:0
a=msid:{5f4c2a9e-1b2d-4c3e-8f7a-6b5c4d3e2f1a} {0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d}
a=rtcp:9 IN IP4 0.0.0.0
a=rtcp-fb:120 nack
a=rtcp-fb:120 nack pli
a=rtcp-fb:120 ccm fir
a=rtcp-fb:* transport-cc
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:120 VP8/90000
a=rtpmap:124 rtx/90000
a=rtpmap:126 H264/90000
a=rtpmap:127 rtx/90000
a=setup:actpass
a=ssrc:1234567890 cname:{7c0b1a2e-3d4f-5a6b-7c8d-9e0f1a2b3c4d}
a=ssrc-group:FID 1234567890 987654321
m=application 49753 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 192.168.1.2
a=sendrecv
a=ice-pwd:9b3e5e0c4e8c3f5a8a1e2d3c4b5a6978
a=ice-ufrag:2b7c8d1e
a=mid:1
a=setup:actpass
a=sctp-port:5000
a=max-message-size:1073741823
"""


def test_firefox_style_offers_pass_the_syntax_check() -> None:
    """Chromium's own offer is checked by the browser test; this is Firefox's dialect (upper-case transports,
    session-level fingerprint, extmap directions, mDNS and TCP candidates, `*` feedback, braces in msid)."""
    check_sdp(FIREFOX_STYLE_OFFER.replace("\n", "\r\n"))
    check_sdp(FIREFOX_STYLE_OFFER)  # bare LF line ends are tolerated
