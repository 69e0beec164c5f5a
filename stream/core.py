"""The pure core of a live session: everything about its life that depends on time, decided from `now`.

After aioquic's connection (`get_timer()` / `handle_timer(now)`): the core never sleeps or schedules. The shell
(stream.live) feeds it events with their time (connection states, control messages, webcam frames, frames sent
back), asks `get_timer()` when to call next, arms `loop.call_at` for it and calls `handle_timer(now)` then.
The core decides:

* the end of the session and its reason (`end_reason`, set once): no connection within `connect_timeout_s`; once
  connected (or once a webcam frame came), nothing from the client (no frame, no control message) for
  `media_timeout_s` (a killed client: ICE consent would only fail it after ~30 s); the connection failing or
  closing; anything the shell reports with `end`;
* when a `stats` message is due (every `stats_interval_s`);
* what becomes of each control message: a flood beyond `control_rate` is dropped before it is read; a message
  larger than `control_max_bytes`, not a clock, or whose `t` is outside 0 .. the reference's duration +
  `clock_margin_s` is ignored; each is counted (`counts`), and the clocks go to the `LiveSession`.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from stream.protocol import MAX_CONTROL_BYTES, ControlCounts, MessageError, StatsMessage, parse_clock
from stream.rates import Rate, RateLimiter
from stream.session import LiveSession, RateMeter

F = TypeVar("F")

CONTROL_RATE = Rate(burst=100, per_minute=3000)  # the page sends ~20/s, more while the user scrubs; 50/s is a flood


@dataclass(frozen=True)
class SessionLimits:
    """A session's timeouts and control-channel limits (fields of `server.Settings` of the same names)."""

    connect_timeout_s: float = 30.0
    media_timeout_s: float = 10.0
    stats_interval_s: float = 1.0
    peer_check_timeout_s: float = 5.0  # an mDNS-only offer's browser must have reached us by then (stream.ice)
    control_max_bytes: int = MAX_CONTROL_BYTES
    clock_margin_s: float = 5.0
    control_rate: Rate = field(default=CONTROL_RATE)

    def __post_init__(self) -> None:
        times = (self.connect_timeout_s, self.media_timeout_s, self.stats_interval_s, self.peer_check_timeout_s)
        if not all(math.isfinite(t) and t > 0 for t in times):
            raise ValueError(f"timeouts and intervals must be positive seconds, got {times}")
        if self.control_max_bytes < 64 or not (math.isfinite(self.clock_margin_s) and self.clock_margin_s >= 0):
            raise ValueError("control_max_bytes must be >= 64 and clock_margin_s >= 0")


class SessionCore(Generic[F]):
    """One session's timers, end and control-channel policy (see the module docstring). `now`: seconds of the
    shell's monotonic clock."""

    def __init__(self, session: LiveSession[F], limits: SessionLimits, now: float) -> None:
        self.session = session
        self.limits = limits
        self.started_at = now
        self.heard_at = now  # last webcam frame or control message
        self.connected = False
        self.end_reason: str | None = None
        self.output_rate = RateMeter()  # frames sent back
        self.max_t = session.duration_s + limits.clock_margin_s
        self.received = self.clocks = self.dropped = self.failed = 0
        self.ignored: Counter[str] = Counter()  # by reason
        self._bucket = RateLimiter(limits.control_rate, max_clients=1)
        self._next_stats = now + limits.stats_interval_s
        self._peer_since: float | None = None  # when the peer check started (an mDNS-only offer was answered)

    @property
    def ended(self) -> bool:
        return self.end_reason is not None

    def end(self, reason: str) -> None:
        """End the session; the first reason stands."""
        if self.end_reason is None:
            self.end_reason = reason

    # --- events

    def connection_state(self, state: str, now: float) -> None:
        if state == "connected" and not self.connected:
            self.connected, self.heard_at = True, now
        if state in ("failed", "closed"):
            self.end(f"connection {state}")

    def on_control(self, message: object, now: float) -> None:
        """A message on `control`: drop it (flood), ignore it (bad), or take its clock."""
        self.received += 1
        self.heard_at = now
        if self._bucket.take("control", now) > 0:
            self.dropped += 1
            return
        try:
            clock = parse_clock(message, self.limits.control_max_bytes, self.max_t)
        except MessageError as exc:
            self.ignored[exc.reason] += 1
            return
        self.clocks += 1
        self.session.on_clock(clock.t, clock.playing, now, clock.rate)

    def on_frame(self, frame: F, now: float, capture_s: float | None) -> bool:
        """A webcam frame; True when it was put in the session's mailbox for a tick."""
        self.heard_at = now
        return self.session.on_frame(frame, now, capture_s)

    def on_sent(self, now: float) -> None:
        self.output_rate.add(now)

    def handler_failed(self) -> bool:
        """A shell handler raised on a peer's event (a bug): count it; True the first time (log it then)."""
        self.failed += 1
        return self.failed == 1

    # --- time

    def deadline(self) -> float:
        """When the session ends if nothing more is heard."""
        if not self.connected and self.session.frames == 0:
            return self.started_at + self.limits.connect_timeout_s
        return self.heard_at + self.limits.media_timeout_s

    def get_timer(self) -> float | None:
        """When `handle_timer` must next be called; None once the session has ended."""
        if self.ended:
            return None
        peer = self._peer_check_at()
        return min(self._next_stats, self.deadline(), math.inf if peer is None else peer)

    # --- the peer check (an offer whose candidates are all mDNS names, stream.ice)

    def expect_peer(self, now: float) -> None:
        """An offer of names only was answered: unless connected, check for the peer's address at the timeout."""
        self._peer_since = now

    def peer_check_due(self, now: float) -> bool:
        at = self._peer_check_at()
        return at is not None and now >= at

    def since_peer(self, now: float) -> float:
        return 0.0 if self._peer_since is None else now - self._peer_since

    def peer_checked(self, reason: str | None) -> None:
        """The shell's answer to a due peer check: why no pair can form (the session ends), or None (it goes on)."""
        self._peer_since = None
        if reason is not None:
            self.end(reason)

    def _peer_check_at(self) -> float | None:
        if self._peer_since is None or self.connected:
            return None
        return self._peer_since + self.limits.peer_check_timeout_s

    def handle_timer(self, now: float) -> StatsMessage | None:
        """Decide at `now`: end the session on a timeout, or return the `stats` message if one is due."""
        if self.ended:
            return None
        if now >= self.deadline():
            if not self.connected and self.session.frames == 0:
                self.end(f"not connected after {self.limits.connect_timeout_s:g} s")
            else:
                self.end(f"nothing from the client for {self.limits.media_timeout_s:g} s")
            return None
        if now < self._next_stats:
            return None
        interval = self.limits.stats_interval_s
        self._next_stats += interval
        if self._next_stats <= now:  # called late: no burst of catch-up messages
            self._next_stats = now + interval
        return self.session.stats(now, self.output_rate.rate(now))

    def counts(self) -> ControlCounts:
        ignored = sum(self.ignored.values())
        return {
            "received": self.received,
            "clocks": self.clocks,
            "ignored": ignored,
            "dropped": self.dropped,
            "failed": self.failed,
        }
