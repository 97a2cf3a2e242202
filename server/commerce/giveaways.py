"""Coupons and red packets wired into the node: the fold, ingest, answers decided by the
log, the ticker's closing and counting, and the admin API's verify and redeem.

The rules live in server/commerce/coupons.py and red_packets.py; this module is the
glue so that the shared hot files (state, interactions, gateway, ticker) only call in.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING

from barrage.server.auth import Identity
from barrage.server.commerce import coupons, lottery, red_packets
from barrage.server.core import dedupe_keys, policy
from barrage.server.core.cursor import encode_cursor, parse_cursor
from barrage.server.core.errors import ApiError, Code
from barrage.server.core.posts import Entry, Posted
from barrage.v1 import admin_service_pb2 as admin_pb
from barrage.v1 import event_pb2

if TYPE_CHECKING:
    from barrage.server.commerce.state import RoomState
    from barrage.server.core.gateway import Gateway
    from barrage.server.core.gateway_state import GatewayState

FOLDED_KINDS = frozenset({
    "coupon_batch_dropped", "coupon_claim", "coupon_batch_ended", "coupon_redeemed",
    "red_packet_sent", "red_packet_grab", "red_packet_finished",
})  # fmt: skip
POSTED_KINDS = frozenset({"coupon_batch_dropped", "coupon_claim", "red_packet_sent", "red_packet_grab"})
DECIDED_KINDS = frozenset({"coupon_claim", "red_packet_grab"})
"""Posts answered with the log's decision, after the node folded their own record."""
FOLD_WAIT_S = 10.0
"""How long a claim's answer waits for the node's fold to reach the claim (then
UNAVAILABLE LOG_UNAVAILABLE: retry with the same client_msg_id, which finds the claim)."""
CLOSE_GRACE_S = 2.0
"""A batch or packet is closed this long after its end time, once the node has folded
the log up to its head: a claim or grab accepted just before the end is in the log by
then (an append takes milliseconds), so the closing summary includes it."""
REMAINING_EVERY_S = 1.0


class FoldWaits:
    """Futures waiting for a room's fold to reach a log position."""

    def __init__(self) -> None:
        self._waits: dict[str, list[tuple[int, int, asyncio.Future[None]]]] = {}
        self._order = itertools.count()

    async def wait(self, room_id: str, position: int, state: RoomState | None, limit_s: float) -> None:
        if state is not None and state.position >= position:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waits.setdefault(room_id, []), (position, next(self._order), future))
        try:
            await asyncio.wait_for(asyncio.shield(future), limit_s)
        except TimeoutError:
            raise ApiError(
                Code.UNAVAILABLE, "LOG_UNAVAILABLE", "the claim is in the log but was not read back in time; retry"
            ) from None

    def reached(self, room_id: str, position: int) -> None:
        waits = self._waits.get(room_id)
        if not waits:
            return
        while waits and waits[0][0] <= position:
            future = heapq.heappop(waits)[2]
            if not future.done():
                future.set_result(None)
        if not waits:
            del self._waits[room_id]


# ------------------------------------------------------------------------- the fold


def fold(state: RoomState, position: int, event: event_pb2.Event, kind: str, when_ms: int) -> None:
    """Apply one coupon or red packet event to the room's state (in log order)."""
    payload = event.payload
    if kind == "coupon_batch_dropped":
        state.coupons.drop(payload.coupon_batch_dropped)
    elif kind == "coupon_claim":
        user = coupons.claimant(event, payload.coupon_claim.user_id)
        state.coupons.claim(position, user, payload.coupon_claim.batch_id, when_ms, user in state.banned)
    elif kind == "coupon_batch_ended":
        state.coupons.end(payload.coupon_batch_ended.batch_id)
    elif kind == "coupon_redeemed":
        state.coupons.redeem(payload.coupon_redeemed.claim_id, payload.coupon_redeemed.order_id)
    elif kind == "red_packet_sent":
        state.red_packets.send(payload.red_packet_sent)
    elif kind == "red_packet_grab":
        user = coupons.claimant(event, payload.red_packet_grab.user_id)
        state.red_packets.grab(position, user, payload.red_packet_grab.packet_id, when_ms, user in state.banned)
    elif kind == "red_packet_finished":
        state.red_packets.finish(payload.red_packet_finished.packet_id)


# -------------------------------------------------------------------------- ingest


def prepare(
    state: RoomState | None, who: Identity, room_id: str, kind: str, payload: event_pb2.Payload, own_key: str,
    now_ms: int, standing: str, secret: bytes,
) -> Entry:  # fmt: skip
    """The entry for a coupon or red packet post (Interactions.prepare calls in)."""
    if state is None:
        raise ApiError(Code.FAILED_PRECONDITION, "NOT_OPEN", "the room's state is not available")
    priority = policy.PRIORITY[kind]
    if kind == "coupon_batch_dropped":
        dropped = payload.coupon_batch_dropped
        coupons.check_drop(dropped, now_ms)
        if dropped.batch_id in state.coupons.batches:
            raise ApiError(Code.ALREADY_EXISTS, "ALREADY_DONE", f"batch {dropped.batch_id!r} was already dropped")
        if len(state.coupons.open_batches()) >= coupons.MAX_RETAINED_BATCHES:
            raise _too_many("coupon batches", coupons.MAX_RETAINED_BATCHES)
        return Entry(payload, priority, dedupe_keys.server_key("coupon-drop", dropped.batch_id))
    if kind == "red_packet_sent":
        sent = payload.red_packet_sent
        red_packets.check_send(sent, now_ms)
        if sent.packet_id in state.red_packets.packets or sent.packet_id in state.red_packets.finished:
            raise ApiError(Code.ALREADY_EXISTS, "ALREADY_DONE", f"red packet {sent.packet_id!r} was already sent")
        if len(state.red_packets.packets) >= red_packets.MAX_OPEN:
            raise _too_many("red packets", red_packets.MAX_OPEN)
        payload = event_pb2.Payload()
        payload.red_packet_sent.CopyFrom(sent)
        seed = red_packets.seed_for(secret, room_id, sent.packet_id)
        payload.red_packet_sent.commitment = "" if sent.equal_split else lottery.commitment(seed)
        return Entry(payload, priority, dedupe_keys.server_key("red-packet", sent.packet_id))
    body = payload.coupon_claim if kind == "coupon_claim" else payload.red_packet_grab
    field = f"payload.{kind}.user_id"
    if body.user_id:
        policy.check_client_id(body.user_id, field)
        if body.user_id != who.user_id and standing != policy.S_SERVICE:
            raise ApiError(
                Code.PERMISSION_DENIED,
                "ROLE_FORBIDDEN",
                "only a service may claim or grab for another user",
                metadata={"action": f"post:{kind}", "role": policy.role_name(who.role), "standing": standing},
            )
    user = body.user_id or who.user_id
    if user in state.banned:
        raise ApiError(Code.PERMISSION_DENIED, "BANNED", "this user is banned from this room")
    if kind == "coupon_claim":
        policy.check_client_id(payload.coupon_claim.batch_id, "payload.coupon_claim.batch_id")
        state.coupons.precheck(user, payload.coupon_claim.batch_id, now_ms)
        return Entry(payload, priority, own_key)
    packet_id = payload.red_packet_grab.packet_id
    policy.check_client_id(packet_id, "payload.red_packet_grab.packet_id")
    state.red_packets.precheck(user, packet_id, now_ms)
    # One grab per user, also when two nodes accept the same user's grabs at once.
    return Entry(payload, priority, dedupe_keys.server_key("red-packet-grab", packet_id, user))


def _too_many(what: str, limit: int) -> ApiError:
    return ApiError(
        Code.RESOURCE_EXHAUSTED,
        "TOO_MANY_OPEN",
        f"a room has at most {limit} open {what}",
        metadata={"max": str(limit)},
    )


# ------------------------------------------------------------------------- answers


async def settle(
    gateway: GatewayState, room_id: str, payloads: Sequence[event_pb2.Payload], results: list[Posted | ApiError | None]
) -> None:
    """Replace the result of each appended claim or grab with the log's decision, once
    this node's fold has applied the claim's own record."""
    for i, (payload, outcome) in enumerate(zip(payloads, results, strict=True)):
        kind = payload.WhichOneof("kind")
        if kind not in DECIDED_KINDS or not isinstance(outcome, Posted) or not outcome.cursor:
            continue
        position = parse_cursor(outcome.cursor).position
        try:
            await gateway.fold_waits.wait(room_id, position, gateway.states.get(room_id), FOLD_WAIT_S)
        except ApiError as err:
            results[i] = err
            continue
        state = gateway.states.get(room_id)
        if state is None:
            results[i] = ApiError(Code.UNAVAILABLE, "LOG_UNAVAILABLE", "the room was left while deciding; retry")
            continue
        now_ms = int(time.time() * 1000)
        if kind == "coupon_claim":
            claim = payload.coupon_claim
            decision = state.coupons.decision(position, claim.user_id, claim.batch_id, now_ms)
            if decision.startswith("cp_"):
                results[i] = Posted(outcome.cursor, outcome.event_id, outcome.duplicate, claim_id=decision)
            else:
                results[i] = coupons.refusal(decision)
        else:
            reason, index = state.red_packets.decisions.get(position, (red_packets.EXPIRED, -1))
            sent = state.red_packets.sent(reason) if index >= 0 else None
            if sent is None:
                results[i] = red_packets.refusal(reason if index < 0 else red_packets.EXPIRED)
                continue
            amount = red_packets.share_of(gateway.interactions.lottery_secret, room_id, sent, index)
            grabbed = event_pb2.Money(amount_minor=amount, currency=sent.currency)
            results[i] = Posted(outcome.cursor, outcome.event_id, outcome.duplicate, grabbed=grabbed)


# -------------------------------------------------------------------------- ticker


def ticker_jobs(
    gateway: Gateway, room_id: str, state: RoomState, now: float, seen: dict[str, tuple[float, int]]
) -> list[Awaitable[object]]:
    """Close batches and packets that sold out or ended; publish remaining counts.
    `seen`: "room/batch" -> (when, claimed) of the last count this node published."""
    jobs: list[Awaitable[object]] = []
    now_ms = int(now * 1000)
    grace_ms = int(CLOSE_GRACE_S * 1000)
    open_keys = {f"{room_id}/{b.dropped.batch_id}" for b in state.coupons.open_batches()}
    for key in [k for k in seen if k.startswith(f"{room_id}/") and k not in open_keys]:
        del seen[key]  # a batch that ended (room ids have no "/": one room's keys only)
    for batch in state.coupons.open_batches():
        batch_id = batch.dropped.batch_id
        sold_out = batch.remaining <= 0
        if sold_out or now_ms >= batch.dropped.end_time.ToMilliseconds() + grace_ms:
            jobs.append(_close_batch(gateway, room_id, batch_id, sold_out))
            continue
        key = f"{room_id}/{batch_id}"
        last = seen.get(key)
        claimed = len(batch.claims)
        if (last is None or last[1] != claimed) and (last is None or now - last[0] >= REMAINING_EVERY_S):
            seen[key] = (now, claimed)
            left = event_pb2.CouponRemaining(batch_id=batch_id, remaining=batch.remaining, claimed=claimed)
            payload = event_pb2.Payload(coupon_remaining=left)
            jobs.append(gateway.post_system(room_id, "coupon_remaining", payload, f"coupon-left:{batch_id}:{now_ms}"))
    for packet_id, packet in list(state.red_packets.packets.items()):
        full = len(packet.grabbers) >= packet.sent.count
        if full or now_ms >= packet.sent.end_time.ToMilliseconds() + grace_ms:
            jobs.append(_close_packet(gateway, room_id, packet_id))
    return jobs


async def caught_up(gateway: GatewayState, room_id: str) -> RoomState | None:
    """The room's state once this node has folded everything in the log now."""
    head = await gateway.room_log.head(room_id)
    if head is not None:
        await gateway.fold_waits.wait(room_id, head, gateway.states.get(room_id), FOLD_WAIT_S)
    return gateway.states.get(room_id)


async def _close_batch(gateway: Gateway, room_id: str, batch_id: str, sold_out: bool) -> None:
    state = await caught_up(gateway, room_id) if not sold_out else gateway.states.get(room_id)
    batch = state.coupons.batches.get(batch_id) if state is not None else None
    if batch is None or batch.ended:
        return
    ended = event_pb2.CouponBatchEnded(batch_id=batch_id, sold_out=batch.remaining <= 0, claimed=len(batch.claims))
    await gateway.post_system(
        room_id, "coupon_batch_ended", event_pb2.Payload(coupon_batch_ended=ended), f"coupon-end:{batch_id}"
    )


async def _close_packet(gateway: Gateway, room_id: str, packet_id: str) -> None:
    state = await caught_up(gateway, room_id)
    packet = state.red_packets.packets.get(packet_id) if state is not None else None
    if packet is None:
        return
    finished = red_packets.summary(gateway.interactions.lottery_secret, room_id, packet)
    payload = event_pb2.Payload(red_packet_finished=finished)
    await gateway.post_system(room_id, "red_packet_finished", payload, f"red-packet-end:{packet_id}")


# ----------------------------------------------------------------------- admin API


def _record(gateway: Gateway, room_id: str, claim: coupons.Claim, batch: coupons.Batch) -> admin_pb.CouponClaimRecord:
    record = admin_pb.CouponClaimRecord(
        claim_id=claim.claim_id,
        batch_id=claim.batch_id,
        user_id=claim.user_id,
        cursor=encode_cursor(gateway.epoch(room_id), claim.position),
        redeemed=bool(claim.order_id),
        order_id=claim.order_id,
        batch=batch.dropped,
    )
    record.claim_time.FromMilliseconds(claim.time_ms)
    return record


def _find(state: RoomState, claim_id: str) -> tuple[coupons.Claim, coupons.Batch]:
    claim = state.coupons.by_claim_id.get(claim_id)
    batch = state.coupons.batches.get(claim.batch_id) if claim is not None else None
    if claim is None or batch is None:
        raise ApiError(Code.NOT_FOUND, "CLAIM_NOT_FOUND", "this room has no claimed coupon with this id")
    return claim, batch


async def verify(gateway: Gateway, who: Identity, room_id: str, claim_id: str) -> admin_pb.CouponClaimRecord:
    await gateway.authority(who, room_id, "verify_coupon")
    policy.check_client_id(claim_id, "claim_id")
    state = await gateway.state_of(room_id)
    claim, batch = _find(state, claim_id)
    return _record(gateway, room_id, claim, batch)


async def redeem(
    gateway: Gateway, who: Identity, room_id: str, claim_id: str, order_id: str
) -> admin_pb.CouponClaimRecord:
    """Redeem a claim on an order: a CouponRedeemed event in the room's log, so every
    node agrees; the first redemption in log order counts, a repeat on the same order
    answers the same."""
    await gateway.authority(who, room_id, "redeem_coupon")
    policy.check_client_id(claim_id, "claim_id")
    policy.check_client_id(order_id, "order_id")
    state = await gateway.state_of(room_id)
    claim, batch = _find(state, claim_id)
    if not claim.order_id:
        dropped = batch.dropped
        if dropped.HasField("redeem_until") and time.time() * 1000 >= dropped.redeem_until.ToMilliseconds():
            raise ApiError(Code.FAILED_PRECONDITION, "EXPIRED", "this coupon can no longer be redeemed")
        payload = event_pb2.Payload(coupon_redeemed=event_pb2.CouponRedeemed(claim_id=claim_id, order_id=order_id))
        entry = Entry(payload, policy.PRIORITY["coupon_redeemed"], dedupe_keys.server_key("coupon-redeem", claim_id))
        (posted,) = await gateway.append(who, room_id, [entry], [""], [("", "")])
        position = parse_cursor(posted.cursor).position
        if room_id in gateway.states:
            await gateway.fold_waits.wait(room_id, position, gateway.states.get(room_id), FOLD_WAIT_S)
        state = await gateway.state_of(room_id, reread=True)  # a closed room's: read from its log
        claim, batch = _find(state, claim_id)
    if claim.order_id != order_id:
        raise ApiError(
            Code.FAILED_PRECONDITION,
            "ALREADY_REDEEMED",
            "this coupon was already redeemed on another order",
            metadata={"order_id": claim.order_id},
        )
    return _record(gateway, room_id, claim, batch)
