"""room_service.proto, step 1 of the stream's life: the handshake, and frames that
concern no request (Hello, Welcome, Ping/Pong, StreamError, errors.proto reasons)."""

from __future__ import annotations

import contextlib
import time

import jwt

from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs
from tests.conformance.protocol.conftest import VIEWER_BUDGET, World, alive, code, new_id, reason
from tests.wire_client import end_status


async def test_hello_is_answered_by_welcome_with_the_tokens_identity_and_limits(world: World) -> None:
    user = new_id("ann")
    token = world.token(user, "viewer")
    stream = world.raw()

    welcome = await stream.hello(token, user_id=user)

    assert welcome.session_id and welcome.node_id
    assert (welcome.user.user_id, welcome.user.role) == (user, event_pb2.ROLE_VIEWER)
    assert abs(welcome.server_time.seconds - time.time()) < 60
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert welcome.token_expire_time.seconds == exp
    limits = welcome.limits
    assert limits.max_text_chars > 0 and limits.sends_per_second > 0 and limits.send_burst > 0
    assert limits.max_history_limit > 0 and limits.max_rooms_per_stream > 0


async def test_welcome_limits_say_who_is_sampled(world: World) -> None:
    """Limits.normal_events_per_second: the viewer budget for viewers, 0 (never sampled) for staff."""
    viewer = await world.raw().hello(world.token(new_id("v"), "viewer"))
    assert viewer.limits.normal_events_per_second == float(VIEWER_BUDGET)
    for role in ("host", "moderator", "service", "bot"):
        staff = await world.raw().hello(world.token(new_id(role), role))
        assert staff.limits.normal_events_per_second == 0, role


async def test_a_first_frame_other_than_hello_ends_the_stream_handshake_required(world: World) -> None:
    stream = world.raw()
    await stream.send(rs.ConnectRequest(join_room=rs.JoinRoom(room_id="anything")))
    ended = await stream.wait_end()
    assert ended is not None
    status = end_status(ended)
    assert (status.code, reason(status)) == (code("FAILED_PRECONDITION"), "HANDSHAKE_REQUIRED")


async def test_bad_tokens_end_the_stream_unauthenticated(world: World) -> None:
    wrong_key = jwt.encode({"sub": "x", "role": "viewer", "exp": int(time.time()) + 60}, "another-secret" * 3)
    cases = {
        "": "TOKEN_MISSING",
        "not-a-jwt": "TOKEN_INVALID",
        wrong_key: "TOKEN_INVALID",
        world.token(new_id("late"), ttl_s=-60): "TOKEN_EXPIRED",
    }
    for token, expected in cases.items():
        stream = world.raw()
        await stream.send(rs.ConnectRequest(hello=rs.Hello(token=token)))
        ended = await stream.wait_end()
        assert ended is not None, expected
        status = end_status(ended)
        assert (status.code, reason(status)) == (code("UNAUTHENTICATED"), expected)


async def test_hello_claiming_another_user_ends_the_stream_identity_mismatch(world: World) -> None:
    stream = world.raw()
    await stream.send(rs.ConnectRequest(hello=rs.Hello(token=world.token(new_id("eve")), user_id="the-host")))
    ended = await stream.wait_end()
    assert ended is not None
    status = end_status(ended)
    assert (status.code, reason(status)) == (code("PERMISSION_DENIED"), "IDENTITY_MISMATCH")


async def test_a_second_hello_is_refused_in_stream_and_changes_nothing(world: World) -> None:
    user = new_id("ann")
    stream = await world.stream("viewer", user)
    await stream.send(rs.ConnectRequest(hello=rs.Hello(token=world.token(new_id("other"), "service"))))

    error = await stream.expect("stream_error")
    assert (error.status.code, reason(error.status)) == (code("FAILED_PRECONDITION"), "HANDSHAKE_REQUIRED")
    await alive(stream)
    # Still the first identity: a viewer may not announce.
    room_id = await world.room()
    await stream.join(room_id)
    announce = event_pb2.Payload(announcement=event_pb2.Announcement(text="I am a service now"))
    await stream.send(rs.ConnectRequest(send=rs.Send(room_id=room_id, client_msg_id="a1", payload=announce)))
    result = await stream.send_result("a1")
    assert (result.status.code, reason(result.status)) == (code("PERMISSION_DENIED"), "ROLE_FORBIDDEN")


async def test_ping_is_answered_by_pong_with_the_same_nonce(world: World) -> None:
    stream = await world.stream()
    nonces = (0, 1, 2**64 - 1)
    for nonce in nonces:
        await stream.send(rs.ConnectRequest(ping=rs.Ping(nonce=nonce)))
    pongs = [await stream.expect("pong") for _ in nonces]
    assert [p.nonce for p in pongs] == list(nonces)
    assert all(p.server_time.seconds > 0 for p in pongs)


async def test_an_undecodable_frame_is_a_stream_error_and_the_stream_stays(world: World) -> None:
    stream = await world.stream()
    await stream.send(b"\xff\xff\xff\xff")  # not a protobuf message
    error = await stream.expect("stream_error")
    assert (error.status.code, reason(error.status)) == (code("INVALID_ARGUMENT"), "MALFORMED_FRAME")
    await alive(stream)


async def test_a_frame_with_no_request_is_a_stream_error_and_the_stream_stays(world: World) -> None:
    stream = await world.stream()
    await stream.send(rs.ConnectRequest())
    error = await stream.expect("stream_error")
    assert (error.status.code, reason(error.status)) == (code("INVALID_ARGUMENT"), "INVALID_FIELD")
    await alive(stream)


async def test_too_many_undecodable_frames_end_the_stream(world: World) -> None:
    stream = await world.stream()
    for _ in range(100):  # one at a time: a client writing after the end sees only its own failed write
        if stream.done:
            break
        await stream.send(b"\xff\xff")
        with contextlib.suppress(AssertionError):  # raised when the stream ended instead
            await stream.expect("stream_error")
    ended = await stream.wait_end()
    assert ended is not None
    status = end_status(ended)
    assert (status.code, reason(status)) == (code("INVALID_ARGUMENT"), "MALFORMED_FRAME")


async def test_after_a_half_close_events_keep_coming(world: World) -> None:
    room_id = await world.room()
    reader = await world.joined(room_id)
    await reader.half_close()
    writer = await world.joined(room_id)
    assert (await writer.send_comment(room_id, "after-half-close", "still there?")).status.code == 0
    [event] = await reader.wait_events(room_id, 1, kind="comment")
    assert event.client_msg_id == "after-half-close"
