"""The gateway node's core: rooms, ingest, history, and the hand-over from replay to live.

Knows protobuf (the event format) but nothing of gRPC: transports call these
methods and turn ApiError into statuses.

Gateway composes one part per concept, each a mixin over the state they share
(gateway_state.py); a part uses only the parts below it:

    replay.py     join (snapshot, replay, hand-over to live) and leave   Replay(History)
    live.py       live records: continuity, fold, fan-out, close, ban    Live(Watching)
    history.py    cursors and pages of past events                       History(Rooms)
    rooms.py      create, update, close, list; authority                 Rooms(Ingest)
    ingest.py     post and append                                        Ingest(Watching)
    watching.py   which rooms the node watches, and for how long         Watching(Rebuild)
    rebuild.py    a room's state, from its checkpoint and log            Rebuild(GatewayState)
    gateway_state.py  what they share                                    GatewayState

The values posts become are in posts.py; a stream's membership in a room in member.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from barrage.server.commerce.ticker import RoomTicker
from barrage.server.core.live import Live
from barrage.server.core.replay import Replay

log = logging.getLogger(__name__)


class Gateway(Replay, Live):
    """The node's rooms, as the transports (server/transport) and the ticker see them."""

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
