"""RoomAdminService over grpc.aio: authenticate from metadata, call the gateway.

Who may call what is the gateway's (and policy's) to decide, from the caller's
standing in the room; this module only translates. PublishEvent goes through the
gateway's one ingest path, as stream sends do.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from barrage.server.auth import Identity, TokenVerifier
from barrage.server.commerce import boards, giveaways
from barrage.server.core import policy, ranges
from barrage.server.core.errors import ApiError, invalid
from barrage.server.core.gateway import Gateway
from barrage.server.core.posts import Post, Posted
from barrage.server.log.base import RoomQuery
from barrage.server.transport.status import answering
from barrage.v1 import admin_service_pb2 as pb
from barrage.v1 import admin_service_pb2_grpc, event_pb2

_METADATA_PATHS = ("title", "cover_url", "labels", "announcement")
"""What UpdateRoomRequest.update_mask may name."""
_TOKEN_PREFIX = "r1:"
"""Page tokens are "r1:<last room id>" in URL-safe base64: opaque to clients, versioned for us."""

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


def page_token(room_id: str) -> str:
    return base64.urlsafe_b64encode((_TOKEN_PREFIX + room_id).encode()).decode()


def parse_page_token(token: str) -> str:
    """The room id a ListRooms page ended at ("" for the first page)."""
    if not token:
        return ""
    try:
        text = base64.urlsafe_b64decode(token.encode("ascii")).decode()
    except (ValueError, binascii.Error, UnicodeError):
        text = ""
    if not text.startswith(_TOKEN_PREFIX) or len(text) == len(_TOKEN_PREFIX):
        raise invalid("INVALID_FIELD", "page_token is not one this API returned", "page_token")
    return text.removeprefix(_TOKEN_PREFIX)


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
        return pb.PublishEventResponse(
            cursor=outcome.cursor,
            event_id=outcome.event_id,
            duplicate=outcome.duplicate,
            claim_id=outcome.claim_id,
            grabbed=outcome.grabbed,
        )

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

    @_rpc
    async def ListRooms(self, who: Identity, request: pb.ListRoomsRequest) -> pb.ListRoomsResponse:
        ranges.check_fields(request)  # page_size, state: INVALID_FIELD naming the field
        if request.owner_user_id:
            policy.check_client_id(request.owner_user_id, "owner_user_id")
        if request.label and policy.LABEL.fullmatch(request.label) is None:
            raise invalid("INVALID_FIELD", "label must be 1-32 characters of A-Z a-z 0-9 . _ : -", "label")
        limit = request.page_size or 100
        closed = None if request.state == pb.ROOM_STATE_UNSPECIFIED else request.state == pb.ROOM_STATE_CLOSED
        query = RoomQuery(parse_page_token(request.page_token), limit + 1, closed, request.owner_user_id, request.label)
        # One room more than the page tells whether there is a next page.
        found = await self.gateway.list_rooms(who, query)
        rooms = found[:limit]
        token = page_token(rooms[-1].room_id) if len(found) > limit else ""
        return pb.ListRoomsResponse(rooms=[self.gateway.info_message(r) for r in rooms], next_page_token=token)

    @_rpc
    async def UpdateRoom(self, who: Identity, request: pb.UpdateRoomRequest) -> pb.UpdateRoomResponse:
        info = await self.gateway.authority(who, request.room_id, "update_room")  # ROLE_FORBIDDEN first
        paths = list(request.update_mask.paths) or list(_METADATA_PATHS)
        for path in paths:
            if path not in _METADATA_PATHS:
                raise invalid("INVALID_FIELD", f"update_mask may name {', '.join(_METADATA_PATHS)}", "update_mask")
        title = request.title if "title" in paths else info.title
        cover_url = request.cover_url if "cover_url" in paths else info.cover_url
        labels = list(request.labels) if "labels" in paths else list(info.labels)
        announcement = request.announcement if "announcement" in paths else info.announcement
        await self.gateway.update_room(who, request.room_id, title, cover_url, labels, announcement)
        return pb.UpdateRoomResponse(room=await self.gateway.room_message(request.room_id))

    @_rpc
    async def VerifyCoupon(self, who: Identity, request: pb.VerifyCouponRequest) -> pb.VerifyCouponResponse:
        claim = await giveaways.verify(self.gateway, who, request.room_id, request.claim_id)
        return pb.VerifyCouponResponse(claim=claim)

    @_rpc
    async def RedeemCoupon(self, who: Identity, request: pb.RedeemCouponRequest) -> pb.RedeemCouponResponse:
        claim = await giveaways.redeem(self.gateway, who, request.room_id, request.claim_id, request.order_id)
        return pb.RedeemCouponResponse(claim=claim)

    @_rpc
    async def GetLeaderboard(self, who: Identity, request: pb.GetLeaderboardRequest) -> pb.GetLeaderboardResponse:
        board, own = await boards.get_leaderboard(self.gateway, who, request.room_id, request.user_id)
        return pb.GetLeaderboardResponse(leaderboard=board, own=own)
