"""Coupons (优惠券): batches dropped into a room, claims decided by the room's log.

Why the log decides: with several nodes accepting claims at the same moment, no node
can count alone. Every claim is appended to the room's log; every node folds the log
in the same order and applies the same rule (CouponBook.claim): the first `quantity`
valid claims win, at most `per_user_limit` per user, within the batch's window as
the claim's own publish_time says. So every node reaches the same decision for every
claim, and the claimer's node answers only once its fold has applied the claim's own
record (Gateway.decided), so the answer is the log's decision.

A claim id is derived from the room, the batch and the claim's log position: every
node names a winning claim the same way without sharing anything.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

from barrage.server.commerce import checkpoint_pb2
from barrage.server.core.errors import ApiError, Code, invalid
from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs

MAX_RETAINED_BATCHES = 3
"""Batches a room keeps (open or ended, with their claims, for VerifyCoupon and
RedeemCoupon): bounded so that a checkpoint stays well inside a Kafka record (3 ×
10,000 claims ≈ 0.8 MB at most). A new drop forgets the oldest ended batch."""
MAX_PRODUCT_IDS = 50
DECISIONS_KEPT = 20_000
"""Refused claims remembered by position (a retried send reads its decision here)."""

# Why a claim lost: ErrorInfo reasons (errors.proto) and their gRPC codes.
SOLD_OUT = "SOLD_OUT"
LIMIT_REACHED = "LIMIT_REACHED"
EXPIRED = "EXPIRED"
NOT_OPEN = "NOT_OPEN"
BANNED = "BANNED"
_MESSAGES = {
    SOLD_OUT: "every coupon of this batch has been claimed",
    LIMIT_REACHED: "you already claimed as many coupons of this batch as it allows",
    EXPIRED: "this batch's claim window has closed",
    NOT_OPEN: "no open coupon batch with this id",
    BANNED: "you are banned from this room",
}


def refusal(reason: str) -> ApiError:
    """The answer to a claim the log refused (or that is sure to be refused)."""
    code = Code.PERMISSION_DENIED if reason == BANNED else Code.FAILED_PRECONDITION
    return ApiError(code, reason, _MESSAGES[reason])


def claim_id(room_id: str, batch_id: str, position: int) -> str:
    """The id of the coupon won by the claim at `position` (the same on every node)."""
    digest = hashlib.sha256(f"coupon\x00{room_id}\x00{batch_id}\x00{position}".encode()).hexdigest()
    return f"cp_{digest[:24]}"


def _ms(ts: object) -> int:
    return int(ts.ToMilliseconds())  # type: ignore[attr-defined]


@dataclass
class Claim:
    claim_id: str
    batch_id: str
    user_id: str
    position: int
    time_ms: int
    order_id: str = ""


@dataclass
class Batch:
    dropped: event_pb2.CouponBatchDropped
    ended: bool = False
    claims: list[Claim] = field(default_factory=list)
    per_user: dict[str, int] = field(default_factory=dict)

    @property
    def remaining(self) -> int:
        return max(0, self.dropped.quantity - len(self.claims))

    def closed_reason(self, now_ms: int) -> str | None:
        """Why a claim made at now_ms is refused whoever makes it, if it is."""
        if self.remaining <= 0:
            return SOLD_OUT
        if self.ended or now_ms >= _ms(self.dropped.end_time):
            return EXPIRED
        if now_ms < _ms(self.dropped.start_time):
            return NOT_OPEN
        return None


@dataclass
class CouponBook:
    """A room's coupon batches and claims, as folded from its log (part of RoomState)."""

    room_id: str
    batches: OrderedDict[str, Batch] = field(default_factory=OrderedDict)
    by_claim_id: dict[str, Claim] = field(default_factory=dict)
    decisions: OrderedDict[int, str] = field(default_factory=OrderedDict)
    """Log position of a claim -> its claim id, or the reason it was refused."""

    # ------------------------------------------------------------------ fold

    def drop(self, dropped: event_pb2.CouponBatchDropped) -> None:
        if dropped.batch_id in self.batches:
            return  # a batch id is used once; a second drop changes nothing
        self.batches[dropped.batch_id] = Batch(dropped)
        while len(self.batches) > MAX_RETAINED_BATCHES:
            oldest = next((b for b in self.batches.values() if b.ended), None)
            if oldest is None:
                oldest = next(iter(self.batches.values()))
            self._forget(oldest.dropped.batch_id)

    def _forget(self, batch_id: str) -> None:
        batch = self.batches.pop(batch_id)
        for claim in batch.claims:
            self.by_claim_id.pop(claim.claim_id, None)

    def claim(self, position: int, user_id: str, batch_id: str, when_ms: int, banned: bool) -> str:
        """Decide the claim at `position`: its claim id, or the reason it lost."""
        batch = self.batches.get(batch_id)
        if batch is None:
            decision = NOT_OPEN
        elif banned:
            decision = BANNED
        else:
            decision = batch.closed_reason(when_ms) or (
                LIMIT_REACHED if batch.per_user.get(user_id, 0) >= batch.dropped.per_user_limit else ""
            )
            if not decision:
                claim = Claim(claim_id(self.room_id, batch_id, position), batch_id, user_id, position, when_ms)
                batch.claims.append(claim)
                batch.per_user[user_id] = batch.per_user.get(user_id, 0) + 1
                self.by_claim_id[claim.claim_id] = claim
                decision = claim.claim_id
        self.decisions[position] = decision
        if len(self.decisions) > DECISIONS_KEPT:
            self.decisions.popitem(last=False)
        return decision

    def end(self, batch_id: str) -> None:
        batch = self.batches.get(batch_id)
        if batch is not None:
            batch.ended = True

    def redeem(self, claim_id_: str, order_id: str) -> None:
        claim = self.by_claim_id.get(claim_id_)
        if claim is not None and not claim.order_id:
            claim.order_id = order_id  # the first redemption in log order counts

    # ------------------------------------------------------------- answers

    def decision(self, position: int, user_id: str, batch_id: str, now_ms: int) -> str:
        """The decision for the claim at `position` once folded. A decision no longer
        remembered (a very old retry) is that of a claim made now, which loses for the
        same reason (a batch never reopens) or, if it had won, is found by position."""
        found = self.decisions.get(position)
        if found is not None:
            return found
        batch = self.batches.get(batch_id)
        if batch is None:
            return NOT_OPEN
        for claim in batch.claims:
            if claim.position == position:
                return claim.claim_id
        reason = batch.closed_reason(now_ms)
        return reason or LIMIT_REACHED

    def precheck(self, user_id: str, batch_id: str, now_ms: int) -> None:
        """Refuse at once a claim the log is sure to refuse (what this node has folded
        is a prefix of the log: a sold-out or closed batch, or a user at its limit,
        stays so). Anything else is appended and decided by the fold."""
        batch = self.batches.get(batch_id)
        if batch is None:
            raise refusal(NOT_OPEN)
        reason = batch.closed_reason(now_ms)
        if reason is None and batch.per_user.get(user_id, 0) >= batch.dropped.per_user_limit:
            reason = LIMIT_REACHED
        if reason is not None:
            raise refusal(reason)

    def open_batches(self) -> list[Batch]:
        return [b for b in self.batches.values() if not b.ended]

    def snapshot(self, snap: rs.RoomSnapshot) -> None:
        for batch in self.open_batches():
            snap.coupon_batches.add(batch=batch.dropped, remaining=batch.remaining)

    # ---------------------------------------------------------- checkpoint

    def checkpoint(self, cp: checkpoint_pb2.RoomCheckpoint) -> None:
        for batch in self.batches.values():
            part = cp.coupon_batches.add(dropped=batch.dropped, ended=batch.ended)
            for claim in batch.claims:
                part.claim_positions.append(claim.position)
                part.claim_user_ids.append(claim.user_id)
                part.claim_times_ms.append(claim.time_ms)
                if claim.order_id:
                    part.redemptions.add(claim_position=claim.position, order_id=claim.order_id)

    @classmethod
    def from_checkpoint(cls, room_id: str, cp: checkpoint_pb2.RoomCheckpoint) -> CouponBook:
        book = cls(room_id)
        for part in cp.coupon_batches:
            if not len(part.claim_positions) == len(part.claim_user_ids) == len(part.claim_times_ms):
                raise ValueError("coupon batch checkpoint: claim lists differ in length")
            batch_id = part.dropped.batch_id
            batch = book.batches[batch_id] = Batch(part.dropped, part.ended)
            orders = {r.claim_position: r.order_id for r in part.redemptions}
            for position, user, at in zip(part.claim_positions, part.claim_user_ids, part.claim_times_ms, strict=True):
                claim = Claim(
                    claim_id(room_id, batch_id, position), batch_id, user, position, at, orders.get(position, "")
                )
                batch.claims.append(claim)
                batch.per_user[user] = batch.per_user.get(user, 0) + 1
                book.by_claim_id[claim.claim_id] = claim
        return book


# -------------------------------------------------------------------- ingest checks


def _require(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise invalid("INVALID_FIELD", message, field_name)


def check_drop(dropped: event_pb2.CouponBatchDropped, now_ms: int) -> None:
    """What a range cannot say about a batch (ranges are checked before this)."""
    from barrage.server.core import policy  # policy imports this module's kinds table

    where = "payload.coupon_batch_dropped"
    policy.check_client_id(dropped.batch_id, f"{where}.batch_id")
    policy.check_text(dropped.title, 200, f"{where}.title")
    _require(dropped.WhichOneof("discount") is not None, f"{where}.amount_off_minor", "amount_off_minor or percent_off")
    check_currency(dropped.currency, f"{where}.currency")
    _require(len(dropped.product_ids) <= MAX_PRODUCT_IDS, f"{where}.product_ids", f"at most {MAX_PRODUCT_IDS}")
    for product_id in dropped.product_ids:
        policy.check_client_id(product_id, f"{where}.product_ids")
    end = _ms(dropped.end_time)
    _require(dropped.HasField("end_time") and end > now_ms, f"{where}.end_time", "end_time must be in the future")
    _require(end > _ms(dropped.start_time), f"{where}.end_time", "end_time must be after start_time")
    if dropped.HasField("redeem_until"):
        _require(_ms(dropped.redeem_until) >= end, f"{where}.redeem_until", "redeem_until must not be before end_time")


def check_currency(currency: str, field_name: str) -> None:
    _require(
        len(currency) == 3 and currency.isascii() and currency.isalpha() and currency.isupper(),
        field_name,
        "currency must be an ISO 4217 code",
    )


def claimant(event: event_pb2.Event, named: str) -> str:
    """Whom a claim or grab is for: the sender, or the user a service named. (Ingest
    refuses anyone else naming a user; the fold does not trust that either.)"""
    if named and event.sender.role == event_pb2.ROLE_SERVICE:
        return named
    return event.sender.user_id
