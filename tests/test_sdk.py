"""The Python SDK against a real server over real gRPC on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from barrage.clients.admin import AdminClient
from barrage.clients.sdk import (
    Ack,
    BarrageError,
    Client,
    ClientOptions,
    ConnectionFailed,
    JoinError,
    Omitted,
    ResumeGap,
    RoomItem,
    SendError,
    Subscription,
    SubscriptionEnded,
)
from barrage.clients.sdk.backoff import Backoff
from barrage.clients.sdk.dedupe import RecentIds
from barrage.clients.sdk.policy import after_join, send_retry_delay
from barrage.v1 import admin_service_pb2, admin_service_pb2_grpc, event_pb2
from barrage.v1 import room_service_pb2 as rs
from tests.server_process import ServerProcess

# Reconnect quickly in tests: a restarted server is back within a second or two.
FAST = ClientOptions(backoff_base_s=0.05, backoff_max_s=0.5, send_timeout_s=60.0)


@pytest.fixture
async def admin(server: ServerProcess, room_id: str) -> AsyncIterator[AdminClient]:
    async with AdminClient(server.target, server.token("ops", role="service")) as client:
        await client.create_room(room_id, title="test room")
        yield client


CONTENT = frozenset({"comment", "announcement", "room_closed"})
"""The event types these tests publish. The server adds others on its own (viewer
counts and such, ephemeral by design: latest value wins, and they may be coalesced), so
order, gap and duplicate checks are made on these."""


def is_content(event: event_pb2.Event) -> bool:
    return event.payload.WhichOneof("kind") in CONTENT


async def take_events(items: Subscription, count: int, timeout_s: float = 30.0) -> list[event_pb2.Event]:
    """The next `count` content events; any item other than an event fails the test (no
    gap may be hidden)."""
    events: list[event_pb2.Event] = []
    async with asyncio.timeout(timeout_s):
        while len(events) < count:
            item = await anext(items)
            assert isinstance(item, event_pb2.Event), item
            if is_content(item):
                events.append(item)
    return events


async def history(admin: AdminClient, room_id: str) -> list[event_pb2.Event]:
    return [event async for event in admin.history(room_id) if is_content(event)]


def ids(events: Sequence[event_pb2.Event]) -> list[str]:
    return [e.event_id for e in events]


def texts(events: Sequence[event_pb2.Event]) -> list[str]:
    return [e.payload.comment.text or e.payload.announcement.text for e in events]


# ---------------------------------------------------------------------------- basics


async def test_send_is_acked_and_echoed_with_the_same_cursor(
    server: ServerProcess, room_id: str, admin: AdminClient
) -> None:
    async with Client(server.target, server.token("alice", name="Alice")) as alice:
        assert alice.welcome is not None
        assert alice.welcome.user.user_id == "alice"
        room = await alice.join(room_id)
        ack = await room.send("hello", traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        assert isinstance(ack, Ack)
        assert ack.cursor and ack.event_id and not ack.duplicate
        (event,) = await take_events(room, 1)
        assert (event.cursor, event.event_id, event.client_msg_id) == (ack.cursor, ack.event_id, ack.client_msg_id)
        assert event.sender.display_name == "Alice"
        assert event.traceparent.startswith("00-0af7651916cd43dd")
        assert room.cursor  # at or after the comment (the server's presence events may follow it)
        assert await alice.ping() < 5.0


async def test_events_arrive_in_order_and_every_client_sees_the_same_sequence(
    server: ServerProcess, room_id: str, admin: AdminClient
) -> None:
    per_sender = 15
    async with (
        Client(server.target, server.token("ann")) as ann,
        Client(server.target, server.token("ben")) as ben,
        Client(server.target, server.token("cat")) as cat,
    ):
        rooms = [await c.join(room_id) for c in (ann, ben, cat)]

        async def burst(client: Client, name: str) -> list[Ack]:
            # Concurrent sends: the SDK paces them to the server's advertised limits.
            return await asyncio.gather(*(client.send(room_id, f"{name}:{n}") for n in range(per_sender)))

        acks = await asyncio.gather(burst(ann, "ann"), burst(ben, "ben"))
        total = 2 * per_sender
        sequences = [await take_events(room, total) for room in rooms]
    logged = await history(admin, room_id)
    assert len(logged) == total
    assert all(ids(sequence) == ids(logged) for sequence in sequences)
    assert sorted(a.cursor for sender in acks for a in sender) == sorted(e.cursor for e in logged)
    for name in ("ann", "ben"):
        mine = [t for t in texts(logged) if t.startswith(f"{name}:")]
        assert mine == [f"{name}:{n}" for n in range(per_sender)]


async def test_history_limit_and_resume_from_a_stored_cursor(
    server: ServerProcess, room_id: str, admin: AdminClient
) -> None:
    published = [await admin.announce(room_id, f"a{n}") for n in range(6)]
    async with Client(server.target, server.token("dan")) as dan:
        room = await dan.join(room_id, history_limit=3)
        assert texts(await take_events(room, 3)) == ["a3", "a4", "a5"]
        assert room.snapshot is not None
        assert room.snapshot.head_cursor == published[-1].cursor
    # A new session resumes after a cursor it stored: exactly the events after it.
    async with Client(server.target, server.token("dan")) as dan:
        room = await dan.join(room_id, resume_cursor=published[1].cursor)
        assert room.resume_outcome == rs.RESUME_OUTCOME_RESUMED
        assert texts(await take_events(room, 4)) == ["a2", "a3", "a4", "a5"]
        await admin.announce(room_id, "live")
        assert texts(await take_events(room, 1)) == ["live"]


async def test_a_cursor_that_cannot_be_resumed_is_reported_not_skipped(
    server: ServerProcess, room_id: str, admin: AdminClient
) -> None:
    await admin.announce(room_id, "before")
    async with Client(server.target, server.token("eve")) as eve:
        room = await eve.join(room_id, resume_cursor="0123456789abcdef.5")
        gap = await anext(room)
        assert isinstance(gap, ResumeGap)
        assert gap.outcome == rs.RESUME_OUTCOME_CURSOR_UNKNOWN
        assert gap.cursor == "0123456789abcdef.5"
        await admin.announce(room_id, "after")
        assert texts(await take_events(room, 1)) == ["after"]


async def test_events_of_several_rooms_through_one_iterator(server: ServerProcess, admin: AdminClient) -> None:
    for name in ("shop-a", "shop-b"):
        await admin.create_room(name)
    async with Client(server.target, server.token("fay")) as fay:
        await fay.join("shop-a")
        await fay.join("shop-b")
        await fay.send("shop-a", "to a")
        await fay.send("shop-b", "to b")
        got: dict[str, list[str]] = {}
        async with asyncio.timeout(30):
            async for item in fay.events():
                assert isinstance(item, event_pb2.Event)
                if not is_content(item):
                    continue
                got.setdefault(item.room_id, []).append(item.payload.comment.text)
                if sum(map(len, got.values())) == 2:
                    break
        assert got == {"shop-a": ["to a"], "shop-b": ["to b"]}


async def test_closing_the_room_ends_the_subscription(server: ServerProcess, room_id: str, admin: AdminClient) -> None:
    async with Client(server.target, server.token("gus")) as gus:
        room = await gus.join(room_id)
        await admin.close_room(room_id, reason="sold out")
        items: list[RoomItem] = []
        async with asyncio.timeout(30):
            items = [item async for item in room if not isinstance(item, event_pb2.Event) or is_content(item)]
        assert len(items) == 2
        closed, ended = items
        assert isinstance(closed, event_pb2.Event)
        assert closed.payload.room_closed.reason == "sold out"
        assert ended == SubscriptionEnded(room_id, None)
        assert room_id not in gus.rooms


async def test_leave_ends_the_subscription(server: ServerProcess, room_id: str, admin: AdminClient) -> None:
    async with Client(server.target, server.token("hal")) as hal:
        room = await hal.join(room_id)
        await room.leave()
        assert [item async for item in room] == [SubscriptionEnded(room_id, None)]
        with pytest.raises(SendError) as refused:
            await hal.send(room_id, "gone")
        assert refused.value.reason == "NOT_JOINED"


# ----------------------------------------------------------------------------- errors


async def test_errors_surface_with_code_and_reason(server: ServerProcess, room_id: str, admin: AdminClient) -> None:
    with pytest.raises(ConnectionFailed) as bad_token:
        async with Client(server.target, "not-a-token"):
            pass
    assert (bad_token.value.code, bad_token.value.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")

    with pytest.raises(ConnectionFailed) as expired:
        async with Client(server.target, server.token("ivy", ttl_s=-60)):
            pass
    assert (expired.value.code, expired.value.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED")

    async with Client(server.target, server.token("ivy")) as ivy:
        with pytest.raises(JoinError) as missing:
            await ivy.join("no-such-room")
        assert (missing.value.code, missing.value.reason) == (grpc.StatusCode.NOT_FOUND, "ROOM_NOT_FOUND")

        with pytest.raises(SendError) as not_joined:
            await ivy.send(room_id, "hi")
        assert (not_joined.value.code, not_joined.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NOT_JOINED")

        await ivy.join(room_id)
        with pytest.raises(SendError) as too_long:
            await ivy.send(room_id, "x" * 501, client_msg_id="long-one")
        assert (too_long.value.code, too_long.value.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "TEXT_TOO_LONG")
        assert too_long.value.client_msg_id == "long-one"

        announcement = event_pb2.Payload(announcement=event_pb2.Announcement(text="buy now"))
        with pytest.raises(SendError) as forbidden:
            await ivy.send_payload(room_id, announcement)
        assert (forbidden.value.code, forbidden.value.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_FORBIDDEN")

        # The stream survived all of that.
        assert (await ivy.send(room_id, "still here")).cursor

    async with AdminClient(server.target, server.token("ivy")) as viewer_admin:
        with pytest.raises(BarrageError) as denied:
            await viewer_admin.create_room("ivy-room")
        assert (denied.value.code, denied.value.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_FORBIDDEN")
    with pytest.raises(BarrageError) as exists:
        await admin.create_room(room_id)
    assert (exists.value.code, exists.value.reason) == (grpc.StatusCode.ALREADY_EXISTS, "ROOM_EXISTS")


async def test_stream_errors_reach_the_application_and_the_stream_survives(
    server: ServerProcess, room_id: str, admin: AdminClient
) -> None:
    errors: asyncio.Queue[BarrageError] = asyncio.Queue()
    async with Client(server.target, server.token("max"), on_stream_error=errors.put_nowait) as max_:
        room = await max_.join(room_id)
        max_.refresh_token(server.token("someone-else"))  # Refused: another user.
        error = await asyncio.wait_for(errors.get(), 30)
        assert (error.code, error.reason) == (grpc.StatusCode.PERMISSION_DENIED, "IDENTITY_MISMATCH")
        await room.send("still connected")
        assert texts(await take_events(room, 1)) == ["still connected"]
        assert max_.stats.welcomes == 1


def test_error_details_carry_reason_metadata_and_retry_delay() -> None:
    info, retry = any_pb2.Any(), any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason="RATE_LIMITED", domain="barrage.v1", metadata={"k": "v"}))
    retry.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(nanos=250_000_000)))
    status = status_pb2.Status(code=8, message="slow down", details=[info, retry])
    error = SendError.from_status(status, room_id="r", client_msg_id="m")
    assert (error.code, error.reason, error.retry_delay) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED", 0.25)
    assert (error.metadata, error.room_id, error.client_msg_id) == ({"k": "v"}, "r", "m")


def test_backoff_is_exponential_with_full_jitter() -> None:
    backoff = Backoff(0.2, 30.0)
    ceilings = []
    for _ in range(12):
        ceilings.append(backoff.ceiling())
        assert 0.0 <= backoff.next_delay() < ceilings[-1]
    assert ceilings[:4] == [0.2, 0.4, 0.8, 1.6]
    assert ceilings[-1] == 30.0
    backoff.reset()
    assert backoff.ceiling() == 0.2


def test_recent_ids_are_bounded() -> None:
    recent = RecentIds(3)
    assert [recent.add(x) for x in "abca"] == [True, True, True, False]
    recent.add("d")
    assert "a" not in recent and len(recent) == 3


async def test_an_oversized_send_is_refused_before_it_can_end_the_stream(
    server: ServerProcess, room_id: str, admin: AdminClient
) -> None:
    async with Client(server.target, server.token("lee")) as lee:
        await lee.join(room_id)
        with pytest.raises(SendError) as refused:
            await lee.send(room_id, "x" * 70_000)
        assert (refused.value.code, refused.value.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "FRAME_TOO_LARGE")
        assert (await lee.send(room_id, "fine")).cursor
        assert lee.stats.welcomes == 1


def test_resume_point_after_a_join() -> None:
    head = "e.9"

    def point(outcome: rs.ResumeOutcome.ValueType, head: str, cursor: str, history: int) -> tuple[str, int]:
        return after_join(
            outcome,
            head,
            cursor=cursor,
            fresh_history=history,
            asked_history=history > 0 and not cursor,
            max_history=200,
        )

    # Resumed: keep the cursor. Fresh without history: live events follow the head.
    assert point(rs.RESUME_OUTCOME_RESUMED, head, "e.3", 0) == ("e.3", 0)
    assert point(rs.RESUME_OUTCOME_FRESH, head, "", 0) == (head, 0)
    # Fresh with history on the way: join fresh again until an event arrives.
    assert point(rs.RESUME_OUTCOME_FRESH, head, "", 20) == ("", 20)
    # Empty room: everything after is new, so ask for as much as the server gives.
    assert point(rs.RESUME_OUTCOME_FRESH, "", "", 0) == ("", 200)
    # A cursor that could not be resumed: continue from the head (the gap is reported).
    assert point(rs.RESUME_OUTCOME_CURSOR_TOO_OLD, head, "e.1", 0) == (head, 0)


def test_which_refusals_are_retried() -> None:
    def delay(code: grpc.StatusCode, reason: str, attempts: int = 1, **kw: bool) -> float | None:
        error = BarrageError(code, "x", reason=reason, retry_delay=0.3)
        flags = {"retry_rate_limited": True, "rejoining": False} | kw
        return send_retry_delay(error, attempts, max_attempts=8, rng=lambda: 0.0, **flags)

    assert delay(grpc.StatusCode.UNAVAILABLE, "LOG_UNAVAILABLE") == 0.3
    assert delay(grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED") == 0.3
    assert delay(grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED", retry_rate_limited=False) is None
    assert delay(grpc.StatusCode.UNAVAILABLE, "LOG_UNAVAILABLE", attempts=8) is None
    assert delay(grpc.StatusCode.FAILED_PRECONDITION, "NOT_JOINED") is None
    assert delay(grpc.StatusCode.FAILED_PRECONDITION, "NOT_JOINED", rejoining=True) == 0.5
    assert delay(grpc.StatusCode.INVALID_ARGUMENT, "TEXT_TOO_LONG") is None
    assert delay(grpc.StatusCode.PERMISSION_DENIED, "ROLE_FORBIDDEN") is None


# ------------------------------------------------------------------ failure handling


async def test_reconnect_after_kill_9_resumes_without_gap_or_duplicate(
    server: ServerProcess, room_id: str, admin: AdminClient
) -> None:
    async with (
        Client(server.target, server.token("watcher"), options=FAST) as watcher,
        Client(server.target, server.token("alice"), options=FAST) as alice,
    ):
        watch = await watcher.join(room_id)
        await alice.join(room_id)
        before = [await alice.send(room_id, f"before {n}") for n in range(5)]
        seen = await take_events(watch, 5)

        # Freeze the node, send (the frame reaches its socket, no ack can come), then
        # kill it: the send must be written again on the next stream, and appended once.
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGSTOP)
        unacked = asyncio.create_task(alice.send(room_id, "in flight", client_msg_id="in-flight-1"))
        await asyncio.sleep(0.3)
        assert not unacked.done()
        server.kill()
        # And a burst sent while the node is down waits for the next stream.
        burst = [asyncio.create_task(alice.send(room_id, f"burst {n}", client_msg_id=f"b{n}")) for n in range(10)]
        await asyncio.to_thread(server.start)
        acks = [await unacked, *await asyncio.gather(*burst)]
        after = [await alice.send(room_id, f"after {n}") for n in range(3)]

        # The same client_msg_id again (a retry across the restart) is answered with the
        # first copy's cursor, not appended.
        retry = await alice.send(room_id, "before 0", client_msg_id=before[0].client_msg_id)
        assert retry.duplicate and retry.cursor == before[0].cursor

        logged = await history(admin, room_id)
        seen += await take_events(watch, len(logged) - len(seen))
        assert alice.stats.welcomes >= 2 and watcher.stats.welcomes >= 2
        assert alice.stats.sends_rewritten >= 1

    assert len(logged) == 5 + 1 + 10 + 3
    assert ids(seen) == ids(logged)  # No gap, no duplicate, same order.
    by_msg_id = {e.client_msg_id: e for e in logged}
    assert len(by_msg_id) == len(logged)
    for ack in (*before, *acks, *after):
        assert by_msg_id[ack.client_msg_id].cursor == ack.cursor


async def test_go_away_then_restart_reconnects_and_resumes(
    server: ServerProcess, room_id: str, admin: AdminClient
) -> None:
    minted: list[str] = []

    async def token_provider() -> str:
        # A fresh token for every connection, as from an identity provider.
        minted.append(server.token("jay"))
        return minted[-1]

    async with Client(server.target, token_provider, options=FAST) as jay:
        room = await jay.join(room_id)
        await jay.send(room_id, "one")
        server.terminate()  # SIGTERM: GoAway, then UNAVAILABLE.
        await asyncio.to_thread(server.start)
        async with AdminClient(server.target, server.token("ops", role="service")) as again:
            await again.announce(room_id, "two")
        await jay.send(room_id, "three")
        assert texts(await take_events(room, 3)) == ["one", "two", "three"]
        assert jay.stats.go_aways == 1
        assert jay.stats.welcomes == 2
        assert len(minted) == jay.stats.streams  # Asked before every attempt.


async def test_a_stream_whose_token_expires_reconnects_with_a_new_token_from_the_provider(
    server: ServerProcess, room_id: str, admin: AdminClient
) -> None:
    """The provider's refresh comes too late (the first token lives 2 s, the refresh takes
    4 s): the server ends the stream TOKEN_EXPIRED, and the client reconnects and resumes."""
    calls = 0

    async def slow_provider() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            return server.token("kim", ttl_s=2)
        if calls == 2:  # the refresh the first Welcome schedules at once (2 s < the margin)
            await asyncio.sleep(4)
        return server.token("kim")

    async with Client(server.target, slow_provider, options=FAST) as kim:
        room = await kim.join(room_id)
        await kim.send(room_id, "before")
        await asyncio.sleep(3)  # the stream's token has expired by now
        await admin.announce(room_id, "while away")
        await kim.send(room_id, "after")
        assert texts(await take_events(room, 3)) == ["before", "while away", "after"]
        assert kim.stats.welcomes >= 2


def _publish_from_thread(target: str, token: str, room_id: str, count: int, size: int, kind: str) -> None:
    """Publish with a blocking channel, from outside the (frozen) event loop."""
    with grpc.insecure_channel(target) as channel:
        stub = admin_service_pb2_grpc.RoomAdminServiceStub(channel)
        for n in range(count):
            text = f"{n} " + "y" * size
            if kind == "comment":
                payload = event_pb2.Payload(comment=event_pb2.Comment(text=text))
            else:
                payload = event_pb2.Payload(announcement=event_pb2.Announcement(text=text))
            request = admin_service_pb2.PublishEventRequest(room_id=room_id, request_id=f"flood-{n}", payload=payload)
            stub.PublishEvent(request, metadata=(("authorization", f"Bearer {token}"),), timeout=30)


@contextlib.asynccontextmanager
async def frozen_reader(tmp_path: Path) -> AsyncIterator[tuple[ServerProcess, AdminClient, Client, Subscription]]:
    """A server with a small per-stream outbox, and a client joined to "busy" whose
    reads can be stopped by freezing the event loop."""
    server = ServerProcess(tmp_path / "data", env={"BARRAGE_OUTBOX_MAX_BYTES": "32768"})
    server.start()
    try:
        async with AdminClient(server.target, server.token("ops", role="service")) as admin:
            await admin.create_room("busy")
            # Without BDP probing the flow-control window stays at 64 KiB, so a client
            # that stops reading backs up into the server's outbox quickly.
            options = ClientOptions(extra_channel_options=(("grpc.http2.bdp_probe", 0),))
            async with Client(server.target, server.token("slow"), options=options) as slow:
                yield server, admin, slow, await slow.join("busy")
    finally:
        server.stop()


def freeze_while_publishing(server: ServerProcess, count: int, kind: str) -> None:
    """Block the calling event loop (the SDK cannot read) while another thread publishes."""
    token = server.token("ops", role="service")
    publisher = threading.Thread(target=_publish_from_thread, args=(server.target, token, "busy", count, 400, kind))
    publisher.start()
    publisher.join(60)
    # Still frozen on purpose: let the last frames reach the outbox first.
    time.sleep(0.5)


async def test_resume_required_is_handled_transparently(tmp_path: Path) -> None:
    async with frozen_reader(tmp_path) as (server, admin, slow, room):
        count = 300
        freeze_while_publishing(server, count, "announcement")  # Critical: never shed.
        events = await take_events(room, count, timeout_s=60)
        assert slow.stats.resumes_required >= 1
        assert ids(events) == ids(await history(admin, "busy"))


async def test_omitted_events_are_counted_never_silently_skipped(tmp_path: Path) -> None:
    async with frozen_reader(tmp_path) as (server, admin, _, room):
        count = 300
        freeze_while_publishing(server, count, "comment")  # Normal: may be shed when behind.
        delivered: list[event_pb2.Event] = []
        omitted = 0
        async with asyncio.timeout(60):
            while len(delivered) + omitted < count:
                item = await anext(room)
                if isinstance(item, Omitted):
                    omitted += item.count
                else:
                    assert isinstance(item, event_pb2.Event), item
                    if is_content(item):
                        delivered.append(item)
        assert omitted > 0
        logged = ids(await history(admin, "busy"))
        got = set(ids(delivered))
        # What was delivered is the log minus what was reported omitted, in log order.
        assert len(got) == len(delivered)
        assert ids(delivered) == [i for i in logged if i in got]


async def test_a_slow_consumer_is_paused_and_caught_up_from_the_log(
    server: ServerProcess, room_id: str, admin: AdminClient
) -> None:
    async with Client(server.target, server.token("kim"), options=ClientOptions(queue_size=8)) as kim:
        room = await kim.join(room_id)
        published = [await admin.announce(room_id, f"n{n}") for n in range(40)]
        events = await take_events(room, 40)
        assert [e.cursor for e in events] == [p.cursor for p in published]
        assert kim.stats.pauses >= 1
