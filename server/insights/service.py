"""RoomInsightsService over grpc.aio: authenticate, pick the window, answer from the hub."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from barrage.server.auth import Identity, TokenVerifier
from barrage.server.core import ranges
from barrage.server.core.errors import ApiError, Code
from barrage.server.core.gateway import Gateway
from barrage.server.insights.engine import Limits
from barrage.server.insights.hub import InsightsHub
from barrage.server.transport.status import answering
from barrage.v1 import insights_service_pb2 as pb
from barrage.v1 import insights_service_pb2_grpc

Context = Any  # grpc.aio.ServicerContext; grpc ships no type information

DEFAULT_INTERVAL_S = 2.0
MIN_INTERVAL_S = 1.0


def add_insights_service(server: Any, hub: InsightsHub, gateway: Gateway, verifier: TokenVerifier) -> None:
    """Register RoomInsightsService on a grpc.aio server."""
    insights_service_pb2_grpc.add_RoomInsightsServiceServicer_to_server(InsightsService(hub, gateway, verifier), server)


class InsightsService(insights_service_pb2_grpc.RoomInsightsServiceServicer):
    def __init__(self, hub: InsightsHub, gateway: Gateway, verifier: TokenVerifier) -> None:
        self.hub = hub
        self.gateway = gateway
        self.verifier = verifier

    def _identity(self, context: Context) -> Identity:
        metadata = dict(context.invocation_metadata() or ())
        scheme, _, token = str(metadata.get("authorization", "")).partition(" ")
        return self.verifier.verify(token.strip() if scheme.lower() == "bearer" else "")

    async def _title(self, who: Identity, room_id: str) -> str:
        # Authority is the room's: its owner, its moderators, platform moderators, services.
        return (await self.gateway.authority(who, room_id, "read_insights")).title

    async def GetInsights(self, request: pb.GetInsightsRequest, context: Context) -> pb.GetInsightsResponse:
        async with answering(context):
            title = await self._title(self._identity(context), request.room_id)
            ranges.check_fields(request)  # the window's times (after the permission check)
            start = request.start_time.ToMilliseconds() if request.HasField("start_time") else None
            end = request.end_time.ToMilliseconds() if request.HasField("end_time") else None
            if start is not None and end is not None and end <= start:
                raise ApiError(Code.INVALID_ARGUMENT, "INVALID_FIELD", "end_time must be after start_time")
            tracked = await self.hub.room(request.room_id)
            insights = tracked.snapshot(title, start, end, Limits.of(request.options))
            return pb.GetInsightsResponse(insights=insights)
        raise AssertionError("unreachable: answering() ended the call")

    async def WatchInsights(
        self, request: pb.WatchInsightsRequest, context: Context
    ) -> AsyncIterator[pb.WatchInsightsResponse]:
        async with answering(context):  # the log can fail to answer at any update, not only the first
            title = await self._title(self._identity(context), request.room_id)
            ranges.check_fields(request)  # interval at most 1 hour (after the permission check)
            interval = request.interval.ToMilliseconds() / 1000 if request.HasField("interval") else 0.0
            interval = max(MIN_INTERVAL_S, interval or DEFAULT_INTERVAL_S)
            limits = Limits.of(request.options)
            width = self.hub.config.bucket_ms
            sent = -1
            while True:
                tracked = await self.hub.room(request.room_id)
                if tracked.version != sent:
                    sent = tracked.version
                    start = None
                    if request.recent_buckets:
                        newest = tracked.engine.last_ms // width
                        start = max(0, newest - request.recent_buckets + 1) * width
                    insights = tracked.snapshot(title, start, None, limits)
                    yield pb.WatchInsightsResponse(insights=insights)
                    if tracked.engine.closed:
                        return
                await asyncio.sleep(interval)
