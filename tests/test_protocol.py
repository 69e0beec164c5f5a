"""The wire protocol (stream.protocol), pure: offer bodies, clock messages, the server's messages, and that
importing it loads no network stack, no TensorFlow and no PyAV."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from stream.protocol import (
    Clock,
    MessageError,
    OfferError,
    end_message,
    offer_body,
    parse_answer,
    parse_clock,
    parse_offer,
    parse_offer_body,
    parse_server_message,
    score_message,
    stats_message,
)

GOOD_SDP_BODY = {"type": "offer", "reference": "r" * 22, "sdp": "v=0\r\nm=video 9 UDP 96\r\na=sendrecv\r\n"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "JSON object"),
        ({**GOOD_SDP_BODY, "type": "answer"}, '"type"'),
        ({**GOOD_SDP_BODY, "sdp": 5}, '"sdp"'),
        ({**GOOD_SDP_BODY, "sdp": "  "}, '"sdp"'),
        ({**GOOD_SDP_BODY, "reference": ""}, '"reference"'),
        ({**GOOD_SDP_BODY, "fps": "10"}, '"fps"'),
        ({**GOOD_SDP_BODY, "fps": math.inf}, '"fps"'),
        ({**GOOD_SDP_BODY, "mirror": 1}, '"mirror"'),
        ({**GOOD_SDP_BODY, "pose": 1}, '"pose"'),
        ({**GOOD_SDP_BODY, "pose": "x" * 1000}, '"pose"'),
    ],
)
def test_offer_validation(body: object, message: str) -> None:
    with pytest.raises(OfferError, match=message):
        parse_offer(body)


@pytest.mark.parametrize(
    ("message", "parsed"),
    [
        ('{"type": "clock", "t": 1.5, "playing": true}', Clock(1.5, True)),
        ('{"type": "clock", "t": 0, "playing": false}', Clock(0.0, False)),
        ('{"type": "clock", "t": -1, "playing": true}', "t out of range"),
        ('{"type": "clock", "t": 1e308, "playing": true}', "t out of range"),
        ('{"type": "clock", "t": ' + "9" * 400 + ', "playing": true}', "t out of range"),
        ('{"type": "clock", "t": "1", "playing": true}', "t not a number"),
        ('{"type": "clock", "t": true, "playing": true}', "t not a number"),
        ('{"type": "clock", "t": 1, "playing": 1}', "playing not a boolean"),
        ('{"type": "clock", "t": NaN, "playing": true}', "t not a number"),
        ('{"type": "clock", "t": -Infinity, "playing": true}', "t not a number"),
        ('{"type": "hello"}', "not a clock message"),
        ("[1]", "not a clock message"),
        ("[" * 1000 + "]" * 20, "not JSON"),
        ("not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        ('{"type": "clock", "t": 1, "playing": true, "pad": "' + "x" * 1000 + '"}', "too large"),
        ("\u2603" * 400, "too large"),  # 400 characters, 1200 bytes
    ],
)
def test_clock_messages(message: str | bytes, parsed: Clock | str) -> None:
    if isinstance(parsed, Clock):
        assert parse_clock(message, max_t=600) == parsed
    else:
        with pytest.raises(MessageError) as raised:
            parse_clock(message, max_t=600)
        assert raised.value.reason == parsed


def test_offer_bodies_round_trip() -> None:
    body = offer_body("v=0", "ref", fps=5, mirror=False)
    assert json.loads(body) == {"sdp": "v=0", "type": "offer", "reference": "ref", "mirror": False, "fps": 5}
    assert parse_offer_body(body.encode()).fps == 5.0
    for bad in (b"\xff", b"[" * 100_000, b"{"):
        with pytest.raises(OfferError, match="JSON object"):
            parse_offer_body(bad)


def test_the_answer_and_the_server_messages_round_trip() -> None:
    answer = {"sdp": "v=0", "type": "answer", "session": "s", "token": "t", "pose": None, "warnings": ["w"]}
    assert parse_answer(answer) == answer
    with pytest.raises(ValueError, match="token"):
        parse_answer({**answer, "token": 5})
    stats = stats_message(3, 1, 0, 29.97, 30.0, 10.0, 0.0421)
    assert stats["inference_ms"] == 42.1
    for message in (score_message(4, 0.4, 71.234, "l_wrist"), stats, end_message("the page closed the channel")):
        assert parse_server_message(json.dumps(message)) == message
    for junk in ("[", '{"type": "score", "tick": "4", "score": 1, "t": 0}', '{"type": "end"}', "null", b"\xff"):
        assert parse_server_message(junk) is None


def test_importing_the_protocol_loads_no_network_stack_and_no_model_library() -> None:
    code = (
        "import sys, stream.protocol, stream.core, stream.clock; "
        "print(sorted(m for m in ('aiortc', 'aiohttp', 'tensorflow', 'av') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
