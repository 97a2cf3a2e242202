"""Live records from the log: checked for continuity, folded into their room's state,
coalesced and handed to the hub; and what a room's close, update or ban does to it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence

from barrage.server.commerce.state import Unappliable, decode_event, skipped
from barrage.server.core import observer, policy, whisper
from barrage.server.core.gateway_state import log_failure
from barrage.server.core.hub import Channel
from barrage.server.core.watching import Watching
from barrage.server.log.base import LogRecord
from barrage.v1 import event_pb2

log = logging.getLogger(__name__)


class Live(Watching):
    """The log's listeners: live records in, continuity kept, frames out through the hub."""

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
                ch.closed_at = record.position
                self._room_closed(room_id)
            elif kind == "room_updated":
                self._room_updated(room_id, event.payload.room_updated)
            if 0 <= ch.closed_at < record.position:
                # room_closed is the room's last event (event.proto). Another node, or this
                # node's ticker, may have appended after it (a viewer count already in flight):
                # folded, but sent to nobody.
                continue
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
            task.add_done_callback(log_failure)

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
