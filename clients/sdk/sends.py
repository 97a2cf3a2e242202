"""Sends awaiting their SendResult.

A send stays here, keyed by (room, client_msg_id), until a SendResult settles it or
its caller stops waiting. It is written on the current stream and again, with the same
id, on every new one (the server appends an id at most once and answers a retry with
the first copy's cursor), and after refusals a retry can fix (policy.send_retry_delay).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from barrage.clients.sdk.errors import BarrageError, SendError
from barrage.clients.sdk.items import Ack, ClientStats
from barrage.clients.sdk.options import ClientOptions
from barrage.clients.sdk.policy import MAX_CLIENT_FRAME_BYTES, send_retry_delay
from barrage.clients.sdk.stream import Stream
from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs

log = logging.getLogger("barrage.sdk")

Key = tuple[str, str]
"""(room_id, client_msg_id)"""


@dataclass(slots=True)
class _Pending:
    request: rs.Send
    future: asyncio.Future[Ack]
    attempts: int = 0
    """Writes so far."""
    retry: asyncio.TimerHandle | None = None


class Sends:
    def __init__(
        self,
        options: ClientOptions,
        stats: ClientStats,
        *,
        stream: Callable[[], Stream | None],
        rejoining: Callable[[str], bool],
        token_expired: Callable[[], bool],
    ) -> None:
        """`stream`: the current stream, if any; `rejoining(room)`: the client is itself
        rejoining the room; `token_expired()`: fetch a new token, True if one is coming."""
        self._options = options
        self._stats = stats
        self._stream = stream
        self._rejoining = rejoining
        self._token_expired = token_expired
        self._pending: dict[Key, _Pending] = {}
        self._slots = asyncio.Semaphore(options.max_pending_sends)

    async def send(
        self,
        room_id: str,
        payload: event_pb2.Payload,
        *,
        client_msg_id: str | None,
        traceparent: str,
        tracestate: str,
        timeout_s: float | None,
    ) -> Ack:
        msg_id = client_msg_id or uuid.uuid4().hex
        key = (room_id, msg_id)
        existing = self._pending.get(key)
        if existing is not None:
            # The application retried a send that is still in flight: share its outcome.
            return await self._await_ack(existing, key, timeout_s)
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
        async with self._slots:
            pending = _Pending(request, asyncio.get_running_loop().create_future())
            self._pending[key] = pending
            try:
                self._write(key)
                return await self._await_ack(pending, key, timeout_s)
            finally:
                # Also when the caller gave up: an abandoned send is never written again.
                if self._pending.get(key) is pending:
                    del self._pending[key]
                if pending.retry is not None:
                    pending.retry.cancel()

    def attach(self) -> None:
        """A new stream: write every pending send again, in the order they were made."""
        for key, pending in self._pending.items():
            if pending.retry is not None:
                pending.retry.cancel()
                pending.retry = None
            self._write(key)

    def on_result(self, result: rs.SendResult) -> None:
        key = (result.room_id, result.client_msg_id)
        pending = self._pending.get(key)
        if pending is None or pending.future.done():
            return
        if result.status.code == 0:
            grabbed = result.grabbed if result.HasField("grabbed") else None
            replaced = result.replaced_text if result.replaced else None
            ack = Ack(
                result.room_id, result.client_msg_id, result.cursor, result.event_id, result.duplicate,
                result.claim_id, grabbed, replaced,
            )  # fmt: skip
            pending.future.set_result(ack)
            return
        error = SendError.from_status(result.status, room_id=result.room_id, client_msg_id=result.client_msg_id)
        delay = send_retry_delay(
            error,
            pending.attempts,
            max_attempts=self._options.max_send_attempts,
            retry_rate_limited=self._options.retry_rate_limited,
            rejoining=self._rejoining(result.room_id),
            token_refreshing=error.reason == "TOKEN_EXPIRED" and self._token_expired(),
        )
        if delay is None:
            pending.future.set_exception(error)
            return
        log.info("send %s to %s refused (%s); retrying in %.2f s", key[1], key[0], error.reason, delay)
        pending.retry = asyncio.get_running_loop().call_later(delay, self._retry, key)

    def fail_all(self, error: BarrageError) -> None:
        for (room_id, msg_id), pending in self._pending.items():
            if not pending.future.done():
                pending.future.set_exception(
                    SendError(error.code, error.message, reason=error.reason, room_id=room_id, client_msg_id=msg_id)
                )

    def _retry(self, key: Key) -> None:
        pending = self._pending.get(key)
        if pending is not None:
            pending.retry = None
            self._write(key)

    def _write(self, key: Key) -> None:
        stream = self._stream()
        if stream is None:
            return  # Written by attach() on the next stream.

        def build() -> rs.ConnectRequest | None:
            pending = self._pending.get(key)
            if pending is None or pending.future.done() or pending.retry is not None:
                return None
            return rs.ConnectRequest(send=pending.request)

        def written() -> None:
            pending = self._pending.get(key)
            if pending is not None:
                pending.attempts += 1
                if pending.attempts > 1:
                    self._stats.sends_rewritten += 1

        stream.write_paced(1.0, build, written)

    async def _await_ack(self, pending: _Pending, key: Key, timeout_s: float | None) -> Ack:
        wait = self._options.send_timeout_s if timeout_s is None else timeout_s
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), wait)
        except TimeoutError:
            raise SendError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"no ack within {wait} s",
                reason="SEND_TIMEOUT",
                room_id=key[0],
                client_msg_id=key[1],
            ) from None
