"""A node's connections to a Kafka cluster, its settings, and catch-up reads.

One `KafkaSession` per node holds three connections per broker, each for one
kind of traffic, because a broker answers the requests of one connection in
order: a long-polling tail fetch would otherwise delay reads and appends.
- producer: appends (acks=all), batched by aiokafka with linger;
- reader: metadata, short reads, catch-up rounds, ListOffsets;
- tail: the node's long-polling tail (kafka_tail.Tailer).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_type_hints
from urllib.parse import parse_qsl, urlsplit

from aiokafka import AIOKafkaClient, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, OffsetOutOfRangeError, for_code
from aiokafka.structs import TopicPartition

from barrage.server.log.base import LogUnavailableError
from barrage.server.log.kafka_wire import (
    EARLIEST,
    PartitionData,
    RawRecord,
    TopicInfo,
    describe_topics,
    fetch,
    list_offsets,
    require_c_extension,
)

log = logging.getLogger(__name__)

DEFAULT_TOPIC = "barrage.rooms"


@dataclass(frozen=True, slots=True)
class KafkaOptions:
    """Settings of the Kafka room log. Every field can also be given in the URL query."""

    bootstrap_servers: str
    """Comma-separated HOST:PORT list (from the URL)."""
    topic: str = DEFAULT_TOPIC
    """The room log topic: every room's events, keyed by room id."""
    directory_topic: str = ""
    """The compacted room directory topic; "" means "<topic>.directory"."""
    partitions: int = 12
    """Partitions of the log topic when Barrage creates it. A room lives in one partition.
    Never add partitions to an existing topic: rooms would move (create a new topic instead)."""
    replication_factor: int = 3
    """Replicas per partition when Barrage creates the topics (1 for a single-broker dev cluster)."""
    min_insync_replicas: int = 2
    """Topic min.insync.replicas when Barrage creates the topics (capped at replication_factor)."""
    retention_ms: int = 7 * 24 * 3600 * 1000
    """Log topic retention.ms when Barrage creates it (-1: keep forever)."""
    topic_configs: Mapping[str, str] = field(default_factory=dict)
    """Extra topic configs when Barrage creates the log topic (e.g. segment.ms)."""
    create_topics: bool = True
    """Create missing topics at start-up; if False a missing topic is an error."""
    compression: str = ""
    """Producer compression: "", "gzip", "snappy", "lz4" or "zstd" (the last three need their Python package)."""
    linger_ms: int = 2
    """How long the producer waits to fill a batch; appends from many rooms share batches."""
    max_batch_bytes: int = 512 * 1024
    """Producer batch size per partition; the entries of one append stay contiguous if they fit."""
    enable_idempotence: bool = False
    """Kafka's idempotent producer (no duplicates from the producer's own retries). Off by default because
    the test broker's InitProducerId fails; turn it on for Apache Kafka. Barrage's dedupe works either way."""
    append_timeout_ms: int = 3000
    """An append not confirmed within this raises LogUnavailableError (the record may still land; a retry
    with the same dedupe key then finds it)."""
    read_timeout_ms: int = 3000
    """Bound on each read, catch-up and metadata request."""
    fetch_max_wait_ms: int = 10
    """Long-poll wait of the tail. The test broker holds a fetch this long even when data arrives, so keep it
    small there; Apache Kafka answers as soon as data arrives, so 100-500 ms costs no latency there."""
    fetch_max_bytes: int = 1024 * 1024
    """Bytes per partition per fetch."""
    dedupe_window_s: float = 600.0
    """A retry with the same dedupe key within this long of the first copy answers the first copy
    (10 minutes, as the embedded log)."""
    clock_skew_s: float = 30.0
    """Allowance for clock differences between nodes (record timestamps are the producing node's clock);
    the dedupe index keeps dedupe_window_s + clock_skew_s of each partition it uses."""
    startup_timeout_s: float = 30.0
    """How long start() waits for the brokers before failing with a clear error."""
    maintenance_interval_s: float = 2.0
    """How often a node checks the topic id (epoch) and drops unused dedupe indexes."""
    client_id: str = "barrage"
    client_options: Mapping[str, Any] = field(default_factory=dict)
    """Passed to every aiokafka client: security_protocol, ssl_context, sasl_mechanism, sasl_plain_username..."""

    @property
    def directory(self) -> str:
        return self.directory_topic or f"{self.topic}.directory"


class KafkaConfigError(ValueError):
    """A Kafka URL or option is malformed."""


class KafkaStartupError(RuntimeError):
    """The Kafka log cannot start: brokers unreachable, topic missing or not creatable..."""


def parse_kafka_url(url: str, **overrides: Any) -> KafkaOptions:
    """`kafka://HOST:PORT[,HOST:PORT...][/TOPIC][?option=value&...]` plus keyword overrides."""
    parts = urlsplit(url)
    if parts.scheme != "kafka" or not parts.netloc:
        raise KafkaConfigError(f"not a Kafka log URL (kafka://HOST:PORT[,HOST:PORT...]/TOPIC): {url!r}")
    hosts = [h.strip() for h in parts.netloc.split(",") if h.strip()]
    for host in hosts:
        name, _, port = host.rpartition(":")
        if not name or not port.isdigit():
            raise KafkaConfigError(f"broker address must be HOST:PORT, got {host!r} in {url!r}")
    values: dict[str, Any] = {"bootstrap_servers": ",".join(hosts)}
    topic = parts.path.strip("/")
    if topic:
        values["topic"] = topic
    hints = get_type_hints(KafkaOptions)
    names = {f.name for f in dataclasses.fields(KafkaOptions)} - {"bootstrap_servers"}
    for name, raw in parse_qsl(parts.query, keep_blank_values=True):
        if name not in names or name in ("topic_configs", "client_options"):
            raise KafkaConfigError(f"unknown Kafka log option {name!r} in URL")
        values[name] = _convert(name, raw, hints[name])
    for name, value in overrides.items():
        if name not in names:
            raise KafkaConfigError(f"unknown Kafka log option {name!r}")
        values[name] = value
    options = KafkaOptions(**values)
    _validate(options)
    return options


def _convert(name: str, raw: str, hint: Any) -> Any:
    try:
        if hint is bool:
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes")
        if hint in (int, float):
            return hint(raw)
    except ValueError as exc:
        raise KafkaConfigError(f"option {name}={raw!r} is not a {hint.__name__}") from exc
    return raw


def _validate(options: KafkaOptions) -> None:
    if options.partitions < 1 or options.replication_factor < 1:
        raise KafkaConfigError("partitions and replication_factor must be >= 1")
    if options.fetch_max_wait_ms < 1:
        raise KafkaConfigError("fetch_max_wait_ms must be >= 1")
    if options.append_timeout_ms < 100 or options.read_timeout_ms < 100:
        raise KafkaConfigError("append_timeout_ms and read_timeout_ms must be >= 100")
    if options.dedupe_window_s < 0 or options.clock_skew_s < 0:
        raise KafkaConfigError("dedupe_window_s and clock_skew_s must be >= 0")


def now_ms() -> int:
    return int(time.time() * 1000)


@contextlib.asynccontextmanager
async def unavailable_on_error(what: str, timeout_s: float) -> AsyncIterator[None]:
    """Bound an operation in time and turn Kafka trouble into LogUnavailableError."""
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except TimeoutError as exc:
        raise LogUnavailableError(f"{what}: no answer from Kafka within {timeout_s:g} s") from exc
    except (KafkaError, OSError) as exc:
        raise LogUnavailableError(f"{what}: {type(exc).__name__}: {exc}") from exc


class KafkaSession:
    """Connections, topics and helpers shared by the Kafka log and room directory of one node."""

    def __init__(self, options: KafkaOptions) -> None:
        self.options = options
        self.reader: Any = None
        self.tail_client: Any = None
        self.producer: Any = None
        self.log_topic: TopicInfo | None = None

    @property
    def read_timeout_s(self) -> float:
        return self.options.read_timeout_ms / 1000

    def _client_kwargs(self) -> dict[str, Any]:
        return {"bootstrap_servers": self.options.bootstrap_servers, **self.options.client_options}

    async def start(self) -> None:
        """Connect, make sure the topics exist, start the producer. Raises KafkaStartupError."""
        require_c_extension()
        opts = self.options
        deadline = time.monotonic() + opts.startup_timeout_s
        self.reader = await self._connect("reader", deadline)
        self.tail_client = await self._connect("tail", deadline)
        try:
            self.log_topic = await self._ensure_topics(deadline)
            topics = [opts.topic, opts.directory]
            await asyncio.gather(self.reader.set_topics(topics), self.tail_client.set_topics(topics))
        except (KafkaError, OSError) as exc:
            raise KafkaStartupError(f"Kafka topic metadata unavailable: {type(exc).__name__}: {exc}") from exc
        self.producer = AIOKafkaProducer(
            **self._client_kwargs(),
            client_id=f"{opts.client_id}-producer",
            acks="all",
            linger_ms=opts.linger_ms,
            max_batch_size=opts.max_batch_bytes,
            max_request_size=max(opts.max_batch_bytes, 1024 * 1024),
            request_timeout_ms=opts.append_timeout_ms,
            compression_type=opts.compression or None,
            enable_idempotence=opts.enable_idempotence,
        )
        try:
            await asyncio.wait_for(self.producer.start(), max(1.0, deadline - time.monotonic()))
        except (KafkaError, OSError, TimeoutError) as exc:
            raise KafkaStartupError(f"Kafka producer could not start: {type(exc).__name__}: {exc}") from exc

    async def _connect(self, role: str, deadline: float) -> Any:
        """Bootstrap a client, retrying until the deadline: the brokers may still be starting."""
        last: BaseException | None = None
        while True:
            client = AIOKafkaClient(
                **self._client_kwargs(),
                client_id=f"{self.options.client_id}-{role}",
                request_timeout_ms=self.options.read_timeout_ms,
            )
            try:
                # aiokafka logs every failed bootstrap at ERROR; one line of ours says it all.
                with _quiet(logging.getLogger("aiokafka")):
                    await client.bootstrap()
                return client
            except (KafkaError, OSError) as exc:
                if last is None:
                    log.warning("waiting for Kafka at %s: %s", self.options.bootstrap_servers, exc)
                last = exc
                await client.close()
            if time.monotonic() >= deadline:
                raise KafkaStartupError(
                    f"cannot reach Kafka at {self.options.bootstrap_servers} "
                    f"(waited {self.options.startup_timeout_s:g} s, startup_timeout_s): {last}"
                )
            await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    async def _ensure_topics(self, deadline: float) -> TopicInfo:
        opts = self.options
        wanted = [opts.topic, opts.directory]
        found = await describe_topics(self.reader, wanted)
        missing = [name for name in wanted if found[name] is None]
        if missing:
            if not opts.create_topics:
                raise KafkaStartupError(f"Kafka topic(s) {', '.join(missing)} do not exist and create_topics is off")
            await self._create_topics(missing)
            # Creation is asynchronous in Kafka: metadata catches up shortly after.
            while True:
                found = await describe_topics(self.reader, wanted)
                if all(found[name] is not None for name in wanted):
                    break
                if time.monotonic() >= deadline:
                    raise KafkaStartupError(f"created topic(s) {', '.join(missing)} but they never appeared")
                await asyncio.sleep(0.1)
        log_info, dir_info = found[opts.topic], found[opts.directory]
        assert log_info is not None
        assert dir_info is not None
        if dir_info.partitions != 1:
            raise KafkaStartupError(
                f"the room directory topic {opts.directory} must have exactly 1 partition, it has {dir_info.partitions}"
            )
        if log_info.partitions != opts.partitions and opts.topic not in missing:
            log.info(
                "topic %s has %d partitions (option says %d): using the topic's",
                opts.topic,
                log_info.partitions,
                opts.partitions,
            )
        return log_info

    async def _create_topics(self, names: Sequence[str]) -> None:
        opts = self.options
        common = {"min.insync.replicas": str(min(opts.min_insync_replicas, opts.replication_factor))}
        specs = []
        for name in names:
            if name == opts.topic:
                configs = {**common, "retention.ms": str(opts.retention_ms), **opts.topic_configs}
                specs.append(NewTopic(name, opts.partitions, opts.replication_factor, topic_configs=configs))
            else:
                configs = {**common, "cleanup.policy": "compact", "retention.ms": "-1"}
                specs.append(NewTopic(name, 1, opts.replication_factor, topic_configs=configs))
        admin = AIOKafkaAdminClient(
            **self._client_kwargs(), client_id=f"{opts.client_id}-admin", request_timeout_ms=opts.read_timeout_ms
        )
        try:
            await admin.start()
            response = await admin.create_topics(specs, timeout_ms=opts.read_timeout_ms)
        except (KafkaError, OSError) as exc:
            raise KafkaStartupError(f"cannot create Kafka topic(s) {', '.join(names)}: {exc}") from exc
        finally:
            await admin.close()
        for topic, error_code, *rest in response.topic_errors:
            error = for_code(error_code) if error_code else None
            if error is None or error.__name__ == "TopicAlreadyExistsError":  # another node won the race
                continue
            detail = rest[0] if rest and rest[0] else error.__name__
            raise KafkaStartupError(
                f"cannot create Kafka topic {topic} (partitions={opts.partitions}, "
                f"replication_factor={opts.replication_factor}): {detail}"
            )
        log.info("created Kafka topic(s) %s", ", ".join(names))

    async def close(self) -> None:
        for name in ("producer", "tail_client", "reader"):
            client = getattr(self, name)
            setattr(self, name, None)
            if client is None:
                continue
            try:
                await (client.stop() if name == "producer" else client.close())
            except (KafkaError, OSError):
                log.warning("closing the Kafka %s failed", name, exc_info=True)

    async def fetch_one(self, tp: TopicPartition, offset: int, what: str, max_bytes: int = 0) -> PartitionData:
        """A short read of one partition from `offset`; raises LogUnavailableError.

        Records come back unless `offset` is at or beyond the high watermark: a
        broker may answer with part of what it has, and the test broker answers
        with whatever it gathered within the wait, which can be nothing.
        """
        delay = 0.001
        async with unavailable_on_error(what, self.read_timeout_s):
            while True:
                limit = max_bytes or self.options.fetch_max_bytes  # a broker returns the first batch whatever the limit
                answer = await fetch(self.reader, {tp: offset}, max_wait_ms=1, max_bytes=limit)
                found = answer.get(tp)
                if found is None:
                    # An answer without the partition (leadership moving, a partial answer):
                    # ask again with fresh metadata, within the read timeout.
                    self.reader.force_metadata_update()
                    await asyncio.sleep(delay)
                    delay = min(2 * delay, 0.05)
                    continue
                data = found
                if data.error is not None or data.next_offset is not None or offset >= data.high_watermark:
                    break
                await asyncio.sleep(delay)
                delay = min(2 * delay, 0.05)
        if data.error is not None:
            if data.error is OffsetOutOfRangeError:
                raise OffsetOutOfRange(tp, offset)
            self.reader.force_metadata_update()
            raise LogUnavailableError(f"{what}: {data.error.__name__}")
        return data

    async def offsets(self, topic: str, queries: Mapping[int, int], what: str) -> dict[int, tuple[int, int]]:
        async with unavailable_on_error(what, self.read_timeout_s):
            return await list_offsets(self.reader, topic, queries)

    async def topic_info(self, topic: str) -> TopicInfo | None:
        async with unavailable_on_error(f"metadata of {topic}", self.read_timeout_s):
            return (await describe_topics(self.reader, [topic]))[topic]


class OffsetOutOfRange(LogUnavailableError):
    """A read asked for an offset the partition no longer (or not yet) has."""

    def __init__(self, tp: TopicPartition, offset: int) -> None:
        super().__init__(f"offset {offset} is out of range for {tp.topic}[{tp.partition}]")
        self.tp = tp
        self.offset = offset


class Follower(abc.ABC):
    """State folded from one partition in offset order, fed by whoever reads it first.

    Two readers feed it: the node's tail (feed()) and catch-up rounds (sync()).
    Invariant: every record with offset < `end` has been applied exactly once, in
    offset order. A feed must start at or before `end`; what it holds below `end`
    is skipped, so the two readers may overlap freely.
    """

    def __init__(self, session: KafkaSession, tp: TopicPartition, start: int) -> None:
        self.session = session
        self.tp = tp
        self.end = start
        self._next_round: asyncio.Future[None] | None = None
        self._rounds: asyncio.Task[None] | None = None

    @abc.abstractmethod
    def apply(self, record: RawRecord) -> None:
        """Fold one record (called with offsets ascending, each once)."""

    def feed(self, records: Sequence[RawRecord], next_offset: int | None) -> None:
        end = self.end
        for record in records:
            if record.offset >= end:
                self.apply(record)
                end = record.offset + 1
        if next_offset is not None and next_offset > end:
            end = next_offset  # control records or compacted-away offsets
        self.end = end

    async def sync(self, target: int | None) -> None:
        """Return once `end >= target`, or (target None) once everything appended before the call is applied.

        Callers share rounds: one round runs at a time and every caller that
        arrived while it ran shares the next one, so a burst costs two rounds.
        Raises LogUnavailableError (after read_timeout_ms).
        """
        async with unavailable_on_error(
            f"catching up on {self.tp.topic}[{self.tp.partition}]", self.session.read_timeout_s
        ):
            while target is None or self.end < target:
                if self._next_round is None:
                    self._next_round = asyncio.get_running_loop().create_future()
                    if self._rounds is None or self._rounds.done():
                        self._rounds = asyncio.create_task(self._run_rounds())
                # The round this caller joins starts after it arrived, so it sees everything appended before.
                await asyncio.shield(self._next_round)
                if target is None:
                    return

    async def _run_rounds(self) -> None:
        while self._next_round is not None:
            done, self._next_round = self._next_round, None
            try:
                await self._catch_up()
            except asyncio.CancelledError:
                _fail(done, LogUnavailableError("the Kafka log is closing"))
                raise
            except Exception as exc:  # handed to every waiter of this round
                _fail(done, exc)
            else:
                if not done.done():
                    done.set_result(None)

    async def _catch_up(self) -> None:
        """Read from `end` up to the high watermark seen by the first fetch."""
        goal: int | None = None
        while True:
            start = self.end
            try:
                data = await self.session.fetch_one(
                    self.tp, start, f"catching up on {self.tp.topic}[{self.tp.partition}]"
                )
            except OffsetOutOfRange:
                earliest = await self.session.offsets(self.tp.topic, {self.tp.partition: EARLIEST}, "log start")
                if start >= earliest[self.tp.partition][0]:
                    raise  # beyond the end: the topic was recreated; the epoch check takes over
                log.warning(
                    "%s[%d]: offsets %d..%d were removed by retention before this node read them",
                    self.tp.topic,
                    self.tp.partition,
                    start,
                    earliest[self.tp.partition][0] - 1,
                )
                self.end = earliest[self.tp.partition][0]
                continue
            if goal is None:
                goal = data.high_watermark
            self.feed(data.records, data.next_offset)
            if self.end >= goal:
                return
            if self.end == start:  # fetch_one returns records below the high watermark, so it went down
                raise LogUnavailableError(
                    f"{self.tp.topic}[{self.tp.partition}] high watermark fell below {goal}: was the topic recreated?"
                )

    def cancel(self) -> None:
        if self._rounds is not None:
            self._rounds.cancel()
        if self._next_round is not None:
            _fail(self._next_round, LogUnavailableError("the Kafka log is closing"))


def _fail(future: asyncio.Future[None], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
        future.exception()  # its waiters may all have timed out: no "never retrieved" warning


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
