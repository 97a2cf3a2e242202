"""Coupon rush (issue 17): thousands of viewer streams on three nodes claim at once.

Starts the test broker (Tansu) and three `barrage serve` nodes on one topic, drops a
batch of `--coupons` coupons (per-user limit `--limit`), opens `--claimers` viewer
streams spread over the nodes (each its own user, `--per-connection` streams sharing a
TCP connection), and once every stream has joined, each claims at the same moment;
`--double` of them claim twice at once. Then checks: exactly min(coupons, claimers)
claims won, no user above its limit, claim ids unique, the losers told SOLD_OUT or
LIMIT_REACHED, and an independent re-fold of ListEvents gives the same winners.
Prints one JSON line; exits 1 if anything is off.

    python -m barrage.loadtest.coupon_rush --claimers 5000 --coupons 1000

Not part of the test suite (thousands of streams on a small machine take a minute);
tests/test_coupons.py is the bounded version (150 streams and 4,400 service claims).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from barrage.server.core.cursor import parse_cursor
from barrage.v1 import event_pb2 as ev
from barrage.v1 import room_service_pb2 as rs
from tests.cluster import Cluster
from tests.kafka_broker import running_broker
from tests.wire_client import Admin, error_info

OK = 0


def at(seconds_from_now: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromMilliseconds(int((time.time() + seconds_from_now) * 1000))
    return ts


class Claimer:
    """One viewer stream: hello, join, wait for the start, claim (once or twice), read on."""

    def __init__(self, channel: grpc.aio.Channel, user: str, claims: int) -> None:
        connect = channel.stream_stream(
            "/barrage.v1.RoomService/Connect",
            request_serializer=rs.ConnectRequest.SerializeToString,
            response_deserializer=rs.ConnectResponse.FromString,
        )
        self.user = user
        self.claims = claims
        self.outgoing: asyncio.Queue[rs.ConnectRequest | None] = asyncio.Queue()
        self.call: Any = connect(self._requests())
        self.joined = asyncio.Event()
        self.answers: dict[str, rs.SendResult] = {}
        self.answered = asyncio.Event()
        self.sent_at = 0.0
        self.latencies: list[float] = []

    async def _requests(self) -> Any:
        while (item := await self.outgoing.get()) is not None:
            yield item

    async def run(self, token: str, room_id: str) -> None:
        self.outgoing.put_nowait(rs.ConnectRequest(hello=rs.Hello(token=token, client_agent="coupon-rush")))
        self.outgoing.put_nowait(rs.ConnectRequest(join_room=rs.JoinRoom(room_id=room_id)))
        async for response in self.call:
            for message in response.messages:
                kind = message.WhichOneof("kind")
                if kind == "join_result":
                    assert message.join_result.status.code == OK, message.join_result.status
                    self.joined.set()
                elif kind == "send_result":
                    self.answers[message.send_result.client_msg_id] = message.send_result
                    self.latencies.append(time.monotonic() - self.sent_at)
                    if len(self.answers) == self.claims:
                        self.answered.set()

    def claim(self, room_id: str, batch_id: str) -> None:
        self.sent_at = time.monotonic()
        for k in range(self.claims):
            payload = ev.Payload(coupon_claim=ev.CouponClaim(batch_id=batch_id))
            send = rs.Send(room_id=room_id, client_msg_id=f"{self.user}-{k}", payload=payload)
            self.outgoing.put_nowait(rs.ConnectRequest(send=send))

    def close(self) -> None:
        self.outgoing.put_nowait(None)
        self.call.cancel()


def claim_id_for(room_id: str, batch_id: str, cursor: str) -> str:
    position = parse_cursor(cursor).position
    return "cp_" + hashlib.sha256(f"coupon\x00{room_id}\x00{batch_id}\x00{position}".encode()).hexdigest()[:24]


async def rush(args: argparse.Namespace, cluster: Cluster) -> dict[str, Any]:
    room_id, batch_id = f"rush-{uuid.uuid4().hex[:8]}", "rush"
    admin = Admin(cluster[0].target, cluster.token("ops", role="service"))
    await admin.create_room(room_id, "Coupon rush", host_user_id="the-host")
    batch = ev.CouponBatchDropped(
        batch_id=batch_id, title="¥20 off", amount_off_minor=2000, currency="CNY", quantity=args.coupons,
        per_user_limit=args.limit, start_time=at(-1), end_time=at(3600),
    )  # fmt: skip
    await admin.publish(room_id, "drop", ev.Payload(coupon_batch_dropped=batch))
    channels = [
        grpc.aio.insecure_channel(cluster[i % 3].target)
        for i in range((args.claimers + args.per_connection - 1) // args.per_connection)
    ]
    claimers = [
        Claimer(channels[i // args.per_connection], f"user-{i}", 2 if i < args.double else 1)
        for i in range(args.claimers)
    ]
    runs = []
    started = time.monotonic()
    gate = asyncio.Semaphore(args.connect_concurrency)

    async def open_one(claimer: Claimer) -> None:
        async with gate:
            runs.append(asyncio.create_task(claimer.run(cluster.token(claimer.user), room_id)))
            await claimer.joined.wait()

    await asyncio.gather(*(open_one(c) for c in claimers))
    joined_s = time.monotonic() - started
    print(f"{args.claimers} streams joined in {joined_s:.1f} s; claiming", file=sys.stderr, flush=True)
    rush_started = time.monotonic()
    for claimer in claimers:
        claimer.claim(room_id, batch_id)
    await asyncio.wait_for(asyncio.gather(*(c.answered.wait() for c in claimers)), args.timeout)
    rush_s = time.monotonic() - rush_started
    print(f"every claim answered in {rush_s:.1f} s; checking the log", file=sys.stderr, flush=True)
    answers = [(c.user, a) for c in claimers for a in c.answers.values()]
    won = [(user, a.claim_id) for user, a in answers if a.status.code == OK]
    losses = Counter(error_info(a.status).reason for _, a in answers if a.status.code != OK)
    per_user = Counter(user for user, _ in won)
    history = await admin.all_events(room_id, "coupon_claim")
    taken: Counter[str] = Counter()
    refolded: dict[str, str] = {}
    for event in history:
        user = event.payload.coupon_claim.user_id or event.sender.user_id
        if sum(taken.values()) < args.coupons and taken[user] < args.limit:
            taken[user] += 1
            refolded[claim_id_for(room_id, batch_id, event.cursor)] = user
    latencies = sorted(lat for c in claimers for lat in c.latencies)
    for claimer in claimers:
        claimer.close()
    await asyncio.gather(*runs, return_exceptions=True)
    for channel in channels:
        await channel.close()
    await admin.close()
    expected_wins = min(args.coupons, args.claimers * args.limit)
    checks = {
        "exact_count": len(won) == expected_wins,
        "within_limit": max(per_user.values(), default=0) <= args.limit,
        "ids_unique": len({claim for _, claim in won}) == len(won),
        "losses_explained": set(losses) <= {"SOLD_OUT", "LIMIT_REACHED"},
        "log_agrees": dict((claim, user) for user, claim in won) == refolded,
    }
    return {
        "claimers": args.claimers,
        "claims": len(answers),
        "coupons": args.coupons,
        "won": len(won),
        "losses": dict(losses),
        "claim_events_in_log": len(history),
        "double_claimers_won": sum(1 for user in per_user if int(user.split("-")[1]) < args.double),
        "join_all_s": round(joined_s, 1),
        "answer_all_s": round(rush_s, 2),
        "answer_p50_ms": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
        "answer_p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 1) if latencies else None,
        "checks": checks,
        "ok": all(checks.values()),
    }


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m barrage.loadtest.coupon_rush", description=__doc__)
    p.add_argument("--claimers", type=int, default=5000)
    p.add_argument("--coupons", type=int, default=1000)
    p.add_argument("--limit", type=int, default=1)
    p.add_argument("--double", type=int, default=500, help="claimers that claim twice at once")
    p.add_argument("--per-connection", type=int, default=50, help="streams sharing one TCP connection")
    p.add_argument("--connect-concurrency", type=int, default=100)
    p.add_argument("--timeout", type=float, default=120.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_broker() as broker:
        # The rush is about claims: viewers get the server's default budget of normal events.
        env = {"BARRAGE_VIEWER_BUDGET_PER_S": "30"}
        cluster = Cluster(broker, Path(tmp), f"rush-{uuid.uuid4().hex[:8]}", 3, env=env)
        cluster.start()
        try:
            result = asyncio.run(rush(args, cluster))
        finally:
            cluster.stop()
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
