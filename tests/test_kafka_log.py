"""Kafka-specific behaviour of the room log, against a real test broker on loopback.

The shared contract is tested in tests/conformance/ (which runs on Kafka too);
this file covers what only Kafka has: topic creation, the epoch, broker outages,
several nodes on one topic, and dedupe across nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import aiokafka.util
import pytest
from aiokafka import AIOKafkaClient, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from barrage.server.log.base import LogEntry, LogRecord, LogUnavailableError, RoomExistsError, RoomInfo
from barrage.server.log.kafka import (
    CExtensionMissingError,
    KafkaConfigError,
    KafkaLog,
    KafkaStartupError,
    open_kafka,
    parse_kafka_url,
)
from barrage.server.log.kafka_partition import PartitionIndex, encode_headers
from barrage.server.log.kafka_session import KafkaSession
from barrage.server.log.kafka_wire import describe_topics
from tests.kafka_broker import KafkaBroker, running_broker

DELIVERY_TIMEOUT_S = 10.0


@pytest.fixture
def broker() -> Iterator[KafkaBroker]:
    with running_broker() as b:
        yield b


def new_room() -> str:
    return f"room-{uuid.uuid4().hex[:12]}"


def entry(tag: str, key: str = "") -> LogEntry:
    return LogEntry(payload=tag.encode(), priority=2, dedupe_key=key, traceparent="")


def tags(records: Sequence[LogRecord]) -> list[str]:
    return [r.payload.decode() for r in records]


@contextlib.asynccontextmanager
async def node(url: str, **options: Any) -> AsyncIterator[KafkaLog]:
    """A started Kafka log ("a gateway node"), closed on exit."""
    options.setdefault("replication_factor", 1)
    # These tests assert order and content, not latency: a loaded two-core CI machine has
    # taken more than the 3 s default to confirm an append.
    options.setdefault("append_timeout_ms", 15_000)
    backend = open_kafka(url, **options)
    assert isinstance(backend.log, KafkaLog)
    await backend.log.start()
    try:
        yield backend.log
    finally:
        await backend.log.close()


class Recorder:
    def __init__(self) -> None:
        self.by_room: dict[str, list[LogRecord]] = {}

    def __call__(self, records: Sequence[LogRecord]) -> None:
        for r in records:
            self.by_room.setdefault(r.room_id, []).append(r)

    def got(self, room: str) -> list[LogRecord]:
        return self.by_room.get(room, [])

    def has(self, room: str, n: int) -> Callable[[], bool]:
        """A condition for wait_until: at least n records of the room arrived."""
        return lambda: len(self.got(room)) >= n


async def wait_until(cond: Callable[[], bool], what: str, timeout_s: float = DELIVERY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def read_all(log: KafkaLog, room: str) -> list[LogRecord]:
    out: list[LogRecord] = []
    after = -1
    while page := await log.read(room, after, 500):
        out.extend(page)
        after = page[-1].position
    return out


# ---------------------------------------------------------------- configuration and start-up


def test_url_and_options() -> None:
    opts = parse_kafka_url("kafka://h1:9092,h2:9093/live?partitions=6&fetch_max_wait_ms=100", partitions=8)
    assert opts.bootstrap_servers == "h1:9092,h2:9093"
    assert (opts.topic, opts.partitions, opts.fetch_max_wait_ms, opts.directory) == ("live", 8, 100, "live.directory")
    assert parse_kafka_url("kafka://h:1").topic == "barrage.rooms"
    assert parse_kafka_url("kafka://h:1/t?enable_idempotence=true").enable_idempotence
    for bad in ("kafka://", "http://h:1/t", "kafka://h/t", "kafka://h:1/t?nope=1", "kafka://h:1/t?partitions=x"):
        with pytest.raises(KafkaConfigError):
            parse_kafka_url(bad)
    with pytest.raises(KafkaConfigError):
        open_kafka("kafka://h:1", fetch_max_wait_ms=0)


async def test_start_refuses_pure_python_aiokafka(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiokafka.util, "NO_EXTENSIONS", True)
    log = open_kafka("kafka://127.0.0.1:9/t").log
    with pytest.raises(CExtensionMissingError, match="C extension"):
        await log.start()
    await log.close()


async def test_creates_missing_topics(broker: KafkaBroker) -> None:
    async with node(broker.url("live"), partitions=5) as log:
        assert log.epoch("any room")
        client = AIOKafkaClient(bootstrap_servers=broker.bootstrap)
        await client.bootstrap()
        try:
            topics = await describe_topics(client, ["live", "live.directory"])
        finally:
            await client.close()
        live, directory = topics["live"], topics["live.directory"]
        assert live is not None
        assert directory is not None
        assert (live.partitions, directory.partitions) == (5, 1)
        partition = log.partition_of("any room")
        assert log.epoch("any room") == f"{live.topic_id}:{partition}", "the epoch is the topic id and the partition"
    # A second node (or a restart) finds the topic and keeps its partition count and epoch.
    async with node(broker.url("live"), partitions=9) as again:
        assert again.partition_count == 5
        assert again.epoch("r") == f"{live.topic_id}:{again.partition_of('r')}"


async def test_missing_topic_without_creation_is_a_clear_error(broker: KafkaBroker) -> None:
    with pytest.raises(KafkaStartupError, match="do not exist and create_topics is off"):
        async with node(broker.url("absent"), create_topics=False):
            pass


async def test_unreachable_brokers_fail_start_clearly() -> None:
    port = KafkaBroker().port  # a free port nobody listens on
    started = time.monotonic()
    with pytest.raises(KafkaStartupError, match=f"cannot reach Kafka at 127.0.0.1:{port}"):
        async with node(f"kafka://127.0.0.1:{port}/t", startup_timeout_s=0.5):
            pass
    assert time.monotonic() - started < 5


async def test_start_waits_for_a_broker_that_comes_up() -> None:
    broker = KafkaBroker()

    def start_later() -> None:
        time.sleep(0.5)
        broker.start()

    # The broker starts 0.5 s after the node began waiting for it.
    delayed = asyncio.get_running_loop().run_in_executor(None, start_later)
    try:
        async with node(broker.url("t"), startup_timeout_s=10) as log:
            [res] = await log.append(new_room(), [entry("hello")])
            assert res.record.position == 0
    finally:
        with contextlib.suppress(RuntimeError):
            await delayed  # never leave a broker starting behind the test
        broker.stop()


# ---------------------------------------------------------------- epoch


async def _delete_topics(broker: KafkaBroker, *topics: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(list(topics))
    finally:
        await admin.close()


async def test_recreated_topic_is_a_new_epoch(broker: KafkaBroker) -> None:
    room = new_room()
    async with node(broker.url("t"), partitions=2) as log:
        old_epoch = log.epoch(room)
        old = [r.record for r in await log.append(room, [entry(f"old{i}") for i in range(3)])]
    await _delete_topics(broker, "t")
    async with node(broker.url("t"), partitions=2) as log:
        assert log.epoch(room) != old_epoch, "positions of the old topic must never be read as this one's"
        [new] = await log.append(room, [entry("new")])
        assert new.record.position == 0, "offsets restarted: the same number means another record"
        assert new.record.position in [r.position for r in old]
        assert tags(await read_all(log, room)) == ["new"]


async def test_running_node_notices_a_recreated_topic(broker: KafkaBroker) -> None:
    room = new_room()
    async with node(broker.url("t"), partitions=2, maintenance_interval_s=0.1) as log:
        old_epoch = log.epoch(room)
        rec = Recorder()
        log.set_listener(rec)
        await log.watch(room)
        await log.append(room, [entry("old")])
        await wait_until(lambda: tags(rec.got(room)) == ["old"], "the old record")
        await _delete_topics(broker, "t")
        # Clients of a Kafka with auto topic creation may recreate it first; create it if nobody did.
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic("t", 2, 1)])
        finally:
            await admin.close()
        await wait_until(lambda: log.epoch(room) != old_epoch, "the epoch to change")
        [new] = await log.append(room, [entry("new")])
        await wait_until(lambda: tags(rec.got(room))[-1:] == ["new"], "live delivery in the new epoch")
        assert tags(await read_all(log, room)) == ["new"]
        assert new.record.position == 0


# ---------------------------------------------------------------- outages


def _freeze_on_next_send(log: KafkaLog, broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    """Freeze the broker right after the append's dedupe check, just before the produce is sent."""
    producer = log._session.producer  # white-box: the moment matters
    original = producer.send

    async def send(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(producer, "send", original)
        broker.freeze()
        return await original(*args, **kwargs)

    monkeypatch.setattr(producer, "send", send)


async def test_frozen_broker_fails_appends_quickly_and_the_retry_finds_the_late_copy(
    broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    room = new_room()
    async with node(broker.url("t"), partitions=2, append_timeout_ms=1000, read_timeout_ms=1000) as log:
        rec = Recorder()
        log.set_listener(rec)
        await log.watch(room)
        [before] = await log.append(room, [entry("before", key="u/1")])

        # 1. The produce goes out while the broker is frozen: no answer, the append fails in time.
        _freeze_on_next_send(log, broker, monkeypatch)
        started = time.monotonic()
        with pytest.raises(LogUnavailableError):
            await log.append(room, [entry("during", key="u/2")])
        assert time.monotonic() - started < 2.5, "an outage answers UNAVAILABLE, not a hang"

        # 2. Still frozen: every kind of call fails in time rather than hanging.
        for call in (log.append(room, [entry("again", key="u/3")]), log.read(room, -1, 10), log.head(room)):
            started = time.monotonic()
            with pytest.raises(LogUnavailableError):
                await call
            assert time.monotonic() - started < 2.5

        # 3. Thawed: the frozen produce lands after all; its retry answers that copy.
        broker.thaw()
        retry = None
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        while retry is None:
            try:
                [retry] = await log.append(room, [entry("during-retry", key="u/2")])
            except LogUnavailableError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        assert retry.duplicate, "the timed-out produce was appended when the broker thawed"
        assert retry.record.payload == b"during"
        [after] = await log.append(room, [entry("after", key="u/4")])
        stored = await read_all(log, room)
        assert tags(stored) == ["before", "during", "after"], "exactly one copy of the retried send"
        assert [r.position for r in stored] == [before.record.position, retry.record.position, after.record.position]
        # Live delivery resumed by itself and carried one copy of each.
        await wait_until(rec.has(room, 3), "live delivery after the outage")
        await asyncio.sleep(0.05)
        assert rec.got(room) == stored


# ---------------------------------------------------------------- several nodes


async def test_two_nodes_see_one_order(broker: KafkaBroker) -> None:
    url = broker.url("t")
    rooms = [new_room() for _ in range(4)]
    async with node(url, partitions=3) as a, node(url, partitions=3) as b:
        recorders = {a: Recorder(), b: Recorder()}
        for log in (a, b):
            log.set_listener(recorders[log])
            for room in rooms:
                await log.watch(room)

        async def sender(log: KafkaLog, name: str) -> None:
            for i in range(30):
                room = rooms[i % len(rooms)]
                await log.append(room, [entry(f"{name}-{i}-{e}", key=f"{name}/{i}/{e}") for e in range(1 + i % 2)])

        await asyncio.gather(*(sender(log, f"{tag}{s}") for tag, log in (("a", a), ("b", b)) for s in range(3)))
        for room in rooms:
            stored = await read_all(a, room)
            assert stored == await read_all(b, room)
            assert {t.split("-")[0][0] for t in tags(stored)} == {"a", "b"}, "both nodes sent to the room"
            for log in (a, b):
                await wait_until(recorders[log].has(room, len(stored)), "live records on both nodes")
        await asyncio.sleep(0.05)
        for room in rooms:
            stored = await read_all(a, room)
            assert recorders[a].got(room) == stored
            assert recorders[b].got(room) == stored, "every viewer on every node sees one identical order"


async def test_an_append_in_a_watched_room_is_delivered_locally_before_its_ack(broker: KafkaBroker) -> None:
    """What a node acknowledged, its own listener already has (as with the embedded log)."""
    room, other = new_room(), new_room()
    async with node(broker.url("t"), partitions=2) as log:
        rec = Recorder()
        log.set_listener(rec)
        await log.watch(room)
        for i in range(20):
            [res] = await log.append(room, [entry(f"m{i}", key=f"k{i}" if i % 2 else "")])
            assert rec.got(room)[-1:] == [res.record]
        [unwatched] = await log.append(other, [entry("x")])  # not watched here: nothing to wait for
        assert unwatched.record.position >= 0
        assert rec.got(other) == []


async def test_records_appended_right_after_watch_reach_the_watcher(broker: KafkaBroker) -> None:
    url = broker.url("t")
    async with node(url, partitions=4) as a, node(url, partitions=4) as b:
        rec = Recorder()
        b.set_listener(rec)
        rooms = [new_room() for _ in range(12)]
        expected = {}
        for room in rooms:
            await b.watch(room)  # b starts tailing the room's partition now, or already does
            [res] = await a.append(room, [entry("first")])
            expected[room] = res.record
        for room in rooms:
            await wait_until(rec.has(room, 1), f"delivery in {room}")
            assert rec.got(room)[-1] == expected[room]
        await b.unwatch(rooms[0])
        await a.append(rooms[0], [entry("unwatched")])
        [res] = await a.append(rooms[1], [entry("second")])
        await wait_until(lambda: rec.got(rooms[1])[-1:] == [res.record], "delivery in a still watched room")
        assert tags(rec.got(rooms[0])) == ["first"]


async def test_retry_on_another_node_returns_the_first_copy(broker: KafkaBroker) -> None:
    url = broker.url("t")
    room = new_room()
    async with node(url, partitions=2) as a, node(url, partitions=2) as b:
        [first] = await a.append(room, [entry("hello", key="alice/m1")])
        [retry] = await b.append(room, [entry("hello", key="alice/m1")])
        assert retry.duplicate
        assert retry.record == first.record
        assert tags(await read_all(b, room)) == ["hello"]


async def test_concurrent_same_key_on_two_nodes_yields_one_copy(broker: KafkaBroker) -> None:
    url = broker.url("t")
    room = new_room()
    async with node(url, partitions=1) as a, node(url, partitions=1) as b:
        recorders = {a: Recorder(), b: Recorder()}
        for log in (a, b):
            log.set_listener(recorders[log])
            await log.watch(room)
        keys = [f"bob/m{i}" for i in range(20)]
        results = await asyncio.gather(
            *(log.append(room, [entry(f"{name}:{key}", key=key)]) for key in keys for name, log in (("a", a), ("b", b)))
        )
        by_key: dict[str, list[Any]] = {}
        for [res] in results:
            by_key.setdefault(res.record.dedupe_key, []).append(res)
        stored = await read_all(a, room)
        assert stored == await read_all(b, room)
        assert sorted(r.dedupe_key for r in stored) == sorted(keys), "one copy per key"
        for key, answers in by_key.items():
            assert sum(not r.duplicate for r in answers) == 1
            assert len({r.record for r in answers}) == 1, f"both nodes answer the same copy of {key}"
        for log in (a, b):
            await wait_until(recorders[log].has(room, len(keys)), "live records")
        await asyncio.sleep(0.05)
        assert recorders[a].got(room) == stored
        assert recorders[b].got(room) == stored


async def test_copy_landing_after_the_first_is_answered_as_duplicate(
    broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Node b checked the log, then a appended the same key, then b's copy landed second."""
    url = broker.url("t")
    room = new_room()
    async with node(url, partitions=2) as a, node(url, partitions=2) as b:
        rec = Recorder()
        b.set_listener(rec)
        await b.watch(room)
        producer = b._session.producer  # white-box: interleave a's append between b's check and b's send
        original = producer.send
        first: list[Any] = []

        async def send(*args: Any, **kwargs: Any) -> Any:
            monkeypatch.setattr(producer, "send", original)
            first.extend(await a.append(room, [entry("from-a", key="carol/m1")]))
            return await original(*args, **kwargs)

        monkeypatch.setattr(producer, "send", send)
        [res] = await b.append(room, [entry("from-b", key="carol/m1")])
        assert res.duplicate
        assert res.record == first[0].record
        [later] = await b.append(room, [entry("later")])
        for log in (a, b):
            assert tags(await read_all(log, room)) == ["from-a", "later"], "the second copy is never read"
            assert tags(await log.read_backward(room, None, 10)) == ["later", "from-a"]
        await wait_until(lambda: rec.got(room)[-1:] == [later.record], "live records")
        assert tags(rec.got(room)) == ["from-a", "later"], "the second copy is never delivered"


async def test_late_copy_of_a_timed_out_send_is_invisible(broker: KafkaBroker) -> None:
    """A produce that timed out may land after its retry was appended: every node skips that copy."""
    url = broker.url("t")
    room = new_room()
    async with node(url, partitions=2) as a, node(url, partitions=2) as b:
        rec = Recorder()
        a.set_listener(rec)
        await a.watch(room)
        [retry] = await b.append(room, [entry("retry", key="dave/m1")])
        # The original produce, written straight to the partition as a late-thawed broker would.
        late = LogEntry(payload=b"late", priority=2, dedupe_key="dave/m1")
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(
                "t", late.payload, key=room.encode(), partition=b.partition_of(room), headers=encode_headers(late)
            )
        finally:
            await producer.stop()
        [after] = await b.append(room, [entry("after")])
        await wait_until(lambda: rec.got(room)[-1:] == [after.record], "live records")
        assert tags(rec.got(room)) == ["retry", "after"]
        for log in (a, b):
            assert tags(await read_all(log, room)) == ["retry", "after"]
        async with node(url) as c:  # a node that starts later builds the same verdict from the log
            assert tags(await read_all(c, room)) == ["retry", "after"]
            [again] = await c.append(room, [entry("again", key="dave/m1")])
            assert again.duplicate
            assert again.record == retry.record


async def test_two_nodes_create_the_same_room_once(broker: KafkaBroker) -> None:
    url = broker.url("t")
    async with node(url) as a, node(url) as b:
        for i in range(10):
            room = new_room()
            infos = [RoomInfo(room, f"by-{name}-{i}", name, 1) for name in ("a", "b")]
            outcomes = await asyncio.gather(a.rooms.create(infos[0]), b.rooms.create(infos[1]), return_exceptions=True)
            winners = [o for o in outcomes if isinstance(o, RoomInfo)]
            assert len(winners) == 1, outcomes
            assert sum(isinstance(o, RoomExistsError) for o in outcomes) == 1
            assert await a.rooms.get(room) == await b.rooms.get(room) == winners[0]


# ---------------------------------------------------------------- history reads


async def test_head_of_a_quiet_room_in_a_busy_partition(broker: KafkaBroker) -> None:
    """head() and read_backward() scan back past what the node's index covers."""
    url = broker.url("t")
    quiet, busy = new_room(), new_room()
    async with node(url, partitions=1) as a:
        old = [r.record for r in await a.append(quiet, [entry(f"q{i}") for i in range(3)])]
        for i in range(10):
            await a.append(busy, [entry(f"b{i}-{e}") for e in range(100)])
    # A node whose dedupe index starts at the end of the partition knows nothing of the quiet room.
    async with node(url, dedupe_window_s=0, clock_skew_s=0) as b:
        assert await b.head(quiet) == old[-1].position
        assert await b.read_backward(quiet, None, 2) == old[:0:-1]
        assert await b.read(quiet, old[0].position, 10) == old[1:]
        assert await b.head(new_room()) is None


async def test_room_history_starts_where_the_room_was_created(broker: KafkaBroker) -> None:
    """The directory remembers where the room's partition ended at creation; reads start there."""
    url = broker.url("t")
    room, noise = new_room(), new_room()
    async with node(url, partitions=1) as a:
        for i in range(50):
            await a.append(noise, [entry(f"n{i}")])
        await a.rooms.create(RoomInfo(room, "sale", "host", 1))
        acked = [r.record for r in await a.append(room, [entry(f"m{i}") for i in range(3)])]
        await a.rooms.close_room(room, 2)  # the close record carries the start too (compaction keeps the last)
    async with node(url) as b:
        start = b.rooms.log_start(room, b.epoch(room))
        assert 50 <= start <= acked[0].position
        assert b.rooms.log_start(room, "another epoch") == 0, "a start from another epoch means nothing"
        assert await b.read(room, -1, 10) == acked
        assert await b.read_backward(room, None, 10) == acked[::-1]
        assert await b.head(room) == acked[-1].position
        assert len(await b.read(noise, -1, 100)) == 50


# ---------------------------------------------------------------- the dedupe index itself


class _Record:
    def __init__(self, offset: int, timestamp: int, room: str, key: str) -> None:
        self.offset, self.timestamp, self.key, self.value = offset, timestamp, room.encode(), b"x"
        self.headers = encode_headers(LogEntry(b"x", 2, dedupe_key=key))


def test_index_marks_later_copies_within_the_window_as_shadows() -> None:
    session = KafkaSession(parse_kafka_url("kafka://h:1/t"))
    index = PartitionIndex(session, TopicPartition("t", 0), 10, window_ms=1000, skew_ms=0)
    index.feed([_Record(10, 5_000, "r", "k"), _Record(11, 5_100, "r", "other"), _Record(12, 5_900, "r", "k")], None)
    assert index.end == 13
    assert [index.is_shadow(o) for o in (10, 11, 12)] == [False, False, True]
    assert index.first_copy(b"r", "k") == 10
    assert index.first_copy(b"r", "k", now_ms=6_100) is None, "outside the window of now"
    assert index.last_offset(b"r") == 11, "a shadow is not the room's last record"
    # Already-seen offsets are skipped; a copy later than the window is a new first copy.
    index.feed([_Record(12, 5_900, "r", "k"), _Record(13, 6_500, "r", "k"), _Record(14, 6_600, "s", "k")], 15)
    assert index.end == 15
    assert not index.is_shadow(13)
    assert index.first_copy(b"r", "k") == 13
    assert index.first_copy(b"s", "k") == 14, "keys are scoped to the room"
    index.evict(now_ms=10_000)
    assert index.size() == 0
