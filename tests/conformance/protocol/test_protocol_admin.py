"""admin_service.proto: RoomAdminService's documented answers (room life cycle,
idempotent PublishEvent, history order, authentication)."""

from __future__ import annotations

import grpc
import pytest
from grpc_status import rpc_status

from barrage.v1 import admin_service_pb2 as pb
from barrage.v1 import event_pb2
from tests.conformance.protocol.conftest import World, new_id
from tests.wire_client import Admin, error_info


def announcement(text: str) -> event_pb2.Payload:
    return event_pb2.Payload(announcement=event_pb2.Announcement(text=text))


def refusal(exc: pytest.ExceptionInfo[grpc.aio.AioRpcError]) -> tuple[grpc.StatusCode, str]:
    status = rpc_status.from_call(exc.value)
    assert status is not None, "no google.rpc.Status in the trailer"
    return exc.value.code(), str(error_info(status).reason)


async def test_a_room_id_is_taken_once(world: World) -> None:
    room_id = await world.room()
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await world.admin.create_room(room_id)
    assert refusal(taken) == (grpc.StatusCode.ALREADY_EXISTS, "ROOM_EXISTS")


async def test_get_room_of_an_unknown_id_is_not_found(world: World) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await world.admin.stub.GetRoom(pb.GetRoomRequest(room_id=new_id("none")), metadata=world.admin.metadata)
    assert refusal(missing) == (grpc.StatusCode.NOT_FOUND, "ROOM_NOT_FOUND")


async def test_a_room_tells_its_state_and_head(world: World) -> None:
    room_id = await world.room(title="Show")
    fresh = (await world.admin.stub.GetRoom(pb.GetRoomRequest(room_id=room_id), metadata=world.admin.metadata)).room
    assert (fresh.room_id, fresh.title, fresh.state, fresh.head_cursor) == (room_id, "Show", pb.ROOM_STATE_OPEN, "")
    published = await world.admin.publish(room_id, "p1", announcement("first"))
    room = (await world.admin.stub.GetRoom(pb.GetRoomRequest(room_id=room_id), metadata=world.admin.metadata)).room
    assert room.head_cursor == published.cursor


async def test_closing_is_final_and_closing_again_is_a_no_op(world: World) -> None:
    room_id = await world.room()
    closed = await world.admin.close_room(room_id, reason="done")
    assert closed.state == pb.ROOM_STATE_CLOSED and closed.close_time.seconds > 0
    again = await world.admin.close_room(room_id)
    assert again.state == pb.ROOM_STATE_CLOSED and again.close_time == closed.close_time
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await world.admin.publish(room_id, "late", announcement("too late"))
    assert refusal(late) == (grpc.StatusCode.FAILED_PRECONDITION, "ROOM_CLOSED")


async def test_publish_is_idempotent_by_request_id(world: World) -> None:
    room_id = await world.room()
    first = await world.admin.publish(room_id, "req-1", announcement("once"))
    retry = await world.admin.publish(room_id, "req-1", announcement("once"))
    assert not first.duplicate and retry.duplicate
    assert (retry.cursor, retry.event_id) == (first.cursor, first.event_id)
    assert [e.event_id for e in await world.admin.all_events(room_id, "announcement")] == [first.event_id]


async def test_history_pages_forward_and_backward_in_cursor_order(world: World) -> None:
    room_id = await world.room()
    cursors = [(await world.admin.publish(room_id, f"h{n}", announcement(str(n)))).cursor for n in range(5)]
    forward = await world.admin.history(room_id)
    assert [e.cursor for e in forward.events] == cursors
    backward = await world.admin.history(room_id, backward=True)
    assert [e.cursor for e in backward.events] == cursors[::-1]
    page = await world.admin.history(room_id, page_size=2)
    assert [e.cursor for e in page.events] == cursors[:2] and page.next_cursor
    rest = await world.admin.history(room_id, cursor=page.next_cursor)
    assert [e.cursor for e in rest.events] == cursors[2:]


async def test_calls_without_a_valid_token_or_role_are_refused(world: World) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await world.admin.stub.CreateRoom(pb.CreateRoomRequest(room_id=new_id("room")))  # no authorization
    assert refusal(missing) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
    viewer = Admin(world.node.target, world.token(new_id("viewer")))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as forbidden:
            await viewer.create_room(new_id("room"))
        assert refusal(forbidden) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_FORBIDDEN")
    finally:
        await viewer.close()
