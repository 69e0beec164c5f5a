"""The pure session core (stream.core): its timers (connect and media timeouts, stats cadence), the end of a
session, and what it makes of every control message, hostile ones included. Time is passed in; nothing sleeps."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

from pose.parts import NUM_PARTS
from pose.types import Detections, FrameAnalysis
from stream.clock import TickSampler
from stream.core import SessionCore, SessionLimits
from stream.rates import Rate
from stream.session import DancerPoses, LiveSession
from tests.control_messages import corpus, families

T0 = 100.0


class NotCalled:
    def analyze(self, image_bgr: np.ndarray, people: Detections | None = None) -> FrameAnalysis:
        raise AssertionError("the analyzer must not run here")


def core(ticks: int = 300, **limits: Any) -> SessionCore[str]:
    xy = np.full((ticks, NUM_PARTS, 2), 0.5, np.float32)
    session: LiveSession[str] = LiveSession(
        DancerPoses(xy, np.ones((ticks, NUM_PARTS), np.float32), 10.0, 4 / 3), NotCalled()
    )
    return SessionCore(session, SessionLimits(**limits), now=T0)


def test_an_offer_that_never_connects_ends_after_the_connect_timeout() -> None:
    c = core(connect_timeout_s=0.5, stats_interval_s=1.0)
    assert c.get_timer() == T0 + 0.5
    assert c.handle_timer(T0 + 0.49) is None and not c.ended
    assert c.handle_timer(T0 + 0.5) is None
    assert c.end_reason == "not connected after 0.5 s" and c.get_timer() is None


def test_a_silent_client_ends_after_the_media_timeout() -> None:
    c = core(connect_timeout_s=0.5, media_timeout_s=2.0, stats_interval_s=10.0)
    c.connection_state("connected", T0 + 0.2)
    assert c.get_timer() == T0 + 2.2  # no longer the connect timeout
    c.on_control('{"type": "clock", "t": 0, "playing": true}', T0 + 1.0)
    c.on_frame("frame", T0 + 1.5, None)
    assert c.get_timer() == T0 + 3.5
    c.handle_timer(T0 + 3.49)
    assert not c.ended
    c.handle_timer(T0 + 3.5)
    assert c.end_reason == "nothing from the client for 2 s"


def test_stats_come_every_interval_without_a_catch_up_burst() -> None:
    c = core(stats_interval_s=1.0, connect_timeout_s=60.0)
    assert c.get_timer() == T0 + 1.0
    assert c.handle_timer(T0 + 0.5) is None
    stats = c.handle_timer(T0 + 1.0)
    assert stats is not None and stats["type"] == "stats" and stats["processed"] == 0
    assert c.get_timer() == T0 + 2.0
    assert c.handle_timer(T0 + 5.3) is not None  # the loop was held up for 3 s: one message, then on time
    assert c.get_timer() == pytest.approx(T0 + 6.3)
    assert c.handle_timer(T0 + 5.4) is None


def test_the_first_end_reason_stands() -> None:
    c = core()
    c.connection_state("failed", T0 + 1)
    c.end("the page closed the control channel")
    assert c.end_reason == "connection failed" and c.get_timer() is None and c.handle_timer(T0 + 99) is None


def test_a_flood_is_dropped_beyond_the_rate_exactly() -> None:
    c = core(control_rate=Rate(burst=100, per_minute=3000))
    for _ in range(1000):
        c.on_control('{"type": "clock", "t": 1, "playing": true}', T0)
    assert (c.received, c.clocks, c.dropped) == (1000, 100, 900)
    for i in range(50):  # 50 a second refill: back to normal after a second
        c.on_control('{"type": "clock", "t": 1, "playing": true}', T0 + 1 + i / 50)
    assert (c.clocks, c.dropped) == (150, 900)


def test_absurd_but_finite_times_never_raise_in_the_tick_arithmetic() -> None:
    sampler = TickSampler(30.0, 100)
    for t in (1e308, -1e308, 1e300, 5e-324, float("inf"), float("nan"), 1e15, -1.0, 2.0):
        sampler.take(t)
    assert sampler.tick_at(1e308) == 100 and sampler.tick_at(-1e308) == -1
    assert (sampler.taken, sampler.skipped) == (2, 0)  # 5e-324 is tick 0; 2.0 s, 3 s after -1.0 (a seek), tick 60
    c = core()
    c.session.on_clock(1e300, True, now=T0)  # past any bound a parser would let through: still no OverflowError
    assert not c.on_frame("frame", T0 + 0.1, capture_s=1e300)


def test_every_hostile_message_is_counted_and_the_session_goes_on() -> None:
    """The fuzz corpus, paced under the rate except for its flood (sent at one instant): each message taken
    or ignored exactly as it should be, the flood dropped beyond the burst, and sampling still works after."""
    c = core(ticks=300)
    cases = corpus(c.session.duration_s, c.limits.clock_margin_s)
    now = T0
    expected: Counter[str] = Counter()
    flood = [case for case in cases if case.family == "flood"]
    for case in (case for case in cases if case.family != "flood"):
        now += 0.025  # 40 a second: under the rate
        before = c.clocks
        c.on_control(case.message, now)
        assert (c.clocks - before == 1) is case.valid, (case.family, case.message[:120])
        expected["clocks" if case.valid else "ignored"] += 1
    now += 10  # the bucket refills
    for case in flood:
        c.on_control(case.message, now)
    burst = c.limits.control_rate.burst
    counts = c.counts()
    assert counts["dropped"] == len(flood) - burst
    assert counts["clocks"] == expected["clocks"] + burst and counts["ignored"] == expected["ignored"]
    assert counts["received"] == len(cases) and counts["failed"] == 0
    c.on_control('{"type": "clock", "t": 2.0, "playing": true}', now + 1)
    assert c.on_frame("frame", now + 1.05, None)  # tick 20 or so, sampled
    print(f"\n{len(cases)} messages {families(cases)}: {counts}; ignored by reason {dict(c.ignored)}")
