"""The room directory on Kafka: a compacted one-partition topic keyed by room id.

Each record's value is a room's full state (JSON), so after compaction the
latest record per room is still the whole truth. Every node reads the topic
from its start at start-up and then follows it with its tail; a miss (a room
created on another node a moment ago) is answered after a catch-up read.

Fold, the same on every node because it depends only on the topic's order:
- "create" applies only if the room is unknown: the first create in the
  partition wins; a later create of the same id is ignored.
- "update" (close, or UpdateRoom's new title/cover/labels/announcement) replaces the
  state; a room once closed keeps its first close time and metadata. Two UpdateRooms
  at the same moment on two nodes: the one later in this topic wins here, which may
  not be the one later in the room's log (the snapshot reads the directory).

Each record also carries where the room's log began: the log topic's epoch and
the end offset of the room's partition when the room was created. No record of
the room can lie below it, so reads of the room's history start there instead
of at the partition's log start (a state rebuild reads a room from its first
record; without the bound that is a scan of the partition's whole retention).

Creating a room: catch up, refuse if the room is known, append a create, catch
up to it, and see whether it won. Two nodes creating one id at the same moment
therefore get exactly one success. Limit: compaction keeps the *latest* record
of a key, so a losing create could outlive the winner's; the loser immediately
re-appends the winner's state to prevent that. A loser that dies between its
create and that repair, followed by a compaction before the room is closed,
leaves the loser's title and creator in the directory (the room id is the same).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.structs import TopicPartition

from barrage.server.log.base import RoomDirectory, RoomExistsError, RoomInfo, RoomNotFoundError, RoomQuery
from barrage.server.log.kafka_session import Follower, KafkaSession, unavailable_on_error
from barrage.server.log.kafka_wire import RawRecord

log = logging.getLogger(__name__)

_CREATE = "create"
_UPDATE = "update"


LogStart = tuple[str, int]
"""(log epoch, offset): the room's partition ended at offset when the room was created."""

LogStartProbe = Callable[[str], Awaitable[LogStart]]


def _encode(op: str, info: RoomInfo, log_start: LogStart | None) -> bytes:
    doc: dict[str, Any] = {"v": 1, "op": op, "room": dataclasses.asdict(info)}
    if log_start is not None:
        doc["log"] = {"epoch": log_start[0], "offset": log_start[1]}
    return json.dumps(doc, separators=(",", ":")).encode()


def _decode(value: bytes) -> tuple[str, RoomInfo, LogStart | None]:
    doc: dict[str, Any] = json.loads(value)
    fields = {f.name for f in dataclasses.fields(RoomInfo)}
    room = {k: v for k, v in doc["room"].items() if k in fields}
    if "labels" in room:
        room["labels"] = tuple(str(label) for label in room["labels"])  # JSON has lists
    info = RoomInfo(**room)
    start = doc.get("log")
    return doc["op"], info, (str(start["epoch"]), int(start["offset"])) if start else None


class DirectoryState(Follower):
    """Every room's info, folded from the directory topic."""

    def __init__(self, session: KafkaSession, tp: TopicPartition, start: int) -> None:
        super().__init__(session, tp, start)
        self.rooms: dict[str, RoomInfo] = {}
        self.created_at: dict[str, int] = {}
        """Offset of the create record that won, per room."""
        self.log_starts: dict[str, LogStart] = {}

    def apply(self, record: RawRecord) -> None:
        if record.value is None:
            return  # a tombstone: nothing of ours writes one
        try:
            op, info, log_start = _decode(record.value)
        except (ValueError, KeyError, TypeError):
            log.warning("skipping a malformed room directory record at offset %d", record.offset)
            return
        current = self.rooms.get(info.room_id)
        if current is None:
            self.rooms[info.room_id] = info
            self.created_at[info.room_id] = record.offset
            if log_start is not None:
                self.log_starts[info.room_id] = log_start
        elif op == _UPDATE and not current.closed:
            self.rooms[info.room_id] = info


class KafkaRoomDirectory(RoomDirectory):
    """RoomDirectory over a compacted Kafka topic; started and stopped by its KafkaLog."""

    def __init__(self, session: KafkaSession, log_start: LogStartProbe) -> None:
        self._session = session
        self._probe = log_start
        self._state: DirectoryState | None = None

    async def start(self) -> DirectoryState:
        """Read the whole directory topic (the caller then follows it with the tail)."""
        session = self._session
        tp = TopicPartition(session.options.directory, 0)
        earliest = await session.offsets(tp.topic, {0: -2}, "room directory start")
        state = DirectoryState(session, tp, earliest[0][0])
        await state.sync(None)
        self._state = state
        return state

    def stop(self) -> None:
        if self._state is not None:
            self._state.cancel()
        self._state = None

    @property
    def state(self) -> DirectoryState:
        if self._state is None:
            raise RuntimeError("the Kafka room directory is not started (start the KafkaLog first)")
        return self._state

    def log_start(self, room_id: str, epoch: str) -> int:
        """No record of the room lies below this offset of the log topic (0 if unknown)."""
        state = self._state
        start = state.log_starts.get(room_id) if state is not None else None
        return start[1] if start is not None and start[0] == epoch else 0

    async def _append(self, op: str, info: RoomInfo, log_start: LogStart | None) -> int:
        session = self._session
        async with unavailable_on_error(
            f"room directory {op} of {info.room_id}", session.options.append_timeout_ms / 1000
        ):
            sent = await session.producer.send(
                self.state.tp.topic, _encode(op, info, log_start), key=info.room_id.encode(), partition=0
            )
            meta = await sent
        return int(meta.offset)

    async def create(self, info: RoomInfo) -> RoomInfo:
        state = self.state
        await state.sync(None)
        if info.room_id in state.rooms:
            raise RoomExistsError(info.room_id)
        offset = await self._append(_CREATE, info, await self._probe(info.room_id))
        await state.sync(offset + 1)
        room = info.room_id
        # Ours won if the first create in the directory is our record — or a copy of it: a produce
        # retried after a lost acknowledgement writes the record twice, and the offset returned is
        # the later copy's (CI saw both of two racing nodes told "exists" that way).
        if state.created_at.get(room) != offset and state.rooms.get(room) != info:
            # Another node's create came first; re-assert its state so compaction keeps it, not ours.
            await self._append(_UPDATE, state.rooms[room], state.log_starts.get(room))
            raise RoomExistsError(room)
        return state.rooms[info.room_id]

    async def get(self, room_id: str) -> RoomInfo:
        state = self.state
        info = state.rooms.get(room_id)
        if info is None:
            await state.sync(None)
            info = state.rooms.get(room_id)
        if info is None:
            raise RoomNotFoundError(room_id)
        return info

    async def close_room(self, room_id: str, close_time_ms: int) -> RoomInfo:
        state = self.state
        await state.sync(None)
        info = state.rooms.get(room_id)
        if info is None:
            raise RoomNotFoundError(room_id)
        if info.closed:
            return info
        closed = dataclasses.replace(info, closed=True, close_time_ms=close_time_ms)
        offset = await self._append(_UPDATE, closed, state.log_starts.get(room_id))
        await state.sync(offset + 1)
        return state.rooms[room_id]

    async def update(self, info: RoomInfo) -> RoomInfo:
        state = self.state
        await state.sync(None)
        current = state.rooms.get(info.room_id)
        if current is None:
            raise RoomNotFoundError(info.room_id)
        if current.closed:
            return current
        updated = dataclasses.replace(
            current, title=info.title, cover_url=info.cover_url, labels=info.labels, announcement=info.announcement
        )
        offset = await self._append(_UPDATE, updated, state.log_starts.get(info.room_id))
        await state.sync(offset + 1)
        return state.rooms[info.room_id]

    async def list_rooms(self, query: RoomQuery) -> list[RoomInfo]:
        # The whole directory is in memory on every node (it is read at start-up);
        # catch up first so a room created on another node a moment ago is listed.
        state = self.state
        await state.sync(None)
        found = sorted((info for info in state.rooms.values() if query.matches(info)), key=lambda i: i.room_id)
        return found[: query.limit]
