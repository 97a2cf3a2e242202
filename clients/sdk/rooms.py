"""The client's rooms: joining, resuming, and delivering each room's events.

Invariants that make "no gap, no duplicate" hold for the application:
- a room's cursor only moves when an event is handed to the application, and every
  (re)join resumes from it (policy.after_join), so whatever the application has not
  seen is replayed;
- events of a room are only delivered between a successful JoinResult and the next
  join, leave or stream end, so frames of an abandoned membership are never mixed in;
- every delivered event id is remembered (bounded), so a replay overlap is dropped;
- only the answer to the last join (or leave) written for a room on a stream counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc

from barrage.clients.sdk.errors import BarrageError, ClientClosed, JoinError
from barrage.clients.sdk.items import ClientStats, Omitted, ResumeGap
from barrage.clients.sdk.options import ClientOptions
from barrage.clients.sdk.policy import after_join, join_retry_delay
from barrage.clients.sdk.stream import Stream
from barrage.clients.sdk.subscription import Phase, Subscription
from barrage.v1 import room_service_pb2 as rs

if TYPE_CHECKING:
    from barrage.clients.sdk.client import Client

log = logging.getLogger("barrage.sdk")


class Rooms:
    def __init__(
        self,
        client: Client,
        options: ClientOptions,
        stats: ClientStats,
        *,
        stream: Callable[[], Stream | None],
        max_history: Callable[[], int],
    ) -> None:
        """`stream`: the current stream, if any; `max_history`: the server's cap on
        JoinRoom.history_limit (from the Welcome)."""
        self._client = client
        self._options = options
        self._stats = stats
        self._stream = stream
        self._max_history = max_history
        self.active: dict[str, Subscription] = {}
        """Subscriptions not ended, by room id."""
        self.subscriptions: list[Subscription] = []
        """Every subscription whose items have not all been taken (for Client.events())."""

    # ------------------------------------------------------------- application

    async def join(self, room_id: str, history_limit: int, resume_cursor: str) -> Subscription:
        self.subscriptions = [s for s in self.subscriptions if not s.exhausted]
        existing = self.active.get(room_id)
        if existing is not None:
            await self._await_join(existing)
            return existing
        sub = Subscription(
            self._client,
            room_id,
            history_limit=history_limit,
            resume_cursor=resume_cursor,
            queue_size=self._options.queue_size,
            dedupe_window=self._options.dedupe_window,
        )
        self.active[room_id] = sub
        self.subscriptions.append(sub)
        self._write_join(sub)
        await self._await_join(sub)
        return sub

    async def leave(self, room_id: str) -> None:
        sub = self.active.get(room_id)
        if sub is None:
            return
        stream = self._stream()
        if stream is None or sub.phase is Phase.DETACHED:
            self.end(sub)
            return
        if sub.phase is not Phase.LEAVING:
            sub.phase = Phase.LEAVING
            self._write_leave(stream, sub)
        with contextlib.suppress(TimeoutError, BarrageError):
            await asyncio.wait_for(asyncio.shield(sub.left), self._options.join_timeout_s)
        self.end(sub)

    def rejoining(self, room_id: str) -> bool:
        """The SDK is itself (re)joining the room, so the server may not know it yet."""
        sub = self.active.get(room_id)
        return sub is not None and sub.phase is not Phase.JOINED

    def drained(self, sub: Subscription) -> None:
        """The application caught up with a paused room: leave and rejoin from its cursor
        (the server replays what was skipped from the log)."""
        stream = self._stream()
        if self.active.get(sub.room_id) is not sub or sub.phase is not Phase.PAUSED:
            return
        if stream is None:
            sub.phase = Phase.DETACHED
            return
        log.info("room %s: consumer caught up; resuming from %s", sub.room_id, sub.cursor)
        self._write_leave(stream, sub)
        self._write_join(sub)

    # ----------------------------------------------------------------- streams

    def attach(self) -> None:
        """A new stream: rejoin every room from its cursor."""
        for sub in tuple(self.active.values()):
            if sub.join_retry is not None:
                sub.join_retry.cancel()
                sub.join_retry = None
            self._write_join(sub)

    def detach(self) -> None:
        """The stream ended: no room is joined any more."""
        for sub in tuple(self.active.values()):
            if sub.phase is Phase.LEAVING:
                self.end(sub)  # Not joined on any new stream: the leave is done.
            else:
                sub.phase = Phase.DETACHED

    def end(self, sub: Subscription, error: BarrageError | None = None) -> None:
        if self.active.get(sub.room_id) is sub:
            del self.active[sub.room_id]
        sub.end(error)

    def end_all(self) -> None:
        for sub in tuple(self.active.values()):
            self.end(sub)

    def fail_all(self, error: BaseException) -> None:
        for sub in self.active.values():
            sub.fail(error)
        self.active.clear()

    # ---------------------------------------------------------------- messages

    def on_events(self, batch: rs.EventBatch) -> None:
        sub = self.active.get(batch.room_id)
        if sub is None or sub.phase is not Phase.JOINED:
            return
        self._client.telemetry.received(batch)
        if batch.omitted_count:
            sub.push_notice(Omitted(batch.room_id, batch.omitted_count))
        for event in batch.events:
            delivered = sub.offer_event(event)
            if delivered is None:
                self._stats.duplicates_dropped += 1
            elif delivered is False:
                # The application is behind: stop here, catch up from the log later.
                log.info("room %s: consumer is behind; pausing at %s", sub.room_id, sub.cursor)
                self._stats.pauses += 1
                sub.phase = Phase.PAUSED
                return
            elif event.payload.WhichOneof("kind") == "room_closed":
                self.end(sub)
                return
            elif event.payload.WhichOneof("kind") == "user_banned" and self._is_me(event.payload.user_banned.user_id):
                # The server removes a banned user's streams from the room right after this event.
                reason = event.payload.user_banned.reason
                message = "you were removed from the room" + (f": {reason}" if reason else "")
                self.end(sub, BarrageError(grpc.StatusCode.PERMISSION_DENIED, message, reason="BANNED"))
                return

    def _is_me(self, user_id: str) -> bool:
        welcome = self._client.welcome
        return welcome is not None and welcome.user.user_id == user_id

    def on_join_result(self, stream: Stream, result: rs.JoinResult) -> None:
        room_id = result.room_id
        outstanding = stream.joins.get(room_id, 0) - 1
        stream.joins[room_id] = max(outstanding, 0)
        sub = self.active.get(room_id)
        if outstanding > 0 or sub is None or sub.phase is not Phase.JOINING:
            return  # A later join (or a leave) supersedes this answer.
        if result.status.code != 0:
            self._refused(sub, JoinError.from_status(result.status))
            return
        sub.join_attempts = 0
        self._client.telemetry.joined(room_id)
        sub.snapshot = result.snapshot
        sub.resume_outcome = result.resume
        if result.resume in (rs.RESUME_OUTCOME_CURSOR_TOO_OLD, rs.RESUME_OUTCOME_CURSOR_UNKNOWN):
            sub.push_notice(ResumeGap(room_id, result.resume, sub.cursor, result.snapshot))
        sub.cursor, sub.fresh_history = after_join(
            result.resume,
            result.snapshot.head_cursor,
            cursor=sub.cursor,
            fresh_history=sub.fresh_history,
            asked_history=sub.sent_join_with_history,
            max_history=self._max_history(),
        )
        sub.phase = Phase.JOINED if sub.has_room() else Phase.PAUSED
        if not sub.joined.done():
            sub.joined.set_result(None)

    def on_leave_result(self, stream: Stream, result: rs.LeaveResult) -> None:
        outstanding = stream.leaves.get(result.room_id, 0) - 1
        stream.leaves[result.room_id] = max(outstanding, 0)
        sub = self.active.get(result.room_id)
        if outstanding > 0 or sub is None or sub.phase is not Phase.LEAVING:
            return
        # NOT_JOINED also means we are out of the room; either way the leave is done.
        self.end(sub)

    def on_resume_required(self, required: rs.ResumeRequired) -> None:
        sub = self.active.get(required.room_id)
        if sub is None or sub.phase not in (Phase.JOINED, Phase.PAUSED):
            return
        # Our cursor is the last event the application got, so prefer it; the server's
        # is the last it wrote, which can only be the same or later.
        if not sub.cursor:
            sub.cursor = required.cursor
        self._stats.resumes_required += 1
        log.info("room %s: server asked to resume from %s", sub.room_id, sub.cursor)
        self._write_join(sub)

    # ----------------------------------------------------------------- helpers

    def _refused(self, sub: Subscription, error: JoinError) -> None:
        sub.join_attempts += 1
        delay = join_retry_delay(error, sub.join_attempts)
        if delay is not None:
            sub.phase = Phase.DETACHED
            sub.join_retry = asyncio.get_running_loop().call_later(delay, self._retry_join, sub)
            return
        log.info("room %s: join refused: %s", sub.room_id, error)  # the application gets the error itself
        self.end(sub, error)

    def _retry_join(self, sub: Subscription) -> None:
        sub.join_retry = None
        if self.active.get(sub.room_id) is sub and sub.phase is Phase.DETACHED:
            self._write_join(sub)

    def _write_join(self, sub: Subscription) -> None:
        stream = self._stream()
        if stream is None:
            sub.phase = Phase.DETACHED  # Joined by attach() on the next stream.
            return
        sub.phase = Phase.JOINING
        room_id = sub.room_id

        def build() -> rs.ConnectRequest | None:
            if self.active.get(room_id) is not sub or sub.phase is not Phase.JOINING:
                return None
            history = 0 if sub.cursor else sub.fresh_history
            return rs.ConnectRequest(
                join_room=rs.JoinRoom(room_id=room_id, resume_cursor=sub.cursor, history_limit=history)
            )

        def written() -> None:
            stream.joins[room_id] = stream.joins.get(room_id, 0) + 1
            sub.sent_join_with_history = not sub.cursor and sub.fresh_history > 0

        # Joins have their own (unadvertised) budget on the server; a refusal is retried
        # after its RetryInfo delay, so they do not spend the send budget here.
        stream.write_paced(0.0, build, written)

    def _write_leave(self, stream: Stream, sub: Subscription) -> None:
        room_id = sub.room_id

        def written() -> None:
            stream.leaves[room_id] = stream.leaves.get(room_id, 0) + 1

        stream.write_paced(0.0, lambda: rs.ConnectRequest(leave_room=rs.LeaveRoom(room_id=room_id)), written)

    async def _await_join(self, sub: Subscription) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(sub.joined), self._options.join_timeout_s)
        except TimeoutError:
            error = JoinError(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"no answer to join {sub.room_id!r}", reason="JOIN_TIMEOUT"
            )
            if self.active.get(sub.room_id) is sub:
                stream = self._stream()
                if stream is not None and sub.phase is not Phase.DETACHED:
                    self._write_leave(stream, sub)  # In case the answer is merely late.
                self.end(sub, error)
            raise error from None
        except asyncio.CancelledError:
            if sub.joined.cancelled():
                raise ClientClosed() from None
            raise
