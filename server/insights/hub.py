"""Where insights run inside a node: which rooms are folded, from what, and how they are kept.

Two feeds, one engine per room (server/insights/engine.py):

- Log follower (both backends): the room is read through the RoomLog interface
  (`read(room, after=last folded position)`) every `insights_poll_s`. A room a node has
  never folded is rebuilt from its first retained record on first use; after a restart
  that is how the figures come back (no checkpoint: the fold is a pure function of the
  log, so the rebuilt figures are the figures before the restart).
  On the embedded log a room is followed from the first question about it (rebuilt
  from the log, so the figures are the same as if it had been followed all along) and
  forgotten `insights_idle_s` after the last question; with `insights_follow_watched`
  every room the node watches is followed from the start instead (warm figures, but
  the fold then costs every append ~11 µs: about 40% of the ingest capacity).
- Kafka consumer group (Kafka log): see kafka_consumer.py. Each node folds the rooms of
  the partitions the group gave it, continuously, whether anyone asks or not. A question
  about a room of another node's partition is answered by following that room through
  the log here (on-demand rebuild), with the same figures as the owner's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from barrage.server.config import Settings
from barrage.server.core.cursor import encode_cursor
from barrage.server.core.gateway import Gateway
from barrage.server.insights.engine import InsightsConfig, Limits, RoomInsights
from barrage.server.insights.kafka_consumer import KafkaInsightsConsumer
from barrage.server.insights.products import load_alias_file
from barrage.server.log.base import RoomLog
from barrage.v1 import insights_service_pb2 as pb

log = logging.getLogger(__name__)

READ_PAGE = 1000


@dataclass
class Tracked:
    """One room's engine and what the node knows about feeding it."""

    engine: RoomInsights
    epoch: str
    owned: bool = False
    """Fed by this node's Kafka consumer (its partition is ours)."""
    version: int = 0
    """Bumped whenever the engine folded something."""
    last_used: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    cache: dict[tuple[object, ...], pb.RoomInsights] = field(default_factory=dict)

    def snapshot(self, title: str, start_ms: int | None, end_ms: int | None, limits: Limits) -> pb.RoomInsights:
        """The engine's snapshot, shared by callers asking the same at the same version."""
        key = (self.version, title, start_ms, end_ms, limits)
        found = self.cache.get(key)
        if found is None:
            found = self.engine.snapshot(title, start_ms, end_ms, limits)
            if len(self.cache) > 16 or any(k[0] != self.version for k in self.cache):
                self.cache.clear()
            self.cache[key] = found
        return found


def config_from(settings: Settings) -> InsightsConfig:
    aliases = load_alias_file(settings.insights_aliases) if settings.insights_aliases else {}
    return InsightsConfig(
        bucket_ms=max(1, int(settings.insights_bucket_s * 1000)),
        merge_ms=int(settings.insights_merge_s * 1000),
        aliases=tuple((pid, tuple(names)) for pid, names in sorted(aliases.items())),
    )


class InsightsHub:
    """The node's insights: engines per room, their feeds, and their upkeep."""

    def __init__(self, settings: Settings, room_log: RoomLog, gateway: Gateway) -> None:
        self.settings = settings
        self.config = config_from(settings)
        self._log = room_log
        self._gateway = gateway
        self.followed: dict[str, Tracked] = {}
        self.owned: dict[str, Tracked] = {}
        self.consumer: KafkaInsightsConsumer | None = None
        self._partition_of: Callable[[str], int] | None = None
        self._task: asyncio.Task[None] | None = None
        self._evicted: set[str] = set()
        """Closed rooms of owned partitions dropped from memory: asked again, they are followed."""
        self.folded = 0
        """Events folded since start (both feeds), for benchmarks."""

    async def start(self) -> None:
        from barrage.server.log.kafka import KafkaLog

        if isinstance(self._log, KafkaLog):
            kafka = self._log
            self._partition_of = kafka.partition_of
            self.consumer = KafkaInsightsConsumer(kafka.options, self._sink, self._assigned, self._revoked)
            await self.consumer.start()
        self._task = asyncio.create_task(self._follow(), name="insights-follow")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.consumer is not None:
            await self.consumer.close()

    # ------------------------------------------------------------------ queries

    async def room(self, room_id: str) -> Tracked:
        """The room's engine, caught up with the log as of now."""
        partition = self._partition_of(room_id) if self._partition_of is not None else None
        owned = partition is not None and self.consumer is not None and self.consumer.caught_up(partition)
        if owned and room_id not in self._evicted:
            tracked = self.owned.get(room_id)
            if tracked is None:
                tracked = self.owned[room_id] = self._new(room_id, owned=True)
            tracked.last_used = time.monotonic()
            self.followed.pop(room_id, None)
            # The consumer folds the partition as it fetches; a consumer that lags (a loaded
            # node, a slow rebalance) must not make the answer stale. Both read the room's
            # records in log order and a fold skips what it already has, so reading the rest
            # here loses and doubles nothing.
            await self._catch_up(room_id, tracked)
            return tracked
        tracked = self.followed.get(room_id)
        if tracked is None:
            tracked = self.followed[room_id] = self._new(room_id, owned=False)
        tracked.last_used = time.monotonic()
        await self._catch_up(room_id, tracked)
        return tracked

    def _new(self, room_id: str, owned: bool) -> Tracked:
        return Tracked(RoomInsights(room_id, self.config), self._log.epoch(room_id), owned=owned)

    # ------------------------------------------------------------------ log follower

    async def _catch_up(self, room_id: str, tracked: Tracked) -> None:
        async with tracked.lock:
            epoch = self._log.epoch(room_id)
            if epoch != tracked.epoch:
                # The log's numbering restarted (a recreated data directory or topic): start over.
                tracked.engine = RoomInsights(room_id, self.config)
                tracked.epoch = epoch
                tracked.version += 1
            engine = tracked.engine
            while True:
                records = await self._log.read(room_id, engine.position, READ_PAGE)
                for record in records:
                    engine.fold_bytes(record.position, record.payload)
                if records:
                    engine.cursor = encode_cursor(epoch, engine.position)
                    tracked.version += 1
                    self.folded += len(records)
                if len(records) < READ_PAGE:
                    return
                await asyncio.sleep(0)  # a long rebuild must not hold up fan-out

    async def _follow(self) -> None:
        interval = self.settings.insights_poll_s
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for room_id, owned in list(self.owned.items()):
                if owned.engine.closed and now - owned.last_used > self.settings.insights_idle_s:
                    del self.owned[room_id]  # a closed room's figures no longer change: rebuilt if asked
                    self._evicted.add(room_id)
            follow_watched = self.consumer is None and self.settings.insights_follow_watched
            watched = set(self._gateway.hub.channels) if follow_watched else set()
            for room_id in sorted(watched | set(self.followed)):
                tracked = self.followed.get(room_id)
                if tracked is None:
                    if room_id in self.owned:
                        continue
                    tracked = self.followed[room_id] = self._new(room_id, owned=False)
                if room_id not in watched and now - tracked.last_used > self.settings.insights_idle_s:
                    del self.followed[room_id]
                    continue
                try:
                    await self._catch_up(room_id, tracked)
                except Exception:  # one room's read failing must not stop the others
                    log.exception("insights: following room %s failed", room_id)

    # ------------------------------------------------------------------ Kafka consumer

    def _sink(self, partition: int, records: Sequence[tuple[str, int, bytes]]) -> None:
        touched: set[str] = set()
        for room_id, offset, payload in records:
            if room_id in self._evicted:
                continue  # closed and dropped: asked again, it is followed through the log
            tracked = self.owned.get(room_id)
            if tracked is None:
                tracked = self.owned[room_id] = self._new(room_id, owned=True)
            if tracked.engine.fold_bytes(offset, payload):
                touched.add(room_id)
        for room_id in touched:
            tracked = self.owned[room_id]
            tracked.engine.cursor = encode_cursor(tracked.epoch, tracked.engine.position)
            tracked.version += 1
        self.folded += len(records)

    def _in(self, partitions: set[int]) -> list[str]:
        partition_of = self._partition_of
        assert partition_of is not None
        return [room for room in self.owned if partition_of(room) in partitions]

    def _assigned(self, partitions: set[int]) -> None:
        for room_id in self._in(partitions):
            del self.owned[room_id]  # rebuilt from the partition's start
        partition_of = self._partition_of
        assert partition_of is not None
        self._evicted = {room for room in self._evicted if partition_of(room) not in partitions}

    def _revoked(self, partitions: set[int]) -> None:
        for room_id in self._in(partitions):
            del self.owned[room_id]
