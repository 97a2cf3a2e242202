"""room_service.proto, step 7 and RefreshToken: a stream lives as long as its token,
a refresh extends it, and a refresh never changes who holds the stream or its role."""

from __future__ import annotations

import asyncio
import time

from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs
from tests.conformance.protocol.conftest import World, alive, code, new_id, reason
from tests.wire_client import end_status

SHORT_TTL_S = 2


def refresh(token: str) -> rs.ConnectRequest:
    return rs.ConnectRequest(refresh_token=rs.RefreshToken(token=token))


async def test_a_stream_whose_token_expires_ends_unauthenticated_token_expired(world: World) -> None:
    room_id = await world.room()
    stream = world.raw()
    welcome = await stream.hello(world.token(new_id("brief"), ttl_s=SHORT_TTL_S))
    await stream.join(room_id)
    started = time.time()

    ended = await stream.wait_end(timeout=SHORT_TTL_S + 10)

    assert ended is not None
    status = end_status(ended)
    assert (status.code, reason(status)) == (code("UNAUTHENTICATED"), "TOKEN_EXPIRED")
    assert time.time() >= welcome.token_expire_time.seconds - 1
    assert time.time() - started < SHORT_TTL_S + 5


async def test_a_refreshed_stream_outlives_its_first_token(world: World) -> None:
    user = new_id("kept")
    room_id = await world.room()
    stream = world.raw()
    await stream.hello(world.token(user, ttl_s=SHORT_TTL_S))
    await stream.join(room_id)
    await stream.send(refresh(world.token(user, ttl_s=3600)))

    await asyncio.sleep(SHORT_TTL_S + 1.5)

    await alive(stream)
    assert (await stream.send_comment(room_id, "late", "still here")).status.code == 0
    assert not any(m.WhichOneof("kind") == "stream_error" for m in stream.received)  # an accepted refresh is silent


async def test_a_refresh_for_another_user_is_refused_and_the_old_token_stays(world: World) -> None:
    stream = await world.stream("viewer", new_id("alice"))
    await stream.send(refresh(world.token(new_id("mallory"))))
    error = await stream.expect("stream_error")
    assert (error.status.code, reason(error.status)) == (code("PERMISSION_DENIED"), "IDENTITY_MISMATCH")
    await alive(stream)


async def test_a_refresh_may_not_change_the_role(world: World) -> None:
    user = new_id("climber")
    room_id = await world.room()
    stream = await world.stream("viewer", user)
    await stream.join(room_id)
    await stream.send(refresh(world.token(user, role="service")))

    error = await stream.expect("stream_error")
    assert (error.status.code, reason(error.status)) == (code("PERMISSION_DENIED"), "IDENTITY_MISMATCH")
    announce = event_pb2.Payload(announcement=event_pb2.Announcement(text="promoted?"))
    await stream.send(rs.ConnectRequest(send=rs.Send(room_id=room_id, client_msg_id="a1", payload=announce)))
    result = await stream.send_result("a1")
    assert (result.status.code, reason(result.status)) == (code("PERMISSION_DENIED"), "ROLE_FORBIDDEN")


async def test_a_refresh_with_a_bad_token_is_refused_unauthenticated(world: World) -> None:
    user = new_id("ann")
    stream = await world.stream("viewer", user)
    for token, expected in (
        ("", "TOKEN_MISSING"),
        ("garbage", "TOKEN_INVALID"),
        (world.token(user, ttl_s=-60), "TOKEN_EXPIRED"),
    ):
        await stream.send(refresh(token))
        error = await stream.expect("stream_error")
        assert (error.status.code, reason(error.status)) == (code("UNAUTHENTICATED"), expected)
    await alive(stream)
