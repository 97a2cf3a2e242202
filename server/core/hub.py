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

Whispers (server/core/whisper.py) travel with their Audience. Taking a tick's frames
checks one attribute per event; a tick that holds a whisper (rare) builds the shared
frames without it, and a frame of its own for each subscriber the whisper's audience
admits (asked per subscriber only for such ticks). A whisper is never in a shared frame.

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
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from barrage.server.core import observer, wire
from barrage.server.core.cursor import encode_cursor
from barrage.server.core.outbox import Frame
from barrage.server.core.whisper import DELIVERABLE, Audience
from barrage.server.log.base import LogRecord
from barrage.v1 import event_pb2

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
    user_id: str
    """Whose stream it is (a whisper's audience names users)."""

    def deliver(self, frame: Frame) -> None:
        """Queue the frame (the subscriber handles overflow)."""

    def may_read(self, audience: Audience) -> bool:
        """Is this subscriber in a whisper's audience?"""


class _Pending:
    __slots__ = ("audience", "coalesce", "cursor", "event", "position", "priority")

    def __init__(
        self, position: int, cursor: str, event: bytes, priority: int, coalesce: str | None, audience: Audience | None
    ) -> None:
        self.position = position
        self.cursor = cursor
        self.event = event
        self.priority = priority
        self.coalesce = coalesce
        self.audience = audience
        """Set for a whisper: only subscribers it admits get this event."""


class Frames:
    """What one flush of a room delivers."""

    __slots__ = ("full", "private", "sampled")

    def __init__(self, full: Frame | None, sampled: Frame | None, private: list[_Pending] | None) -> None:
        self.full = full
        """Every shared event (None: the tick held only whispers)."""
        self.sampled = full if sampled is None else sampled
        """For viewers: the same object as `full` unless normal events were sampled away."""
        self.private = private
        """The tick's events, whispers included, when it held a whisper (else None)."""


class Channel:
    """One room on this node: subscribers, events waiting for the tick, recent events."""

    __slots__ = (
        "_allowance",
        "_budget",
        "_pending",
        "_pending_bytes",
        "closed_at",
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
        self.recent: deque[tuple[int, str, bytes, Audience | None]] = deque(maxlen=recent_size)
        """(position, cursor, complete Event bytes, a whisper's audience) of the latest live events."""
        self.evicted_upto = -1
        """Highest position pushed out of `recent`; -1 while it holds everything seen."""
        self.last_position = -1
        self.closed_at = -1
        """Position of the room's room_closed event, once read (-1: open)."""
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

    def add(
        self, position: int, cursor: str, event: bytes, priority: int, coalesce: str | None,
        audience: Audience | None = None,
    ) -> None:  # fmt: skip
        if len(self.recent) == self.recent.maxlen:
            self.evicted_upto = self.recent[0][0]
        self.recent.append((position, cursor, event, audience))
        self.last_position = position
        self._pending.append(_Pending(position, cursor, event, priority, coalesce, audience))
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

    def take_frames(self, elapsed_s: float) -> Frames | None:
        """The frames of what is pending (see Frames)."""
        pending = self._pending
        if not pending:
            return None
        self._pending = []
        self._pending_bytes = 0
        latest: dict[str, int] = {}
        private = False
        for i, item in enumerate(pending):
            if item.coalesce is not None:
                latest[item.coalesce] = i
            elif item.audience is not None:
                private = True
        if latest:
            pending = [p for i, p in enumerate(pending) if p.coalesce is None or latest[p.coalesce] == i]
        if not private:
            return Frames(*self._shared(pending, pending[-1], elapsed_s), None)
        shared = [p for p in pending if p.audience is None]
        if not shared:
            return Frames(None, None, pending)
        return Frames(*self._shared(shared, pending[-1], elapsed_s), pending)

    def _shared(self, pending: list[_Pending], last: _Pending, elapsed_s: float) -> tuple[Frame, Frame | None]:
        """(full frame, sampled frame or None when nothing was sampled away) of shared events;
        `last` is the tick's last event (its cursor ends every frame of the tick)."""
        full = self._frame(pending, 0, last=last)
        # The allowance refills at the budget rate, holding at most one second's worth.
        self._allowance = min(self._budget, self._allowance + elapsed_s * self._budget)
        normal = [i for i, item in enumerate(pending) if item.priority == NORMAL]
        keep = min(len(normal), int(self._allowance))
        self._allowance -= keep
        omitted = len(normal) - keep
        if not omitted:
            return full, None
        # The newest normal events are the ones kept: the freshest comments of the tick.
        dropped = set(normal[:omitted])
        kept = [item for i, item in enumerate(pending) if i not in dropped]
        return full, self._frame(kept, omitted, last=last)

    def own_frame(self, pending: list[_Pending], sub: Subscriber) -> Frame | None:
        """A subscriber's frame of a tick that held whispers: every shared event and the
        whispers it may read (not sampled: whispers are rare, their readers few)."""
        items = [p for p in pending if p.audience is None or sub.may_read(p.audience)]
        return self._frame(items, 0, last=pending[-1]) if items else None

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


def _deliver_private(ch: Channel, full: Frame | None, sampled: Frame | None, tick: list[_Pending]) -> None:
    """Deliver a tick that held a whisper: its audience gets a frame of its own with it,
    everyone else the shared frames (None: the tick held nothing else)."""
    whispers = [p.audience for p in tick if p.audience is not None]
    named = _named(whispers)
    for sub in tuple(ch.subscribers):
        # Only a full subscriber (staff, bots) or a user the tick's whispers name can be
        # in an audience: one set lookup per viewer, the full check for those few.
        if (sub.full or sub.user_id in named) and any(sub.may_read(a) for a in whispers):
            frame = shared = ch.own_frame(tick, sub)
        else:
            frame, shared = full if sub.full else sampled, full
        if frame is None or shared is None:
            continue  # nothing of this tick is for this subscriber
        if sub.min_position >= frame.first_position:
            part = partial_frame(shared, sub.min_position)
            if part is not None:
                sub.deliver(part)
        else:
            sub.deliver(frame)


def _named(whispers: list[Audience]) -> set[str]:
    """Every user a whisper's audience can admit without being a full subscriber: its
    sender, its recipient, and for a whisper to the staff the room's appointed moderators
    (one appointed after joining still has a viewer's sampled subscription)."""
    named: set[str] = set()
    for audience in whispers:
        named.add(audience.sender_id)
        named.add(audience.recipient_id)
        if audience.to_staff:
            named.update(audience.moderators)
    return named


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
            if observer.ON:
                observer.current.channel_dropped(room_id)

    def on_records(
        self,
        records: Iterable[tuple[LogRecord, str | None]],
        audiences: Mapping[tuple[str, int], Audience] | None = None,
    ) -> None:
        """Add live records (each with its coalescing key, if ephemeral); flush rooms that are due.

        `audiences`, by (room, position): the whispers among them, for their audience only.
        A record listed there is delivered as critical; any other record whose priority is
        not a public one (whisper.DELIVERABLE) is dropped here too: the hub fails closed."""
        touched: dict[str, Channel] = {}
        epochs: dict[str, str] = {}
        for record, coalesce in records:
            ch = self.channels.get(record.room_id)
            if ch is None:
                continue
            epoch = epochs.get(record.room_id)
            if epoch is None:
                epoch = epochs[record.room_id] = self._epoch_of(record.room_id)
            audience = audiences.get((record.room_id, record.position)) if audiences else None
            if audience is None and record.priority not in DELIVERABLE:
                continue  # a whisper without its audience, a checkpoint, an unknown mark: nobody's
            cursor = encode_cursor(epoch, record.position)
            event = wire.event_with_cursor(record.payload, cursor)
            if audience is not None:
                ch.add(record.position, cursor, event, CRITICAL, None, audience)
            else:
                ch.add(record.position, cursor, event, record.priority, coalesce)
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
        full, sampled, private = frames.full, frames.sampled, frames.private
        if observer.ON and full is not None and sampled is not None:
            full, sampled = observer.current.flushed(ch, full, sampled)
        if private is not None:
            _deliver_private(ch, full, sampled, private)
        elif full is not None and sampled is not None:  # always, without a whisper
            # The hot path: nothing but the shared frames, no per-subscriber check.
            for sub in tuple(ch.subscribers):
                frame = full if sub.full else sampled
                if sub.min_position >= frame.first_position:
                    part = partial_frame(full, sub.min_position)
                    if part is not None:
                        sub.deliver(part)
                else:
                    sub.deliver(frame)
        if full is not None and full.stamp is not None:
            full.stamp.queued()
