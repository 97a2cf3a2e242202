"""Insights on the Kafka log: a consumer group that shares the log's partitions among nodes.

Every node runs one AIOKafkaConsumer in the group "<topic>.insights". Kafka assigns each
partition to one node; that node folds every room of the partition into insights.

Restart and rebalance: on assignment a partition is read again *from its start* (the
oldest retained record) and its rooms are rebuilt; nothing is resumed from committed
offsets. The figures are a pure function of the partition's records, so a rebuilt room
is exactly the room before the restart: nothing is counted twice or missed, without a
checkpoint store. Offsets are still committed (every few seconds) so that standard Kafka
tools show the group's lag; they are never used to resume. Cost: a rebalance re-reads
the reassigned partitions (≈500k records/s on one core here; see docs/insights.md).

Shadows: the log's dedupe rule (server/log/kafka_partition.py) hides a record whose
(room, dedupe key) appeared earlier in the partition within the dedupe window by record
time; reads never return it. The consumer applies the same rule to the records it
reads, so it folds exactly what `RoomLog.read` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from barrage.server.log.kafka_partition import DEDUPE
from barrage.server.log.kafka_session import KafkaOptions

log = logging.getLogger(__name__)

COMMIT_INTERVAL_S = 5.0

RecordsSink = Callable[[int, Sequence[tuple[str, int, bytes]]], None]
"""(partition, [(room id, offset, payload)]) in offset order."""


class _Shadows:
    """The dedupe rule of the log, applied while reading one partition from its start."""

    def __init__(self, window_ms: int, skew_ms: int) -> None:
        self._window_ms = window_ms
        self._keep_ms = window_ms + skew_ms
        self._first: dict[tuple[bytes, str], int] = {}
        self._expiry: deque[tuple[int, tuple[bytes, str]]] = deque()

    def is_shadow(self, room: bytes, key: str, timestamp: int) -> bool:
        while self._expiry and self._expiry[0][0] < timestamp - self._keep_ms:
            _ts, ident = self._expiry.popleft()
            if self._first.get(ident) == _ts:
                del self._first[ident]
        ident = (room, key)
        first = self._first.get(ident)
        if first is not None and timestamp - first <= self._window_ms:
            return True
        self._first[ident] = timestamp
        self._expiry.append((timestamp, ident))
        return False


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: KafkaInsightsConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self._owner.revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._owner.assigned({tp.partition for tp in assigned})


class KafkaInsightsConsumer:
    """Feeds the rooms of this node's share of the log's partitions to `sink`."""

    def __init__(
        self,
        options: KafkaOptions,
        sink: RecordsSink,
        on_assigned: Callable[[set[int]], None],
        on_revoked: Callable[[set[int]], None],
    ) -> None:
        self.options = options
        self.group_id = f"{options.topic}.insights"
        self._sink = sink
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._shadows: dict[int, _Shadows] = {}
        self._catch_up: dict[int, int] = {}
        """Partition -> end offset at assignment; removed once the fold reached it."""
        self.assignment: set[int] = set()

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.options.bootstrap_servers,
            group_id=self.group_id,
            client_id=f"barrage-insights-{self.options.topic}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=max(self.options.fetch_max_wait_ms, 50),
            max_partition_fetch_bytes=self.options.fetch_max_bytes,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
        )
        await self._consumer.start()
        self._consumer.subscribe([self.options.topic], listener=_Listener(self))
        self._task = asyncio.create_task(self._run(), name="insights-kafka-consumer")
        log.info("insights: consumer group %s on topic %s", self.group_id, self.options.topic)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._commit()
            await self._consumer.stop()

    def caught_up(self, partition: int) -> bool:
        """The partition is ours and folded at least up to its end at assignment."""
        return partition in self.assignment and partition not in self._catch_up

    def revoked(self, partitions: set[int]) -> None:
        self.assignment -= partitions
        for partition in partitions:
            self._shadows.pop(partition, None)
            self._catch_up.pop(partition, None)
        self._on_revoked(partitions)

    async def assigned(self, partitions: set[int]) -> None:
        topic = self.options.topic
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        window_ms = int(self.options.dedupe_window_s * 1000)
        skew_ms = int(self.options.clock_skew_s * 1000)
        if tps:
            await self._consumer.seek_to_beginning(*tps)
            ends = await self._consumer.end_offsets(tps)
            starts = await self._consumer.beginning_offsets(tps)
        for tp in tps:
            self._shadows[tp.partition] = _Shadows(window_ms, skew_ms)
            if ends[tp] > starts[tp]:
                self._catch_up[tp.partition] = ends[tp]
        self.assignment |= partitions
        self._on_assigned(partitions)
        log.info("insights: partitions %s assigned: rebuilding their rooms from the start", sorted(partitions))

    async def _run(self) -> None:
        last_commit = time.monotonic()
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=5000)
            except KafkaError as exc:
                log.warning("insights consumer: %s; retrying", exc)
                await asyncio.sleep(1.0)
                continue
            for tp, records in batches.items():
                self._fold(tp.partition, records)
            for partition, end in list(self._catch_up.items()):
                tp = TopicPartition(self.options.topic, partition)
                with contextlib.suppress(KafkaError, AssertionError, ValueError):
                    if await self._consumer.position(tp) >= end and self._catch_up.pop(partition, None) is not None:
                        log.info("insights: partition %d rebuilt up to offset %d", partition, end)
            if time.monotonic() - last_commit >= COMMIT_INTERVAL_S:
                last_commit = time.monotonic()
                try:
                    await self._commit()
                except KafkaError as exc:  # a rebalance in progress: the next round commits
                    log.debug("insights consumer commit skipped: %s", exc)

    def _fold(self, partition: int, records: Sequence[Any]) -> None:
        shadows = self._shadows.get(partition)
        if shadows is None:
            return  # revoked meanwhile
        out: list[tuple[str, int, bytes]] = []
        for record in records:
            room = record.key
            if room is None:
                continue
            dedupe = next((v.decode() for k, v in record.headers or () if k == DEDUPE), "")
            if dedupe and shadows.is_shadow(room, dedupe, record.timestamp):
                continue
            out.append((room.decode(), record.offset, record.value or b""))
        if out:
            self._sink(partition, out)

    async def _commit(self) -> None:
        if self._consumer is not None and self.assignment:
            await self._consumer.commit()
