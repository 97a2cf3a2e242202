"""Typed errors of the SDK.

Every failure the server reports carries a gRPC code and, for Barrage's own errors, a
google.rpc.ErrorInfo reason (the names of barrage.v1.ErrorReason without the prefix)
and sometimes a RetryInfo delay. BarrageError keeps all three so callers can switch on
`reason` and fall back to `code` for reasons they do not know.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Self

import grpc
from google.rpc import error_details_pb2, status_pb2

_STATUS_DETAILS_KEY = "grpc-status-details-bin"
_CODES: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}

RETRYABLE_STREAM_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
    }
)
"""Stream end statuses after which the client reconnects (room_service.proto)."""


class BarrageError(Exception):
    """A failure reported by the server (or by the SDK on its behalf).

    `reason` is the ErrorInfo reason ("TEXT_TOO_LONG", "RATE_LIMITED", ...) or "" when
    the status had none. Reasons the SDK sets itself: CLIENT_CLOSED, SEND_TIMEOUT,
    JOIN_TIMEOUT, CONNECT_TIMEOUT, CONNECTION_LOST, PING_TIMEOUT,
    FRAME_TOO_LARGE.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
        retry_delay: float | None = None,
    ) -> None:
        super().__init__(f"{code.name} {reason or '-'}: {message}")
        self.code = code
        self.message = message
        self.reason = reason
        self.metadata: Mapping[str, str] = dict(metadata or {})
        self.retry_delay = retry_delay
        """Seconds the server asked to wait before retrying (RetryInfo), if any."""

    @classmethod
    def from_status(cls, status: status_pb2.Status, **extra: Any) -> Self:
        """From a google.rpc.Status found inside a message (SendResult, JoinResult, ...)."""
        code = _CODES.get(status.code, grpc.StatusCode.UNKNOWN)
        reason, metadata, retry_delay = _details(status.details)
        return cls(code, status.message, reason=reason, metadata=metadata, retry_delay=retry_delay, **extra)

    @classmethod
    def from_rpc_error(cls, error: grpc.aio.AioRpcError) -> Self:
        """From a failed call: the rich status travels in trailing metadata."""
        code: grpc.StatusCode = error.code()
        message = str(error.details() or "")
        for key, value in error.trailing_metadata() or ():
            if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
                status = status_pb2.Status.FromString(value)
                reason, metadata, retry_delay = _details(status.details)
                return cls(code, message, reason=reason, metadata=metadata, retry_delay=retry_delay)
        return cls(code, message)


def _details(details: Iterable[Any]) -> tuple[str, dict[str, str], float | None]:
    reason = ""
    metadata: dict[str, str] = {}
    retry_delay: float | None = None
    for detail in details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_delay = retry.retry_delay.ToNanoseconds() / 1e9
    return reason, metadata, retry_delay


class SendError(BarrageError):
    """A send was refused (SendResult status not OK), timed out, or could not be made."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        room_id: str = "",
        client_msg_id: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(code, message, **kwargs)
        self.room_id = room_id
        self.client_msg_id = client_msg_id
        """Retry with this id to stay idempotent: the server appends it at most once."""


class JoinError(BarrageError):
    """A join (or a rejoin after reconnect) was refused: the room is not subscribed."""


class ConnectionFailed(BarrageError):
    """The stream ended with a status after which reconnecting cannot help (for example
    UNAUTHENTICATED or PERMISSION_DENIED), or the first connection timed out. The client
    is closed: make a new one (with a new token when the token was the problem)."""


class ClientClosed(BarrageError):
    """The client was closed before the operation completed."""

    def __init__(self, message: str = "client closed") -> None:
        super().__init__(grpc.StatusCode.CANCELLED, message, reason="CLIENT_CLOSED")
