"""Dedupe window of the embedded log: (room_id, dedupe_key) -> position of the first copy.

Only positions are kept (not records): duplicates are rare, so the first copy is read
back from the log when one happens, and memory stays ~150 bytes per key.

Expiry is by time and by count. Keys are inserted in position order, so both expire
from the front. Time is tracked by coarse checkpoints (one per second of appends), not
per key: a key may outlive the window by up to a second, never the reverse.
"""

from __future__ import annotations

from collections import OrderedDict, deque

_CHECKPOINT_MS = 1000


class DedupeWindow:
    def __init__(self, window_ms: int, max_entries: int) -> None:
        self._window_ms = window_ms
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], int] = OrderedDict()
        # [first time_ms, latest time_ms, highest position] of the keys added in a stretch
        # of about a second; every key at or below that position is at most that old.
        self._checkpoints: deque[list[int]] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, room_id: str, key: str, now_ms: int) -> int | None:
        self.expire(now_ms)
        return self._entries.get((room_id, key))

    def add(self, room_id: str, key: str, position: int, time_ms: int) -> None:
        if self._max_entries <= 0:
            return
        # setdefault: the first copy wins, even if a caller races a re-add.
        self._entries.setdefault((room_id, key), position)
        cps = self._checkpoints
        if cps and time_ms - cps[-1][0] < _CHECKPOINT_MS:
            cp = cps[-1]
            cp[1] = max(cp[1], time_ms)
            cp[2] = position
        else:
            cps.append([time_ms, max(time_ms, cps[-1][1]) if cps else time_ms, position])
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def expire(self, now_ms: int) -> None:
        cutoff = now_ms - self._window_ms
        cps = self._checkpoints
        while cps and cps[0][1] < cutoff:
            self._drop_through(cps.popleft()[2])
        # Count-evicted keys leave checkpoints behind; they are dropped above in time.

    def drop_below(self, position: int) -> None:
        """Forget keys whose first copy was deleted by retention."""
        self._drop_through(position - 1)
        while self._checkpoints and self._checkpoints[0][2] < position:
            self._checkpoints.popleft()

    def _drop_through(self, position: int) -> None:
        entries = self._entries
        while entries:
            key, pos = next(iter(entries.items()))
            if pos > position:
                break
            del entries[key]
