"""One joined room: its resume state, its dedupe window and its delivery queue.

The client's reader never blocks on the application: when a subscription's queue is
full, the room is paused (its events are ignored, its cursor stays at the last event
the application was given) and, once the application has drained half the queue, the
client leaves and rejoins the room from that cursor; the server replays the rest from
the log. A slow consumer therefore costs a replay, never memory or other rooms' latency.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from barrage.clients.sdk.dedupe import RecentIds
from barrage.clients.sdk.errors import BarrageError
from barrage.clients.sdk.items import Ack, RoomItem, SubscriptionEnded
from barrage.clients.sdk.media_sync import MediaSync, PlayerClock
from barrage.v1 import event_pb2, room_service_pb2

if TYPE_CHECKING:
    from barrage.clients.sdk.client import Client


class Phase(enum.Enum):
    JOINING = "joining"
    """A join is on the current stream, no answer yet: events of the room are ignored."""
    JOINED = "joined"
    """Events are delivered."""
    PAUSED = "paused"
    """Joined on the server, but the queue is full: events are ignored until it drains."""
    DETACHED = "detached"
    """Not joined on the current stream: waiting for queue space, a retry delay or a stream."""
    LEAVING = "leaving"
    """leave() was sent."""
    ENDED = "ended"


class Subscription:
    """A room the client has joined; iterate it for the room's items.

    Yields barrage.v1.Event in cursor order without gaps or duplicates, plus Omitted,
    ResumeGap and, last, SubscriptionEnded. Iterate either subscriptions or
    Client.events(), not both: an item goes to whoever takes it first.
    """

    def __init__(
        self,
        client: Client,
        room_id: str,
        *,
        history_limit: int,
        resume_cursor: str,
        queue_size: int,
        dedupe_window: int,
    ) -> None:
        self.room_id = room_id
        self.phase = Phase.DETACHED
        self.cursor = resume_cursor
        """Where to resume: the cursor of the last event given to the application, or
        the snapshot head of a join that had nothing to replay. Empty: join fresh."""
        self.fresh_history = history_limit
        """history_limit to ask for when joining without a cursor."""
        self.snapshot: room_service_pb2.RoomSnapshot | None = None
        """The room as of the last successful (re)join."""
        self.resume_outcome: room_service_pb2.ResumeOutcome.ValueType = room_service_pb2.RESUME_OUTCOME_UNSPECIFIED
        """Outcome of the last successful (re)join."""
        self.joined: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Resolved by the first join result."""
        self.left: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent_join_with_history = False
        self.seen = RecentIds(dedupe_window)
        self.join_attempts = 0
        self.join_retry: asyncio.TimerHandle | None = None
        self._client = client
        self._queue_size = queue_size
        self._items: deque[RoomItem] = deque()
        self._wake = asyncio.Event()
        self._fatal: BaseException | None = None
        self._finished = False

    def __repr__(self) -> str:
        return f"Subscription({self.room_id!r}, {self.phase.value}, cursor={self.cursor!r})"

    # ------------------------------------------------------------ application

    @property
    def active(self) -> bool:
        return self.phase is not Phase.ENDED

    async def leave(self) -> None:
        """Leave the room; the iterator ends with SubscriptionEnded(error=None)."""
        await self._client.leave(self.room_id)

    async def send(
        self,
        text: str,
        *,
        reply_to_event_id: str = "",
        mention_user_ids: Sequence[str] = (),
        client_msg_id: str | None = None,
        traceparent: str = "",
        timeout_s: float | None = None,
    ) -> Ack:
        """Post a comment into this room (see Client.send)."""
        return await self._client.send(
            self.room_id,
            text,
            reply_to_event_id=reply_to_event_id,
            mention_user_ids=mention_user_ids,
            client_msg_id=client_msg_id,
            traceparent=traceparent,
            timeout_s=timeout_s,
        )

    async def whisper(
        self,
        text: str,
        *,
        to_user_id: str = "",
        to_staff: bool = False,
        reply_to_event_id: str = "",
        client_msg_id: str | None = None,
        timeout_s: float | None = None,
    ) -> Ack:
        """Post a private message in this room (see Client.whisper)."""
        return await self._client.whisper(
            self.room_id,
            text,
            to_user_id=to_user_id,
            to_staff=to_staff,
            reply_to_event_id=reply_to_event_id,
            client_msg_id=client_msg_id,
            timeout_s=timeout_s,
        )

    def __aiter__(self) -> AsyncIterator[RoomItem]:
        return self

    def in_step(self, player: PlayerClock, **options: Any) -> AsyncIterator[RoomItem]:
        """This room's items, each shown when the app's player reaches its media_time
        (the viewer's own events at once). `options`: MediaSync's (clients/sdk/media_sync.py)."""

        def is_own(user_id: str) -> bool:
            welcome = self._client.welcome
            return welcome is not None and welcome.user.user_id == user_id

        return MediaSync(player, is_own=is_own, **options).run(self)

    async def __anext__(self) -> RoomItem:
        while True:
            item = self.take_nowait()
            if item is not None:
                return item
            if self._fatal is not None:
                raise self._fatal
            if self._finished:
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()

    def take_nowait(self) -> RoomItem | None:
        """The next queued item, or None (used by Client.events())."""
        if not self._items:
            return None
        item = self._items.popleft()
        if isinstance(item, SubscriptionEnded):
            self._finished = True
        if self.phase is Phase.PAUSED and self.has_room():
            self._client._drained(self)
        return item

    @property
    def exhausted(self) -> bool:
        """Nothing more will come out of this subscription."""
        return not self._items and (self._finished or self._fatal is not None)

    # ------------------------------------------------------------------ client

    def has_room(self) -> bool:
        """The queue can take events (PAUSED/DETACHED rooms wait for half of it)."""
        return len(self._items) <= self._queue_size // 2

    def offer_event(self, event: event_pb2.Event) -> bool | None:
        """Deliver an event unless it is a duplicate (None). False: the queue is full."""
        if event.event_id and event.event_id in self.seen:
            return None
        if len(self._items) >= self._queue_size:
            return False
        if event.event_id:
            self.seen.add(event.event_id)
        if event.cursor:
            # Events without a position (aggregates the server never logs) cannot be
            # resumed from, so they never move the resume point.
            self.cursor = event.cursor
        self._push(event)
        return True

    def push_notice(self, item: RoomItem) -> None:
        """Queue a notice regardless of the queue bound (they are rare and tiny)."""
        self._push(item)

    def end(self, error: BarrageError | None = None) -> None:
        if self.phase is Phase.ENDED:
            return
        self.phase = Phase.ENDED
        if self.join_retry is not None:
            self.join_retry.cancel()
        if not self.joined.done():
            if error is not None:
                self.joined.set_exception(error)
                self.joined.exception()  # Mark retrieved: join() may have stopped waiting.
            else:
                self.joined.cancel()
        if not self.left.done():
            self.left.set_result(None)
        self._push(SubscriptionEnded(self.room_id, error))

    def fail(self, error: BaseException) -> None:
        """The whole client failed: iteration raises `error` after the queued items."""
        self.phase = Phase.ENDED
        if self.join_retry is not None:
            self.join_retry.cancel()
        for future in (self.joined, self.left):
            if not future.done():
                future.set_exception(error)
                future.exception()  # Mark retrieved: nobody may be waiting.
        self._fatal = error
        self._wake.set()
        self._client._item_ready()

    def _push(self, item: RoomItem) -> None:
        self._items.append(item)
        self._wake.set()
        self._client._item_ready()
