"""DESIGN.md's contract, proven over real gRPC against a real server process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from barrage.v1 import room_service_pb2 as rs
from tests.server_process import ServerProcess
from tests.wire_client import Admin, RawStream


@contextlib.asynccontextmanager
async def streams(server: ServerProcess, users: list[str], room_id: str) -> AsyncIterator[list[RawStream]]:
    opened = [RawStream(server.target) for _ in users]
    try:
        for stream, user in zip(opened, users, strict=True):
            await stream.hello(server.token(user))
            assert (await stream.join(room_id)).status.code == 0
        yield opened
    finally:
        for stream in opened:
            await stream.close()


@pytest.fixture
async def admin(server: ServerProcess, room_id: str) -> AsyncIterator[Admin]:
    client = Admin(server.target, server.token("ops", role="service"))
    await client.create_room(room_id, "test room")
    yield client
    await client.close()


async def test_order_twenty_concurrent_senders_every_subscriber_sees_one_sequence(
    server: ServerProcess, room_id: str, admin: Admin
) -> None:
    per_sender = 10
    async with (
        streams(server, [f"viewer-{i}" for i in range(3)], room_id) as viewers,
        streams(server, [f"sender-{i}" for i in range(20)], room_id) as senders,
    ):

        async def burst(index: int, stream: RawStream) -> list[str]:
            results = await asyncio.gather(
                *(stream.send_comment(room_id, f"m{index}-{n}", f"{index}:{n}") for n in range(per_sender))
            )
            assert all(r.status.code == 0 for r in results), results
            return [r.cursor for r in results]

        acked = [c for cursors in await asyncio.gather(*(burst(i, s) for i, s in enumerate(senders))) for c in cursors]
        total = 20 * per_sender
        sequences = [
            [e.cursor for e in await v.wait_events(room_id, total, kind="comment")] for v in (*viewers, *senders)
        ]
    history = [e.cursor for e in await admin.all_events(room_id, "comment")]
    assert len(history) == total
    assert sorted(acked) == sorted(history)
    assert all(sequence == history for sequence in sequences)
    # A sender's own comments keep the order it sent them in.
    texts = [e.payload.comment.text for e in await admin.all_events(room_id, "comment")]
    for index in range(20):
        mine = [t for t in texts if t.startswith(f"{index}:")]
        assert mine == [f"{index}:{n}" for n in range(per_sender)]


async def test_acknowledged_events_survive_kill_9_and_stay_resumable(
    server: ServerProcess, room_id: str, admin: Admin
) -> None:
    async with streams(server, ["alice"], room_id) as (alice,):
        results = await asyncio.gather(*(alice.send_comment(room_id, f"k{n}", f"burst {n}") for n in range(20)))
    acked = [r.cursor for r in results if r.status.code == 0]
    assert len(acked) == 20
    server.kill()
    server.start()
    again = Admin(server.target, server.token("ops", role="service"))
    try:
        history = [e.cursor for e in await again.all_events(room_id, "comment")]
    finally:
        await again.close()
    assert sorted(history) == sorted(acked)
    first = history[0]
    async with streams(server, [], room_id):
        bob = RawStream(server.target)
        try:
            await bob.hello(server.token("bob"))
            joined = await bob.join(room_id, resume_cursor=first)
            assert joined.resume == rs.RESUME_OUTCOME_RESUMED
            assert [e.cursor for e in await bob.wait_events(room_id, 19, kind="comment")] == history[1:]
        finally:
            await bob.close()


async def test_a_retry_with_the_same_client_msg_id_is_appended_once(
    server: ServerProcess, room_id: str, admin: Admin
) -> None:
    async with streams(server, ["alice"], room_id) as (alice,):
        first = await alice.send_comment(room_id, "once", "hello")
        again = await alice.send_comment(room_id, "once", "hello")
    assert (again.cursor, again.event_id, again.duplicate) == (first.cursor, first.event_id, True)
    # Across a reconnect, and across a crash of the server.
    async with streams(server, ["alice"], room_id) as (alice,):
        assert (await alice.send_comment(room_id, "once", "hello")).cursor == first.cursor
    server.kill()
    server.start()
    async with streams(server, ["alice"], room_id) as (alice,):
        after_crash = await alice.send_comment(room_id, "once", "hello")
        assert (after_crash.cursor, after_crash.duplicate) == (first.cursor, True)
        # Another user's identical id is a different message.
        other = RawStream(server.target)
        await other.hello(server.token("bob"))
        await other.join(room_id)
        assert (await other.send_comment(room_id, "once", "hello")).cursor != first.cursor
        await other.close()
    history = await Admin(server.target, server.token("ops", role="service")).all_events(room_id, "comment")
    assert [e.client_msg_id for e in history] == ["once", "once"]
    assert {e.sender.user_id for e in history} == {"alice", "bob"}


async def test_resume_delivers_exactly_the_missed_events_then_live_ones(
    server: ServerProcess, room_id: str, admin: Admin
) -> None:
    async with streams(server, ["sender"], room_id) as (sender,):
        viewer = RawStream(server.target)
        await viewer.hello(server.token("viewer"))
        await viewer.join(room_id)
        for n in range(5):
            await sender.send_comment(room_id, f"a{n}", f"before {n}")
        seen = await viewer.wait_events(room_id, 5, kind="comment")
        await viewer.close()  # disconnected while the room goes on
        for n in range(7):
            await sender.send_comment(room_id, f"b{n}", f"missed {n}")
        viewer = RawStream(server.target)
        await viewer.hello(server.token("viewer"))
        joined = await viewer.join(room_id, resume_cursor=seen[-1].cursor)
        assert joined.resume == rs.RESUME_OUTCOME_RESUMED
        missed = await viewer.wait_events(room_id, 7, kind="comment")
        assert [e.payload.comment.text for e in missed] == [f"missed {n}" for n in range(7)]
        await sender.send_comment(room_id, "c0", "live")
        everything = await viewer.wait_events(room_id, 8, kind="comment")
        await asyncio.sleep(0.2)  # nothing more may arrive
        await viewer.close()
    assert [e.payload.comment.text for e in viewer.events(room_id, "comment")] == [
        *(f"missed {n}" for n in range(7)),
        "live",
    ]
    assert [e.cursor for e in everything] == [e.cursor for e in (await admin.all_events(room_id, "comment"))[5:]]


async def test_a_cursor_from_another_log_is_answered_explicitly(
    server: ServerProcess, room_id: str, admin: Admin
) -> None:
    async with streams(server, ["alice"], room_id) as (alice,):
        await alice.send_comment(room_id, "x", "hello")
        viewer = RawStream(server.target)
        await viewer.hello(server.token("viewer"))
        joined = await viewer.join(room_id, resume_cursor="0123456789abcdef.5")
        assert joined.status.code == 0
        assert joined.resume == rs.RESUME_OUTCOME_CURSOR_UNKNOWN
        assert joined.snapshot.head_cursor
        await viewer.close()


async def test_a_fresh_join_can_ask_for_recent_history(server: ServerProcess, room_id: str, admin: Admin) -> None:
    """history_limit counts events of every kind (the server's own viewer counts among
    the comments too): the joiner gets the log's last 3 events up to its head, then live."""
    async with streams(server, ["alice"], room_id) as (alice,):
        for n in range(10):
            await alice.send_comment(room_id, f"h{n}", f"old {n}")
        viewer = RawStream(server.target)
        await viewer.hello(server.token("viewer"))
        joined = await viewer.join(room_id, history_limit=3)
        await alice.send_comment(room_id, "live", "new")
        log = await admin.all_events(room_id)
        head = [e.cursor for e in log].index(joined.snapshot.head_cursor)
        history = log[head - 2 : head + 1]
        told = [e.payload.comment.text for e in history if e.payload.WhichOneof("kind") == "comment"]
        assert told == [f"old {n}" for n in range(10 - len(told), 10)]
        comments = await viewer.wait_events(room_id, len(told) + 1, kind="comment")
        assert [e.cursor for e in viewer.events(room_id)[:3]] == [e.cursor for e in history]
        assert [e.payload.comment.text for e in comments] == [*told, "new"]
        await viewer.close()


async def test_a_client_that_half_closes_keeps_receiving_events(
    server: ServerProcess, room_id: str, admin: Admin
) -> None:
    async with streams(server, ["listener", "alice"], room_id) as (listener, alice):
        await listener.half_close()
        await alice.send_comment(room_id, "after-half-close", "still delivered")
        (event,) = await listener.wait_events(room_id, 1, kind="comment")
        assert event.payload.comment.text == "still delivered"
