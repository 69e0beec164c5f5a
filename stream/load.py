"""Admission by measured load: whether this server takes one more live session, decided from what its live
sessions measure. Pure: the shell samples each live session's counters with the time (`now`, s of a monotonic
clock) and asks `snapshot` before it answers an offer.

Each sample is a session's running totals: ticks processed, ticks skipped, and the seconds its work took
(stream.stages: its ticks, the background detector, its webcam decoder, and the returned frames' drawing and
encoding; wall time, but for the decoder's CPU time: on a busy machine a tick waits for a core and takes longer,
which is exactly what a tick budget is about). Over the last `window_s` seconds of samples of one session:

* kept = processed / (processed + skipped): the share of its due ticks that were analysed;
* busy = work seconds / wall seconds: the share of one core the session holds; its tick path's part is its tick
  time over its tick budget (1 / tick rate) times the share of ticks processed.

A session is *measured* once its window holds `min_ticks` due ticks. The load figure is the measured sessions'
busy summed, plus the predicted cost of every unmeasured one, over the CPU count; a measured session keeping
fewer than `keep_goal` of its ticks means the machine is past its capacity already (the load is then at least 1,
whatever the busy sum says). A new session's predicted cost is the mean busy of the measured sessions, or, with
none measured now, that of the sessions measured last (kept as a moving average over ended sessions too).

A new session is admitted iff the hard cap (`max_sessions`) has room and either nothing was ever measured (then
only the cap decides: there is nothing to predict from) or the load predicted after it stays <= `threshold`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypedDict

COST_SMOOTHING = 0.3  # weight of the newest measured cost in the moving average of ended and live sessions


@dataclass(frozen=True)
class LoadPolicy:
    """How admission reads the load (see the module docstring)."""

    threshold: float = 0.9
    keep_goal: float = 0.95
    window_s: float = 10.0
    min_ticks: int = 20

    def __post_init__(self) -> None:
        if not (self.threshold > 0 and 0 < self.keep_goal <= 1 and self.window_s > 0 and self.min_ticks >= 1):
            raise ValueError(f"need threshold > 0, keep_goal in (0, 1], window_s > 0, min_ticks >= 1: {self}")


@dataclass(frozen=True)
class SessionSample:
    """A live session's running totals at `now`."""

    now: float
    processed: int
    skipped: int
    busy_s: float


@dataclass(frozen=True)
class SessionLoad:
    """One session's figures over its window: due ticks, kept share and busy (cores)."""

    due: int
    kept: float
    busy: float


class LoadSnapshot(TypedDict):
    """The server's load as admission sees it. sessions: live ones plus offers being answered; measured: those
    with a full window; load: the load figure (cores in use by sessions over cores; >= 1 past capacity);
    session_cost: the load figure one more session is predicted to add (None: nothing measured yet); capacity:
    the sessions the threshold allows at that cost, within the hard cap (the hard cap before any measurement);
    kept_min: the lowest kept share of a measured session (None: none measured); admitting: whether an offer
    now would be taken."""

    sessions: int
    measured: int
    max_sessions: int
    cores: int
    threshold: float
    load: float
    session_cost: float | None
    capacity: int
    kept_min: float | None
    admitting: bool


class LoadGauge:
    """Live sessions' samples, and the admission decision drawn from them (see the module docstring)."""

    def __init__(self, cores: int, max_sessions: int, policy: LoadPolicy | None = None) -> None:
        if cores < 1 or max_sessions < 1:
            raise ValueError(f"need cores >= 1 and max_sessions >= 1, got {cores} and {max_sessions}")
        self.cores = cores
        self.max_sessions = max_sessions
        self.policy = policy or LoadPolicy()
        self._samples: dict[str, deque[SessionSample]] = {}
        self._cost: float | None = None  # moving average of measured sessions' busy (cores)

    def sample(self, session: str, now: float, processed: int, skipped: int, busy_s: float) -> None:
        """A live session's running totals at `now` (samples of one session come in time order)."""
        samples = self._samples.setdefault(session, deque())
        samples.append(SessionSample(now, processed, skipped, busy_s))
        while len(samples) > 2 and samples[1].now <= now - self.policy.window_s:
            samples.popleft()  # keep one sample at or before the window's start
        figures = self.session_load(session)
        if figures is not None:
            self._learn(figures.busy)

    def forget(self, session: str) -> None:
        """The session has ended (its cost stays in the moving average)."""
        self._samples.pop(session, None)

    def session_load(self, session: str) -> SessionLoad | None:
        """The session's figures over its window, or None until it holds `min_ticks` due ticks."""
        samples = self._samples.get(session)
        if not samples or len(samples) < 2:
            return None
        first, last = samples[0], samples[-1]
        processed, skipped = last.processed - first.processed, last.skipped - first.skipped
        due, wall = processed + skipped, last.now - first.now
        if due < self.policy.min_ticks or wall <= 0:
            return None
        return SessionLoad(due, processed / due, max(0.0, last.busy_s - first.busy_s) / wall)

    def snapshot(self, live: Iterable[str], reserved: int = 0) -> LoadSnapshot:
        """The load with `live` sessions running (their ids; samples of any other session are forgotten) and
        `reserved` more being answered."""
        live = list(live)
        for gone in set(self._samples) - set(live):
            self.forget(gone)
        figures = [f for f in (self.session_load(s) for s in live) if f is not None]
        sessions = len(live) + reserved
        unmeasured = sessions - len(figures)
        cost = sum(f.busy for f in figures) / len(figures) if figures else self._cost
        load = (sum(f.busy for f in figures) + unmeasured * (cost or 0.0)) / self.cores
        kept_min = min((f.kept for f in figures), default=None)
        overloaded = kept_min is not None and kept_min < self.policy.keep_goal
        if overloaded:
            load = max(load, 1.0)
        room = sessions < self.max_sessions
        if cost is None:
            capacity, admitting, added = self.max_sessions, room, None
        else:
            added = cost / self.cores
            ratio = self.policy.threshold / added if added > 0 else math.inf
            fits = math.floor(ratio + 1e-9) if ratio < self.max_sessions else self.max_sessions
            capacity = min(self.max_sessions, max(1, fits), max(1, len(figures) - 1) if overloaded else fits)
            admitting = room and (sessions == 0 or (not overloaded and load + added <= self.policy.threshold))
        return {
            "sessions": sessions,
            "measured": len(figures),
            "max_sessions": self.max_sessions,
            "cores": self.cores,
            "threshold": self.policy.threshold,
            "load": round(load, 4),
            "session_cost": None if added is None else round(added, 4),
            "capacity": capacity,
            "kept_min": None if kept_min is None else round(kept_min, 4),
            "admitting": admitting,
        }

    def _learn(self, busy: float) -> None:
        self._cost = busy if self._cost is None else (1 - COST_SMOOTHING) * self._cost + COST_SMOOTHING * busy
