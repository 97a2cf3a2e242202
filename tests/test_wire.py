"""The hand-built frames of the fan-out path parse as the generated classes say."""

from barrage.server.core import wire
from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs


def _event(text: str) -> event_pb2.Event:
    return event_pb2.Event(room_id="r", event_id=text, payload=event_pb2.Payload(comment=event_pb2.Comment(text=text)))


def test_appending_the_cursor_field_yields_the_event_with_its_cursor() -> None:
    stored = _event("hi").SerializeToString()
    complete = event_pb2.Event.FromString(wire.event_with_cursor(stored, "e.42"))
    assert complete.cursor == "e.42"
    assert complete.payload.comment.text == "hi"


def test_a_batch_frame_parses_as_a_connect_response_with_all_events_in_order() -> None:
    events = [wire.event_with_cursor(_event(str(i)).SerializeToString(), f"e.{i}") for i in range(300)]
    frame = wire.event_batch_message(wire.room_field("room-1"), (wire.batch_entry(e) for e in events), omitted=7)
    response = rs.ConnectResponse.FromString(frame)
    (message,) = response.messages
    batch = message.event_batch
    assert batch.room_id == "room-1"
    assert [e.cursor for e in batch.events] == [f"e.{i}" for i in range(300)]
    assert batch.omitted_count == 7


def test_concatenated_entries_are_one_response_with_several_messages() -> None:
    pong = wire.response_entry(rs.ServerMessage(pong=rs.Pong(nonce=5)).SerializeToString())
    batch = wire.event_batch_message(wire.room_field("r"), [])
    response = rs.ConnectResponse.FromString(pong + batch + pong)
    assert [m.WhichOneof("kind") for m in response.messages] == ["pong", "event_batch", "pong"]


def test_varint_matches_protobuf_for_large_lengths() -> None:
    text = "x" * 70_000
    stored = _event("big").SerializeToString()
    assert event_pb2.Event.FromString(wire.event_with_cursor(stored, text)).cursor == text
