"""A minimal HTTP/2 client for gRPC bidirectional streams, cheap enough to hold thousands.

A grpc.aio client costs 40-60 µs of CPU per message it receives; on a 2-core machine that
makes the load generator, not the server, the bottleneck. This client speaks the same
wire protocol (HTTP/2 frames carrying length-prefixed gRPC messages; the server cannot
tell it from any other client) in an asyncio.Protocol, with only what a long-lived
stream needs: request HEADERS (HPACK literals, no dynamic table), DATA both ways with
flow control, SETTINGS, PING acks, WINDOW_UPDATE, RST_STREAM and GOAWAY. It never decodes
response headers or trailers (HPACK with Huffman and a dynamic table): a stream end is
reported without its grpc-status; a test that needs the status keeps the header blocks
(`Connection.header_blocks`) and decodes them with an HPACK library. Loopback benchmarking only; not a general client.

Flow control, the one part that changes what the server sees: a stream's receive window
is `window` bytes (SETTINGS_INITIAL_WINDOW_SIZE) and is topped up when half is consumed,
unless the stream is paused. A paused stream also stops the socket being read, like a
phone whose app froze: the server's writes back up after at most the window.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from collections.abc import Callable
from typing import cast

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
DEFAULT_WINDOW = 65_535
_U32 = struct.Struct(">I")
_SETTING = struct.Struct(">HI")


def frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + _U32.pack(stream_id) + payload


def _hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _hpack_literal(name: str, value: str) -> bytes:
    """Literal header field without indexing, new name, no Huffman (RFC 7541 6.2.2)."""
    n, v = name.encode(), value.encode()
    return b"\x00" + _hpack_int(len(n), 7) + n + _hpack_int(len(v), 7) + v


def request_headers(authority: str, path: str, agent: str) -> bytes:
    fields = (
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("user-agent", agent),
    )
    return b"".join(_hpack_literal(k, v) for k, v in fields)


def grpc_message(data: bytes) -> bytes:
    """A gRPC length-prefixed message (uncompressed)."""
    return b"\x00" + _U32.pack(len(data)) + data


def _header_fragment(kind: int, flags: int, payload: bytes) -> bytes:
    """The HPACK bytes of a HEADERS or CONTINUATION frame (RFC 9113 6.2): without padding
    and priority fields."""
    if kind == HEADERS:
        if flags & PADDED:
            payload = payload[1 : len(payload) - payload[0]]
        if flags & PRIORITY_FLAG:
            payload = payload[5:]
    return payload


class Stream:
    """One gRPC call. Subclass and override on_message / on_end."""

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.id = 0
        self.ended = False
        self.end_reason = ""
        self.paused = False
        self._partial = bytearray()
        self._send_window = DEFAULT_WINDOW
        self._pending: deque[bytes] = deque()
        self._consumed = 0
        self.bytes_received = 0

    # -- to override
    def on_message(self, data: bytes) -> None:
        """One complete response message (the serialized ConnectResponse)."""

    def on_end(self, reason: str) -> None:
        """The stream ended (trailers, reset, or connection lost)."""

    # -- API
    def send(self, *messages: bytes) -> None:
        """Queue request messages; written at once unless flow control holds them."""
        conn = self.conn
        if conn is None or self.ended or conn.closed:
            return
        for m in messages:
            self._pending.append(grpc_message(m))
        conn.flush_stream(self)

    def pause(self) -> None:
        """Stop reading (and stop granting window): the server's writes back up."""
        self.paused = True
        if self.conn is not None:
            self.conn.update_reading()

    def resume(self) -> None:
        self.paused = False
        if self.conn is not None:
            self.conn.update_reading()
            self.conn.grant(self, force=True)

    def cancel(self) -> None:
        if self.conn is not None and not self.ended:
            self.conn.reset(self)

    # -- internal
    def _data(self, payload: bytes) -> None:
        partial = self._partial
        if partial:
            partial += payload
            data: bytes | bytearray = partial
        else:
            data = payload
        pos = 0
        n = len(data)
        on_message = self.on_message
        while n - pos >= 5:
            end = pos + 5 + int.from_bytes(data[pos + 1 : pos + 5], "big")
            if end > n:
                break
            on_message(bytes(data[pos + 5 : end]))
            pos = end
        if pos < n:
            self._partial = bytearray(data[pos:])
        elif partial:
            self._partial = bytearray()

    def _finish(self, reason: str) -> None:
        if not self.ended:
            self.ended = True
            self.end_reason = reason
            self.on_end(reason)


class Connection(asyncio.Protocol):
    """One TCP connection carrying one or more streams."""

    def __init__(self, authority: str, window: int, agent: str = "barrage-loadtest") -> None:
        self.authority = authority
        self.window = window
        self.agent = agent
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, Stream] = {}
        self.closed = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buf = b""
        self._next_id = 1
        self._send_window = DEFAULT_WINDOW
        self._peer_initial_window = DEFAULT_WINDOW
        self._max_frame = 16_384
        self._conn_consumed = 0
        self._conn_window = DEFAULT_WINDOW
        self._reading = True
        self.on_lost: Callable[[Connection], None] | None = None
        self.header_blocks: list[tuple[int, bytes]] | None = None
        """Set to a list to keep every header block fragment received, in order (stream id,
        HPACK bytes), for a caller that decodes statuses (tests); None keeps nothing."""

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        settings = _SETTING.pack(SETTINGS_ENABLE_PUSH, 0) + _SETTING.pack(SETTINGS_INITIAL_WINDOW_SIZE, self.window)
        conn_window = max(self.window * 4, DEFAULT_WINDOW)
        preface = PREFACE + frame(SETTINGS, 0, 0, settings)
        if conn_window > DEFAULT_WINDOW:  # an increment of 0 is a protocol error (RFC 9113 6.9)
            preface += frame(WINDOW_UPDATE, 0, 0, _U32.pack(conn_window - DEFAULT_WINDOW))
        self.transport.write(preface)
        self._conn_window = conn_window

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost: {exc}"))
        for stream in tuple(self.streams.values()):
            stream._finish(f"connection lost: {exc}" if exc else "connection closed")
        self.streams.clear()
        if self.on_lost is not None:
            self.on_lost(self)

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        pos = 0
        n = len(buf)
        streams = self.streams
        while n - pos >= 9:
            length = int.from_bytes(buf[pos : pos + 3], "big")
            end = pos + 9 + length
            if end > n:
                break
            kind = buf[pos + 3]
            flags = buf[pos + 4]
            sid = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            if kind == DATA:
                stream = streams.get(sid)
                payload = buf[pos + 9 : end]
                if flags & PADDED:
                    payload = payload[1 : len(payload) - payload[0]]
                self._conn_consumed += length
                if stream is not None:
                    stream.bytes_received += length
                    stream._consumed += length
                    if payload:
                        stream._data(payload)
                    if flags & END_STREAM:
                        self._close_stream(stream, "end of stream")
                    elif stream._consumed >= self.window // 2 and not stream.paused:
                        self.grant(stream)
                if self._conn_consumed >= self._conn_window // 2 and self._reading:
                    self._write(frame(WINDOW_UPDATE, 0, 0, _U32.pack(self._conn_consumed)))
                    self._conn_consumed = 0
            elif kind in (HEADERS, CONTINUATION):
                if self.header_blocks is not None:
                    self.header_blocks.append((sid, _header_fragment(kind, flags, buf[pos + 9 : end])))
                if kind == HEADERS and flags & END_STREAM:
                    stream = streams.get(sid)
                    if stream is not None:
                        self._close_stream(stream, "trailers")
            elif kind == SETTINGS:
                if not flags & ACK:
                    self._settings(buf[pos + 9 : end])
                    self._write(frame(SETTINGS, ACK, 0, b""))
                    if not self.ready.done():
                        self.ready.set_result(None)
            elif kind == PING:
                if not flags & ACK:
                    self._write(frame(PING, ACK, 0, buf[pos + 9 : end]))
            elif kind == WINDOW_UPDATE:
                increment = _U32.unpack(buf[pos + 9 : pos + 13])[0] & 0x7FFFFFFF
                if sid == 0:
                    self._send_window += increment
                    for stream in tuple(streams.values()):
                        if stream._pending:
                            self.flush_stream(stream)
                else:
                    stream = streams.get(sid)
                    if stream is not None:
                        stream._send_window += increment
                        self.flush_stream(stream)
            elif kind == RST_STREAM:
                stream = streams.get(sid)
                if stream is not None:
                    code = _U32.unpack(buf[pos + 9 : pos + 13])[0]
                    self._close_stream(stream, f"reset by server (http2 error {code})")
            elif kind == GOAWAY:
                last = _U32.unpack(buf[pos + 9 : pos + 13])[0] & 0x7FFFFFFF
                for stream_id, stream in tuple(streams.items()):
                    if stream_id > last:
                        self._close_stream(stream, "goaway")
            pos = end
        self._buf = buf[pos:] if pos < n else b""

    # -- helpers
    def _settings(self, payload: bytes) -> None:
        for i in range(0, len(payload) - 5, 6):
            key, value = _SETTING.unpack(payload[i : i + 6])
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                delta = value - self._peer_initial_window
                self._peer_initial_window = value
                for stream in self.streams.values():
                    stream._send_window += delta
            elif key == SETTINGS_MAX_FRAME_SIZE:
                self._max_frame = value

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def _close_stream(self, stream: Stream, reason: str) -> None:
        self.streams.pop(stream.id, None)
        stream._finish(reason)

    def update_reading(self) -> None:
        """Read the socket unless every stream on it is paused."""
        want = not self.streams or not all(s.paused for s in self.streams.values())
        if self.transport is None or want == self._reading or self.closed:
            return
        self._reading = want
        if want:
            self.transport.resume_reading()
        else:
            self.transport.pause_reading()

    def grant(self, stream: Stream, force: bool = False) -> None:
        if stream._consumed and (force or not stream.paused) and not stream.ended:
            self._write(frame(WINDOW_UPDATE, 0, stream.id, _U32.pack(stream._consumed)))
            stream._consumed = 0

    def open_stream(self, stream: Stream, path: str) -> None:
        stream.conn = self
        stream.id = self._next_id
        self._next_id += 2
        stream._send_window = self._peer_initial_window
        self.streams[stream.id] = stream
        self._write(frame(HEADERS, END_HEADERS, stream.id, request_headers(self.authority, path, self.agent)))

    def flush_stream(self, stream: Stream) -> None:
        pending = stream._pending
        out: list[bytes] = []
        while pending:
            data = pending[0]
            size = len(data)
            allowed = min(self._send_window, stream._send_window, self._max_frame)
            if allowed <= 0:
                break
            if size > allowed:
                chunk, pending[0] = data[:allowed], data[allowed:]
                size = allowed
            else:
                chunk = pending.popleft()
            self._send_window -= size
            stream._send_window -= size
            out.append(frame(DATA, 0, stream.id, chunk))
        if out:
            self._write(b"".join(out))

    def reset(self, stream: Stream) -> None:
        self._write(frame(RST_STREAM, 0, stream.id, _U32.pack(0x8)))  # CANCEL
        self._close_stream(stream, "cancelled by client")

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()


async def connect(host: str, port: int, window: int, timeout_s: float = 30.0) -> Connection:
    loop = asyncio.get_running_loop()
    _, conn = await asyncio.wait_for(
        loop.create_connection(lambda: Connection(f"{host}:{port}", window), host, port), timeout_s
    )
    await asyncio.wait_for(conn.ready, timeout_s)
    return conn
