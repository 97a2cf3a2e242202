"""Issue 12, part 1: live delivery is checked against the log, never silently gapped.

- Three `barrage serve` nodes on the test broker (Tansu), senders on every node, a
  full-frame subscriber (moderator: never sampled) on every node: each subscriber's live
  events equal the room's history, with none missing, duplicated or out of order, run
  after run.
- The Kafka tail's continuity check, through its seam (Tailer.fetch_from_node) wrapped
  around the real broker's answers on an in-process node: an answer that skips offsets
  is refetched and delivery is complete; a range that never comes back makes the
  subscriber resume (ResumeRequired with the last cursor it was sent), and the metric
  counts the discontinuities, refetches, the hole and the room's gap.
- The gateway's per-room check: a live record that does not follow the last one read is
  never written, and the room's subscribers resume.
- The embedded log's live path and the replay -> live hand-over: subscribers joining and
  resuming while appends pour in get the history's exact sequence from where they start.
- A history read (the replay side of the hand-over) asks again for offsets an answer lacks.
- find_hole on hand-made answers (control batches, repeats, trailing gaps).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiokafka.structs import TopicPartition
from opentelemetry.sdk.metrics.export import NumberDataPoint

from barrage.server.app import Node
from barrage.server.auth import issue_dev_token
from barrage.server.config import Settings
from barrage.server.core import policy
from barrage.server.core.cursor import parse_cursor
from barrage.server.core.ingest import SYSTEM
from barrage.server.core.posts import Entry
from barrage.server.log import kafka_session, kafka_wire
from barrage.server.log.base import LogEntry, LogRecord
from barrage.server.log.kafka import KafkaLog, open_kafka
from barrage.server.log.kafka_tail import Hole, find_hole
from barrage.server.log.kafka_wire import PartitionData
from barrage.server.telemetry.readers import HotInMemoryReader
from barrage.server.telemetry.setup import setup as setup_telemetry
from barrage.v1 import event_pb2 as ev
from barrage.v1 import room_service_pb2 as rs
from tests.cluster import OK, Cluster, closing, connect
from tests.kafka_broker import KafkaBroker, running_broker
from tests.server_process import TEST_SECRET, ServerProcess, free_port
from tests.wire_client import Admin, RawStream

UNAVAILABLE = 14  # google.rpc.Code
FAST_SENDS = {"BARRAGE_SENDS_PER_SECOND": "100000", "BARRAGE_SEND_BURST": "100000"}
"""The tests measure delivery, not the rate limits."""
PATIENT_LOG = "append_timeout_ms=15000&read_timeout_ms=15000"
"""Nor the broker's latency (a read unanswered in 3 s failed a run on a loaded machine)."""


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def comments(events: Sequence[ev.Event]) -> list[str]:
    return [e.cursor for e in events if e.payload.WhichOneof("kind") == "comment"]


@dataclass
class Verdict:
    missing: int
    duplicated: int
    out_of_order: int


def compare(received: Sequence[str], history: Sequence[str]) -> Verdict:
    """How a subscriber's received cursors differ from the history's (in history order)."""
    order = {cursor: i for i, cursor in enumerate(history)}
    seen = set(received)
    indexes = [order[c] for c in received if c in order]
    return Verdict(
        missing=sum(1 for c in history if c not in seen),
        duplicated=len(received) - len(seen),
        out_of_order=sum(1 for a, b in itertools.pairwise(indexes) if b < a),
    )


async def wait_comments(stream: RawStream, room_id: str, count: int, timeout: float) -> list[str]:
    """The stream's comment cursors once it has `count` (or whatever it has at the timeout)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = comments(stream.events(room_id))
        if len(got) >= count or loop.time() >= deadline or stream.done:
            return got
        await asyncio.sleep(0.2)


class Acks:
    """Send results of one stream, read incrementally (RawStream.expect rescans everything it
    received for each waiter: too slow for thousands of sends on a stream that also receives)."""

    def __init__(self, stream: RawStream) -> None:
        self.stream = stream
        self._scanned = 0
        self.results: dict[str, rs.SendResult] = {}

    def _update(self) -> None:
        received = self.stream.received
        for i in range(self._scanned, len(received)):
            message = received[i]
            if message.WhichOneof("kind") == "send_result":
                self.results[message.send_result.client_msg_id] = message.send_result
        self._scanned = len(received)

    async def send_comments(self, room_id: str, texts: Sequence[str], window: int = 30) -> list[str]:
        """Send comments (text = client_msg_id) `window` at a time; their cursors, all acknowledged.
        A send refused UNAVAILABLE (the log did not confirm in time: a loaded broker) is sent
        again with the same id, as the contract tells clients to; the exact history the
        callers compare shows it was appended once."""
        for i in range(0, len(texts), window):
            pending = list(texts[i : i + window])
            for _attempt in range(5):
                for text in pending:
                    self.results.pop(text, None)
                    payload = ev.Payload(comment=ev.Comment(text=text))
                    send = rs.Send(room_id=room_id, client_msg_id=text, payload=payload)
                    await self.stream.send(rs.ConnectRequest(send=send))
                await self._wait_for(pending)
                pending = [t for t in pending if self.results[t].status.code == UNAVAILABLE]
                if not pending:
                    break
                await asyncio.sleep(1.0)
            chunk = texts[i : i + window]
            refused = [self.results[t].status for t in chunk if self.results[t].status.code != OK]
            assert not refused, refused
        return [self.results[text].cursor for text in texts]

    async def _wait_for(self, texts: Sequence[str]) -> None:
        async with asyncio.timeout(30):
            while True:
                self._update()
                if all(text in self.results for text in texts):
                    return
                assert not self.stream.done, f"stream ended: {self.stream.ended}"
                await asyncio.sleep(0.02)


def resumes(stream: RawStream, room_id: str) -> list[rs.ResumeRequired]:
    return [
        m.resume_required
        for m in stream.received
        if m.WhichOneof("kind") == "resume_required" and m.resume_required.room_id == room_id
    ]


# ================================================================== three nodes, several runs


@pytest.fixture(scope="module")
def broker() -> Iterator[KafkaBroker]:
    with running_broker() as started:
        yield started


@pytest.fixture(scope="module")
def cluster(broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # (they measure what arrives, not how fast: a loaded CI machine's broker may take over 3 s)
    nodes = Cluster(
        broker, tmp_path_factory.mktemp("continuity"), new_id("rooms"), 3, env=FAST_SENDS, options=PATIENT_LOG
    )
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()


SENDERS_PER_NODE = 2
PER_SENDER = 1500
IN_FLIGHT = 30
"""Sends a sender keeps outstanding: the nodes append concurrently, in many small batches."""


@pytest.mark.parametrize("run", range(3))
async def test_full_frame_subscribers_on_three_nodes_receive_exactly_the_history(cluster: Cluster, run: int) -> None:
    room_id = new_id(f"live-{run}")
    admin = Admin(cluster[0].target, cluster.token("ops", role="service"))
    subscribers: list[RawStream] = []
    senders: list[RawStream] = []
    try:
        await admin.create_room(room_id, "continuity")
        async with closing(subscribers), closing(senders):
            for node in range(3):
                subscribers.append(
                    await connect(cluster[node].target, cluster.token(f"mod-{node}", "moderator"), room_id)
                )
            for node in range(3):
                for i in range(SENDERS_PER_NODE):
                    token = cluster.token(f"sender-{node}-{i}")
                    senders.append(await connect(cluster[node].target, token, room_id))

            async def send_all(index: int, stream: RawStream) -> None:
                await Acks(stream).send_comments(room_id, [f"{index}:{n}" for n in range(PER_SENDER)], IN_FLIGHT)

            await asyncio.gather(*(send_all(i, s) for i, s in enumerate(senders)))
            total = len(senders) * PER_SENDER
            history = comments(await admin.all_events(room_id))
            assert len(history) == total
            received = [await wait_comments(s, room_id, total, timeout=30) for s in subscribers]
            for node, (stream, got) in enumerate(zip(subscribers, received, strict=True)):
                assert resumes(stream, room_id) == [], f"node {node}: told to resume without a fault"
                assert stream.omitted(room_id) == 0, f"node {node}: a full-frame subscriber was sampled"
                assert compare(got, history) == Verdict(0, 0, 0), f"node {node}"
                assert got == history
    finally:
        await admin.close()


# ================================================================== the tail's seam, in process


class Seam:
    """Wraps the tail's fetch: alters the real broker's answers for the log topic.

    `skip_once(n)`: the first answer with more than n records loses its records n..2n-1 once.
    `refuse(marker)`: the record whose value contains `marker` is removed from every answer,
    for good (as if that range could never be read by the tail)."""

    def __init__(self, log: KafkaLog) -> None:
        tailer = log.tailer
        assert tailer is not None
        self.tailer = tailer
        self.topic = log.options.topic
        self._real = tailer.fetch_from_node
        tailer.fetch_from_node = self._fetch
        self._skip: int | None = None
        self.skipped: list[int] = []
        self._marker: bytes | None = None
        self.refused: int | None = None

    def skip_once(self, n: int) -> None:
        self._skip = n

    def refuse(self, marker: bytes) -> None:
        self._marker = marker

    async def _fetch(self, *args: Any, **kwargs: Any) -> dict[TopicPartition, PartitionData]:
        answer: dict[TopicPartition, PartitionData] = await self._real(*args, **kwargs)
        out = {}
        for tp, data in answer.items():
            out[tp] = self._alter(data) if tp.topic == self.topic and data.error is None else data
        return out

    def _alter(self, data: PartitionData) -> PartitionData:
        records = data.records
        if self._skip is not None and len(records) > 2 * self._skip:
            n, self._skip = self._skip, None
            self.skipped = [r.offset for r in records[n : 2 * n]]
            return replace(data, records=records[:n] + records[2 * n :])
        if self._marker is not None and self.refused is None:
            for record in records:
                if record.value is not None and self._marker in record.value:
                    self.refused = record.offset
        if self.refused is not None:
            return replace(data, records=[r for r in records if r.offset != self.refused])
        return data


@contextlib.asynccontextmanager
async def in_process_node(log_url: str) -> AsyncIterator[tuple[Node, HotInMemoryReader]]:
    """A gateway node in this process (so a test can reach its tail), metrics in memory."""
    settings = Settings.model_validate(
        {
            "listen": f"127.0.0.1:{free_port()}",
            "log": log_url,
            "jwt_secret": TEST_SECRET,
            "node_id": "in-process",
            "insights": False,
            "sends_per_second": 100_000,
            "send_burst": 100_000,
            "shutdown_grace_s": 0.0,
        }
    )
    reader = HotInMemoryReader()
    telemetry = setup_telemetry(settings, env={}, metric_readers=[reader])
    threshold = gc.get_threshold()
    node = Node(settings)
    try:
        await node.start()
        try:
            yield node, reader
        finally:
            await node.stop(0.0)
    finally:
        telemetry.shutdown()
        gc.unfreeze()  # Node.start tunes the collector for a server process; not for the tests'
        gc.set_threshold(*threshold)


def continuity_counts(reader: HotInMemoryReader) -> dict[str, int]:
    data = reader.get_metrics_data()
    out: dict[str, int] = {}
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "barrage.live.continuity":
                    for point in metric.data.data_points:
                        assert isinstance(point, NumberDataPoint) and point.attributes is not None
                        out[str(point.attributes["barrage.continuity"])] = int(point.value)
    return out


def token(user: str, role: str = "viewer") -> str:
    return issue_dev_token(TEST_SECRET, user_id=user, role=role, name=user, ttl_s=3600)


async def send_sequentially(stream: RawStream, room_id: str, texts: Sequence[str]) -> list[str]:
    cursors = []
    for text in texts:
        result = await stream.send_comment(room_id, text, text, timeout=20)
        assert result.status.code == OK, result.status
        cursors.append(result.cursor)
    return cursors


async def test_an_answer_that_skips_offsets_is_refetched_and_delivery_is_complete(broker: KafkaBroker) -> None:
    room_id = new_id("skip")
    async with in_process_node(broker.url(new_id("rooms"))) as (node, reader):
        target = f"127.0.0.1:{node.port}"
        assert isinstance(node.gateway.room_log, KafkaLog)
        seam = Seam(node.gateway.room_log)
        admin = Admin(target, token("ops", "service"))
        try:
            await admin.create_room(room_id)
            async with closing([]) as streams:
                streams.append(subscriber := await connect(target, token("mod", "moderator"), room_id))
                streams.append(sender := await connect(target, token("alice"), room_id))
                seam.skip_once(2)
                # Sends 30 at a time: answers with several records, one of which loses two of them.
                await Acks(sender).send_comments(room_id, [f"c{n}" for n in range(90)], 30)
                history = comments(await admin.all_events(room_id))
                got = await wait_comments(subscriber, room_id, len(history), timeout=20)
                assert seam.skipped, "the seam removed records from an answer"
                assert compare(got, history) == Verdict(0, 0, 0)
                assert resumes(subscriber, room_id) == []
        finally:
            await admin.close()
        tail = seam.tailer.counts
        assert tail["discontinuity"] >= 1 and tail["refetch"] >= 1 and tail["hole"] == 0, tail
        counted = continuity_counts(reader)
        assert counted.get("discontinuity", 0) >= 1 and counted.get("refetch", 0) >= 1, counted
        assert "hole" not in counted and "room_gap" not in counted, counted


async def test_a_range_that_never_comes_back_makes_the_subscriber_resume_from_its_last_cursor(
    broker: KafkaBroker,
) -> None:
    room_id = new_id("hole")
    async with in_process_node(broker.url(new_id("rooms"))) as (node, reader):
        target = f"127.0.0.1:{node.port}"
        assert isinstance(node.gateway.room_log, KafkaLog)
        seam = Seam(node.gateway.room_log)
        admin = Admin(target, token("ops", "service"))
        try:
            await admin.create_room(room_id)
            async with closing([]) as streams:
                streams.append(subscriber := await connect(target, token("mod", "moderator"), room_id))
                streams.append(sender := await connect(target, token("alice"), room_id))
                before = await send_sequentially(sender, room_id, ["a0", "a1", "a2"])
                assert await wait_comments(subscriber, room_id, 3, timeout=15) == before
                seam.refuse(b"LOST")
                [lost] = await send_sequentially(sender, room_id, ["LOST"])

                told = await subscriber.expect("resume_required", lambda r: r.room_id == room_id, timeout=20)
                # The lost event was never delivered live, and the cursor is the last event it was sent.
                live = subscriber.events(room_id)
                assert live[-1].cursor == told.cursor
                assert lost not in comments(live)
                assert seam.refused == parse_cursor(lost).position
                # Every subscriber of the room on the node was told, the sender too: it joins again.
                await sender.expect("resume_required", lambda r: r.room_id == room_id, timeout=20)
                assert (await sender.join(room_id)).status.code == OK
                after = await send_sequentially(sender, room_id, ["b0", "b1"])

                # The client resumes from that cursor: the replay reads the log, which has it all.
                joined = await subscriber.join(room_id, resume_cursor=told.cursor)
                assert joined.status.code == OK and joined.resume == rs.RESUME_OUTCOME_RESUMED
                await wait_comments(subscriber, room_id, 6, timeout=15)
                history = comments(await admin.all_events(room_id))
                assert history == [*before, lost, *after]
                assert compare(comments(subscriber.events(room_id)), history) == Verdict(0, 0, 0)
        finally:
            await admin.close()
        tail = seam.tailer.counts
        assert tail["hole"] == 1 and tail["refetch"] >= 1, tail
        counted = continuity_counts(reader)
        assert counted.get("hole") == 1 and counted.get("room_gap") == 1, counted
        assert counted.get("discontinuity", 0) > counted.get("refetch", 0) >= 1, counted


# ================================================================== embedded: live path and hand-over


async def test_a_live_record_whose_predecessor_never_came_is_not_delivered_and_its_room_resumes(
    tmp_path: Path,
) -> None:
    """The gateway's own check, on the embedded log: a live record that does not follow the last
    one the room's channel read (white-box: handed to the log's listener directly) is never
    written; the room's subscribers are told to resume from the last event they were sent."""
    room_id = new_id("gap")
    async with in_process_node(f"embedded:{tmp_path / 'data'}") as (node, reader):
        target = f"127.0.0.1:{node.port}"
        admin = Admin(target, token("ops", "service"))
        try:
            await admin.create_room(room_id)
            async with closing([]) as streams:
                streams.append(subscriber := await connect(target, token("mod", "moderator"), room_id))
                streams.append(sender := await connect(target, token("alice"), room_id))
                sent = await send_sequentially(sender, room_id, ["a0", "a1"])
                assert await wait_comments(subscriber, room_id, 2, timeout=10) == sent
                last = parse_cursor(sent[-1]).position
                stray = ev.Event(room_id=room_id, payload=ev.Payload(comment=ev.Comment(text="stray")))
                node.gateway._on_records(
                    [LogRecord(room_id, last + 10, stray.SerializeToString(), 2, prev_position=last + 9)]
                )
                told = await subscriber.expect("resume_required", lambda r: r.room_id == room_id, timeout=10)
                assert told.cursor == subscriber.events(room_id)[-1].cursor
                assert "stray" not in [e.payload.comment.text for e in subscriber.events(room_id)]
        finally:
            await admin.close()
        assert continuity_counts(reader) == {"room_gap": 1}


async def test_an_event_appended_after_room_closed_reaches_nobody(tmp_path: Path) -> None:
    """room_closed is a room's last event (event.proto). Another writer that had not yet read
    it (a node's viewer count or audience list already in flight, on a shared log) can append
    after it; such a record is in the log, but no subscriber is sent it. White-box: both are
    appended at once, so that the node reads them in one batch, before it removes anyone."""
    room_id = new_id("closing")
    async with in_process_node(f"embedded:{tmp_path / 'data'}") as (node, _):
        target = f"127.0.0.1:{node.port}"
        admin = Admin(target, token("ops", "service"))
        try:
            await admin.create_room(room_id)
            async with closing([]) as streams:
                streams.append(viewer := await connect(target, token("alice"), room_id))
                sent = await send_sequentially(viewer, room_id, ["a0"])
                closed = ev.Payload(room_closed=ev.RoomClosed(reason="show over"))
                late = ev.Payload(comment=ev.Comment(text="late"))
                entries = [Entry(closed, policy.CRITICAL, "close"), Entry(late, policy.NORMAL, "late")]
                await node.gateway.append(SYSTEM, room_id, entries, ["", ""], [("", "")] * 2)
                await viewer.wait_events(room_id, 1, kind="room_closed")
                await asyncio.sleep(0.3)
                kinds = [e.payload.WhichOneof("kind") for e in viewer.events(room_id)]
                assert kinds[-1] == "room_closed", kinds
                assert comments(viewer.events(room_id)) == sent
                # The log holds it: appended, not lost; only not sent.
                assert [e.payload.comment.text for e in await admin.all_events(room_id, "comment")] == ["a0", "late"]
        finally:
            await admin.close()


async def test_embedded_joins_and_resumes_racing_a_flood_get_the_exact_history(tmp_path: Path) -> None:
    """Subscribers join (with history) and resume (from an early cursor, several replay pages)
    while six streams append as fast as they can: each gets the history's exact sequence from
    its first event on, across the hand-over from replay to live."""
    server = ServerProcess(tmp_path / "data", env=FAST_SENDS)
    server.start()
    room_id = new_id("flood")
    admin = Admin(server.target, server.token("ops", role="service"))
    try:
        await admin.create_room(room_id)
        senders: list[RawStream] = []
        joiners: list[RawStream] = []
        async with closing(senders), closing(joiners):
            for i in range(6):
                senders.append(await connect(server.target, server.token(f"s{i}"), room_id))
            first = await send_sequentially(senders[0], room_id, [f"first-{n}" for n in range(5)])
            stop = asyncio.Event()

            async def flood(index: int, stream: RawStream) -> None:
                acks = Acks(stream)
                for n in itertools.count():
                    if stop.is_set():
                        return
                    await acks.send_comments(room_id, [f"{index}:{n}:{k}" for k in range(20)], 20)

            flooding = [asyncio.create_task(flood(i, s)) for i, s in enumerate(senders)]
            try:
                for round_ in range(6):
                    await asyncio.sleep(0.3)
                    fresh = RawStream(server.target)
                    joiners.append(fresh)
                    await fresh.hello(server.token(f"fresh-{round_}", "moderator"))
                    assert (await fresh.join(room_id, history_limit=200)).status.code == OK
                    resumed = RawStream(server.target)
                    joiners.append(resumed)
                    await resumed.hello(server.token(f"resumed-{round_}", "moderator"))
                    assert (await resumed.join(room_id, resume_cursor=first[0])).status.code == OK
                await asyncio.sleep(0.5)
            finally:
                stop.set()
                await asyncio.gather(*flooding)
            history = comments(await admin.all_events(room_id))
            assert len(history) > 2000, "the flood outran several replay pages"
            for index, stream in enumerate(joiners):
                start = comments(stream.events(room_id))[0]
                expected = history[history.index(start) :]
                got = await wait_comments(stream, room_id, len(expected), timeout=20)
                if index % 2:
                    assert start == first[1], "a resume starts right after its cursor"
                assert resumes(stream, room_id) == []
                assert compare(got, expected) == Verdict(0, 0, 0), f"joiner {index}"
                assert got == expected
    finally:
        await admin.close()
        server.stop()


# ================================================================== the check itself


@dataclass(frozen=True)
class FakeRecord:
    offset: int
    key: bytes | None = b"room"
    value: bytes | None = b""
    timestamp: int = 0
    headers: Sequence[tuple[str, bytes]] = ()


def answer(offsets: Sequence[int], next_offset: int | None, control: tuple[tuple[int, int], ...] = ()) -> PartitionData:
    return PartitionData([FakeRecord(o) for o in offsets], next_offset, 100, 0, None, control)


def hole_of(position: int, data: PartitionData) -> tuple[int, int, list[int]] | None:
    hole: Hole | None = find_hole(position, data)
    return None if hole is None else (hole.start, hole.end, [r.offset for r in hole.kept])


def test_find_hole_accepts_contiguous_answers_and_control_batches() -> None:
    assert hole_of(10, answer([10, 11, 12], 13)) is None
    assert hole_of(10, answer([], None)) is None
    assert hole_of(10, answer([], 10)) is None
    # A transaction marker takes an offset: 12 is a control batch, not a hole.
    assert hole_of(10, answer([10, 11, 13], 14, control=((12, 13),))) is None
    assert hole_of(10, answer([11, 12], 13, control=((10, 11),))) is None


def test_find_hole_finds_the_first_missing_offset() -> None:
    assert hole_of(212, answer([212, 213, 246, 291, 292], 293)) == (214, 246, [212, 213])
    assert hole_of(10, answer([12, 13], 14)) == (10, 12, [])
    assert hole_of(10, answer([10, 11], 15)) == (12, 15, [10, 11]), "records missing at the end"
    assert hole_of(10, answer([], 12)) == (10, 12, []), "an answer that moves on without records"
    assert hole_of(10, answer([10, 12, 11], 13)) == (11, 12, [10]), "out of order"
    # Repeated records are left out; nothing is missing, so start == end.
    assert hole_of(10, answer([10, 11, 11, 12], 13)) == (13, 13, [10, 11, 12])


async def test_a_history_read_never_reads_past_offsets_an_answer_lacks(
    broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replay side of the hand-over: a read asks again for what an answer skipped."""
    backend = open_kafka(broker.url(new_id("rooms")))
    assert isinstance(backend.log, KafkaLog)
    log = backend.log
    await log.start()
    try:
        room_id = new_id("read")
        appended = await log.append(room_id, [LogEntry(f"e{n}".encode(), 2) for n in range(10)])
        real = kafka_wire.fetch  # what kafka_session calls for every read
        skipped: list[int] = []

        async def lossy(*args: Any, **kwargs: Any) -> dict[TopicPartition, PartitionData]:
            answer: dict[TopicPartition, PartitionData] = await real(*args, **kwargs)
            for tp, data in answer.items():
                # Two answers (the read's catch-up of its index may take the first) lose three records.
                if len(skipped) < 6 and tp.topic == log.options.topic and len(data.records) >= 6:
                    skipped.extend(r.offset for r in data.records[2:5])
                    answer[tp] = replace(data, records=data.records[:2] + data.records[5:])
            return answer

        monkeypatch.setattr(kafka_session, "fetch", lossy)
        read = await log.read(room_id, -1, 100)
        assert len(skipped) == 6, "two answers lost three records each"
        assert [r.position for r in read] == [a.record.position for a in appended]
    finally:
        await log.close()
