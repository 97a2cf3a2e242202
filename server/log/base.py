"""The room log: the single source of order for every room.

One interface, several backends (embedded on local disk, Kafka). Every backend
passes the same conformance tests (tests/conformance/). The gateway never knows
which one it talks to.

Positions. Within one room, each record has an integer `position`, strictly
increasing in append order. Positions need not be contiguous per room (several
rooms may share one sequence, as rooms share a Kafka partition). Positions are
only meaningful together with the room's `epoch`: a string that changes whenever
the log's numbering restarts (a data directory or Kafka topic recreated). Clients
see the pair as one opaque cursor string (server/core/cursor.py).

Payloads. A record's payload is an encoded `barrage.v1.Event` WITHOUT its cursor;
the log treats it as opaque bytes. The reader appends the cursor field when it
delivers the event (protobuf concatenation), so the event is encoded once.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


class LogUnavailableError(Exception):
    """The log could not confirm an append or serve a read in time.

    An append that raised this may still have been (or later be) appended; a retry
    with the same dedupe key must then find that copy rather than add a second one.
    """


class RoomNotFoundError(Exception):
    """The room directory has no room with this id."""


class RoomExistsError(Exception):
    """The room directory already has a room with this id."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One event to append."""

    payload: bytes
    """Encoded Event without cursor."""
    priority: int
    """barrage.v1.Priority value, kept beside the payload so fan-out never decodes it."""
    dedupe_key: str = ""
    """Scoped to the room; "" disables dedupe. Gateways use "<sender id>/<client_msg_id>"."""
    traceparent: str = ""
    """W3C traceparent of the sender, kept beside the payload for tracing."""


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One appended event as read back from the log."""

    room_id: str
    position: int
    payload: bytes
    priority: int
    dedupe_key: str = ""
    traceparent: str = ""
    prev_position: int | None = field(default=None, compare=False)
    """Position of the room's record before this one (-1: this is the room's first), None if
    the backend does not know it here. Live records carry it wherever the backend can tell,
    so that the node checks each room's live stream for continuity with one compare
    (docs/protocol.md, live-delivery continuity): positions are not contiguous per room.
    Not part of the record's identity (left out of ==): a read may not know what the tail does."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Outcome of one entry of an append."""

    record: LogRecord
    """The appended record; for a duplicate, the first copy (its position and payload)."""
    duplicate: bool


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """A room's durable metadata."""

    room_id: str
    title: str
    creator_user_id: str
    create_time_ms: int
    closed: bool = False
    close_time_ms: int = 0
    cover_url: str = ""
    labels: tuple[str, ...] = ()
    announcement: str = ""
    """The room's standing notice (UpdateRoom), not an Announcement event."""


@dataclass(frozen=True, slots=True)
class RoomQuery:
    """One page of the directory (ListRooms): rooms ordered by room_id."""

    after: str
    """Only rooms whose id sorts after this ("" from the first)."""
    limit: int
    closed: bool | None = None
    """Only closed (True) or open (False) rooms; None: both."""
    owner: str = ""
    """Only rooms of this creator_user_id ("" any)."""
    label: str = ""
    """Only rooms carrying this label ("" any)."""

    def matches(self, info: RoomInfo) -> bool:
        return (
            info.room_id > self.after
            and (self.closed is None or info.closed == self.closed)
            and (not self.owner or info.creator_user_id == self.owner)
            and (not self.label or self.label in info.labels)
        )


class PositionCheck(enum.Enum):
    """Whether a position is one of a room's records (RoomLog.check_position)."""

    RECORD = "record"
    """A retained record of the room is at this position."""
    NOT_A_RECORD = "not a record"
    """No record of the room is at this position (another room's, beyond the room's
    newest record, or never written), as far as the log retains."""
    NOT_RETAINED = "not retained"
    """The position is older than what the log retains: whose it was is no longer known."""


RecordListener = Callable[[Sequence[LogRecord]], None]
"""Receives live records. Called on the event loop, never concurrently."""

GapListener = Callable[[Sequence[str], int], None]
"""Told (rooms, through) when live records of these rooms up to position `through` could not
be delivered and never will be by the live path (the backend gave up on them): each room's
subscribers must read the log again. Called on the event loop, between listener calls."""


class RoomLog(abc.ABC):
    """Durable, ordered, per-room event log.

    Contract (what the conformance tests check):
    - append() returns only once every entry is durable to the backend's documented
      level; results are in entry order and the entries of one call are appended
      contiguously in that order, after everything previously acknowledged.
    - An entry whose dedupe_key was appended to the same room within the dedupe
      window is not appended again: its result is the first copy, duplicate=True.
      This holds across restarts, and (for shared backends) across nodes.
    - read() returns a room's records with position > after, ascending, at most
      `limit`; read_backward() those with position < before, descending.
    - Every acknowledged record is delivered, once and in position order per room, to
      the listener of every node watching that room, after it is durable; where the
      backend cannot keep this (records it can no longer read), it tells the gap
      listener instead of delivering past them silently.
    - resume from position p is complete (nothing after p was lost to retention)
      iff p >= retained_from(room) - 1.
    - check_position(room, p) is RECORD iff a retained record of that room is at p;
      NOT_RETAINED only if p < retained_from(room) (whose record it was is unknown);
      otherwise NOT_A_RECORD. It answers from an index (one lookup), never a scan.
    """

    @abc.abstractmethod
    async def start(self) -> None:
        """Open or recover the log. Raise with a clear message if impossible."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush what is pending and release resources. Idempotent."""

    @abc.abstractmethod
    def epoch(self, room_id: str) -> str:
        """Identity of the numbering the room's positions belong to."""

    @abc.abstractmethod
    async def append(self, room_id: str, entries: Sequence[LogEntry]) -> list[AppendResult]:
        """Append entries to a room; see the class contract. Raises LogUnavailableError."""

    @abc.abstractmethod
    async def read(self, room_id: str, after: int, limit: int) -> list[LogRecord]:
        """Records with position > after, ascending (after=-1: from the oldest retained)."""

    @abc.abstractmethod
    async def read_backward(self, room_id: str, before: int | None, limit: int) -> list[LogRecord]:
        """Records with position < before (None: the newest), descending."""

    @abc.abstractmethod
    async def head(self, room_id: str) -> int | None:
        """Position of the room's last record, None if it has none."""

    @abc.abstractmethod
    async def retained_from(self, room_id: str) -> int:
        """Lowest position that may still be read for the room (see class contract)."""

    async def check_position(self, room_id: str, position: int) -> PositionCheck:
        """Is `position` one of the room's records (see the class contract)? What makes a
        cursor the room's: a position alone does not, rooms share numberings. Backends
        answer from an index; this default reads one record, a scan on a shared log."""
        if position < await self.retained_from(room_id):
            return PositionCheck.NOT_RETAINED
        found = await self.read(room_id, position - 1, 1)
        return PositionCheck.RECORD if found and found[0].position == position else PositionCheck.NOT_A_RECORD

    @abc.abstractmethod
    def set_listener(self, listener: RecordListener) -> None:
        """Register the node's one live-record listener (the fan-out hub)."""

    def set_gap_listener(self, listener: GapListener) -> None:
        """Register the node's gap listener (see GapListener). A backend whose live path
        cannot lose records (in process, from its own writes) never calls it."""
        del listener  # nothing to tell

    @abc.abstractmethod
    async def watch(self, room_id: str) -> None:
        """Declare that this node has subscribers in the room: deliver its live records.

        When it returns, every record appended afterwards will reach the listener.
        """

    @abc.abstractmethod
    async def unwatch(self, room_id: str) -> None:
        """This node no longer needs the room's live records."""

    def consumer_lag(self) -> int | None:
        """Records already in the log that this node's live tail has not read yet, or None
        where that does not apply (an in-process log has no lag). For metrics; cheap."""
        return None


class RoomDirectory(abc.ABC):
    """Durable room metadata shared by every node of a log."""

    @abc.abstractmethod
    async def create(self, info: RoomInfo) -> RoomInfo:
        """Create a room. Raises RoomExistsError."""

    @abc.abstractmethod
    async def get(self, room_id: str) -> RoomInfo:
        """Read a room. Raises RoomNotFoundError."""

    @abc.abstractmethod
    async def close_room(self, room_id: str, close_time_ms: int) -> RoomInfo:
        """Mark a room closed (idempotent). Raises RoomNotFoundError."""

    @abc.abstractmethod
    async def update(self, info: RoomInfo) -> RoomInfo:
        """Replace an open room's title, cover_url, labels and announcement with info's
        (nothing else changes; a closed room is returned unchanged). Raises RoomNotFoundError."""

    @abc.abstractmethod
    async def list_rooms(self, query: RoomQuery) -> list[RoomInfo]:
        """The rooms matching query, ordered by room_id, at most query.limit."""


@dataclass(frozen=True, slots=True)
class Backend:
    """What a gateway needs from storage: the log and the room directory."""

    log: RoomLog
    rooms: RoomDirectory
