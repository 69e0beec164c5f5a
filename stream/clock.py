"""Where the dancer video is, and which of its ticks each webcam frame samples. Pure: time is passed in.

`ReferenceClock` follows the page's clock messages ({"type": "clock", "t": media time, "playing": bool});
`TickSampler` turns each webcam frame's reference time into "score tick k now" at most once per tick.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

SEEK_THRESHOLD_S = 0.5
SLEW_S = 0.5
SAMPLER_SEEK_THRESHOLD_S = 1.0
REWIND_S = 0.5  # half the page's shortest A-B loop (practice.js MIN_LOOP_S)
RATE_WINDOW_S = 2.0  # the playback rate is measured over the clock messages of the last 2 s since a seek ...
RATE_MIN_SPAN_S = 1.0  # ... once they span 1 s: message jitter of tens of ms then moves it by about 1 %
RATE_TOLERANCE = 0.1  # a measured rate this close (relative) to a player's standard rate is that rate
PLAYBACK_RATES = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)  # what players offer; 0.75 and 1 are 25 % apart


class ReferenceClock:
    """Estimate the dancer video's media time (s) at any server time `now` (s, any monotonic clock).

    Paused, the estimate is the last reported time. Playing, it runs at the playback rate from the last message
    (the media time follows the video, not the wall clock: at 0.5x a tick lasts twice as long), and messages are
    followed as follows:

    * the first message, play/pause changes, messages while paused, and any message more than
      `seek_threshold` s away from the estimate are taken exactly; the last are seeks (either way, playing
      or paused), counted in `seeks` and reported by `update`;
    * smaller differences are jitter in message delay and in the browser's `currentTime`, so they are slewed
      in: the estimate bends towards the message over `slew` s rather than jumping. A message arriving every
      0.1 s thus moves the estimate about 0.1 / `slew` of the way (an exponential smoother that still settles
      within `slew` s when messages are sparse), and since `slew` >= `seek_threshold` the estimate's rate
      stays >= 0: it never runs backwards between seeks.

    The playback rate is the message's `rate` when the page sends one (exact from the first message); else it is
    measured: the least-squares slope of media time over arrival time of the messages of the last
    `RATE_WINDOW_S` since the last seek, once they span `RATE_MIN_SPAN_S`, taken as the nearest of
    `PLAYBACK_RATES` within `RATE_TOLERANCE`. A rate that differs from the current one by more than the
    tolerance is adopted at once and the message taken exactly (not counted as a seek). Seeks keep the rate
    (an A-B loop goes on at the rate it was played at), and the slew runs over `slew / rate` s below rate 1,
    so the estimate still never runs backwards.

    The constant part of the message delay cannot be measured one-way and is left to the scorer's time window.
    """

    def __init__(self, seek_threshold: float = SEEK_THRESHOLD_S, slew: float = SLEW_S) -> None:
        if not 0 < seek_threshold <= slew:
            raise ValueError(f"need 0 < seek_threshold <= slew, got {seek_threshold} and {slew}")
        self.seek_threshold = seek_threshold
        self.slew = slew
        self.playing = False
        self.seeks = 0
        self._base: float | None = None  # the estimate at _base_now
        self._base_now = 0.0
        self._correction = 0.0  # slewed in linearly over `slew` s after _base_now
        self.rate = 1.0
        self._samples: deque[tuple[float, float]] = deque()  # (now, t_ref) of messages while playing, since a seek

    def update(self, t_ref: float, playing: bool, now: float, rate: float | None = None) -> bool:
        """Take a clock message received at `now` (`rate`: the player's playback rate, if the page sent it);
        True if it was taken as a seek (a discontinuity)."""
        if rate is not None:
            self.rate = rate
        if self._base is None:
            return self._snap(t_ref, playing, now, seek=False)
        estimate = self._estimate(now, self._base)
        error = t_ref - estimate
        seek = abs(error) > self.seek_threshold
        if seek or not playing or playing != self.playing:
            return self._snap(t_ref, playing, now, seek)
        self._samples.append((now, t_ref))
        measured = self._measured_rate(now) if rate is None else None
        if measured is not None and abs(measured - self.rate) > RATE_TOLERANCE * self.rate:
            self.rate = measured
            return self._snap(t_ref, playing, now, seek=False, keep_samples=True)
        self._base, self._base_now, self._correction = estimate, now, error
        return False

    def _measured_rate(self, now: float) -> float | None:
        samples = self._samples
        while samples and samples[0][0] < now - RATE_WINDOW_S:
            samples.popleft()
        if len(samples) < 3 or samples[-1][0] - samples[0][0] < RATE_MIN_SPAN_S:
            return None
        times, media = np.array(samples).T
        slope = float(np.polyfit(times - times[0], media - media[0], 1)[0])
        if not slope > 0:
            return None
        nearest = min(PLAYBACK_RATES, key=lambda r: abs(r - slope))
        return nearest if abs(slope - nearest) <= RATE_TOLERANCE * nearest else slope

    def ref_time(self, now: float) -> float | None:
        """The dancer video's media time at `now`, or None before the first message."""
        return None if self._base is None else self._estimate(now, self._base)

    def _estimate(self, now: float, base: float) -> float:
        if not self.playing:
            return base
        dt = max(0.0, now - self._base_now)
        slew = self.slew / min(1.0, self.rate)
        return base + self.rate * dt + self._correction * min(1.0, dt / slew)

    def _snap(self, t_ref: float, playing: bool, now: float, seek: bool, keep_samples: bool = False) -> bool:
        self._base, self._base_now, self._correction, self.playing = t_ref, now, 0.0, playing
        if not keep_samples:
            self._samples.clear()
        if playing and not keep_samples:
            self._samples.append((now, t_ref))
        self.seeks += seek
        return seek


_UNSEEN, _TAKEN, _SKIPPED, _DROPPED = 0, 1, 2, 3


class TickSampler:
    """Pick, from a stream of webcam frames, one frame per dancer tick k (at k / fps s of the dancer video).

    `take(ref)` returns k = floor(ref * fps) the first time the reference time reaches tick k in a pass. Each
    tick is returned at most once a pass. A pass ends when the reference time moves back by `REWIND_S` or more
    (the page's A-B loop, a user going back to try a stretch again): every tick from the landing tick on may
    then be taken again, and `passes` counts up (a tick of the old pass still in the session's mailbox or
    in analysis can still be given back with `mark_skipped`). A smaller move back is jitter or a nudge and
    repeats nothing.

    Counters, with `elapsed == taken + skipped`, each tick counted at most once a pass:
    * `taken`: ticks returned by `take` and not given back with `mark_skipped`;
    * `skipped`: ticks the reference time passed over during normal play without a frame landing on them,
      plus ticks given back with `mark_skipped`.

    A move forward of more than `seek_threshold` s, any move backwards, the first frame and the first frame
    after `note_seek()` are seeks: the ticks jumped over are not counted. The default threshold (1 s) is above
    the seek threshold of `ReferenceClock` so that a webcam stall of up to a second still counts its ticks as
    skipped; call `note_seek()` when the clock reports a seek (`ReferenceClock.update` returns True) to catch
    smaller ones. A tick skipped earlier may still be taken when a backward seek replays it.
    """

    def __init__(self, fps: float, total_ticks: int, seek_threshold: float = SAMPLER_SEEK_THRESHOLD_S) -> None:
        if not fps > 0 or total_ticks < 0 or not seek_threshold > 0:
            raise ValueError(f"need fps > 0, total_ticks >= 0, seek_threshold > 0, got {fps}, {total_ticks}")
        self.fps = fps
        self.total_ticks = total_ticks
        self.seek_threshold = seek_threshold
        self.taken = 0
        self.skipped = 0
        self.passes = 1
        self._state = bytearray(total_ticks)
        self._last_ref: float | None = None
        self._latest: float | None = None  # unlike _last_ref, kept across seeks: it tells a pass from the next
        self._taken_before: set[int] = set()  # ticks taken in an earlier pass, reset by the new one

    @property
    def elapsed(self) -> int:
        """Ticks decided so far: taken or skipped."""
        return self.taken + self.skipped

    def tick_at(self, ref_time: float) -> int:
        """The tick whose time has most recently been reached at `ref_time`, clamped to -1..total_ticks (so any
        finite time, however absurd, gives a small integer; -1 and total_ticks stand for before and after)."""
        position = ref_time * self.fps + 1e-9
        if not position < self.total_ticks:  # also +inf
            return self.total_ticks
        if not position >= 0:  # also -inf
            return -1
        return math.floor(position)

    def take(self, ref_time: float | None) -> int | None:
        """The tick this frame samples (reference time `ref_time` s), or None: nothing new, or no time yet. A
        time that is not finite samples nothing and counts as a seek."""
        if ref_time is None:
            return None
        if not math.isfinite(ref_time):
            self._last_ref = None
            return None
        last, self._last_ref = self._last_ref, ref_time
        latest, self._latest = self._latest, ref_time
        k = self.tick_at(ref_time)
        if latest is not None and latest - ref_time >= REWIND_S:
            self._new_pass(k)
        if last is not None and 0 <= ref_time - last <= self.seek_threshold:
            self._skip_range(self.tick_at(last) + 1, k)
        if not 0 <= k < self.total_ticks or self._state[k] not in (_UNSEEN, _SKIPPED):
            return None
        self.skipped -= self._state[k] == _SKIPPED
        self._state[k] = _TAKEN
        self.taken += 1
        return k

    def mark_skipped(self, tick: int) -> None:
        """Give back a taken tick that will not be processed (a newer one replaced it); it is not retaken."""
        if 0 <= tick < self.total_ticks and self._state[tick] == _TAKEN:
            self._state[tick] = _DROPPED
        elif tick in self._taken_before:
            self._taken_before.discard(tick)
        else:
            raise ValueError(f"tick {tick} is not a taken tick")
        self.taken -= 1
        self.skipped += 1

    def note_seek(self) -> None:
        """Treat the next frame as landing after a seek: the ticks before it are not counted as skipped."""
        self._last_ref = None

    def _new_pass(self, start: int) -> None:
        """Ticks from `start` on may be taken again; what was counted stays counted."""
        first = max(0, start)
        self._taken_before = {k for k in range(first, self.total_ticks) if self._state[k] == _TAKEN}
        self._state[first:] = bytes(self.total_ticks - first)
        self.passes += 1

    def _skip_range(self, start: int, stop: int) -> None:
        for k in range(max(0, start), min(stop, self.total_ticks)):
            if self._state[k] == _UNSEEN:
                self._state[k] = _SKIPPED
                self.skipped += 1
