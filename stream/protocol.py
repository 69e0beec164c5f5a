"""Every message on dancesync's wire, typed once, with its parser and its builder. Pure: no aiortc, aiohttp,
TensorFlow or PyAV, so the server, `stream.client` and the tests share it without loading a network stack.

The API and each message are described in docs/api.md; this module is their one implementation:

* `POST /api/offer`: the body (`OfferRequest`, `parse_offer`) and the answer (`AnswerMessage`, `answer_message`);
* the `control` data channel: page → server `clock` (`Clock`, `parse_clock`, `clock_message`); server → page
  `score`, `move`, `pose` (keypoints-only sessions), `stats` and `end` (their builders, and
  `parse_server_message` for clients);
* `GET /api/sessions/{session}`: the session's record (`SessionRecord`).

Parsers of what a peer sends raise (`OfferError`, `MessageError`) with a sentence or a short reason; they never
let another exception out, whatever the input (deep nesting, huge or non-finite numbers, binary).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Literal, TypedDict, TypeGuard

CONTROL_LABEL = "control"
FPS_RANGE = (0.1, 60.0)  # a session's ticks per second
MAX_POSE_NAME = 40
MAX_CONTROL_BYTES = 1024  # a clock message is ~50 bytes
PROFILE_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 random bytes, base64url without padding


def is_profile_token(value: object) -> bool:
    """A browser's anonymous profile token: 32 random bytes in unpadded base64url (43 characters)."""
    return isinstance(value, str) and PROFILE_TOKEN.fullmatch(value) is not None


# --- POST /api/offer


class OfferError(ValueError):
    """The offer cannot start a session; the message is for the client."""


@dataclass(frozen=True)
class OfferRequest:
    """A validated `POST /api/offer` body. fps None means the reference's own tick rate; pose None, the pose
    backend that extracted the reference (so both sides are placed alike); profile, the browser's anonymous
    profile token (`is_profile_token`) that lists the session among its past ones, or None; returned_video False
    asks for no returned video: the server then draws and encodes nothing and sends the user's keypoints per
    tick as `pose` messages instead (the page draws them over its own camera view)."""

    sdp: str
    reference: str
    fps: float | None
    mirror: bool
    pose: str | None = None
    profile: str | None = None
    mosaic: bool = True
    returned_video: bool = True


def parse_offer_body(data: bytes) -> OfferRequest:
    """`parse_offer` on the raw body: not JSON (bad UTF-8, too deeply nested) is an OfferError too."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        raise OfferError("the body must be a JSON object") from None
    return parse_offer(body)


def parse_offer(body: object) -> OfferRequest:
    """Validate the fields of a `POST /api/offer` body (OfferError with a message for the client otherwise).
    The SDP itself is checked by the shell that hands it to WebRTC (`stream.live.check_offer_sdp`)."""
    if not isinstance(body, dict):
        raise OfferError("expected a JSON object with sdp, type, reference")
    sdp, kind, reference = body.get("sdp"), body.get("type"), body.get("reference")
    fps, mirror, pose = body.get("fps"), body.get("mirror", True), body.get("pose")
    if kind != "offer":
        raise OfferError('"type" must be "offer"')
    if not isinstance(sdp, str) or not sdp.strip():
        raise OfferError('"sdp" must be a non-empty string')
    if not isinstance(reference, str) or not reference:
        raise OfferError('"reference" must be a reference id (a string)')
    if fps is not None and not _finite_number(fps):
        raise OfferError('"fps" must be a number')
    if fps is not None and not FPS_RANGE[0] <= fps <= FPS_RANGE[1]:
        raise OfferError(f'"fps" must be between {FPS_RANGE[0]:g} and {FPS_RANGE[1]:g} ticks per second')
    if not isinstance(mirror, bool):
        raise OfferError('"mirror" must be true or false')
    if pose is not None and not (isinstance(pose, str) and 0 < len(pose) <= MAX_POSE_NAME):
        raise OfferError('"pose" must be the name of a pose backend')
    profile = body.get("profile")
    if profile is not None and not is_profile_token(profile):
        raise OfferError('"profile" must be a profile token: 43 characters of A-Z, a-z, 0-9, "-" and "_"')
    mosaic = body.get("mosaic", True)
    if not isinstance(mosaic, bool):
        raise OfferError('"mosaic" must be true or false')
    returned_video = body.get("returned_video", True)
    if not isinstance(returned_video, bool):
        raise OfferError('"returned_video" must be true or false')
    fps_value = None if fps is None else float(fps)
    return OfferRequest(sdp, reference, fps_value, mirror, pose, profile, mosaic, returned_video)


def offer_body(
    sdp: str,
    reference: str,
    fps: float | None = None,
    mirror: bool = True,
    pose: str | None = None,
    profile: str | None = None,
    mosaic: bool | None = None,
    returned_video: bool = True,
) -> str:
    """The body a client posts (fields left at None are left out, so the server's defaults apply)."""
    body: dict[str, object] = {"sdp": sdp, "type": "offer", "reference": reference, "mirror": mirror}
    fields = (("fps", fps), ("pose", pose), ("profile", profile), ("mosaic", mosaic))
    body |= {k: v for k, v in fields if v is not None}
    if not returned_video:
        body["returned_video"] = False
    return json.dumps(body)


class AnswerMessage(TypedDict):
    """The answer to an offer: the SDP, the session's id and export token, its pose backend, warnings for the user."""

    sdp: str
    type: str
    session: str
    token: str
    pose: str | None
    warnings: list[str]


def answer_message(
    sdp: str, kind: str, session: str, token: str, pose: str | None, warnings: list[str]
) -> AnswerMessage:
    return {"sdp": sdp, "type": kind, "session": session, "token": token, "pose": pose, "warnings": list(warnings)}


def parse_answer(data: object) -> AnswerMessage:
    """An answer as a client receives it (ValueError if it is not one)."""
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    for key in ("sdp", "type", "session", "token"):
        if not isinstance(data.get(key), str):
            raise ValueError(f"the answer has no {key!r}")
    pose, warnings = data.get("pose"), data.get("warnings", [])
    if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
        raise ValueError("the answer's warnings are not a list of sentences")
    pose = pose if isinstance(pose, str) else None
    return answer_message(data["sdp"], data["type"], data["session"], data["token"], pose, warnings)


# --- the control channel: page → server


class MessageError(ValueError):
    """A control message that is ignored (and counted); `reason` is a short key for the counters."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


RATE_RANGE = (0.0625, 16.0)  # what browsers allow for a media element's playbackRate


@dataclass(frozen=True)
class Clock:
    """`{"type": "clock", "t": dancer media time (s), "playing": bool, "rate"?: playback rate}`: sent >= 10
    times a second and on play, pause, seek and rate change. Without `rate` the server measures it."""

    t: float
    playing: bool
    rate: float | None = None


def parse_clock(message: object, max_bytes: int = MAX_CONTROL_BYTES, max_t: float = math.inf) -> Clock:
    """The clock in a control message, or MessageError: larger than `max_bytes` (UTF-8), not JSON, not a clock,
    or `t` not a number in [0, `max_t`] (huge integers and NaN/Infinity included)."""
    if isinstance(message, str):
        if len(message) > max_bytes or len(message.encode("utf-8", "surrogatepass")) > max_bytes:
            raise MessageError("too large")
    elif isinstance(message, bytes | bytearray):
        if len(message) > max_bytes:
            raise MessageError("too large")
    else:
        raise MessageError("not text")
    try:
        data = json.loads(message)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise MessageError("not JSON") from None
    if not isinstance(data, dict) or data.get("type") != "clock":
        raise MessageError("not a clock message")
    t, playing = data.get("t"), data.get("playing")
    if not _finite_number(t):
        raise MessageError("t not a number")
    if not 0 <= t <= max_t:  # compared before float(): an integer of 400 digits does not fit one
        raise MessageError("t out of range")
    if not isinstance(playing, bool):
        raise MessageError("playing not a boolean")
    rate = data.get("rate")
    if rate is not None and not (_finite_number(rate) and RATE_RANGE[0] <= rate <= RATE_RANGE[1]):
        raise MessageError("rate out of range")
    return Clock(float(t), playing, None if rate is None else float(rate))


def clock_message(t: float, playing: bool, rate: float | None = None) -> str:
    message: dict[str, object] = {"type": "clock", "t": t, "playing": playing}
    if rate is not None:
        message["rate"] = rate
    return json.dumps(message)


# --- the control channel: server → page


class ScoreMessage(TypedDict):
    """One processed tick: its reference tick, time (s), calibrated score 0..100, the raw similarity 0..100, the
    user's part and limb furthest off (or None), and the index of the reference move the tick is in (or None)."""

    type: Literal["score"]
    tick: int
    t: float
    score: float
    raw: float
    worst: str | None
    limb: str | None
    move: int | None


class MoveMessage(TypedDict):
    """A move's final verdict: its index, start and end (s of the reference), tier ("perfect", "good", "ok",
    "miss"), score 0..100, the limb most off (or None) and the timing in ms (positive: the user was late; None
    when nothing was comparable)."""

    type: Literal["move"]
    move: int
    start: float
    end: float
    tier: str
    score: float
    limb: str | None
    offset_ms: int | None


class PoseMessage(TypedDict):
    """In a keypoints-only session, one per processed tick, before its `score`: the user's main pose as the
    annotated video would have drawn it (smoothed), 18 parts in pose.parts order, each [x, y, confidence] with x
    and y in 0..1 of the webcam frame (unmirrored) or None where the part was not found; `limb` the limb the
    tick's verdict found off (or None)."""

    type: Literal["pose"]
    tick: int
    t: float
    keypoints: list[list[float] | None]
    limb: str | None


class StatsMessage(TypedDict):
    """Every `stats_interval_s`: ticks processed/skipped, analyzer errors, the returned track's and the webcam's
    frame rates, the session's tick rate, the mean inference time, the user's estimated lag behind the music
    (ms, positive: late; None before any comparable tick) with whether it is trusted yet, and the time the
    session's stages took so far (ms by stage, stream.stages)."""

    type: Literal["stats"]
    processed: int
    skipped: int
    errors: int
    fps: float
    webcam_fps: float
    tick_fps: float
    inference_ms: float
    latency_ms: int | None
    latency_confident: bool
    stages_ms: dict[str, float]


class EndMessage(TypedDict):
    """Sent before the server ends the session; `reason` is a sentence for the user."""

    type: Literal["end"]
    reason: str


ServerMessage = ScoreMessage | MoveMessage | PoseMessage | StatsMessage | EndMessage


def score_message(
    tick: int,
    t: float,
    score: float,
    worst: str | None,
    raw: float = 0.0,
    limb: str | None = None,
    move: int | None = None,
) -> ScoreMessage:
    return {
        "type": "score",
        "tick": tick,
        "t": t,
        "score": round(score, 2),
        "raw": round(raw, 2),
        "worst": worst,
        "limb": limb,
        "move": move,
    }


def move_message(
    move: int, start: float, end: float, tier: str, score: float, limb: str | None, offset_ms: int | None
) -> MoveMessage:
    return {
        "type": "move",
        "move": move,
        "start": start,
        "end": end,
        "tier": tier,
        "score": round(score, 2),
        "limb": limb,
        "offset_ms": offset_ms,
    }


def pose_message(tick: int, t: float, keypoints: list[list[float] | None], limb: str | None) -> PoseMessage:
    return {"type": "pose", "tick": tick, "t": t, "keypoints": keypoints, "limb": limb}


def stats_message(
    processed: int,
    skipped: int,
    errors: int,
    fps: float,
    webcam_fps: float,
    tick_fps: float,
    inference_s: float,
    latency_ms: int | None = None,
    latency_confident: bool = False,
    stages_ms: dict[str, float] | None = None,
) -> StatsMessage:
    return {
        "type": "stats",
        "processed": processed,
        "skipped": skipped,
        "errors": errors,
        "fps": round(fps, 2),
        "webcam_fps": round(webcam_fps, 2),
        "tick_fps": tick_fps,
        "inference_ms": round(1000 * inference_s, 1),
        "latency_ms": latency_ms,
        "latency_confident": latency_confident,
        "stages_ms": dict(stages_ms or {}),
    }


def end_message(reason: str) -> EndMessage:
    return {"type": "end", "reason": reason}


def encode(message: ServerMessage) -> str:
    return json.dumps(message)


def parse_server_message(message: str | bytes) -> ServerMessage | None:
    """A server → page message as a client reads it; None for anything it does not know (ignored)."""
    try:
        data = json.loads(message)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    kind = data.get("type")
    if kind == "score" and _whole(data.get("tick")) and _finite_number(data.get("score")):
        t, worst, limb, move, raw = (
            data.get("t"),
            data.get("worst"),
            data.get("limb"),
            data.get("move"),
            data.get("raw"),
        )
        if (
            _finite_number(t)
            and _finite_number(raw)
            and _name(worst)
            and _name(limb)
            and (move is None or _whole(move))
        ):
            return score_message(data["tick"], float(t), float(data["score"]), worst, float(raw), limb, move)
    if kind == "move" and _whole(data.get("move")) and isinstance(data.get("tier"), str):
        start, end, score, limb, offset = (data.get(k) for k in ("start", "end", "score", "limb", "offset_ms"))
        if (
            _finite_number(start)
            and _finite_number(end)
            and _finite_number(score)
            and _name(limb)
            and (offset is None or _whole(offset))
        ):
            return move_message(data["move"], float(start), float(end), data["tier"], float(score), limb, offset)
    if kind == "pose" and _whole(data.get("tick")) and _finite_number(data.get("t")) and _name(data.get("limb")):
        keypoints = data.get("keypoints")
        if isinstance(keypoints, list) and all(_keypoint(k) for k in keypoints):
            return pose_message(data["tick"], float(data["t"]), keypoints, data["limb"])
    others = ("type", "latency_ms", "latency_confident", "stages_ms")
    counts = [k for k in StatsMessage.__annotations__ if k not in others]
    latency, stages = data.get("latency_ms"), data.get("stages_ms", {})
    if (
        kind == "stats"
        and all(_finite_number(data.get(k)) for k in counts)
        and (latency is None or _whole(latency))
        and isinstance(data.get("latency_confident"), bool)
        and isinstance(stages, dict)
        and all(isinstance(k, str) and _finite_number(v) for k, v in stages.items())
    ):
        return StatsMessage(**(data | {"stages_ms": stages}))  # type: ignore[typeddict-item]
    if kind == "end" and isinstance(data.get("reason"), str):
        return end_message(data["reason"])
    return None


# --- GET /api/sessions/{session}


class ControlCounts(TypedDict):
    """What became of the messages received on `control`: `received` = `clocks` + `ignored` + `dropped`, plus
    `failed` handler failures (a bug; each also counted in one of the others)."""

    received: int
    clocks: int
    ignored: int
    dropped: int
    failed: int


class TickTimes(TypedDict):
    """A session's recent tick times (processing of one tick on the analyzer thread), ms; None before any."""

    p50: float | None
    p95: float | None
    n: int


class SessionRecord(TypedDict):
    """What a session was run with and how it went; kept `retention_s` after its end."""

    session: str
    reference: str
    pose: str | None
    dancer_pose: str | None
    tick_fps: float
    mirror: bool
    processed: int
    skipped: int
    errors: int
    passes: int
    warnings: list[str]
    control: ControlCounts
    live: bool
    end_reason: str | None
    latency_ms: int | None
    latency_confident: bool
    tiers: dict[str, int]
    returned_video: bool
    stages_ms: dict[str, float]
    tick_ms: TickTimes


def _keypoint(value: object) -> bool:
    return value is None or (isinstance(value, list) and len(value) == 3 and all(_finite_number(v) for v in value))


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _name(value: object) -> TypeGuard[str | None]:
    return value is None or isinstance(value, str)


def _finite_number(value: object) -> TypeGuard[int | float]:
    """An int or float (not a bool) that is finite; huge integers count as finite numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or math.isfinite(value)
