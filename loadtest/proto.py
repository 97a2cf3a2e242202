"""Barrage frames for the load generator: request bytes, and reading responses cheaply.

Responses are read two ways:
- `scan`: walks the outer protobuf layers of a ConnectResponse by hand (message,
  ServerMessage.event_batch, EventBatch.events/omitted_count) to COUNT events without
  decoding them. Control messages (welcome, join_result, send_result, ...) are handed
  over as bytes to be decoded with protobuf; they are rare on viewer streams.
- `decode`: the generated ConnectResponse, every field, for measured viewers.

Instrument-only knowledge (a client app must not do this): `cursor_position` parses the
opaque "<epoch>.<position>" cursor so the checker can compare positions, and the
client_msg_id of every event the load generator sends carries "<sender>.<seq>.<intended
send time µs>" so receivers can measure latency from the intended send time (corrected
for coordinated omission) and check per-sender order.
"""

from __future__ import annotations

from collections.abc import Callable

from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs

CONNECT_PATH = "/barrage.v1.RoomService/Connect"
_EVENT_BATCH = 0x2A  # ServerMessage.event_batch (field 5, length-delimited)
_BATCH_EVENTS = 0x12  # EventBatch.events (field 2)
_BATCH_OMITTED = 0x18  # EventBatch.omitted_count (field 3, varint)
CRITICAL = event_pb2.PRIORITY_CRITICAL
EPHEMERAL = event_pb2.PRIORITY_EPHEMERAL


def hello(token: str, agent: str = "loadtest") -> bytes:
    return rs.ConnectRequest(hello=rs.Hello(token=token, client_agent=agent)).SerializeToString()


def join(room_id: str, resume_cursor: str = "", history_limit: int = 0) -> bytes:
    request = rs.JoinRoom(room_id=room_id, resume_cursor=resume_cursor, history_limit=history_limit)
    return rs.ConnectRequest(join_room=request).SerializeToString()


def leave(room_id: str) -> bytes:
    return rs.ConnectRequest(leave_room=rs.LeaveRoom(room_id=room_id)).SerializeToString()


def comment_payload(text: str) -> event_pb2.Payload:
    return event_pb2.Payload(comment=event_pb2.Comment(text=text))


def announcement_payload(text: str) -> event_pb2.Payload:
    return event_pb2.Payload(announcement=event_pb2.Announcement(text=text))


def like_payload(count: int = 1) -> event_pb2.Payload:
    return event_pb2.Payload(like=event_pb2.Like(count=count))


def media_clock_payload(timeline_id: str, position_ms: int) -> event_pb2.Payload:
    clock = event_pb2.MediaClock(timeline_id=timeline_id)
    clock.position.FromMilliseconds(position_ms)
    return event_pb2.Payload(media_clock=clock)


def gift_payload(giver: str, seq: int) -> event_pb2.Payload:
    gift = event_pb2.Gift(
        gift_id="rose",
        gift_name="Rose",
        count=1 + seq % 3,
        unit_value=event_pb2.Money(amount_minor=100, currency="CNY"),
        giver=event_pb2.Sender(user_id=giver, display_name=giver),
    )
    return event_pb2.Payload(gift=gift)


def coupon_batch_payload(batch_id: str, quantity: int, per_user_limit: int, end_unix_s: int) -> event_pb2.Payload:
    """The batch the load's claims name: dropped by the run's admin before the senders start."""
    batch = event_pb2.CouponBatchDropped(
        batch_id=batch_id,
        title="load test: ¥5 off",
        amount_off_minor=500,
        currency="CNY",
        quantity=quantity,
        per_user_limit=per_user_limit,
    )
    batch.end_time.FromSeconds(end_unix_s)
    return event_pb2.Payload(coupon_batch_dropped=batch)


def coupon_claim_payload(batch_id: str) -> event_pb2.Payload:
    """A sender claims one coupon of `batch_id` for itself (answered: claimed, or why not)."""
    return event_pb2.Payload(coupon_claim=event_pb2.CouponClaim(batch_id=batch_id))


def product_pinned_payload(seq: int) -> event_pb2.Payload:
    product = event_pb2.Product(
        product_id=f"sku-{seq}",
        title=f"Blue silk scarf, lot {seq}",
        price=event_pb2.Money(amount_minor=12900, currency="CNY"),
        stock=500,
    )
    return event_pb2.Payload(product_pinned=event_pb2.ProductPinned(product=product))


def send(room_id: str, client_msg_id: str, payload: event_pb2.Payload) -> bytes:
    request = rs.Send(room_id=room_id, client_msg_id=client_msg_id, payload=payload)
    return rs.ConnectRequest(send=request).SerializeToString()


def message_id(sender: str, seq: int, intended_us: int) -> str:
    return f"{sender}.{seq}.{intended_us}"


def parse_message_id(client_msg_id: str) -> tuple[str, int, int] | None:
    """(sender, seq, intended send time µs) of an id made by message_id, else None."""
    parts = client_msg_id.split(".")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return parts[0], int(parts[1]), int(parts[2])


def cursor_position(cursor: str) -> int:
    """INSTRUMENT ONLY: the position in an opaque cursor, to check order against history."""
    return int(cursor.rpartition(".")[2])


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def scan(data: bytes, on_control: Callable[[bytes], None]) -> tuple[int, int]:
    """(events, omitted) in a ConnectResponse; other messages go to on_control as bytes."""
    pos = 0
    n = len(data)
    events = 0
    omitted = 0
    while pos < n:
        pos += 1  # ConnectResponse.messages tag (0x0A)
        b = data[pos]
        if b < 0x80:
            length = b
            pos += 1
        else:
            length, pos = _varint(data, pos)
        end = pos + length
        if data[pos] == _EVENT_BATCH:
            p = pos + 1
            b = data[p]
            if b < 0x80:
                p += 1
            else:
                _, p = _varint(data, p)
            while p < end:
                tag = data[p]
                p += 1
                if tag == _BATCH_OMITTED:
                    value, p = _varint(data, p)
                    omitted += value
                    continue
                b = data[p]
                if b < 0x80:
                    p += 1 + b
                else:
                    length, p = _varint(data, p)
                    p += length
                if tag == _BATCH_EVENTS:
                    events += 1
        else:
            on_control(data[pos:end])
        pos = end
    return events, omitted


def decode(data: bytes) -> rs.ConnectResponse:
    return rs.ConnectResponse.FromString(data)


def server_message(data: bytes) -> rs.ServerMessage:
    return rs.ServerMessage.FromString(data)
