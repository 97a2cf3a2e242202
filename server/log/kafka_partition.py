"""What a node knows of one partition of the room log: the record layout and the dedupe index.

Record layout. Key = room id (UTF-8), so a room lives in one partition and its
order is the partition's order. Value = the payload (an encoded Event without
cursor). Headers carry what fan-out and dedupe need without decoding the value:
`traceparent` (W3C, the standard header name, so Kafka tooling shows it),
`barrage.priority` (decimal barrage.v1.Priority), `barrage.dedupe` (the entry's
dedupe key, absent when empty). Timestamp = the producing node's clock (ms).

Dedupe and shadows. A retry may be appended although its first copy is already
in the log (the retry's node had not read it yet), or before it (a produce that
timed out during an outage landed later). Rule, applied identically by every
node because it depends only on the log: a record whose (room, dedupe key)
appeared earlier in the partition, at most `window` earlier by record time, is
a *shadow*: never delivered, never returned by reads; the append that wrote it
answers the first copy (duplicate=True).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from aiokafka.structs import TopicPartition

from barrage.server.log.base import LogEntry, LogRecord
from barrage.server.log.kafka_session import Follower, KafkaSession
from barrage.server.log.kafka_wire import RawRecord

TRACEPARENT = "traceparent"
PRIORITY = "barrage.priority"
DEDUPE = "barrage.dedupe"

_MAX_SHADOWS = 100_000
_MAX_ROOMS = 100_000


def encode_headers(entry: LogEntry) -> list[tuple[str, bytes]]:
    headers = [(PRIORITY, str(entry.priority).encode("ascii"))]
    if entry.traceparent:
        headers.append((TRACEPARENT, entry.traceparent.encode("ascii")))
    if entry.dedupe_key:
        headers.append((DEDUPE, entry.dedupe_key.encode("utf-8")))
    return headers


def dedupe_key_of(record: RawRecord) -> str:
    for name, value in record.headers:
        if name == DEDUPE:
            return value.decode("utf-8")
    return ""


def to_log_record(room_id: str, record: RawRecord, prev_position: int | None = None) -> LogRecord:
    priority, dedupe, traceparent = 0, "", ""
    for name, value in record.headers:
        if name == PRIORITY:
            priority = int(value)
        elif name == DEDUPE:
            dedupe = value.decode("utf-8")
        elif name == TRACEPARENT:
            traceparent = value.decode("ascii")
    return LogRecord(room_id, record.offset, record.value or b"", priority, dedupe, traceparent, prev_position)


class PartitionIndex(Follower):
    """Dedupe keys, shadows and each room's last offset, for the offsets [start, end) of one partition.

    Built when a node first needs the partition (append, read or watch) from
    the first offset with a timestamp within `window + skew` of now, then kept
    current by the tail and by catch-up rounds. Memory: one entry per keyed
    record of the last window + skew.
    """

    def __init__(self, session: KafkaSession, tp: TopicPartition, start: int, window_ms: int, skew_ms: int) -> None:
        super().__init__(session, tp, start)
        self._window_ms = window_ms
        self._keep_ms = window_ms + skew_ms
        self._first: dict[tuple[bytes, str], tuple[int, int]] = {}
        """(room key, dedupe key) -> (offset, timestamp) of the first copy."""
        self._expiry: deque[tuple[int, tuple[bytes, str], int]] = deque()
        self._shadows: set[int] = set()
        self._shadow_order: deque[int] = deque()
        self._room_last: dict[bytes, int] = {}
        self.rooms_from = start
        """_room_last is complete for [rooms_from, end): a room absent from it has no record there."""
        self._newest_ts = 0

    def apply(self, record: RawRecord) -> None:
        room = record.key
        if room is None:
            return  # not ours
        dedupe = dedupe_key_of(record)
        if dedupe:
            ident = (room, dedupe)
            first = self._first.get(ident)
            if first is not None and record.timestamp - first[1] <= self._window_ms:
                self._add_shadow(record.offset)
                return
            self._first[ident] = (record.offset, record.timestamp)
            self._expiry.append((record.timestamp, ident, record.offset))
        if len(self._room_last) >= _MAX_ROOMS and room not in self._room_last:
            self._room_last.clear()
            self.rooms_from = record.offset
        self._room_last[room] = record.offset
        self._newest_ts = max(self._newest_ts, record.timestamp)

    def feed(self, records: Sequence[RawRecord], next_offset: int | None) -> None:
        super().feed(records, next_offset)
        self.evict()

    def _add_shadow(self, offset: int) -> None:
        self._shadows.add(offset)
        self._shadow_order.append(offset)
        if len(self._shadow_order) > _MAX_SHADOWS:
            self._shadows.discard(self._shadow_order.popleft())

    def evict(self, now_ms: int | None = None) -> None:
        """Forget first copies older than window + skew (by record time, or wall time if given)."""
        horizon = (now_ms if now_ms is not None else self._newest_ts) - self._keep_ms
        expiry = self._expiry
        while expiry and expiry[0][0] < horizon:
            _ts, ident, offset = expiry.popleft()
            if self._first.get(ident, (None,))[0] == offset:
                del self._first[ident]

    def is_shadow(self, offset: int) -> bool:
        """True if the record at `offset` (< end) repeats an earlier copy within the window."""
        return offset in self._shadows

    def first_copy(self, room: bytes, dedupe_key: str, now_ms: int | None = None) -> int | None:
        """Offset of the first copy of a key; with now_ms, only if it is within the window of now."""
        first = self._first.get((room, dedupe_key))
        if first is None or (now_ms is not None and now_ms - first[1] > self._window_ms):
            return None
        return first[0]

    def last_offset(self, room: bytes) -> int | None:
        """The room's last (non-shadow) offset in [rooms_from, end), None if it has none there."""
        return self._room_last.get(room)

    def size(self) -> int:
        return len(self._first)
