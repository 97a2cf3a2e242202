"""Show a room's events in step with the picture (docs/sdk.md "In step with the video").

A viewer's video plays seconds behind the camera; Barrage delivers in ~0.1 s. Events
carry `media_time` (where on the stream's timeline they happened, stamped by the node
from the host's media clock), and MediaSync holds each one until the app's player
reaches it:

    sync = MediaSync(lambda: PlayerTime(player.position_s, player.timeline_id))
    async for item in sync.run(subscription):   # or: subscription.in_step(player_time)
        render(item)

- An event is released when the player's position on the event's timeline reaches the
  event's media_time; at once when the player is on a later timeline (the stream
  restarted); at the latest `max_hold_s` (15 s) after it arrived, whatever the player
  does (paused, stalled, a media clock far off), so nothing waits for ever.
- "As fast as possible" instead of in step: events without media_time, the kinds in
  `immediate_kinds` (moderation, room closed, counters by default), and the viewer's
  own events (`is_own`): your own comment shows the moment it is sent.
- Critical events are never dropped. Normal ones are subject to a display budget
  (`normal_budget_per_s`, like the server's per-viewer budget): when a seek forward
  makes many due at once, the excess is counted in an Omitted item; and at most
  `max_held_normal` wait at once (the oldest beyond that are omitted).
- Every event is released once: a seek back, a rebuffer or a restart never shows an
  event twice, and never loses one (each is released by the player or by its hold).
- A message_deleted removes its target if it is still held (it is never shown).

Time is taken from `clock` (default time.monotonic) so tests drive it; the player is
asked `player()` at each check (every `poll_s` while events are held).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from barrage.clients.sdk.items import Omitted, RoomItem, SubscriptionEnded
from barrage.v1 import event_pb2

IMMEDIATE_KINDS = frozenset({
    "room_closed", "message_deleted", "user_banned", "user_muted", "slow_mode",
    "viewer_count", "viewer_joined", "viewer_left", "media_clock", "leaderboard", "audience",
})  # fmt: skip
"""Kinds shown as fast as possible by default: moderation must act at once (a deleted
message must not linger until the picture catches up), and counters are not moments
of the show."""

NORMAL = event_pb2.PRIORITY_NORMAL


@dataclass(frozen=True, slots=True)
class PlayerTime:
    """Where the player is: `position_s` seconds on its stream's timeline."""

    position_s: float
    timeline_id: str | None = None
    """The timeline the player shows (the stream's MediaClock.timeline_id, when the app
    can read it from the stream); None: compare with events of any timeline."""


PlayerClock = Callable[[], PlayerTime | None]
"""The app's player: its current media time, or None when nothing plays (yet)."""


@dataclass(slots=True)
class SyncStats:
    released_in_step: int = 0
    """Events shown because the player reached them (or moved to a later timeline)."""
    released_immediately: int = 0
    """Events shown at once (no media_time, an immediate kind, the viewer's own)."""
    released_by_hold: int = 0
    """Events shown because they had waited max_hold_s (or the subscription ended)."""
    omitted: int = 0
    """Normal events not shown (display budget, or too many held)."""
    deleted_while_held: int = 0
    """Held events removed by a message_deleted before they were shown."""


class _Held:
    __slots__ = ("arrived", "event", "position_s", "seq", "timeline_id")

    def __init__(self, event: event_pb2.Event, arrived: float, seq: int) -> None:
        self.event = event
        self.arrived = arrived
        self.seq = seq
        self.timeline_id = event.media_time.timeline_id
        self.position_s = event.media_time.position.ToNanoseconds() / 1e9


class MediaSync:
    def __init__(
        self,
        player: PlayerClock,
        *,
        is_own: Callable[[str], bool] | None = None,
        immediate_kinds: frozenset[str] = IMMEDIATE_KINDS,
        max_hold_s: float = 15.0,
        normal_budget_per_s: float = 30.0,
        max_held_normal: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        poll_s: float = 0.02,
    ) -> None:
        self.player = player
        self.is_own = is_own
        """Given a sender's user id: is it this viewer? (Its own events show at once.)"""
        self.immediate_kinds = immediate_kinds
        self.max_hold_s = max_hold_s
        self.normal_budget_per_s = normal_budget_per_s
        self.max_held_normal = max_held_normal
        self.clock = clock
        self.poll_s = poll_s
        self.stats = SyncStats()
        self._held: list[_Held] = []
        """Waiting for the player, in arrival (room) order."""
        self._held_normal = 0
        self._ready: list[RoomItem] = []
        self._omitted = 0
        """Normal events omitted and not yet reported (an Omitted item precedes the next one shown)."""
        self._seq = 0
        self._timelines: dict[str, int] = {}
        """Timeline ids in the order the room first mentioned them: which one is later."""
        self._allowance = normal_budget_per_s
        self._refilled = clock()

    @property
    def held(self) -> int:
        """Events waiting for the player."""
        return len(self._held)

    def offer(self, item: RoomItem) -> None:
        """Take an item of the subscription: held until due, or ready at once."""
        if not isinstance(item, event_pb2.Event):
            if isinstance(item, SubscriptionEnded):
                # Nothing more will come: show what is left, in order, then the end.
                held, self._held = self._held, []
                self._release(held, {id(h) for h in held})
            self._ready.append(item)
            return
        kind = item.payload.WhichOneof("kind")
        if kind == "media_clock":
            self._timelines.setdefault(item.payload.media_clock.timeline_id, len(self._timelines))
        elif kind == "message_deleted":
            self._drop_held(item.payload.message_deleted.event_id)
        if (
            not item.HasField("media_time")
            or kind in self.immediate_kinds
            or (self.is_own is not None and self.is_own(item.sender.user_id))
        ):
            self.stats.released_immediately += 1
            self._emit(item)
            return
        self._timelines.setdefault(item.media_time.timeline_id, len(self._timelines))
        self._seq += 1
        self._held.append(_Held(item, self.clock(), self._seq))
        if item.priority == NORMAL:
            self._held_normal += 1
            if self._held_normal > self.max_held_normal:
                self._drop_oldest_normal()

    def take(self) -> list[RoomItem]:
        """Everything due now, in the order it arrived (call after offer, and as time passes)."""
        if self._held:
            now = self.clock()
            player = self.player()
            released: list[_Held] = []
            expired: set[int] = set()
            waiting: list[_Held] = []
            for held in self._held:
                if self._reached(held, player):
                    released.append(held)
                elif now - held.arrived >= self.max_hold_s:
                    released.append(held)
                    expired.add(id(held))
                else:
                    waiting.append(held)
            if released:
                self._held = waiting
                self._release(released, expired)
        ready, self._ready = self._ready, []
        return ready

    def _reached(self, held: _Held, player: PlayerTime | None) -> bool:
        if player is None:
            return False
        if player.timeline_id is None or player.timeline_id == held.timeline_id:
            return player.position_s >= held.position_s
        playing = self._timelines.get(player.timeline_id)
        # A timeline the room never mentioned is newer than every event (a restart not yet
        # stamped on anything); an event of an earlier timeline is in the player's past.
        return playing is None or self._timelines[held.timeline_id] < playing

    def _release(self, items: list[_Held], expired: set[int]) -> None:
        """Show held events (already out of _held): critical always, normal within the budget."""
        now = self.clock()
        budget = self.normal_budget_per_s
        self._allowance = min(budget, self._allowance + (now - self._refilled) * budget)
        self._refilled = now
        for held in items:
            event = held.event
            if event.priority == NORMAL:
                self._held_normal -= 1
                if self._allowance < 1:
                    self._omit()
                    continue
                self._allowance -= 1
            if id(held) in expired:
                self.stats.released_by_hold += 1
            else:
                self.stats.released_in_step += 1
            self._emit(event)

    def _emit(self, event: event_pb2.Event) -> None:
        if self._omitted:
            self._ready.append(Omitted(event.room_id, self._omitted))
            self._omitted = 0
        self._ready.append(event)

    def _omit(self) -> None:
        self._omitted += 1
        self.stats.omitted += 1

    def _drop_oldest_normal(self) -> None:
        for i, held in enumerate(self._held):
            if held.event.priority == NORMAL:
                del self._held[i]
                self._held_normal -= 1
                self._omit()
                return

    def _drop_held(self, event_id: str) -> None:
        for i, held in enumerate(self._held):
            if held.event.event_id == event_id:
                del self._held[i]
                if held.event.priority == NORMAL:
                    self._held_normal -= 1
                self.stats.deleted_while_held += 1
                return

    def next_check_s(self) -> float | None:
        """How long until take() may have something new (None: nothing is held)."""
        if not self._held:
            return None
        oldest = self._held[0].arrived
        return max(0.0, min(self.poll_s, oldest + self.max_hold_s - self.clock()))

    async def run(self, source: AsyncIterator[RoomItem]) -> AsyncIterator[RoomItem]:
        """The source's items, each when it is due (see the module's docstring)."""
        arrived = asyncio.Event()

        async def pump() -> None:
            try:
                async for item in source:
                    self.offer(item)
                    arrived.set()
            finally:
                arrived.set()

        task = asyncio.get_running_loop().create_task(pump(), name="media-sync")
        try:
            while True:
                for item in self.take():
                    yield item
                if task.done() and (task.exception() is not None or not self._held):
                    task.result()  # the source's error, if it failed
                    return
                arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), self.next_check_s())
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
