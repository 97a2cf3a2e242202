"""Rebuilding a room's folded state: from its newest checkpoint near the head of the log,
then the records after it, then what the room's channel collected meanwhile.
"""

from __future__ import annotations

import asyncio
import logging

from barrage.server.commerce.state import RoomState, Unappliable, read_checkpoint, skipped
from barrage.server.core import policy
from barrage.server.core.gateway_state import REPLAY_PAGE, GatewayState
from barrage.server.core.hub import Channel
from barrage.v1 import event_pb2

log = logging.getLogger(__name__)

_CHECKPOINT_SCAN_PAGES = 40
"""How far back (pages of REPLAY_PAGE) a rebuild looks for a checkpoint."""


class Rebuild(GatewayState):
    """Folds a room's log into its state (RoomState)."""

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
            records = await self._log.read(room_id, after, REPLAY_PAGE)
            for record in records:
                state.fold_bytes(record.position, record.payload)
            if records:
                after = records[-1].position
            if len(records) < REPLAY_PAGE and ch.evicted_upto <= after:
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
            records = await self._log.read_backward(room_id, before, REPLAY_PAGE)
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
            if len(records) < REPLAY_PAGE:
                break
            before = records[-1].position
        return RoomState(room_id)

    async def _read_state(self, room_id: str) -> RoomState:
        """Fold a room's retained history without watching it (closed rooms)."""
        state = await self._latest_checkpoint(room_id)
        after = state.position
        while True:
            records = await self._log.read(room_id, after, REPLAY_PAGE)
            for record in records:
                state.fold(record.position, event_pb2.Event.FromString(record.payload))
            if records:
                after = records[-1].position
            if len(records) < REPLAY_PAGE:
                return state

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
