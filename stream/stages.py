"""Where a live session's time goes: running totals per stage, and its recent tick times. Pure accumulators: the
shell measures (time.perf_counter around a stage, or a thread's CPU clock) and hands the seconds in.

The stages, in the order a frame meets them:

* decode: the session's webcam decoder thread (CPU time of that thread);
* convert: the webcam frame to a BGR array for the analyzer;
* detect: the person detector (off the tick path: on the latest frame, in the background);
* pose: the pose network and picking the main dancer (on the tick path);
* score: the scorer's verdict on the tick;
* draw: the returned frame: converting it, drawing the skeleton, converting back (not in keypoints-only mode);
* encode: the returned frame from the moment the returned track hands it to aiortc until aiortc asks for the
  next one: its encode (in aiortc's executor), packetizing, encryption and sending (not in keypoints-only mode);
* send: building and sending the tick's messages on the data channel.

`total_s` sums them: what the session costs, in seconds, as admission by load (stream.load) counts it.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from stream.protocol import TickTimes

STAGES = ("decode", "convert", "detect", "pose", "score", "draw", "encode", "send")
TICK_SAMPLES = 600  # a minute of ticks at 10 ticks/s


class StageClock:
    """Seconds and counts per stage (STAGES), and the last `TICK_SAMPLES` tick times."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.counts = dict.fromkeys(STAGES, 0)
        self._ticks: deque[float] = deque(maxlen=TICK_SAMPLES)

    def add(self, stage: str, seconds: float) -> None:
        """One run of `stage` that took `seconds` (ValueError for a stage not in STAGES)."""
        if stage not in self.seconds:
            raise ValueError(f"unknown stage {stage!r}; the stages are {', '.join(STAGES)}")
        self.seconds[stage] += max(0.0, seconds)
        self.counts[stage] += 1

    def set_total(self, stage: str, seconds: float, count: int) -> None:
        """A stage measured as a running total elsewhere (a thread's CPU clock): replaces its figures."""
        if stage not in self.seconds:
            raise ValueError(f"unknown stage {stage!r}; the stages are {', '.join(STAGES)}")
        self.seconds[stage], self.counts[stage] = max(0.0, seconds), count

    def total_s(self) -> float:
        return sum(self.seconds.values())

    def tick(self, seconds: float) -> None:
        self._ticks.append(seconds)

    def totals_ms(self) -> dict[str, float]:
        """Each stage's total so far, ms (rounded to 0.1 ms)."""
        return {stage: round(1000 * s, 1) for stage, s in self.seconds.items()}

    def tick_times(self) -> TickTimes:
        if not self._ticks:
            return {"p50": None, "p95": None, "n": 0}
        p50, p95 = np.percentile(np.asarray(self._ticks), [50, 95])
        return {"p50": round(1000 * float(p50), 1), "p95": round(1000 * float(p95), 1), "n": len(self._ticks)}
