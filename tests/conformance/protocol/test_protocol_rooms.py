"""room_service.proto, steps 2 and 5: JoinRoom / JoinResult / RoomSnapshot,
LeaveRoom / LeaveResult, EventBatch order, and a room closing under its streams."""

from __future__ import annotations

import asyncio

from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs
from tests.conformance.protocol.conftest import World, alive, code, comment, new_id, reason
from tests.wire_client import RawStream, retry_delay_s


def announcement(text: str) -> event_pb2.Payload:
    return event_pb2.Payload(announcement=event_pb2.Announcement(text=text))


def kinds(stream: RawStream, room_id: str) -> list[str]:
    """The kinds of the ServerMessages about this room, in arrival order."""
    out: list[str] = []
    for message in stream.received:
        kind = message.WhichOneof("kind")
        if kind is not None and getattr(getattr(message, kind), "room_id", None) == room_id:
            out.append(kind)
    return out


async def test_a_fresh_join_answers_ok_with_a_snapshot_before_any_event(world: World) -> None:
    room_id = await world.room(title="Spring sale")
    await world.admin.publish(room_id, "a1", announcement("welcome"))
    stream = await world.stream()

    result = await stream.join(room_id)

    assert result.status.code == 0
    assert result.resume == rs.RESUME_OUTCOME_FRESH
    assert (result.snapshot.room_id, result.snapshot.title) == (room_id, "Spring sale")
    assert result.snapshot.head_cursor  # the room has an event
    writer = await world.joined(room_id)
    await writer.send_comment(room_id, "c1", "hi")
    await stream.wait_events(room_id, 1, kind="comment")
    seen = kinds(stream, room_id)
    assert seen.index("join_result") < seen.index("event_batch")


async def test_a_fresh_join_with_history_limit_gets_the_most_recent_events_first(world: World) -> None:
    room_id = await world.room()
    for n in range(5):
        await world.admin.publish(room_id, f"a{n}", announcement(f"news {n}"))
    stream = await world.stream()

    assert (await stream.join(room_id, history_limit=3)).status.code == 0

    events = await stream.wait_events(room_id, 3)
    assert [e.payload.announcement.text for e in events[:3]] == ["news 2", "news 3", "news 4"]


async def test_the_first_join_of_an_empty_room_has_an_empty_head_cursor(world: World) -> None:
    room_id = await world.room()
    result = await (await world.stream()).join(room_id)
    assert result.status.code == 0 and result.snapshot.head_cursor == ""


async def test_a_frame_over_64_kib_ends_the_stream_resource_exhausted(world: World) -> None:
    stream = await world.stream()
    await stream.send(rs.ConnectRequest(ping=rs.Ping(nonce=1)))
    await stream.expect("pong")
    huge = rs.ConnectRequest(send=rs.Send(room_id="r", client_msg_id="big", payload=comment("x" * 70_000)))
    await stream.send(huge)
    ended = await stream.wait_end()
    assert ended is not None and ended.code().value[0] == code("RESOURCE_EXHAUSTED")


async def test_history_limit_above_the_maximum_is_capped_not_refused(world: World) -> None:
    room_id = await world.room()
    stream = await world.stream()
    result = await stream.join(room_id, history_limit=10**6)
    assert result.status.code == 0


async def test_every_subscriber_sees_a_rooms_events_in_the_same_order(world: World) -> None:
    room_id = await world.room()
    readers = [await world.joined(room_id) for _ in range(2)]
    writers = [await world.joined(room_id) for _ in range(2)]
    await asyncio.gather(
        *(w.send_comment(room_id, f"w{i}-{n}", f"{i}/{n}") for n in range(5) for i, w in enumerate(writers))
    )

    seen = [[e.cursor for e in await r.wait_events(room_id, 10, kind="comment")] for r in readers]

    assert seen[0] == seen[1]
    assert len(set(seen[0])) == 10


async def test_joining_twice_is_refused_already_joined_and_the_first_join_stays(world: World) -> None:
    room_id = await world.room()
    stream = await world.joined(room_id)

    again = await stream.join(room_id)

    assert (again.status.code, reason(again.status)) == (code("FAILED_PRECONDITION"), "ALREADY_JOINED")
    writer = await world.joined(room_id)
    await writer.send_comment(room_id, "after-rejoin", "still subscribed?")
    [event] = await stream.wait_events(room_id, 1, kind="comment")
    assert event.client_msg_id == "after-rejoin"


async def test_joins_that_cannot_succeed_say_why(world: World) -> None:
    closed = await world.room()
    await world.admin.close_room(closed)
    stream = await world.stream()
    cases = {
        new_id("nowhere"): ("NOT_FOUND", "ROOM_NOT_FOUND"),
        closed: ("FAILED_PRECONDITION", "ROOM_CLOSED"),
        "not a room id!": ("INVALID_ARGUMENT", "INVALID_FIELD"),
        "": ("INVALID_ARGUMENT", "INVALID_FIELD"),
    }
    for room_id, (status, why) in cases.items():
        result = await stream.join(room_id)
        assert (result.status.code, reason(result.status)) == (code(status), why), room_id
        assert result.resume == rs.RESUME_OUTCOME_UNSPECIFIED and not result.HasField("snapshot")
    await alive(stream)


async def test_a_stream_joins_at_most_max_rooms_per_stream_rooms(world: World) -> None:
    stream = world.raw()
    welcome = await stream.hello(world.token(new_id("busy")))
    most = welcome.limits.max_rooms_per_stream
    rooms = await asyncio.gather(*(world.room() for _ in range(most + 1)))
    for room_id in rooms[:most]:
        assert (await stream.join(room_id)).status.code == 0

    refused = await stream.join(rooms[most])

    assert (refused.status.code, reason(refused.status)) == (code("RESOURCE_EXHAUSTED"), "TOO_MANY_ROOMS")
    await stream.send(rs.ConnectRequest(leave_room=rs.LeaveRoom(room_id=rooms[0])))
    await stream.expect("leave_result", lambda r: r.room_id == rooms[0])
    # Joins have their own rate limit (RESOURCE_EXHAUSTED RATE_LIMITED with RetryInfo).
    for _ in range(40):
        result = await stream.join(rooms[most])
        if result.status.code != 0 and reason(result.status) == "RATE_LIMITED":
            assert result.status.code == code("RESOURCE_EXHAUSTED")
            assert retry_delay_s(result.status)
            break
        await stream.send(rs.ConnectRequest(leave_room=rs.LeaveRoom(room_id=rooms[most])))
        await stream.expect("leave_result", lambda r: r.room_id == rooms[most])
    else:
        raise AssertionError("joins were never rate limited")


async def test_leave_stops_the_rooms_events_and_a_second_leave_is_not_joined(world: World) -> None:
    room_id = await world.room()
    stream = await world.joined(room_id)
    await stream.send(rs.ConnectRequest(leave_room=rs.LeaveRoom(room_id=room_id)))
    left = await stream.expect("leave_result")
    assert (left.room_id, left.status.code) == (room_id, 0)

    writer = await world.joined(room_id)
    await writer.send_comment(room_id, "unseen", "you left")
    await writer.wait_events(room_id, 1, kind="comment")
    await asyncio.sleep(0.3)
    assert stream.events(room_id, kind="comment") == []

    await stream.send(rs.ConnectRequest(leave_room=rs.LeaveRoom(room_id=room_id)))
    again = await stream.expect("leave_result")
    assert (again.status.code, reason(again.status)) == (code("FAILED_PRECONDITION"), "NOT_JOINED")


async def test_a_closed_room_sends_room_closed_last_and_refuses_sends_room_closed(world: World) -> None:
    room_id = await world.room()
    viewer = await world.joined(room_id)
    assert (await viewer.send_comment(room_id, "before", "bye?")).status.code == 0

    await world.admin.close_room(room_id, reason="show over")

    [closed] = await viewer.wait_events(room_id, 1, kind="room_closed")
    assert closed.payload.room_closed.reason == "show over"
    assert closed.priority == event_pb2.PRIORITY_CRITICAL
    result = await viewer.send_comment(room_id, "after", "anyone?")
    assert (result.status.code, reason(result.status)) == (code("FAILED_PRECONDITION"), "ROOM_CLOSED")
    rejoin = await viewer.join(room_id)
    assert (rejoin.status.code, reason(rejoin.status)) == (code("FAILED_PRECONDITION"), "ROOM_CLOSED")
    await asyncio.sleep(0.3)
    assert viewer.events(room_id)[-1].payload.WhichOneof("kind") == "room_closed"  # no more events will follow


async def test_a_send_to_a_room_not_joined_is_refused_not_joined(world: World) -> None:
    room_id = await world.room()
    stream = await world.stream()
    await stream.send(rs.ConnectRequest(send=rs.Send(room_id=room_id, client_msg_id="x", payload=comment("hi"))))
    result = await stream.send_result("x")
    assert (result.status.code, reason(result.status)) == (code("FAILED_PRECONDITION"), "NOT_JOINED")
