"""Ingest: the one path by which posts (stream sends, admin publishes) and the server's
own events are checked and appended to a room's log.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import re
import time
from collections.abc import Sequence

from barrage.server.auth import Identity
from barrage.server.commerce import giveaways
from barrage.server.core import dedupe_keys, media_clock, observer, policy, whisper
from barrage.server.core.cursor import encode_cursor
from barrage.server.core.errors import ApiError, Code, log_unavailable
from barrage.server.core.posts import Entry, Post, Posted, timestamp_now
from barrage.server.core.watching import Watching
from barrage.server.log.base import LogEntry, LogUnavailableError
from barrage.v1 import event_pb2

log = logging.getLogger(__name__)

SYSTEM = Identity(user_id="barrage", display_name="Barrage", role=event_pb2.ROLE_SERVICE, expires_at=float("inf"))
"""The sender of events the server produces itself (like bursts, draws, tallies)."""

_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
"""W3C trace-context `traceparent` (version-traceid-parentid-flags)."""
_EVENT_ID_PREFIX = os.urandom(8).hex()
_event_counter = itertools.count()


class Ingest(Watching):
    """Checks posts and appends them, and the server's own events, to the log."""

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
                try:
                    prepared = self.interactions.prepare(
                        state, who, room_id, checked, item.payload, item.key, now_ms, standing=where
                    )
                except ApiError as err:
                    if err.reason != "NOT_OPEN":
                        raise
                    # What this node has folded is a prefix of the log: a batch, packet,
                    # poll or lottery it does not know may have just been opened through
                    # another node. Read the room to the log's end once, then decide.
                    state = await giveaways.caught_up(self, room_id) or state
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


def next_event_id() -> str:
    """Unique event ids without a random draw (a syscall) per event: a random 64-bit
    prefix per process, then a counter."""
    return f"{_EVENT_ID_PREFIX}{next(_event_counter):016x}"


def _event_id(payload: bytes) -> str:
    return event_pb2.Event.FromString(payload).event_id
