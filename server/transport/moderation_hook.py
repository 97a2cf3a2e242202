"""The node's client of the platform's ModerationHookService (server/core/moderation.py
decides what to ask and what an answer means; this module only makes the call).

One shared grpc.aio channel for every room: a call waits for nothing but its own
answer, so a slow hook never blocks the event loop or another room. Bounded three
ways, each a HookFailure the failure policy handles at once:

- a deadline per call (--moderation-hook-timeout-ms): `timeout`;
- at most --moderation-hook-max-pending calls in flight: beyond it `overloaded`, without
  a call (a hook that hangs holds at most that many);
- a circuit breaker: when half of the last 20 calls failed the node stops calling for
  0.25 s (`circuit_open`), then lets one probe through; its success closes the circuit,
  its failure opens it twice as long again (at most 4 s).

Replies are read as raw bytes and parsed here, so a hook that answers garbage is told
apart (`invalid`) from one that fails (`error`, `unavailable`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

import grpc
from google.protobuf.message import DecodeError

from barrage.server.config import Settings
from barrage.server.core.moderation import HookFailure, Moderation
from barrage.v1 import moderation_hook_pb2 as mh

log = logging.getLogger(__name__)

METHOD = "/barrage.v1.ModerationHookService/Review"
_WINDOW = 20
_TRIP_AT = 10
"""The circuit opens when 10 of the last 20 calls failed (timeout, unavailable, error)."""
_OPEN_S = 0.25
_MAX_OPEN_S = 4.0
"""Open 0.25 s after a trip (a stall of the machine or network trips it too, and should
cost little), twice as long after each failed probe, at most 4 s (a hook that is down)."""
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
    """Closed while fewer than `trip_at` of the last `window` calls failed; then open for
    `open_s`; then half-open: one probe call at a time, whose success closes it (and
    forgets the failures) and whose failure opens it again, twice as long (at most
    `max_open_s`).

    A share of recent calls, not failures in a row: with hundreds of calls in flight on a
    saturated node a few late answers in a row are normal, and must not stop every review.
    """

    def __init__(
        self, window: int = _WINDOW, trip_at: int = _TRIP_AT, open_s: float = _OPEN_S, max_open_s: float = _MAX_OPEN_S
    ) -> None:
        self._recent: deque[bool] = deque(maxlen=window)
        """Recent calls: True for a failure."""
        self._failures = 0
        self._trip_at = trip_at
        self._first_open_s = self._open_s = open_s
        self._max_open_s = max_open_s
        self._open_until: float | None = None
        self._probing = False

    def allow(self) -> bool:
        if self._open_until is None:
            return True
        if self._probing or time.monotonic() < self._open_until:
            return False
        self._probing = True
        return True

    def succeeded(self) -> None:
        if self._open_until is not None:
            if not self._probing:
                return  # a call from before the circuit opened: the probe decides
            log.info("moderation hook answers again: circuit closed")
            self._open_until = None
            self._open_s = self._first_open_s
            self._probing = False
            self._recent.clear()
            self._failures = 0
            return
        self._record(False)

    def abandoned(self) -> None:
        """A call was cancelled before it ended: if it was the probe, the next call probes."""
        self._probing = False

    def failed(self) -> None:
        if self._open_until is not None:
            if self._probing:
                self._probing = False
                self._open_s = min(2 * self._open_s, self._max_open_s)
                self._open_until = time.monotonic() + self._open_s
            return
        self._record(True)
        if self._failures >= self._trip_at:
            log.warning(
                "moderation hook failed %d of its last %d calls: circuit open", self._failures, len(self._recent)
            )
            self._open_until = time.monotonic() + self._open_s

    def _record(self, failed: bool) -> None:
        if len(self._recent) == self._recent.maxlen and self._recent[0]:
            self._failures -= 1
        self._recent.append(failed)
        self._failures += failed


class HookClient:
    """barrage.server.core.moderation.Reviewer over gRPC."""

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
        except asyncio.CancelledError:
            self._breaker.abandoned()  # the sender's stream ended meanwhile: no verdict on the hook
            raise
        except Exception as exc:  # the channel itself failed (a bad target, say): as good as down
            self._breaker.failed()
            log.warning("moderation hook call failed: %r", exc)
            raise HookFailure("unavailable", repr(exc)) from None
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
