"""A raw WebSocket protocol client for server tests: ConnectRequest bytes in, ServerMessages
out, over the `websockets` library (a different implementation from the server's aiohttp,
so the two check each other against RFC 6455)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs

SUBPROTOCOL = "barrage.v1"


class WsStream:
    def __init__(self, connection: ClientConnection) -> None:
        self.ws = connection
        self.received: list[rs.ServerMessage] = []
        self.responses = 0
        self._taken: set[int] = set()
        self._changed = asyncio.Condition()
        self.close_code: int | None = None
        self.close_reason = ""
        self.done = False
        self._reading = asyncio.Event()
        self._reading.set()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls, url: str, origin: str | None = None, max_size: int | None = 2**24, small_buffers: bool = False
    ) -> WsStream:
        """small_buffers: a 4 KiB socket receive buffer and a one-message queue, so a paused
        client backs up into the server at once, as a phone whose app stopped reading."""
        sock = None
        if small_buffers:
            host, _, port = url.split("//", 1)[1].split("/", 1)[0].rpartition(":")
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((host, int(port)))
        connection = await connect(
            url,
            sock=sock,
            max_queue=1 if small_buffers else 16,
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            origin=origin,  # type: ignore[arg-type]
            max_size=max_size,
            compression=None,
            open_timeout=10,
            ping_interval=None,
        )
        return cls(connection)

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                await self._reading.wait()
                assert isinstance(data, bytes), f"server sent a text message: {data!r}"
                response = rs.ConnectResponse.FromString(data)
                self.responses += 1
                async with self._changed:
                    self.received.extend(response.messages)
                    self._changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            if self.ws.close_code is not None:
                self.close_code = self.ws.close_code
                self.close_reason = self.ws.close_reason or ""
            self.done = True
            async with self._changed:
                self._changed.notify_all()

    def pause(self) -> None:
        self._reading.clear()

    def resume(self) -> None:
        self._reading.set()

    async def send(self, request: rs.ConnectRequest | bytes | str) -> None:
        data = request.SerializeToString() if isinstance(request, rs.ConnectRequest) else request
        await self.ws.send(data)

    async def expect(self, kind: str, match: Callable[[Any], bool] = lambda _: True, timeout: float = 10.0) -> Any:
        def find() -> Any:
            for i, message in enumerate(self.received):
                if i not in self._taken and message.WhichOneof("kind") == kind and match(getattr(message, kind)):
                    self._taken.add(i)
                    return getattr(message, kind)
            return None

        async with asyncio.timeout(timeout), self._changed:
            while (found := find()) is None:
                if self.done:
                    raise AssertionError(f"closed ({self.close_code} {self.close_reason!r}) without a {kind}")
                await self._changed.wait()
            return found

    async def hello(self, token: str) -> rs.Welcome:
        await self.send(rs.ConnectRequest(hello=rs.Hello(token=token, client_agent="tests-ws")))
        welcome: rs.Welcome = await self.expect("welcome")
        return welcome

    async def join(self, room_id: str, resume_cursor: str = "", history_limit: int = 0) -> rs.JoinResult:
        join = rs.JoinRoom(room_id=room_id, resume_cursor=resume_cursor, history_limit=history_limit)
        await self.send(rs.ConnectRequest(join_room=join))
        result: rs.JoinResult = await self.expect("join_result", lambda r: r.room_id == room_id)
        return result

    async def send_comment(self, room_id: str, client_msg_id: str, text: str) -> rs.SendResult:
        payload = event_pb2.Payload(comment=event_pb2.Comment(text=text))
        await self.send(rs.ConnectRequest(send=rs.Send(room_id=room_id, client_msg_id=client_msg_id, payload=payload)))
        result: rs.SendResult = await self.expect("send_result", lambda r: r.client_msg_id == client_msg_id)
        return result

    def events(self, room_id: str, kind: str | None = None) -> list[event_pb2.Event]:
        return [
            event
            for message in self.received
            if message.WhichOneof("kind") == "event_batch" and message.event_batch.room_id == room_id
            for event in message.event_batch.events
            if kind is None or event.payload.WhichOneof("kind") == kind
        ]

    def omitted(self, room_id: str) -> int:
        return sum(
            m.event_batch.omitted_count
            for m in self.received
            if m.WhichOneof("kind") == "event_batch" and m.event_batch.room_id == room_id
        )

    async def wait_events(
        self, room_id: str, count: int, timeout: float = 10.0, kind: str | None = None
    ) -> list[event_pb2.Event]:
        async with asyncio.timeout(timeout), self._changed:
            while len(events := self.events(room_id, kind)) < count:
                if self.done:
                    raise AssertionError(f"closed ({self.close_code}) after {len(events)} of {count} events")
                await self._changed.wait()
        return events

    async def wait_close(self, timeout: float = 10.0) -> tuple[int | None, str]:
        async with asyncio.timeout(timeout), self._changed:
            while not self.done:
                await self._changed.wait()
        return self.close_code, self.close_reason

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader
