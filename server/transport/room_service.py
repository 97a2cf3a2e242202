"""RoomService.Connect over grpc.aio: a thin pump between the stream and a Session.

Registered with identity (de)serializers: requests reach the session as bytes so a
frame that does not decode (bad protobuf, invalid UTF-8) is answered in-stream
instead of killing the stream, and responses leave as the bytes the outbox built
(encoded once per room, not per subscriber).

The pump also enforces the bounds only the transport can see (docs/protocol.md,
"Limits"): streams per node and per user (server/core/streams.py), and a client that
keeps sending without reading. Such a client is read no further while its answers
pile up (HTTP/2 flow control then holds it back) and is aborted with RESOURCE_EXHAUSTED
STREAM_OVERLOADED from the reading task: the writing one is stuck in a write the
client will not take, and an abort from either task ends the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from barrage.server.auth import Identity, TokenVerifier
from barrage.server.core.errors import ApiError, Code
from barrage.server.core.gateway import Gateway
from barrage.server.core.session import Session
from barrage.server.core.streams import StreamLimits
from barrage.server.transport.status import abort

log = logging.getLogger(__name__)

SERVICE = "barrage.v1.RoomService"
HANDSHAKE_TIMEOUT_S = 10.0
REFUSAL_READ_S = 0.5
"""How long a stream refused at its start (node full, shutting down) waits for the client's
first message before the refusal is sent (see _refuse)."""


class RoomServiceHandler:
    def __init__(self, gateway: Gateway, verifier: TokenVerifier) -> None:
        self._gateway = gateway
        self._verifier = verifier
        settings = gateway.settings
        self.sessions: set[Session] = set()
        self.accepting = True
        self.limits = StreamLimits(settings.max_streams, settings.max_streams_per_user)
        self._backlog_bytes = settings.outbox_max_bytes
        self._stalled_s = settings.stalled_stream_s

    def generic_handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE, {"Connect": grpc.stream_stream_rpc_method_handler(self.connect)}
        )

    async def connect(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        if not self.accepting:
            await _refuse(
                requests, context, ApiError(Code.UNAVAILABLE, "SHUTTING_DOWN", "node is shutting down; reconnect")
            )
        try:
            self.limits.open_stream()
        except ApiError as err:
            await _refuse(requests, context, err)
        session = Session(self._gateway, self._verifier, context.peer())
        self.sessions.add(session)
        counted: list[Identity] = []
        writes = _Writes()
        reader = asyncio.create_task(
            self._pump(requests, session, context, counted, writes), name=f"reader:{session.id}"
        )
        try:
            while (data := await session.outbox.next_write()) is not None:
                writes.pending_since = time.monotonic()
                yield data  # returns once gRPC took the bytes: the client's window had room
                writes.pending_since = None
            if session.fatal is not None:
                with contextlib.suppress(grpc.aio.UsageError):  # the reader aborted it already
                    await abort(context, session.fatal)
        finally:
            # Runs on cancellation too (client gone); CancelledError is re-raised, never swallowed.
            reader.cancel()
            self.sessions.discard(session)
            session.close()
            self.limits.close_stream()
            for who in counted:
                self.limits.remove_user(who)

    async def _pump(
        self,
        requests: AsyncIterator[bytes],
        session: Session,
        context: grpc.aio.ServicerContext[bytes, bytes],
        counted: list[Identity],
        writes: _Writes,
    ) -> None:
        try:
            iterator = aiter(requests)
            try:
                first = await asyncio.wait_for(anext(iterator), HANDSHAKE_TIMEOUT_S)
            except TimeoutError:
                session.end(ApiError(Code.DEADLINE_EXCEEDED, "HANDSHAKE_REQUIRED", "no hello within 10 s"))
                return
            await session.on_frame(first)
            # No await since the hello was handled: the welcome is still queued, and an
            # abort here ends the stream without it.
            if session.identity is not None and self.limits.add_user(session.identity):
                counted.append(session.identity)
            async for raw in iterator:
                if session.outbox.closed:
                    break
                if self._stalled(writes) or (
                    session.outbox.size > self._backlog_bytes and not await self._drained(session)
                ):
                    # The client sends but does not read: stop holding answers for it.
                    session.fatal = session.fatal or _overloaded()
                    await abort(context, session.fatal)
                await session.on_frame(raw)
            # A half-close only means "no more requests": events keep flowing until
            # the client cancels the call.
            if session.fatal is not None and not await self._drained(session, empty=True):
                # Ended by the server, but the client does not read the rest: end it now.
                await abort(context, session.fatal)
        except StopAsyncIteration:
            pass
        except asyncio.CancelledError:
            raise
        except ApiError as err:  # the user's stream limit
            await self._abort_quietly(context, session, err)
        except (grpc.aio.AioRpcError, grpc.aio.AbortError):
            # The call ended (client gone, or aborted by us): nothing more to read.
            session.outbox.close()
        except Exception:
            log.exception("stream %s failed", session.id)
            session.end(ApiError(Code.INTERNAL, "INTERNAL", "internal error"))

    def _stalled(self, writes: _Writes) -> bool:
        """A write has waited stalled_stream_s for the client to read."""
        since = writes.pending_since
        return since is not None and time.monotonic() - since > self._stalled_s

    async def _drained(self, session: Session, *, empty: bool = False) -> bool:
        """Wait (up to stalled_stream_s) for the client to read its stream down to half
        the backlog bound, or to nothing. While waiting no more frames are read, so
        HTTP/2 flow control holds the client back instead of the node's memory."""
        target = 1 if empty else self._backlog_bytes // 2
        deadline = asyncio.get_running_loop().time() + self._stalled_s
        while session.outbox.size >= target:
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def _abort_quietly(
        self, context: grpc.aio.ServicerContext[bytes, bytes], session: Session, error: ApiError
    ) -> None:
        session.fatal = error
        session.outbox.close()
        with contextlib.suppress(grpc.aio.AbortError):
            await abort(context, error)


@dataclass(slots=True)
class _Writes:
    pending_since: float | None = None
    """time.monotonic() at which the write in progress started, if one is."""


def _overloaded() -> ApiError:
    return ApiError(
        Code.RESOURCE_EXHAUSTED,
        "STREAM_OVERLOADED",
        "the client did not read its stream while it kept sending; reconnect and read it",
    )


async def _refuse(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes], err: ApiError
) -> None:
    """End a stream at its start with `err`, after reading the client's first message (its
    Hello) for up to REFUSAL_READ_S: a grpc.aio client whose first write is still in flight
    when the status arrives reports INTERNAL "Failed execute_batch" instead of the status
    (grpc/grpc#36066), so a refusal sent at once was sometimes lost to such clients."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(anext(aiter(requests)), REFUSAL_READ_S)
    await abort(context, err)
