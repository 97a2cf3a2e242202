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
from typing import Any, Protocol

from google.protobuf import timestamp_pb2

from barrage.v1 import admin_service_pb2, event_pb2, room_service_pb2
from server.auth import Identity
from server.commerce import boards, giveaways
from server.commerce.interactions import Interactions
from server.commerce.state import RoomState, Unappliable, decode_event, read_checkpoint, skipped
from server.commerce.ticker import RoomTicker
from server.commerce.wordfilter import WordFilter
from server.config import Settings
from server.core import dedupe_keys, media_clock, observer, policy, whisper, wire
from server.core.cursor import CursorError, encode_cursor, parse_cursor
from server.core.errors import OK_STATUS, ApiError, Code, log_unavailable
from server.core.hub import Channel, Hub
from server.core.moderation import Moderation
from server.core.outbox import Frame, Outbox
from server.core.posts import Entry, Post, Posted, timestamp_now
from server.core.ratelimit import TokenBucket
from server.log.base import (
    Backend,
    LogEntry,
    LogRecord,
    LogUnavailableError,
    PositionCheck,
    RoomExistsError,
    RoomInfo,
    RoomLog,
    RoomNotFoundError,
    RoomQuery,
)

log = logging.getLogger(__name__)

SYSTEM = Identity(user_id="barrage", display_name="Barrage", role=event_pb2.ROLE_SERVICE, expires_at=float("inf"))
"""The sender of events the server produces itself (like bursts, draws, tallies)."""

_REPLAY_PAGE = 500
_CHECKPOINT_SCAN_PAGES = 40
"""How far back (pages of _REPLAY_PAGE) a rebuild looks for a checkpoint."""
_MAX_USER_BUCKETS = 100_000
_CONCURRENT_REPLAY_READS = 4
_HOLD_S = 60.0
"""How long the node keeps watching a room after an admin call needed its state (the
room's moderators, bans and slow mode), so that a service publishing into a room
pays for one rebuild, not one per call."""
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
"""W3C trace-context `traceparent` (version-traceid-parentid-flags)."""


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
        self.media_clocks = media_clock.Reports()
        self.fold_waits = giveaways.FoldWaits()
        """Answers (coupon claims, red packet grabs) waiting for the fold to reach their record."""
        self._room_cache: dict[str, RoomInfo] = {}
        self._watch_locks: dict[str, asyncio.Lock] = {}
        self._members: dict[str, set[Member]] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._read_slots = asyncio.Semaphore(_CONCURRENT_REPLAY_READS)
        self._user_buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._holds: dict[str, asyncio.TimerHandle] = {}
        """Rooms watched for admin calls (no member needs them), until the timer fires."""
        self.moderation: Moderation | None = None
        """The platform's moderation hook (--moderation-hook), set by the node."""

    async def start(self) -> None:
        self._log.set_listener(self._on_records)
        self._log.set_gap_listener(self._on_log_gap)
        await self._log.start()
        self._ticker = asyncio.create_task(RoomTicker(self).run(), name="room-ticker")

    async def close(self) -> None:
        for handle in self._holds.values():
            handle.cancel()
        self._holds.clear()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self._log.close()
        if self.moderation is not None:
            await self.moderation.reviewer.close()

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

    async def create_room(self, who: Identity, room_id: str, title: str, host_user_id: str = "") -> RoomInfo:
        """Create a room owned by the calling host, or by the host a service names."""
        policy.require_create(who)
        if host_user_id and host_user_id != who.user_id and who.role != policy.SERVICE:
            raise ApiError(
                Code.PERMISSION_DENIED,
                "ROLE_FORBIDDEN",
                "only a service may create a room for another host",
                metadata={"action": "create_room", "role": policy.role_name(who.role)},
            )
        policy.check_room_id(room_id)
        if len(title) > 200:
            raise ApiError(Code.INVALID_ARGUMENT, "INVALID_FIELD", "title is longer than 200 characters")
        if host_user_id:
            policy.check_client_id(host_user_id, "host_user_id")
        # The directory's creator_user_id is the room's owner (Room.creator_user_id).
        info = RoomInfo(room_id, title, host_user_id or who.user_id, int(time.time() * 1000))
        try:
            return await self._rooms.create(info)
        except RoomExistsError:
            raise ApiError(Code.ALREADY_EXISTS, "ROOM_EXISTS", f"room {room_id!r} already exists") from None

    async def close_room(self, who: Identity, room_id: str, reason: str) -> RoomInfo:
        policy.check_room_id(room_id)
        info = await self.room(room_id)
        # Only the owner and services may close: appointed moderators do not matter
        # here except to name the caller's standing in the refusal.
        state = self.states.get(room_id)
        where = policy.standing(who, room_id, info.creator_user_id, state.moderators if state is not None else ())
        policy.require(who, where, "close_room")
        if info.closed:
            return info
        payload = event_pb2.Payload(room_closed=event_pb2.RoomClosed(reason=reason[:200]))
        entry = Entry(payload, policy.CRITICAL, f"close:{room_id}")
        entries = [*await boards.final_entries(self, room_id, info), entry]  # the final leaderboard first
        await self.append(who, room_id, entries, [""] * len(entries), [("", "")] * len(entries))
        return await self._rooms.close_room(room_id, int(time.time() * 1000))

    async def update_room(
        self, who: Identity, room_id: str, title: str, cover_url: str, labels: Sequence[str], announcement: str
    ) -> RoomInfo:
        """Replace the room's metadata (the caller merged its update mask into the current
        values), then tell live viewers with a RoomUpdated event.

        The directory is written first: a viewer joining in between reads the new values
        in its snapshot and then gets the event too (which carries every value, so applying
        it twice is harmless). A failed append leaves the directory updated and the call
        failed: its retry appends the event."""
        info = await self.authority(who, room_id, "update_room")  # ROLE_FORBIDDEN before INVALID_FIELD
        if info.closed:
            raise ApiError(Code.FAILED_PRECONDITION, "ROOM_CLOSED", f"room {room_id!r} is closed")
        policy.check_room_metadata(title, cover_url, labels, announcement)
        new = dataclasses.replace(
            info, title=title, cover_url=cover_url, labels=tuple(labels), announcement=announcement
        )
        updated = await self._rooms.update(new)
        payload = event_pb2.Payload(
            room_updated=event_pb2.RoomUpdated(
                title=updated.title,
                cover_url=updated.cover_url,
                labels=updated.labels,
                announcement=updated.announcement,
            )
        )
        entry = Entry(payload, policy.CRITICAL, f"update:{uuid.uuid4().hex}")
        await self.append(who, room_id, [entry], [""], [("", "")])
        self._room_cache.pop(room_id, None)
        return updated

    async def list_rooms(self, who: Identity, query: RoomQuery) -> list[RoomInfo]:
        """A page of the directory. Services see every room; a host its own rooms only."""
        if who.role == policy.HOST and query.owner in ("", who.user_id):
            query = dataclasses.replace(query, owner=who.user_id)
        elif who.role != policy.SERVICE:
            message = (
                "a host may list only its own rooms"
                if who.role == policy.HOST
                else f"role {policy.role_name(who.role)} may not list rooms"
            )
            raise ApiError(
                Code.PERMISSION_DENIED,
                "ROLE_FORBIDDEN",
                message,
                metadata={"action": "list_rooms", "role": policy.role_name(who.role)},
            )
        return await self._rooms.list_rooms(query)

    async def get_room(self, who: Identity, room_id: str) -> admin_service_pb2.Room:
        info = await self.authority(who, room_id, "get_room")
        # The answer lists the room's moderators: make sure the node has its state.
        await self._room_state(room_id, info)
        return await self.room_message(room_id)

    async def authority(self, who: Identity, room_id: str, action: str) -> RoomInfo:
        """The room, if the caller's standing in it may take `action` (policy.ACTIONS);
        else ROLE_FORBIDDEN. The room's moderators are looked up only when they could
        matter: a viewer or host token refused on its own standing may be appointed."""
        policy.check_room_id(room_id)
        info = await self.room(room_id)
        where = policy.standing(who, room_id, info.creator_user_id, ())
        if where not in policy.ACTIONS[action] and who.role in (policy.VIEWER, policy.HOST):
            state = await self._room_state(room_id, info)
            where = policy.standing(who, room_id, info.creator_user_id, state.moderators)
        policy.require(who, where, action)
        return info

    async def _room_state(self, room_id: str, info: RoomInfo) -> RoomState:
        """The room's folded state: the live one when the node watches the room (an
        open room nobody on this node has joined is watched, and held for _HOLD_S); a
        closed room's is read from its log."""
        state = self.states.get(room_id)
        if state is not None and room_id in self._members:
            return state
        if info.closed:
            return state if state is not None else await self._read_state(room_id)
        self._hold(room_id)
        if state is None:
            try:
                await self._watch(room_id)
            except BaseException:
                self._release_hold(room_id)
                raise
            state = self.states[room_id]
        return state

    async def state_of(self, room_id: str, reread: bool = False) -> RoomState:
        """The room's folded state (see _room_state), for admin calls that read it;
        `reread`: a closed room's is folded from its log again (after an append to it)."""
        info = await self.room(room_id)
        if reread and info.closed:
            return await self._read_state(room_id)
        return await self._room_state(room_id, info)

    def _hold(self, room_id: str) -> None:
        handle = self._holds.pop(room_id, None)
        if handle is not None:
            handle.cancel()
        self._holds[room_id] = asyncio.get_running_loop().call_later(_HOLD_S, self._release_hold, room_id)

    def _release_hold(self, room_id: str) -> None:
        handle = self._holds.pop(room_id, None)
        if handle is not None:
            handle.cancel()
        if room_id not in self._members:
            self._drop(room_id)

    async def _read_state(self, room_id: str) -> RoomState:
        """Fold a room's retained history without watching it (closed rooms)."""
        state = await self._latest_checkpoint(room_id)
        after = state.position
        while True:
            records = await self._log.read(room_id, after, _REPLAY_PAGE)
            for record in records:
                state.fold(record.position, event_pb2.Event.FromString(record.payload))
            if records:
                after = records[-1].position
            if len(records) < _REPLAY_PAGE:
                return state

    async def room_message(self, room_id: str) -> admin_service_pb2.Room:
        info = await self.room(room_id)
        head = await self._log.head(room_id)
        state = self.states.get(room_id)
        return admin_service_pb2.Room(
            room_id=info.room_id,
            title=info.title,
            state=admin_service_pb2.ROOM_STATE_CLOSED if info.closed else admin_service_pb2.ROOM_STATE_OPEN,
            create_time=_millis_timestamp(info.create_time_ms),
            close_time=_millis_timestamp(info.close_time_ms) if info.closed else None,
            creator_user_id=info.creator_user_id,
            head_cursor=encode_cursor(self._log.epoch(room_id), head) if head is not None else "",
            moderator_user_ids=sorted(state.moderators) if state is not None else [],
            cover_url=info.cover_url,
            labels=info.labels,
            announcement=info.announcement,
        )

    def info_message(self, info: RoomInfo) -> admin_service_pb2.Room:
        """A directory entry as a Room, without reading the log (ListRooms: no head cursor
        or moderators, which would cost a read per room)."""
        return admin_service_pb2.Room(
            room_id=info.room_id,
            title=info.title,
            state=admin_service_pb2.ROOM_STATE_CLOSED if info.closed else admin_service_pb2.ROOM_STATE_OPEN,
            create_time=_millis_timestamp(info.create_time_ms),
            close_time=_millis_timestamp(info.close_time_ms) if info.closed else None,
            creator_user_id=info.creator_user_id,
            cover_url=info.cover_url,
            labels=info.labels,
            announcement=info.announcement,
        )

    def _on_records(self, records: Sequence[LogRecord]) -> None:
        """The log's listener: check each room's continuity, fold each event into its room's
        state, then fan out.

        Each event is decoded once per node here (not per subscriber). Continuity costs one
        compare per record: a record's predecessor in its room (when the log knows it) must
        be the last record the room's channel read; if not, the room's live stream on this
        node is broken and _live_gap handles it before anything past the break is queued."""
        items: list[tuple[LogRecord, str | None]] = []
        audiences: dict[tuple[str, int], whisper.Audience] = {}
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
            state = self.states.get(room_id)
            try:
                event = decode_event(record.payload)
            except Unappliable as exc:
                # Bytes no client could parse either (another writer on the topic): skipped, not sent.
                skipped("live", room_id, record.position, None, exc)
                if state is not None:
                    state.position = max(state.position, record.position)
                    self.fold_waits.reached(room_id, state.position)
                continue
            kind = event.payload.WhichOneof("kind")
            if state is not None and record.position > state.position:
                banned = state.fold(record.position, event)
                self.fold_waits.reached(room_id, state.position)
                if banned is not None:
                    # After the hub has queued the ban event: deliver it, then remove the user.
                    asyncio.get_running_loop().call_soon(self._remove, room_id, banned)
            if kind == "room_closed":
                self._room_closed(room_id)
            elif kind == "room_updated":
                self._room_updated(room_id, event.payload.room_updated)
            if record.priority not in whisper.DELIVERABLE:
                if record.priority == whisper.LOG_PRIORITY and kind == "whisper":
                    # Only its audience gets it (the hub asks each subscriber); anything else
                    # not deliverable (checkpoints, unknown marks) reaches nobody.
                    moderators = state.moderators if state is not None else ()
                    audiences[(room_id, record.position)] = whisper.audience_of(event, moderators)
                    items.append((record, None))
                continue
            if kind == "whisper":
                continue  # a whisper without its mark (written around the gateway): nobody's
            coalesce = _coalescing_key(kind, event.payload) if record.priority == policy.EPHEMERAL else None
            items.append((record, coalesce))
            if observer.ON:
                observer.current.record_read(record, event, kind, self._log.epoch)
        self.hub.on_records(items, audiences)

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
        if observer.ON:
            observer.current.continuity("room_gap")
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

    def _room_updated(self, room_id: str, update: event_pb2.RoomUpdated) -> None:
        """Keep the watched room's cached metadata in step with its log (on a Kafka node the
        directory topic may not have this update yet when the log event arrives)."""
        cached = self._room_cache.get(room_id)
        if cached is not None and not cached.closed:
            self._room_cache[room_id] = dataclasses.replace(
                cached,
                title=update.title,
                cover_url=update.cover_url,
                labels=tuple(update.labels),
                announcement=update.announcement,
            )

    def _room_closed(self, room_id: str) -> None:
        hold = self._holds.pop(room_id, None)
        if hold is not None:
            hold.cancel()
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
            identity = member.identity
            # A ban never removes a service (nobody can ban one).
            if user_id is None or (identity.user_id == user_id and identity.role != policy.SERVICE):
                member.owner.removed_from_room(room_id)
        if user_id is None and room_id not in self._members and room_id not in self._holds:
            self._drop(room_id)

    # ----------------------------------------------------------------- ingest

    async def post(
        self, who: Identity, room_id: str, posts: Sequence[Post], *, action: str | None = None
    ) -> list[Posted | ApiError]:
        """The one ingest path for user content (stream sends and admin PublishEvent):
        validate and append posts to an open room, in order. One result per post.

        Checks, in order: the room is open; `action` (publish_event) if given; per
        post, the user's rate budget on this node, the caller's standing may post the
        kind (before the payload's content is looked at), the payload, moderation
        rank (TARGET_PROTECTED); then the platform's moderation hook (viewers' and
        bots' comments: server/core/moderation.py); then ban and mute, slow mode and
        once-per-user rules."""
        try:
            info = await self.open_room(room_id)
            state = await self._room_state(room_id, info)
            where = policy.standing(who, room_id, info.creator_user_id, state.moderators)
            if action is not None:
                policy.require(who, where, action)
        except ApiError as err:
            return [err] * len(posts)
        except LogUnavailableError as exc:
            return [log_unavailable(exc, "a rebuild of the room's state")] * len(posts)
        bucket = self.user_bucket(who)
        now_ms = int(time.time() * 1000)
        results: list[Posted | ApiError | None] = [None] * len(posts)
        entries: list[Entry] = []
        owners: list[int] = []
        """For each entry, the post it came from."""
        kinds: dict[int, str] = {}
        """Posts that passed the checks needing no room state beyond authority, by kind."""
        for i, item in enumerate(posts):
            try:
                # A user's streams and admin calls share one budget, so more streams or
                # the admin API do not buy a bigger flood (services: unlimited).
                wait = bucket.take()
                if wait:
                    raise ApiError(
                        Code.RESOURCE_EXHAUSTED, "RATE_LIMITED", "rate limit for this user exceeded", retry_after_s=wait
                    )
                kind = item.payload.WhichOneof("kind")
                policy.require_post(who, where, kind)  # forbidden is answered before invalid
                assert kind is not None
                policy.check_client_id(item.key, "request_id" if action else "client_msg_id")
                policy.prepare_payload(item.payload)  # what is stored: known fields, normalised text
                policy.check_payload(item.payload, self.settings.max_text_chars)
                policy.check_payload_size(item.payload, kind)
                self.interactions.check_authority(state, info.creator_user_id, where, who, kind, item.payload)
            except ApiError as err:
                results[i] = err
                continue
            kinds[i] = kind
        # The platform's hook reviews viewers' and bots' comments, all of the batch at once
        # (server/core/moderation.py): a refusal fills in results, a replacement the payload.
        replaced: dict[int, str] = {}
        if self.moderation is not None:
            refused, replaced = await self.moderation.review_posts(who, room_id, where, posts, kinds)
            for i, refusal in refused.items():
                results[i] = refusal
        for i, checked in kinds.items():
            if results[i] is not None:
                continue
            item = posts[i]
            try:
                if checked == "like":
                    # Counted here, published as a like burst by the ticker.
                    if who.user_id in state.banned and where != policy.S_SERVICE:
                        raise ApiError(Code.PERMISSION_DENIED, "BANNED", "you are banned from this room")
                    self.likes[room_id] = self.likes.get(room_id, 0) + item.payload.like.count
                    results[i] = Posted(cursor="", event_id="", duplicate=False)
                    continue
                if checked == "media_clock" and not self.media_clocks.should_log(state, room_id, item.payload, now_ms):
                    results[i] = Posted(cursor="", event_id="", duplicate=False)  # latest wins: coalesced
                    continue
                prepared = self.interactions.prepare(
                    state, who, room_id, checked, item.payload, item.key, now_ms, standing=where
                )
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
            # Claims and grabs are answered with the log's decision (server/commerce/giveaways.py).
            await giveaways.settle(self, room_id, [p.payload for p in posts], results)
            for i, text in replaced.items():
                posted = results[i]
                if isinstance(posted, Posted):
                    results[i] = dataclasses.replace(posted, replaced=True, replaced_text=text)
        return [r if r is not None else ApiError(Code.INTERNAL, "INTERNAL", "no result") for r in results]

    async def post_system(self, room_id: str, kind: str, payload: event_pb2.Payload, key: str) -> Posted:
        """Append an event the server itself produces (like bursts, draws, tallies)."""
        entry = Entry(payload, policy.PRIORITY[kind], dedupe_keys.server_key("system", key))
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
                # A whisper's record is marked (whisper.LOG_PRIORITY); the event says critical.
                priority=whisper.EVENT_PRIORITY if entry.priority == whisper.LOG_PRIORITY else entry.priority,  # type: ignore[arg-type]
                client_msg_id=client_id,
                payload=entry.payload,
            )
            seen.setdefault(entry.dedupe_key, len(records))
            data = media_clock.serialized(event, entry.payload, publish_time, self.states.get(room_id))
            records.append(LogEntry(data, entry.priority, entry.dedupe_key, traceparent))
        appending = None
        if observer.ON:
            payloads = [entry.payload for entry in entries]
            records, appending = observer.current.append_started(who.user_id, room_id, payloads, client_ids, records)
        try:
            results = await self._log.append(room_id, records)
        except LogUnavailableError as exc:
            if appending is not None:
                observer.current.append_failed(appending, exc)
            raise log_unavailable(exc, "the write") from exc
        if appending is not None:
            observer.current.append_done(appending, results)
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

    async def _position(self, room_id: str, cursor: str) -> int:
        """The position a cursor of this room names, or ApiError FAILED_PRECONDITION with
        CURSOR_UNKNOWN (not a cursor, another numbering, or no record of the room there:
        another room's cursor, one beyond the head) or CURSOR_TOO_OLD (left retention).

        One status for every cursor that cannot be resumed, garbage included: a cursor
        is opaque, so a client cannot tell garbage from a foreign cursor and has one
        thing to do (start again without it). See server/core/cursor.py.
        """
        try:
            parsed = parse_cursor(cursor)
        except CursorError as exc:
            raise _cursor_unknown(str(exc)) from None
        if parsed.epoch != self._log.epoch(room_id):
            raise _cursor_unknown("cursor is from another numbering (another room's partition, or a recreated log)")
        check = await self._log.check_position(room_id, parsed.position)
        if check is PositionCheck.NOT_RETAINED:
            raise ApiError(
                Code.FAILED_PRECONDITION,
                "CURSOR_TOO_OLD",
                "cursor is older than the log's retention",
                metadata={"field": "cursor"},
            )
        if check is not PositionCheck.RECORD:
            raise _cursor_unknown(f"cursor is not an event of room {room_id!r} (another room's, or beyond its newest)")
        return parsed.position

    async def list_events(
        self, who: Identity, room_id: str, cursor: str, backward: bool, page_size: int,
        media_time: event_pb2.MediaTime | None = None,
    ) -> tuple[list[bytes], str]:  # fmt: skip
        """A page of complete Event bytes and the cursor for the next page ("" at the end);
        with `media_time`, the page starting where the show reached it (media_clock.first_at)."""
        info = await self.authority(who, room_id, "list_events")
        size = page_size or 100
        if not 1 <= size <= 1000:
            raise ApiError(
                Code.INVALID_ARGUMENT, "INVALID_FIELD", "page_size must be 1 to 1000", metadata={"field": "page_size"}
            )
        position = await self._position(room_id, cursor) if cursor else None
        if media_time is not None:
            media_clock.check_position(media_time, cursor, backward)
            position = await media_clock.first_at(self._log, room_id, media_time)
            if position is None:
                return [], ""
        if backward:
            records = await self._log.read_backward(room_id, position, size)
        else:
            records = await self._log.read(room_id, -1 if position is None else position, size)
        epoch = self._log.epoch(room_id)
        # Whispers only for the caller's own audience (whisper.readable): staff as of now.
        state = self.states.get(room_id)
        moderators = state.moderators if state is not None else ()
        events = [
            wire.event_with_cursor(r.payload, encode_cursor(epoch, r.position))
            for r in whisper.readable(records, who, info.creator_user_id, moderators)
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
        self._members.setdefault(room_id, set()).add(member)
        try:
            await self._watch(room_id)
        except BaseException:
            self.unsubscribe(member)
            raise
        self._room_cache.setdefault(room_id, info)
        state = self.states[room_id]
        where = policy.standing(member.identity, room_id, info.creator_user_id, state.moderators)
        try:
            policy.require(member.identity, where, "join")
            if member.identity.user_id in state.banned and where != policy.S_SERVICE:
                raise ApiError(Code.PERMISSION_DENIED, "BANNED", "you are banned from this room")
        except ApiError:
            self.unsubscribe(member)
            raise
        # Staff of this room, services and bots see every event; viewers may get a sample.
        member.full = where != policy.S_VIEWER
        member.owner_user_id = info.creator_user_id  # whisper audiences: the owner is staff
        outcome = room_service_pb2.RESUME_OUTCOME_FRESH
        after: int | None = None
        epoch = self._log.epoch(room_id)
        if resume_cursor:
            # Resumed only from a record of this room (see _position); anything else is
            # answered explicitly and joins as a fresh join would: snapshot, then live.
            try:
                after = await self._position(room_id, resume_cursor)
                outcome = room_service_pb2.RESUME_OUTCOME_RESUMED
            except ApiError as err:
                if err.reason == "CURSOR_TOO_OLD":
                    outcome = room_service_pb2.RESUME_OUTCOME_CURSOR_TOO_OLD
                else:
                    outcome = room_service_pb2.RESUME_OUTCOME_CURSOR_UNKNOWN
        # The snapshot is the folded state as of `head`; events after it follow.
        head = state.position
        snapshot = state.snapshot(info.title, encode_cursor(epoch, head) if head >= 0 else "", int(time.time() * 1000))
        snapshot.owner_user_id = info.creator_user_id
        snapshot.cover_url = info.cover_url
        snapshot.labels.extend(info.labels)
        snapshot.announcement = info.announcement
        boards.fill_snapshot(snapshot, state, self)
        if after is None:
            limit = min(history_limit, self.settings.max_history_limit)
            older = await self._log.read_backward(room_id, head + 1, limit) if limit and head >= 0 else []
            after = older[-1].position - 1 if older else head
        member.replay = asyncio.create_task(self._replay(member, after), name=f"replay:{room_id}")
        member.replay.add_done_callback(member.replay_ended)
        member.joined = True
        resumed = outcome == room_service_pb2.RESUME_OUTCOME_RESUMED
        joined = event_pb2.ViewerJoined(resumed=resumed, node_id=self.node_id)
        self._presence(member, event_pb2.Payload(viewer_joined=joined))
        return room_service_pb2.JoinResult(room_id=room_id, status=OK_STATUS, resume=outcome, snapshot=snapshot)

    def _presence(self, member: Member, payload: event_pb2.Payload) -> None:
        """Record a join or leave in the room's log (for audiences and analytics), in the background."""
        key = dedupe_keys.server_key("presence", member.identity.user_id, uuid.uuid4().hex)
        entry = Entry(payload, policy.EPHEMERAL, key)
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
            state = self.states.get(room_id)
            moderators = state.moderators if state is not None else ()
            events = [
                (r.position, wire.event_with_cursor(r.payload, encode_cursor(epoch, r.position)))
                for r in whisper.readable(records, member.identity, member.owner_user_id, moderators)
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
        tail = [
            (pos, event)
            for pos, _, event, audience in ch.recent
            if pos > after and (audience is None or member.may_read(audience))
        ]
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
        are not folded, so the state sees every event once and in order. An event that
        cannot be applied is skipped (RoomState.fold_bytes), never fails the join.
        """
        state = await self._latest_checkpoint(room_id)
        ch = self.hub.channel(room_id)
        after = start = state.position
        while True:
            records = await self._log.read(room_id, after, _REPLAY_PAGE)
            for record in records:
                state.fold_bytes(record.position, record.payload)
            if records:
                after = records[-1].position
            if len(records) < _REPLAY_PAGE and ch.evicted_upto <= after:
                break
        for position, _, event, _audience in ch.recent:
            if position > after:
                state.fold_bytes(position, event)
        log.info("room %s: state rebuilt from %s", room_id, f"checkpoint at {start}" if start >= 0 else "the start")
        self.states[room_id] = state
        self.fold_waits.reached(room_id, state.position)

    async def _latest_checkpoint(self, room_id: str) -> RoomState:
        """The state in the room's newest checkpoint, if one is near the head of the log
        (the ticker writes one every checkpoint_every events); else an empty state.
        A checkpoint that does not parse or holds values out of range is skipped (logged
        and counted): an older one, or the whole retained log, is folded instead."""
        epoch = self._log.epoch(room_id)
        before: int | None = None
        for _ in range(_CHECKPOINT_SCAN_PAGES):
            records = await self._log.read_backward(room_id, before, _REPLAY_PAGE)
            for record in records:
                if record.priority == policy.INTERNAL:
                    try:
                        checkpoint = read_checkpoint(record.payload)
                        if checkpoint.epoch == epoch:
                            if checkpoint.position >= record.position:
                                # A checkpoint holds what was folded before it was written.
                                raise Unappliable(f"claims position {checkpoint.position}, after itself")
                            return RoomState.from_checkpoint(room_id, checkpoint)
                    except Unappliable as exc:
                        skipped("checkpoint", room_id, record.position, "room_checkpoint", exc)
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
            self._presence(member, event_pb2.Payload(viewer_left=event_pb2.ViewerLeft(node_id=self.node_id)))
        members = self._members.get(room_id)
        if members is not None:
            members.discard(member)
            if not members:
                del self._members[room_id]
        ch = self.hub.channels.get(room_id)
        if ch is None:
            return
        self.hub.detach(ch, member)
        if room_id not in self._members and room_id not in self._holds:
            self._drop(room_id)

    def _drop(self, room_id: str) -> None:
        """Stop watching a room nobody needs any more (no member, no hold)."""
        if room_id not in self.hub.channels:
            return
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

    __slots__ = (
        "full", "identity", "joined", "lagging", "min_position",
        "outbox", "owner", "owner_user_id", "replay", "room_id", "user_id",
    )  # fmt: skip

    def __init__(self, room_id: str, identity: Identity, outbox: Outbox, owner: MemberOwner) -> None:
        self.room_id = room_id
        self.identity = identity
        self.user_id = identity.user_id
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
        self.owner_user_id = ""
        """The room's owner (set at join): staff in whisper audiences."""

    def may_read(self, audience: whisper.Audience) -> bool:
        """Is this member in a whisper's audience? (Asked only for whispers.)"""
        return whisper.admits(audience, self.identity, self.room_id, self.owner_user_id)

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


def _cursor_unknown(message: str) -> ApiError:
    return ApiError(Code.FAILED_PRECONDITION, "CURSOR_UNKNOWN", message, metadata={"field": "cursor"})


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
    if kind == "coupon_remaining":
        return f"coupon:{payload.coupon_remaining.batch_id}"
    return kind


def _event_id(payload: bytes) -> str:
    return event_pb2.Event.FromString(payload).event_id


def _log_failure(task: asyncio.Task[Any]) -> None:
    if task.cancelled() or task.exception() is None:
        return
    error = task.exception()
    if isinstance(error, ApiError) and error.reason == "LOG_UNAVAILABLE":
        return  # the log reports its own failure, once per episode: not a traceback per append
    log.error("background task failed", exc_info=error)
