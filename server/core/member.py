"""A stream's membership in one room: what the hub delivers to, and whom it tells
when the room is gone or the stream fell behind."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from barrage.server.auth import Identity
from barrage.server.core import policy, whisper
from barrage.server.core.outbox import Frame, Outbox

log = logging.getLogger(__name__)


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
