"""Cursors: a cursor resumes only the room it belongs to; any other is answered explicitly.

Contract 4 (docs/protocol.md "Cursors"): a join with a cursor that is not one of the
room's events (another room's, beyond the room's newest event, garbage, from another
epoch) is answered CURSOR_UNKNOWN with the snapshot, then live events, never RESUMED
with a silent gap; ListEvents answers FAILED_PRECONDITION with ErrorInfo CURSOR_UNKNOWN
in both directions; `barrage tail --from` says so in one line and follows live.

Every scenario runs over real gRPC against a real node on both log backends: the
embedded log (one position sequence shared by all rooms) and the Kafka log on the test
broker with 4 partitions (rooms of one partition share its offsets, rooms of two
partitions share offset values). Where a test forges a cursor it splits one at its last
dot: an instrument's knowledge of the format, which clients never use.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from barrage.clients.sdk import ResumeGap
from barrage.clients.tail import resume_gap_line
from barrage.server.core.cursor import CursorError, parse_cursor
from barrage.server.log.base import Backend, LogEntry, PositionCheck, RoomLog
from barrage.server.log.embedded import EmbeddedLog, open_embedded
from barrage.server.log.kafka import open_kafka
from barrage.server.log.kafka_wire import partition_for
from barrage.v1 import admin_service_pb2, event_pb2
from barrage.v1 import room_service_pb2 as rs
from tests.kafka_broker import KafkaBroker, running_broker
from tests.server_process import ServerProcess
from tests.test_cli import barrage_process
from tests.wire_client import Admin, RawStream, end_status, error_info

PARTITIONS = 4
UNKNOWN = rs.RESUME_OUTCOME_CURSOR_UNKNOWN

# ---------------------------------------------------------------- the string itself


@pytest.mark.parametrize(
    "text",
    [
        "",
        "e",
        "e.",
        ".5",
        "e.5²",
        "e.²",
        "e.٣",  # int() would read this Arabic-Indic digit as 3: a second spelling of "e.3"
        "e.05",
        "e.-5",
        "e.+5",
        "e. 5",
        "e.5 ",
        "e\n.5",
        "é.5",
        "e.5x",
        "e." + "9" * 20,
        "e." + str(2**63),
        "x" * 10_000 + ".5",
    ],
)
def test_only_what_the_server_writes_parses(text: str) -> None:
    with pytest.raises(CursorError):
        parse_cursor(text)


def test_a_cursor_parses_back_to_its_epoch_and_position() -> None:
    assert (parse_cursor("3f2a.0").epoch, parse_cursor("3f2a.0").position) == ("3f2a", 0)
    assert (parse_cursor("a.b:3.17").epoch, parse_cursor("a.b:3.17").position) == ("a.b:3", 17)
    assert parse_cursor(f"e.{2**63 - 1}").position == 2**63 - 1


# ---------------------------------------------------------------- nodes on both backends


def two_rooms(backend: str, same_numbering: bool = True) -> tuple[str, str]:
    """Two new room ids whose positions share one numbering (same_numbering) or not.

    Embedded: every room shares one. Kafka: the same partition, or two partitions."""
    first = f"room-{uuid.uuid4().hex[:12]}"
    while True:
        other = f"room-{uuid.uuid4().hex[:12]}"
        if backend == "embedded":
            return first, other
        same = partition_for(first.encode(), PARTITIONS) == partition_for(other.encode(), PARTITIONS)
        if same == same_numbering:
            return first, other


@dataclass
class Node:
    backend: str
    server: ServerProcess

    def rooms(self, same_numbering: bool = True) -> tuple[str, str]:
        return two_rooms(self.backend, same_numbering)


@pytest.fixture(scope="module")
def broker() -> Iterator[KafkaBroker]:
    with running_broker() as started:
        yield started


@pytest.fixture(scope="module", params=["embedded", "kafka"])
def node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    data = tmp_path_factory.mktemp(request.param) / "data"
    if request.param == "embedded":
        server = ServerProcess(data)
    else:
        kafka: KafkaBroker = request.getfixturevalue("broker")
        topic = f"cursors-{uuid.uuid4().hex[:8]}"
        server = ServerProcess(data, log_url=f"{kafka.url(topic)}?partitions={PARTITIONS}&replication_factor=1")
    server.start()
    try:
        yield Node(request.param, server)
    finally:
        server.stop()


@pytest.fixture
async def admin(node: Node) -> AsyncIterator[Admin]:
    client = Admin(node.server.target, node.server.token("ops", role="service"))
    try:
        yield client
    finally:
        await client.close()


def split(cursor: str) -> tuple[str, int]:
    epoch, _, position = cursor.rpartition(".")
    return epoch, int(position)


async def publish(admin: Admin, room_id: str, text: str) -> str:
    """Publish an announcement; its cursor (acknowledged: durable in the log)."""
    payload = event_pb2.Payload(announcement=event_pb2.Announcement(text=text))
    cursor: str = (await admin.publish(room_id, f"r-{uuid.uuid4().hex}", payload)).cursor
    assert cursor
    return cursor


def texts(events: list[event_pb2.Event]) -> list[str]:
    return [e.payload.announcement.text for e in events]


@contextlib.asynccontextmanager
async def viewer(node: Node) -> AsyncIterator[RawStream]:
    stream = RawStream(node.server.target)
    try:
        await stream.hello(node.server.token(f"v-{uuid.uuid4().hex[:6]}"))
        yield stream
    finally:
        await stream.close()


async def assert_answered_then_live(
    node: Node, admin: Admin, room_id: str, cursor: str, outcome: rs.ResumeOutcome.ValueType = UNKNOWN
) -> None:
    """A join with `cursor` is answered `outcome` with the room's snapshot; no event is
    replayed as if resumed, and the stream then receives live events."""
    async with viewer(node) as stream:
        joined = await stream.join(room_id, resume_cursor=cursor)
        assert joined.status.code == 0, joined.status
        assert joined.resume == outcome, f"cursor {cursor[:80]!r}: {rs.ResumeOutcome.Name(joined.resume)}"
        assert joined.snapshot.room_id == room_id
        assert joined.snapshot.head_cursor, "the snapshot says where live events start"
        live = f"live {uuid.uuid4().hex[:6]}"
        await publish(admin, room_id, live)
        await stream.wait_events(room_id, 1, kind="announcement")
        await asyncio.sleep(0.2)  # anything replayed or duplicated would show by now
        assert texts(stream.events(room_id, "announcement")) == [live]


async def assert_history_refuses(admin: Admin, room_id: str, cursor: str, reason: str = "CURSOR_UNKNOWN") -> None:
    for backward in (False, True):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await admin.history(room_id, cursor, backward=backward)
        direction = "backward" if backward else "forward"
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION, (direction, cursor[:80])
        info = error_info(end_status(refused.value))
        assert (info.reason, info.domain, dict(info.metadata)) == (reason, "barrage.v1", {"field": "cursor"})


# ---------------------------------------------------------------- the log's answer


@pytest.fixture(params=["embedded", "kafka"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "embedded":
        opened = open_embedded(str(tmp_path / "data"))
    else:
        kafka: KafkaBroker = request.getfixturevalue("broker")
        url = kafka.url(f"check-{uuid.uuid4().hex[:8]}")
        opened = open_kafka(url, partitions=PARTITIONS, replication_factor=1)
    await opened.log.start()
    try:
        yield opened
    finally:
        await opened.log.close()


async def test_check_position_knows_the_rooms_own_records(backend: Backend) -> None:
    log = backend.log
    kind = "embedded" if isinstance(log, EmbeddedLog) else "kafka"
    room, other = two_rooms(kind, same_numbering=True)

    async def append(room_id: str) -> int:
        (result,) = await log.append(room_id, [LogEntry(b"x", 1)])
        return result.record.position

    mine = [await append(room), await append(room)]
    foreign = await append(other)
    mine.append(await append(room))
    cases = {
        mine[0]: PositionCheck.RECORD,
        mine[1]: PositionCheck.RECORD,
        mine[2]: PositionCheck.RECORD,  # the newest
        foreign: PositionCheck.NOT_A_RECORD,  # another room's record, between two of ours
        mine[2] + 1: PositionCheck.NOT_A_RECORD,  # beyond the head
        mine[2] + 10**9: PositionCheck.NOT_A_RECORD,
    }
    for position, expected in cases.items():
        assert await log.check_position(room, position) is expected, position
        # The interface's default (one read) agrees with the backend's index.
        assert await RoomLog.check_position(log, room, position) is expected, position
    assert await log.check_position(f"never-{uuid.uuid4().hex}", mine[0]) is PositionCheck.NOT_A_RECORD
    if isinstance(log, EmbeddedLog):
        await log.roll()
        await log.enforce_retention(max_bytes=0)
        assert await log.check_position(room, mine[0]) is PositionCheck.NOT_RETAINED


# ---------------------------------------------------------------- valid cursors


async def test_every_cursor_the_room_hands_out_resumes_exactly_after_it(node: Node, admin: Admin) -> None:
    room_id, _ = node.rooms()
    await admin.create_room(room_id)
    cursors = [await publish(admin, room_id, f"a{n}") for n in range(4)]
    forward = await admin.history(room_id, "", page_size=2)
    get_room = admin_service_pb2.GetRoomRequest(room_id=room_id)
    head = (await admin.stub.GetRoom(get_room, metadata=admin.metadata)).room.head_cursor
    handed_out = {
        "a send's acknowledgement": cursors[1],
        "a ListEvents page (next_cursor)": forward.next_cursor,
        "GetRoom's head_cursor": head,
    }
    for where, cursor in handed_out.items():
        async with viewer(node) as stream:
            joined = await stream.join(room_id, resume_cursor=cursor)
            assert joined.resume == rs.RESUME_OUTCOME_RESUMED, where
            page = await admin.history(room_id, cursor)
            expected = [e.cursor for e in page.events if e.payload.HasField("announcement")]
            if expected:
                got = await stream.wait_events(room_id, len(expected), kind="announcement")
                assert [e.cursor for e in got] == expected, where
        assert (await admin.history(room_id, cursor, backward=True)).events, where
    # The snapshot's head_cursor (and any delivered event's cursor) resumes too.
    async with viewer(node) as stream:
        snapshot_head = (await stream.join(room_id)).snapshot.head_cursor
    await assert_answered_then_live(node, admin, room_id, snapshot_head, rs.RESUME_OUTCOME_RESUMED)


async def test_cursors_of_the_previous_format_resume_where_they_are_still_unambiguous(node: Node, admin: Admin) -> None:
    """`<epoch>.<position>` is still the format. The embedded log's epoch did not change, so
    a cursor issued before this version resumes. A Kafka topic of several partitions now
    names the room's partition in the epoch: an older cursor (topic id only) cannot prove
    which partition it counted and is answered CURSOR_UNKNOWN, explicitly."""
    room_id, _ = node.rooms()
    await admin.create_room(room_id)
    cursors = [await publish(admin, room_id, f"a{n}") for n in range(3)]
    epoch, position = split(cursors[0])
    if node.backend == "embedded":
        async with viewer(node) as stream:
            joined = await stream.join(room_id, resume_cursor=cursors[0])
            assert joined.resume == rs.RESUME_OUTCOME_RESUMED
            assert texts(await stream.wait_events(room_id, 2, kind="announcement")) == ["a1", "a2"]
    else:
        topic_id, sep, partition = epoch.rpartition(":")
        assert sep and int(partition) == partition_for(room_id.encode(), PARTITIONS), "the epoch names the partition"
        previous = f"{topic_id}.{position}"
        await assert_answered_then_live(node, admin, room_id, previous)
        await assert_history_refuses(admin, room_id, previous)


async def test_a_single_partition_kafka_topic_keeps_its_cursors(broker: KafkaBroker, tmp_path: Path) -> None:
    """One partition has one numbering: the epoch stays the topic id, so cursors issued
    before this version (and by older nodes sharing the topic) still resume."""
    url = f"{broker.url(f'single-{uuid.uuid4().hex[:8]}')}?partitions=1&replication_factor=1"
    server = ServerProcess(tmp_path / "data", log_url=url)
    server.start()
    admin = Admin(server.target, server.token("ops", role="service"))
    try:
        room_id = f"room-{uuid.uuid4().hex[:12]}"
        await admin.create_room(room_id)
        cursors = [await publish(admin, room_id, f"a{n}") for n in range(3)]
        assert ":" not in split(cursors[0])[0], "the epoch is the topic id alone"
        node = Node("kafka", server)
        async with viewer(node) as stream:
            joined = await stream.join(room_id, resume_cursor=cursors[0])
            assert joined.resume == rs.RESUME_OUTCOME_RESUMED
            assert texts(await stream.wait_events(room_id, 2, kind="announcement")) == ["a1", "a2"]
    finally:
        await admin.close()
        server.stop()


# ---------------------------------------------------------------- cursors that are not the room's


async def test_another_rooms_cursor_is_unknown_not_a_silent_gap(node: Node, admin: Admin) -> None:
    """Rooms share a numbering (embedded: all rooms; Kafka: a partition), so the other
    room's cursor lies between this room's positions. Resuming there would skip this
    room's events before it and replay the rest: it must be CURSOR_UNKNOWN instead."""
    room_id, other = node.rooms(same_numbering=True)
    for room in (room_id, other):
        await admin.create_room(room)
    mine = [await publish(admin, room_id, "a0")]
    foreign = await publish(admin, other, "b0")
    mine.append(await publish(admin, room_id, "a1"))
    assert split(foreign)[0] == split(mine[0])[0], "same numbering: only the room's own positions can tell"
    assert split(mine[0])[1] < split(foreign)[1] < split(mine[1])[1]
    await assert_answered_then_live(node, admin, room_id, foreign)
    await assert_history_refuses(admin, room_id, foreign)


@pytest.mark.parametrize("node", ["kafka"], indirect=True)  # the embedded log has one numbering for all rooms
async def test_a_cursor_counted_in_another_partition_is_unknown(node: Node, admin: Admin) -> None:
    """Kafka: offsets of two partitions take the same values. A cursor of a room in another
    partition, even at an offset where this room has a record, is not this room's."""
    room_id, other = node.rooms(same_numbering=False)
    for room in (room_id, other):
        await admin.create_room(room)
    mine = [await publish(admin, room_id, f"a{n}") for n in range(3)]
    foreign = await publish(admin, other, "b0")
    # The collision: the other partition's numbering, at a position that IS one of this room's records.
    colliding = f"{split(foreign)[0]}.{split(mine[1])[1]}"
    for cursor in (foreign, colliding):
        await assert_answered_then_live(node, admin, room_id, cursor)
        await assert_history_refuses(admin, room_id, cursor)


async def test_a_cursor_beyond_the_head_is_unknown_and_live_events_still_flow(node: Node, admin: Admin) -> None:
    room_id, _ = node.rooms()
    await admin.create_room(room_id)
    head = await publish(admin, room_id, "a0")
    epoch, position = split(head)
    # Just past the head, while the room is quiet (the joins below append presence events).
    following = f"{epoch}.{position + 1}"
    await assert_history_refuses(admin, room_id, following)
    await assert_answered_then_live(node, admin, room_id, following)
    for ahead in (1000, 2**62):
        future = f"{epoch}.{position + ahead}"
        await assert_history_refuses(admin, room_id, future)
        await assert_answered_then_live(node, admin, room_id, future)


async def test_a_cursor_of_another_epoch_is_unknown(node: Node, admin: Admin) -> None:
    room_id, _ = node.rooms()
    await admin.create_room(room_id)
    cursors = [await publish(admin, room_id, f"a{n}") for n in range(2)]
    # A recreated log: the same position, counted in a numbering that no longer exists.
    stale = f"0123456789abcdef0123456789abcdef.{split(cursors[0])[1]}"
    await assert_answered_then_live(node, admin, room_id, stale)
    await assert_history_refuses(admin, room_id, stale)


async def test_truncated_and_garbage_cursors_are_unknown_and_nothing_crashes(node: Node, admin: Admin) -> None:
    room_id, _ = node.rooms()
    await admin.create_room(room_id)
    cursor = await publish(admin, room_id, "a0")
    epoch, position = split(cursor)
    garbage = [
        cursor[: len(epoch) + 1],  # truncated after the dot
        cursor[:8],  # truncated inside the epoch
        f".{position}",  # empty epoch
        f"{cursor}²",  # a digit-like character: str.isdigit() says yes, int() says no
        f"{epoch}.²",
        f"{epoch}.{position}٣",  # a non-ASCII decimal digit, which int() would accept
        f"{epoch}.0{position}",  # another spelling of a position
        f"{epoch}.-1",
        f"{epoch}." + "9" * 40,
        "x" * 20_000,
        "not a cursor",
        "\x00\x01.5",
    ]
    for text in garbage:
        await assert_answered_then_live(node, admin, room_id, text)
        await assert_history_refuses(admin, room_id, text)
    # The node is unharmed: the room's own cursor still resumes.
    async with viewer(node) as stream:
        assert (await stream.join(room_id, resume_cursor=cursor)).resume == rs.RESUME_OUTCOME_RESUMED


# ---------------------------------------------------------------- barrage tail --from


async def test_tail_from_a_cursor_it_cannot_resume_says_so_in_one_line_then_follows(node: Node, admin: Admin) -> None:
    room_id, other = node.rooms(same_numbering=True)
    for room in (room_id, other):
        await admin.create_room(room)
    await publish(admin, room_id, "before")
    foreign = await publish(admin, other, "elsewhere")
    for cursor in (foreign, f"{foreign}²"):
        args = ("tail", room_id, "--from", cursor, "--target", node.server.target)
        async with barrage_process(*args, "--token", node.server.token("tailer")) as tail:
            assert tail.stderr is not None
            assert tail.stdout is not None
            line = (await asyncio.wait_for(tail.stderr.readline(), 30)).decode()
            assert line.startswith("barrage tail: cursor "), line
            assert f"is not a cursor of room {room_id}" in line, line
            assert "following live from the room's newest event" in line, line
            await publish(admin, room_id, "live")
            while True:  # skip viewer counts and presence: the first announcement is the live one
                out = (await asyncio.wait_for(tail.stdout.readline(), 30)).decode()
                assert out, "tail ended early"
                if '"announcement"' in out:
                    break
            assert '"live"' in out, out
            tail.terminate()
            rest = (await asyncio.wait_for(tail.stderr.read(), 30)).decode()
            assert "cursor" not in rest, f"one line only: {rest!r}"


@pytest.mark.parametrize(
    ("outcome", "head", "says"),
    [
        (UNKNOWN, "e.9", "is not a cursor of room r (another room's, beyond its newest event, from a recreated log"),
        (UNKNOWN, "", "following live (no events yet)"),
        (rs.RESUME_OUTCOME_CURSOR_TOO_OLD, "e.9", "is older than room r's retention: events after it may be missing"),
    ],
)
def test_tails_notice_is_one_line_that_says_why_and_where_it_goes_on(
    outcome: rs.ResumeOutcome.ValueType, head: str, says: str
) -> None:
    snapshot = rs.RoomSnapshot(room_id="r", head_cursor=head)
    line = resume_gap_line(ResumeGap("r", outcome, "x\n" * 100, snapshot))
    assert says in line
    assert "\n" not in line, "one line, whatever the cursor holds"
    assert len(line) < 400, "a pasted megabyte is not echoed back"
    if head:
        assert line.endswith(f"following live from the room's newest event {head}")
