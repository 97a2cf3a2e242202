"""ApiError -> gRPC status with rich details (grpc-status-details-bin)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc
from grpc_status import rpc_status

from barrage.server.core.errors import ApiError, log_unavailable
from barrage.server.log.base import LogUnavailableError


async def abort(context: grpc.aio.ServicerContext[object, object], error: ApiError) -> None:
    status = rpc_status.to_status(error.to_status())
    await context.abort(status.code, status.details, status.trailing_metadata)


@contextlib.asynccontextmanager
async def answering(context: grpc.aio.ServicerContext[object, object]) -> AsyncIterator[None]:
    """End the call with the status of what the block raised: an ApiError as it is, a log
    that did not answer in time as UNAVAILABLE LOG_UNAVAILABLE (context.abort raises)."""
    try:
        yield
    except LogUnavailableError as exc:
        await abort(context, log_unavailable(exc, "the request"))
    except ApiError as err:
        await abort(context, err)
