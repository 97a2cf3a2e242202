"""Expected errors: each maps to a gRPC status code and an ErrorInfo reason.

The core raises ApiError for anything a client did or may retry; transports turn it
into a status (google.rpc.Status with ErrorInfo, and RetryInfo when there is a
retry delay). Anything else is a bug and surfaces as INTERNAL.
"""

from __future__ import annotations

import enum

from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from barrage.server.log.base import LogUnavailableError

DOMAIN = "barrage.v1"


class Code(enum.IntEnum):
    """gRPC status codes (numeric values fixed by the gRPC spec)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class ApiError(Exception):
    """An expected failure with its status code and barrage.v1.ErrorReason name."""

    def __init__(
        self,
        code: Code,
        reason: str,
        message: str,
        *,
        metadata: dict[str, str] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = metadata or {}
        self.retry_after_s = retry_after_s

    def to_status(self) -> status_pb2.Status:
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN, metadata=self.metadata)
        details = [_pack(info)]
        if self.retry_after_s is not None:
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(int(self.retry_after_s * 1e9))
            details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
        return status_pb2.Status(code=int(self.code), message=self.message, details=details)

    def __repr__(self) -> str:
        return f"ApiError({self.code.name}, {self.reason}, {self.message!r})"


def log_unavailable(exc: LogUnavailableError, doing: str) -> ApiError:
    """The status for a log that did not answer in time: retry later (same id for a send)."""
    message = f"the room log did not answer {doing}: {exc}"
    return ApiError(Code.UNAVAILABLE, "LOG_UNAVAILABLE", message, retry_after_s=1.0)


def _pack(message: error_details_pb2.ErrorInfo | error_details_pb2.RetryInfo) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


OK_STATUS = status_pb2.Status(code=0)


def invalid(reason: str, message: str, field: str | None = None) -> ApiError:
    return ApiError(Code.INVALID_ARGUMENT, reason, message, metadata={"field": field} if field else None)
