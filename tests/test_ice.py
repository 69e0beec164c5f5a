"""ICE candidates of offers: the pure rules of stream.ice on Firefox-shaped SDP, then the real server with a real
aiortc peer whose offer hides its addresses behind mDNS names and ends with a=end-of-candidates, as Firefox's does
on a page without camera permission."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import aiortc  # noqa: F401  (pylibsrtp segfaults when it initialises after TensorFlow: load it first)
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer

from harness.server import settings_for
from pose.pipeline import Models
from server import SESSIONS, create_app
from stream.ice import (
    IceError,
    OfferIce,
    check_pairing,
    parse_candidates,
    peer_unheard,
    prepare_offer,
)
from stream.live import CONTROL_LABEL, peer_connection
from tests.live_support import Clips, SeededLibrary, eventually, open_peer_connections

pytest_plugins = ("tests.live_fixtures",)

Client = TestClient[web.Request, web.Application]

NAME_A = "01597dc0-30d5-4ed2-942a-461979930019.local"
NAME_B = "7e50c325-ac46-4119-9e96-2de95921d826.local"
# The ICE lines of a Firefox 153 offer on a page without camera permission (one section; the rest is alike).
FIREFOX_MDNS = "\r\n".join(
    [
        "m=video 9 UDP/TLS/RTP/SAVPF 120",
        "c=IN IP4 0.0.0.0",
        f"a=candidate:0 1 UDP 2122187007 {NAME_A} 52056 typ host",
        f"a=candidate:1 1 UDP 2122252543 {NAME_B} 51373 typ host",
        f"a=candidate:2 1 TCP 2105458943 {NAME_A} 9 typ host tcptype active",
        f"a=candidate:0 2 UDP 2122187006 {NAME_A} 33643 typ host",
        "a=end-of-candidates",
        "a=mid:0",
        "",
    ]
)
ANSWER_V4 = "a=candidate:5c1 1 udp 2130706431 192.0.2.2 40123 typ host\r\na=end-of-candidates\r\n"
ANSWER_V4_V6 = ANSWER_V4 + "a=candidate:7d2 1 udp 2130706431 fd00::2 40124 typ host\r\n"


def offer_ice(*candidates: str, complete: bool = True) -> OfferIce:
    lines = [f"a=candidate:{i} 1 {c} typ host" for i, c in enumerate(candidates)]
    return prepare_offer("\r\n".join([*lines, *(["a=end-of-candidates"] if complete else []), ""]))[1]


# ---------------------------------------------------------------------------------------------------------
# The pure rules


def test_candidates_are_read_for_component_one_with_their_kind() -> None:
    found = parse_candidates(FIREFOX_MDNS)
    assert [(c.transport, c.address, c.port, c.mdns, c.family) for c in found] == [
        ("udp", NAME_A, 52056, True, None),
        ("udp", NAME_B, 51373, True, None),
        ("tcp", NAME_A, 9, True, None),
    ]


def test_mdns_names_and_end_of_candidates_are_left_out_of_a_firefox_offer() -> None:
    sdp, ice = prepare_offer(FIREFOX_MDNS)
    assert sdp.split("\r\n") == ["m=video 9 UDP/TLS/RTP/SAVPF 120", "c=IN IP4 0.0.0.0", "a=mid:0", ""]
    assert ice.complete and ice.ended_removed and ice.names_only
    assert len(ice.candidates) == 3 and len(ice.udp) == 2
    assert "mDNS names and end-of-candidates left out" in ice.summary()


def test_an_offer_with_addresses_only_is_given_to_aiortc_unchanged() -> None:
    sdp = "a=candidate:0 1 udp 2122260223 192.0.2.7 60634 typ host\r\na=end-of-candidates\r\n"
    assert prepare_offer(sdp) == (sdp, OfferIce(parse_candidates(sdp), complete=True, ended_removed=False))


def test_mixed_offer_keeps_its_addresses_but_not_its_names() -> None:
    address, name = "a=candidate:0 1 udp 1 192.0.2.7 6 typ host\n", f"a=candidate:1 1 udp 1 {NAME_A} 7 typ host\n"
    sdp = address + name + "a=end-of-candidates\n"
    kept, ice = prepare_offer(sdp)
    assert kept == address
    assert ice.ended_removed and not ice.names_only


@pytest.mark.parametrize(
    ("candidates", "complete", "answer"),
    [
        ((f"udp 1 {NAME_A} 5",), True, ANSWER_V4),  # names: the family is unknown, the checks tell
        (("udp 1 192.0.2.9 5",), True, ANSWER_V4),
        (("udp 1 fd00::9 5",), True, ANSWER_V4_V6),
        ((), False, ANSWER_V4),  # trickled later, or learned from the browser's checks
        (("tcp 1 192.0.2.9 9",), False, ANSWER_V4),
    ],
)
def test_pairs_that_can_exist(candidates: tuple[str, ...], complete: bool, answer: str) -> None:
    check_pairing(offer_ice(*candidates, complete=complete), answer)


@pytest.mark.parametrize(
    ("candidates", "answer", "words"),
    [
        ((), ANSWER_V4, "the offer has no ICE candidates and says it has no more"),
        (("tcp 1 192.0.2.9 9",), ANSWER_V4, "(the offer has: tcp host 192.0.2.9)"),
        (("udp 1 fd00::9 5",), ANSWER_V4, "receives UDP on IPv4 only (the offer has: udp host fd00::9)"),
        (("udp 1 turn.example.org 5",), ANSWER_V4, "udp host the name turn.example.org"),
        ((f"tcp 1 {NAME_A} 9",), ANSWER_V4, "(the offer has: tcp host an mDNS name)"),
        ((f"udp 1 {NAME_A} 5",), "", "the server has no network address to receive media on"),
    ],
)
def test_pairs_that_cannot_exist_are_refused_with_a_sentence(
    candidates: tuple[str, ...], answer: str, words: str
) -> None:
    with pytest.raises(IceError) as raised:
        check_pairing(offer_ice(*candidates), answer)
    assert words in str(raised.value)


def test_an_offer_of_names_is_given_up_once_no_peer_address_came_in_time() -> None:
    names = offer_ice(f"udp 1 {NAME_A} 5")
    assert peer_unheard(names, ["192.0.2.7"], 65.0) is None
    reason = peer_unheard(names, [], 5.0)
    assert reason is not None and reason.startswith(
        "no connectivity check from the browser reached the server within 5 s"
    )
    assert peer_unheard(offer_ice("udp 1 192.0.2.9 5"), [], 1e6) is None  # aioice fails those pairs itself


# ---------------------------------------------------------------------------------------------------------
# The real server and a real aiortc peer


def hide_addresses(sdp: str) -> str:
    """The offer as Firefox sends it without camera permission: each address a fresh `<uuid>.local` name that no
    one answers for, and a=end-of-candidates after them."""
    names: dict[str, str] = {}

    def rename(match: re.Match[str]) -> str:
        name = names.setdefault(match[2], f"{uuid.uuid4()}.local")
        return f"{match[1]}{name}{match[3]}"

    hidden = re.sub(r"^(a=candidate:\S+ \d+ \S+ \d+ )(\S+)( \d+ typ )", rename, sdp, flags=re.M)
    assert names and "a=end-of-candidates" in hidden and not re.search(r"typ host.*\d+\.\d+\.\d+\.\d+ ", hidden)
    return hidden


class Webcam:
    """A real aiortc peer: the webcam clip out, the annotated video back, the control channel; its offer goes to
    the server with its addresses hidden."""

    def __init__(self, clips: Clips) -> None:
        self.player = MediaPlayer(str(clips.webcam))
        self.pc: RTCPeerConnection = peer_connection()
        self.channel = self.pc.createDataChannel(CONTROL_LABEL)
        self.frames_back = 0
        self._readers: list[asyncio.Task[None]] = []
        self.scores: list[dict[str, Any]] = []
        self.opened = asyncio.Event()
        self.channel.on("open", self.opened.set)
        self.channel.on("message", self._on_message)
        self.pc.on("track", self._on_track)
        assert self.player.video is not None
        self.pc.addTrack(self.player.video)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return hide_addresses(self.pc.localDescription.sdp)

    def _on_track(self, track: MediaStreamTrack) -> None:
        async def count() -> None:
            while True:
                await track.recv()
                self.frames_back += 1

        self._readers.append(asyncio.create_task(count()))

    def _on_message(self, message: str | bytes) -> None:
        data = json.loads(message)
        if data.get("type") == "score":
            self.scores.append(data)

    async def close(self) -> None:
        for reader in self._readers:
            reader.cancel()
        await self.pc.close()
        if self.player.video is not None:
            self.player.video.stop()


@pytest.fixture
async def ice_client(aiohttp_client: Any, seeded: SeededLibrary, models: Models) -> Client:
    client: Client = await aiohttp_client(create_app(settings_for(seeded.data_dir), models))
    return client


async def post_offer(client: Client, sdp: str, reference: str) -> tuple[int, dict[str, Any]]:
    response = await client.post("/api/offer", json={"sdp": sdp, "type": "offer", "reference": reference})
    return response.status, await response.json()


async def test_an_offer_of_mdns_names_with_end_of_candidates_connects(
    ice_client: Client, seeded: SeededLibrary, clips: Clips
) -> None:
    """The server learns the peer's address from its checks: connected, annotated frames back, ticks scored."""
    webcam = Webcam(clips)
    try:
        status, answer = await post_offer(ice_client, await webcam.offer(), seeded.reference.id)
        assert status == 200, answer
        assert re.search(r"^a=candidate:\S+ 1 udp \d+ [0-9a-f.:]+ \d+ typ host", answer["sdp"], re.M), "no candidate"
        await webcam.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        await asyncio.wait_for(webcam.opened.wait(), timeout=60)
        runner = ice_client.app[SESSIONS].get(answer["session"])
        assert runner is not None and runner.pc is not None and runner.pc.connectionState == "connected"
        for t in range(40):  # 4 s of the dancer's clock, playing
            webcam.channel.send(json.dumps({"type": "clock", "t": t / 10, "playing": True}))
            await asyncio.sleep(0.1)
        await eventually(lambda: bool(webcam.scores) and webcam.frames_back > 0, timeout=60, what="scores back")
        assert runner.session.processed > 0 and webcam.frames_back > 0
        assert all(0 <= s["score"] <= 100 for s in webcam.scores if s["score"] is not None)
    finally:
        await webcam.close()


async def test_a_browser_that_never_checks_frees_its_slot_after_the_check_timeout(
    ice_client: Client, seeded: SeededLibrary, clips: Clips
) -> None:
    """An offer of names whose peer never sends a check (it never applies the answer): the session ends with the
    reason, long before the general connect timeout, and holds no slot."""
    webcam = Webcam(clips)
    try:
        status, answer = await post_offer(ice_client, await webcam.offer(), seeded.reference.id)
        assert status == 200, answer
        runner = ice_client.app[SESSIONS].get(answer["session"])
        assert runner is not None
        await eventually(lambda: not runner.live, timeout=60, what="the session to end")
        assert runner.end_reason.startswith("no connectivity check from the browser reached the server")
        assert ice_client.app[SESSIONS].live() == []
    finally:
        await webcam.close()
    await eventually(lambda: not open_peer_connections(), what="every peer connection closed")


async def test_an_offer_that_cannot_pair_is_refused_with_a_sentence(
    ice_client: Client, seeded: SeededLibrary, clips: Clips
) -> None:
    webcam = Webcam(clips)
    try:
        await webcam.pc.setLocalDescription(await webcam.pc.createOffer())
        sdp = webcam.pc.localDescription.sdp
        tcp_only = re.sub(
            r"^(a=candidate:\S+ \d+ )udp( \d+ \S+ \d+ typ host)", r"\1tcp\2 tcptype active", sdp, flags=re.M
        )
        status, body = await post_offer(ice_client, tcp_only, seeded.reference.id)
        assert status == 400
        assert "none of the offer's ICE candidates can reach this server" in body["error"], body
        assert ice_client.app[SESSIONS].live() == []
    finally:
        await webcam.close()
