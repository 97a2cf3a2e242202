"""RoomService.Connect over grpc.aio: a thin pump between the stream and a Session.

Registered with identity (de)serializers: requests reach the session as bytes so a
frame that does not decode (bad protobuf, invalid UTF-8) is answered in-stream
instead of killing the stream, and responses leave as the bytes the outbox built
(encoded once per room, not per subscriber).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc

from server.auth import TokenVerifier
from server.core.errors import ApiError, Code
from server.core.gateway import Gateway
from server.core.session import Session
from server.transport.status import abort

log = logging.getLogger(__name__)

SERVICE = "barrage.v1.RoomService"
HANDSHAKE_TIMEOUT_S = 10.0


class RoomServiceHandler:
    def __init__(self, gateway: Gateway, verifier: TokenVerifier) -> None:
        self._gateway = gateway
        self._verifier = verifier
        self.sessions: set[Session] = set()
        self.accepting = True

    def generic_handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE, {"Connect": grpc.stream_stream_rpc_method_handler(self.connect)}
        )

    async def connect(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        if not self.accepting:
            await abort(context, ApiError(Code.UNAVAILABLE, "SHUTTING_DOWN", "node is shutting down; reconnect"))
        session = Session(self._gateway, self._verifier, context.peer())
        self.sessions.add(session)
        reader = asyncio.create_task(self._pump(requests, session), name=f"reader:{session.id}")
        try:
            while (data := await session.outbox.next_write()) is not None:
                yield data
            if session.fatal is not None:
                await abort(context, session.fatal)
        finally:
            # Runs on cancellation too (client gone); CancelledError is re-raised, never swallowed.
            reader.cancel()
            self.sessions.discard(session)
            session.close()

    async def _pump(self, requests: AsyncIterator[bytes], session: Session) -> None:
        try:
            iterator = aiter(requests)
            try:
                first = await asyncio.wait_for(anext(iterator), HANDSHAKE_TIMEOUT_S)
            except TimeoutError:
                session.end(ApiError(Code.DEADLINE_EXCEEDED, "HANDSHAKE_REQUIRED", "no hello within 10 s"))
                return
            await session.on_frame(first)
            async for raw in iterator:
                if session.outbox.closed:
                    return
                await session.on_frame(raw)
            # A half-close only means "no more requests": events keep flowing until
            # the client cancels the call.
        except StopAsyncIteration:
            pass
        except asyncio.CancelledError:
            raise
        except (grpc.aio.AioRpcError, grpc.aio.AbortError):
            # The call ended (client gone, or aborted by us): nothing more to read.
            session.outbox.close()
        except Exception:
            log.exception("stream %s failed", session.id)
            session.end(ApiError(Code.INTERNAL, "INTERNAL", "internal error"))
