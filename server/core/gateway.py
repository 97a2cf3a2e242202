"""The gateway node's core: rooms, ingest, history, and the hand-over from replay to live.

Knows protobuf (the event format) but nothing of gRPC: transports call these
methods and turn ApiError into statuses.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from google.protobuf import timestamp_pb2

from barrage.v1 import admin_service_pb2, event_pb2, room_service_pb2
from server.auth import Identity
from server.config import Settings
from server.core import policy, wire
from server.core.cursor import CursorError, encode_cursor, parse_cursor
from server.core.errors import OK_STATUS, ApiError, Code
from server.core.hub import Channel, Hub
from server.core.outbox import Frame, Outbox
from server.log.base import (
    Backend,
    LogEntry,
    LogRecord,
    LogUnavailableError,
    RoomExistsError,
    RoomInfo,
    RoomNotFoundError,
)

log = logging.getLogger(__name__)

_REPLAY_PAGE = 500


@dataclass(frozen=True, slots=True)
class Post:
    """One event a participant asks to post."""

    key: str
    """client_msg_id or request_id: the dedupe key within (sender, room)."""
    payload: event_pb2.Payload
    traceparent: str = ""
    tracestate: str = ""


@dataclass(frozen=True, slots=True)
class Posted:
    cursor: str
    event_id: str
    duplicate: bool


def timestamp_now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(time.time_ns())
    return ts


def _millis_timestamp(ms: int) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromMilliseconds(ms)
    return ts


class Gateway:
    def __init__(self, settings: Settings, backend: Backend, node_id: str) -> None:
        self.settings = settings
        self.node_id = node_id
        self._log = backend.log
        self._rooms = backend.rooms
        self.hub = Hub(
            epoch_of=self._log.epoch,
            interval_s=settings.batch_interval_ms / 1000.0,
            max_frame_bytes=settings.max_frame_bytes,
            recent_per_room=settings.recent_events_per_room,
            on_critical=self._on_critical,
        )
        self._room_cache: dict[str, RoomInfo] = {}
        self._watch_locks: dict[str, asyncio.Lock] = {}
        self._members: dict[str, set[Member]] = {}

    async def start(self) -> None:
        self._log.set_listener(self.hub.on_records)
        await self._log.start()

    async def close(self) -> None:
        await self._log.close()

    # ------------------------------------------------------------------ rooms

    async def room(self, room_id: str) -> RoomInfo:
        """A room's metadata; cached only while the node watches the room (so it hears
        the room's RoomClosed event and the cache cannot go stale)."""
        info = self._room_cache.get(room_id)
        if info is not None:
            return info
        try:
            info = await self._rooms.get(room_id)
        except RoomNotFoundError:
            raise ApiError(Code.NOT_FOUND, "ROOM_NOT_FOUND", f"room {room_id!r} does not exist") from None
        if room_id in self.hub.channels:
            self._room_cache[room_id] = info
        return info

    async def open_room(self, room_id: str) -> RoomInfo:
        policy.check_room_id(room_id)
        info = await self.room(room_id)
        if info.closed:
            raise ApiError(Code.FAILED_PRECONDITION, "ROOM_CLOSED", f"room {room_id!r} is closed")
        return info

    async def create_room(self, who: Identity, room_id: str, title: str) -> RoomInfo:
        policy.require(who.role, "create_room")
        policy.check_room_id(room_id)
        if len(title) > 200:
            raise ApiError(Code.INVALID_ARGUMENT, "INVALID_FIELD", "title is longer than 200 characters")
        info = RoomInfo(room_id, title, who.user_id, int(time.time() * 1000))
        try:
            return await self._rooms.create(info)
        except RoomExistsError:
            raise ApiError(Code.ALREADY_EXISTS, "ROOM_EXISTS", f"room {room_id!r} already exists") from None

    async def close_room(self, who: Identity, room_id: str, reason: str) -> RoomInfo:
        policy.require(who.role, "close_room")
        policy.check_room_id(room_id)
        info = await self.room(room_id)
        if who.role == policy.HOST and info.creator_user_id != who.user_id:
            raise ApiError(Code.PERMISSION_DENIED, "ROLE_FORBIDDEN", "a host may only close rooms they created")
        if info.closed:
            return info
        payload = event_pb2.Payload(room_closed=event_pb2.RoomClosed(reason=reason[:200]))
        await self._append(who, room_id, [Post(key=f"close:{room_id}", payload=payload)], ["room_closed"])
        return await self._rooms.close_room(room_id, int(time.time() * 1000))

    async def room_message(self, room_id: str) -> admin_service_pb2.Room:
        info = await self.room(room_id)
        head = await self._log.head(room_id)
        return admin_service_pb2.Room(
            room_id=info.room_id,
            title=info.title,
            state=admin_service_pb2.ROOM_STATE_CLOSED if info.closed else admin_service_pb2.ROOM_STATE_OPEN,
            create_time=_millis_timestamp(info.create_time_ms),
            close_time=_millis_timestamp(info.close_time_ms) if info.closed else None,
            creator_user_id=info.creator_user_id,
            head_cursor=encode_cursor(self._log.epoch(room_id), head) if head is not None else "",
        )

    def _on_critical(self, record: LogRecord) -> None:
        event = event_pb2.Event.FromString(record.payload)
        if event.payload.WhichOneof("kind") == "room_closed":
            cached = self._room_cache.get(record.room_id)
            if cached is not None:
                self._room_cache[record.room_id] = RoomInfo(
                    cached.room_id,
                    cached.title,
                    cached.creator_user_id,
                    cached.create_time_ms,
                    True,
                    int(time.time() * 1000),
                )
            # After the hub has taken this record into the channel: deliver, then detach.
            asyncio.get_running_loop().call_soon(self._detach_closed_room, record.room_id)

    def _detach_closed_room(self, room_id: str) -> None:
        ch = self.hub.channels.get(room_id)
        if ch is not None:
            self.hub.flush(ch)
        for member in tuple(self._members.get(room_id, ())):
            member.owner.room_closed(room_id)

    # ----------------------------------------------------------------- ingest

    async def post(self, who: Identity, room_id: str, posts: Sequence[Post]) -> list[Posted | ApiError]:
        """Validate and append posts to an open room, in order. One result per post."""
        results: list[Posted | ApiError | None] = [None] * len(posts)
        accepted: list[int] = []
        kinds: list[str] = []
        try:
            await self.open_room(room_id)
        except ApiError as err:
            return [err] * len(posts)
        for i, item in enumerate(posts):
            try:
                kind = policy.check_payload(item.payload, self.settings.max_text_chars)
                policy.require_post(who.role, kind)
            except ApiError as err:
                results[i] = err
                continue
            accepted.append(i)
            kinds.append(kind)
        if accepted:
            appended: Sequence[Posted | ApiError]
            try:
                appended = await self._append(who, room_id, [posts[i] for i in accepted], kinds)
            except ApiError as err:
                appended = [err] * len(accepted)
            for i, outcome in zip(accepted, appended, strict=True):
                results[i] = outcome
        return [r for r in results if r is not None]

    async def _append(self, who: Identity, room_id: str, posts: Sequence[Post], kinds: Sequence[str]) -> list[Posted]:
        sender = who.sender()
        publish_time = timestamp_now()
        entries: list[LogEntry] = []
        seen: dict[str, int] = {}
        for item, kind in zip(posts, kinds, strict=True):
            priority = policy.PRIORITY[kind]
            event = event_pb2.Event(
                room_id=room_id,
                event_id=uuid.uuid4().hex,
                sender=sender,
                publish_time=publish_time,
                traceparent=item.traceparent[:256],
                tracestate=item.tracestate[:512],
                priority=priority,  # type: ignore[arg-type]
                client_msg_id=item.key,
                payload=item.payload,
            )
            key = f"{who.user_id}/{item.key}"
            seen.setdefault(key, len(entries))
            entries.append(LogEntry(event.SerializeToString(), priority, key, item.traceparent))
        try:
            results = await self._log.append(room_id, entries)
        except LogUnavailableError as exc:
            raise ApiError(
                Code.UNAVAILABLE, "LOG_UNAVAILABLE", f"the room log did not confirm the write: {exc}", retry_after_s=1.0
            ) from exc
        epoch = self._log.epoch(room_id)
        posted: list[Posted] = []
        for i, result in enumerate(results):
            record = result.record
            event_id = event_pb2.Event.FromString(record.payload).event_id if result.duplicate else None
            first = seen[entries[i].dedupe_key]
            posted.append(
                Posted(
                    cursor=encode_cursor(epoch, record.position),
                    event_id=event_id or _event_id(entries[first].payload),
                    duplicate=result.duplicate or first != i,
                )
            )
        return posted

    # ---------------------------------------------------------------- history

    def _position(self, room_id: str, cursor: str) -> int:
        try:
            parsed = parse_cursor(cursor)
        except CursorError as exc:
            raise ApiError(Code.INVALID_ARGUMENT, "CURSOR_UNKNOWN", str(exc), metadata={"field": "cursor"}) from None
        if parsed.epoch != self._log.epoch(room_id):
            raise ApiError(Code.FAILED_PRECONDITION, "CURSOR_UNKNOWN", "cursor is from another log of this room")
        return parsed.position

    async def list_events(
        self, who: Identity, room_id: str, cursor: str, backward: bool, page_size: int
    ) -> tuple[list[bytes], str]:
        """A page of complete Event bytes and the cursor for the next page ("" at the end)."""
        policy.require(who.role, "list_events")
        policy.check_room_id(room_id)
        await self.room(room_id)
        size = page_size or 100
        if not 1 <= size <= 1000:
            raise ApiError(
                Code.INVALID_ARGUMENT, "INVALID_FIELD", "page_size must be 1 to 1000", metadata={"field": "page_size"}
            )
        position = self._position(room_id, cursor) if cursor else None
        if backward:
            records = await self._log.read_backward(room_id, position, size)
        else:
            after = -1 if position is None else position
            if position is not None and position < await self._log.retained_from(room_id) - 1:
                raise ApiError(Code.FAILED_PRECONDITION, "CURSOR_TOO_OLD", "cursor is older than the log's retention")
            records = await self._log.read(room_id, after, size)
        epoch = self._log.epoch(room_id)
        events = [wire.event_with_cursor(r.payload, encode_cursor(epoch, r.position)) for r in records]
        next_cursor = encode_cursor(epoch, records[-1].position) if len(records) == size else ""
        return events, next_cursor

    # ------------------------------------------------------------ membership

    async def subscribe(self, member: Member, resume_cursor: str, history_limit: int) -> room_service_pb2.JoinResult:
        """Join a room: answer, then replay (in the background) and hand over to live.

        The hand-over is gap-free because the node watches the room (and its channel
        collects live records) before the log is read: whatever the read did not
        return, the channel has; the member's min_position hides what both have.
        """
        room_id = member.room_id
        info = await self.open_room(room_id)
        policy.require(member.identity.role, "join")
        self._members.setdefault(room_id, set()).add(member)
        try:
            await self._watch(room_id)
        except BaseException:
            self.unsubscribe(member)
            raise
        self._room_cache.setdefault(room_id, info)
        outcome = room_service_pb2.RESUME_OUTCOME_FRESH
        after: int | None = None
        epoch = self._log.epoch(room_id)
        if resume_cursor:
            try:
                parsed = parse_cursor(resume_cursor)
            except CursorError:
                parsed = None
            if parsed is None or parsed.epoch != epoch:
                outcome = room_service_pb2.RESUME_OUTCOME_CURSOR_UNKNOWN
            elif parsed.position < await self._log.retained_from(room_id) - 1:
                outcome = room_service_pb2.RESUME_OUTCOME_CURSOR_TOO_OLD
            else:
                outcome = room_service_pb2.RESUME_OUTCOME_RESUMED
                after = parsed.position
        head = await self._log.head(room_id)
        if after is None:
            limit = min(history_limit, self.settings.max_history_limit)
            if limit and head is not None:
                older = await self._log.read_backward(room_id, head + 1, limit)
                after = older[-1].position - 1 if older else head
            else:
                after = head if head is not None else -1
        member.replay = asyncio.create_task(self._replay(member, after), name=f"replay:{room_id}")
        return room_service_pb2.JoinResult(
            room_id=room_id,
            status=OK_STATUS,
            resume=outcome,
            snapshot=room_service_pb2.RoomSnapshot(
                room_id=room_id,
                title=info.title,
                head_cursor=encode_cursor(epoch, head) if head is not None else "",
            ),
        )

    async def _replay(self, member: Member, after: int) -> None:
        room_id = member.room_id
        ch = self.hub.channel(room_id)
        high_water = self.settings.outbox_max_bytes // 2
        epoch = self._log.epoch(room_id)
        # Read the log until it has nothing more after `after` and the channel still
        # holds everything it received after `after`; records appended before the node
        # watched the room are only in the log, later ones are in the channel.
        while True:
            records = await self._log.read(room_id, after, _REPLAY_PAGE)
            if records:
                events = [
                    (r.position, wire.event_with_cursor(r.payload, encode_cursor(epoch, r.position))) for r in records
                ]
                member.push_replay(_replay_frame(ch, events, epoch))
                after = records[-1].position
                await member.outbox.wait_below(high_water)
            if len(records) < _REPLAY_PAGE and ch.evicted_upto <= after:
                break
        # No await from here on: the channel cannot change under us.
        tail = [(pos, event) for pos, _, event in ch.recent if pos > after]
        if tail:
            member.push_replay(_replay_frame(ch, tail, epoch))
            after = tail[-1][0]
        member.min_position = after
        ch.subscribers.add(member)

    async def _watch(self, room_id: str) -> None:
        lock = self._watch_locks.setdefault(room_id, asyncio.Lock())
        async with lock:
            if room_id not in self.hub.channels:
                self.hub.channel(room_id)
                try:
                    await self._log.watch(room_id)
                except BaseException:
                    self.hub.drop_channel(room_id)
                    raise

    def unsubscribe(self, member: Member) -> None:
        """Remove a member; the last one out stops the node watching the room."""
        room_id = member.room_id
        if member.replay is not None and not member.replay.done():
            member.replay.cancel()
        members = self._members.get(room_id)
        if members is not None:
            members.discard(member)
            if not members:
                del self._members[room_id]
        ch = self.hub.channels.get(room_id)
        if ch is None:
            return
        ch.subscribers.discard(member)
        if room_id not in self._members:
            self.hub.drop_channel(room_id)
            self._room_cache.pop(room_id, None)
            task = asyncio.get_running_loop().create_task(self._unwatch(room_id))
            task.add_done_callback(_log_failure)

    async def _unwatch(self, room_id: str) -> None:
        lock = self._watch_locks.setdefault(room_id, asyncio.Lock())
        async with lock:
            if room_id not in self.hub.channels:
                await self._log.unwatch(room_id)
                self._watch_locks.pop(room_id, None)


class MemberOwner(Protocol):
    """The stream a membership belongs to."""

    def room_closed(self, room_id: str) -> None:
        """The room was closed: its RoomClosed event is queued; forget the room."""

    def room_lagged(self, room_id: str) -> None:
        """The stream could not keep up with the room: make the client resume."""


class Member:
    """A stream's membership in one room (the hub's Subscriber)."""

    __slots__ = ("room_id", "identity", "outbox", "owner", "min_position", "replay", "lagging")

    def __init__(self, room_id: str, identity: Identity, outbox: Outbox, owner: MemberOwner) -> None:
        self.room_id = room_id
        self.identity = identity
        self.outbox = outbox
        self.owner = owner
        self.min_position = 2**63
        """Nothing live is delivered before the replay hands over."""
        self.replay: asyncio.Task[None] | None = None
        self.lagging = False

    def push_replay(self, frame: Frame) -> None:
        # Replayed history is the client's to pace (wait_below), never shed.
        self.outbox.put_control(frame.data)
        self.outbox.delivered[self.room_id] = frame.last_cursor

    def deliver(self, frame: Frame) -> None:
        if self.lagging:
            return
        if not self.outbox.put_frame(frame):
            self.lagging = True
            self.owner.room_lagged(self.room_id)


def _replay_frame(ch: Channel, events: list[tuple[int, bytes]], epoch: str) -> Frame:
    entries = tuple((pos, wire.batch_entry(event)) for pos, event in events)
    last = events[-1][0]
    return Frame(
        room_id=ch.room_id,
        data=wire.event_batch_message(ch.room_tag, (e for _, e in entries)),
        first_position=events[0][0],
        last_position=last,
        last_cursor=encode_cursor(epoch, last),
        event_count=len(events),
        critical=True,
        entries=entries,
    )


def _event_id(payload: bytes) -> str:
    return event_pb2.Event.FromString(payload).event_id


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())
