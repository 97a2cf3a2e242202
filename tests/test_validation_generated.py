"""Every number, time, duration and enum a client can send is range-checked at ingest.

The cases are GENERATED from the protos' descriptors, not listed by hand: every
Timestamp, Duration, integer and enum field reachable from each Payload kind a client
may post (and from each admin request) gets out-of-range values, sent over real gRPC
(the stream's Send, the admin API's ListEvents), each of which must be answered
INVALID_ARGUMENT / INVALID_FIELD naming exactly that field; and its valid edge values,
which must be accepted. A field added to the protos without a range fails
test_every_number_and_duration_has_a_declared_range until one is chosen in
server/core/ranges.py.

Hand-written here is only what the descriptors cannot say: one valid example of each
kind (the base every case changes one field of) and a poll to vote in.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.rpc import status_pb2

from barrage.server.core import policy, ranges
from barrage.v1 import admin_service_pb2 as admin_pb
from barrage.v1 import admin_service_pb2_grpc, insights_service_pb2_grpc
from barrage.v1 import event_pb2 as ev
from barrage.v1 import insights_service_pb2 as insights_pb
from barrage.v1 import room_service_pb2 as rs
from tests.server_process import ServerProcess
from tests.wire_client import Admin, RawStream, error_info

INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
NOW_S = int(time.time())
"""When the module was collected. A long suite reaches these tests many minutes later:
test_payload_values moves the samples' times by that much (shift_times)."""


def _at(seconds_from_now: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=NOW_S + seconds_from_now)


def _product(pid: str) -> ev.Product:
    return ev.Product(product_id=pid, title="Down jacket", price=ev.Money(amount_minor=19_900, currency="CNY"), stock=5)


# One valid example of each kind a client may post: every generated case changes one field of it.
VALID: dict[str, ev.Payload] = {
    "comment": ev.Payload(
        comment=ev.Comment(
            text="hello",
            image=ev.ImageRef(url="https://cdn.example.com/a.png", width=640, height=480, content_type="image/png"),
        )
    ),
    "like": ev.Payload(like=ev.Like(count=3)),
    "announcement": ev.Payload(announcement=ev.Announcement(text="Sale in 5 minutes")),
    "gift": ev.Payload(
        gift=ev.Gift(
            gift_id="rose",
            gift_name="Rose",
            count=2,
            unit_value=ev.Money(amount_minor=100, currency="CNY"),
            giver=ev.Sender(user_id="fan-1", display_name="Fan", role=ev.ROLE_VIEWER),
        )
    ),
    "purchase": ev.Payload(
        purchase=ev.Purchase(buyer=ev.Sender(user_id="fan-1"), product_id="p-1", product_title="Jacket", quantity=1)
    ),
    "product_pinned": ev.Payload(product_pinned=ev.ProductPinned(product=_product("p-1"))),
    "product_unpinned": ev.Payload(product_unpinned=ev.ProductUnpinned(product_id="p-1")),
    "product_updated": ev.Payload(
        product_updated=ev.ProductUpdated(product_id="p-1", price=ev.Money(amount_minor=9_900, currency="CNY"), stock=4)
    ),
    "flash_sale_started": ev.Payload(
        flash_sale_started=ev.FlashSaleStarted(
            sale_id="s-1", product=_product("p-1"), stock=10, limit_per_user=1, start_time=_at(0), end_time=_at(600)
        )
    ),
    "flash_sale_stock": ev.Payload(flash_sale_stock=ev.FlashSaleStock(sale_id="s-1", stock=3)),
    "flash_sale_ended": ev.Payload(flash_sale_ended=ev.FlashSaleEnded(sale_id="s-1", sold_out=False, sold=7)),
    "lottery_started": ev.Payload(
        lottery_started=ev.LotteryStarted(lottery_id="l-1", prize="A phone", winners_count=1, end_time=_at(600))
    ),
    "lottery_entry": ev.Payload(lottery_entry=ev.LotteryEntry(lottery_id="l-1")),
    "poll_started": ev.Payload(
        poll_started=ev.PollStarted(
            poll_id="q-1", question="Which colour?", options=[f"colour {i}" for i in range(10)], end_time=_at(600)
        )
    ),
    "poll_vote": ev.Payload(poll_vote=ev.PollVote(poll_id="q-1", option=1)),
    "user_muted": ev.Payload(user_muted=ev.UserMuted(user_id="troll", until=_at(600), reason="spam")),
    "user_banned": ev.Payload(user_banned=ev.UserBanned(user_id="troll", reason="spam")),
    "message_deleted": ev.Payload(message_deleted=ev.MessageDeleted(event_id="e-1", reason="spam")),
    "slow_mode": ev.Payload(slow_mode=ev.SlowMode()),
    "media_clock": ev.Payload(media_clock=ev.MediaClock(timeline_id="stream-1")),
    "comment_pinned": ev.Payload(
        comment_pinned=ev.CommentPinned(
            event_id="e-1",
            text="how big?",
            author=ev.Sender(user_id="fan-1", role=ev.ROLE_VIEWER, level=3),
            image=ev.ImageRef(url="https://cdn.example.com/a.png", width=640, height=480, content_type="image/png"),
        )
    ),
    "coupon_batch_dropped": ev.Payload(
        coupon_batch_dropped=ev.CouponBatchDropped(
            batch_id="b-1",
            title="¥20 off",
            amount_off_minor=2_000,
            currency="CNY",
            min_spend_minor=19_900,
            quantity=100,
            per_user_limit=1,
            start_time=_at(0),
            end_time=_at(600),
            redeem_until=_at(2_400),
        )
    ),
    "red_packet_sent": ev.Payload(
        red_packet_sent=ev.RedPacketSent(
            packet_id="rp-1", title="Thanks!", total_minor=100_000, currency="CNY", count=1, end_time=_at(600)
        )
    ),
}
SETUP: dict[str, list[ev.Payload]] = {
    "poll_vote": [VALID["poll_started"]],  # a poll (of 10 options) to vote in
}
"""Events a service posts to the fresh room first, so that the case's event may apply."""

# ----------------------------------------------------------------------------- generation

_INT_TYPES: dict[int, tuple[int, int]] = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


@dataclass(frozen=True)
class Leaf:
    """A range-checked field, reached from a message by `path` (field names)."""

    path: tuple[str, ...]
    field: FieldDescriptor

    @property
    def kind(self) -> str:
        if self.field.type in _INT_TYPES:
            return "int"
        if self.field.type == FieldDescriptor.TYPE_ENUM:
            return "enum"
        assert self.field.message_type is not None
        return "timestamp" if self.field.message_type.full_name == ranges.TIMESTAMP else "duration"


def leaves(descriptor: Descriptor, path: tuple[str, ...] = ()) -> Iterator[Leaf]:
    """Every integer, enum, Timestamp and Duration field under a message, depth first."""
    for field in descriptor.fields:
        here = (*path, field.name)
        if field.type in _INT_TYPES or field.type == FieldDescriptor.TYPE_ENUM:
            yield Leaf(here, field)
        elif field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type is not None:
            name = field.message_type.full_name
            if name in (ranges.TIMESTAMP, ranges.DURATION):
                yield Leaf(here, field)
            elif name != descriptor.full_name:
                yield from leaves(field.message_type, here)


@dataclass(frozen=True)
class Case:
    where: str
    """The payload kind (or admin RPC) the case sends."""
    leaf: Leaf
    value: object
    """An int, or (seconds, nanos) for a Timestamp or Duration."""
    valid: bool
    label: str

    @property
    def id(self) -> str:
        return f"{self.where}:{'.'.join(self.leaf.path)}={self.label}"


def int_cases(where: str, leaf: Leaf) -> Iterator[Case]:
    low, high = ranges.INT_RANGES[leaf.field.full_name]
    type_low, type_high = _INT_TYPES[leaf.field.type]
    bad = {low - 1, high + 1, type_low, type_high}
    for value in sorted(v for v in bad if type_low <= v <= type_high and not low <= v <= high):
        yield Case(where, leaf, value, False, str(value))
    for value in sorted({low, high}):
        yield Case(where, leaf, value, True, str(value))


def enum_cases(where: str, leaf: Leaf) -> Iterator[Case]:
    assert leaf.field.enum_type is not None
    known = sorted(leaf.field.enum_type.values_by_number)
    for value in sorted({known[-1] + 1, -1, 2**31 - 1} - set(known)):
        yield Case(where, leaf, value, False, str(value))
    for value in (known[0], known[-1]):
        yield Case(where, leaf, value, True, leaf.field.enum_type.values_by_number[value].name)


def timestamp_cases(where: str, leaf: Leaf) -> Iterator[Case]:
    bad = {
        "2^62s": (2**62, 0),  # the value that once made a room unjoinable (issue 12)
        "after-9999": (ranges.TIMESTAMP_MAX_S + 1, 0),
        "367-days-ahead": (NOW_S + ranges.MAX_AHEAD_S + 86_400, 0),
        "before-1970": (-1, 0),
        "negative-nanos": (NOW_S + 60, -1),
        "nanos-1e9": (NOW_S + 60, 1_000_000_000),
    }
    for label, value in bad.items():
        yield Case(where, leaf, value, False, label)
    # An hour inside the window: room for a later time of the same event (a sale's end).
    yield Case(where, leaf, (NOW_S + ranges.MAX_AHEAD_S - 3_600, 999_999_999), True, "a-year-ahead")


def duration_cases(where: str, leaf: Leaf) -> Iterator[Case]:
    low_ms, high_ms = ranges.DURATION_RANGES_MS[leaf.field.full_name]
    high = (high_ms // 1000, high_ms % 1000 * 1_000_000)
    bad = {
        "2^62s": (2**62, 0),
        "1ns-over": (high[0], high[1] + 1) if high[1] + 1 < 1_000_000_000 else (high[0] + 1, 0),
        "1s-over": (high[0] + 1, high[1]),
        "negative": (-1, 0),
        "mixed-signs": (1, -1),
        "nanos-1e9": (0, 1_000_000_000),
    }
    for label, value in bad.items():
        yield Case(where, leaf, value, False, label)
    yield Case(where, leaf, (low_ms // 1000, low_ms % 1000 * 1_000_000), True, "lowest")
    yield Case(where, leaf, high, True, "highest")


GENERATORS = {"int": int_cases, "enum": enum_cases, "timestamp": timestamp_cases, "duration": duration_cases}


def cases_for(where: str, descriptor: Descriptor) -> list[Case]:
    return [case for leaf in leaves(descriptor) for case in GENERATORS[leaf.kind](where, leaf)]


POSTABLE = sorted(policy.POST)
PAYLOAD_CASES = [
    case
    for kind in POSTABLE
    for case in cases_for(kind, ev.Payload.DESCRIPTOR.fields_by_name[kind].message_type)  # type: ignore[arg-type]
]
_ADMIN = admin_pb.DESCRIPTOR.services_by_name["RoomAdminService"]
_INSIGHTS = insights_pb.DESCRIPTOR.services_by_name["RoomInsightsService"]
SERVICES = {_ADMIN.name: _ADMIN, _INSIGHTS.name: _INSIGHTS}
REQUEST_CASES = [
    case
    for service in SERVICES.values()
    for method in service.methods
    for case in cases_for(f"{service.name}.{method.name}", method.input_type)
    if case.leaf.path[0] != "payload"  # PublishEvent's payload: the PAYLOAD_CASES, through the same ingest
]


def set_leaf(message: Message, path: tuple[str, ...], leaf: Leaf, value: object) -> None:
    for name in path[:-1]:
        message = getattr(message, name)
    if leaf.kind in ("timestamp", "duration"):
        assert isinstance(value, tuple)
        target: Any = getattr(message, path[-1])
        target.seconds = value[0]
        target.nanos = value[1]
    else:
        setattr(message, path[-1], value)


def move_times(payload: Message, leaf: Leaf, to_s: int) -> None:
    """Move every Timestamp of the payload by the offset that brings `leaf` to `to_s`:
    the relations between them (a sale's end after its start) still hold."""
    offset = to_s - _get(payload, leaf.path).seconds
    for other in leaves(payload.DESCRIPTOR):  # type: ignore[arg-type]
        ts = _get(payload, other.path) if other.kind == "timestamp" and not other.field.is_repeated else None
        if ts is not None:
            ts.seconds += offset


def shift_times(payload: Message, seconds: int) -> None:
    """Move every Timestamp of the payload by `seconds` (the samples were made at collection)."""
    for leaf in leaves(payload.DESCRIPTOR):  # type: ignore[arg-type]
        ts = _get(payload, leaf.path) if leaf.kind == "timestamp" and not leaf.field.is_repeated else None
        if ts is not None:
            ts.seconds += seconds


def _get(message: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        if not message.HasField(name):
            return None
        message = getattr(message, name)
    return message


# ----------------------------------------------------------------------------- the server


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One node for every case (each case has a room of its own)."""
    proc = ServerProcess(Path(tmp_path_factory.mktemp("validation")) / "data")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def admin(node: ServerProcess) -> AsyncIterator[Admin]:
    client = Admin(node.target, node.token("ops", role="service"))
    yield client
    await client.close()


async def post(node: ServerProcess, room_id: str, kind: str, payload: ev.Payload) -> rs.SendResult:
    """Send one payload on a stream, as the roles that may post this kind, from a fresh user."""
    role = "service" if policy.S_SERVICE in policy.POST[kind] else "viewer"
    stream = RawStream(node.target)
    try:
        await stream.hello(node.token(f"{role}-{uuid.uuid4().hex[:8]}", role=role))
        joined = await stream.join(room_id)
        assert joined.status.code == 0, joined.status
        msg_id = uuid.uuid4().hex
        await stream.send(rs.ConnectRequest(send=rs.Send(room_id=room_id, client_msg_id=msg_id, payload=payload)))
        return await stream.send_result(msg_id)
    finally:
        await stream.close()


def assert_refused(status: status_pb2.Status, field: str) -> None:
    assert status.code == INVALID_ARGUMENT, status
    info = error_info(status)
    assert info.reason == "INVALID_FIELD", status
    assert info.metadata["field"] == field, status


# ----------------------------------------------------------------------------- the tests


def test_every_number_and_duration_has_a_declared_range() -> None:
    """A new integer or Duration field in any Payload kind or admin/insights request needs a range."""
    missing = []
    roots = [ev.Payload.DESCRIPTOR, *(m.input_type for service in SERVICES.values() for m in service.methods)]
    for root in roots:
        for leaf in leaves(root):
            table = ranges.INT_RANGES if leaf.kind == "int" else ranges.DURATION_RANGES_MS
            if leaf.kind in ("int", "duration") and leaf.field.full_name not in table:
                missing.append(leaf.field.full_name)
    assert not missing, f"no range declared in server/core/ranges.py for {sorted(set(missing))}"


def test_the_generator_covers_every_kind_of_field() -> None:
    """The generation is not vacuous: each kind of field occurs, and the issue's mute is among the cases."""
    kinds = {case.leaf.kind for case in PAYLOAD_CASES}
    assert kinds == {"int", "enum", "timestamp", "duration"}
    assert any(c.where == "user_muted" and c.label == "2^62s" for c in PAYLOAD_CASES)
    assert {c.where for c in REQUEST_CASES} == {
        "RoomAdminService.ListEvents",
        "RoomAdminService.ListRooms",
        "RoomInsightsService.GetInsights",
        "RoomInsightsService.WatchInsights",
    }


@pytest.mark.parametrize("case", PAYLOAD_CASES, ids=lambda c: c.id)
async def test_payload_values(node: ServerProcess, admin: Admin, case: Case) -> None:
    room_id = f"v-{uuid.uuid4().hex[:12]}"
    await admin.create_room(room_id)
    for i, sample in enumerate(SETUP.get(case.where, [])):
        setup = ev.Payload()
        setup.CopyFrom(sample)
        shift_times(getattr(setup, setup.WhichOneof("kind") or ""), int(time.time()) - NOW_S)
        await admin.publish(room_id, f"setup-{i}", setup)
    payload = ev.Payload()
    payload.CopyFrom(VALID[case.where])
    body = getattr(payload, case.where)
    shift_times(body, int(time.time()) - NOW_S)
    if case.valid and case.leaf.kind == "timestamp":
        move_times(body, case.leaf, case.value[0])  # type: ignore[index]
    set_leaf(body, case.leaf.path, case.leaf, case.value)
    result = await post(node, room_id, case.where, payload)
    field = ".".join(("payload", case.where, *case.leaf.path))
    if case.valid:
        assert result.status.code == 0, (field, result.status)
    else:
        assert_refused(result.status, field)


@pytest.mark.parametrize("case", REQUEST_CASES, ids=lambda c: c.id)
async def test_request_values(node: ServerProcess, admin: Admin, case: Case) -> None:
    room_id = f"v-{uuid.uuid4().hex[:12]}"
    await admin.create_room(room_id)
    service_name, method_name = case.where.split(".")
    method = SERVICES[service_name].methods_by_name[method_name]
    request: Any = message_factory.GetMessageClass(method.input_type)()
    if "room_id" in method.input_type.fields_by_name:  # ListRooms has none
        request.room_id = room_id
    set_leaf(request, case.leaf.path, case.leaf, case.value)
    stubs = {
        _ADMIN.name: admin_service_pb2_grpc.RoomAdminServiceStub,
        _INSIGHTS.name: insights_service_pb2_grpc.RoomInsightsServiceStub,
    }
    call = getattr(stubs[service_name](admin.channel), method_name)

    async def answer() -> None:
        if method.server_streaming:  # its first message (or its status) is the answer
            stream = call(request, metadata=admin.metadata)
            try:
                await stream.read()
            finally:
                stream.cancel()
        else:
            await call(request, metadata=admin.metadata)

    if case.valid:
        await answer()
        return
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await answer()
    trailer = dict(raised.value.trailing_metadata() or ())["grpc-status-details-bin"]
    assert_refused(status_pb2.Status.FromString(trailer), ".".join(case.leaf.path))
