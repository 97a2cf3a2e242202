"""The gift leaderboard (docs/commerce.md "Leaderboard"), over real gRPC, on both log backends."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from barrage.server.auth import issue_dev_token
from barrage.v1 import admin_service_pb2 as admin_pb
from barrage.v1 import event_pb2 as ev
from barrage.v1 import room_service_pb2 as rs
from tests.kafka_broker import KafkaBroker, running_broker
from tests.server_process import TEST_SECRET, ServerProcess
from tests.wire_client import Admin, RawStream, end_status, error_info

OK = 0
SIZE = 5
"""--leaderboard-size of the servers under test."""


@pytest.fixture(scope="module")
def broker() -> Iterator[KafkaBroker]:
    with running_broker() as started:
        yield started


@pytest.fixture(params=["embedded", "kafka"])
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """One server with a leaderboard of SIZE, on the embedded log or on a Kafka topic of its own."""
    args = ("--leaderboard-size", str(SIZE), "--checkpoint-every", "10")
    if request.param == "kafka":
        kafka: KafkaBroker = request.getfixturevalue("broker")
        proc = ServerProcess(tmp_path / "data", log_url=kafka.url(f"boards-{uuid.uuid4().hex[:8]}"), args=args)
    else:
        proc = ServerProcess(tmp_path / "data", args=args)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def ops(node: ServerProcess, room_id: str) -> AsyncIterator[Admin]:
    """The gift service's admin client; the room exists, owned by "the-host"."""
    admin = Admin(node.target, node.token("gift-service", role="service"))
    await admin.create_room(room_id, "Gala", host_user_id="the-host")
    try:
        yield admin
    finally:
        await admin.close()


def gift(user: str, value_minor: int, count: int = 1, level: int = 0) -> ev.Payload:
    giver = ev.Sender(user_id=user, display_name=user.title(), level=level, badges=["fan"])
    unit = ev.Money(amount_minor=value_minor // count, currency="CNY")
    return ev.Payload(gift=ev.Gift(gift_id="rose", gift_name="Rose", count=count, unit_value=unit, giver=giver))


async def give(ops: Admin, room_id: str, *gifts: tuple[str, int]) -> None:
    for user, value in gifts:
        await ops.publish(room_id, f"g-{uuid.uuid4().hex}", gift(user, value))


async def board_of(node: ServerProcess, room_id: str, user: str, role: str = "viewer", ask: str = "") -> object:
    admin = Admin(node.target, node.token(user, role=role))
    try:
        request = admin_pb.GetLeaderboardRequest(room_id=room_id, user_id=ask)
        return await admin.stub.GetLeaderboard(request, metadata=admin.metadata)
    finally:
        await admin.close()


def ranking(board: ev.Leaderboard) -> list[tuple[int, str, int]]:
    return [(e.rank, e.user.user_id, e.value_minor) for e in board.entries]


async def joined(node: ServerProcess, room_id: str, user: str) -> tuple[RawStream, rs.JoinResult]:
    stream = RawStream(node.target)
    await stream.hello(node.token(user, name=user.title()))
    result = await stream.join(room_id)
    assert result.status.code == OK, result.status
    return stream, result


async def eventually_board(node: ServerProcess, room_id: str, expected: list[tuple[int, str, int]]) -> object:
    async with asyncio.timeout(10):
        while True:
            answer = await board_of(node, room_id, "probe")
            if ranking(answer.leaderboard) == expected:  # type: ignore[attr-defined]
                return answer
            await asyncio.sleep(0.05)


async def test_ranking_is_by_value_and_a_tie_goes_to_who_reached_it_first(
    node: ServerProcess, ops: Admin, room_id: str
) -> None:
    await give(ops, room_id, ("ann", 100), ("bob", 300), ("cat", 300), ("dan", 50))
    answer = await eventually_board(node, room_id, [(1, "bob", 300), (2, "cat", 300), (3, "ann", 100), (4, "dan", 50)])
    assert answer.leaderboard.gifter_count == 4  # type: ignore[attr-defined]
    assert answer.leaderboard.total_value_minor == 750  # type: ignore[attr-defined]
    # Ann catches up to 300 last: she ranks after the two who were there first.
    await give(ops, room_id, ("ann", 200))
    await eventually_board(node, room_id, [(1, "bob", 300), (2, "cat", 300), (3, "ann", 300), (4, "dan", 50)])
    # Dan passes everyone; the display name, level and badges come from his latest gift.
    await ops.publish(room_id, "dan-big", gift("dan", 1000, count=10, level=42))
    answer = await eventually_board(
        node, room_id, [(1, "dan", 1050), (2, "bob", 300), (3, "cat", 300), (4, "ann", 300)]
    )
    top = answer.leaderboard.entries[0]  # type: ignore[attr-defined]
    assert (top.user.display_name, top.user.level, list(top.user.badges), top.gift_count) == ("Dan", 42, ["fan"], 11)


async def test_the_board_holds_at_most_its_size_and_anyone_can_ask_their_own_rank(
    node: ServerProcess, ops: Admin, room_id: str
) -> None:
    await give(ops, room_id, *[(f"fan-{i:02d}", 100 * (i + 1)) for i in range(30)])
    expected_top = [(r, f"fan-{30 - r:02d}", 100 * (31 - r)) for r in range(1, SIZE + 1)]
    answer = await eventually_board(node, room_id, expected_top)
    assert answer.leaderboard.gifter_count == 30  # type: ignore[attr-defined]
    # fan-09 gave 1000, the 21st highest: far below the board, its rank is still exact.
    mine = await board_of(node, room_id, "fan-09")
    assert (mine.own.rank, mine.own.value_minor) == (21, 1000)  # type: ignore[attr-defined]
    assert len(mine.leaderboard.entries) == SIZE  # type: ignore[attr-defined]
    # Someone who gave nothing has no place.
    assert not (await board_of(node, room_id, "lurker")).HasField("own")  # type: ignore[attr-defined]
    # The host (owner) and services may ask about anyone.
    theirs = await board_of(node, room_id, "the-host", role="host", ask="fan-00")
    assert (theirs.own.user.user_id, theirs.own.rank) == ("fan-00", 30)  # type: ignore[attr-defined]


async def test_a_viewer_may_not_ask_another_users_rank_nor_bad_ids(
    node: ServerProcess, ops: Admin, room_id: str
) -> None:
    await give(ops, room_id, ("ann", 100))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await board_of(node, room_id, "mallory", ask="ann")
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(end_status(refused.value)).reason == "ROLE_FORBIDDEN"
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await board_of(node, room_id, "ops", role="service", ask="x" * 65)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(end_status(bad.value)).metadata["field"] == "user_id"
    bot = Admin(node.target, issue_dev_token(TEST_SECRET, user_id="bot", role="bot", rooms=["elsewhere"]))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as outsider:
            await bot.stub.GetLeaderboard(admin_pb.GetLeaderboardRequest(room_id=room_id), metadata=bot.metadata)
    finally:
        await bot.close()
    assert outsider.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(end_status(outsider.value)).reason == "ROLE_FORBIDDEN"
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await board_of(node, "no-such-room", "ann")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_nobody_may_post_a_leaderboard_or_an_audience_list(node: ServerProcess, ops: Admin, room_id: str) -> None:
    forged = [
        ev.Payload(leaderboard=ev.Leaderboard(entries=[ev.LeaderboardEntry(rank=1, value_minor=10**9)])),
        ev.Payload(audience=ev.AudienceList(present_count=1)),
    ]
    for payload in forged:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await ops.publish(room_id, f"forged-{uuid.uuid4().hex}", payload)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    stream, _ = await joined(node, room_id, "viewer-1")
    try:
        await stream.send(rs.ConnectRequest(send=rs.Send(room_id=room_id, client_msg_id="f1", payload=forged[0])))
        result = await stream.send_result("f1")
        assert result.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert error_info(result.status).reason == "INVALID_FIELD"
    finally:
        await stream.close()


async def test_live_updates_come_at_most_once_a_second_and_end_with_the_latest_values(
    node: ServerProcess, ops: Admin, room_id: str
) -> None:
    stream, _ = await joined(node, room_id, "watcher")
    try:
        for i in range(60):  # ~3 s of gifts, 20 a second
            await give(ops, room_id, (f"g{i % 7}", 10 + i))
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)  # the last change is published within a second or so
        boards = stream.events(room_id, "leaderboard")
        assert len(boards) >= 2
        times = [e.publish_time.ToMilliseconds() for e in boards]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 1000, gaps
        assert all(e.priority == ev.PRIORITY_EPHEMERAL and not e.payload.leaderboard.final for e in boards)
        latest = boards[-1].payload.leaderboard
        answer = await board_of(node, room_id, "probe")
        assert ranking(latest) == ranking(answer.leaderboard)  # type: ignore[attr-defined]
        assert latest.total_value_minor == sum(10 + i for i in range(60))
        # Quiet: nothing changes, nothing more is published.
        count = len(stream.events(room_id, "leaderboard"))
        await asyncio.sleep(1.5)
        assert len(stream.events(room_id, "leaderboard")) == count
    finally:
        await stream.close()


async def test_a_late_joiner_gets_the_board_in_its_snapshot_and_the_close_publishes_the_final(
    node: ServerProcess, ops: Admin, room_id: str
) -> None:
    early, first = await joined(node, room_id, "early")
    assert not first.snapshot.HasField("leaderboard")  # nobody gave yet
    try:
        await give(ops, room_id, ("ann", 500), ("bob", 700))
        await eventually_board(node, room_id, [(1, "bob", 700), (2, "ann", 500)])
        late, result = await joined(node, room_id, "late")
        await late.close()
        assert ranking(result.snapshot.leaderboard) == [(1, "bob", 700), (2, "ann", 500)]
        assert not result.snapshot.leaderboard.final
        await give(ops, room_id, ("cat", 900))
        await ops.close_room(room_id, "good night")
        await early.wait_events(room_id, 1, kind="room_closed")
        final = [e for e in early.events(room_id, "leaderboard") if e.payload.leaderboard.final]
        assert len(final) == 1
        assert final[0].priority == ev.PRIORITY_CRITICAL
        assert ranking(final[0].payload.leaderboard) == [(1, "cat", 900), (2, "bob", 700), (3, "ann", 500)]
        kinds = [e.payload.WhichOneof("kind") for e in early.events(room_id)]
        assert kinds[-2:] == ["leaderboard", "room_closed"]  # the final is the last word before the close
        # After the close the read API answers the final ranking, folded from the log.
        after = await board_of(node, room_id, "ann")
        assert after.leaderboard.final  # type: ignore[attr-defined]
        assert ranking(after.leaderboard) == ranking(final[0].payload.leaderboard)  # type: ignore[attr-defined]
        assert after.own.rank == 3  # type: ignore[attr-defined]
    finally:
        await early.close()


async def test_the_board_survives_a_restart_through_checkpoints(node: ServerProcess, ops: Admin, room_id: str) -> None:
    stream, _ = await joined(node, room_id, "watcher")  # a watched room writes checkpoints
    try:
        await give(ops, room_id, *[(f"u{i}", 10 * (i + 1)) for i in range(25)])
        expected = [(r, f"u{25 - r}", 10 * (26 - r)) for r in range(1, SIZE + 1)]
        await eventually_board(node, room_id, expected)
        await asyncio.sleep(0.6)  # the ticker writes a checkpoint (every 10 events here)
    finally:
        await stream.close()
    node.restart()
    answer = await eventually_board(node, room_id, expected)
    assert answer.leaderboard.gifter_count == 25  # type: ignore[attr-defined]
    mine = await board_of(node, room_id, "u3")
    assert mine.own.rank == 22  # type: ignore[attr-defined]


def test_a_checkpoint_keeps_the_ranking_ties_and_the_audience() -> None:
    """In-process: what a rebuild from a checkpoint starts from is what the fold had."""
    from barrage.server.commerce.state import RoomState

    state = RoomState("r")
    service = ev.Sender(user_id="gift-service", role=ev.ROLE_SERVICE)
    for position, (user, value) in enumerate([("ann", 300), ("bob", 300), ("cat", 100), ("ann", 0)]):
        event = ev.Event(room_id="r", event_id=f"e{position}", sender=service, payload=gift(user, value or 1))
        if not value:
            event.payload.gift.unit_value.amount_minor = 0  # a gift of no value changes no tie
        event.publish_time.FromMilliseconds(1_700_000_000_000)
        state.fold(position, event)
    for position, user in enumerate(["v1", "v2", "v3"], start=10):
        joined = ev.Event(room_id="r", event_id=f"j{position}", sender=ev.Sender(user_id=user, level=3))
        joined.payload.viewer_joined.node_id = "n1"
        joined.publish_time.FromMilliseconds(1_700_000_000_000)
        state.fold(position, joined)
    restored = RoomState.from_checkpoint("r", state.checkpoint("epoch"))
    assert ranking(restored.board.top(10)) == [(1, "ann", 300), (2, "bob", 300), (3, "cat", 100)]
    assert restored.board.top(10) == state.board.top(10)
    assert restored.board.dirty and restored.board.gifter_count == 3
    view = restored.audience.view(10, "recent", restored.board)
    assert [m.user.user_id for m in view.members] == ["v3", "v2", "v1"]
    assert view == state.audience.view(10, "recent", state.board)
