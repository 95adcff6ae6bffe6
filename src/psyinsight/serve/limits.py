"""Rate limiting: a token bucket per client, so one client cannot take the model from the others."""

from __future__ import annotations

import threading
import time
from typing import Any


class TokenBucket:
    """Per-client token buckets: ``rate`` tokens/second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int, *, clock: Any = time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0.0 when a request may go now, else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > 10_000:  # forget idle clients (their buckets are full anyway)
                horizon = self.burst / self.rate
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < horizon}
            return (1.0 - tokens) / self.rate
