"""The node's tail: long-poll fetches of the partitions its subscribers need.

One fetch in flight per broker (a broker answers one connection's requests in
order, so more would only queue), each carrying every tracked partition that
broker leads. Positions are the tail's own: a partition's records reach the
handler once, in offset order, and the position moves only after the handler
ran, so what was handed over is exactly what was processed.

Continuity. The tail does not trust a fetch answer: the log topic's offsets are
contiguous within a partition (no compaction; transaction markers are control
batches the answer accounts for), so every answer is checked against the
position it was asked for: its first record must be that position and each
next record the one after. At the first discontinuity the answer is cut: what
precedes it is handed over, the position stops at the first missing offset and
the next fetch asks for it again (a refetch). Only when `max_refetches` answers
in a row skip the same offset does the tail give up on that range: it tells the
hole handler (whose rooms' subscribers are then made to resume from the log) and
only then goes on past it. A range removed by retention before the tail read it
is such a hole too. Every discontinuity, refetch and hole is counted
(`barrage.live.continuity`, docs/observability.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiokafka.errors import KafkaError, OffsetOutOfRangeError
from aiokafka.structs import TopicPartition

from barrage.server.log.kafka_wire import (
    EARLIEST,
    LeaderUnknownError,
    PartitionData,
    RawRecord,
    fetch_from_node,
    leader,
    list_offsets,
)
from barrage.server.telemetry import hooks

log = logging.getLogger(__name__)

TailHandler = Callable[[Mapping[TopicPartition, PartitionData]], None]
"""Receives one fetch answer's partitions (never concurrently, on the event loop)."""
HoleHandler = Callable[[TopicPartition, int, int], None]
"""Told (partition, first, end) when the offsets [first, end) will never reach the TailHandler."""
FetchFromNode = Callable[..., Awaitable[dict[TopicPartition, PartitionData]]]

MAX_REFETCHES = 4
"""Answers in a row that may skip the same offset before the tail gives up on it."""


@dataclass(frozen=True, slots=True)
class Hole:
    """The first discontinuity of a fetch answer."""

    start: int
    """First offset missing from the answer."""
    end: int
    """Offset at which the answer goes on (> start; == start: nothing missing, repeats left out)."""
    kept: list[RawRecord]
    """The answer's records before the hole (contiguous from the requested position)."""


def _skip_control(offset: int, control: tuple[tuple[int, int], ...]) -> int:
    for first, end in control:
        if first <= offset < end:
            offset = end
    return offset


def find_hole(position: int, data: PartitionData) -> Hole | None:
    """The first offset at or after `position` the answer lacks, if any (see the module docstring).

    The common answer is checked in constant time: first record at the position, as many
    records as the offsets they span, and the next offset right after the last one. A
    record repeated or behind the offsets already seen is left out of `kept`; an answer
    whose only fault is such records gives a hole with start == end (nothing missing).
    """
    records = data.records
    next_offset = data.next_offset
    control = data.control
    if not control:
        if not records:
            if next_offset is None or next_offset <= position:
                return None
            return Hole(position, next_offset, [])
        first = records[0].offset
        last = records[-1].offset
        if first == position and last - first + 1 == len(records) and (next_offset is None or next_offset == last + 1):
            return None
    expected = position
    kept: list[RawRecord] | None = None
    for i, record in enumerate(records):
        expected = _skip_control(expected, control)
        offset = record.offset
        if offset < expected:
            if kept is None:
                kept = list(records[:i])
            continue
        if offset > expected:
            return Hole(expected, offset, kept if kept is not None else records[:i])
        if kept is not None:
            kept.append(record)
        expected = offset + 1
    expected = _skip_control(expected, control)
    if next_offset is not None and next_offset > expected:
        return Hole(expected, next_offset, kept if kept is not None else records)
    if kept is not None:
        return Hole(expected, expected, kept)
    return None


class Tailer:
    """Follows a changing set of partitions from positions it is given."""

    def __init__(
        self,
        client: object,
        handler: TailHandler,
        *,
        max_wait_ms: int,
        max_bytes: int,
        retry_backoff_s: float = 0.2,
        contiguous_topics: frozenset[str] = frozenset(),
        on_hole: HoleHandler | None = None,
        max_refetches: int = MAX_REFETCHES,
    ) -> None:
        self._client = client
        self._handler = handler
        self._contiguous = contiguous_topics
        """Topics whose offsets have no gaps (not compacted): their answers are checked."""
        self._on_hole = on_hole
        self._max_refetches = max_refetches
        self.fetch_from_node: FetchFromNode = fetch_from_node
        """The one call that asks a broker (kafka_wire.fetch_from_node): a seam a test may wrap
        to alter the real broker's answers (the continuity check runs on what it returns)."""
        self._refetching: dict[TopicPartition, tuple[int, int]] = {}
        """Partitions whose last answer had a hole: -> (its first missing offset, answers in a row)."""
        self.counts = {"discontinuity": 0, "refetch": 0, "hole": 0}
        """Answers found not contiguous with the position asked, refetches, holes given up on
        (since start; telemetry counts them too)."""
        self._max_wait_ms = max_wait_ms
        self._max_bytes = max_bytes
        self._backoff = retry_backoff_s
        self._positions: dict[TopicPartition, int] = {}
        self._high_watermarks: dict[TopicPartition, int] = {}
        self._waiters: dict[TopicPartition, list[tuple[int, asyncio.Future[bool]]]] = {}
        self._changed = asyncio.Event()
        self._last_warning = 0.0

    def track(self, tp: TopicPartition, position: int) -> None:
        """Follow `tp` from `position` (keeps the current position if already followed)."""
        if tp not in self._positions:
            self._positions[tp] = position
            self._changed.set()

    def untrack(self, tp: TopicPartition) -> None:
        self._positions.pop(tp, None)
        self._refetching.pop(tp, None)
        self._release(tp)

    async def reached(self, tp: TopicPartition, offset: int) -> bool:
        """Wait until the handler has received every record of `tp` below `offset`.

        False if `tp` is not followed, or stops being followed first.
        """
        position = self._positions.get(tp)
        if position is None:
            return False
        if position >= offset:
            return True
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(tp, []).append((offset, future))
        return await future

    def _release(self, tp: TopicPartition) -> None:
        waiters = self._waiters.pop(tp, None)
        if not waiters:
            return
        position = self._positions.get(tp)
        waiting = []
        for offset, future in waiters:
            if future.done():
                continue  # its caller gave up
            if position is None or position >= offset:
                future.set_result(position is not None)
            else:
                waiting.append((offset, future))
        if waiting:
            self._waiters[tp] = waiting

    def position(self, tp: TopicPartition) -> int | None:
        """Offset of the next record the handler will receive for `tp`."""
        return self._positions.get(tp)

    def tracked(self) -> list[TopicPartition]:
        return list(self._positions)

    def lag(self, topic: str) -> int:
        """Records of `topic`'s followed partitions below their last seen high watermark not yet handled."""
        high = self._high_watermarks
        followed = list(self._positions.items())
        return sum(max(high[tp] - position, 0) for tp, position in followed if tp.topic == topic and tp in high)

    async def run(self) -> None:
        """Fetch forever; cancel to stop. Broker trouble is logged and retried, never raised."""
        in_flight: dict[int, asyncio.Task[None]] = {}
        try:
            while True:
                self._changed.clear()
                by_node: dict[int, dict[TopicPartition, int]] = defaultdict(dict)
                for tp, position in self._positions.items():
                    try:
                        by_node[leader(self._client, tp)][tp] = position
                    except LeaderUnknownError:
                        continue  # metadata refresh was asked for; picked up next turn
                for node, positions in by_node.items():
                    if node not in in_flight:
                        in_flight[node] = asyncio.create_task(self._fetch(node, positions))
                waiter = asyncio.create_task(self._changed.wait())
                try:
                    done, _ = await asyncio.wait(
                        [waiter, *in_flight.values()],
                        timeout=None if in_flight else self._backoff,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    waiter.cancel()
                for node, task in list(in_flight.items()):
                    if task in done:
                        del in_flight[node]
                        task.result()  # _fetch never raises but cancellation
        finally:
            for task in in_flight.values():
                task.cancel()
            await asyncio.gather(*in_flight.values(), return_exceptions=True)

    async def _fetch(self, node: int, positions: dict[TopicPartition, int]) -> None:
        try:
            answer = await self.fetch_from_node(
                self._client, node, positions, max_wait_ms=self._max_wait_ms, max_bytes=self._max_bytes
            )
        except (KafkaError, OSError) as exc:
            self._warn("tail fetch from broker %s failed: %r", node, exc)
            self._client.force_metadata_update()  # type: ignore[attr-defined]
            await asyncio.sleep(self._backoff)
            return
        except Exception:  # a dead tail would silently stop every delivery: log and go on
            log.exception("tail fetch from broker %s failed unexpectedly", node)
            await asyncio.sleep(self._backoff)
            return
        ready: dict[TopicPartition, PartitionData] = {}
        given_up: dict[TopicPartition, Hole] = {}
        pause = 0
        for tp, got in answer.items():
            position = positions.get(tp)
            if position is None or self._positions.get(tp) != position:
                continue  # untracked or moved while the fetch was out
            data = got
            if data.error is None:
                hole = find_hole(position, data) if tp.topic in self._contiguous else None
                if hole is not None and hole.end == hole.start:
                    self._count("discontinuity")  # only repeated records: left out, nothing to ask again
                    data = dataclasses.replace(data, records=hole.kept)
                elif hole is not None:
                    data, attempt = self._cut(tp, position, data, hole)
                    pause = max(pause, attempt - 1)
                    if attempt > self._max_refetches:
                        given_up[tp] = hole
                elif tp in self._refetching:
                    del self._refetching[tp]
                ready[tp] = data
                self._high_watermarks[tp] = data.high_watermark
            elif data.error is OffsetOutOfRangeError:
                await self._out_of_range(tp, positions[tp])
            else:
                self._warn("tail of %s[%d]: %s", tp.topic, tp.partition, data.error.__name__)
                self._client.force_metadata_update()  # type: ignore[attr-defined]
        if ready:
            try:
                self._handler(ready)
            except Exception:
                log.exception("the tail handler failed; its records were skipped")
            for tp, data in ready.items():
                if data.next_offset is not None and self._positions.get(tp) == positions[tp]:
                    self._positions[tp] = max(positions[tp], data.next_offset)
                    self._release(tp)
            for tp, hole in given_up.items():
                if self._positions.get(tp) == hole.start:
                    self._give_up(tp, hole.start, hole.end)
            if pause:
                # The same offsets missing again: give the broker a moment before the next ask.
                await asyncio.sleep(min(self._backoff * pause, 2.0))
        elif not any(d.error is None for d in answer.values()):
            await asyncio.sleep(self._backoff)

    def _cut(self, tp: TopicPartition, position: int, data: PartitionData, hole: Hole) -> tuple[PartitionData, int]:
        """The answer up to its hole, and how many answers in a row missed that offset."""
        self._count("discontinuity")
        last = self._refetching.get(tp)
        attempt = last[1] + 1 if last is not None and last[0] == hole.start else 1
        self._refetching[tp] = (hole.start, attempt)
        if attempt <= self._max_refetches:
            self._count("refetch")
            self._warn(
                "tail of %s[%d]: the answer from offset %d lacks offsets %d..%d; asking again (%d of %d)",
                tp.topic,
                tp.partition,
                position,
                hole.start,
                hole.end - 1,
                attempt,
                self._max_refetches,
            )
        # Deliver what precedes the hole; the position stops at it (the next fetch asks for it).
        return dataclasses.replace(data, records=hole.kept, next_offset=hole.start), attempt

    def _give_up(self, tp: TopicPartition, start: int, end: int) -> None:
        """The offsets [start, end) cannot be read: tell the hole handler, then go on at `end`."""
        self._refetching.pop(tp, None)
        self._count("hole")
        log.error(
            "tail of %s[%d]: offsets %d..%d could not be read; the rooms watched in the partition are told to resume",
            tp.topic,
            tp.partition,
            start,
            end - 1,
        )
        if self._on_hole is not None:
            try:
                self._on_hole(tp, start, end)
            except Exception:
                log.exception("the tail's hole handler failed")
        if self._positions.get(tp) == start:
            self._positions[tp] = end
            self._release(tp)

    async def _out_of_range(self, tp: TopicPartition, position: int) -> None:
        """Retention removed records before the tail read them: a hole (see _give_up).

        A position beyond the end (topic recreated) is left for the epoch check.
        """
        try:
            earliest = (await list_offsets(self._client, tp.topic, {tp.partition: EARLIEST}))[tp.partition][0]
        except (KafkaError, OSError) as exc:
            self._warn("log start of %s[%d] unknown: %r", tp.topic, tp.partition, exc)
            await asyncio.sleep(self._backoff)
            return
        if position < earliest and self._positions.get(tp) == position:
            log.error("tail of %s[%d] fell behind retention", tp.topic, tp.partition)
            self._give_up(tp, position, earliest)
        else:
            await asyncio.sleep(self._backoff)

    def _count(self, what: str) -> None:
        self.counts[what] += 1
        if hooks.ON:
            hooks.continuity(what)

    def _warn(self, message: str, *args: object) -> None:
        # An outage produces one failure per fetch; one line a few seconds is enough.
        now = time.monotonic()
        if now - self._last_warning >= 5.0:
            self._last_warning = now
            log.warning(message, *args)
