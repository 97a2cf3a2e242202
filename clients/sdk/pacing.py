"""Client-side pacing of joins and sends to the server's advertised limits.

The server refuses frames beyond Welcome.limits with RATE_LIMITED and ends a stream
that keeps ignoring that. Pacing locally (same token-bucket shape, a little under the
advertised rate) turns a burst of application sends, or the resends and rejoins after a
reconnect, into a short queue instead of a storm of refusals and retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    """A token bucket that hands out reservations: each frame waits its turn."""

    __slots__ = ("_burst", "_clock", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        # Stay a little under the server's numbers: frames bunch up in transit, and the
        # server's clock starts its bucket a moment after ours.
        self._rate = max(rate * 0.9, 0.1) if rate > 0 else float("inf")
        self._burst = max(burst - 2.0, 1.0)
        self._tokens = self._burst
        self._clock = clock
        self._stamp = clock()

    def reserve(self, cost: float = 1.0) -> float:
        """Take `cost` tokens, going into debt if needed; returns the seconds to wait
        before the frame may be written (0.0: now)."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        self._tokens -= cost
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate
