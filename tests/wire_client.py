"""A raw protocol client for server tests: frames in, ServerMessages out, no SDK magic."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs

Request = rs.ConnectRequest | bytes


def error_info(status: status_pb2.Status) -> error_details_pb2.ErrorInfo:
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    raise AssertionError(f"no ErrorInfo in {status}")


def retry_delay_s(status: status_pb2.Status) -> float | None:
    for detail in status.details:
        retry = error_details_pb2.RetryInfo()
        if detail.Unpack(retry):
            return float(retry.retry_delay.ToNanoseconds()) / 1e9
    return None


class RawStream:
    def __init__(self, target: str, options: tuple[tuple[str, int], ...] = ()) -> None:
        self.channel = grpc.aio.insecure_channel(target, options=options)
        connect = self.channel.stream_stream(
            "/barrage.v1.RoomService/Connect",
            request_serializer=lambda r: r if isinstance(r, bytes) else r.SerializeToString(),
            response_deserializer=rs.ConnectResponse.FromString,
        )
        self._outgoing: asyncio.Queue[Request | None] = asyncio.Queue()
        self.call: Any = connect(self._requests())
        self.received: list[rs.ServerMessage] = []
        self.responses = 0
        self._taken: set[int] = set()
        self._changed = asyncio.Condition()
        self.ended: grpc.aio.AioRpcError | None = None
        self.done = False
        self._reading = asyncio.Event()
        self._reading.set()
        self._reader = asyncio.create_task(self._read())

    async def _requests(self) -> AsyncIterator[Request]:
        while (item := await self._outgoing.get()) is not None:
            yield item

    async def _read(self) -> None:
        try:
            async for response in self.call:
                await self._reading.wait()
                self.responses += 1
                async with self._changed:
                    self.received.extend(response.messages)
                    self._changed.notify_all()
        except grpc.aio.AioRpcError as exc:
            self.ended = exc
        finally:
            self.done = True
            async with self._changed:
                self._changed.notify_all()

    def pause(self) -> None:
        """Stop reading: the server's writes back up as they would for a frozen phone."""
        self._reading.clear()

    def resume(self) -> None:
        self._reading.set()

    async def send(self, request: Request) -> None:
        await self._outgoing.put(request)

    async def half_close(self) -> None:
        await self._outgoing.put(None)

    async def expect(self, kind: str, match: Callable[[Any], bool] = lambda _: True, timeout: float = 10.0) -> Any:
        """The next not-yet-taken message of this kind that matches; returns its field."""

        def find() -> Any:
            for i, message in enumerate(self.received):
                if i not in self._taken and message.WhichOneof("kind") == kind and match(getattr(message, kind)):
                    self._taken.add(i)
                    return getattr(message, kind)
            return None

        async with asyncio.timeout(timeout), self._changed:
            while (found := find()) is None:
                if self.done:
                    raise AssertionError(f"stream ended ({self.ended}) without a {kind}")
                await self._changed.wait()
            return found

    async def send_result(self, client_msg_id: str, timeout: float = 10.0) -> rs.SendResult:
        result: rs.SendResult = await self.expect("send_result", lambda r: r.client_msg_id == client_msg_id, timeout)
        return result

    async def hello(self, token: str, user_id: str = "") -> rs.Welcome:
        await self.send(rs.ConnectRequest(hello=rs.Hello(token=token, user_id=user_id, client_agent="tests")))
        welcome: rs.Welcome = await self.expect("welcome")
        return welcome

    async def join(self, room_id: str, resume_cursor: str = "", history_limit: int = 0) -> rs.JoinResult:
        join = rs.JoinRoom(room_id=room_id, resume_cursor=resume_cursor, history_limit=history_limit)
        await self.send(rs.ConnectRequest(join_room=join))
        result: rs.JoinResult = await self.expect("join_result", lambda r: r.room_id == room_id)
        return result

    async def send_comment(self, room_id: str, client_msg_id: str, text: str, timeout: float = 10.0) -> rs.SendResult:
        payload = event_pb2.Payload(comment=event_pb2.Comment(text=text))
        await self.send(rs.ConnectRequest(send=rs.Send(room_id=room_id, client_msg_id=client_msg_id, payload=payload)))
        result: rs.SendResult = await self.expect("send_result", lambda r: r.client_msg_id == client_msg_id, timeout)
        return result

    def events(self, room_id: str, kind: str | None = None) -> list[event_pb2.Event]:
        """Events received from the room, optionally only those of one payload kind."""
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
                    raise AssertionError(f"stream ended ({self.ended}) after {len(events)} of {count} events")
                await self._changed.wait()
        return events

    async def wait_end(self, timeout: float = 10.0) -> grpc.aio.AioRpcError | None:
        async with asyncio.timeout(timeout), self._changed:
            while not self.done:
                await self._changed.wait()
        return self.ended

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader
        await self.channel.close()


def end_status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    """The rich status (with details) a stream ended with."""
    status: status_pb2.Status | None = rpc_status.from_call(error)
    assert status is not None, f"no rich status in {error}"
    return status


class Admin:
    """RoomAdminService with a bearer token."""

    def __init__(self, target: str, token: str) -> None:
        from barrage.v1 import admin_service_pb2_grpc

        self.channel = grpc.aio.insecure_channel(target)
        self.stub = admin_service_pb2_grpc.RoomAdminServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),)

    async def create_room(self, room_id: str, title: str = "", host_user_id: str = "") -> Any:
        from barrage.v1 import admin_service_pb2 as pb

        request = pb.CreateRoomRequest(room_id=room_id, title=title, host_user_id=host_user_id)
        return (await self.stub.CreateRoom(request, metadata=self.metadata)).room

    async def close_room(self, room_id: str, reason: str = "") -> Any:
        from barrage.v1 import admin_service_pb2 as pb

        return (
            await self.stub.CloseRoom(pb.CloseRoomRequest(room_id=room_id, reason=reason), metadata=self.metadata)
        ).room

    async def history(self, room_id: str, cursor: str = "", backward: bool = False, page_size: int = 1000) -> Any:
        from barrage.v1 import admin_service_pb2 as pb

        direction = pb.DIRECTION_BACKWARD if backward else pb.DIRECTION_FORWARD
        request = pb.ListEventsRequest(room_id=room_id, cursor=cursor, direction=direction, page_size=page_size)
        return await self.stub.ListEvents(request, metadata=self.metadata)

    async def all_events(self, room_id: str, kind: str | None = None) -> list[event_pb2.Event]:
        """The room's whole history, optionally only events of one payload kind."""
        events: list[event_pb2.Event] = []
        cursor = ""
        while True:
            page = await self.history(room_id, cursor)
            events.extend(e for e in page.events if kind is None or e.payload.WhichOneof("kind") == kind)
            if not page.next_cursor:
                return events
            cursor = page.next_cursor

    async def publish(self, room_id: str, request_id: str, payload: event_pb2.Payload) -> Any:
        from barrage.v1 import admin_service_pb2 as pb

        request = pb.PublishEventRequest(room_id=room_id, request_id=request_id, payload=payload)
        return await self.stub.PublishEvent(request, metadata=self.metadata)

    async def close(self) -> None:
        await self.channel.close()
