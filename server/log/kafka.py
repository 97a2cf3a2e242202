"""The Kafka room log: any number of gateway nodes sharing one ordered log per room.

`open_kafka("kafka://HOST:PORT[,HOST:PORT...]/TOPIC")` gives a Backend whose log
and room directory live in Kafka (see docs/kafka.md for the operator's view).

Shape:
- One topic, key = room id: a room lives in one partition, its order is the
  partition's order, its positions are that partition's offsets. Epoch = the
  topic id, which changes when the topic is deleted and recreated.
- Appends go through one producer (acks=all); the entries of a call are sent
  together and their futures gathered.
- Each node tails only the partitions of the rooms it watches
  (kafka_tail.Tailer) and reads history with short seek-and-scan fetches.
- Dedupe across nodes: a per-partition index (kafka_partition.PartitionIndex)
  of the dedupe keys of the last window, built from the partition itself, so
  every node reaches the same verdict. Before an append the index catches up
  to the partition's end; after it, up to the appended offsets, and a copy
  that turns out to be second answers the first one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError
from aiokafka.structs import TopicPartition

from barrage.server.log.base import (
    AppendResult,
    Backend,
    GapListener,
    LogEntry,
    LogRecord,
    LogUnavailableError,
    PositionCheck,
    RecordListener,
    RoomLog,
)
from barrage.server.log.kafka_partition import PartitionIndex, encode_headers, to_log_record
from barrage.server.log.kafka_rooms import KafkaRoomDirectory
from barrage.server.log.kafka_session import (
    DEFAULT_TOPIC,
    KafkaConfigError,
    KafkaOptions,
    KafkaSession,
    KafkaStartupError,
    OffsetOutOfRange,
    now_ms,
    parse_kafka_url,
    unavailable_on_error,
)
from barrage.server.log.kafka_tail import Tailer, find_hole
from barrage.server.log.kafka_wire import EARLIEST, LATEST, CExtensionMissingError, PartitionData, partition_for
from barrage.server.telemetry import hooks

__all__ = [
    "DEFAULT_TOPIC",
    "CExtensionMissingError",
    "KafkaConfigError",
    "KafkaLog",
    "KafkaOptions",
    "KafkaRoomDirectory",
    "KafkaStartupError",
    "open_kafka",
    "parse_kafka_url",
]

log = logging.getLogger(__name__)

_BACKWARD_FIRST_SPAN = 256
_BACKWARD_MAX_SPAN = 65_536
_MAX_ROOM_EPOCHS = 100_000
_CHECK_FETCH_BYTES = 1
"""A cursor check needs one record: the broker still returns the whole first batch."""


def open_kafka(url: str, **options: Any) -> Backend:
    """A Kafka-backed Backend (not started: `await backend.log.start()` starts both parts).

    url: `kafka://HOST:PORT[,HOST:PORT...][/TOPIC][?option=value...]`, topic default
    "barrage.rooms"; options: any KafkaOptions field (they override the URL's).
    """
    log_ = KafkaLog(parse_kafka_url(url, **options))
    return Backend(log=log_, rooms=log_.rooms)


@dataclass(slots=True)
class _Plan:
    """How one append call treats each of its entries (by index)."""

    to_send: list[int] = field(default_factory=list)
    earlier: dict[int, int] = field(default_factory=dict)
    """-> offset of a first copy already in the log."""
    same_call: dict[int, int] = field(default_factory=dict)
    """-> the earlier entry of this call with the same key."""
    waiting: dict[int, asyncio.Future[LogRecord]] = field(default_factory=dict)
    """-> this node's in-flight first copy (another call)."""
    mine: dict[str, asyncio.Future[LogRecord]] = field(default_factory=dict)
    """Keys this call appends first, with the future other calls wait on."""
    first_in_call: dict[str, int] = field(default_factory=dict)


class KafkaLog(RoomLog):
    """RoomLog on one Kafka topic; see the module docstring and docs/kafka.md."""

    def __init__(self, options: KafkaOptions) -> None:
        self.options = options
        self._session = KafkaSession(options)
        self.rooms = KafkaRoomDirectory(self._session, self._log_end_for)
        self._started = False
        self._closed = False
        self._epoch = ""
        self._partitions = 0
        self._tailer: Tailer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: RecordListener | None = None
        self._gap_listener: GapListener | None = None
        self._room_prev: dict[bytes, int] = {}
        """Watched rooms (by key) -> offset of the last record of the room the listener received:
        the next one's prev_position (the tail checks its partition's answers for continuity)."""
        self._indexes: dict[int, PartitionIndex] = {}
        self._index_builds: dict[int, asyncio.Task[PartitionIndex]] = {}
        self._last_used: dict[int, float] = {}
        self._watch_from: dict[bytes, int] = {}
        """Watched rooms (by key) -> first offset to deliver."""
        self._watched_in: dict[int, set[bytes]] = {}
        self._in_flight: dict[tuple[bytes, str], asyncio.Future[LogRecord]] = {}
        """Dedupe keys this node is appending right now: a concurrent retry waits for the first."""
        self._send_lock = asyncio.Lock()
        self._window_ms = int(options.dedupe_window_s * 1000)
        self._skew_ms = int(options.clock_skew_s * 1000)
        self._room_epochs: dict[str, str] = {}
        """epoch() per room, computed once (a partition hash per call would cost the hot path)."""

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        session = self._session
        try:
            await session.start()
            assert session.log_topic is not None
            self._epoch = session.log_topic.topic_id
            self._partitions = session.log_topic.partitions
            directory = await self.rooms.start()
        except BaseException:
            await self._shutdown()
            raise
        self._tailer = Tailer(
            session.tail_client,
            self._on_tail,
            max_wait_ms=self.options.fetch_max_wait_ms,
            max_bytes=self.options.fetch_max_bytes,
            contiguous_topics=frozenset({self.options.topic}),  # the directory topic is compacted
            on_hole=self._on_hole,
        )
        self._tailer.track(directory.tp, directory.end)
        self._tasks = [
            asyncio.create_task(self._tailer.run(), name="kafka-log-tail"),
            asyncio.create_task(self._maintain(), name="kafka-log-maintenance"),
        ]
        self._started = True
        log.info(
            "Kafka log on %s topic %s: %d partitions, epoch %s",
            self.options.bootstrap_servers,
            self.options.topic,
            self._partitions,
            self._epoch,
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._shutdown()

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        for build in self._index_builds.values():
            build.cancel()
        await asyncio.gather(*self._tasks, *self._index_builds.values(), return_exceptions=True)
        for index in self._indexes.values():
            index.cancel()
        self.rooms.stop()
        for future in self._in_flight.values():
            if not future.done():
                future.set_exception(LogUnavailableError("the Kafka log closed"))
                future.exception()
        await self._session.close()  # the producer flushes what is pending

    def _check_open(self) -> None:
        if not self._started or self._closed:
            raise LogUnavailableError("the Kafka log is not running" if not self._closed else "the Kafka log is closed")

    # -- positions ----------------------------------------------------------------------------

    def epoch(self, room_id: str) -> str:
        # A room's positions are its partition's offsets, and rooms of two partitions share
        # offset values: the partition is part of the numbering, so a cursor from a room of
        # another partition is never read as an offset of this one. One partition: the
        # topic id alone, as before (its numbering is unambiguous; older cursors stay valid).
        if self._partitions <= 1:
            return self._epoch
        epoch = self._room_epochs.get(room_id)
        if epoch is None:
            if len(self._room_epochs) >= _MAX_ROOM_EPOCHS:
                self._room_epochs.clear()
            epoch = self._room_epochs[room_id] = f"{self._epoch}:{self.partition_of(room_id)}"
        return epoch

    @property
    def partition_count(self) -> int:
        """Partitions of the log topic (the topic's, which may differ from the option)."""
        return self._partitions

    def partition_of(self, room_id: str) -> int:
        """The partition that holds a room's records (for operators: kafka-console-consumer --partition)."""
        return partition_for(room_id.encode(), self._partitions)

    def _tp(self, room_key: bytes) -> TopicPartition:
        return TopicPartition(self.options.topic, partition_for(room_key, self._partitions))

    async def _log_end_for(self, room_id: str) -> tuple[str, int]:
        """Epoch and end of the room's partition (a lower bound of it on the test broker)."""
        tp = self._tp(room_id.encode())
        end = await self._session.offsets(tp.topic, {tp.partition: LATEST}, f"log end for room {room_id!r}")
        return self._epoch, end[tp.partition][0]

    async def _index(self, partition: int) -> PartitionIndex:
        """The partition's dedupe index, built on first use (concurrent callers share the build)."""
        self._last_used[partition] = time.monotonic()
        index = self._indexes.get(partition)
        if index is not None:
            return index
        build = self._index_builds.get(partition)
        if build is None:
            build = asyncio.create_task(self._build_index(partition))
            self._index_builds[partition] = build
            build.add_done_callback(lambda task: self._index_built(partition, task))
        return await asyncio.shield(build)

    def _index_built(self, partition: int, task: asyncio.Task[PartitionIndex]) -> None:
        if self._index_builds.get(partition) is task:
            del self._index_builds[partition]
        if not task.cancelled():
            task.exception()  # its callers may all have timed out: no "never retrieved" warning

    async def _build_index(self, partition: int) -> PartitionIndex:
        topic = self.options.topic
        since = now_ms() - self._window_ms - self._skew_ms
        offset, timestamp = (await self._session.offsets(topic, {partition: since}, "dedupe index start"))[partition]
        if offset < 0 or timestamp < 0:  # no record that recent (the test broker says so with timestamp -1)
            offset = (await self._session.offsets(topic, {partition: LATEST}, "dedupe index start"))[partition][0]
        index = PartitionIndex(self._session, TopicPartition(topic, partition), offset, self._window_ms, self._skew_ms)
        await index.sync(None)
        self._indexes[partition] = index
        return index

    # -- append -------------------------------------------------------------------------------

    async def append(self, room_id: str, entries: Sequence[LogEntry]) -> list[AppendResult]:
        self._check_open()
        if not entries:
            return []
        timeout_s = self.options.append_timeout_ms / 1000
        try:
            async with asyncio.timeout(timeout_s):
                return await self._append(room_id, entries)
        except TimeoutError as exc:
            raise LogUnavailableError(f"append to room {room_id!r} not confirmed within {timeout_s:g} s") from exc

    async def _append(self, room_id: str, entries: Sequence[LogEntry]) -> list[AppendResult]:
        room = room_id.encode()
        tp = self._tp(room)
        index = await self._index(tp.partition)
        now = now_ms()
        if any(entry.dedupe_key for entry in entries):
            await index.sync(None)  # see copies already in the log, wherever they were appended from
        plan = self._plan(room, entries, index, now)
        try:
            records = await self._send(room_id, room, tp, [entries[i] for i in plan.to_send], now)
            sent = dict(zip(plan.to_send, records, strict=True))
            end = max(r.position for r in records) + 1 if records else 0
            # In a room this node watches, acknowledge once the node's own listener has the records,
            # as the embedded log does: what a node acknowledged, its hub has. (The tail feeds the
            # dedupe index too, so this also covers the check below.)
            delivered = bool(records) and room in self._watch_from and await self._tailer_reached(tp, end)
            if plan.mine:
                # Copies of these keys may have landed just before ours (a retry racing its original,
                # or a produce that timed out during an outage): read up to ours and let the first win.
                if not delivered:
                    await index.sync(end)
                for i, record in list(sent.items()):
                    if record.dedupe_key in plan.mine and index.is_shadow(record.position):
                        first = index.first_copy(room, record.dedupe_key)
                        if first is None:
                            raise LogUnavailableError(f"first copy of {record.dedupe_key!r} fell out of the index")
                        plan.earlier[i] = first
                        del sent[i]
            results: dict[int, AppendResult] = {i: AppendResult(record, False) for i, record in sent.items()}
            for i, offset in plan.earlier.items():
                results[i] = AppendResult(await self._record_at(room_id, tp, offset), duplicate=True)
            for key, future in plan.mine.items():
                future.set_result(results[plan.first_in_call[key]].record)
            for i, waiting in plan.waiting.items():
                results[i] = AppendResult(await waiting, duplicate=True)
            for i, j in plan.same_call.items():
                results[i] = AppendResult(results[j].record, duplicate=True)
        except BaseException as exc:
            failure = exc if isinstance(exc, LogUnavailableError) else LogUnavailableError("the first copy failed")
            for future in plan.mine.values():
                if not future.done():
                    future.set_exception(failure)
                    future.exception()
            raise
        finally:
            for key, future in plan.mine.items():
                if self._in_flight.get((room, key)) is future:
                    del self._in_flight[(room, key)]
        return [results[i] for i in range(len(entries))]

    async def _tailer_reached(self, tp: TopicPartition, offset: int) -> bool:
        return self._tailer is not None and await self._tailer.reached(tp, offset)

    def _plan(self, room: bytes, entries: Sequence[LogEntry], index: PartitionIndex, now: int) -> _Plan:
        """Decide, without waiting, which entries to send and which repeat a first copy."""
        plan = _Plan()
        for i, entry in enumerate(entries):
            key = entry.dedupe_key
            if not key:
                plan.to_send.append(i)
            elif key in plan.first_in_call:
                plan.same_call[i] = plan.first_in_call[key]
            elif (offset := index.first_copy(room, key, now)) is not None:
                plan.earlier[i] = offset
            elif (room, key) in self._in_flight:
                plan.waiting[i] = self._in_flight[(room, key)]
            else:
                plan.first_in_call[key] = i
                plan.to_send.append(i)
                plan.mine[key] = self._in_flight[(room, key)] = asyncio.get_running_loop().create_future()
        return plan

    async def _send(
        self, room_id: str, room: bytes, tp: TopicPartition, entries: Sequence[LogEntry], timestamp_ms: int
    ) -> list[LogRecord]:
        if not entries:
            return []
        producer = self._session.producer
        try:
            # The lock keeps one call's entries adjacent in the producer's batch for the partition.
            async with self._send_lock:
                futures = [
                    await producer.send(
                        tp.topic,
                        entry.payload,
                        key=room,
                        partition=tp.partition,
                        headers=encode_headers(entry),
                        timestamp_ms=timestamp_ms,
                    )
                    for entry in entries
                ]
            metas = await asyncio.gather(*futures)
        except (RecordTooLargeError, MessageSizeTooLargeError) as exc:
            raise ValueError(f"event too large for Kafka topic {tp.topic}: {exc}") from exc
        except (KafkaError, OSError) as exc:
            raise LogUnavailableError(f"append to room {room_id!r}: {type(exc).__name__}: {exc}") from exc
        return [
            LogRecord(room_id, int(meta.offset), entry.payload, entry.priority, entry.dedupe_key, entry.traceparent)
            for entry, meta in zip(entries, metas, strict=True)
        ]

    async def _record_at(self, room_id: str, tp: TopicPartition, offset: int) -> LogRecord:
        data = await self._session.fetch_one(tp, offset, f"reading the first copy in room {room_id!r}")
        for record in data.records:
            if record.offset == offset:
                return to_log_record(room_id, record)
        raise LogUnavailableError(f"the first copy at offset {offset} of room {room_id!r} is no longer retained")

    # -- reads --------------------------------------------------------------------------------

    async def read(self, room_id: str, after: int, limit: int) -> list[LogRecord]:
        self._check_open()
        if limit <= 0:
            return []
        room = room_id.encode()
        tp = self._tp(room)
        index = await self._index(tp.partition)
        await index.sync(None)
        out: list[LogRecord] = []
        start = max(after + 1, self.rooms.log_start(room_id, self._epoch))
        await self._scan(room_id, room, tp, index, start, index.end, out, limit)
        return out

    async def read_backward(self, room_id: str, before: int | None, limit: int) -> list[LogRecord]:
        self._check_open()
        if limit <= 0:
            return []
        room = room_id.encode()
        tp = self._tp(room)
        index = await self._index(tp.partition)
        await index.sync(None)
        high = index.end if before is None else min(before, index.end)
        # What the index saw of the room lets the scan skip offsets where the room has nothing.
        if high > index.rooms_from:
            last = index.last_offset(room)
            high = index.rooms_from if last is None else min(high, max(last + 1, index.rooms_from))
        floor = self.rooms.log_start(room_id, self._epoch)  # nothing of the room lies below
        log_start = max(floor, await self._log_start(tp))
        out: list[LogRecord] = []
        span = max(_BACKWARD_FIRST_SPAN, 4 * limit)
        while len(out) < limit and high > log_start:
            low = max(log_start, high - span)
            chunk: list[LogRecord] = []
            try:
                await self._scan(room_id, room, tp, index, low, high, chunk, None)
            except OffsetOutOfRange:
                log_start = max(floor, await self._log_start(tp))  # retention moved the start under us
                continue
            out.extend(reversed(chunk))
            high = low
            span = min(span * 2, _BACKWARD_MAX_SPAN)
        return out[:limit]

    async def _scan(
        self,
        room_id: str,
        room: bytes,
        tp: TopicPartition,
        index: PartitionIndex,
        position: int,
        stop: int,
        out: list[LogRecord],
        limit: int | None,
    ) -> None:
        """Append the room's records in [position, stop) to `out`, ascending, until `limit`."""
        what = f"reading room {room_id!r}"
        async with unavailable_on_error(what, self._session.read_timeout_s):
            while position < stop and (limit is None or len(out) < limit):
                try:
                    data = await self._session.fetch_one(tp, position, what)
                except OffsetOutOfRange:
                    start = await self._log_start(tp)
                    if position >= start or limit is None:
                        raise
                    position = start  # older records were removed by retention
                    continue
                # As the tail does (kafka_tail.find_hole): never read past offsets an answer lacks;
                # ask for them again until they come or the read times out (LogUnavailableError).
                hole = find_hole(position, data)
                records = data.records if hole is None else hole.kept
                for record in records:
                    if record.offset >= stop or (limit is not None and len(out) >= limit):
                        return
                    if record.key == room and not index.is_shadow(record.offset):
                        out.append(to_log_record(room_id, record))
                if hole is not None and hole.end > hole.start:
                    if hooks.ON:
                        hooks.continuity("discontinuity")
                    log.warning(
                        "%s: offsets %d..%d missing from an answer; asking again", what, hole.start, hole.end - 1
                    )
                    position = hole.start
                    await asyncio.sleep(0.01)
                    continue
                if data.next_offset is None or data.next_offset <= position:
                    return  # nothing more is readable
                position = data.next_offset

    async def _log_start(self, tp: TopicPartition) -> int:
        answer = await self._session.offsets(tp.topic, {tp.partition: EARLIEST}, "log start")
        return answer[tp.partition][0]

    async def head(self, room_id: str) -> int | None:
        last = await self.read_backward(room_id, None, 1)
        return last[0].position if last else None

    async def retained_from(self, room_id: str) -> int:
        self._check_open()
        return await self._log_start(self._tp(room_id.encode()))

    async def check_position(self, room_id: str, position: int) -> PositionCheck:
        # One fetch at the offset (no scan), none when the index already knows the answer.
        self._check_open()
        room = room_id.encode()
        tp = self._tp(room)
        if position < self.rooms.log_start(room_id, self._epoch):
            return PositionCheck.NOT_A_RECORD  # before the room was created: another room's
        index = self._indexes.get(tp.partition)
        if index is not None:
            if index.is_shadow(position):
                return PositionCheck.NOT_A_RECORD  # a retry's second copy: never a cursor
            if index.last_offset(room) == position:
                return PositionCheck.RECORD  # the room's newest record: the usual resume
        what = f"checking a cursor of room {room_id!r}"
        try:
            data = await self._session.fetch_one(tp, position, what, max_bytes=_CHECK_FETCH_BYTES)
        except OffsetOutOfRange:
            if position < await self._log_start(tp):
                return PositionCheck.NOT_RETAINED
            return PositionCheck.NOT_A_RECORD  # beyond the partition's end
        for record in data.records:
            if record.offset == position:
                return PositionCheck.RECORD if record.key == room else PositionCheck.NOT_A_RECORD
        return PositionCheck.NOT_A_RECORD

    # -- live records -------------------------------------------------------------------------

    def set_listener(self, listener: RecordListener) -> None:
        self._listener = listener

    def set_gap_listener(self, listener: GapListener) -> None:
        self._gap_listener = listener

    def consumer_lag(self) -> int | None:
        return self._tailer.lag(self.options.topic) if self._tailer is not None else None

    @property
    def tailer(self) -> Tailer | None:
        """The node's tail (None until started): its continuity counts, and its fetch seam for tests."""
        return self._tailer

    async def watch(self, room_id: str) -> None:
        self._check_open()
        assert self._tailer is not None
        room = room_id.encode()
        if room in self._watch_from:
            return
        tp = self._tp(room)
        index = await self._index(tp.partition)
        position = self._tailer.position(tp)
        if position is None:
            # Start the tail where the index is, after catching it up: the records in between
            # are older than this call and would only be delivered for nothing.
            await index.sync(None)
            position = self._tailer.position(tp)
            if position is None:
                position = index.end
                self._tailer.track(tp, position)
        # Everything at or after the tail's position reaches the listener; any record appended
        # after this returns has an offset at or beyond the current end, hence beyond the position.
        self._watch_from[room] = position
        self._watched_in.setdefault(tp.partition, set()).add(room)

    async def unwatch(self, room_id: str) -> None:
        room = room_id.encode()
        if self._watch_from.pop(room, None) is None:
            return
        self._room_prev.pop(room, None)
        tp = self._tp(room)
        rooms = self._watched_in.get(tp.partition)
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._watched_in[tp.partition]
                if self._tailer is not None:
                    self._tailer.untrack(tp)
                self._last_used[tp.partition] = time.monotonic()

    def _on_tail(self, answer: Mapping[TopicPartition, PartitionData]) -> None:
        """Fold tailed records into the indexes and hand the watched rooms' records to the listener.

        The tail checked each answer's continuity (kafka_tail), so the last record of a room
        handed over is the predecessor of the room's next one: each record carries it.
        """
        out: list[LogRecord] = []
        for tp, data in answer.items():
            if tp.topic != self.options.topic:
                with contextlib.suppress(RuntimeError):
                    self.rooms.state.feed(data.records, data.next_offset)
                continue
            index = self._indexes.get(tp.partition)
            if index is None:
                continue  # the epoch changed under this fetch
            index.feed(data.records, data.next_offset)
            watch_from = self._watch_from
            room_prev = self._room_prev
            for record in data.records:
                key = record.key
                if key is None:
                    continue
                start = watch_from.get(key)
                if start is None or record.offset < start or index.is_shadow(record.offset):
                    continue
                out.append(to_log_record(key.decode(), record, room_prev.get(key)))
                room_prev[key] = record.offset
        if out and self._listener is not None:
            self._listener(out)

    def _on_hole(self, tp: TopicPartition, start: int, end: int) -> None:
        """The tail gave up on offsets [start, end) of a partition: any watched room there may
        have lost records, so each is reported to the gap listener."""
        if tp.topic != self.options.topic:
            return
        rooms = sorted(self._watched_in.get(tp.partition, ()))
        for room in rooms:
            self._room_prev.pop(room, None)  # its predecessor is unknown now
        if rooms and self._gap_listener is not None:
            self._gap_listener([room.decode() for room in rooms], end - 1)

    # -- upkeep -------------------------------------------------------------------------------

    async def _maintain(self) -> None:
        """Every few seconds: notice a recreated topic, and drop dedupe indexes nobody uses."""
        interval = self.options.maintenance_interval_s
        keep_s = (self._window_ms + self._skew_ms) / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                await self._check_epoch()
            except LogUnavailableError as exc:
                log.debug("epoch check skipped: %s", exc)
            except Exception:  # keep the upkeep running whatever one check hit
                log.exception("epoch check failed")
            now = now_ms()
            idle_before = time.monotonic() - keep_s
            for partition, index in list(self._indexes.items()):
                if partition not in self._watched_in and self._last_used.get(partition, 0.0) < idle_before:
                    index.cancel()
                    del self._indexes[partition]
                else:
                    index.evict(now)

    async def _check_epoch(self) -> None:
        info = await self._session.topic_info(self.options.topic)
        if info is None or info.topic_id == self._epoch:
            if info is None:
                log.error("Kafka topic %s no longer exists: appends fail until it is recreated", self.options.topic)
            return
        # The topic was deleted and recreated: offsets restarted, every cursor of the old epoch is void.
        log.error(
            "Kafka topic %s was recreated (topic id %s -> %s): switching epoch",
            self.options.topic,
            self._epoch,
            info.topic_id,
        )
        self._epoch = info.topic_id
        self._partitions = info.partitions
        self._room_epochs.clear()
        for build in self._index_builds.values():
            build.cancel()  # it may have read the old topic
        for index in self._indexes.values():
            index.cancel()
        self._indexes.clear()
        assert self._tailer is not None
        for tp in self._tailer.tracked():
            if tp.topic == self.options.topic:
                self._tailer.untrack(tp)
        watched = list(self._watch_from)
        self._watch_from.clear()
        self._room_prev.clear()
        self._watched_in.clear()
        for room in watched:
            tp = self._tp(room)
            self._watch_from[room] = 0
            self._watched_in.setdefault(tp.partition, set()).add(room)
        for partition in self._watched_in:
            self._indexes[partition] = PartitionIndex(
                self._session, TopicPartition(self.options.topic, partition), 0, self._window_ms, self._skew_ms
            )
            self._tailer.track(TopicPartition(self.options.topic, partition), 0)
