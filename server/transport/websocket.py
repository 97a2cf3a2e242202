"""RoomService.Connect over WebSocket: a thin pump between a WebSocket and a Session.

The twin of server/transport/room_service.py for browsers. Each binary message the
client sends is one ConnectRequest, handed to the Session as bytes (so an undecodable
one is answered in-stream, as on gRPC); each binary message the server sends is one
ConnectResponse exactly as the outbox built it (encoded once per room, the same bytes
for every subscriber: no per-viewer protobuf work here either).

Where gRPC ends a stream with a status, this ends the WebSocket with a close frame:
code 4000 + the gRPC status code, reason "<ErrorReason>: <message>" cut to the 123
bytes a close frame allows (docs/web.md lists them).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Protocol

from aiohttp import WSCloseCode, WSMsgType, web

from barrage.server.auth import TokenVerifier
from barrage.server.core.errors import ApiError, Code
from barrage.server.core.gateway import Gateway
from barrage.server.core.outbox import Frame, Outbox
from barrage.server.core.session import Session

log = logging.getLogger(__name__)

SUBPROTOCOL = "barrage.v1"
"""Offered by clients in Sec-WebSocket-Protocol; the server selects it when offered."""
CLOSE_CODE_BASE = 4000
"""A stream that ends with a gRPC status closes with code CLOSE_CODE_BASE + that code."""
MAX_CLOSE_REASON_BYTES = 123
HANDSHAKE_TIMEOUT_S = 10.0
HEARTBEAT_S = 30.0
"""Ping an idle client this often; one that does not pong within half of it is cut."""
CLOSE_TIMEOUT_S = 2.0
"""How long a close waits for the client's close frame (or a stuck write) before cutting."""


SEND_BUFFER_BYTES = 128 * 1024
"""The kernel send buffer of a WebSocket (Linux doubles it). Without it the kernel grows a
stalled viewer's buffer to tcp_wmem's maximum (4 MiB here) before the outbox notices:
kernel memory per frozen phone, and critical events waiting behind megabytes. gRPC has
its HTTP/2 flow-control window for this; a WebSocket has only TCP. 256 KiB in flight is
still 2 MB/s at 100 ms round trip, far above one viewer's stream."""
DIRECT_WRITE_BELOW = 64 * 1024
"""Write a room frame at once while the socket's send buffer holds less than this."""


def _binary_header(length: int) -> bytes:
    """An unmasked, final, binary frame's header (RFC 6455 5.2): servers never mask."""
    if length < 126:
        return bytes((0x82, length))
    if length < 65536:
        return b"\x82\x7e" + length.to_bytes(2, "big")
    return b"\x82\x7f" + length.to_bytes(8, "big")


class DirectOutbox(Outbox):
    """An outbox that writes a room frame straight to the socket when it can.

    The hub hands each subscriber the same frame bytes once per tick. On gRPC the frame
    waits in the outbox for the stream's writer task; here, while nothing is queued and
    the socket keeps up, the hub's own call writes it (a 2–10 byte header, then the
    shared bytes): no task wake-up, no coroutine, no copy per subscriber. Anything else
    — a queue already there (order), a socket that is behind (the outbox's shedding and
    lag policy apply), control messages, omitted counts — takes the queued path and the
    writer task, exactly as on gRPC. Each frame is a complete ConnectResponse (one
    `messages` element), so a frame written alone is a valid message.
    """

    __slots__ = ("_transport",)

    def __init__(self, max_bytes: int, max_write_bytes: int, transport: asyncio.WriteTransport) -> None:
        super().__init__(max_bytes, max_write_bytes)
        self._transport = transport

    def put_frame(self, frame: Frame) -> bool:
        transport = self._transport
        if (
            self._items
            or self._omitted
            or self._closed
            or transport.is_closing()
            or transport.get_write_buffer_size() >= DIRECT_WRITE_BELOW
        ):
            return super().put_frame(frame)
        data = frame.data
        # One writev of header and shared bytes (uvloop): no copy of the frame, one syscall.
        transport.writelines((_binary_header(len(data)), data))
        self.delivered[frame.room_id] = frame.last_cursor
        if frame.stamp is not None:
            frame.stamp.written(self._size)
        return True


class Sessions(Protocol):
    """Where live sessions are kept, so shutdown reaches WebSocket ones too (app.Node)."""

    sessions: set[Session]
    accepting: bool


def close_code(error: ApiError) -> int:
    return CLOSE_CODE_BASE + int(error.code)


def close_reason(error: ApiError) -> bytes:
    """'<ErrorReason>: <message>' within a close frame's 123 bytes, cut on a character."""
    text = f"{error.reason}: {error.message}".encode()
    if len(text) <= MAX_CLOSE_REASON_BYTES:
        return text
    return text[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore").encode()


class WebSocketRooms:
    def __init__(self, gateway: Gateway, verifier: TokenVerifier, registry: Sessions, max_frame_bytes: int) -> None:
        self._gateway = gateway
        self._verifier = verifier
        self._registry = registry
        self._max_frame_bytes = max_frame_bytes

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """GET /ws upgraded to a WebSocket (the origin was checked by the caller)."""
        if not self._registry.accepting:
            raise web.HTTPServiceUnavailable(text="node is shutting down; reconnect\n")
        ws = web.WebSocketResponse(
            protocols=(SUBPROTOCOL,),
            # Frames are encoded once for every subscriber: compressing per connection
            # would cost CPU per delivery (and a compression context of memory each).
            compress=False,
            max_msg_size=self._max_frame_bytes,
            heartbeat=HEARTBEAT_S,
            timeout=CLOSE_TIMEOUT_S,
        )
        if not ws.can_prepare(request).ok:
            raise web.HTTPBadRequest(text="expected a WebSocket upgrade\n")
        await ws.prepare(request)
        session = Session(self._gateway, self._verifier, f"ws:{request.remote}")
        if request.transport is not None:
            sock = request.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            # Before any frame is handled: room memberships take the session's outbox.
            settings = self._gateway.settings
            session.outbox = DirectOutbox(settings.outbox_max_bytes, settings.max_frame_bytes, request.transport)
        self._registry.sessions.add(session)
        reader = asyncio.create_task(self._pump(ws, session), name=f"ws-reader:{session.id}")
        try:
            await self._write(ws, session)
        finally:
            reader.cancel()
            self._registry.sessions.discard(session)
            session.close()
        return ws

    async def _write(self, ws: web.WebSocketResponse, session: Session) -> None:
        outbox = session.outbox
        try:
            while (data := await outbox.next_write()) is not None:
                if ws.closed:
                    return
                await ws.send_bytes(data)
        except ConnectionError:
            return  # the client is gone: nothing more to say
        if ws.closed:
            return
        if session.fatal is not None:
            await ws.close(code=close_code(session.fatal), message=close_reason(session.fatal))
        else:
            await ws.close()

    async def _pump(self, ws: web.WebSocketResponse, session: Session) -> None:
        try:
            try:
                first = await ws.receive(timeout=HANDSHAKE_TIMEOUT_S)
            except TimeoutError:
                session.end(ApiError(Code.DEADLINE_EXCEEDED, "HANDSHAKE_REQUIRED", "no hello within 10 s"))
                return
            message = first
            while True:
                if message.type is WSMsgType.BINARY:
                    await session.on_frame(message.data)
                elif message.type is WSMsgType.TEXT:
                    session.end(
                        ApiError(
                            Code.INVALID_ARGUMENT,
                            "MALFORMED_FRAME",
                            "text messages are not accepted: send each ConnectRequest as one binary message",
                        )
                    )
                    return
                else:
                    # CLOSE/CLOSING/CLOSED, or ERROR (a message over the size limit was
                    # already answered by the library with close code 1009).
                    if message.type is WSMsgType.ERROR:
                        log.info("websocket of stream %s failed: %s", session.id, message.data)
                    session.outbox.close()
                    return
                if session.outbox.closed:
                    return
                message = await ws.receive()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("websocket stream %s failed", session.id)
            session.end(ApiError(Code.INTERNAL, "INTERNAL", "internal error"))


__all__ = ["CLOSE_CODE_BASE", "SUBPROTOCOL", "Sessions", "WSCloseCode", "WebSocketRooms", "close_code", "close_reason"]
