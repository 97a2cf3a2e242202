"""Abuse a real node on loopback: every case ends with a clear status, the node stays
up, its memory stays within a bound, and nothing acknowledged is lost.

One node serves the module (small limits so floods end quickly); the node-wide stream
limit and the development secret get their own processes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

import grpc
import hpack
import pytest
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from barrage.loadtest import h2
from barrage.server.config import DEV_SECRET, Settings
from barrage.server.core import dedupe_keys, policy, wire
from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs
from tests.server_process import ROOT, ServerProcess, free_port
from tests.wire_client import Admin, RawStream, end_status, error_info

RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
PER_USER = 4
STALLED_S = 1.0
OUTBOX = 16 * 1024
FILL_EVENTS = 3000
"""~6 MB of room events: more than a client's flow-control windows take in."""
RSS_GROWTH_BOUND = 48 * 1024 * 1024
"""How much a node may grow across this whole module (the audit saw +25 MB from one flood)."""
# A client that does not read: no BDP probing, so grpc's window stays small (64 KiB),
# as a phone's would once its app stops reading.
NO_READ_OPTIONS = (("grpc.http2.bdp_probe", 0),)


class Node:
    def __init__(self, proc: ServerProcess) -> None:
        self.proc = proc
        self.base_rss = 0
        self.acked: dict[str, set[str]] = {}
        """room -> cursors acknowledged OK to any client in this module."""

    def token(self, user: str, role: str = "viewer") -> str:
        return self.proc.token(user, role)

    def ack(self, room_id: str, result: rs.SendResult) -> None:
        if result.status.code == 0 and result.cursor:
            self.acked.setdefault(room_id, set()).add(result.cursor)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    args = (
        "--max-streams-per-user", str(PER_USER),
        "--stalled-stream-s", str(STALLED_S),
        "--outbox-max-bytes", str(OUTBOX),
        "--insights", "false",
    )  # fmt: skip
    proc = ServerProcess(tmp_path_factory.mktemp("abuse") / "data", args=args)
    proc.start()
    node = Node(proc)
    node.base_rss = proc.rss_bytes()
    try:
        yield node
    finally:
        proc.stop()


@pytest.fixture
async def room(node: Node) -> AsyncIterator[str]:
    room_id = f"abuse-{uuid.uuid4().hex[:10]}"
    admin = Admin(node.proc.target, node.token("ops", "service"))
    await admin.create_room(room_id)
    await admin.close()
    yield room_id
    await assert_healthy(node, room_id)


async def assert_healthy(node: Node, room_id: str) -> None:
    """The node serves, a fresh stream can post, memory is bounded, no ack was lost."""
    assert node.proc.proc is not None and node.proc.proc.poll() is None, node.proc.logs()[-3000:]
    async with grpc.aio.insecure_channel(node.proc.target) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    witness = RawStream(node.proc.target)
    try:
        await witness.hello(node.token(f"witness-{uuid.uuid4().hex[:6]}"))
        await witness.join(room_id)
        result = await witness.send_comment(room_id, "witness", "still serving")
        assert result.status.code == 0, result.status
        node.ack(room_id, result)
    finally:
        await witness.close()
    growth = node.proc.rss_bytes() - node.base_rss
    assert growth < RSS_GROWTH_BOUND, f"node grew by {growth / 1e6:.1f} MB"
    admin = Admin(node.proc.target, node.token("ops", "service"))
    try:
        stored = {event.cursor for event in await admin.all_events(room_id)}
    finally:
        await admin.close()
    lost = node.acked.get(room_id, set()) - stored
    assert not lost, f"{len(lost)} acknowledged events are missing from history"


async def joined(node: Node, room_id: str, user: str, options: tuple[tuple[str, int], ...] = ()) -> RawStream:
    stream = RawStream(node.proc.target, options)
    await stream.hello(node.token(user))
    assert (await stream.join(room_id)).status.code == 0
    return stream


def comment_send(room_id: str, msg_id: str, text: str = "hi") -> rs.ConnectRequest:
    payload = event_pb2.Payload(comment=event_pb2.Comment(text=text))
    return rs.ConnectRequest(send=rs.Send(room_id=room_id, client_msg_id=msg_id, payload=payload))


def unknown_field(number: int, size: int) -> bytes:
    """A length-delimited field no barrage.v1 message defines."""
    return wire.length_delimited(wire.varint(number << 3 | 2), b"\x00" * size)


async def ended_with(stream: RawStream, timeout: float = 20.0) -> tuple[grpc.StatusCode, str]:
    stream.resume()
    ended = await stream.wait_end(timeout)
    assert ended is not None, "the stream ended without an error status"
    return ended.code(), error_info(end_status(ended)).reason


# ------------------------------------------------------------------ frames


async def test_random_and_truncated_frames_end_the_stream_with_a_reason(node: Node, room: str) -> None:
    rng = random.Random(14)
    valid = comment_send(room, "whole").SerializeToString()
    frames: list[rs.ConnectRequest | bytes] = handshake(node, room, "fuzzer")
    frames += [valid[:cut] for cut in range(1, len(valid))]  # every truncation of a valid send
    frames += [rng.randbytes(rng.randrange(1, 512)) for _ in range(200)]
    flood = await asyncio.to_thread(flood_without_reading, node.proc.target, frames, 0.5)
    # Undecodable frames end the stream after 20; frames that decode into nonsense are
    # refused until the stream's error budget ends it.
    assert (flood.code, flood.reason) in {
        (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_FRAME"),
        (RESOURCE_EXHAUSTED, "STREAM_OVERLOADED"),
    }
    for result in flood.results():
        node.ack(room, result)
    # Random bytes as the very first frame: the handshake fails, clearly.
    for _ in range(5):
        first = [rng.randbytes(rng.randrange(1, 256))]
        flood = await asyncio.to_thread(flood_without_reading, node.proc.target, first, 0.0)
        assert flood.reason in {"MALFORMED_FRAME", "HANDSHAKE_REQUIRED"}


async def test_unknown_fields_are_dropped_before_storing_and_oversized_payloads_are_refused(
    node: Node, room: str
) -> None:
    stream = await joined(node, room, "padder")
    # 60 KB of unknown fields inside Payload.comment, inside Payload and inside Send.
    comment = wire.length_delimited(wire.varint(1 << 3 | 2), b"hi") + unknown_field(999, 20_000)
    payload = wire.length_delimited(wire.varint(1 << 3 | 2), comment) + unknown_field(998, 20_000)
    send = (
        wire.length_delimited(wire.varint(1 << 3 | 2), room.encode())
        + wire.length_delimited(wire.varint(2 << 3 | 2), b"padded")
        + wire.length_delimited(wire.varint(5 << 3 | 2), payload)
        + unknown_field(997, 20_000)
    )
    await stream.send(wire.length_delimited(wire.varint(4 << 3 | 2), send))
    result = await stream.send_result("padded")
    assert result.status.code == 0, result.status
    node.ack(room, result)
    (event,) = [e for e in await stream.wait_events(room, 1, kind="comment") if e.client_msg_id == "padded"]
    assert event.payload.comment.text == "hi"
    assert event.ByteSize() < 400, "the stored event carries only known fields"
    # The admin API is the same ingest: a padded payload is stored without its padding.
    padded = event_pb2.Payload.FromString(payload)  # keeps the unknown fields, and sends them
    assert padded.ByteSize() > 40_000
    admin = Admin(node.proc.target, node.token("ops", "service"))
    try:
        published = await admin.publish(room, "padded-admin", padded)
        stored = [e for e in await admin.all_events(room, "comment") if e.client_msg_id == "padded-admin"]
    finally:
        await admin.close()
    assert [e.cursor for e in stored] == [published.cursor]
    assert stored[0].ByteSize() < 400
    # Known fields past the kind's maximum encoded size: refused, with the limit.
    mentions = [f"user-{n:03d}-" + "m" * 300 for n in range(20)]
    big = event_pb2.Payload(comment=event_pb2.Comment(text="hello", mention_user_ids=mentions))
    await stream.send(rs.ConnectRequest(send=rs.Send(room_id=room, client_msg_id="big", payload=big)))
    refused = await stream.send_result("big")
    assert refused.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    info = error_info(refused.status)
    assert info.reason == "PAYLOAD_TOO_LARGE"
    assert info.metadata["max_bytes"] == "6144"
    await stream.close()


def flood_frames(kind: str, room_id: str, token: str, n: int) -> list[rs.ConnectRequest | bytes]:
    if kind == "empty":
        return [rs.ConnectRequest()] * n
    if kind == "ping":
        return [rs.ConnectRequest(ping=rs.Ping(nonce=i)) for i in range(n)]
    if kind == "join":
        return [rs.ConnectRequest(join_room=rs.JoinRoom(room_id=room_id))] * n
    if kind == "leave":
        return [rs.ConnectRequest(leave_room=rs.LeaveRoom(room_id="not-joined"))] * n
    if kind == "refresh":
        return [rs.ConnectRequest(refresh_token=rs.RefreshToken(token=token))] * n
    if kind == "hello":
        return [rs.ConnectRequest(hello=rs.Hello(token=token))] * n
    if kind == "undecodable":
        return [b"\xff\xff\xff\xff"] * n
    assert kind == "send"
    return [comment_send(room_id, f"flood-{i}") for i in range(n)]


class Flood:
    """What a client that floods without reading saw once it read at last."""

    def __init__(self, code: grpc.StatusCode, reason: str, messages: list[rs.ServerMessage]) -> None:
        self.code = code
        self.reason = reason
        self.messages = messages

    def results(self) -> list[rs.SendResult]:
        return [m.send_result for m in self.messages if m.WhichOneof("kind") == "send_result"]


def flood_without_reading(target: str, frames: Iterable[rs.ConnectRequest | bytes], unread_s: float) -> Flood:
    """Send every frame, read nothing for `unread_s`, then read to the end.

    The synchronous client: its request thread stops quietly when the server has ended
    the call, so the status read is the server's (grpc.aio's client reports INTERNAL
    for a write that races the server's end)."""
    with grpc.insecure_channel(target, options=NO_READ_OPTIONS) as channel:
        connect = channel.stream_stream(
            "/barrage.v1.RoomService/Connect",
            request_serializer=lambda r: r if isinstance(r, bytes) else r.SerializeToString(),
            response_deserializer=rs.ConnectResponse.FromString,
        )
        call = connect(iter(frames), timeout=60)
        time.sleep(unread_s)
        messages: list[rs.ServerMessage] = []
        try:
            for response in call:
                messages.extend(response.messages)
        except grpc.RpcError:
            pass
        status = rpc_status.from_call(call)
        assert status is not None, f"no rich status: {call.code()} {call.details()}"
        return Flood(call.code(), error_info(status).reason, messages)


def handshake(node: Node, room_id: str, user: str) -> list[rs.ConnectRequest | bytes]:
    return [
        rs.ConnectRequest(hello=rs.Hello(token=node.token(user))),
        rs.ConnectRequest(join_room=rs.JoinRoom(room_id=room_id)),
    ]


@pytest.mark.parametrize("kind", ["empty", "ping", "join", "leave", "refresh", "hello", "undecodable", "send"])
async def test_a_flood_of_any_frame_kind_without_reading_ends_the_stream(node: Node, room: str, kind: str) -> None:
    user = f"flooder-{kind}"
    frames = handshake(node, room, user) + flood_frames(kind, room, node.token(user), 3000)
    flood = await asyncio.to_thread(flood_without_reading, node.proc.target, frames, 1.0)
    if kind == "undecodable":
        assert (flood.code, flood.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_FRAME")
    else:
        assert flood.code == RESOURCE_EXHAUSTED
        assert flood.reason in {"STREAM_OVERLOADED", "RATE_LIMITED"}
    assert len(flood.messages) <= 400, "answers and refusals are bounded"
    for result in flood.results():
        node.ack(room, result)
    if kind == "send":
        assert any(r.status.code == 0 for r in flood.results())


class DeafStream(h2.Stream):
    """A raw HTTP/2 Connect stream whose owner can stop reading its socket altogether —
    a phone whose app froze — while it goes on sending. (grpc's own clients keep reading
    the socket into their buffers whether the application reads or not, so the server
    would see a client that keeps up.)"""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[rs.ServerMessage] = []
        self.ended_at: float | None = None

    def on_message(self, data: bytes) -> None:
        self.messages.extend(rs.ConnectResponse.FromString(data).messages)

    def on_end(self, reason: str) -> None:
        self.ended_at = time.monotonic()

    def kinds(self, kind: str) -> list[rs.ServerMessage]:
        return [m for m in self.messages if m.WhichOneof("kind") == kind]


def trailers(conn: h2.Connection, stream: h2.Stream) -> dict[str, bytes]:
    """The last header block the server sent on `stream`, decoded (the trailers)."""
    assert conn.header_blocks is not None
    decoder = hpack.Decoder()
    last: dict[str, bytes] = {}
    for sid, block in conn.header_blocks:  # one dynamic table for the connection, in order
        headers = {bytes(k).decode(): bytes(v) for k, v in decoder.decode(block, raw=True)}
        if sid == stream.id:
            last = headers
    return last


async def test_a_client_that_sends_but_never_reads_is_cut_off_and_its_backlog_freed(node: Node, room: str) -> None:
    host, port = node.proc.target.rsplit(":", 1)
    # A small stream window (a client's own choice), so the node's writes must wait even
    # when its outbox sheds most of the room's events for this client: ~40 KB in 3000.
    conn = await h2.connect(host, int(port), 8 * 1024)
    conn.header_blocks = []
    deaf = DeafStream()
    conn.open_stream(deaf, "/barrage.v1.RoomService/Connect")
    deaf.send(*(f if isinstance(f, bytes) else f.SerializeToString() for f in handshake(node, room, "deaf")))
    try:
        async with asyncio.timeout(10):
            while not deaf.kinds("join_result"):
                await asyncio.sleep(0.02)
        deaf.pause()  # from here on the socket is not read at all
        admin = Admin(node.proc.target, node.token("ops", "service"))
        text = "\U0001f600" * 480  # ~2 KB a comment

        async def publish(first: int) -> None:
            for i in range(first, FILL_EVENTS, 8):
                await admin.publish(room, f"fill-{i}", event_pb2.Payload(comment=event_pb2.Comment(text=f"{text} {i}")))

        async def ping_politely() -> None:
            for i in range(100):  # within every rate limit
                await asyncio.sleep(0.1)
                deaf.send(rs.ConnectRequest(ping=rs.Ping(nonce=i)).SerializeToString())

        try:
            await asyncio.gather(ping_politely(), *(publish(first) for first in range(8)))
        finally:
            await admin.close()
        deaf.resume()  # read what the server had written before it gave up, then its end
        async with asyncio.timeout(10):
            while deaf.ended_at is None:
                await asyncio.sleep(0.05)
        ended = trailers(conn, deaf)
        assert ended.get("grpc-status") == b"8", ended  # RESOURCE_EXHAUSTED
        encoded = ended["grpc-status-details-bin"]  # "-bin" headers are base64, unpadded
        details = status_pb2.Status.FromString(base64.b64decode(encoded + b"=" * (-len(encoded) % 4)))
        assert error_info(details).reason == "STREAM_OVERLOADED"
        assert len(deaf.kinds("pong")) < 100, "the node stopped answering a client that does not read"
    finally:
        conn.close()


# ----------------------------------------------------------------- streams


async def test_one_user_cannot_open_more_than_the_per_user_stream_limit(node: Node, room: str) -> None:
    streams = [await joined(node, room, "hoarder") for _ in range(PER_USER)]
    extra = RawStream(node.proc.target)
    await extra.send(rs.ConnectRequest(hello=rs.Hello(token=node.token("hoarder"))))
    ended = await extra.wait_end()
    assert ended is not None and ended.code() == RESOURCE_EXHAUSTED
    info = error_info(end_status(ended))
    assert (info.reason, info.metadata["scope"]) == ("TOO_MANY_STREAMS", "user")
    assert not [m for m in extra.received if m.WhichOneof("kind") == "welcome"], "refused before any welcome"
    await extra.close()
    # Another user and a service are not affected; closing one stream frees a place.
    other = await joined(node, room, "neighbour")
    service = [RawStream(node.proc.target) for _ in range(PER_USER + 1)]
    for s in service:
        await s.hello(node.token("backend", "service"))
    await streams.pop().close()
    await asyncio.sleep(0.2)
    again = await joined(node, room, "hoarder")
    for s in [*streams, other, again, *service]:
        await s.close()


async def test_a_flood_of_streams_from_one_user_is_bounded(node: Node, room: str) -> None:
    opened = [RawStream(node.proc.target) for _ in range(60)]
    for s in opened:
        await s.send(rs.ConnectRequest(hello=rs.Hello(token=node.token("stormer"))))
    welcomed = 0
    refused = 0
    for s in opened:
        with contextlib.suppress(AssertionError):
            await s.expect("welcome", timeout=10)
            welcomed += 1
        if s.done:
            refused += 1
            assert s.ended is not None and error_info(end_status(s.ended)).reason == "TOO_MANY_STREAMS"
    assert welcomed == PER_USER
    assert refused == 60 - PER_USER
    for s in opened:
        await s.close()


async def test_the_node_wide_stream_limit_is_answered_clearly(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path / "data", args=("--max-streams", "6", "--insights", "false"))
    proc.start()
    base_rss = proc.rss_bytes()
    streams: list[RawStream] = []
    try:
        for n in range(6):
            stream = RawStream(proc.target)
            await stream.hello(proc.token(f"user-{n}"))
            streams.append(stream)
        refused = RawStream(proc.target)
        await refused.send(rs.ConnectRequest(hello=rs.Hello(token=proc.token("late"))))
        ended = await refused.wait_end()
        assert ended is not None and ended.code() == RESOURCE_EXHAUSTED
        info = error_info(end_status(ended))
        assert (info.reason, info.metadata["scope"]) == ("TOO_MANY_STREAMS", "node")
        await refused.close()
        await streams.pop().close()
        await asyncio.sleep(0.2)
        late = RawStream(proc.target)
        await late.hello(proc.token("late"))  # the node lives on, and serves
        streams.append(late)
        assert proc.rss_bytes() - base_rss < RSS_GROWTH_BOUND
    finally:
        for stream in streams:
            await stream.close()
        proc.stop()


async def test_every_refused_stream_sees_the_refusal_not_an_internal_error(tmp_path: Path) -> None:
    """A grpc.aio client whose Hello is still being written when the refusal arrives reported
    INTERNAL "Failed execute_batch" instead of it (grpc/grpc#36066; 25 of 150 here before the
    node read the Hello first): each of 60 refusals in a row must arrive as itself."""
    proc = ServerProcess(tmp_path / "data", args=("--max-streams", "1", "--insights", "false"))
    proc.start()
    holder = RawStream(proc.target)
    try:
        await holder.hello(proc.token("holder"))
        codes = []
        for n in range(60):
            refused = RawStream(proc.target)
            await refused.send(rs.ConnectRequest(hello=rs.Hello(token=proc.token(f"late-{n}"))))
            ended = await refused.wait_end()
            await refused.close()
            codes.append(ended.code() if ended is not None else None)
        assert codes == [RESOURCE_EXHAUSTED] * 60, codes
    finally:
        await holder.close()
        proc.stop()


# --------------------------------------------------------- also found


async def test_dedupe_keys_cannot_be_confused_across_users(node: Node, room: str) -> None:
    slashed = await joined(node, room, "alice/x")
    plain = await joined(node, room, "alice")
    first = await plain.send_comment(room, "x/1", "from alice")
    second = await slashed.send_comment(room, "1", "from alice/x")
    assert first.status.code == 0 and second.status.code == 0
    assert not second.duplicate
    assert first.cursor != second.cursor
    node.ack(room, first)
    node.ack(room, second)
    retry = await slashed.send_comment(room, "1", "from alice/x")
    assert retry.duplicate and retry.cursor == second.cursor  # retries still dedupe
    await slashed.close()
    await plain.close()


def test_dedupe_keys_split_one_way_only_and_keep_the_old_form_for_plain_ids() -> None:
    assert dedupe_keys.user_key("alice/x", "1") != dedupe_keys.user_key("alice", "x/1")
    assert dedupe_keys.user_key("a%2Fb", "1") != dedupe_keys.user_key("a/b", "1")
    assert dedupe_keys.user_key("alice", "msg-1") == "alice/msg-1"  # as before the change
    # Keys the server makes never equal a user's key, whatever the user is called.
    assert dedupe_keys.server_key("poll", "p1", "bob") != dedupe_keys.user_key("poll", "p1/bob")
    assert dedupe_keys.server_key("system", "draw") != dedupe_keys.user_key("barrage", "draw")
    assert dedupe_keys.server_key("poll", "a:b", "c") != dedupe_keys.server_key("poll", "a", "b:c")


def test_the_development_secret_is_refused_off_loopback_however_it_is_given(tmp_path: Path) -> None:
    for given, dev in ((DEV_SECRET, True), (f" {DEV_SECRET}\n", True), ("a-real-secret", False)):
        assert Settings.model_validate({"jwt_secret": given}).uses_dev_secret() is dev
    port = free_port()
    base = [sys.executable, "-m", "barrage.server", "--log", f"embedded:{tmp_path / 'data'}", "--insights", "false"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARRAGE_")}
    attempts = [
        ([*base, "--listen", f"0.0.0.0:{port}"], env),  # no secret at all
        ([*base, "--listen", f"0.0.0.0:{port}", "--jwt-secret", DEV_SECRET], env),  # flag
        ([*base, "--listen", f"[::]:{port}"], {**env, "BARRAGE_JWT_SECRET": DEV_SECRET}),  # environment
        ([*base, "--listen", f":{port}"], {**env, "BARRAGE_JWT_SECRET": DEV_SECRET}),
    ]
    for command, environment in attempts:
        done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, timeout=60, check=False)
        assert done.returncode != 0
        assert b"development token secret" in done.stderr + done.stdout


def test_every_kind_a_client_may_post_has_a_maximum_size() -> None:
    assert set(policy.POST) <= set(policy.MAX_PAYLOAD_BYTES)
