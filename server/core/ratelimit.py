"""Token buckets for rate limits."""

from __future__ import annotations

import time


class TokenBucket:
    """`rate` tokens per second, holding at most `burst`."""

    __slots__ = ("_rate", "_burst", "_tokens", "_stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._stamp = time.monotonic()

    def take(self, n: float = 1.0) -> float:
        """Take n tokens. Returns 0.0 on success, else the seconds until n are available."""
        if self._rate == float("inf"):
            return 0.0
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= n:
            self._tokens -= n
            return 0.0
        return (n - self._tokens) / self._rate if self._rate > 0 else float("inf")
