"""Which rooms the node watches: a room is watched while a member or an admin call
(held for a while) needs it, and its directory entry and state are kept meanwhile.
"""

from __future__ import annotations

import asyncio
import logging

from barrage.server.commerce.state import RoomState
from barrage.server.core import policy
from barrage.server.core.errors import ApiError, Code
from barrage.server.core.gateway_state import log_failure
from barrage.server.core.rebuild import Rebuild
from barrage.server.log.base import RoomInfo, RoomNotFoundError

log = logging.getLogger(__name__)

_HOLD_S = 60.0
"""How long the node keeps watching a room after an admin call needed its state (the
room's moderators, bans and slow mode), so that a service publishing into a room
pays for one rebuild, not one per call."""


class Watching(Rebuild):
    """Starts and stops the node watching rooms (the log's live records, the hub's channel,
    the folded state), and looks rooms up in the directory."""

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

    def _drop(self, room_id: str) -> None:
        """Stop watching a room nobody needs any more (no member, no hold)."""
        if room_id not in self.hub.channels:
            return
        self.hub.drop_channel(room_id)
        self.states.pop(room_id, None)
        self._room_cache.pop(room_id, None)
        task = asyncio.get_running_loop().create_task(self._unwatch(room_id))
        task.add_done_callback(log_failure)

    async def _unwatch(self, room_id: str) -> None:
        lock = self._watch_locks.setdefault(room_id, asyncio.Lock())
        async with lock:
            if room_id not in self.hub.channels:
                await self._log.unwatch(room_id)
                self._watch_locks.pop(room_id, None)
