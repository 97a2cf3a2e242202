"""The fan-out hub: who on this node is subscribed to which room, and delivery.

Records arrive from the room log's live tail in position order. Each event is
turned into its wire bytes once (stored payload + cursor field); a room's events
are coalesced into one frame per tick and the same frame object is queued on every
subscriber's outbox. A room's flushes are paced like a token bucket (GCRA): one
flush per `interval` on average with a burst of `_BURST_FLUSHES`, so a quiet room
(or one whose occasional server event lands next to a comment) flushes at once and
only a room busy for longer than the burst pays the batching window: one write per
subscriber per tick. The window widens with the node's subscriber count so that
stream writes stay within a budget (see interval()).

Huge rooms (DESIGN.md, priorities): a viewer reads at most `viewer_budget` normal
events a second. When a room runs hotter, each tick builds a second, sampled frame
for viewers — critical and ephemeral events all kept, normal events up to the
budget, the newest of the tick kept (the freshest comments, and the ones that waited
least), the rest counted in omitted_count — still encoded once per room. Staff
subscribers (hosts, moderators, services, bots) get the full frame. Ephemeral events
(latest value wins) that share a coalescing key within one tick keep only the last.

Continuity (docs/protocol.md): the gateway checks each live record against the
channel's `read_upto` (the record's predecessor in the room must be the last one the
channel read) once per record, not per subscriber. When the room's live stream breaks,
the channel is `reset()`: attached subscribers are made to resume, and a replay that
has not handed over yet reads the log again before it does (`resets` changed).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

from barrage.v1 import event_pb2
from server.core import wire
from server.core.cursor import encode_cursor
from server.core.outbox import Frame
from server.log.base import LogRecord
from server.telemetry import hooks

_MAX_INTERVAL_S = 0.25
"""Past this, latency would suffer more than CPU gains: the budget gives way."""
_BURST_FLUSHES = 2
"""Flushes a room may make back to back before the window binds."""

CRITICAL = event_pb2.PRIORITY_CRITICAL
NORMAL = event_pb2.PRIORITY_NORMAL


class Subscriber(Protocol):
    """A stream's membership in one room, as the hub sees it."""

    min_position: int
    """Deliver only events after this position (set when a replay hands over to live)."""
    full: bool
    """Receives every event, never the sampled frame (staff, services, bots)."""

    def deliver(self, frame: Frame) -> None:
        """Queue the frame (the subscriber handles overflow)."""


class _Pending:
    __slots__ = ("coalesce", "cursor", "event", "position", "priority")

    def __init__(self, position: int, cursor: str, event: bytes, priority: int, coalesce: str | None) -> None:
        self.position = position
        self.cursor = cursor
        self.event = event
        self.priority = priority
        self.coalesce = coalesce


class Channel:
    """One room on this node: subscribers, events waiting for the tick, recent events."""

    __slots__ = (
        "_allowance",
        "_budget",
        "_pending",
        "_pending_bytes",
        "evicted_upto",
        "last_flush",
        "last_position",
        "next_flush",
        "read_upto",
        "recent",
        "resets",
        "room_id",
        "room_tag",
        "subscribers",
        "timer",
    )

    def __init__(self, room_id: str, recent_size: int, budget_per_s: float) -> None:
        self.room_id = room_id
        self.room_tag = wire.room_field(room_id)
        self.subscribers: set[Subscriber] = set()
        self._pending: list[_Pending] = []
        self._pending_bytes = 0
        self._budget = budget_per_s
        self._allowance = budget_per_s
        self.recent: deque[tuple[int, str, bytes]] = deque(maxlen=recent_size)
        """(position, cursor, complete Event bytes) of the latest live events."""
        self.evicted_upto = -1
        """Highest position pushed out of `recent`; -1 while it holds everything seen."""
        self.last_position = -1
        self.read_upto = -1
        """Position of the last live record of the room read for this channel, any priority
        (-1: none since the channel opened or was reset)."""
        self.resets = 0
        """How many times the room's live stream broke (see reset)."""
        self.last_flush = 0.0
        self.next_flush = 0.0
        """GCRA's theoretical time of the next flush: a flush is due once now reaches
        next_flush - (burst - 1) * interval."""
        self.timer: asyncio.TimerHandle | None = None

    def add(self, position: int, cursor: str, event: bytes, priority: int, coalesce: str | None) -> None:
        if len(self.recent) == self.recent.maxlen:
            self.evicted_upto = self.recent[0][0]
        self.recent.append((position, cursor, event))
        self.last_position = position
        self._pending.append(_Pending(position, cursor, event, priority, coalesce))
        self._pending_bytes += len(event)

    def reset(self) -> None:
        """The room's live stream broke: forget what the channel holds. A replay hands over
        only after a log read that started after the last reset (which has what was lost)."""
        self.resets += 1
        if self.recent:
            self.evicted_upto = max(self.evicted_upto, self.recent[-1][0])
        self.recent.clear()
        self._pending = []
        self._pending_bytes = 0
        self.read_upto = -1

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def take_frames(self, elapsed_s: float) -> tuple[Frame, Frame] | None:
        """(full frame, frame for viewers) of what is pending; the same object when no
        normal event had to be sampled away."""
        pending = self._pending
        if not pending:
            return None
        self._pending = []
        self._pending_bytes = 0
        latest: dict[str, int] = {}
        for i, item in enumerate(pending):
            if item.coalesce is not None:
                latest[item.coalesce] = i
        if latest:
            pending = [p for i, p in enumerate(pending) if p.coalesce is None or latest[p.coalesce] == i]
        full = self._frame(pending, 0)
        # The allowance refills at the budget rate, holding at most one second's worth.
        self._allowance = min(self._budget, self._allowance + elapsed_s * self._budget)
        normal = [i for i, item in enumerate(pending) if item.priority == NORMAL]
        keep = min(len(normal), int(self._allowance))
        self._allowance -= keep
        omitted = len(normal) - keep
        if not omitted:
            return full, full
        # The newest normal events are the ones kept: the freshest comments of the tick.
        dropped = set(normal[:omitted])
        kept = [item for i, item in enumerate(pending) if i not in dropped]
        return full, self._frame(kept, omitted, last=pending[-1])

    def _frame(self, items: list[_Pending], omitted: int, last: _Pending | None = None) -> Frame:
        last = last or items[-1]
        entries = tuple((item.position, wire.batch_entry(item.event)) for item in items)
        return Frame(
            room_id=self.room_id,
            data=wire.event_batch_message(self.room_tag, (entry for _, entry in entries), omitted),
            first_position=items[0].position if items else last.position,
            last_position=last.position,
            last_cursor=last.cursor,
            event_count=len(items) + omitted,
            critical=any(item.priority == CRITICAL for item in items),
            entries=entries,
        )


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
        viewer_budget_per_s: float = 30.0,
        write_budget_per_s: float = 10_000.0,
    ) -> None:
        self._epoch_of = epoch_of
        self._interval = interval_s
        self._write_budget = write_budget_per_s
        self.subscribers = 0
        """Subscriptions attached on this node, all rooms."""
        self._max_frame_bytes = max_frame_bytes
        self._recent = recent_per_room
        self._budget = viewer_budget_per_s
        self.channels: dict[str, Channel] = {}

    def channel(self, room_id: str) -> Channel:
        """The room's channel, created (empty) on first use."""
        ch = self.channels.get(room_id)
        if ch is None:
            ch = self.channels[room_id] = Channel(room_id, self._recent, self._budget)
        return ch

    def attach(self, ch: Channel, sub: Subscriber) -> None:
        if sub not in ch.subscribers:
            ch.subscribers.add(sub)
            self.subscribers += 1

    def detach(self, ch: Channel, sub: Subscriber) -> None:
        if sub in ch.subscribers:
            ch.subscribers.discard(sub)
            self.subscribers -= 1

    def interval(self) -> float:
        """The batching window of a busy room: at least the configured one, longer when
        the node's subscribers would otherwise need more stream writes a second than
        the write budget (a write costs the same CPU whatever it carries)."""
        return max(self._interval, min(_MAX_INTERVAL_S, self.subscribers / self._write_budget))

    def drop_channel(self, room_id: str) -> None:
        ch = self.channels.pop(room_id, None)
        if ch is not None:
            self.subscribers -= len(ch.subscribers)
            if ch.timer is not None:
                ch.timer.cancel()
            if hooks.ON:
                hooks.channel_dropped(room_id)

    def on_records(self, records: Iterable[tuple[LogRecord, str | None]]) -> None:
        """Add live records (each with its coalescing key, if ephemeral); flush rooms that are due."""
        touched: dict[str, Channel] = {}
        epochs: dict[str, str] = {}
        for record, coalesce in records:
            ch = self.channels.get(record.room_id)
            if ch is None:
                continue
            epoch = epochs.get(record.room_id)
            if epoch is None:
                epoch = epochs[record.room_id] = self._epoch_of(record.room_id)
            cursor = encode_cursor(epoch, record.position)
            ch.add(record.position, cursor, wire.event_with_cursor(record.payload, cursor), record.priority, coalesce)
            touched[record.room_id] = ch
            if ch.pending_bytes >= self._max_frame_bytes:
                self.flush(ch)
        if not touched:
            return
        now = time.monotonic()
        loop = asyncio.get_running_loop()
        interval = self.interval()
        tolerance = (_BURST_FLUSHES - 1) * interval
        for ch in touched.values():
            if ch.timer is not None:
                continue
            due = ch.next_flush - tolerance
            if now >= due:
                self.flush(ch, now)
            else:
                ch.timer = loop.call_at(loop.time() + (due - now), self.flush, ch)

    def flush(self, ch: Channel, now: float | None = None) -> None:
        if ch.timer is not None:
            ch.timer.cancel()
            ch.timer = None
        now = time.monotonic() if now is None else now
        elapsed = now - ch.last_flush
        ch.last_flush = now
        ch.next_flush = max(ch.next_flush, now) + self.interval()
        frames = ch.take_frames(elapsed)
        if frames is None:
            return
        full, sampled = frames
        if hooks.ON:
            full, sampled = hooks.flushed(ch, full, sampled)
        for sub in tuple(ch.subscribers):
            frame = full if sub.full else sampled
            if sub.min_position >= frame.first_position:
                part = partial_frame(full, sub.min_position)
                if part is not None:
                    sub.deliver(part)
            else:
                sub.deliver(frame)
        if full.stamp is not None:
            full.stamp.queued()
