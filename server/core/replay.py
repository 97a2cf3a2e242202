"""Joining a room: the snapshot, the replay of history the member missed, and the
gap-free hand-over to live delivery; and leaving it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from barrage.server.commerce import boards
from barrage.server.core import dedupe_keys, policy, whisper, wire
from barrage.server.core.cursor import encode_cursor
from barrage.server.core.errors import OK_STATUS, ApiError, Code
from barrage.server.core.gateway_state import REPLAY_PAGE, log_failure
from barrage.server.core.history import History
from barrage.server.core.hub import Channel
from barrage.server.core.member import Member
from barrage.server.core.outbox import Frame
from barrage.server.core.posts import Entry
from barrage.server.log.base import LogRecord, LogUnavailableError
from barrage.v1 import event_pb2, room_service_pb2

log = logging.getLogger(__name__)


class Replay(History):
    """Members joining (snapshot, replay, hand-over to live) and leaving."""

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
        asyncio.get_running_loop().create_task(append).add_done_callback(log_failure)

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
            if len(records) < REPLAY_PAGE and ch.evicted_upto <= after and ch.resets == resets:
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
                    return await self._log.read(room_id, after, REPLAY_PAGE)
            except LogUnavailableError as exc:
                log.warning("replay of room %s waits for the log: %s", room_id, exc)
                await asyncio.sleep(delay)
                delay = min(2 * delay, 5.0)

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
