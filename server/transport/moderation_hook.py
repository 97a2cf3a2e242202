"""The node's client of the platform's ModerationHookService (server/core/moderation.py
decides what to ask and what an answer means; this module only makes the call).

One shared grpc.aio channel for every room: a call waits for nothing but its own
answer, so a slow hook never blocks the event loop or another room. Bounded three
ways, each a HookFailure the failure policy handles at once:

- a deadline per call (--moderation-hook-timeout-ms): `timeout`;
- at most --moderation-hook-max-pending calls in flight: beyond it `overloaded`, without
  a call (a hook that hangs holds at most that many);
- a circuit breaker: after _TRIP_AFTER failures in a row the node stops calling for
  _OPEN_S (`circuit_open`), then lets one probe through; its success closes the circuit.

Replies are read as raw bytes and parsed here, so a hook that answers garbage is told
apart (`invalid`) from one that fails (`error`, `unavailable`).
"""

from __future__ import annotations

import logging
import time

import grpc
from google.protobuf.message import DecodeError

from barrage.v1 import moderation_hook_pb2 as mh
from server.config import Settings
from server.core.moderation import HookFailure, Moderation

log = logging.getLogger(__name__)

METHOD = "/barrage.v1.ModerationHookService/Review"
_TRIP_AFTER = 5
_OPEN_S = 1.0
_MAX_REPLY_BYTES = 16 * 1024
_OPTIONS: list[tuple[str, int]] = [
    # A hook that was down is called again soon after it is back (gRPC's default backoff
    # grows to two minutes; the circuit breaker already spaces out the attempts).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", _MAX_REPLY_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
]


class CircuitBreaker:
    """Closed, open for `open_s` after `trip_after` failures in a row, then half-open:
    one probe call at a time until one succeeds."""

    def __init__(self, trip_after: int = _TRIP_AFTER, open_s: float = _OPEN_S) -> None:
        self._trip_after = trip_after
        self._open_s = open_s
        self._failures = 0
        self._open_until = 0.0
        self._probing = False

    def allow(self) -> bool:
        if self._failures < self._trip_after:
            return True
        if self._probing or time.monotonic() < self._open_until:
            return False
        self._probing = True
        return True

    def succeeded(self) -> None:
        if self._failures >= self._trip_after:
            log.info("moderation hook answers again: circuit closed")
        self._failures = 0
        self._probing = False

    def failed(self) -> None:
        self._failures += 1
        self._probing = False
        if self._failures >= self._trip_after:
            if self._failures == self._trip_after:
                log.warning("moderation hook failed %d times in a row: circuit open", self._failures)
            self._open_until = time.monotonic() + self._open_s


class HookClient:
    """server.core.moderation.Reviewer over gRPC."""

    def __init__(self, target: str, timeout_s: float, max_pending: int, breaker: CircuitBreaker | None = None) -> None:
        self._channel = grpc.aio.insecure_channel(target, options=_OPTIONS)
        self._call = self._channel.unary_unary(METHOD)  # bytes in, bytes out: parsed below
        self._timeout_s = timeout_s
        self._max_pending = max_pending
        self.pending = 0
        self._breaker = breaker or CircuitBreaker()

    async def review(self, request: mh.ReviewRequest) -> mh.ReviewResponse:
        if self.pending >= self._max_pending:
            raise HookFailure("overloaded", f"{self.pending} hook calls already pending")
        if not self._breaker.allow():
            raise HookFailure("circuit_open", "the hook failed repeatedly; not called for now")
        self.pending += 1
        try:
            reply = await self._call(request.SerializeToString(), timeout=self._timeout_s, wait_for_ready=False)
        except grpc.aio.AioRpcError as exc:
            self._breaker.failed()
            code = exc.code()
            outcome = (
                "timeout"
                if code == grpc.StatusCode.DEADLINE_EXCEEDED
                else "unavailable"
                if code == grpc.StatusCode.UNAVAILABLE
                else "error"
            )
            raise HookFailure(outcome, f"{code.name}: {exc.details()}") from None
        finally:
            self.pending -= 1
        self._breaker.succeeded()  # it answered; whether the answer makes sense is the core's to say
        try:
            return mh.ReviewResponse.FromString(reply)
        except DecodeError as exc:
            raise HookFailure("invalid", f"the answer is not a ReviewResponse: {exc}") from None

    async def close(self) -> None:
        await self._channel.close()


def build(settings: Settings) -> Moderation:
    """The node's moderation from its settings (--moderation-hook and the flags after it)."""
    assert settings.moderation_hook
    client = HookClient(
        settings.moderation_hook,
        timeout_s=settings.moderation_hook_timeout_ms / 1000.0,
        max_pending=settings.moderation_hook_max_pending,
    )
    log.info(
        "moderation hook %s: deadline %.0f ms, fail-%s",
        settings.moderation_hook,
        settings.moderation_hook_timeout_ms,
        settings.moderation_hook_failure,
    )
    return Moderation(
        client, fail_open=settings.moderation_hook_failure == "open", max_text_chars=settings.max_text_chars
    )
