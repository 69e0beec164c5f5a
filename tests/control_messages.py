"""A seeded corpus of hostile control-channel messages, each with what the server must make of it: taken as a
clock, or ignored. Used by the pure test of the session core and by the live fuzz over a real data channel."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass

from stream.protocol import MAX_CONTROL_BYTES

Message = str | bytes
MAX_SCTP_MESSAGE = 65536  # aiortc's a=max-message-size: the largest message a data channel carries


@dataclass(frozen=True)
class Case:
    family: str
    message: Message
    valid: bool  # a clock the server must take (within the rate); otherwise it must ignore it


# Values for "t" with whether a clock carrying them is valid against a reference of `duration` s (+ margin).
def t_values(duration: float, margin: float) -> list[tuple[object, bool]]:
    return [
        (0, True),
        (-0.0, True),
        (5e-324, True),
        (duration + margin, True),
        (duration + margin + 0.001, False),
        (-1e-9, False),
        (1e308, False),
        (-1e308, False),
        (10**300, False),
        (-(10**300), False),
        (2**63, False),
        ("1", False),
        (None, False),
        (True, False),
        ([1], False),
        ({"t": 1}, False),
    ]


RAW_T = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" + "0" * 500, "0x10", "+1", ".5", "1.", "01"]
PLAYING = [(True, True), (False, True), (1, False), ("true", False), (None, False), ([], False)]
TOP_LEVEL = ["null", "true", "1", '"clock"', "[]", "{}", '[{"type": "clock", "t": 1, "playing": true}]', ""]


def clock(t: object, playing: object, **extra: object) -> str:
    return json.dumps({"type": "clock", "t": t, "playing": playing, **extra})


def corpus(duration: float, margin: float, seed: int = 9, flood: int = 2000, storm: int = 500) -> list[Case]:
    """Mutated and garbage messages in families (see `families`); `flood` and `storm` are valid clocks meant to
    be sent back to back (a flood) and as a seek storm (random times, play and pause)."""
    rng = random.Random(seed)
    cases: list[Case] = []
    for t, t_ok in t_values(duration, margin):
        for playing, p_ok in PLAYING:
            cases.append(Case("mutated", clock(t, playing), t_ok and p_ok))
    for raw in RAW_T:
        cases.append(Case("non-finite/huge", '{"type": "clock", "t": ' + raw + ', "playing": true}', False))
    for kind in ("Clock", "CLOCK", "score", "end", "", None, 1, ["clock"]):
        cases.append(Case("mutated", json.dumps({"type": kind, "t": 1, "playing": True}), False))
    base = {"type": "clock", "t": 1.0, "playing": True}
    for key in base:
        cases.append(Case("mutated", json.dumps({k: v for k, v in base.items() if k != key}), False))
    cases.append(Case("mutated", '{"type": "clock", "t": 1, "t": "x", "playing": true}', False))  # last key wins
    cases.append(Case("mutated", '{"type": "clock", "t": "x", "t": 1, "playing": true}', True))
    cases += [Case("wrong type", text, False) for text in TOP_LEVEL]
    for depth in (10, 100, 400, 510, 2000, 20_000):
        nested = "[" * depth + "]" * depth
        cases.append(Case("deep nesting", nested, False))
        cases.append(Case("deep nesting", '{"type": "clock", "t": ' + nested[:800] + ', "playing": true}', False))
    cases.append(Case("deep nesting", '{"a":' * 300 + "1" + "}" * 300, False))
    valid = clock(3.25, True)
    padding = MAX_CONTROL_BYTES - len(clock(3.25, True, pad=""))
    cases.append(Case("max size", clock(3.25, True, pad="x" * padding), True))
    cases.append(Case("max size", clock(3.25, True, pad="x" * (padding + 1)), False))
    wide = json.dumps(
        {"type": "clock", "t": 3.25, "playing": True, "pad": "\u00e9" * (padding - 8)}, ensure_ascii=False
    )
    cases.append(Case("max size", wide, False))  # fewer characters than the limit, more bytes
    for size in (16 * 1024, MAX_SCTP_MESSAGE - 100):  # beyond the negotiated maximum a peer cannot send
        cases.append(Case("max size", clock(3.25, True, pad="y" * size), False))
    cases.append(Case("binary", valid.encode(), True))
    cases.append(Case("binary", valid.encode("utf-16"), True))  # json.loads detects UTF-16 and -32 in bytes
    cases.append(Case("binary", b"\xff\xfe\xfd" + valid.encode(), False))
    cases.append(Case("binary", b"\x00" * 512, False))
    cases += [Case("binary", rng.randbytes(rng.randrange(1, 1024)), False) for _ in range(300)]
    cases += [Case("binary", bytes(rng.randrange(128, 256) for _ in range(64)), False) for _ in range(50)]
    cases.append(Case("unicode", '{"type": "clock", "t": 1, "playing": true, "x": "\ud800"}', True))
    cases.append(Case("unicode", "\ud800\udfff" * 10, False))
    cases.append(Case("unicode", "\u2603" * 400, False))
    cases += [Case("garbled", _garble(valid, rng), False) for _ in range(500)]
    cases += [
        Case("seek storm", clock(round(rng.uniform(0, duration), 3), rng.random() < 0.7), True) for _ in range(storm)
    ]
    cases += [Case("flood", clock(rng.uniform(0, duration), True), True) for _ in range(flood)]
    return cases


def _garble(text: str, rng: random.Random) -> str:
    """`text` with a few characters deleted, replaced or inserted, kept invalid (never a clock JSON can read)."""
    chars = list(text)
    for _ in range(rng.randrange(1, 4)):
        at = rng.randrange(len(chars))
        chars[at : at + rng.randrange(0, 3)] = rng.choice(['"', "{", "}", ",", ":", "\\", "\x00", "\x1f", "]", "'"])
    garbled = "".join(chars)
    try:
        json.loads(garbled)
    except ValueError:
        return garbled
    return garbled + "{"  # still JSON after the changes: make it not


def sendable(case: Case) -> bool:
    """Whether a data channel can carry it: a text message must be valid UTF-8 (no lone surrogates)."""
    if isinstance(case.message, bytes):
        return True
    try:
        case.message.encode()
    except UnicodeEncodeError:
        return False
    return True


def families(cases: list[Case]) -> dict[str, int]:
    return dict(Counter(case.family for case in cases))
