"""The Barrage client: one Connect stream, kept alive across failures.

The connection loop lives here; rooms (join, resume, delivery) are in rooms.py and
pending sends in sends.py. Everything runs on one event loop, so state changes between
awaits are atomic: a new stream is attached (hello, rejoins, resends written in that
order) before any other frame can be written to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import cast

import grpc

from barrage.clients.sdk.backoff import Backoff
from barrage.clients.sdk.errors import (
    RETRYABLE_STREAM_CODES,
    BarrageError,
    ClientClosed,
    ConnectionFailed,
)
from barrage.clients.sdk.items import Ack, ClientStats, ConnectionState, RoomItem
from barrage.clients.sdk.options import ClientOptions, open_channel
from barrage.clients.sdk.rooms import Rooms
from barrage.clients.sdk.sends import Sends
from barrage.clients.sdk.stream import Stream
from barrage.clients.sdk.subscription import Subscription
from barrage.clients.sdk.telemetry import ClientTelemetry
from barrage.v1 import event_pb2, room_service_pb2_grpc
from barrage.v1 import room_service_pb2 as rs

log = logging.getLogger("barrage.sdk")

TokenSource = str | Callable[[], Awaitable[str]]
"""A token, or an async function returning a fresh one (called before every connect)."""

_OK = 0
_REFRESH_MARGIN_S = 60.0
"""Refresh a provider's token this long before the stream's token expires."""


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
        self.telemetry = ClientTelemetry(self.options)
        self._rooms = Rooms(
            self,
            self.options,
            self.stats,
            stream=lambda: self._stream,
            max_history=lambda: self._welcome.limits.max_history_limit if self._welcome is not None else 0,
        )
        self._sends = Sends(
            self.options,
            self.stats,
            stream=lambda: self._stream,
            rejoining=self._rooms.rejoining,
            token_expired=self._token_expired,
        )

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
        return dict(self._rooms.active)

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
        return await self._rooms.join(room_id, history_limit, resume_cursor)

    async def leave(self, room_id: str) -> None:
        """Leave a room; its subscription ends with SubscriptionEnded(error=None)."""
        await self._rooms.leave(room_id)

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

    async def whisper(
        self,
        room_id: str,
        text: str,
        *,
        to_user_id: str = "",
        to_staff: bool = False,
        reply_to_event_id: str = "",
        client_msg_id: str | None = None,
        timeout_s: float | None = None,
    ) -> Ack:
        """Post a private message (a Whisper) and wait until it is durable; see send_payload.

        Exactly one of `to_user_id` (staff, services and bots: one user) and `to_staff`
        (anyone: the room's owner, moderators and services). Only its audience ever
        receives it (docs/commerce.md, "Whispers"); a viewer naming a user is refused
        with SendError reason WHISPER_FORBIDDEN. Received whispers are Events whose
        payload is `whisper` (see is_whisper)."""
        if bool(to_user_id) == to_staff:
            raise ValueError("a whisper goes to one user (to_user_id) or to the staff (to_staff), not both")
        whisper = event_pb2.Whisper(
            text=text, recipient_user_id=to_user_id, to_staff=to_staff, reply_to_event_id=reply_to_event_id
        )
        return await self.send_payload(
            room_id, event_pb2.Payload(whisper=whisper), client_msg_id=client_msg_id, timeout_s=timeout_s
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
        traced = None if traceparent else self.telemetry.send_started(room_id, payload)
        if traced is not None:
            traceparent, tracestate = traced[1], traced[2]
        try:
            ack = await self._sends.send(
                room_id,
                payload,
                client_msg_id=client_msg_id,
                traceparent=traceparent,
                tracestate=tracestate,
                timeout_s=timeout_s,
            )
        except BaseException as error:
            if traced is not None:
                self.telemetry.send_failed(traced[0], error)
            raise
        if traced is not None:
            self.telemetry.send_done(traced[0], ack)
        return ack

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
            subscriptions = self._rooms.subscriptions
            for sub in tuple(subscriptions):
                item = sub.take_nowait()
                if item is not None:
                    progressed = True
                    yield item
                elif sub.exhausted and self._fatal is None and sub in subscriptions:
                    subscriptions.remove(sub)
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
        self._rooms.end_all()
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
            # A client is one user: after the first Welcome, the server must see the same
            # user on every reconnect (a mixed-up token ends it with IDENTITY_MISMATCH).
            user_id = self._welcome.user.user_id if self._welcome is not None else ""
            hello = rs.Hello(token=token, user_id=user_id, client_agent=self.options.client_agent)
            stream.write(rs.ConnectRequest(hello=hello))
            self._attach(stream)
            await self._read(stream)
        except grpc.aio.AioRpcError as exc:
            error = BarrageError.from_rpc_error(exc)
            self._last_error = error
            if self._closing:
                return 0.0
            # A token that expired under a live stream (a refresh came too late) is renewed
            # by reconnecting: the provider is asked before every connect. A fixed token is final.
            provider = not isinstance(self._token, str)
            renewable = error.reason == "TOKEN_EXPIRED" and stream.welcome is not None and provider
            if exc.code() not in RETRYABLE_STREAM_CODES and not renewable:
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
        self._rooms.attach()
        self._sends.attach()

    def _detach(self, stream: Stream) -> None:
        if self._stream is stream:
            self._stream = None
        if self._refreshing is not None:
            self._refreshing.cancel()  # Each stream's Welcome schedules its own.
            self._refreshing = None
        self._connected.clear()
        lost = BarrageError(grpc.StatusCode.UNAVAILABLE, "connection lost", reason="CONNECTION_LOST")
        for future in self._pings.values():
            if not future.done():
                future.set_exception(lost)
        self._rooms.detach()

    def _fail(self, error: BarrageError) -> None:
        log.info("barrage client stopped: %s", error)
        self._fatal = error
        self._closing = True
        self._settle_all(error)
        self._rooms.fail_all(error)
        self._set_state(ConnectionState.CLOSED)
        self._connected.set()  # Wake connect() waiters: they raise the fatal error.
        self._activity.set()

    def _settle_all(self, error: BarrageError) -> None:
        self._sends.fail_all(error)
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
            self._rooms.on_events(message.event_batch)
        elif kind == "send_result":
            self._sends.on_result(message.send_result)
        elif kind == "join_result":
            self._rooms.on_join_result(stream, message.join_result)
        elif kind == "leave_result":
            self._rooms.on_leave_result(stream, message.leave_result)
        elif kind == "welcome":
            self._on_welcome(stream, message.welcome)
        elif kind == "pong":
            future = self._pings.get(message.pong.nonce)
            if future is not None and not future.done():
                future.set_result(None)
        elif kind == "resume_required":
            self._rooms.on_resume_required(message.resume_required)
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

    # ============================================================ subscriptions

    def _drained(self, sub: Subscription) -> None:
        self._rooms.drained(sub)

    def _item_ready(self) -> None:
        self._activity.set()

    # ================================================================== tokens

    def _token_expired(self) -> bool:
        """A send was refused TOKEN_EXPIRED: with a provider, get a new token now."""
        if isinstance(self._token, str):
            return False
        self._refresh_soon(0.0)
        return True

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
            if self._refreshing is asyncio.current_task():
                self._refreshing = None
