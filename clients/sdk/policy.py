"""The SDK's decisions, as pure functions: when to retry, and where to resume from.

Kept apart from the client's plumbing so each rule can be read (and tested) alone.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import NamedTuple

import grpc

from barrage.clients.sdk.errors import BarrageError
from barrage.v1 import room_service_pb2 as rs

MAX_JOIN_ATTEMPTS = 8
MAX_CLIENT_FRAME_BYTES = 64 * 1024
"""The server's limit on one client frame; a bigger one ends the whole stream, so the SDK
refuses such a send itself instead of losing the stream (and resending it forever)."""


def _jitter(rng: Callable[[], float]) -> float:
    # +0..25 %: retries of many clients refused at the same moment spread out.
    return 1.0 + rng() / 4


def send_retry_delay(
    error: BarrageError,
    attempts: int,
    *,
    max_attempts: int,
    retry_rate_limited: bool,
    rejoining: bool,
    token_refreshing: bool = False,
    rng: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before writing a refused send again (same client_msg_id), or None
    to hand the refusal to the application. `attempts`: writes so far; `rejoining`: the
    SDK itself is rejoining the send's room (so NOT_JOINED is its own doing);
    `token_refreshing`: a new token is being fetched (so TOKEN_EXPIRED will pass)."""
    if attempts >= max_attempts:
        return None
    if error.code == grpc.StatusCode.UNAVAILABLE:
        # The log did not confirm the append: it may be there; the retry finds out.
        return (error.retry_delay or min(0.2 * 2**attempts, 5.0)) * _jitter(rng)
    if error.code == grpc.StatusCode.RESOURCE_EXHAUSTED and error.reason == "RATE_LIMITED":
        return (error.retry_delay or 0.5) * _jitter(rng) if retry_rate_limited else None
    if (error.reason == "NOT_JOINED" and rejoining) or (error.reason == "TOKEN_EXPIRED" and token_refreshing):
        return 0.5 * _jitter(rng)
    return None


def join_retry_delay(error: BarrageError, attempts: int, rng: Callable[[], float] = random.random) -> float | None:
    """Seconds before asking again for a refused (re)join, or None to give up on the room."""
    transient = error.code == grpc.StatusCode.UNAVAILABLE or (
        error.code == grpc.StatusCode.RESOURCE_EXHAUSTED and error.reason == "RATE_LIMITED"
    )
    if not transient or attempts >= MAX_JOIN_ATTEMPTS:
        return None
    return (error.retry_delay or 0.2 * 2**attempts) * _jitter(rng)


class ResumePoint(NamedTuple):
    cursor: str
    """Resume after this cursor on the next join; empty: join fresh."""
    fresh_history: int
    """history_limit of a fresh join."""


def after_join(
    outcome: rs.ResumeOutcome.ValueType,
    head_cursor: str,
    *,
    cursor: str,
    fresh_history: int,
    asked_history: bool,
    max_history: int,
) -> ResumePoint:
    """Where the next join should resume from, right after a successful join.

    A resumed join keeps its cursor (the events after it are on the way). Otherwise the
    server sends its history (if asked) and then live events after the snapshot's head:
    - asked for history: keep joining fresh until the first event arrives, since a
      rejoin from the head would skip the history not yet delivered;
    - no history, room not empty: resume from the head;
    - room empty: there is no cursor for "the beginning", so join fresh asking for as
      much history as the server allows, which is everything since.
    """
    if outcome == rs.RESUME_OUTCOME_RESUMED:
        return ResumePoint(cursor, fresh_history)
    if not head_cursor:
        return ResumePoint("", max(fresh_history, max_history))
    if asked_history:
        return ResumePoint("", fresh_history)
    return ResumePoint(head_cursor, fresh_history)
