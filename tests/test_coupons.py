"""Coupons (优惠券) and red packets (红包/福袋), over real gRPC (docs/commerce.md "Coupons",
"Red packets").

What is proven here:
- a claim's answer is the room log's decision: the first `quantity` valid claims in log
  order win, at most `per_user_limit` per user, within the window; with three nodes on
  one Kafka topic and 5,000 claims for 1,000 coupons exactly 1,000 win, no user beyond
  its limit, claim ids unique, every node agrees, and an independent re-fold of the
  room's history finds the same winners;
- abuse: a double claim, a claim after sold out or after expiry, a claim for another
  user, a viewer dropping a batch, bad values;
- redeeming is idempotent and logged; verify finds the claim on any node;
- a red packet's random split is fixed by its commitment and recomputed here by an
  independent implementation; shares are >= 1 minor unit and add up exactly; one grab
  per user; an equal split and an expiry; grabbers are told their share and the room
  gets the summary.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.rpc import status_pb2

from barrage.server.commerce import checkpoint_pb2
from barrage.server.commerce.state import RoomState
from barrage.v1 import admin_service_pb2 as admin_pb
from barrage.v1 import event_pb2 as ev
from barrage.v1 import room_service_pb2 as rs
from tests.cluster import Cluster, connect, eventually
from tests.kafka_broker import running_broker
from tests.server_process import ServerProcess
from tests.wire_client import Admin, RawStream, error_info

OK = 0
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION.value[0]
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED.value[0]
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
ALREADY_EXISTS = grpc.StatusCode.ALREADY_EXISTS.value[0]
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
HOST = "the-host"


def at(seconds_from_now: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromMilliseconds(int((time.time() + seconds_from_now) * 1000))
    return ts


def drop(batch_id: str, quantity: int, limit: int = 1, end_s: float = 120, **fields: object) -> ev.Payload:
    batch = ev.CouponBatchDropped(
        batch_id=batch_id,
        title="¥20 off orders over ¥199",
        amount_off_minor=2000,
        currency="CNY",
        min_spend_minor=19_900,
        product_ids=["p-1"],
        quantity=quantity,
        per_user_limit=limit,
        start_time=at(-1),
        end_time=at(end_s),
    )
    for name, value in fields.items():
        setattr(batch, name, value)
    return ev.Payload(coupon_batch_dropped=batch)


def claim(batch_id: str, user_id: str = "") -> ev.Payload:
    return ev.Payload(coupon_claim=ev.CouponClaim(batch_id=batch_id, user_id=user_id))


def packet(packet_id: str, total: int, count: int, end_s: float = 60, equal: bool = False) -> ev.Payload:
    sent = ev.RedPacketSent(
        packet_id=packet_id,
        title="Thanks for watching!",
        total_minor=total,
        currency="CNY",
        count=count,
        equal_split=equal,
        end_time=at(end_s),
    )
    return ev.Payload(red_packet_sent=sent)


def grab(packet_id: str, user_id: str = "") -> ev.Payload:
    return ev.Payload(red_packet_grab=ev.RedPacketGrab(packet_id=packet_id, user_id=user_id))


def reason(result: rs.SendResult) -> str:
    return str(error_info(result.status).reason)


async def post(stream: RawStream, room_id: str, payload: ev.Payload, msg_id: str = "") -> rs.SendResult:
    msg_id = msg_id or uuid.uuid4().hex
    await stream.send(rs.ConnectRequest(send=rs.Send(room_id=room_id, client_msg_id=msg_id, payload=payload)))
    return await stream.send_result(msg_id, timeout=30)


async def wait_for(
    stream: RawStream, room_id: str, found: Callable[[list[ev.Event]], bool], timeout: float = 15.0
) -> list[ev.Event]:
    """The stream's events of the room once `found` holds for them."""
    async with asyncio.timeout(timeout):
        while not found(events := stream.events(room_id)):
            await asyncio.sleep(0.05)
    return events


def rpc_reason(err: grpc.aio.AioRpcError) -> str:
    """The ErrorInfo reason of a failed unary call."""
    details = dict(err.trailing_metadata() or ())["grpc-status-details-bin"]
    return str(error_info(status_pb2.Status.FromString(details)).reason)


def snapshot_of(stream: RawStream) -> rs.RoomSnapshot:
    results = [m.join_result for m in stream.received if m.WhichOneof("kind") == "join_result"]
    return results[-1].snapshot


class Room:
    """A room on one embedded node, owned by HOST, with streams opened on demand."""

    def __init__(self, server: ServerProcess, room_id: str, admin: Admin) -> None:
        self.server = server
        self.room_id = room_id
        self.admin = admin
        self.streams: list[RawStream] = []

    async def join(self, user: str, role: str = "viewer") -> RawStream:
        stream = await connect(self.server.target, self.server.token(user, role=role, name=user), self.room_id)
        self.streams.append(stream)
        return stream

    async def close(self) -> None:
        for stream in self.streams:
            await stream.close()
        await self.admin.close()


@pytest.fixture
async def room(server: ServerProcess, room_id: str) -> AsyncIterator[Room]:
    admin = Admin(server.target, server.token("order-service", role="service"))
    await admin.create_room(room_id, "Coupon night", host_user_id=HOST)
    opened = Room(server, room_id, admin)
    yield opened
    await opened.close()


# ============================================================== coupons, one node


async def test_a_claim_is_answered_with_its_claim_id_and_a_late_joiner_sees_what_is_left(room: Room) -> None:
    host = await room.join(HOST, "host")
    assert (await post(host, room.room_id, drop("b1", quantity=3))).status.code == OK
    alice = await room.join("alice")
    won = await post(alice, room.room_id, claim("b1"))
    assert won.status.code == OK, won.status
    assert won.claim_id.startswith("cp_") and won.cursor
    record = (await room.admin.stub.VerifyCoupon(
        admin_pb.VerifyCouponRequest(room_id=room.room_id, claim_id=won.claim_id), metadata=room.admin.metadata
    )).claim  # fmt: skip
    assert (record.user_id, record.batch_id, record.redeemed) == ("alice", "b1", False)
    assert record.cursor == won.cursor and record.batch.amount_off_minor == 2000
    late = await room.join("late")
    (batch,) = snapshot_of(late).coupon_batches
    assert (batch.batch.batch_id, batch.remaining) == ("b1", 2)


async def test_claims_abuse_double_claim_sold_out_expired_other_user_and_viewer_drop(room: Room) -> None:
    host = await room.join(HOST, "host")
    viewer = await room.join("mallory")
    # A viewer (or a host of another room) may not drop a batch.
    refused = await post(viewer, room.room_id, drop("fake", quantity=100))
    assert refused.status.code == PERMISSION_DENIED and reason(refused) == "ROLE_FORBIDDEN"
    assert (await post(host, room.room_id, drop("b1", quantity=2, limit=1))).status.code == OK
    # Double claim: the user's limit is 1.
    assert (await post(viewer, room.room_id, claim("b1"))).status.code == OK
    again = await post(viewer, room.room_id, claim("b1"))
    assert again.status.code == FAILED_PRECONDITION and reason(again) == "LIMIT_REACHED"
    # Claiming for another user: only a service may.
    forged = await post(viewer, room.room_id, claim("b1", user_id="bob"))
    assert forged.status.code == PERMISSION_DENIED and reason(forged) == "ROLE_FORBIDDEN"
    service = await room.join("coupon-center", "service")
    for_bob = await post(service, room.room_id, claim("b1", user_id="bob"))
    assert for_bob.status.code == OK and for_bob.claim_id
    # Sold out: both coupons are gone.
    carol = await room.join("carol")
    late = await post(carol, room.room_id, claim("b1"))
    assert late.status.code == FAILED_PRECONDITION and reason(late) == "SOLD_OUT"
    # No such batch; an expired batch.
    missing = await post(carol, room.room_id, claim("nope"))
    assert missing.status.code == FAILED_PRECONDITION and reason(missing) == "NOT_OPEN"
    assert (await post(host, room.room_id, drop("short", quantity=5, end_s=0.6))).status.code == OK
    await asyncio.sleep(0.8)
    expired = await post(carol, room.room_id, claim("short"))
    assert expired.status.code == FAILED_PRECONDITION and reason(expired) == "EXPIRED"
    # The room is told the batch ended (sold out), critical, with the count.
    ended = await wait_for(
        viewer, room.room_id, lambda es: any(e.payload.coupon_batch_ended.batch_id == "b1" for e in es)
    )
    (b1_end,) = [e for e in ended if e.payload.coupon_batch_ended.batch_id == "b1"]
    assert b1_end.payload.coupon_batch_ended.sold_out and b1_end.payload.coupon_batch_ended.claimed == 2
    assert b1_end.priority == ev.PRIORITY_CRITICAL


async def test_two_claims_sent_at_once_by_one_user_win_once(room: Room) -> None:
    host = await room.join(HOST, "host")
    assert (await post(host, room.room_id, drop("b1", quantity=10, limit=1))).status.code == OK
    fan = await room.join("fan")
    for k in range(2):  # both sent before either is answered: they reach the log together
        send = rs.Send(room_id=room.room_id, client_msg_id=f"c{k}", payload=claim("b1"))
        await fan.send(rs.ConnectRequest(send=send))
    first, second = [await fan.send_result(f"c{k}") for k in range(2)]
    assert first.status.code == OK and first.claim_id
    assert second.status.code == FAILED_PRECONDITION and reason(second) == "LIMIT_REACHED"


BAD_BATCHES: list[tuple[str, object, str]] = [
    ("quantity", 0, "quantity"),
    ("quantity", 10_001, "quantity"),
    ("per_user_limit", 0, "per_user_limit"),
    ("percent_off", 100, "percent_off"),
    ("amount_off_minor", -5, "amount_off_minor"),
    ("currency", "yuan", "currency"),
    ("title", " ", "title"),
    ("end_time", -10.0, "end_time"),
    ("redeem_until", 5.0, "redeem_until"),  # before the end time
    ("product_ids", ["ok", "bad id"], "product_ids"),
]


async def test_a_batch_with_a_bad_value_is_refused_naming_the_field(room: Room) -> None:
    host = await room.join(HOST, "host")
    for name, value, field in BAD_BATCHES:
        payload = drop("bad", quantity=10)
        target = payload.coupon_batch_dropped
        if isinstance(value, float):
            getattr(target, name).CopyFrom(at(value))
        elif isinstance(value, list):
            getattr(target, name)[:] = value
        else:
            setattr(target, name, value)
        refused = await post(host, room.room_id, payload)
        assert refused.status.code == INVALID_ARGUMENT, (name, value, refused.status)
        assert error_info(refused.status).metadata["field"] == f"payload.coupon_batch_dropped.{field}"


async def test_redeeming_is_idempotent_logged_and_for_services_only(room: Room) -> None:
    host = await room.join(HOST, "host")
    assert (await post(host, room.room_id, drop("b1", quantity=5))).status.code == OK
    alice = await room.join("alice")
    won = await post(alice, room.room_id, claim("b1"))
    stub, metadata = room.admin.stub, room.admin.metadata

    async def redeem(order_id: str, who: tuple[tuple[str, str], ...] = metadata) -> admin_pb.RedeemCouponResponse:
        request = admin_pb.RedeemCouponRequest(room_id=room.room_id, claim_id=won.claim_id, order_id=order_id)
        response: admin_pb.RedeemCouponResponse = await stub.RedeemCoupon(request, metadata=who)
        return response

    first = await redeem("order-1")
    assert first.claim.redeemed and first.claim.order_id == "order-1"
    assert (await redeem("order-1")).claim == first.claim  # twice: the same answer
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await redeem("order-2")
    assert other.value.code() == grpc.StatusCode.FAILED_PRECONDITION and rpc_reason(other.value) == "ALREADY_REDEEMED"
    viewer_token = (("authorization", f"Bearer {room.server.token('alice')}"),)
    with pytest.raises(grpc.aio.AioRpcError) as forbidden:
        await redeem("order-3", viewer_token)
    assert (
        forbidden.value.code() == grpc.StatusCode.PERMISSION_DENIED and rpc_reason(forbidden.value) == "ROLE_FORBIDDEN"
    )
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.VerifyCoupon(
            admin_pb.VerifyCouponRequest(room_id=room.room_id, claim_id="cp_nope"), metadata=metadata
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND and rpc_reason(unknown.value) == "CLAIM_NOT_FOUND"
    # The redemption is an event of the room's log: once, whatever the retries.
    redeemed = await room.admin.all_events(room.room_id, "coupon_redeemed")
    assert [(e.payload.coupon_redeemed.claim_id, e.payload.coupon_redeemed.order_id) for e in redeemed] == [
        (won.claim_id, "order-1")
    ]
    # Coupons are used after the show: a claim is still redeemed once the room closed.
    bob = await room.join("bob")
    kept = await post(bob, room.room_id, claim("b1"))
    await room.admin.close_room(room.room_id)
    request = admin_pb.RedeemCouponRequest(room_id=room.room_id, claim_id=kept.claim_id, order_id="order-9")
    after = (await stub.RedeemCoupon(request, metadata=metadata)).claim
    assert (after.user_id, after.redeemed, after.order_id) == ("bob", True, "order-9")
    again_after = (await stub.RedeemCoupon(request, metadata=metadata)).claim
    assert again_after == after


async def test_the_remaining_count_is_published_as_an_ephemeral_update(room: Room) -> None:
    host = await room.join(HOST, "host")
    assert (await post(host, room.room_id, drop("b1", quantity=10, limit=5))).status.code == OK
    fan = await room.join("fan")
    for _ in range(3):
        assert (await post(fan, room.room_id, claim("b1"))).status.code == OK

    def left(events: list[ev.Event]) -> bool:
        return any(e.payload.coupon_remaining.remaining == 7 for e in events)

    events = await wait_for(fan, room.room_id, left)
    updates = [e for e in events if e.payload.WhichOneof("kind") == "coupon_remaining"]
    assert updates and all(e.priority == ev.PRIORITY_EPHEMERAL for e in updates)
    assert updates[-1].payload.coupon_remaining.claimed == 3


async def test_the_python_sdk_acks_carry_the_claim_id_and_the_share(room: Room) -> None:
    from barrage.clients.sdk import Client, SendError

    host = await room.join(HOST, "host")
    assert (await post(host, room.room_id, drop("b1", quantity=1))).status.code == OK
    assert (await post(host, room.room_id, packet("rp", total=500, count=2, equal=True))).status.code == OK
    async with Client(room.server.target, room.server.token("sdk-user")) as app:
        await app.join(room.room_id)
        ack = await app.send_payload(room.room_id, claim("b1"))
        assert ack.claim_id.startswith("cp_")
        share = await app.send_payload(room.room_id, grab("rp"))
        assert share.grabbed is not None and (share.grabbed.amount_minor, share.grabbed.currency) == (250, "CNY")
        with pytest.raises(SendError) as refused:
            await app.send_payload(room.room_id, claim("b1"))
        assert refused.value.reason == "SOLD_OUT"


def test_a_checkpoint_keeps_batches_claims_redemptions_and_red_packets() -> None:
    state = RoomState("r1")
    sender = ev.Sender(user_id="svc", role=ev.ROLE_SERVICE)

    def event(payload: ev.Payload) -> ev.Event:
        return ev.Event(room_id="r1", sender=sender, publish_time=at(0), payload=payload)

    state.fold(0, event(drop("b1", quantity=3, limit=2)))
    state.fold(1, event(claim("b1", "u1")))
    state.fold(2, event(claim("b1", "u1")))
    state.fold(3, event(claim("b1", "u1")))  # over the limit
    won = state.coupons.decisions[1]
    state.fold(4, event(ev.Payload(coupon_redeemed=ev.CouponRedeemed(claim_id=won, order_id="o-1"))))
    state.fold(5, event(packet("p1", 100, 3)))
    state.fold(6, event(grab("p1", "u2")))
    cp = checkpoint_pb2.RoomCheckpoint.FromString(state.checkpoint("e").SerializeToString())
    restored = RoomState.from_checkpoint("r1", cp)
    assert state.coupons.decisions[3] == "LIMIT_REACHED"
    assert restored.coupons.by_claim_id[won].order_id == "o-1"
    assert restored.coupons.batches["b1"].per_user == {"u1": 2}
    assert restored.coupons.batches["b1"].remaining == 1
    assert restored.red_packets.packets["p1"].grabbers == ["u2"]
    # A restored node decides the next claims as the original does.
    for st in (state, restored):
        st.fold(7, event(claim("b1", "u1")))
        st.fold(8, event(claim("b1", "u3")))
        st.fold(9, event(claim("b1", "u4")))
    assert [restored.coupons.decisions[p] for p in (7, 8, 9)] == [state.coupons.decisions[p] for p in (7, 8, 9)]
    assert restored.coupons.decisions[9] == "SOLD_OUT"


def test_the_fold_skips_a_red_packet_it_cannot_split_and_goes_on() -> None:
    """Ingest refuses a total below the count; a log written around it must not fail the room."""
    state = RoomState("r1")
    sender = ev.Sender(user_id="svc", role=ev.ROLE_SERVICE)

    def event(payload: ev.Payload) -> ev.Event:
        return ev.Event(room_id="r1", sender=sender, publish_time=at(0), payload=payload)

    state.fold(0, event(packet("bad", total=3, count=5)))
    state.fold(1, event(grab("bad", "u1")))
    state.fold(2, event(packet("good", total=10, count=2)))
    state.fold(3, event(grab("good", "u1")))
    assert "bad" not in state.red_packets.packets and state.red_packets.decisions[1] == ("NOT_OPEN", -1)
    assert state.red_packets.decisions[3] == ("good", 0) and state.position == 3


# ========================================================== red packets, one node


def independent_shares(seed_hex: str, total: int, count: int) -> list[int]:
    """RedPacketFinished's algorithm, written again from its proto comment."""
    seed = bytes.fromhex(seed_hex)
    rest = total - count
    weights = []
    for i in range(count):
        digest = hashlib.sha256(seed + str(i).encode("utf-8")).digest()
        weights.append(1 + int(digest.hex(), 16) % 1_000_000)
    floors = [(rest * w) // sum(weights) for w in weights]
    remainder = rest - sum(floors)
    return [1 + f + (1 if i < remainder else 0) for i, f in enumerate(floors)]


async def test_a_random_red_packet_is_verifiable_exact_and_one_grab_per_user(room: Room) -> None:
    host = await room.join(HOST, "host")
    sent = await post(host, room.room_id, packet("rp1", total=1000, count=5))
    assert sent.status.code == OK
    watcher = await room.join("watcher")
    told: dict[str, int] = {}
    refused: list[str] = []
    for i in range(7):
        user = f"fan-{i}"
        stream = await room.join(user)
        result = await post(stream, room.room_id, grab("rp1"))
        if result.status.code == OK:
            told[user] = result.grabbed.amount_minor
            assert result.grabbed.currency == "CNY"
            again = await post(stream, room.room_id, grab("rp1"))
            assert again.status.code == ALREADY_EXISTS and reason(again) == "ALREADY_DONE"
        else:
            refused.append(reason(result))
        if i == 2:  # a late joiner sees the open packet and how many shares are gone
            (open_packet,) = snapshot_of(await room.join("late")).red_packets
            assert (open_packet.packet.packet_id, open_packet.grabbed) == ("rp1", 3)
            assert open_packet.packet.commitment
    assert len(told) == 5 and refused == ["SOLD_OUT", "SOLD_OUT"]
    events = await wait_for(
        watcher, room.room_id, lambda es: any(e.payload.HasField("red_packet_finished") for e in es)
    )
    started = next(e for e in await room.admin.all_events(room.room_id, "red_packet_sent"))
    (done,) = [e.payload.red_packet_finished for e in events if e.payload.HasField("red_packet_finished")]
    assert hashlib.sha256(bytes.fromhex(done.seed)).hexdigest() == started.payload.red_packet_sent.commitment
    assert list(done.amounts_minor) == independent_shares(done.seed, 1000, 5)
    assert sum(done.amounts_minor) == 1000 and min(done.amounts_minor) >= 1
    assert dict(zip(done.grabber_user_ids, done.amounts_minor, strict=True)) == told
    assert (done.unclaimed_count, done.unclaimed_minor) == (0, 0)


async def test_an_equal_red_packet_expires_with_its_unclaimed_shares_and_a_viewer_may_not_send_one(room: Room) -> None:
    host = await room.join(HOST, "host")
    viewer = await room.join("viewer")
    forbidden = await post(viewer, room.room_id, packet("fake", total=100, count=2))
    assert forbidden.status.code == PERMISSION_DENIED and reason(forbidden) == "ROLE_FORBIDDEN"
    too_small = await post(host, room.room_id, packet("small", total=3, count=4))
    assert too_small.status.code == INVALID_ARGUMENT
    assert error_info(too_small.status).metadata["field"] == "payload.red_packet_sent.total_minor"
    assert (await post(host, room.room_id, packet("eq", total=1001, count=10, end_s=1.0, equal=True))).status.code == OK
    amounts = []
    for i in range(3):
        stream = await room.join(f"g{i}")
        amounts.append((await post(stream, room.room_id, grab("eq"))).grabbed.amount_minor)
    assert amounts == [101, 100, 100]
    events = await wait_for(viewer, room.room_id, lambda es: any(e.payload.HasField("red_packet_finished") for e in es))
    (done,) = [e.payload.red_packet_finished for e in events if e.payload.HasField("red_packet_finished")]
    assert list(done.amounts_minor) == [101, 100, 100] and done.seed == ""
    assert (done.unclaimed_count, done.unclaimed_minor) == (7, 700)
    late = await post(viewer, room.room_id, grab("eq"))
    assert late.status.code == FAILED_PRECONDITION and reason(late) == "EXPIRED"


# ===================================================== three nodes on one Kafka topic


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_broker() as broker:
        nodes = Cluster(broker, tmp_path_factory.mktemp("coupons"), f"coupons-{uuid.uuid4().hex[:8]}", 3)
        try:
            nodes.start()
            yield nodes
        finally:
            nodes.stop()


def claim_id_for(room_id: str, batch_id: str, cursor: str) -> str:
    """Claim ids as docs/commerce.md derives them, from the claim's log position."""
    from barrage.server.core.cursor import parse_cursor

    position = parse_cursor(cursor).position
    return "cp_" + hashlib.sha256(f"coupon\x00{room_id}\x00{batch_id}\x00{position}".encode()).hexdigest()[:24]


async def test_three_nodes_5000_claims_for_1000_coupons_give_exactly_1000(cluster: Cluster) -> None:
    """150 viewer streams (50 a node) claim 4 times each; services claim for 2,700 more
    users through the admin API of every node (some users two or three times): 5,000
    claims at once for 1,000 coupons, at most 2 per user."""
    room_id = f"coupons-{uuid.uuid4().hex[:8]}"
    admins = [
        Admin(node.target, cluster.token(f"coupon-center-{i}", role="service")) for i, node in enumerate(cluster.nodes)
    ]
    streams: list[RawStream] = []
    try:
        await admins[0].create_room(room_id, "Coupon night", host_user_id=HOST)
        await admins[0].publish(room_id, "drop-1", drop("big", quantity=1000, limit=2, end_s=300))
        for i in range(150):
            node = cluster.nodes[i % 3]
            streams.append(await connect(node.target, cluster.token(f"viewer-{i}"), room_id))
        rng = random.Random(17)
        service_claims = [f"user-{rng.randrange(2700)}" for _ in range(5000 - 150 * 4)]
        answers: list[tuple[str, str, str]] = []  # (user, claim id or reason, cursor)
        gate = asyncio.Semaphore(60)

        async def by_viewer(i: int, stream: RawStream) -> None:
            for k in range(4):
                result = await post(stream, room_id, claim("big"), f"v{i}-{k}")
                outcome = result.claim_id if result.status.code == OK else reason(result)
                answers.append((f"viewer-{i}", outcome, result.cursor))

        async def by_service(j: int, user: str) -> None:
            async with gate:
                try:
                    response = await admins[j % 3].publish(room_id, f"s{j}", claim("big", user))
                    answers.append((user, response.claim_id, response.cursor))
                except grpc.aio.AioRpcError as err:
                    answers.append((user, rpc_reason(err), ""))

        started = time.monotonic()
        await asyncio.gather(
            *(by_viewer(i, s) for i, s in enumerate(streams)), *(by_service(j, u) for j, u in enumerate(service_claims))
        )
        elapsed = time.monotonic() - started
        print(f"5000 claims on 3 nodes answered in {elapsed:.1f} s")
        assert len(answers) == 5000
        won = [(user, outcome, cursor) for user, outcome, cursor in answers if outcome.startswith("cp_")]
        assert len(won) == 1000, Counter(outcome for _, outcome, _ in answers if not outcome.startswith("cp_"))
        assert len({outcome for _, outcome, _ in won}) == 1000  # claim ids unique
        per_user = Counter(user for user, _, _ in won)
        assert max(per_user.values()) <= 2
        losers = Counter(outcome for _, outcome, _ in answers if not outcome.startswith("cp_"))
        assert set(losers) <= {"SOLD_OUT", "LIMIT_REACHED"}, losers
        # The answers are the log's decision: re-fold the history independently.
        claims = await admins[1].all_events(room_id, "coupon_claim")
        taken: Counter[str] = Counter()
        expected: dict[str, str] = {}
        for event in claims:
            user = event.payload.coupon_claim.user_id or event.sender.user_id
            if sum(taken.values()) < 1000 and taken[user] < 2:
                taken[user] += 1
                expected[claim_id_for(room_id, "big", event.cursor)] = user
        assert {outcome: user for user, outcome, _ in won} == expected
        # Every node agrees on every claim.
        for admin in admins:
            for claim_id, user in list(expected.items())[::50]:
                request = admin_pb.VerifyCouponRequest(room_id=room_id, claim_id=claim_id)
                record = (await admin.stub.VerifyCoupon(request, metadata=admin.metadata)).claim
                assert record.user_id == user

        async def ended_everywhere() -> bool:
            ended = await admins[2].all_events(room_id, "coupon_batch_ended")
            return len(ended) == 1 and ended[0].payload.coupon_batch_ended.claimed == 1000

        await eventually(ended_everywhere, "the sold-out batch's end event", timeout=20)
        # A batch still open: a late joiner on any node sees the same remaining count.
        await admins[0].publish(room_id, "drop-2", drop("small", quantity=50, limit=1, end_s=300))
        await asyncio.gather(
            *(admins[j % 3].publish(room_id, f"small-{j}", claim("small", f"s-{j}")) for j in range(30))
        )
        for node in cluster.nodes:
            late = await connect(node.target, cluster.token(f"late-{uuid.uuid4().hex[:6]}"), room_id)
            streams.append(late)
            (open_batch,) = snapshot_of(late).coupon_batches  # the sold-out batch has ended
            assert (open_batch.batch.batch_id, open_batch.remaining) == ("small", 20)
    finally:
        for stream in streams:
            await stream.close()
        for admin in admins:
            await admin.close()


async def test_a_claim_on_another_node_right_after_the_drop_is_decided_not_refused_as_unknown(
    cluster: Cluster,
) -> None:
    """A node's state is a prefix of the log: a batch or packet it has not read yet may
    have just been opened through another node. Its claims and grabs are decided by the
    log, and only what the whole log does not know is refused as NOT_OPEN. (24 rooms at
    once, each already followed by every node, so some node is behind when asked.)"""
    admins = [Admin(node.target, cluster.token(f"hand-{i}", role="service")) for i, node in enumerate(cluster.nodes)]

    async def hand_off(n: int) -> list[admin_pb.PublishEventResponse]:
        room_id = f"handoff-{n}-{uuid.uuid4().hex[:8]}"
        opener, *others = (admins[(n + k) % 3] for k in range(3))
        await opener.create_room(room_id, "Hand-off", host_user_id=HOST)
        for k, other in enumerate(others):  # every node follows the room before the drop
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await other.publish(room_id, f"early-{k}", claim("b", f"u{k}"))
            assert rpc_reason(refused.value) == "NOT_OPEN"
        await opener.publish(room_id, "d", drop("b", quantity=2, limit=1, end_s=300))
        await opener.publish(room_id, "p", packet("rp", total=500, count=2, end_s=300))
        return list(
            await asyncio.gather(
                *(other.publish(room_id, f"c{k}", claim("b", f"u{k}")) for k, other in enumerate(others)),
                *(other.publish(room_id, f"g{k}", grab("rp", f"u{k}")) for k, other in enumerate(others)),
            )
        )

    try:
        for answers in await asyncio.gather(*(hand_off(n) for n in range(24))):
            assert all(a.claim_id.startswith("cp_") for a in answers[:2]), answers
            assert all(a.grabbed.amount_minor > 0 for a in answers[2:]), answers
    finally:
        for admin in admins:
            await admin.close()


async def test_three_nodes_one_grab_per_user_and_exact_shares(cluster: Cluster) -> None:
    """300 grabs (every user grabs on two nodes at once) for 100 shares: 100 users get a
    share each, the shares add up to the total, and every grabber's answer matches the summary."""
    room_id = f"packets-{uuid.uuid4().hex[:8]}"
    admins = [Admin(node.target, cluster.token(f"svc-{i}", role="service")) for i, node in enumerate(cluster.nodes)]
    try:
        await admins[0].create_room(room_id, "Lucky bag", host_user_id=HOST)
        await admins[0].publish(room_id, "rp", packet("rp", total=88_888, count=100, end_s=300))
        told: dict[str, set[int]] = {}
        refusals: Counter[str] = Counter()

        async def grab_for(user: str, node: int, attempt: int) -> None:
            try:
                response = await admins[node].publish(room_id, f"{user}-{attempt}", grab("rp", user))
                told.setdefault(user, set()).add(response.grabbed.amount_minor)
            except grpc.aio.AioRpcError as err:
                refusals[rpc_reason(err)] += 1

        await asyncio.gather(*(grab_for(f"u{i}", (i + k) % 3, k) for i in range(150) for k in range(2)))
        assert len(told) == 100 and all(len(amounts) == 1 for amounts in told.values())

        async def finished() -> bool:
            return bool(await admins[1].all_events(room_id, "red_packet_finished"))

        await eventually(finished, "the red packet's summary", timeout=20)
        (done,) = [e.payload.red_packet_finished for e in await admins[1].all_events(room_id, "red_packet_finished")]
        assert sum(done.amounts_minor) == 88_888 and min(done.amounts_minor) >= 1
        assert list(done.amounts_minor) == independent_shares(done.seed, 88_888, 100)
        assert {u: {a} for u, a in zip(done.grabber_user_ids, done.amounts_minor, strict=True)} == told
    finally:
        for admin in admins:
            await admin.close()
