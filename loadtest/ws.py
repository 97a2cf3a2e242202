"""A cheap WebSocket client for the load generator (docs/web.md): one h2.Stream over one
WebSocket, so every viewer kind's reader (drain, sample) runs unchanged on it.

It does what a browser does on the wire and nothing more: the RFC 6455 upgrade with the
`barrage.v1` subprotocol, masked binary messages out (one ConnectRequest each), server
messages in (one ConnectResponse each, never fragmented by this server), pings answered.
"""

from __future__ import annotations

import asyncio
import base64
import os
from typing import cast

from barrage.loadtest import h2

_BINARY, _CLOSE, _PING, _PONG = 0x2, 0x8, 0x9, 0xA


def frame(payload: bytes, opcode: int = _BINARY) -> bytes:
    """A masked client frame (clients must mask, RFC 6455 5.3)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return header + mask + (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


class WsLink(asyncio.Protocol):
    """Stands in for h2.Connection under exactly one stream."""

    def __init__(self, host: str, port: int, stream: h2.Stream) -> None:
        self.host = host
        self.port = port
        self.stream = stream
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buf = bytearray()
        self._upgraded = False

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            (
                f"GET /ws HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Protocol: barrage.v1\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                status = bytes(buf[: buf.find(b"\r\n")]).decode(errors="replace")
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(f"upgrade refused: {status}"))
                self.close()
                return
            del buf[: end + 4]
            self._upgraded = True
            if not self.ready.done():
                self.ready.set_result(None)
            self.flush_stream(self.stream)
        self.stream.bytes_received += len(data)
        pos, n = 0, len(buf)
        while n - pos >= 2:
            opcode = buf[pos] & 0x0F
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if n - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            if opcode == _BINARY:
                self.stream.on_message(payload)
            elif opcode == _PING:
                self._write(frame(payload, _PONG))
            elif opcode == _CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.stream._finish(f"closed {code} {payload[2:].decode(errors='replace')}")
                self.close()
                break
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(str(exc) if exc else "connection closed"))
        self.stream._finish(f"connection lost: {exc}" if exc else "connection closed")

    # -- what h2.Stream calls on its connection
    def flush_stream(self, stream: h2.Stream) -> None:
        if not self._upgraded:
            return  # sent once the upgrade is answered
        pending = stream._pending
        while pending:
            self._write(frame(pending.popleft()[5:]))  # drop gRPC's 5-byte message prefix

    def update_reading(self) -> None:
        if self.transport is None or self.closed:
            return
        if self.stream.paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def grant(self, stream: h2.Stream, force: bool = False) -> None:
        """No flow-control window on WebSocket: TCP's is the only one."""

    def reset(self, stream: h2.Stream) -> None:
        self.close()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)


async def connect(host: str, port: int, stream: h2.Stream, timeout_s: float = 30.0) -> WsLink:
    """Open a WebSocket for `stream` (h2.Stream.send works at once: it is queued until upgraded)."""
    loop = asyncio.get_running_loop()
    _, link = await asyncio.wait_for(loop.create_connection(lambda: WsLink(host, port, stream), host, port), timeout_s)
    stream.conn = link  # type: ignore[assignment]
    await asyncio.wait_for(link.ready, timeout_s)
    return link
