"""Bad input gets a clear status with ErrorInfo; the stream or node survives; acks stay."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest

from barrage.server.auth import issue_dev_token
from barrage.server.core import wire
from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs
from tests.server_process import ServerProcess
from tests.wire_client import Admin, RawStream, end_status, error_info, retry_delay_s

INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION.value[0]
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED.value[0]
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]


@pytest.fixture
async def admin(server: ServerProcess, room_id: str) -> AsyncIterator[Admin]:
    client = Admin(server.target, server.token("ops", role="service"))
    await client.create_room(room_id)
    yield client
    await client.close()


@pytest.fixture
async def alice(server: ServerProcess, room_id: str, admin: Admin) -> AsyncIterator[RawStream]:
    stream = RawStream(server.target)
    await stream.hello(server.token("alice"))
    await stream.join(room_id)
    yield stream
    await stream.close()


async def assert_alive(stream: RawStream, room_id: str, msg_id: str) -> None:
    result = await stream.send_comment(room_id, msg_id, "still here")
    assert result.status.code == 0, result.status


def send_frame(room_id: str, msg_id: str, text: bytes) -> bytes:
    """A Send frame built by hand, so its text can be invalid UTF-8."""
    comment = wire.length_delimited(wire.varint(1 << 3 | 2), text)
    payload = wire.length_delimited(wire.varint(1 << 3 | 2), comment)
    send = (
        wire.length_delimited(wire.varint(1 << 3 | 2), room_id.encode())
        + wire.length_delimited(wire.varint(2 << 3 | 2), msg_id.encode())
        + wire.length_delimited(wire.varint(5 << 3 | 2), payload)
    )
    return wire.length_delimited(wire.varint(4 << 3 | 2), send)


async def test_the_hand_built_frame_is_a_valid_send_when_its_text_is_valid(alice: RawStream, room_id: str) -> None:
    await alice.send(send_frame(room_id, "ok-1", "héllo".encode()))
    result = await alice.expect("send_result", lambda r: r.client_msg_id == "ok-1")
    assert result.status.code == 0


async def test_malformed_frames_get_a_stream_error_and_the_stream_survives(alice: RawStream, room_id: str) -> None:
    await alice.send(b"\xff\xff\xff\xff not protobuf")
    error = await alice.expect("stream_error")
    assert error.status.code == INVALID_ARGUMENT
    assert error_info(error.status).reason == "MALFORMED_FRAME"
    await alice.send(send_frame(room_id, "bad-utf8", b"caf\xc3 \xff"))
    error = await alice.expect("stream_error")
    assert error_info(error.status).reason == "MALFORMED_FRAME"
    await assert_alive(alice, room_id, "after-malformed")


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "TEXT_EMPTY"), ("   \n ", "TEXT_EMPTY"), ("x" * 501, "TEXT_TOO_LONG"), ("bell\x07", "INVALID_FIELD")],
)
async def test_bad_text_is_refused_with_invalid_argument(
    alice: RawStream, room_id: str, text: str, reason: str
) -> None:
    result = await alice.send_comment(room_id, "t", text)
    assert result.status.code == INVALID_ARGUMENT
    assert error_info(result.status).reason == reason
    await assert_alive(alice, room_id, "after-text")


async def test_a_500_character_comment_is_accepted(alice: RawStream, room_id: str) -> None:
    assert (await alice.send_comment(room_id, "long", "弹" * 500)).status.code == 0


async def test_sending_before_the_handshake_ends_the_stream(server: ServerProcess, room_id: str) -> None:
    stream = RawStream(server.target)
    payload = event_pb2.Payload(comment=event_pb2.Comment(text="hi"))
    await stream.send(rs.ConnectRequest(send=rs.Send(room_id=room_id, client_msg_id="x", payload=payload)))
    ended = await stream.wait_end()
    assert ended is not None and ended.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(end_status(ended)).reason == "HANDSHAKE_REQUIRED"
    await stream.close()


@pytest.mark.parametrize(
    ("token_kind", "reason"),
    [
        ("missing", "TOKEN_MISSING"),
        ("expired", "TOKEN_EXPIRED"),
        ("forged", "TOKEN_INVALID"),
        ("junk", "TOKEN_INVALID"),
    ],
)
async def test_bad_tokens_end_the_stream_unauthenticated(server: ServerProcess, token_kind: str, reason: str) -> None:
    token = {
        "missing": "",
        "expired": server.token("alice", ttl_s=-60),
        "forged": issue_dev_token("another-secret-of-at-least-32-bytes!", user_id="alice", role="host"),
        "junk": "not.a.jwt",
    }[token_kind]
    stream = RawStream(server.target)
    await stream.send(rs.ConnectRequest(hello=rs.Hello(token=token)))
    ended = await stream.wait_end()
    assert ended is not None and ended.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info(end_status(ended)).reason == reason
    await stream.close()


async def test_a_frame_claiming_another_identity_is_refused(server: ServerProcess) -> None:
    stream = RawStream(server.target)
    await stream.send(rs.ConnectRequest(hello=rs.Hello(token=server.token("alice"), user_id="the-host")))
    ended = await stream.wait_end()
    assert ended is not None and ended.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(end_status(ended)).reason == "IDENTITY_MISMATCH"
    await stream.close()


async def test_refreshing_to_another_users_token_is_refused(
    alice: RawStream, server: ServerProcess, room_id: str
) -> None:
    await alice.send(rs.ConnectRequest(refresh_token=rs.RefreshToken(token=server.token("mallory"))))
    error = await alice.expect("stream_error")
    assert error_info(error.status).reason == "IDENTITY_MISMATCH"
    await assert_alive(alice, room_id, "after-refresh")


async def test_joining_unknown_or_closed_rooms_is_refused(
    alice: RawStream, admin: Admin, server: ServerProcess, room_id: str
) -> None:
    unknown = await alice.join("no-such-room")
    assert unknown.status.code == NOT_FOUND
    assert error_info(unknown.status).reason == "ROOM_NOT_FOUND"
    bad_id = await alice.join("spaces are not allowed")
    assert bad_id.status.code == INVALID_ARGUMENT
    await admin.create_room("closing-room")
    await admin.close_room("closing-room", "show over")
    closed = await alice.join("closing-room")
    assert closed.status.code == FAILED_PRECONDITION
    assert error_info(closed.status).reason == "ROOM_CLOSED"
    await assert_alive(alice, room_id, "after-joins")


async def test_sending_to_a_room_not_joined_is_refused(alice: RawStream, admin: Admin) -> None:
    await admin.create_room("elsewhere")
    result = await alice.send_comment("elsewhere", "x", "hi")
    assert result.status.code == FAILED_PRECONDITION
    assert error_info(result.status).reason == "NOT_JOINED"


async def test_a_viewer_may_not_post_announcements(alice: RawStream, room_id: str) -> None:
    payload = event_pb2.Payload(announcement=event_pb2.Announcement(text="free iPhones"))
    await alice.send(rs.ConnectRequest(send=rs.Send(room_id=room_id, client_msg_id="ann", payload=payload)))
    result = await alice.expect("send_result")
    assert result.status.code == PERMISSION_DENIED
    assert error_info(result.status).reason == "ROLE_FORBIDDEN"


async def test_an_oversized_frame_ends_only_its_own_stream(
    alice: RawStream, server: ServerProcess, room_id: str
) -> None:
    await alice.send(send_frame(room_id, "huge", b"x" * 100_000))
    ended = await alice.wait_end()
    assert ended is not None and ended.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    other = RawStream(server.target)
    await other.hello(server.token("bob"))
    await other.join(room_id)
    await assert_alive(other, room_id, "node-survived")
    await other.close()


async def test_a_flood_is_rate_limited_with_retry_info_then_cut_off(
    alice: RawStream, server: ServerProcess, admin: Admin, room_id: str
) -> None:
    payload = event_pb2.Payload(comment=event_pb2.Comment(text="spam"))
    for n in range(60):
        await alice.send(rs.ConnectRequest(send=rs.Send(room_id=room_id, client_msg_id=f"f{n}", payload=payload)))
    results = [await alice.send_result(f"f{n}") for n in range(60)]
    accepted = [r for r in results if r.status.code == 0]
    limited = [r for r in results if r.status.code == RESOURCE_EXHAUSTED]
    assert 15 <= len(accepted) <= 30
    assert len(accepted) + len(limited) == 60
    assert error_info(limited[0].status).reason == "RATE_LIMITED"
    delay = retry_delay_s(limited[0].status)
    assert delay is not None and 0 < delay <= 1.0
    # Keep flooding, ignoring every refusal: the stream is cut off, the node lives on.
    # (One frame at a time, so the client stops sending once the server has ended it.)
    for n in range(400):
        if alice.done:
            break
        await alice.send(rs.ConnectRequest(send=rs.Send(room_id=room_id, client_msg_id=f"g{n}", payload=payload)))
        with contextlib.suppress(AssertionError):
            await alice.send_result(f"g{n}")
    ended = await alice.wait_end()
    assert ended is not None and ended.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    history = await admin.all_events(room_id)
    assert {e.cursor for e in history} >= {r.cursor for r in accepted}
    bob = RawStream(server.target)
    await bob.hello(server.token("bob"))
    await bob.join(room_id)
    await assert_alive(bob, room_id, "after-flood")
    await bob.close()


async def test_a_second_hello_and_an_empty_frame_are_answered_in_stream(alice: RawStream, room_id: str) -> None:
    await alice.send(rs.ConnectRequest(hello=rs.Hello(token="whatever")))
    assert error_info((await alice.expect("stream_error")).status).reason == "HANDSHAKE_REQUIRED"
    await alice.send(rs.ConnectRequest())
    assert (await alice.expect("stream_error")).status.code == INVALID_ARGUMENT
    await assert_alive(alice, room_id, "after-hello")


async def test_a_malformed_traceparent_is_dropped_not_refused(alice: RawStream, room_id: str) -> None:
    payload = event_pb2.Payload(comment=event_pb2.Comment(text="traced?"))
    for n, parent in enumerate(("garbage", "x" * 20_000, "00-" + "0" * 32)):
        send = rs.Send(room_id=room_id, client_msg_id=f"tp{n}", traceparent=parent, tracestate="a=b", payload=payload)
        await alice.send(rs.ConnectRequest(send=send))
        assert (await alice.send_result(f"tp{n}")).status.code == 0
    events = await alice.wait_events(room_id, 3, kind="comment")
    assert [(e.traceparent, e.tracestate) for e in events] == [("", "")] * 3
    good = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    send = rs.Send(room_id=room_id, client_msg_id="tp-ok", traceparent=good, tracestate="a=b", payload=payload)
    await alice.send(rs.ConnectRequest(send=send))
    await alice.send_result("tp-ok")
    (*_, last) = await alice.wait_events(room_id, 4, kind="comment")
    assert (last.traceparent, last.tracestate) == (good, "a=b")
