"""ApiError -> gRPC status with rich details (grpc-status-details-bin)."""

from __future__ import annotations

import grpc
from grpc_status import rpc_status

from server.core.errors import ApiError


async def abort(context: grpc.aio.ServicerContext[object, object], error: ApiError) -> None:
    status = rpc_status.to_status(error.to_status())
    await context.abort(status.code, status.details, status.trailing_metadata)
