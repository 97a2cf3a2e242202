"""RoomAdminService and RoomInsightsService over the Connect protocol, for browsers.

A browser cannot speak gRPC (it cannot read HTTP/2 trailers), but it can speak the
Connect protocol (connectrpc.com/docs/protocol): a unary call is a plain POST of the
request (binary protobuf or JSON) answered with the response, a server stream is a
POST answered with length-prefixed messages. Its Python runtime (connect-python) and
code generator are maintained by the Connect project; the generated
`barrage/v1/*_connect.py` modules route and (de)serialize, this module only adapts.

The adapters run the very same handlers as the gRPC services (server/transport/
admin_service.py, server/insights/service.py): they are called with a small stand-in
for grpc's ServicerContext that reads the `authorization` header and turns an abort
into a ConnectError carrying the same google.rpc.Status details (ErrorInfo, RetryInfo).
So every check, limit and error reason is shared, not re-implemented.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, NoReturn

import grpc
from connectrpc.code import Code as ConnectCode
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from google.rpc import status_pb2

from barrage.server.insights.service import InsightsService
from barrage.server.transport.admin_service import AdminService
from barrage.v1 import admin_service_connect, admin_service_pb2, insights_service_connect, insights_service_pb2

_DETAILS_KEY = "grpc-status-details-bin"


def connect_code(code: grpc.StatusCode) -> ConnectCode:
    """gRPC and Connect share their codes; only CANCELLED is spelled differently."""
    name = "CANCELED" if code is grpc.StatusCode.CANCELLED else code.name
    return ConnectCode[name]


class GrpcContextShim:
    """What the gRPC handlers use of grpc.aio.ServicerContext, over a Connect request."""

    __slots__ = ("_headers",)

    def __init__(self, ctx: RequestContext[Any, Any]) -> None:
        self._headers = ctx.request_headers()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        auth = self._headers.get("authorization")
        return (("authorization", auth),) if auth else ()

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Iterable[tuple[str, Any]] = ()
    ) -> NoReturn:
        status = status_pb2.Status()
        for key, value in trailing_metadata:
            if key == _DETAILS_KEY:
                status.ParseFromString(value)
        raise ConnectError(connect_code(code), details or status.message, list(status.details))


class ConnectRoomAdmin:
    """admin_service_connect.RoomAdminService, answered by the gRPC AdminService."""

    def __init__(self, grpc_service: AdminService) -> None:
        self._svc = grpc_service

    async def create_room(
        self, request: admin_service_pb2.CreateRoomRequest, ctx: RequestContext[Any, Any]
    ) -> admin_service_pb2.CreateRoomResponse:
        response: admin_service_pb2.CreateRoomResponse = await self._svc.CreateRoom(request, GrpcContextShim(ctx))
        return response

    async def get_room(
        self, request: admin_service_pb2.GetRoomRequest, ctx: RequestContext[Any, Any]
    ) -> admin_service_pb2.GetRoomResponse:
        response: admin_service_pb2.GetRoomResponse = await self._svc.GetRoom(request, GrpcContextShim(ctx))
        return response

    async def close_room(
        self, request: admin_service_pb2.CloseRoomRequest, ctx: RequestContext[Any, Any]
    ) -> admin_service_pb2.CloseRoomResponse:
        response: admin_service_pb2.CloseRoomResponse = await self._svc.CloseRoom(request, GrpcContextShim(ctx))
        return response

    async def publish_event(
        self, request: admin_service_pb2.PublishEventRequest, ctx: RequestContext[Any, Any]
    ) -> admin_service_pb2.PublishEventResponse:
        response: admin_service_pb2.PublishEventResponse = await self._svc.PublishEvent(request, GrpcContextShim(ctx))
        return response

    async def list_events(
        self, request: admin_service_pb2.ListEventsRequest, ctx: RequestContext[Any, Any]
    ) -> admin_service_pb2.ListEventsResponse:
        response: admin_service_pb2.ListEventsResponse = await self._svc.ListEvents(request, GrpcContextShim(ctx))
        return response

    async def list_rooms(
        self, request: admin_service_pb2.ListRoomsRequest, ctx: RequestContext[Any, Any]
    ) -> admin_service_pb2.ListRoomsResponse:
        response: admin_service_pb2.ListRoomsResponse = await self._svc.ListRooms(request, GrpcContextShim(ctx))
        return response

    async def update_room(
        self, request: admin_service_pb2.UpdateRoomRequest, ctx: RequestContext[Any, Any]
    ) -> admin_service_pb2.UpdateRoomResponse:
        response: admin_service_pb2.UpdateRoomResponse = await self._svc.UpdateRoom(request, GrpcContextShim(ctx))
        return response

    async def verify_coupon(
        self, request: admin_service_pb2.VerifyCouponRequest, ctx: RequestContext[Any, Any]
    ) -> admin_service_pb2.VerifyCouponResponse:
        response: admin_service_pb2.VerifyCouponResponse = await self._svc.VerifyCoupon(request, GrpcContextShim(ctx))
        return response

    async def redeem_coupon(
        self, request: admin_service_pb2.RedeemCouponRequest, ctx: RequestContext[Any, Any]
    ) -> admin_service_pb2.RedeemCouponResponse:
        response: admin_service_pb2.RedeemCouponResponse = await self._svc.RedeemCoupon(request, GrpcContextShim(ctx))
        return response

    async def get_leaderboard(
        self, request: admin_service_pb2.GetLeaderboardRequest, ctx: RequestContext[Any, Any]
    ) -> admin_service_pb2.GetLeaderboardResponse:
        response: admin_service_pb2.GetLeaderboardResponse = await self._svc.GetLeaderboard(
            request, GrpcContextShim(ctx)
        )
        return response


class ConnectRoomInsights:
    """insights_service_connect.RoomInsightsService, answered by the gRPC InsightsService."""

    def __init__(self, grpc_service: InsightsService) -> None:
        self._svc = grpc_service

    async def get_insights(
        self, request: insights_service_pb2.GetInsightsRequest, ctx: RequestContext[Any, Any]
    ) -> insights_service_pb2.GetInsightsResponse:
        return await self._svc.GetInsights(request, GrpcContextShim(ctx))

    async def watch_insights(
        self, request: insights_service_pb2.WatchInsightsRequest, ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[insights_service_pb2.WatchInsightsResponse]:
        async for response in self._svc.WatchInsights(request, GrpcContextShim(ctx)):
            yield response


def connect_apps(admin: AdminService, insights: InsightsService | None, read_max_bytes: int) -> Mapping[str, Any]:
    """The Connect ASGI applications by service path (/barrage.v1.RoomAdminService, ...)."""
    apps: list[Any] = [
        admin_service_connect.RoomAdminServiceASGIApplication(ConnectRoomAdmin(admin), read_max_bytes=read_max_bytes)
    ]
    if insights is not None:
        apps.append(
            insights_service_connect.RoomInsightsServiceASGIApplication(
                ConnectRoomInsights(insights), read_max_bytes=read_max_bytes
            )
        )
    return {app.path: app for app in apps}
