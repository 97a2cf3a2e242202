"""The fan-out hub: who on this node is subscribed to which room, and delivery.

Records arrive from the room log's live tail in position order. Each event is
turned into its wire bytes once (stored payload + cursor field); a room's events
are coalesced into one frame per tick and the same frame object is queued on every
subscriber's outbox. A quiet room flushes at once: the batching window only
applies when the room flushed less than `interval` ago, so busy rooms pay one write
per subscriber per tick and quiet rooms pay no delay.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from barrage.v1 import event_pb2
from server.core import wire
from server.core.cursor import encode_cursor
from server.core.outbox import Frame
from server.log.base import LogRecord

CRITICAL = event_pb2.PRIORITY_CRITICAL


class Subscriber(Protocol):
    """A stream's membership in one room, as the hub sees it."""

    min_position: int
    """Deliver only events after this position (set when a replay hands over to live)."""

    def deliver(self, frame: Frame) -> None:
        """Queue the frame (the subscriber handles overflow)."""


class Channel:
    """One room on this node: subscribers, events waiting for the tick, recent events."""

    __slots__ = (
        "room_id",
        "room_tag",
        "subscribers",
        "_pending",
        "_pending_bytes",
        "_pending_critical",
        "recent",
        "evicted_upto",
        "last_position",
        "last_flush",
        "timer",
    )

    def __init__(self, room_id: str, recent_size: int) -> None:
        self.room_id = room_id
        self.room_tag = wire.room_field(room_id)
        self.subscribers: set[Subscriber] = set()
        self._pending: list[tuple[int, str, bytes]] = []
        self._pending_bytes = 0
        self._pending_critical = False
        self.recent: deque[tuple[int, str, bytes]] = deque(maxlen=recent_size)
        """(position, cursor, complete Event bytes) of the latest live events."""
        self.evicted_upto = -1
        """Highest position pushed out of `recent`; -1 while it holds everything seen."""
        self.last_position = -1
        self.last_flush = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def add(self, position: int, cursor: str, event: bytes, critical: bool) -> None:
        if len(self.recent) == self.recent.maxlen:
            self.evicted_upto = self.recent[0][0]
        self.recent.append((position, cursor, event))
        self.last_position = position
        self._pending.append((position, cursor, event))
        self._pending_bytes += len(event)
        self._pending_critical = self._pending_critical or critical

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def take_frame(self) -> Frame | None:
        pending = self._pending
        if not pending:
            return None
        entries = tuple((position, wire.batch_entry(event)) for position, _, event in pending)
        frame = Frame(
            room_id=self.room_id,
            data=wire.event_batch_message(self.room_tag, (entry for _, entry in entries)),
            first_position=pending[0][0],
            last_position=pending[-1][0],
            last_cursor=pending[-1][1],
            event_count=len(pending),
            critical=self._pending_critical,
            entries=entries,
        )
        self._pending = []
        self._pending_bytes = 0
        self._pending_critical = False
        return frame


def partial_frame(frame: Frame, after: int) -> Frame | None:
    """The part of a shared frame after a position (a subscriber's replay overlapped it)."""
    entries = tuple(e for e in frame.entries if e[0] > after)
    if not entries:
        return None
    return Frame(
        room_id=frame.room_id,
        data=wire.event_batch_message(wire.room_field(frame.room_id), (entry for _, entry in entries)),
        first_position=entries[0][0],
        last_position=frame.last_position,
        last_cursor=frame.last_cursor,
        event_count=len(entries),
        critical=frame.critical,
        entries=entries,
    )


class Hub:
    def __init__(
        self,
        *,
        epoch_of: Callable[[str], str],
        interval_s: float,
        max_frame_bytes: int,
        recent_per_room: int,
        on_critical: Callable[[LogRecord], None],
    ) -> None:
        self._epoch_of = epoch_of
        self._interval = interval_s
        self._max_frame_bytes = max_frame_bytes
        self._recent = recent_per_room
        self._on_critical = on_critical
        self.channels: dict[str, Channel] = {}

    def channel(self, room_id: str) -> Channel:
        """The room's channel, created (empty) on first use."""
        ch = self.channels.get(room_id)
        if ch is None:
            ch = self.channels[room_id] = Channel(room_id, self._recent)
        return ch

    def drop_channel(self, room_id: str) -> None:
        ch = self.channels.pop(room_id, None)
        if ch is not None and ch.timer is not None:
            ch.timer.cancel()

    def on_records(self, records: Sequence[LogRecord]) -> None:
        """The room log's listener: add live records, flush rooms that are due."""
        touched: dict[str, Channel] = {}
        epochs: dict[str, str] = {}
        for record in records:
            critical = record.priority == CRITICAL
            if critical:
                self._on_critical(record)
            ch = self.channels.get(record.room_id)
            if ch is None:
                continue
            epoch = epochs.get(record.room_id)
            if epoch is None:
                epoch = epochs[record.room_id] = self._epoch_of(record.room_id)
            cursor = encode_cursor(epoch, record.position)
            ch.add(record.position, cursor, wire.event_with_cursor(record.payload, cursor), critical)
            touched[record.room_id] = ch
            if ch.pending_bytes >= self._max_frame_bytes:
                self.flush(ch)
        if not touched:
            return
        now = time.monotonic()
        for ch in touched.values():
            if ch.timer is not None:
                continue
            due = ch.last_flush + self._interval
            if now >= due:
                self.flush(ch, now)
            else:
                ch.timer = asyncio.get_running_loop().call_at(
                    asyncio.get_running_loop().time() + (due - now), self.flush, ch
                )

    def flush(self, ch: Channel, now: float | None = None) -> None:
        if ch.timer is not None:
            ch.timer.cancel()
            ch.timer = None
        ch.last_flush = time.monotonic() if now is None else now
        frame = ch.take_frame()
        if frame is None:
            return
        for sub in tuple(ch.subscribers):
            if sub.min_position >= frame.first_position:
                part = partial_frame(frame, sub.min_position)
                if part is not None:
                    sub.deliver(part)
            else:
                sub.deliver(frame)
