"""RoomAdminService, room closing, health, reflection, retention answers and graceful shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from barrage.v1 import admin_service_pb2 as pb
from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs
from tests.server_process import ServerProcess
from tests.wire_client import Admin, RawStream, end_status, error_info


@pytest.fixture
async def admin(server: ServerProcess) -> AsyncIterator[Admin]:
    client = Admin(server.target, server.token("order-service", role="service"))
    yield client
    await client.close()


def announcement(text: str) -> event_pb2.Payload:
    return event_pb2.Payload(announcement=event_pb2.Announcement(text=text))


async def test_rooms_are_created_read_and_closed(admin: Admin, room_id: str) -> None:
    created = await admin.create_room(room_id, "Spring sale")
    assert (created.room_id, created.title, created.state) == (room_id, "Spring sale", pb.ROOM_STATE_OPEN)
    assert created.creator_user_id == "order-service"
    with pytest.raises(grpc.aio.AioRpcError) as exists:
        await admin.create_room(room_id)
    assert exists.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_info(end_status(exists.value)).reason == "ROOM_EXISTS"
    closed = await admin.close_room(room_id, "thanks for watching")
    assert closed.state == pb.ROOM_STATE_CLOSED
    assert (await admin.close_room(room_id)).state == pb.ROOM_STATE_CLOSED  # idempotent
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await admin.stub.GetRoom(pb.GetRoomRequest(room_id="nope"), metadata=admin.metadata)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_publish_is_idempotent_by_request_id(admin: Admin, room_id: str) -> None:
    await admin.create_room(room_id)
    first = await admin.publish(room_id, "req-1", announcement("Flash sale in 5 minutes"))
    again = await admin.publish(room_id, "req-1", announcement("Flash sale in 5 minutes"))
    assert (again.cursor, again.event_id, again.duplicate) == (first.cursor, first.event_id, True)
    events = await admin.all_events(room_id)
    assert [e.event_id for e in events] == [first.event_id]
    assert events[0].priority == event_pb2.PRIORITY_CRITICAL
    assert events[0].sender.role == event_pb2.ROLE_SERVICE


async def test_history_pages_forwards_and_backwards(admin: Admin, room_id: str) -> None:
    await admin.create_room(room_id)
    cursors = [(await admin.publish(room_id, f"r{n}", announcement(f"n{n}"))).cursor for n in range(25)]
    forward: list[str] = []
    cursor = ""
    while True:
        page = await admin.history(room_id, cursor, page_size=10)
        forward.extend(e.cursor for e in page.events)
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert forward == cursors
    backward: list[str] = []
    cursor = ""
    while True:
        page = await admin.history(room_id, cursor, backward=True, page_size=10)
        backward.extend(e.cursor for e in page.events)
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert backward == cursors[::-1]
    middle = await admin.history(room_id, cursors[9], page_size=3)
    assert [e.cursor for e in middle.events] == cursors[10:13]
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await admin.history(room_id, "not-a-cursor")
    assert bad.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # CURSOR_UNKNOWN: see tests/test_cursors.py


async def test_admin_calls_need_a_valid_token_and_role(server: ServerProcess, room_id: str) -> None:
    anonymous = Admin(server.target, "")
    viewer = Admin(server.target, server.token("viewer"))
    host = Admin(server.target, server.token("the-host", role="host"))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as unauthenticated:
            await anonymous.create_room(room_id)
        assert unauthenticated.value.code() == grpc.StatusCode.UNAUTHENTICATED
        await host.create_room(room_id)  # hosts open their own rooms
        # Permission in a room is the caller's standing there: the room must exist.
        for call in (viewer.create_room(f"{room_id}-v"), viewer.history(room_id), viewer.close_room(room_id)):
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await call
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert error_info(end_status(denied.value)).reason == "ROLE_FORBIDDEN"
        other_host = Admin(server.target, server.token("another-host", role="host"))
        with pytest.raises(grpc.aio.AioRpcError) as not_theirs:
            await other_host.close_room(room_id)
        assert not_theirs.value.code() == grpc.StatusCode.PERMISSION_DENIED
        await other_host.close()
    finally:
        for client in (anonymous, viewer, host):
            await client.close()


async def test_closing_a_room_tells_its_viewers_and_refuses_sends(
    server: ServerProcess, admin: Admin, room_id: str
) -> None:
    await admin.create_room(room_id)
    viewer = RawStream(server.target)
    await viewer.hello(server.token("viewer"))
    await viewer.join(room_id)
    await admin.close_room(room_id, "show over")
    (event,) = await viewer.wait_events(room_id, 1, kind="room_closed")
    assert event.payload.room_closed.reason == "show over"
    result = await viewer.send_comment(room_id, "late", "hello?")
    assert result.status.code in (grpc.StatusCode.FAILED_PRECONDITION.value[0],)
    assert error_info(result.status).reason in ("ROOM_CLOSED", "NOT_JOINED")
    await viewer.close()


async def test_health_and_reflection_are_served(server: ServerProcess) -> None:
    async with grpc.aio.insecure_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "barrage.v1.RoomService", "barrage.v1.RoomAdminService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        async for response in responses:
            names = {s.name for s in response.list_services_response.service}
            assert {"barrage.v1.RoomService", "barrage.v1.RoomAdminService"} <= names
            break


async def test_a_cursor_older_than_retention_cannot_resume(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, log_url=f"embedded:{data}?segment_bytes=4096&retention_bytes=8192")
    server.start()
    admin = Admin(server.target, server.token("ops", role="service"))
    viewer = RawStream(server.target)
    try:
        await admin.create_room("old")
        first = (await admin.publish("old", "first", announcement("the very first"))).cursor
        for n in range(100):
            await admin.publish("old", f"n{n}", announcement("x" * 300))
        await viewer.hello(server.token("viewer"))
        joined = await viewer.join("old", resume_cursor=first)
        assert joined.status.code == 0
        assert joined.resume == rs.RESUME_OUTCOME_CURSOR_TOO_OLD
        with pytest.raises(grpc.aio.AioRpcError) as too_old:
            await admin.history("old", first)
        assert too_old.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_info(end_status(too_old.value)).reason == "CURSOR_TOO_OLD"
    finally:
        await viewer.close()
        await admin.close()
        server.stop()


async def test_shutdown_says_go_away_then_ends_streams_unavailable(server: ServerProcess, room_id: str) -> None:
    admin = Admin(server.target, server.token("ops", role="service"))
    await admin.create_room(room_id)
    await admin.close()
    viewer = RawStream(server.target)
    await viewer.hello(server.token("viewer"))
    await viewer.join(room_id)
    assert server.proc is not None
    server.proc.terminate()
    go_away = await viewer.expect("go_away", timeout=15)
    assert go_away.reason
    ended = await viewer.wait_end(timeout=15)
    assert ended is not None and ended.code() == grpc.StatusCode.UNAVAILABLE
    assert server.proc.wait(20) == 0
    await viewer.close()
