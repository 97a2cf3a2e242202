"""The audience list (docs/commerce.md "Audience list"), over real gRPC: one node on
each log backend, and three nodes on one Kafka topic."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from barrage.server.auth import issue_dev_token
from barrage.v1 import event_pb2 as ev
from tests.cluster import Cluster
from tests.kafka_broker import KafkaBroker, running_broker
from tests.server_process import TEST_SECRET, ServerProcess
from tests.wire_client import Admin, RawStream

OK = 0
SIZE = 4
"""--audience-size of the servers under test."""


@pytest.fixture(scope="module")
def broker() -> Iterator[KafkaBroker]:
    with running_broker() as started:
        yield started


@pytest.fixture(params=["embedded", "kafka"])
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    args = ("--audience-size", str(SIZE))
    if request.param == "kafka":
        kafka: KafkaBroker = request.getfixturevalue("broker")
        proc = ServerProcess(tmp_path / "data", log_url=kafka.url(f"aud-{uuid.uuid4().hex[:8]}"), args=args)
    else:
        proc = ServerProcess(tmp_path / "data", args=args)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def trio(broker: KafkaBroker, tmp_path: Path) -> Iterator[Cluster]:
    """Three nodes on one Kafka topic."""
    cluster = Cluster(broker, tmp_path, f"aud3-{uuid.uuid4().hex[:8]}", 3, env={"BARRAGE_AUDIENCE_SIZE": str(SIZE)})
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def token(user: str, level: int = 0, role: str = "viewer") -> str:
    return issue_dev_token(
        TEST_SECRET, user_id=user, role=role, name=user.title(), level=level, badges=[f"club-{user}"] if level else []
    )


async def create(target: str, room_id: str) -> None:
    admin = Admin(target, token("ops", role="service"))
    try:
        await admin.create_room(room_id, "Avatars", host_user_id="the-host")
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def streams() -> AsyncIterator[list[RawStream]]:
    opened: list[RawStream] = []
    try:
        yield opened
    finally:
        for stream in opened:
            await stream.close()


async def join(opened: list[RawStream], target: str, room_id: str, user: str, level: int = 0) -> RawStream:
    stream = RawStream(target)
    opened.append(stream)
    await stream.hello(token(user, level))
    result = await stream.join(room_id)
    assert result.status.code == OK, result.status
    return stream


def latest(stream: RawStream, room_id: str) -> ev.AudienceList | None:
    lists = stream.events(room_id, "audience")
    return lists[-1].payload.audience if lists else None


def shown(audience: ev.AudienceList | None) -> list[str]:
    return [m.user.user_id for m in audience.members] if audience is not None else []


async def until_shown(stream: RawStream, room_id: str, users: list[str], present: int, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while True:
            audience = latest(stream, room_id)
            if shown(audience) == users and audience is not None and audience.present_count == present:
                return
            await asyncio.sleep(0.05)


async def test_newest_arrivals_first_bounded_with_level_and_badges_and_a_snapshot(
    node: ServerProcess, room_id: str
) -> None:
    await create(node.target, room_id)
    async with streams() as opened:
        watcher = await join(opened, node.target, room_id, "watcher")
        for i in range(6):
            await join(opened, node.target, room_id, f"fan-{i}", level=10 + i)
        # Six viewers and the watcher are present; the list shows the SIZE newest.
        await until_shown(watcher, room_id, ["fan-5", "fan-4", "fan-3", "fan-2"], present=7)
        newest = latest(watcher, room_id)
        assert newest is not None
        first = newest.members[0].user
        assert (first.display_name, first.level, list(first.badges), first.role) == (
            "Fan-5",
            15,
            ["club-fan-5"],
            ev.ROLE_VIEWER,
        )
        # A late joiner gets the list in its join snapshot.
        late = RawStream(node.target)
        opened.append(late)
        await late.hello(token("late"))
        result = await late.join(room_id)
        assert shown(result.snapshot.audience) == ["fan-5", "fan-4", "fan-3", "fan-2"]
        assert result.snapshot.audience.present_count == 7
        # Leaving takes a viewer off the list; a user with two streams counts once.
        await opened[-2].close()  # fan-5
        await join(opened, node.target, room_id, "fan-0")  # a second stream of fan-0
        await until_shown(watcher, room_id, ["late", "fan-4", "fan-3", "fan-2"], present=7)


async def test_updates_are_at_most_every_three_seconds_and_a_change_shows_within_five(
    node: ServerProcess, room_id: str
) -> None:
    await create(node.target, room_id)
    async with streams() as opened:
        watcher = await join(opened, node.target, room_id, "watcher")
        for i in range(12):  # a join every 0.4 s for ~5 s
            await join(opened, node.target, room_id, f"v{i}")
            await asyncio.sleep(0.4)
        await until_shown(watcher, room_id, ["v11", "v10", "v9", "v8"], present=13, timeout=5)
        lists = watcher.events(room_id, "audience")
        times = [e.publish_time.ToMilliseconds() for e in lists]
        assert len(times) >= 2
        assert min(b - a for a, b in itertools.pairwise(times)) >= 3000  # --audience-interval-ms
        assert all(e.priority == ev.PRIORITY_EPHEMERAL for e in lists)
        # Nothing changes: nothing is sent.
        count = len(lists)
        await asyncio.sleep(3.5)
        assert len(watcher.events(room_id, "audience")) == count


async def test_contributors_first_puts_present_gifters_by_rank_ahead(tmp_path: Path, room_id: str) -> None:
    proc = ServerProcess(tmp_path / "data", args=("--audience-size", "3", "--audience-order", "contributors"))
    proc.start()
    try:
        await create(proc.target, room_id)
        async with streams() as opened:
            watcher = await join(opened, proc.target, room_id, "watcher")
            for user in ("ann", "bob", "cat", "dan"):
                await join(opened, proc.target, room_id, user)
            admin = Admin(proc.target, token("gifts", role="service"))
            try:
                for user, value in (("bob", 100), ("ann", 500), ("zed-not-here", 9000)):
                    payload = ev.Payload(
                        gift=ev.Gift(
                            gift_id="rose",
                            count=1,
                            unit_value=ev.Money(amount_minor=value, currency="CNY"),
                            giver=ev.Sender(user_id=user),
                        )
                    )
                    await admin.publish(room_id, f"g-{user}", payload)
            finally:
                await admin.close()
            # ann (500) and bob (100) are present gifters; then the newest arrival, dan.
            await until_shown(watcher, room_id, ["ann", "bob", "dan"], present=5)
            audience = latest(watcher, room_id)
            assert audience is not None
            assert [m.gift_value_minor for m in audience.members] == [500, 100, 0]
    finally:
        proc.stop()


async def test_three_nodes_agree_on_the_list_and_forget_a_dead_nodes_viewers(trio: Cluster, room_id: str) -> None:
    await create(trio[0].target, room_id)
    async with streams() as opened:
        watchers = [await join(opened, trio[i].target, room_id, f"watch-{i}") for i in range(3)]
        # Arrivals spread over the nodes, each a moment apart (log order = arrival order).
        for i, user in enumerate(["a0", "b1", "c2", "d0", "e1", "f2"]):
            await join(opened, trio[i % 3].target, room_id, user, level=i + 1)
            await asyncio.sleep(0.1)
        expected = ["f2", "e1", "d0", "c2"]
        for watcher in watchers:
            await until_shown(watcher, room_id, expected, present=9)
        # Every node shows the same list: one node publishes it, every node delivers it.
        ids = {tuple(e.event_id for e in w.events(room_id, "audience"))[-1] for w in watchers}
        assert len(ids) == 1
        levels = {m.user.user_id: m.user.level for m in (latest(watchers[0], room_id) or ev.AudienceList()).members}
        assert levels == {"f2": 6, "e1": 5, "d0": 4, "c2": 3}
        # Node 2 dies without logging its viewers' leaves: once its viewer counts are
        # 15 s old, its viewers (watch-2, c2, f2) leave the list on the other nodes.
        trio[2].kill()
        for watcher in watchers[:2]:
            await until_shown(watcher, room_id, ["e1", "d0", "b1", "a0"], present=6, timeout=30)


async def test_when_the_publishing_node_loses_its_members_another_publishes_at_once(
    trio: Cluster, room_id: str
) -> None:
    await create(trio[0].target, room_id)
    # The publisher is the serving node with the smallest id.
    first, second = sorted(range(3), key=trio.node_id)[:2]
    async with streams() as opened:
        leaving = await join(opened, trio[first].target, room_id, "on-the-publisher")
        staying = await join(opened, trio[second].target, room_id, "elsewhere")
        await until_shown(staying, room_id, ["elsewhere", "on-the-publisher"], present=2)
        await leaving.close()
        # The leave is in the log: every node sees the first one serve nobody, and the
        # second publishes the list without the leaver within the 5 s bar, not after
        # the 15 s a dead node's viewer counts take to expire.
        await until_shown(staying, room_id, ["elsewhere"], present=1, timeout=8)
