"""Token buckets (pure: time is passed in). Used per client address for the HTTP routes (stream.limits) and per
session for the control channel (stream.core)."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

MAX_TRACKED_CLIENTS = 10_000  # buckets kept per limiter; the least recently seen are forgotten first


@dataclass(frozen=True)
class Rate:
    """`burst` requests at once, refilled at `per_minute` requests a minute."""

    burst: int
    per_minute: float

    def __post_init__(self) -> None:
        if self.burst < 1 or not (math.isfinite(self.per_minute) and self.per_minute > 0):
            raise ValueError(f"a rate needs burst >= 1 and per_minute > 0, got {self}")


class RateLimiter:
    """Token buckets keyed by client. `take(client, now)` → 0 when allowed, else seconds until it would be."""

    def __init__(self, rate: Rate, max_clients: int = MAX_TRACKED_CLIENTS) -> None:
        self.rate = rate
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client → (tokens, at)

    def take(self, client: str, now: float) -> float:
        per_s = self.rate.per_minute / 60
        tokens, at = self._buckets.pop(client, (float(self.rate.burst), now))
        tokens = min(float(self.rate.burst), tokens + max(0.0, now - at) * per_s)
        allowed = tokens >= 1
        self._buckets[client] = (tokens - 1 if allowed else tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return 0.0 if allowed else (1 - tokens) / per_s

    def __len__(self) -> int:
        return len(self._buckets)
