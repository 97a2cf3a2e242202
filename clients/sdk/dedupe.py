"""A bounded memory of recently delivered event ids.

Cursors are opaque, so duplicates are recognised by event id only. The window only
has to cover what a resume can replay twice (a few frames around a reconnect), so a
few thousand ids per room are plenty and memory stays bounded.
"""

from __future__ import annotations

from collections import deque


class RecentIds:
    __slots__ = ("_order", "_set", "capacity")

    def __init__(self, capacity: int = 4096) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._order: deque[str] = deque()
        self._set: set[str] = set()

    def __contains__(self, item: str) -> bool:
        return item in self._set

    def __len__(self) -> int:
        return len(self._set)

    def add(self, item: str) -> bool:
        """Remember `item`; False if it was already remembered (a duplicate)."""
        if item in self._set:
            return False
        self._set.add(item)
        self._order.append(item)
        if len(self._order) > self.capacity:
            self._set.discard(self._order.popleft())
        return True
