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
    ServerMessage,
    clock_message,
    end_message,
    move_message,
    offer_body,
    parse_answer,
    parse_clock,
    parse_offer,
    parse_offer_body,
    parse_server_message,
    pose_message,
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
        ({**GOOD_SDP_BODY, "returned_video": "no"}, '"returned_video"'),
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
    assert parse_offer_body(body.encode()).returned_video  # the annotated video is the default
    keypoints_only = offer_body("v=0", "ref", returned_video=False)
    assert json.loads(keypoints_only)["returned_video"] is False
    assert not parse_offer_body(keypoints_only.encode()).returned_video
    for bad in (b"\xff", b"[" * 100_000, b"{"):
        with pytest.raises(OfferError, match="JSON object"):
            parse_offer_body(bad)


def test_the_answer_and_the_server_messages_round_trip() -> None:
    answer = {"sdp": "v=0", "type": "answer", "session": "s", "token": "t", "pose": None, "warnings": ["w"]}
    assert parse_answer(answer) == answer
    with pytest.raises(ValueError, match="token"):
        parse_answer({**answer, "token": 5})
    stats = stats_message(3, 1, 0, 29.97, 30.0, 10.0, 0.0421, 300, True)
    assert (stats["inference_ms"], stats["latency_ms"], stats["latency_confident"]) == (42.1, 300, True)
    score = score_message(4, 0.4, 71.234, "l_wrist", 88.456, "left_arm", 0)
    assert (score["score"], score["raw"], score["limb"], score["move"]) == (71.23, 88.46, "left_arm", 0)
    move = move_message(2, 2.0, 3.0, "good", 64.567, "right_leg", -120)
    assert move == {"type": "move", "move": 2, "start": 2.0, "end": 3.0, "tier": "good", "score": 64.57,
                    "limb": "right_leg", "offset_ms": -120}  # fmt: skip
    unknown = (score_message(5, 0.5, 0.0, None), move_message(0, 0.0, 1.0, "miss", 0.0, None, None))
    messages: list[ServerMessage] = [score, *unknown, move, stats, stats_message(0, 0, 0, 0.0, 0.0, 10.0, 0.0)]
    staged = stats_message(3, 1, 0, 0.0, 30.0, 10.0, 0.02, stages_ms={"pose": 120.5, "decode": 33.0})
    pose = pose_message(4, 0.4, [[0.25, 0.5, 0.9], *([None] * 17)], "left_arm")
    messages += [staged, pose]
    for message in [*messages, end_message("the page closed the channel")]:
        assert parse_server_message(json.dumps(message)) == message
    junk: list[str | bytes] = [
        *("[", '{"type": "score", "tick": "4", "score": 1, "t": 0}', '{"type": "end"}', "null", b"\xff"),
        json.dumps({**score, "raw": None}),
        json.dumps({**score, "move": 1.5}),
        json.dumps({**move, "offset_ms": "late"}),
        json.dumps({**stats, "latency_confident": 1}),
        json.dumps({**stats, "stages_ms": {"pose": "slow"}}),
        json.dumps({**pose, "keypoints": [[0.1, 0.2]]}),
        json.dumps({**pose, "keypoints": [[0.1, 0.2, None]]}),
        json.dumps({**pose, "tick": 1.5}),
    ]
    for text in junk:
        assert parse_server_message(text) is None


def test_a_clock_may_carry_the_playback_rate() -> None:
    assert parse_clock(clock_message(3.5, True, 0.75)) == Clock(3.5, True, 0.75)
    assert parse_clock(clock_message(3.5, True)).rate is None
    for rate in (0, -1, 100, "fast", True):
        with pytest.raises(MessageError, match="rate"):
            parse_clock(json.dumps({"type": "clock", "t": 1, "playing": True, "rate": rate}))


def test_importing_the_protocol_loads_no_network_stack_and_no_model_library() -> None:
    code = (
        "import sys, stream.protocol, stream.core, stream.clock; "
        "print(sorted(m for m in ('aiortc', 'aiohttp', 'tensorflow', 'av') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_the_offer_may_turn_the_face_mosaic_off() -> None:
    assert parse_offer(GOOD_SDP_BODY).mosaic is True
    assert parse_offer({**GOOD_SDP_BODY, "mosaic": False}).mosaic is False
    with pytest.raises(OfferError, match='"mosaic"'):
        parse_offer({**GOOD_SDP_BODY, "mosaic": "no"})
    assert json.loads(offer_body("v=0", "ref", mosaic=False))["mosaic"] is False
