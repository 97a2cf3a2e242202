"""Exponential backoff with full jitter.

Full jitter (a uniform draw between 0 and the exponential cap) spreads a crowd of
clients that lost the same node across the whole window instead of bunching them at
the cap, which is what a node restarting under many mobile clients needs.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(self, base_s: float = 0.2, cap_s: float = 30.0, rng: Callable[[], float] = random.random) -> None:
        if base_s <= 0 or cap_s < base_s:
            raise ValueError("need 0 < base_s <= cap_s")
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempt = 0
        self._rng = rng

    def ceiling(self) -> float:
        """The current window's upper bound: base * 2**attempt, capped."""
        # Bound the exponent so a long outage cannot overflow the float.
        return min(self.cap_s, self.base_s * 2.0 ** min(self.attempt, 60))

    def next_delay(self) -> float:
        """A delay drawn uniformly from [0, ceiling), then widen the window."""
        delay = self._rng() * self.ceiling()
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Call after a success (a welcome): the next failure starts small again."""
        self.attempt = 0
