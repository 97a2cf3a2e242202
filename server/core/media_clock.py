"""Media time: where on the live stream's timeline each event happened.

A viewer's picture arrives seconds after the camera, the room's events in ~0.1 s. The
host's app (or the encoder service) posts a MediaClock a few times a second: "the
camera's picture now has presentation time P on timeline T". The accepting node
anchors P to its own clock at acceptance (the reporter's wall clock is never trusted),
and every event accepted afterwards is stamped with `media_time` = P + (its
publish_time - anchor), the stream running in real time. Players show an event when
they reach its media_time (clients/sdk/media_sync.py).

Across nodes, a report travels through the room log like every ephemeral event, so
every node folds the same clock (RoomState.media_clock, kept in checkpoints) and stamps
what it accepts the same way. Reports are not logged one by one (latest wins): a node
logs one only when it changes something (should_log). See docs/protocol.md "Media time".
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from google.protobuf import timestamp_pb2

from barrage.server.core.errors import invalid
from barrage.server.core.policy import check_client_id
from barrage.server.core.wire import varint
from barrage.v1 import event_pb2

if TYPE_CHECKING:
    from barrage.server.commerce.state import RoomState
    from barrage.server.log.base import LogRecord, RoomLog

STALE_MS = 6_000
"""A clock whose latest logged report is older than this stamps nothing: the stream
stopped (or its reporter did), and a guess would put events on a timeline no player
shows."""
KEEPALIVE_MS = 2_000
"""A node logs a report at least this long after the previous logged one, so that a
live clock never looks stale to the other nodes."""
DRIFT_MS = 40
"""A report that differs from the logged clock's prediction by more than this is
logged (the stream paused, skipped or ran at another rate); a smaller difference is
network jitter, below what a viewer notices."""
_MAX_ROOMS = 100_000
_SCAN_PAGE = 1_000


@dataclass(frozen=True, slots=True)
class Clock:
    """A room's media clock: `position_ms` on `timeline_id` at node time `anchor_ms`."""

    timeline_id: str
    position_ms: int
    anchor_ms: int
    paused: bool = False
    """The picture holds at position_ms (the stream is paused)."""

    def at(self, now_ms: int) -> int:
        """The position at node time `now_ms` (never before the timeline's start)."""
        if self.paused:
            return self.position_ms
        return max(0, self.position_ms + now_ms - self.anchor_ms)

    @classmethod
    def of(cls, report: event_pb2.MediaClock, anchor: timestamp_pb2.Timestamp) -> Clock:
        return cls(report.timeline_id, report.position.ToMilliseconds(), anchor.ToMilliseconds(), report.paused)


def serialized(
    event: event_pb2.Event, payload: event_pb2.Payload, publish_time: timestamp_pb2.Timestamp, state: RoomState | None
) -> bytes:
    """The event's bytes, stamped with media_time when the room has a fresh clock (the
    one call at ingest; `payload` and `publish_time` are the event's, passed to save
    reading them back). The field is appended as bytes: a parser takes fields in any
    order, and while 70 is the Event's highest field the bytes are exactly what
    SerializeToString gives with media_time set (tests/test_media_time.py). 1-2 µs an
    event, against 5-10 µs for building a MediaTime message and copying it into the
    Event (docs/performance.md, "Media time")."""
    data = event.SerializeToString()
    clock = state.media_clock if state is not None else None
    if clock is None or payload.HasField("media_clock"):  # the report itself is the clock
        return data
    return data + stamp(clock, publish_time)


def stamp(clock: Clock, publish_time: timestamp_pb2.Timestamp) -> bytes:
    """Event.media_time's wire bytes for an event accepted at `publish_time`; b"" when
    the clock is stale. Inlined, with every piece encoded once (ingest's hot path)."""
    age_ms = publish_time.seconds * 1000 + publish_time.nanos // 1_000_000 - clock.anchor_ms
    if age_ms > STALE_MS:
        return b""
    seconds, millis = divmod(clock.position_ms if clock.paused else max(0, clock.position_ms + age_ms), 1000)
    # MediaTime{timeline_id = 1, position = 2: Duration{seconds = 1, nanos = 2}}, zero
    # values left out (proto3).
    position = (_SECONDS.get(seconds) or _seconds_field(seconds)) + _MILLIS_FIELD[millis]
    media_time = (_TIMELINES.get(clock.timeline_id) or _timeline_field(clock.timeline_id)) + _POSITION[len(position)]
    media_time += position
    size = len(media_time)
    return (_FIELD[size] if size < 128 else _MEDIA_TIME_TAG + varint(size)) + media_time


_MEDIA_TIME_TAG = varint(70 << 3 | 2)
"""Event field 70 (media_time), wire type 2 (length-delimited)."""
_SECONDS: dict[int, bytes] = {}
"""Duration.seconds, encoded (a room's clock moves on by one a second)."""


def _seconds_field(seconds: int) -> bytes:
    """Duration field 1 (seconds), cached (b"" for 0: a miss each time, and cheap)."""
    if len(_SECONDS) > 4096:
        _SECONDS.clear()
    data = _SECONDS[seconds] = b"\x08" + varint(seconds) if seconds else b""
    return data


_TIMELINES: dict[str, bytes] = {}


def _timeline_field(timeline_id: str) -> bytes:
    """MediaTime field 1 (timeline_id), cached: encoded once per timeline."""
    if len(_TIMELINES) > 10_000:
        _TIMELINES.clear()
    raw = timeline_id.encode()
    data = _TIMELINES[timeline_id] = b"\x0a" + varint(len(raw)) + raw
    return data


_MILLIS_FIELD = tuple(b"\x10" + varint(ms * 1_000_000) if ms else b"" for ms in range(1000))
"""Duration.nanos of each whole millisecond, encoded."""
_POSITION = tuple(b"\x12" + bytes((n,)) for n in range(128))
"""MediaTime field 2 (position) with its length (a Duration of at most 17 bytes)."""
_FIELD = tuple(_MEDIA_TIME_TAG + bytes((n,)) for n in range(128))
"""Event field 70 with the MediaTime's length, below 128."""


def fold(event: event_pb2.Event) -> Clock:
    """The clock a logged report sets (RoomState folds it)."""
    return Clock.of(event.payload.media_clock, event.publish_time)


class Reports:
    """Which of the reports this node receives go to the log (latest wins)."""

    def __init__(self) -> None:
        self._logged: OrderedDict[str, Clock] = OrderedDict()
        """Per room, the last report this node logged (the folded clock may not have
        caught up with it yet)."""

    def should_log(self, state: RoomState | None, room_id: str, payload: event_pb2.Payload, now_ms: int) -> bool:
        """True to log this report (a media_clock payload); False when the clock already
        says what it says. INVALID_FIELD for a report without a valid timeline id."""
        report = payload.media_clock
        check_client_id(report.timeline_id, "payload.media_clock.timeline_id")
        new = Clock(report.timeline_id, report.position.ToMilliseconds(), now_ms, report.paused)
        known = [c for c in (state.media_clock if state is not None else None, self._logged.get(room_id)) if c]
        current = max(known, key=lambda c: c.anchor_ms, default=None)
        if (
            current is not None
            and (current.timeline_id, current.paused) == (new.timeline_id, new.paused)
            and now_ms - current.anchor_ms < KEEPALIVE_MS
            and abs(current.at(now_ms) - new.position_ms) <= DRIFT_MS
        ):
            return False
        self._logged[room_id] = new
        self._logged.move_to_end(room_id)
        if len(self._logged) > _MAX_ROOMS:
            self._logged.popitem(last=False)
        return True


def check_position(media_time: event_pb2.MediaTime, cursor: str, backward: bool) -> None:
    """ListEventsRequest.media_time: a timeline id, forward only, without a cursor (its
    position's range is checked with every other field, server/core/ranges.py)."""
    if cursor or backward:
        raise invalid("INVALID_FIELD", "media_time pages forward from the start, without a cursor", "media_time")
    if media_time.timeline_id:
        check_client_id(media_time.timeline_id, "media_time.timeline_id")


async def first_at(log: RoomLog, room_id: str, media_time: event_pb2.MediaTime) -> int | None:
    """The position just before the first event (in room order) stamped on the timeline
    (any timeline, if its id is empty) at or after the media time, or None when there is none. A linear scan of the
    retained history (a page of 1000 events decodes in a few ms)."""
    target_ns = media_time.position.ToNanoseconds()
    after = -1
    while True:
        records: Sequence[LogRecord] = await log.read(room_id, after, _SCAN_PAGE)
        for record in records:
            event = event_pb2.Event.FromString(record.payload)
            if event.HasField("media_time"):
                stamped = event.media_time
                same = stamped.timeline_id == media_time.timeline_id or not media_time.timeline_id
                if same and stamped.position.ToNanoseconds() >= target_ns:
                    return after
            after = record.position
        if len(records) < _SCAN_PAGE:
            return None
