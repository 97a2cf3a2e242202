"""The gateway node's core: rooms, ingest, history, and the hand-over from replay to live.

Knows protobuf (the event format) but nothing of gRPC: transports call these
methods and turn ApiError into statuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from google.protobuf import timestamp_pb2

from barrage.v1 import admin_service_pb2, event_pb2, room_service_pb2
from server.auth import Identity
from server.commerce.interactions import Entry, Interactions
from server.commerce.state import RoomState
from server.commerce.ticker import RoomTicker
from server.commerce.wordfilter import WordFilter
from server.config import Settings
from server.core import policy, wire
from server.core.cursor import CursorError, encode_cursor, parse_cursor
from server.core.errors import OK_STATUS, ApiError, Code, log_unavailable
from server.core.hub import Channel, Hub
from server.core.outbox import Frame, Outbox
from server.core.ratelimit import TokenBucket
from server.log.base import (
    Backend,
    LogEntry,
    LogRecord,
    LogUnavailableError,
    RoomExistsError,
    RoomInfo,
    RoomLog,
    RoomNotFoundError,
)
from server.telemetry import hooks

log = logging.getLogger(__name__)

SYSTEM = Identity(user_id="barrage", display_name="Barrage", role=event_pb2.ROLE_SERVICE, expires_at=float("inf"))
"""The sender of events the server produces itself (like bursts, draws, tallies)."""

_REPLAY_PAGE = 500
_CHECKPOINT_SCAN_PAGES = 40
"""How far back (pages of _REPLAY_PAGE) a rebuild looks for a checkpoint."""
_MAX_USER_BUCKETS = 100_000
_CONCURRENT_REPLAY_READS = 4
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
"""W3C trace-context `traceparent` (version-traceid-parentid-flags)."""


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
            viewer_budget_per_s=settings.viewer_budget_per_s,
            write_budget_per_s=settings.write_budget_per_s,
        )
        self.interactions = Interactions(
            word_filter=WordFilter.from_file(settings.word_filter) if settings.word_filter else WordFilter(()),
            lottery_secret=settings.lottery_secret_bytes(),
            big_gift_minor=settings.big_gift_minor,
        )
        self.states: dict[str, RoomState] = {}
        """Folded state of every room this node watches (present once rebuilt)."""
        self.likes: dict[str, int] = {}
        """Likes tapped on this node and not yet published, per room."""
        self._room_cache: dict[str, RoomInfo] = {}
        self._watch_locks: dict[str, asyncio.Lock] = {}
        self._members: dict[str, set[Member]] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._read_slots = asyncio.Semaphore(_CONCURRENT_REPLAY_READS)
        self._user_buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    async def start(self) -> None:
        self._log.set_listener(self._on_records)
        self._log.set_gap_listener(self._on_log_gap)
        await self._log.start()
        self._ticker = asyncio.create_task(RoomTicker(self).run(), name="room-ticker")

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self._log.close()

    def user_bucket(self, who: Identity) -> TokenBucket:
        """The node's rate budget for one user across all their streams (services: unlimited)."""
        bucket = self._user_buckets.get(who.user_id)
        if bucket is None:
            rate, burst = self.settings.user_rate()
            if who.role == policy.SERVICE:
                rate = float("inf")
            bucket = self._user_buckets[who.user_id] = TokenBucket(rate, burst)
            if len(self._user_buckets) > _MAX_USER_BUCKETS:
                self._user_buckets.popitem(last=False)
        else:
            self._user_buckets.move_to_end(who.user_id)
        return bucket

    def epoch(self, room_id: str) -> str:
        return self._log.epoch(room_id)

    @property
    def room_log(self) -> RoomLog:
        return self._log

    def members(self, room_id: str) -> set[Member]:
        return self._members.get(room_id, set())

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
        entry = Entry(payload, policy.CRITICAL, f"close:{room_id}")
        await self.append(who, room_id, [entry], [""], [("", "")])
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

    def _on_records(self, records: Sequence[LogRecord]) -> None:
        """The log's listener: check each room's continuity, fold each event into its room's
        state, then fan out.

        Each event is decoded once per node here (not per subscriber). Continuity costs one
        compare per record: a record's predecessor in its room (when the log knows it) must
        be the last record the room's channel read; if not, the room's live stream on this
        node is broken and _live_gap handles it before anything past the break is queued."""
        items: list[tuple[LogRecord, str | None]] = []
        channels = self.hub.channels
        for record in records:
            room_id = record.room_id
            ch = channels.get(room_id)
            if ch is None:
                continue
            prev = record.prev_position
            if prev is not None and prev != ch.read_upto:
                if ch.read_upto >= 0:
                    self._live_gap(ch, prev)
                    items = [item for item in items if item[0].room_id != room_id]
                    if room_id not in channels:
                        continue  # every member was attached: all resume, the room is left
                elif prev > ch.evicted_upto:
                    # The channel's first record: a replay must read the log through its predecessor.
                    ch.evicted_upto = prev
            ch.read_upto = record.position
            event = event_pb2.Event.FromString(record.payload)
            kind = event.payload.WhichOneof("kind")
            state = self.states.get(room_id)
            if state is not None and record.position > state.position:
                banned = state.fold(record.position, event)
                if banned is not None:
                    # After the hub has queued the ban event: deliver it, then remove the user.
                    asyncio.get_running_loop().call_soon(self._remove, room_id, banned)
            if kind == "room_closed":
                self._room_closed(room_id)
            if record.priority == policy.INTERNAL:
                continue
            coalesce = _coalescing_key(kind, event.payload) if record.priority == policy.EPHEMERAL else None
            items.append((record, coalesce))
            if hooks.ON:
                hooks.record_read(record, event, kind, self._log.epoch)
        self.hub.on_records(items)

    def _on_log_gap(self, room_ids: Sequence[str], through: int) -> None:
        """The log's gap listener: live records of these rooms up to `through` will not come."""
        for room_id in room_ids:
            ch = self.hub.channels.get(room_id)
            if ch is not None:
                self._live_gap(ch, through)

    def _live_gap(self, ch: Channel, through: int) -> None:
        """The room's live stream on this node lacks records (up to `through`): never deliver past
        them. Attached members are told to resume (ResumeRequired with the cursor of the last event
        written to them), which reads the log; replays not yet handed over read it again first
        (Channel.reset); the room's state, which missed them too, is folded again from the log."""
        room_id = ch.room_id
        log.error(
            "room %s: live records after position %d up to %d did not arrive; its subscribers on this node "
            "resume from the log",
            room_id,
            ch.read_upto,
            through,
        )
        if hooks.ON:
            hooks.continuity("room_gap")
        ch.reset()
        for member in tuple(self._members.get(room_id, ())):
            if member in ch.subscribers:
                member.lagging = True
                member.owner.room_lagged(room_id)
        if self.hub.channels.get(room_id) is ch and room_id in self.states:
            task = asyncio.get_running_loop().create_task(self._refold(ch), name=f"refold:{room_id}")
            task.add_done_callback(_log_failure)

    async def _refold(self, ch: Channel) -> None:
        """Rebuild a watched room's state after its live stream broke (under the watch lock, so
        that the room cannot be unwatched and watched again meanwhile)."""
        room_id = ch.room_id
        async with self._watch_locks.setdefault(room_id, asyncio.Lock()):
            if self.hub.channels.get(room_id) is not ch:
                return
            await self._rebuild_state(room_id)
            if self.hub.channels.get(room_id) is not ch:
                self.states.pop(room_id, None)  # the room was left while it folded

    def _room_closed(self, room_id: str) -> None:
        cached = self._room_cache.get(room_id)
        if cached is not None:
            self._room_cache[room_id] = dataclasses.replace(cached, closed=True, close_time_ms=int(time.time() * 1000))
        asyncio.get_running_loop().call_soon(self._remove, room_id, None)

    def _remove(self, room_id: str, user_id: str | None) -> None:
        """Deliver what is pending, then remove the room's members (or one user's)."""
        ch = self.hub.channels.get(room_id)
        if ch is not None:
            self.hub.flush(ch)
        for member in tuple(self._members.get(room_id, ())):
            if user_id is None or member.identity.user_id == user_id:
                member.owner.removed_from_room(room_id)

    # ----------------------------------------------------------------- ingest

    async def post(self, who: Identity, room_id: str, posts: Sequence[Post]) -> list[Posted | ApiError]:
        """Validate and append posts to an open room, in order. One result per post."""
        try:
            await self.open_room(room_id)
        except ApiError as err:
            return [err] * len(posts)
        state = self.states.get(room_id)
        now_ms = int(time.time() * 1000)
        results: list[Posted | ApiError | None] = [None] * len(posts)
        entries: list[Entry] = []
        owners: list[int] = []
        """For each entry, the post it came from."""
        for i, item in enumerate(posts):
            try:
                kind = policy.check_payload(item.payload, self.settings.max_text_chars)
                policy.require_post(who.role, kind)
                if kind == "like":
                    # Counted here, published as a like burst by the ticker.
                    if state is not None and who.user_id in state.banned:
                        raise ApiError(Code.PERMISSION_DENIED, "BANNED", "you are banned from this room")
                    self.likes[room_id] = self.likes.get(room_id, 0) + item.payload.like.count
                    results[i] = Posted(cursor="", event_id="", duplicate=False)
                    continue
                prepared = self.interactions.prepare(state, who, room_id, kind, item.payload, item.key, now_ms)
            except ApiError as err:
                results[i] = err
                continue
            entries.extend(prepared)
            owners.extend([i] * len(prepared))
        if entries:
            client_ids = [posts[i].key if j == 0 or owners[j - 1] != i else "" for j, i in enumerate(owners)]
            trace = [(posts[i].traceparent, posts[i].tracestate) for i in owners]
            appended: Sequence[Posted | ApiError]
            try:
                appended = await self.append(who, room_id, entries, client_ids, trace)
            except ApiError as err:
                appended = [err] * len(entries)
            for i, outcome in zip(owners, appended, strict=True):
                if results[i] is None:
                    results[i] = outcome
        return [r if r is not None else ApiError(Code.INTERNAL, "INTERNAL", "no result") for r in results]

    async def post_system(self, room_id: str, kind: str, payload: event_pb2.Payload, key: str) -> Posted:
        """Append an event the server itself produces (like bursts, draws, tallies)."""
        entry = Entry(payload, policy.PRIORITY[kind], f"{SYSTEM.user_id}/{key}")
        (posted,) = await self.append(SYSTEM, room_id, [entry], [""], [("", "")])
        return posted

    async def append(
        self,
        who: Identity,
        room_id: str,
        entries: Sequence[Entry],
        client_ids: Sequence[str],
        trace: Sequence[tuple[str, str]],
    ) -> list[Posted]:
        """Encode each entry as an Event once and append them together."""
        sender = who.sender()
        publish_time = timestamp_now()
        records: list[LogEntry] = []
        seen: dict[str, int] = {}
        for entry, client_id, (raw_parent, raw_state) in zip(entries, client_ids, trace, strict=True):
            # Trace context is advisory: a malformed one is dropped, never an error.
            traceparent = raw_parent if _TRACEPARENT.fullmatch(raw_parent) else ""
            tracestate = raw_state[:512] if traceparent else ""
            event = event_pb2.Event(
                room_id=room_id,
                event_id=next_event_id(),
                sender=sender,
                publish_time=publish_time,
                traceparent=traceparent,
                tracestate=tracestate,
                priority=entry.priority,  # type: ignore[arg-type]
                client_msg_id=client_id,
                payload=entry.payload,
            )
            seen.setdefault(entry.dedupe_key, len(records))
            records.append(LogEntry(event.SerializeToString(), entry.priority, entry.dedupe_key, traceparent))
        appending = None
        if hooks.ON:
            payloads = [entry.payload for entry in entries]
            records, appending = hooks.append_started(who.user_id, room_id, payloads, client_ids, records)
        try:
            results = await self._log.append(room_id, records)
        except LogUnavailableError as exc:
            if appending is not None:
                hooks.append_failed(appending, exc)
            raise log_unavailable(exc, "the write") from exc
        if appending is not None:
            hooks.append_done(appending, results)
        epoch = self._log.epoch(room_id)
        posted: list[Posted] = []
        for i, result in enumerate(results):
            record = result.record
            first = seen[records[i].dedupe_key]
            source = record.payload if result.duplicate else records[first].payload
            posted.append(
                Posted(
                    cursor=encode_cursor(epoch, record.position),
                    event_id=_event_id(source),
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
        events = [
            wire.event_with_cursor(r.payload, encode_cursor(epoch, r.position))
            for r in records
            if r.priority != policy.INTERNAL
        ]
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
        state = self.states[room_id]
        if member.identity.user_id in state.banned:
            self.unsubscribe(member)
            raise ApiError(Code.PERMISSION_DENIED, "BANNED", "you are banned from this room")
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
        # The snapshot is the folded state as of `head`; events after it follow.
        head = state.position
        snapshot = state.snapshot(info.title, encode_cursor(epoch, head) if head >= 0 else "", int(time.time() * 1000))
        if after is None:
            limit = min(history_limit, self.settings.max_history_limit)
            older = await self._log.read_backward(room_id, head + 1, limit) if limit and head >= 0 else []
            after = older[-1].position - 1 if older else head
        member.replay = asyncio.create_task(self._replay(member, after), name=f"replay:{room_id}")
        member.replay.add_done_callback(member.replay_ended)
        member.joined = True
        resumed = outcome == room_service_pb2.RESUME_OUTCOME_RESUMED
        self._presence(member, event_pb2.Payload(viewer_joined=event_pb2.ViewerJoined(resumed=resumed)))
        return room_service_pb2.JoinResult(room_id=room_id, status=OK_STATUS, resume=outcome, snapshot=snapshot)

    def _presence(self, member: Member, payload: event_pb2.Payload) -> None:
        """Record a join or leave in the room's log (for audiences and analytics), in the background."""
        entry = Entry(payload, policy.EPHEMERAL, f"{member.identity.user_id}/presence:{uuid.uuid4().hex}")
        append = self.append(member.identity, member.room_id, [entry], [""], [("", "")])
        asyncio.get_running_loop().create_task(append).add_done_callback(_log_failure)

    async def _replay(self, member: Member, after: int) -> None:
        room_id = member.room_id
        ch = self.hub.channel(room_id)
        high_water = self.settings.outbox_max_bytes // 2
        epoch = self._log.epoch(room_id)
        # Read the log until it has nothing more after `after` and the channel still
        # holds everything it received after `after`; records appended before the node
        # watched the room are only in the log, later ones are in the channel.
        while True:
            resets = ch.resets
            records = await self._replay_page(room_id, after)
            events = [
                (r.position, wire.event_with_cursor(r.payload, encode_cursor(epoch, r.position)))
                for r in records
                if r.priority != policy.INTERNAL
            ]
            if events:
                member.push_replay(_replay_frame(ch, events, epoch))
            if records:
                after = records[-1].position
                await member.outbox.wait_below(high_water)
            # Hand over only after a read that started after the room's live stream last broke
            # (Channel.reset): that read has what the channel lost.
            if len(records) < _REPLAY_PAGE and ch.evicted_upto <= after and ch.resets == resets:
                break
        # No await from here on: the channel cannot change under us. The channel's recent
        # events follow each other without a gap (checked in _on_records) and the first one
        # after `after` follows what the log returned (evicted_upto <= after): the stream of
        # positions this member gets is continuous.
        tail = [(pos, event) for pos, _, event in ch.recent if pos > after]
        if tail:
            member.push_replay(_replay_frame(ch, tail, epoch))
            after = tail[-1][0]
        member.min_position = after
        self.hub.attach(ch, member)

    async def _replay_page(self, room_id: str, after: int) -> list[LogRecord]:
        """The next page of a replay. While the log does not answer, wait and ask again:
        the member stays joined, and live records collect in the channel meanwhile."""
        delay = 0.25
        while True:
            try:
                # A resume storm must not starve live fan-out: few pages are read at once.
                async with self._read_slots:
                    return await self._log.read(room_id, after, _REPLAY_PAGE)
            except LogUnavailableError as exc:
                log.warning("replay of room %s waits for the log: %s", room_id, exc)
                await asyncio.sleep(delay)
                delay = min(2 * delay, 5.0)

    async def _watch(self, room_id: str) -> None:
        lock = self._watch_locks.setdefault(room_id, asyncio.Lock())
        async with lock:
            if room_id not in self.hub.channels:
                ch = self.hub.channel(room_id)
                try:
                    await self._log.watch(room_id)
                    resets = -1
                    while resets != ch.resets:  # fold again if the live stream broke while it folded
                        resets = ch.resets
                        await self._rebuild_state(room_id)
                except BaseException:
                    self.hub.drop_channel(room_id)
                    self.states.pop(room_id, None)
                    raise

    async def _rebuild_state(self, room_id: str) -> None:
        """Fold the room's retained history, then what the channel collected meanwhile.

        Same hand-over as a replay (see subscribe); until it completes, live records
        are not folded, so the state sees every event once and in order.
        """
        state = await self._latest_checkpoint(room_id)
        ch = self.hub.channel(room_id)
        after = start = state.position
        while True:
            records = await self._log.read(room_id, after, _REPLAY_PAGE)
            for record in records:
                state.fold(record.position, event_pb2.Event.FromString(record.payload))
            if records:
                after = records[-1].position
            if len(records) < _REPLAY_PAGE and ch.evicted_upto <= after:
                break
        for position, _, event in ch.recent:
            if position > after:
                state.fold(position, event_pb2.Event.FromString(event))
        log.info("room %s: state rebuilt from %s", room_id, f"checkpoint at {start}" if start >= 0 else "the start")
        self.states[room_id] = state

    async def _latest_checkpoint(self, room_id: str) -> RoomState:
        """The state in the room's newest checkpoint, if one is near the head of the log
        (the ticker writes one every checkpoint_every events); else an empty state."""
        epoch = self._log.epoch(room_id)
        before: int | None = None
        for _ in range(_CHECKPOINT_SCAN_PAGES):
            records = await self._log.read_backward(room_id, before, _REPLAY_PAGE)
            for record in records:
                if record.priority == policy.INTERNAL:
                    checkpoint = event_pb2.Event.FromString(record.payload).payload.room_checkpoint
                    if checkpoint.epoch == epoch:
                        return RoomState.from_checkpoint(room_id, checkpoint)
            if len(records) < _REPLAY_PAGE:
                break
            before = records[-1].position
        return RoomState(room_id)

    def unsubscribe(self, member: Member) -> None:
        """Remove a member; the last one out stops the node watching the room."""
        room_id = member.room_id
        if member.replay is not None and not member.replay.done():
            member.replay.cancel()
        if member.joined:
            member.joined = False
            self._presence(member, event_pb2.Payload(viewer_left=event_pb2.ViewerLeft()))
        members = self._members.get(room_id)
        if members is not None:
            members.discard(member)
            if not members:
                del self._members[room_id]
        ch = self.hub.channels.get(room_id)
        if ch is None:
            return
        self.hub.detach(ch, member)
        if room_id not in self._members:
            self.hub.drop_channel(room_id)
            self.states.pop(room_id, None)
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

    def removed_from_room(self, room_id: str) -> None:
        """The room closed or the user was banned (the event is queued): forget the room."""

    def room_lagged(self, room_id: str) -> None:
        """The stream could not keep up with the room: make the client resume."""


class Member:
    """A stream's membership in one room (the hub's Subscriber)."""

    __slots__ = ("full", "identity", "joined", "lagging", "min_position", "outbox", "owner", "replay", "room_id")

    def __init__(self, room_id: str, identity: Identity, outbox: Outbox, owner: MemberOwner) -> None:
        self.room_id = room_id
        self.identity = identity
        self.outbox = outbox
        self.owner = owner
        self.min_position = 2**63
        """Nothing live is delivered before the replay hands over."""
        self.replay: asyncio.Task[None] | None = None
        self.lagging = False
        self.joined = False
        """Set once the join succeeded: its leave is then recorded too."""
        self.full = identity.role != policy.VIEWER
        """Staff, services and bots see every event; viewers may get a sample."""

    def replay_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        # Not attached to live delivery: the stream must not wait in silence. It is told
        # to resume (from the last cursor it was sent), which reads the log again.
        log.error("replay of room %s failed", self.room_id, exc_info=task.exception())
        self.lagging = True
        self.owner.room_lagged(self.room_id)

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


_EVENT_ID_PREFIX = os.urandom(8).hex()
_event_counter = itertools.count()


def next_event_id() -> str:
    """Unique event ids without a random draw (a syscall) per event: a random 64-bit
    prefix per process, then a counter."""
    return f"{_EVENT_ID_PREFIX}{next(_event_counter):016x}"


def _coalescing_key(kind: str | None, payload: event_pb2.Payload) -> str | None:
    """Ephemeral events with the same key replace each other within one tick."""
    if kind == "product_updated":
        return f"product:{payload.product_updated.product_id}"
    if kind == "flash_sale_stock":
        return f"sale:{payload.flash_sale_stock.sale_id}"
    if kind == "poll_tally":
        return f"poll:{payload.poll_tally.poll_id}"
    return kind


def _event_id(payload: bytes) -> str:
    return event_pb2.Event.FromString(payload).event_id


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())
