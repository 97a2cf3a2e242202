"""The room stream over WebSocket (--web-listen, docs/web.md): the same session as the
gRPC stream, spoken by a real WebSocket client to a real node on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from websockets.exceptions import InvalidStatus

from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs
from tests.server_process import ServerProcess, free_port
from tests.wire_client import Admin, RawStream, error_info
from tests.ws_client import WsStream

ALLOWED_ORIGIN = "https://shop.example"


@pytest.fixture
def web(tmp_path: Path) -> Iterator[ServerProcess]:
    """A node with its browser port; `web.web_url` is its http:// base."""
    port = free_port()
    proc = ServerProcess(
        tmp_path / "data",
        args=("--web-listen", f"127.0.0.1:{port}", "--web-allowed-origins", ALLOWED_ORIGIN),
        env={"BARRAGE_SHUTDOWN_GRACE_S": "1"},
    )
    proc.web_url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def ws_url(server: ServerProcess) -> str:
    return str(server.web_url).replace("http://", "ws://") + "/ws"  # type: ignore[attr-defined]


@pytest.fixture
async def room(web: ServerProcess, room_id: str) -> AsyncIterator[str]:
    admin = Admin(web.target, web.token("shop", role="service"))
    await admin.create_room(room_id, "ws room")
    yield room_id
    await admin.channel.close()


@pytest.fixture
async def viewer(web: ServerProcess, room: str) -> AsyncIterator[WsStream]:
    stream = await WsStream.open(ws_url(web))
    await stream.hello(web.token("alice", name="Alice"))
    assert (await stream.join(room)).status.code == 0
    yield stream
    await stream.close()


async def test_hello_join_send_ack_and_events_in_order_across_transports(
    web: ServerProcess, room: str, viewer: WsStream
) -> None:
    assert viewer.ws.subprotocol == "barrage.v1"
    grpc_viewer = RawStream(web.target)
    await grpc_viewer.hello(web.token("bob"))
    await grpc_viewer.join(room)
    cursors = []
    for i in range(20):
        result = await viewer.send_comment(room, f"m{i}", f"comment {i}")
        assert result.status.code == 0 and result.cursor
        cursors.append(result.cursor)
    ws_events = await viewer.wait_events(room, 20, kind="comment")
    grpc_events = await grpc_viewer.wait_events(room, 20, kind="comment")
    assert [e.payload.comment.text for e in ws_events] == [f"comment {i}" for i in range(20)]
    assert [e.cursor for e in ws_events] == cursors == [e.cursor for e in grpc_events]
    assert ws_events[0].sender.user_id == "alice"
    await grpc_viewer.close()


async def test_a_comment_sent_on_grpc_reaches_the_browser(web: ServerProcess, room: str, viewer: WsStream) -> None:
    sender = RawStream(web.target)
    await sender.hello(web.token("carol"))
    await sender.join(room)
    assert (await sender.send_comment(room, "g1", "from a phone")).status.code == 0
    (event,) = await viewer.wait_events(room, 1, kind="comment")
    assert event.payload.comment.text == "from a phone"
    await sender.close()


async def test_ping_pong_and_retry_is_answered_with_the_first_cursor(room: str, viewer: WsStream) -> None:
    await viewer.send(rs.ConnectRequest(ping=rs.Ping(nonce=7)))
    assert (await viewer.expect("pong")).nonce == 7
    first = await viewer.send_comment(room, "same-id", "once")
    again = await viewer.send_comment(room, "same-id", "once")
    assert again.duplicate and again.cursor == first.cursor


async def test_resume_from_a_cursor_gets_exactly_what_was_missed(
    web: ServerProcess, room: str, viewer: WsStream
) -> None:
    cursors = [(await viewer.send_comment(room, f"r{i}", f"event {i}")).cursor for i in range(6)]
    late = await WsStream.open(ws_url(web))
    await late.hello(web.token("dave"))
    assert (await late.join(room, resume_cursor=cursors[2])).status.code == 0
    events = await late.wait_events(room, 3, kind="comment")
    await asyncio.sleep(0.3)  # nothing more may arrive
    assert [e.cursor for e in late.events(room, "comment")] == cursors[3:]
    assert [e.payload.comment.text for e in events] == ["event 3", "event 4", "event 5"]
    await late.close()


async def test_shutdown_sends_go_away_then_closes_unavailable(web: ServerProcess, viewer: WsStream) -> None:
    web.proc.send_signal(15)  # type: ignore[union-attr]
    go_away = await viewer.expect("go_away", timeout=10)
    assert go_away.reason
    code, reason = await viewer.wait_close(timeout=15)
    assert code == 4000 + 14  # UNAVAILABLE
    assert reason.startswith("SHUTTING_DOWN:")
    assert web.proc.wait(20) == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("first", "code", "reason"),
    [
        (rs.ConnectRequest(hello=rs.Hello(token="not-a-token")), 4016, "TOKEN_INVALID"),
        (rs.ConnectRequest(hello=rs.Hello()), 4016, "TOKEN_MISSING"),
        (rs.ConnectRequest(ping=rs.Ping(nonce=1)), 4009, "HANDSHAKE_REQUIRED"),
        (b"\xff\xff\xff", 4003, "MALFORMED_FRAME"),
        ("a text message", 4003, "MALFORMED_FRAME"),
    ],
    ids=["bad-token", "no-token", "no-hello", "garbage", "text"],
)
async def test_a_stream_ending_error_is_a_close_frame_with_code_and_reason(
    web: ServerProcess, first: rs.ConnectRequest | bytes | str, code: int, reason: str
) -> None:
    stream = await WsStream.open(ws_url(web))
    await stream.send(first)
    closed_code, closed_reason = await stream.wait_close()
    assert closed_code == code
    assert closed_reason.startswith(f"{reason}:")
    assert len(closed_reason.encode()) <= 123
    await stream.close()


async def test_a_text_message_after_hello_ends_the_stream(web: ServerProcess, viewer: WsStream) -> None:
    await viewer.send("{}")
    code, reason = await viewer.wait_close()
    assert code == 4003 and reason.startswith("MALFORMED_FRAME:")


async def test_a_malformed_binary_message_after_hello_is_answered_in_stream(room: str, viewer: WsStream) -> None:
    await viewer.send(b"\x0a\xff")  # a length running past the end
    error = await viewer.expect("stream_error")
    assert error.status.code == 3 and error_info(error.status).reason == "MALFORMED_FRAME"
    assert (await viewer.send_comment(room, "after", "still here")).status.code == 0


async def test_a_message_over_the_size_limit_is_closed_1009(web: ServerProcess, viewer: WsStream) -> None:
    await viewer.send(b"\x00" * (65 * 1024))
    code, _ = await viewer.wait_close()
    assert code == 1009  # message too big (RFC 6455)


async def test_origins_other_than_the_node_and_the_allowed_list_are_refused(web: ServerProcess) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await WsStream.open(ws_url(web), origin="https://evil.example")
    assert refused.value.response.status_code == 403
    for origin in (ALLOWED_ORIGIN, str(web.web_url), None):  # type: ignore[attr-defined]
        stream = await WsStream.open(ws_url(web), origin=origin)
        await stream.hello(web.token("erin"))
        await stream.close()


async def test_a_plain_get_is_not_upgraded(web: ServerProcess) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{web.web_url}/ws") as response:  # type: ignore[attr-defined]
        assert response.status == 400


async def test_fuzz_and_floods_leave_the_node_serving_with_bounded_memory(web: ServerProcess, room: str) -> None:
    rng = random.Random(18)
    valid = rs.ConnectRequest(
        send=rs.Send(room_id=room, client_msg_id="x", payload=event_pb2.Payload(comment=event_pb2.Comment(text="hi")))
    ).SerializeToString()
    rss_before = web.rss_bytes()
    for round_ in range(30):
        stream = await WsStream.open(ws_url(web))
        if round_ % 2:
            await stream.hello(web.token(f"fuzz{round_}"))
            await stream.join(room)
        for _ in range(40):
            choice = rng.random()
            if choice < 0.4:
                data: bytes | str = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
            elif choice < 0.8:
                data = valid[: rng.randint(0, len(valid))]
            elif choice < 0.9:
                data = "".join(chr(rng.randint(32, 0x2FFF)) for _ in range(rng.randint(1, 50)))
            else:
                data = bytes(rng.getrandbits(8) for _ in range(rng.randint(60_000, 70_000)))
            try:
                await stream.send(data)
            except Exception:
                break  # the server closed it: fine, that is one of the expected answers
        code, _ = await stream.wait_close()
        # 1006: the client kept sending after the server's close frame, so the server's
        # TCP close met unread data and reset the connection before the frame was read.
        assert code is not None and (code in (1000, 1006, 1009) or 4000 <= code <= 4016)
        await stream.close()
    # A flood from clients that never read: the server's writes back up; it must cut or
    # shed, not buffer without bound.
    floods = []
    for i in range(5):
        stream = await WsStream.open(ws_url(web), max_size=None)
        await stream.hello(web.token(f"flood{i}"))
        await stream.join(room)
        stream.pause()
        floods.append(stream)
    ping = rs.ConnectRequest(ping=rs.Ping(nonce=1)).SerializeToString()
    for _ in range(3000):
        for stream in floods:
            if not stream.ws.close_code:
                with contextlib.suppress(Exception):
                    await stream.send(ping)
    for stream in floods:
        stream.resume()
        await stream.close()
    # Still serving, over both transports.
    probe = await WsStream.open(ws_url(web))
    await probe.hello(web.token("probe"))
    assert (await probe.join(room)).status.code == 0
    assert (await probe.send_comment(room, "alive", "still serving")).status.code == 0
    await probe.close()
    grpc_probe = RawStream(web.target)
    await grpc_probe.hello(web.token("probe2"))
    await grpc_probe.close()
    grown = web.rss_bytes() - rss_before
    assert grown < 80 * 1024 * 1024, f"RSS grew by {grown / 1e6:.1f} MB"


async def test_a_stalled_websocket_viewer_is_isolated_and_loses_nothing_critical(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess(
        tmp_path / "data",
        args=("--web-listen", f"127.0.0.1:{port}"),
        env={"BARRAGE_OUTBOX_MAX_BYTES": "65536", "BARRAGE_SENDS_PER_SECOND": "2000", "BARRAGE_SEND_BURST": "2000"},
    )
    server.web_url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    server.start()
    room = "stalled-ws"
    admin = Admin(server.target, server.token("ops", role="service"))
    streams: list[WsStream] = []
    try:
        await admin.create_room(room)
        stalled = await WsStream.open(ws_url(server), small_buffers=True)
        streams.append(stalled)
        await stalled.hello(server.token("frozen-phone"))
        await stalled.join(room)
        readers = []
        for i in range(2):
            reader = await WsStream.open(ws_url(server))
            streams.append(reader)
            await reader.hello(server.token(f"reader-{i}"))
            await reader.join(room)
            readers.append(reader)
        sender = RawStream(server.target)
        await sender.hello(server.token("sender"))
        await sender.join(room)
        stalled.pause()
        rss_before = server.rss_bytes()
        text = "这个多少钱? " + "货" * 450
        announcements: list[str] = []
        for n in range(600):
            payload = event_pb2.Payload(comment=event_pb2.Comment(text=text))
            await sender.send(rs.ConnectRequest(send=rs.Send(room_id=room, client_msg_id=f"c{n}", payload=payload)))
            if n % 100 == 50:
                notice = event_pb2.Payload(announcement=event_pb2.Announcement(text=f"flash sale {n}"))
                announcements.append((await admin.publish(room, f"a{n}", notice)).cursor)
            await asyncio.sleep(0.004)
        # The readers get everything, in order, while one viewer is stuck.
        for reader in readers:
            comments = await reader.wait_events(room, 600, timeout=30, kind="comment")
            assert [e.client_msg_id for e in comments] == [f"c{n}" for n in range(600)]
            cursors = [e.cursor for e in await reader.wait_events(room, 6, timeout=30, kind="announcement")]
            assert cursors == announcements
        assert server.rss_bytes() - rss_before < 40 * 1024 * 1024
        # The stuck one wakes up: every critical event is there, normal ones were shed and
        # counted (the outbox's policy, once its socket was behind), none silently.
        stalled.resume()
        async with asyncio.timeout(30):
            while len(stalled.events(room, "comment")) + stalled.omitted(room) < 600:
                await asyncio.sleep(0.05)
        assert stalled.omitted(room) > 0
        assert [e.cursor for e in stalled.events(room, "announcement")] == announcements
        positions = [e.cursor for e in stalled.events(room)]
        assert positions == sorted(positions, key=lambda c: int(c.rsplit(".", 1)[1]))
        await sender.close()
    finally:
        for stream in streams:
            await stream.close()
        await admin.channel.close()
        server.stop()


async def test_no_hello_within_10_s_closes_4004(web: ServerProcess) -> None:
    stream = await WsStream.open(ws_url(web))
    code, reason = await stream.wait_close(timeout=20)
    assert code == 4000 + 4  # DEADLINE_EXCEEDED
    assert reason.startswith("HANDSHAKE_REQUIRED:")
    await stream.close()


def test_the_development_secret_is_refused_beyond_loopback_on_the_browser_port(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "barrage.server",
        "--listen", f"127.0.0.1:{free_port()}",
        "--web-listen", f"0.0.0.0:{free_port()}",
        "--log", f"embedded:{tmp_path / 'data'}",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARRAGE_")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode != 0
    assert "development token secret" in done.stderr + done.stdout
