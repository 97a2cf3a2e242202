"""The range of every number, time, duration and enum a client may send.

One table, walked along the message's descriptor, so a field is checked the same way
wherever it appears (a Money inside a Gift or a Product, a Sender inside a Purchase)
and a field added to the protos without a range is caught by
tests/test_validation_generated.py rather than stored unchecked. What is out of range
is refused at ingest with INVALID_ARGUMENT / INVALID_FIELD naming the field: a value
that passes here is one every fold (room state, insights, clients) can apply. The
ranges are documented in docs/protocol.md ("Value ranges") and docs/commerce.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from barrage.server.core.errors import invalid

TIMESTAMP = "google.protobuf.Timestamp"
DURATION = "google.protobuf.Duration"

MAX_AHEAD_S = 366 * 86_400
"""A time in an event may lie at most this far after the server's clock (one year): a
mute, a sale, a poll or a lottery scheduled further ahead is a mistake, and the folds
then never meet a time past what a Timestamp can hold."""
TIMESTAMP_MIN_S = 0
"""Times start at 1970-01-01T00:00:00Z (an unset Timestamp is that time: "in the past")."""
TIMESTAMP_MAX_S = 253_402_300_799
"""9999-12-31T23:59:59Z, the end of google.protobuf.Timestamp's range."""
NANOS_PER_S = 1_000_000_000

MAX_AMOUNT_MINOR = 1_000_000_000_000
"""Money: at most 10^12 minor units (ten billion yuan or dollars); a total of up to
10,000 gifts of that value still fits an int64."""
MAX_UNITS = 1_000_000_000
"""Stock, sold units and similar counts of goods."""
MAX_TOTAL = 1_000_000_000_000
"""Server-made running totals (likes, votes, viewers): far above any real room."""

MAX_SUM_MINOR = 2**63 - 1
"""Server-made sums of money (a gifter's value, a room's gift total): they saturate here."""

MAX_LEVEL = 100
"""Fan level (Sender.level, the token's `level` claim): 0 (none) to 100."""

INT_RANGES: dict[str, tuple[int, int]] = {
    # Client-sent values.
    "barrage.v1.Money.amount_minor": (0, MAX_AMOUNT_MINOR),
    "barrage.v1.Like.count": (1, 100),
    "barrage.v1.Gift.count": (1, 10_000),
    "barrage.v1.Product.stock": (-1, MAX_UNITS),
    "barrage.v1.ProductUpdated.stock": (-1, MAX_UNITS),
    "barrage.v1.FlashSaleStarted.stock": (0, MAX_UNITS),
    "barrage.v1.FlashSaleStarted.limit_per_user": (0, 10_000),
    "barrage.v1.FlashSaleStock.stock": (0, MAX_UNITS),
    "barrage.v1.FlashSaleEnded.sold": (0, MAX_UNITS),
    "barrage.v1.Purchase.quantity": (1, 10_000),
    "barrage.v1.LotteryStarted.winners_count": (1, 1_000),
    "barrage.v1.PollVote.option": (0, 9),
    "barrage.v1.ImageRef.width": (1, 10_000),
    "barrage.v1.ImageRef.height": (1, 10_000),
    # Coupons and red packets (server/commerce/coupons.py, red_packets.py).
    "barrage.v1.CouponBatchDropped.percent_off": (1, 99),
    "barrage.v1.CouponBatchDropped.amount_off_minor": (1, MAX_AMOUNT_MINOR),
    "barrage.v1.CouponBatchDropped.min_spend_minor": (0, MAX_AMOUNT_MINOR),
    "barrage.v1.RedPacketSent.total_minor": (1, MAX_AMOUNT_MINOR),
    "barrage.v1.CouponBatchDropped.quantity": (1, 10_000),
    "barrage.v1.CouponBatchDropped.per_user_limit": (1, 100),
    "barrage.v1.RedPacketSent.count": (1, 10_000),
    "barrage.v1.CouponRemaining.remaining": (0, 10_000),
    "barrage.v1.CouponRemaining.claimed": (0, 10_000),
    "barrage.v1.CouponBatchEnded.claimed": (0, 10_000),
    "barrage.v1.RedPacketFinished.amounts_minor": (1, MAX_AMOUNT_MINOR),
    "barrage.v1.RedPacketFinished.unclaimed_count": (0, 10_000),
    "barrage.v1.RedPacketFinished.unclaimed_minor": (0, MAX_AMOUNT_MINOR),
    "barrage.v1.OpenCouponBatch.remaining": (0, 10_000),
    "barrage.v1.OpenRedPacket.grabbed": (0, 10_000),
    "barrage.internal.v1.CouponBatchCheckpoint.claim_positions": (0, 2**63 - 1),
    "barrage.internal.v1.CouponBatchCheckpoint.claim_times_ms": (0, TIMESTAMP_MAX_S * 1000),
    "barrage.internal.v1.CouponRedemption.claim_position": (0, 2**63 - 1),
    "barrage.internal.v1.RedPacketCheckpoint.grab_positions": (0, 2**63 - 1),
    # From the verified token (server/auth.py); also in a Sender a service posts.
    "barrage.v1.Sender.level": (0, MAX_LEVEL),
    # Produced by the server only (refused at ingest anyway); bounded for the folds.
    "barrage.v1.LikeBurst.delta": (0, MAX_TOTAL),
    "barrage.v1.LikeBurst.total": (0, MAX_TOTAL),
    "barrage.v1.PollTally.counts": (0, MAX_TOTAL),
    "barrage.v1.PollEnded.counts": (0, MAX_TOTAL),
    "barrage.v1.ViewerCount.viewers": (0, MAX_TOTAL),
    "barrage.v1.ViewerCount.node_viewers": (0, MAX_TOTAL),
    # Leaderboard and audience list (server/commerce/leaderboard.py, audience.py).
    "barrage.v1.Leaderboard.gifter_count": (0, MAX_TOTAL),
    "barrage.v1.Leaderboard.total_value_minor": (0, MAX_SUM_MINOR),
    "barrage.v1.LeaderboardEntry.rank": (0, MAX_TOTAL),
    "barrage.v1.LeaderboardEntry.value_minor": (0, MAX_SUM_MINOR),
    "barrage.v1.LeaderboardEntry.gift_count": (0, MAX_TOTAL),
    "barrage.v1.AudienceList.present_count": (0, MAX_TOTAL),
    "barrage.v1.AudienceMember.gift_value_minor": (0, MAX_SUM_MINOR),
    "barrage.internal.v1.GifterCheckpoint.value_minor": (0, MAX_SUM_MINOR),
    "barrage.internal.v1.GifterCheckpoint.gift_count": (0, MAX_TOTAL),
    "barrage.internal.v1.GifterCheckpoint.reached_position": (-1, 2**63 - 1),
    "barrage.internal.v1.PresenceCheckpoint.streams": (0, 2**32 - 1),
    "barrage.internal.v1.RoomCheckpoint.gifter_count": (0, MAX_TOTAL),
    "barrage.internal.v1.RoomCheckpoint.gift_total_minor": (0, MAX_SUM_MINOR),
    "barrage.internal.v1.RoomCheckpoint.position": (-1, 2**63 - 1),
    "barrage.internal.v1.RoomCheckpoint.flash_stock": (0, MAX_UNITS),
    "barrage.internal.v1.RoomCheckpoint.like_total": (0, MAX_TOTAL),
    "barrage.v1.PollCheckpoint.counts": (0, MAX_TOTAL),
    # Admin API requests.
    "barrage.v1.ListEventsRequest.page_size": (0, 1_000),
    "barrage.v1.ListRoomsRequest.page_size": (0, 500),
    # Insights requests: any count is accepted and clamped to the documented maximum.
    "barrage.v1.InsightsOptions.top_questions": (0, 2**32 - 1),
    "barrage.v1.InsightsOptions.top_terms": (0, 2**32 - 1),
    "barrage.v1.InsightsOptions.trend_buckets": (0, 2**32 - 1),
    "barrage.v1.WatchInsightsRequest.recent_buckets": (0, 2**32 - 1),
}
"""Inclusive [low, high] of every integer field (fully qualified name)."""

DURATION_RANGES_MS: dict[str, tuple[int, int]] = {
    "barrage.v1.SlowMode.min_interval": (0, 3_600_000),
    "barrage.internal.v1.RoomCheckpoint.slow_mode": (0, 3_600_000),
    "barrage.v1.WatchInsightsRequest.interval": (0, 3_600_000),
    # Media time (server/core/media_clock.py): a stream's timeline, at most 366 days long.
    "barrage.v1.MediaClock.position": (0, MAX_AHEAD_S * 1000),
    "barrage.v1.MediaTime.position": (0, MAX_AHEAD_S * 1000),
}
"""Inclusive [low, high] in milliseconds of every Duration field."""


@dataclass(frozen=True, slots=True)
class _Check:
    name: str
    field: FieldDescriptor
    run: Callable[[object, str, float], None]


_PLAN: dict[str, tuple[_Check, ...]] = {}
"""Per message type: the checks its fields need (empty for a message of strings and bools)."""


def check_fields(message: Message, path: str = "", now_s: float | None = None) -> None:
    """Refuse the first number, time, duration or enum of `message` (and the messages it
    holds) that is out of its range: INVALID_FIELD with `path.field` in the metadata."""
    checks = _plan(message.DESCRIPTOR)  # type: ignore[arg-type]
    if not checks:
        return
    now = time.time() if now_s is None else now_s
    prefix = f"{path}." if path else ""
    for check in checks:
        field = check.field
        name = prefix + check.name
        if field.is_repeated:
            for value in getattr(message, check.name):
                check.run(value, name, now)
        elif not field.has_presence or message.HasField(check.name):
            check.run(getattr(message, check.name), name, now)


def _plan(descriptor: Descriptor) -> tuple[_Check, ...]:
    plan = _PLAN.get(descriptor.full_name)
    if plan is not None:
        return plan
    _PLAN[descriptor.full_name] = ()  # a message that holds itself stops here
    checks: list[_Check] = []
    for field in descriptor.fields:
        run = _field_check(field)
        if run is not None:
            checks.append(_Check(field.name, field, run))
    plan = _PLAN[descriptor.full_name] = tuple(checks)
    return plan


_INTS = frozenset({
    FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED32, FieldDescriptor.TYPE_SFIXED64,
})  # fmt: skip


def _field_check(field: FieldDescriptor) -> Callable[[object, str, float], None] | None:
    if field.type in _INTS:
        bounds = INT_RANGES.get(field.full_name)
        if bounds is None:
            return None  # tests/test_validation_generated.py insists every reachable one is listed
        low, high = bounds
        return lambda value, name, _now: _check_int(value, name, low, high)
    if field.type == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
        known = frozenset(field.enum_type.values_by_number)
        enum_name = field.enum_type.name
        return lambda value, name, _now: _check_enum(value, name, known, enum_name)
    sub = field.message_type
    if field.type != FieldDescriptor.TYPE_MESSAGE or sub is None:
        return None
    if sub.full_name == TIMESTAMP:
        return check_timestamp
    if sub.full_name == DURATION:
        low_ms, high_ms = DURATION_RANGES_MS.get(field.full_name, (0, 0))
        return lambda value, name, _now: _check_duration(value, name, low_ms, high_ms)
    if not _plan(sub):
        return None
    return check_fields  # type: ignore[return-value]


def _check_int(value: object, name: str, low: int, high: int) -> None:
    assert isinstance(value, int)
    if not low <= value <= high:
        raise invalid("INVALID_FIELD", f"{name} must be {low} to {high}, not {value}", name)


def _check_enum(value: object, name: str, known: frozenset[int], enum_name: str) -> None:
    if value not in known:
        raise invalid("INVALID_FIELD", f"{name}: {value} is not a known {enum_name} value", name)


def check_timestamp(value: object, name: str, now: float) -> None:
    """A valid Timestamp from 1970 to one year (MAX_AHEAD_S) after `now` (Unix seconds)."""
    seconds, nanos = value.seconds, value.nanos  # type: ignore[attr-defined]
    if not 0 <= nanos < NANOS_PER_S:
        raise invalid("INVALID_FIELD", f"{name}: nanos must be 0 to 999999999", name)
    latest = min(int(now) + MAX_AHEAD_S, TIMESTAMP_MAX_S)
    if not TIMESTAMP_MIN_S <= seconds <= latest:
        end = "9999-12-31T23:59:59Z" if latest == TIMESTAMP_MAX_S else "one year (366 days) from now"
        raise invalid("INVALID_FIELD", f"{name} must lie between 1970-01-01T00:00:00Z and {end}", name)


def _check_duration(value: object, name: str, low_ms: int, high_ms: int) -> None:
    seconds, nanos = value.seconds, value.nanos  # type: ignore[attr-defined]
    if not -NANOS_PER_S < nanos < NANOS_PER_S or (seconds > 0 > nanos) or (seconds < 0 < nanos):
        raise invalid("INVALID_FIELD", f"{name}: nanos must be within ±999999999 with the sign of seconds", name)
    millis = seconds * 1000 + int(nanos / 1_000_000)
    # Checked on the exact value: 1 h + 1 ns is more than 1 h.
    if not (low_ms * 1_000_000 <= seconds * NANOS_PER_S + nanos <= high_ms * 1_000_000):
        raise invalid("INVALID_FIELD", f"{name} must be {low_ms} to {high_ms} ms, not {millis} ms", name)
