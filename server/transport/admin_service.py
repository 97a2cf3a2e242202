"""RoomAdminService over grpc.aio: authenticate from metadata, call the gateway.

Who may call what is the gateway's (and policy's) to decide, from the caller's
standing in the room; this module only translates. PublishEvent goes through the
gateway's one ingest path, as stream sends do.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from barrage.v1 import admin_service_pb2 as pb
from barrage.v1 import admin_service_pb2_grpc, event_pb2
from server.auth import Identity, TokenVerifier
from server.core import policy, ranges
from server.core.errors import ApiError
from server.core.gateway import Gateway, Post, Posted
from server.transport.status import answering

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Context = Any  # grpc.aio.ServicerContext; grpc ships no type information


def _rpc(
    method: Callable[[AdminService, Identity, Req], Awaitable[Resp]],
) -> Callable[[AdminService, Req, Context], Awaitable[Resp]]:
    """Authenticate the call and turn ApiError (and a log that did not answer) into a status."""

    @functools.wraps(method)
    async def handler(self: AdminService, request: Req, context: Context) -> Resp:
        async with answering(context):
            metadata = dict(context.invocation_metadata() or ())
            header = str(metadata.get("authorization", ""))
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer":
                token = ""
            identity = self.verifier.verify(token.strip())
            return await method(self, identity, request)
        raise AssertionError("unreachable: answering() ended the call")

    return handler


class AdminService(admin_service_pb2_grpc.RoomAdminServiceServicer):
    def __init__(self, gateway: Gateway, verifier: TokenVerifier) -> None:
        self.gateway = gateway
        self.verifier = verifier

    @_rpc
    async def CreateRoom(self, who: Identity, request: pb.CreateRoomRequest) -> pb.CreateRoomResponse:
        info = await self.gateway.create_room(who, request.room_id, request.title, request.host_user_id)
        return pb.CreateRoomResponse(room=await self.gateway.room_message(info.room_id))

    @_rpc
    async def GetRoom(self, who: Identity, request: pb.GetRoomRequest) -> pb.GetRoomResponse:
        return pb.GetRoomResponse(room=await self.gateway.get_room(who, request.room_id))

    @_rpc
    async def CloseRoom(self, who: Identity, request: pb.CloseRoomRequest) -> pb.CloseRoomResponse:
        await self.gateway.close_room(who, request.room_id, request.reason)
        return pb.CloseRoomResponse(room=await self.gateway.room_message(request.room_id))

    @_rpc
    async def PublishEvent(self, who: Identity, request: pb.PublishEventRequest) -> pb.PublishEventResponse:
        post = Post(request.request_id, request.payload, request.traceparent, request.tracestate)
        policy.check_room_id(request.room_id)
        (outcome,) = await self.gateway.post(who, request.room_id, [post], action="publish_event")
        if isinstance(outcome, ApiError):
            raise outcome
        assert isinstance(outcome, Posted)
        return pb.PublishEventResponse(cursor=outcome.cursor, event_id=outcome.event_id, duplicate=outcome.duplicate)

    @_rpc
    async def ListEvents(self, who: Identity, request: pb.ListEventsRequest) -> pb.ListEventsResponse:
        await self.gateway.authority(who, request.room_id, "list_events")  # ROLE_FORBIDDEN before INVALID_FIELD
        ranges.check_fields(request)  # page_size, direction: INVALID_FIELD naming the field
        events, next_cursor = await self.gateway.list_events(
            who,
            request.room_id,
            request.cursor,
            request.direction == pb.DIRECTION_BACKWARD,
            request.page_size,
            request.media_time if request.HasField("media_time") else None,
        )
        return pb.ListEventsResponse(events=[event_pb2.Event.FromString(e) for e in events], next_cursor=next_cursor)
