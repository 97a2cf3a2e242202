"""One stream's bounded outbound queue, with DESIGN.md's priority policy.

Everything the server says on a stream goes through its outbox; one writer drains
it, joining whatever is queued into one ConnectResponse per write (a write costs
the same CPU whatever it carries, so a stream that falls behind gets bigger, not
more, writes).

Memory stays bounded by `max_bytes`. When a room frame would exceed it, frames
holding no critical event are shed (oldest first) and reported to the client as
EventBatch.omitted_count; if that is not enough, the room is given up on this
stream: its queued frames are dropped and the caller sends ResumeRequired so the
client catches up from the log at its own pace. Critical events are never lost.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from barrage.server.core import wire

if TYPE_CHECKING:
    from barrage.server.core.observer import FrameStamp


@dataclass(frozen=True, slots=True)
class Frame:
    """Events of one room, encoded once as a ConnectResponse.messages element."""

    room_id: str
    data: bytes
    first_position: int
    last_position: int
    last_cursor: str
    event_count: int
    critical: bool
    """True if any event in it is critical: such a frame is never shed."""
    entries: tuple[tuple[int, bytes], ...]
    """(position, EventBatch.events element) per event, to rebuild a partial frame."""
    stamp: FrameStamp | None = None
    """Set at flush while someone observes the core (server/core/observer.py): what this frame's writes report."""


_Item = Frame | bytes


class Outbox:
    __slots__ = ("_items", "_size", "_max_bytes", "_max_write", "_wake", "_closed", "_omitted", "_space", "delivered")

    def __init__(self, max_bytes: int, max_write_bytes: int) -> None:
        self._items: deque[_Item] = deque()
        self._size = 0
        self._max_bytes = max_bytes
        self._max_write = max_write_bytes
        self._wake = asyncio.Event()
        self._space: asyncio.Event | None = None
        """Created by the first wait_below (replays): most streams never wait for space."""
        self._closed = False
        self._omitted: dict[str, int] = {}
        self.delivered: dict[str, str] = {}
        """Per room, the cursor of the last event handed to the transport."""

    @property
    def size(self) -> int:
        return self._size

    def put_control(self, data: bytes) -> None:
        """Queue a control message (answers, errors). Never shed: requests are rate-limited."""
        if self._closed:
            return
        self._items.append(data)
        self._size += len(data)
        self._wake.set()

    def put_frame(self, frame: Frame) -> bool:
        """Queue a room frame. False: the room must be resumed (see module docstring)."""
        if self._closed:
            return True
        if self._size + len(frame.data) > self._max_bytes:
            self._shed(len(frame.data))
            if self._size + len(frame.data) > self._max_bytes:
                if not frame.critical:
                    self._omitted[frame.room_id] = self._omitted.get(frame.room_id, 0) + frame.event_count
                    self._wake.set()
                    if frame.stamp is not None:
                        frame.stamp.shed()
                    return True
                if frame.stamp is not None:
                    frame.stamp.lagged()
                return False
        self._items.append(frame)
        self._size += len(frame.data)
        self._wake.set()
        return True

    def _shed(self, needed: int) -> None:
        kept: deque[_Item] = deque()
        for item in self._items:
            if isinstance(item, Frame) and not item.critical and self._size + needed > self._max_bytes:
                self._size -= len(item.data)
                self._omitted[item.room_id] = self._omitted.get(item.room_id, 0) + item.event_count
                if item.stamp is not None:
                    item.stamp.shed()
            else:
                kept.append(item)
        self._items = kept

    def drop_room(self, room_id: str) -> None:
        """Forget everything queued for a room (it was left or must be resumed)."""
        kept: deque[_Item] = deque()
        for item in self._items:
            if isinstance(item, Frame) and item.room_id == room_id:
                self._size -= len(item.data)
            else:
                kept.append(item)
        self._items = kept
        self._omitted.pop(room_id, None)

    async def wait_below(self, size: int) -> None:
        """Wait until queued bytes drop under `size` (paces history replay)."""
        while self._size >= size and not self._closed:
            if self._space is None:
                self._space = asyncio.Event()
            self._space.clear()
            await self._space.wait()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._space is not None:
            self._space.set()

    @property
    def closed(self) -> bool:
        return self._closed

    async def next_write(self) -> bytes | None:
        """The next ConnectResponse to write, or None once closed and drained."""
        while not self._items and not self._omitted:
            if self._closed:
                return None
            self._wake.clear()
            await self._wake.wait()
        parts: list[bytes] = []
        if self._omitted:
            for room_id, count in self._omitted.items():
                parts.append(wire.event_batch_message(wire.room_field(room_id), (), count))
            self._omitted.clear()
        budget = self._max_write
        items = self._items
        while items and (budget > 0 or not parts):
            item = items.popleft()
            if isinstance(item, Frame):
                data = item.data
                self.delivered[item.room_id] = item.last_cursor
                if item.stamp is not None:
                    item.stamp.written(self._size)
            else:
                data = item
            self._size -= len(data)
            budget -= len(data)
            parts.append(data)
        if self._space is not None:
            self._space.set()
        return parts[0] if len(parts) == 1 else b"".join(parts)
