"""The Barrage client: one Connect stream, kept alive across failures.

Invariants that make "no gap, no duplicate" hold for the application:
- a room's cursor only moves when an event is handed to the application, and every
  (re)join resumes from it, so whatever the application has not seen is replayed;
- events of a room are only delivered between a successful JoinResult and the next
  join, leave or stream end, so frames of an abandoned membership are never mixed in;
- every delivered event id is remembered (bounded), so a replay overlap is dropped;
- a send stays pending, keyed by (room, client_msg_id), until a SendResult settles it,
  and is written again on every new stream with the same id (the server dedupes).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import cast

import grpc

from barrage.v1 import event_pb2, room_service_pb2_grpc
from barrage.v1 import room_service_pb2 as rs
from clients.sdk.backoff import Backoff
from clients.sdk.errors import (
    RETRYABLE_STREAM_CODES,
    BarrageError,
    ClientClosed,
    ConnectionFailed,
    JoinError,
    SendError,
)
from clients.sdk.items import Ack, ClientStats, ConnectionState, Omitted, ResumeGap, RoomItem
from clients.sdk.options import ClientOptions, open_channel
from clients.sdk.policy import MAX_CLIENT_FRAME_BYTES, after_join, join_retry_delay, send_retry_delay
from clients.sdk.stream import Stream
from clients.sdk.subscription import Phase, Subscription

log = logging.getLogger("barrage.sdk")

TokenSource = str | Callable[[], Awaitable[str]]
"""A token, or an async function returning a fresh one (called before every connect)."""

_OK = 0
_REFRESH_MARGIN_S = 60.0
"""Refresh a provider's token this long before the stream's token expires."""


@dataclass(slots=True)
class _PendingSend:
    request: rs.Send
    future: asyncio.Future[Ack]
    attempts: int = 0
    retry: asyncio.TimerHandle | None = field(default=None)


class Client:
    """An async Barrage client. Use as `async with Client(target, token) as client:`."""

    def __init__(
        self,
        target: str,
        token: TokenSource,
        *,
        options: ClientOptions | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        on_state: Callable[[ConnectionState], None] | None = None,
        on_stream_error: Callable[[BarrageError], None] | None = None,
    ) -> None:
        self.target = target
        self.options = options or ClientOptions()
        self._token = token
        self._credentials = credentials
        self._on_state = on_state
        self._on_stream_error = on_stream_error
        self._state = ConnectionState.CLOSED
        self._rooms: dict[str, Subscription] = {}
        self._subs: list[Subscription] = []
        """Every subscription whose items have not all been taken (for events())."""
        self._sends: dict[tuple[str, str], _PendingSend] = {}
        self._send_slots = asyncio.Semaphore(self.options.max_pending_sends)
        self._pings: dict[int, asyncio.Future[None]] = {}
        self._nonces = itertools.count(1)
        self._stream: Stream | None = None
        self._welcome: rs.Welcome | None = None
        self._connected = asyncio.Event()
        self._activity = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self._closing = False
        self._fatal: BarrageError | None = None
        self._last_error: BarrageError | None = None
        self.stats = ClientStats()

    # ================================================================ public API

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def welcome(self) -> rs.Welcome | None:
        """The latest Welcome (the user as the server sees it, limits, node)."""
        return self._welcome

    @property
    def rooms(self) -> dict[str, Subscription]:
        """Active subscriptions by room id (a copy)."""
        return dict(self._rooms)

    async def connect(self, timeout_s: float | None = 30.0) -> rs.Welcome:
        """Open the stream and wait for the server's Welcome.

        Transient failures are retried with backoff until `timeout_s` (None: forever);
        UNAUTHENTICATED or PERMISSION_DENIED raise ConnectionFailed at once. On failure
        the client is closed.
        """
        self._check_open()
        self._start()
        try:
            await asyncio.wait_for(self._wait_connected(), timeout_s)
        except TimeoutError:
            last = self._last_error
            error = ConnectionFailed(
                last.code if last else grpc.StatusCode.UNAVAILABLE,
                f"could not connect to {self.target} within {timeout_s} s" + (f": {last.message}" if last else ""),
                reason="CONNECT_TIMEOUT",
            )
            await self.close()
            raise error from None
        except BaseException:
            await self.close()
            raise
        assert self._welcome is not None
        return self._welcome

    async def join(self, room_id: str, *, history_limit: int = 0, resume_cursor: str = "") -> Subscription:
        """Join a room and return its subscription once the server accepted the join.

        `resume_cursor`: continue after this cursor (one you stored from an earlier
        session); `history_limit`: on a fresh join, also deliver up to this many recent
        events first. Raises JoinError (NOT_FOUND, ROOM_CLOSED, ...).
        """
        self._check_open()
        self._start()
        self._subs = [s for s in self._subs if not s.exhausted]
        existing = self._rooms.get(room_id)
        if existing is not None:
            await self._await_join(existing)
            return existing
        sub = Subscription(
            self,
            room_id,
            history_limit=history_limit,
            resume_cursor=resume_cursor,
            queue_size=self.options.queue_size,
            dedupe_window=self.options.dedupe_window,
        )
        self._rooms[room_id] = sub
        self._subs.append(sub)
        self._write_join(sub)
        await self._await_join(sub)
        return sub

    async def leave(self, room_id: str) -> None:
        """Leave a room; its subscription ends with SubscriptionEnded(error=None)."""
        sub = self._rooms.get(room_id)
        if sub is None:
            return
        stream = self._stream
        if stream is None or sub.phase is Phase.DETACHED:
            self._end_room(sub)
            return
        if sub.phase is not Phase.LEAVING:
            sub.phase = Phase.LEAVING
            self._write_leave(stream, sub)
        with contextlib.suppress(TimeoutError, BarrageError):
            await asyncio.wait_for(asyncio.shield(sub.left), self.options.join_timeout_s)
        self._end_room(sub)

    async def send(
        self,
        room_id: str,
        text: str,
        *,
        reply_to_event_id: str = "",
        mention_user_ids: Sequence[str] = (),
        client_msg_id: str | None = None,
        traceparent: str = "",
        tracestate: str = "",
        timeout_s: float | None = None,
    ) -> Ack:
        """Post a comment and wait until it is durable; see send_payload."""
        comment = event_pb2.Comment(text=text, reply_to_event_id=reply_to_event_id, mention_user_ids=mention_user_ids)
        return await self.send_payload(
            room_id,
            event_pb2.Payload(comment=comment),
            client_msg_id=client_msg_id,
            traceparent=traceparent,
            tracestate=tracestate,
            timeout_s=timeout_s,
        )

    async def send_payload(
        self,
        room_id: str,
        payload: event_pb2.Payload,
        *,
        client_msg_id: str | None = None,
        traceparent: str = "",
        tracestate: str = "",
        timeout_s: float | None = None,
    ) -> Ack:
        """Post into a joined room and wait for the ack.

        The send survives reconnects: it is written again with the same client_msg_id
        until the server answers, and the server appends it at most once. Raises
        SendError with the server's code and reason, or reason SEND_TIMEOUT after
        `timeout_s` (default options.send_timeout_s); a timed-out send may still have been
        appended: retry it with the same client_msg_id (SendError.client_msg_id) to
        find out. `traceparent`: the sender span's W3C trace context, if tracing.
        """
        self._check_open()
        self._start()
        msg_id = client_msg_id or uuid.uuid4().hex
        key = (room_id, msg_id)
        wait = self.options.send_timeout_s if timeout_s is None else timeout_s
        existing = self._sends.get(key)
        if existing is not None:
            # The application retried a send that is still in flight: share its outcome.
            return await self._await_ack(existing, key, wait)
        async with self._send_slots:
            request = rs.Send(
                room_id=room_id, client_msg_id=msg_id, traceparent=traceparent, tracestate=tracestate, payload=payload
            )
            if rs.ConnectRequest(send=request).ByteSize() > MAX_CLIENT_FRAME_BYTES:
                raise SendError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"the send is larger than the server's {MAX_CLIENT_FRAME_BYTES} byte frame limit",
                    reason="FRAME_TOO_LARGE",
                    room_id=room_id,
                    client_msg_id=msg_id,
                )
            pending = _PendingSend(request, asyncio.get_running_loop().create_future())
            self._sends[key] = pending
            try:
                self._write_send(key)
                return await self._await_ack(pending, key, wait)
            finally:
                if self._sends.get(key) is pending:
                    del self._sends[key]
                if pending.retry is not None:
                    pending.retry.cancel()

    async def ping(self, timeout_s: float = 10.0) -> float:
        """Round trip to the server over the stream, in seconds."""
        self._check_open()
        stream = self._stream
        if stream is None or stream.welcome is None:
            raise BarrageError(grpc.StatusCode.UNAVAILABLE, "not connected", reason="CONNECTION_LOST")
        loop = asyncio.get_running_loop()
        nonce = next(self._nonces)
        future: asyncio.Future[None] = loop.create_future()
        self._pings[nonce] = future
        started = loop.time()
        stream.write(rs.ConnectRequest(ping=rs.Ping(nonce=nonce)))
        try:
            await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise BarrageError(grpc.StatusCode.DEADLINE_EXCEEDED, "no pong", reason="PING_TIMEOUT") from None
        finally:
            self._pings.pop(nonce, None)
        return loop.time() - started

    def refresh_token(self, token: TokenSource) -> None:
        """Use a new token: sent on the open stream now (a str), and on every reconnect.
        The server answers only a refusal, as a stream error (see on_stream_error)."""
        self._token = token
        if isinstance(token, str) and self._stream is not None:
            self._stream.write(rs.ConnectRequest(refresh_token=rs.RefreshToken(token=token)))

    async def events(self) -> AsyncIterator[RoomItem]:
        """Items of every subscription, current and future, as they arrive (each room's in
        order; rooms interleaved fairly). Ends when the client closes; raises the fatal
        error if the connection failed for good."""
        while True:
            progressed = False
            for sub in tuple(self._subs):
                item = sub.take_nowait()
                if item is not None:
                    progressed = True
                    yield item
                elif sub.exhausted and self._fatal is None:
                    self._subs.remove(sub)
            if progressed:
                continue
            if self._fatal is not None:
                raise self._fatal
            if self._closing:
                return
            self._activity.clear()
            await self._activity.wait()

    async def close(self) -> None:
        """Stop: the stream is cancelled, pending sends and joins raise ClientClosed,
        subscriptions end after their queued items."""
        if self._closing:
            return
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._settle_all(ClientClosed())
        for sub in tuple(self._rooms.values()):
            self._end_room(sub)
        self._set_state(ConnectionState.CLOSED)
        self._activity.set()

    # ============================================================ connection loop

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"barrage-client:{self.target}")

    def _check_open(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self._closing:
            raise ClientClosed()

    async def _wait_connected(self) -> None:
        while True:
            if self._fatal is not None:
                raise self._fatal
            if self._connected.is_set():
                return
            await self._connected.wait()

    async def _run(self) -> None:
        backoff = Backoff(self.options.backoff_base_s, self.options.backoff_max_s)
        try:
            while not self._closing:
                delay = await self._run_stream(backoff)
                if self._closing:
                    return
                self._set_state(ConnectionState.WAITING)
                log.info("reconnecting to %s in %.2f s", self.target, delay)
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), delay)
        except ConnectionFailed as error:
            self._fail(error)
        except Exception as exc:
            log.exception("barrage client failed")
            self._fail(ConnectionFailed(grpc.StatusCode.INTERNAL, f"client bug: {exc!r}"))

    async def _token_value(self) -> str:
        token = self._token
        return token if isinstance(token, str) else await token()

    async def _run_stream(self, backoff: Backoff) -> float:
        """One stream from dial to end; returns the delay before the next attempt."""
        self._set_state(ConnectionState.CONNECTING)
        loop = asyncio.get_running_loop()
        try:
            token = await self._token_value()
        except Exception as exc:
            # An identity provider hiccup is transient; a wrong token is the server's call.
            log.warning("token provider failed: %r", exc)
            return backoff.next_delay()
        channel = open_channel(self.target, self.options, self._credentials)
        stream = Stream(room_service_pb2_grpc.RoomServiceStub(channel).Connect(), loop)
        self._stream = stream
        self.stats.streams += 1
        try:
            stream.write(rs.ConnectRequest(hello=rs.Hello(token=token, client_agent=self.options.client_agent)))
            self._attach(stream)
            await self._read(stream)
        except grpc.aio.AioRpcError as exc:
            error = BarrageError.from_rpc_error(exc)
            self._last_error = error
            if self._closing:
                return 0.0
            if exc.code() not in RETRYABLE_STREAM_CODES:
                raise ConnectionFailed(
                    error.code, error.message, reason=error.reason, metadata=error.metadata
                ) from error
            log.info("stream ended: %s", error)
        except TimeoutError:
            log.info("stream to %s timed out (handshake or go-away grace)", self.target)
            self._last_error = BarrageError(grpc.StatusCode.DEADLINE_EXCEEDED, "no welcome from the server in time")
        finally:
            self._detach(stream)
            stream.close()
            await channel.close(None)
        if stream.welcome is not None and stream.go_away_delay is None:
            lived = loop.time() - stream.welcomed_at
            if lived >= self.options.stable_after_s:
                backoff.reset()
        if stream.go_away_delay is not None:
            backoff.reset()
            return stream.go_away_delay + backoff.next_delay()
        return backoff.next_delay()

    async def _read(self, stream: Stream) -> None:
        """Handle server frames until the stream ends (raises AioRpcError, TimeoutError)."""
        loop = asyncio.get_running_loop()
        call = stream.call
        while True:
            if stream.welcome is None:
                limit: float | None = stream.opened_at + self.options.handshake_timeout_s - loop.time()
            elif stream.go_away_delay is not None:
                limit = stream.go_away_at + self.options.go_away_grace_s - loop.time()
            else:
                limit = None
            response = await (call.read() if limit is None else asyncio.wait_for(call.read(), max(limit, 0.0)))
            if response is grpc.aio.EOF:
                # OK without our half-close is not in the protocol; treat it as a drop.
                log.info("stream ended by the server without a status")
                return
            for message in cast(rs.ConnectResponse, response).messages:
                self._handle(stream, message)

    def _attach(self, stream: Stream) -> None:
        """A new stream: rejoin every room from its cursor, resend every pending send."""
        for sub in tuple(self._rooms.values()):
            if sub.join_retry is not None:
                sub.join_retry.cancel()
                sub.join_retry = None
            self._write_join(sub)
        for key, pending in self._sends.items():
            if pending.retry is not None:
                pending.retry.cancel()
                pending.retry = None
            self._write_send(key)

    def _detach(self, stream: Stream) -> None:
        if self._stream is stream:
            self._stream = None
        if self._refreshing is not None:
            self._refreshing.cancel()  # Each stream's Welcome schedules its own.
        self._connected.clear()
        lost = BarrageError(grpc.StatusCode.UNAVAILABLE, "connection lost", reason="CONNECTION_LOST")
        for future in self._pings.values():
            if not future.done():
                future.set_exception(lost)
        for sub in tuple(self._rooms.values()):
            if sub.phase is Phase.LEAVING:
                self._end_room(sub)  # Not joined on any new stream: the leave is done.
            elif sub.phase is not Phase.ENDED:
                sub.phase = Phase.DETACHED

    def _fail(self, error: BarrageError) -> None:
        log.info("barrage client stopped: %s", error)
        self._fatal = error
        self._closing = True
        self._settle_all(error)
        for sub in tuple(self._rooms.values()):
            sub.fail(error)
        self._rooms.clear()
        self._set_state(ConnectionState.CLOSED)
        self._connected.set()  # Wake connect() waiters: they raise the fatal error.
        self._activity.set()

    def _settle_all(self, error: BarrageError) -> None:
        for (room_id, msg_id), pending in self._sends.items():
            if not pending.future.done():
                pending.future.set_exception(
                    SendError(error.code, error.message, reason=error.reason, room_id=room_id, client_msg_id=msg_id)
                )
        for future in self._pings.values():
            if not future.done():
                future.set_exception(error)

    def _set_state(self, state: ConnectionState) -> None:
        if state is self._state:
            return
        self._state = state
        if self._on_state is not None:
            try:
                self._on_state(state)
            except Exception:
                log.exception("on_state callback failed")

    # ================================================================= messages

    def _handle(self, stream: Stream, message: rs.ServerMessage) -> None:
        kind = message.WhichOneof("kind")
        if kind == "event_batch":
            self._on_events(message.event_batch)
        elif kind == "send_result":
            self._on_send_result(message.send_result)
        elif kind == "join_result":
            self._on_join_result(stream, message.join_result)
        elif kind == "leave_result":
            self._on_leave_result(stream, message.leave_result)
        elif kind == "welcome":
            self._on_welcome(stream, message.welcome)
        elif kind == "pong":
            future = self._pings.get(message.pong.nonce)
            if future is not None and not future.done():
                future.set_result(None)
        elif kind == "resume_required":
            self._on_resume_required(message.resume_required)
        elif kind == "stream_error":
            error = BarrageError.from_status(message.stream_error.status)
            log.warning("stream error from %s: %s", self.target, error)
            if self._on_stream_error is not None:
                try:
                    self._on_stream_error(error)
                except Exception:
                    log.exception("on_stream_error callback failed")
        elif kind == "go_away":
            self.stats.go_aways += 1
            stream.go_away_delay = message.go_away.reconnect_delay.ToNanoseconds() / 1e9
            stream.go_away_at = asyncio.get_running_loop().time()
            log.info("server going away (%s): reconnecting after it ends", message.go_away.reason)
        else:
            log.debug("ignoring unknown server message %r", kind)

    def _on_welcome(self, stream: Stream, welcome: rs.Welcome) -> None:
        stream.welcome = welcome
        stream.welcomed_at = asyncio.get_running_loop().time()
        stream.welcomed.set()
        self._welcome = welcome
        self._last_error = None
        self.stats.welcomes += 1
        self._connected.set()
        self._set_state(ConnectionState.CONNECTED)
        if welcome.HasField("token_expire_time") and not isinstance(self._token, str):
            expires_in = welcome.token_expire_time.ToNanoseconds() / 1e9 - time.time()
            self._refresh_soon(max(expires_in - _REFRESH_MARGIN_S, 0.0))
        log.info("connected to %s (node %s, session %s)", self.target, welcome.node_id, welcome.session_id)

    def _on_events(self, batch: rs.EventBatch) -> None:
        sub = self._rooms.get(batch.room_id)
        if sub is None or sub.phase is not Phase.JOINED:
            return
        if batch.omitted_count:
            sub.push_notice(Omitted(batch.room_id, batch.omitted_count))
        for event in batch.events:
            delivered = sub.offer_event(event)
            if delivered is None:
                self.stats.duplicates_dropped += 1
            elif delivered is False:
                # The application is behind: stop here, catch up from the log later.
                log.info("room %s: consumer is behind; pausing at %s", sub.room_id, sub.cursor)
                self.stats.pauses += 1
                sub.phase = Phase.PAUSED
                return
            if delivered and event.payload.WhichOneof("kind") == "room_closed":
                self._end_room(sub)
                return

    def _on_join_result(self, stream: Stream, result: rs.JoinResult) -> None:
        room_id = result.room_id
        outstanding = stream.joins.get(room_id, 0) - 1
        stream.joins[room_id] = max(outstanding, 0)
        sub = self._rooms.get(room_id)
        if outstanding > 0 or sub is None or sub.phase is not Phase.JOINING:
            return  # A later join (or a leave) supersedes this answer.
        if result.status.code != _OK:
            self._join_refused(sub, JoinError.from_status(result.status))
            return
        sub.join_attempts = 0
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
            max_history=self._welcome.limits.max_history_limit if self._welcome is not None else 0,
        )
        sub.phase = Phase.JOINED if sub.has_room() else Phase.PAUSED
        if not sub.joined.done():
            sub.joined.set_result(None)

    def _join_refused(self, sub: Subscription, error: JoinError) -> None:
        sub.join_attempts += 1
        delay = join_retry_delay(error, sub.join_attempts)
        if delay is not None:
            sub.phase = Phase.DETACHED
            sub.join_retry = asyncio.get_running_loop().call_later(delay, self._rejoin, sub)
            return
        log.warning("room %s: join refused: %s", sub.room_id, error)
        self._end_room(sub, error)

    def _rejoin(self, sub: Subscription) -> None:
        sub.join_retry = None
        if self._rooms.get(sub.room_id) is sub and sub.phase is Phase.DETACHED:
            self._write_join(sub)

    def _on_leave_result(self, stream: Stream, result: rs.LeaveResult) -> None:
        outstanding = stream.leaves.get(result.room_id, 0) - 1
        stream.leaves[result.room_id] = max(outstanding, 0)
        sub = self._rooms.get(result.room_id)
        if outstanding > 0 or sub is None or sub.phase is not Phase.LEAVING:
            return
        # NOT_JOINED also means we are out of the room; either way the leave is done.
        self._end_room(sub)

    def _on_resume_required(self, required: rs.ResumeRequired) -> None:
        sub = self._rooms.get(required.room_id)
        if sub is None or sub.phase not in (Phase.JOINED, Phase.PAUSED):
            return
        # Our cursor is the last event the application got, so prefer it; the server's
        # is the last it wrote, which can only be the same or later.
        if not sub.cursor:
            sub.cursor = required.cursor
        self.stats.resumes_required += 1
        log.info("room %s: server asked to resume from %s", sub.room_id, sub.cursor)
        self._write_join(sub)

    def _on_send_result(self, result: rs.SendResult) -> None:
        key = (result.room_id, result.client_msg_id)
        pending = self._sends.get(key)
        if pending is None or pending.future.done():
            return
        if result.status.code == _OK:
            pending.future.set_result(
                Ack(result.room_id, result.client_msg_id, result.cursor, result.event_id, result.duplicate)
            )
            return
        error = SendError.from_status(result.status, room_id=result.room_id, client_msg_id=result.client_msg_id)
        if error.reason == "TOKEN_EXPIRED" and not isinstance(self._token, str):
            self._refresh_soon(0.0)  # Then the send is retried like any refused one.
        sub = self._rooms.get(result.room_id)
        delay = send_retry_delay(
            error,
            pending.attempts,
            max_attempts=self.options.max_send_attempts,
            retry_rate_limited=self.options.retry_rate_limited,
            rejoining=sub is not None and sub.phase is not Phase.JOINED,
            token_refreshing=self._refreshing is not None,
        )
        if delay is None:
            pending.future.set_exception(error)
            return
        log.info("send %s to %s refused (%s); retrying in %.2f s", key[1], key[0], error.reason, delay)
        pending.retry = asyncio.get_running_loop().call_later(delay, self._retry_send, key)

    def _retry_send(self, key: tuple[str, str]) -> None:
        pending = self._sends.get(key)
        if pending is not None:
            pending.retry = None
            self._write_send(key)

    # ================================================================== writing

    def _write_join(self, sub: Subscription) -> None:
        stream = self._stream
        if stream is None:
            sub.phase = Phase.DETACHED  # Joined by _attach on the next stream.
            return
        sub.phase = Phase.JOINING
        room_id = sub.room_id

        def build() -> rs.ConnectRequest | None:
            if self._rooms.get(room_id) is not sub or sub.phase is not Phase.JOINING:
                return None
            history = 0 if sub.cursor else sub.fresh_history
            join = rs.JoinRoom(room_id=room_id, resume_cursor=sub.cursor, history_limit=history)
            return rs.ConnectRequest(join_room=join)

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

    def _write_send(self, key: tuple[str, str]) -> None:
        stream = self._stream
        if stream is None:
            return  # Written by _attach on the next stream.

        def build() -> rs.ConnectRequest | None:
            pending = self._sends.get(key)
            if pending is None or pending.future.done() or pending.retry is not None:
                return None
            return rs.ConnectRequest(send=pending.request)

        def written() -> None:
            pending = self._sends.get(key)
            if pending is not None:
                pending.attempts += 1
                if pending.attempts > 1:
                    self.stats.sends_rewritten += 1

        stream.write_paced(1.0, build, written)

    # ============================================================== subscriptions

    def _drained(self, sub: Subscription) -> None:
        """The application caught up with a paused room: leave and rejoin from its cursor
        (the server replays what was skipped from the log)."""
        stream = self._stream
        if self._rooms.get(sub.room_id) is not sub or sub.phase is not Phase.PAUSED:
            return
        if stream is None:
            sub.phase = Phase.DETACHED
            return
        log.info("room %s: consumer caught up; resuming from %s", sub.room_id, sub.cursor)
        self._write_leave(stream, sub)
        self._write_join(sub)

    def _item_ready(self) -> None:
        self._activity.set()

    def _end_room(self, sub: Subscription, error: BarrageError | None = None) -> None:
        if self._rooms.get(sub.room_id) is sub:
            del self._rooms[sub.room_id]
        sub.end(error)

    async def _await_join(self, sub: Subscription) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(sub.joined), self.options.join_timeout_s)
        except TimeoutError:
            error = JoinError(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"no answer to join {sub.room_id!r}", reason="JOIN_TIMEOUT"
            )
            if self._rooms.get(sub.room_id) is sub:
                if self._stream is not None and sub.phase is not Phase.DETACHED:
                    self._write_leave(self._stream, sub)  # In case the answer is merely late.
                self._end_room(sub, error)
            raise error from None
        except asyncio.CancelledError:
            if sub.joined.cancelled():
                raise ClientClosed() from None
            raise

    async def _await_ack(self, pending: _PendingSend, key: tuple[str, str], timeout_s: float | None) -> Ack:
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), timeout_s)
        except TimeoutError:
            raise SendError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"no ack within {timeout_s} s",
                reason="SEND_TIMEOUT",
                room_id=key[0],
                client_msg_id=key[1],
            ) from None

    # ================================================================== tokens

    def _refresh_soon(self, delay_s: float) -> None:
        """Fetch a new token from the provider after `delay_s` and send it on the stream."""
        if isinstance(self._token, str) or self._refreshing is not None:
            return
        self._refreshing = asyncio.get_running_loop().create_task(self._refresh(delay_s), name="barrage-token")

    async def _refresh(self, delay_s: float) -> None:
        try:
            await asyncio.sleep(delay_s)
            token = await self._token_value()
            if self._stream is not None:
                self._stream.write(rs.ConnectRequest(refresh_token=rs.RefreshToken(token=token)))
        except Exception as exc:
            log.warning("token refresh failed: %r", exc)  # The next reconnect asks again.
        finally:
            self._refreshing = None
