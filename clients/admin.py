"""A small typed async wrapper over RoomAdminService, for tools, tests and backends.

Every call carries `authorization: Bearer <token>`; a failed call raises BarrageError
with the gRPC code and the ErrorInfo reason.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import grpc

from barrage.clients.sdk.client import TokenSource
from barrage.clients.sdk.errors import BarrageError
from barrage.v1 import admin_service_pb2 as pb
from barrage.v1 import admin_service_pb2_grpc, event_pb2

Response = TypeVar("Response")


class AdminClient:
    def __init__(
        self,
        target: str,
        token: TokenSource,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        call_timeout_s: float = 10.0,
    ) -> None:
        self.target = target
        self._token = token
        self._timeout = call_timeout_s
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials)
        self._stub = admin_service_pb2_grpc.RoomAdminServiceStub(self._channel)

    async def __aenter__(self) -> AdminClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def create_room(self, room_id: str, *, title: str = "", host_user_id: str = "") -> pb.Room:
        """Create a room (roles host, service; a service may name the host who owns it).
        ALREADY_EXISTS/ROOM_EXISTS if taken."""
        reply: pb.CreateRoomResponse = await self._call(
            self._stub.CreateRoom, pb.CreateRoomRequest(room_id=room_id, title=title, host_user_id=host_user_id)
        )
        return reply.room

    async def get_room(self, room_id: str) -> pb.Room:
        reply: pb.GetRoomResponse = await self._call(self._stub.GetRoom, pb.GetRoomRequest(room_id=room_id))
        return reply.room

    async def close_room(self, room_id: str, *, reason: str = "") -> pb.Room:
        reply: pb.CloseRoomResponse = await self._call(
            self._stub.CloseRoom, pb.CloseRoomRequest(room_id=room_id, reason=reason)
        )
        return reply.room

    async def publish(
        self,
        room_id: str,
        payload: event_pb2.Payload,
        *,
        request_id: str | None = None,
        traceparent: str = "",
        tracestate: str = "",
    ) -> pb.PublishEventResponse:
        """Publish an event as the caller; idempotent by `request_id` (generated if not
        given: pass your own to retry safely across process restarts)."""
        request = pb.PublishEventRequest(
            room_id=room_id,
            request_id=request_id or uuid.uuid4().hex,
            payload=payload,
            traceparent=traceparent,
            tracestate=tracestate,
        )
        reply: pb.PublishEventResponse = await self._call(self._stub.PublishEvent, request)
        return reply

    async def announce(self, room_id: str, text: str, *, request_id: str | None = None) -> pb.PublishEventResponse:
        """Publish an Announcement (roles host, service)."""
        payload = event_pb2.Payload(announcement=event_pb2.Announcement(text=text))
        return await self.publish(room_id, payload, request_id=request_id)

    async def list_events(
        self, room_id: str, *, cursor: str = "", backward: bool = False, page_size: int = 0,
        media_time: event_pb2.MediaTime | None = None,
    ) -> pb.ListEventsResponse:  # fmt: skip
        """One page of history after (forward) or before (backward) `cursor`; or, with
        `media_time` (forward, no cursor), from where the show's stream reached it."""
        request = pb.ListEventsRequest(
            room_id=room_id,
            cursor=cursor,
            direction=pb.DIRECTION_BACKWARD if backward else pb.DIRECTION_FORWARD,
            page_size=page_size,
            media_time=media_time,
        )
        reply: pb.ListEventsResponse = await self._call(self._stub.ListEvents, request)
        return reply

    async def history(
        self, room_id: str, *, cursor: str = "", backward: bool = False, limit: int | None = None, page_size: int = 100,
        media_time: event_pb2.MediaTime | None = None,
    ) -> AsyncIterator[event_pb2.Event]:  # fmt: skip
        """Events page by page until `limit` or the end of the retained history (from a
        point of the show's stream with `media_time`)."""
        left = limit
        while left is None or left > 0:
            size = page_size if left is None else min(page_size, left)
            at, media_time = media_time, None  # the next pages follow the cursor
            page = await self.list_events(room_id, cursor=cursor, backward=backward, page_size=size, media_time=at)
            for event in page.events:
                yield event
            if left is not None:
                left -= len(page.events)
            if not page.next_cursor or not page.events:
                return
            cursor = page.next_cursor

    async def _call(self, method: Callable[..., Awaitable[Any]], request: Any) -> Any:
        token = self._token if isinstance(self._token, str) else await self._token()
        try:
            return await method(request, metadata=(("authorization", f"Bearer {token}"),), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise BarrageError.from_rpc_error(exc) from None
