"""The node's tail: long-poll fetches of the partitions its subscribers need.

One fetch in flight per broker (a broker answers one connection's requests in
order, so more would only queue), each carrying every tracked partition that
broker leads. Positions are the tail's own: a partition's records reach the
handler once, in offset order, and the position moves only after the handler
ran, so what was handed over is exactly what was processed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping

from aiokafka.errors import KafkaError, OffsetOutOfRangeError
from aiokafka.structs import TopicPartition

from server.log.kafka_wire import EARLIEST, LeaderUnknownError, PartitionData, fetch_from_node, leader, list_offsets

log = logging.getLogger(__name__)

TailHandler = Callable[[Mapping[TopicPartition, PartitionData]], None]
"""Receives one fetch answer's partitions (never concurrently, on the event loop)."""


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
    ) -> None:
        self._client = client
        self._handler = handler
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
            answer = await fetch_from_node(
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
        for tp, data in answer.items():
            if self._positions.get(tp) != positions[tp]:
                continue  # untracked or moved while the fetch was out
            if data.error is None:
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
        elif not any(d.error is None for d in answer.values()):
            await asyncio.sleep(self._backoff)

    async def _out_of_range(self, tp: TopicPartition, position: int) -> None:
        """Retention removed records before the tail read them: skip ahead, loudly.

        A position beyond the end (topic recreated) is left for the epoch check.
        """
        try:
            earliest = (await list_offsets(self._client, tp.topic, {tp.partition: EARLIEST}))[tp.partition][0]
        except (KafkaError, OSError) as exc:
            self._warn("log start of %s[%d] unknown: %r", tp.topic, tp.partition, exc)
            await asyncio.sleep(self._backoff)
            return
        if position < earliest and self._positions.get(tp) == position:
            log.error(
                "tail of %s[%d] fell behind retention: offsets %d..%d were never delivered",
                tp.topic,
                tp.partition,
                position,
                earliest - 1,
            )
            self._positions[tp] = earliest
        else:
            await asyncio.sleep(self._backoff)

    def _warn(self, message: str, *args: object) -> None:
        # An outage produces one failure per fetch; one line a few seconds is enough.
        now = time.monotonic()
        if now - self._last_warning >= 5.0:
            self._last_warning = now
            log.warning(message, *args)
