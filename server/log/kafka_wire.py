"""Kafka protocol pieces the room log needs beyond aiokafka's consumer and producer.

Reads and tails use raw Fetch requests on an `AIOKafkaClient` rather than
`AIOKafkaConsumer`: a consumer's single assignment, background prefetch and
seek state fit one sequential reader, while the log needs random-access reads
from many coroutines at once and a tail whose processed position it controls
exactly. A Fetch answer also carries the partition's high watermark and log
start offset, which are the only reliable "end" on the test broker (its
ListOffsets(latest) answers the last batch's base offset + 1).

Everything here that reaches into aiokafka's protocol modules is kept in this
file so that an aiokafka upgrade has one place to check.
"""

from __future__ import annotations

import asyncio
import base64
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import Any, Protocol

import aiokafka.util
from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError, for_code
from aiokafka.partitioner import murmur2
from aiokafka.protocol.abstract import AbstractType
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.protocol.offset import OffsetRequest
from aiokafka.protocol.types import Boolean, CompactArray, CompactString, Int16, Int32, Schema, TaggedFields
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

LATEST = -1
"""ListOffsets query for the end of a partition."""
EARLIEST = -2
"""ListOffsets query for the log start offset of a partition."""

_READ_UNCOMMITTED = 0


class CExtensionMissingError(RuntimeError):
    """aiokafka runs without its C extension (several times slower record parsing)."""


def require_c_extension() -> None:
    """Fail loudly if aiokafka silently fell back to pure Python.

    aiokafka decides at import time; besides the AIOKAFKA_NO_EXTENSIONS switch,
    a failed import of the compiled module also falls back without a word.
    """
    if aiokafka.util.NO_EXTENSIONS:
        raise CExtensionMissingError(
            "aiokafka's C extension is disabled (AIOKAFKA_NO_EXTENSIONS is set): the Kafka log refuses to run "
            "several times slower; unset it"
        )
    if not MemoryRecords.__module__.startswith("aiokafka.record._crecords"):
        raise CExtensionMissingError(
            "aiokafka's C extension is not built for this interpreter (pure-Python record parsing in use); "
            "reinstall aiokafka from a wheel that matches this platform"
        )


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (Java) partitioner picks for a key.

    Matching it keeps records of a room where any standard Kafka tool expects them.
    """
    return (murmur2(key) & 0x7FFFFFFF) % partitions  # type: ignore[no-any-return]


class RawRecord(Protocol):
    """A record as aiokafka's (C) record reader yields it; used without copying."""

    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass(frozen=True, slots=True)
class PartitionData:
    """One partition's part of a Fetch answer."""

    records: list[RawRecord]
    """Records at or after the requested offset, ascending (control batches skipped)."""
    next_offset: int | None
    """Offset after the last complete batch received (control batches included); None if none came."""
    high_watermark: int
    """Offset after the last record every in-sync replica has (what consumers may read)."""
    log_start: int
    """Lowest offset still in the log; -1 if the broker's Fetch version does not say."""
    error: type[KafkaError] | None
    """The partition's error, if any (its other fields are then meaningless)."""
    control: tuple[tuple[int, int], ...] = ()
    """Offset ranges [first, next) of the control batches in the answer (transaction markers):
    offsets that hold no record, so that a reader checking continuity does not take them for a hole."""


def _records_from(data: bytes | None, start: int) -> tuple[list[RawRecord], int | None, tuple[tuple[int, int], ...]]:
    out: list[RawRecord] = []
    next_offset: int | None = None
    control: list[tuple[int, int]] = []
    if not data:
        return out, next_offset, ()
    batches = MemoryRecords(data)
    while batches.has_next():
        batch = batches.next_batch()
        if batch is None:
            break
        first = next_offset if next_offset is not None else start
        next_offset = batch.next_offset
        if batch.is_control_batch:
            control.append((getattr(batch, "base_offset", first), batch.next_offset))
            continue
        # A fetch answers from the start of the batch holding the requested offset.
        out.extend(record for record in batch if record.offset >= start)
    return out, next_offset, tuple(control)


async def fetch(
    client: AIOKafkaClient,
    positions: Mapping[TopicPartition, int],
    *,
    max_wait_ms: int,
    max_bytes: int,
) -> dict[TopicPartition, PartitionData]:
    """Fetch each partition from its position: one request per leader, gathered.

    `max_wait_ms` is raised to 1: the test broker answers a 0 ms wait with no partitions.
    """
    by_node: dict[int, dict[TopicPartition, int]] = defaultdict(dict)
    for tp, offset in positions.items():
        by_node[leader(client, tp)][tp] = offset
    answers = await asyncio.gather(
        *(
            fetch_from_node(client, node, parts, max_wait_ms=max_wait_ms, max_bytes=max_bytes)
            for node, parts in by_node.items()
        )
    )
    merged: dict[TopicPartition, PartitionData] = {}
    for answer in answers:
        merged.update(answer)
    return merged


async def fetch_from_node(
    client: AIOKafkaClient,
    node_id: int,
    positions: Mapping[TopicPartition, int],
    *,
    max_wait_ms: int,
    max_bytes: int,
) -> dict[TopicPartition, PartitionData]:
    """One Fetch request to one broker for partitions it leads."""
    by_topic: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for tp, offset in positions.items():
        by_topic[tp.topic].append((tp.partition, offset, max_bytes))
    request = FetchRequest(max(1, max_wait_ms), 1, max_bytes, _READ_UNCOMMITTED, list(by_topic.items()))
    response = await client.send(node_id, request)
    version: int = response.API_VERSION
    out: dict[TopicPartition, PartitionData] = {}
    for topic, partitions in response.topics:
        for partition, error_code, high_watermark, *rest in partitions:
            tp = TopicPartition(topic, partition)
            if error_code:
                out[tp] = PartitionData([], None, -1, -1, for_code(error_code))
                continue
            # v5+ layout: last_stable_offset, log_start_offset, aborted, [preferred replica], records
            log_start = rest[1] if version >= 5 else -1
            records, next_offset, control = _records_from(rest[-1], positions[tp])
            out[tp] = PartitionData(records, next_offset, high_watermark, log_start, None, control)
    return out


def leader(client: AIOKafkaClient, tp: TopicPartition) -> int:
    """Node id of a partition's leader; asks for fresh metadata and raises if unknown."""
    node = client.cluster.leader_for_partition(tp)
    if node is None or node < 0:
        client.force_metadata_update()
        raise LeaderUnknownError(f"no known leader for {tp.topic}[{tp.partition}]")
    return node  # type: ignore[no-any-return]


class LeaderUnknownError(KafkaError):  # type: ignore[misc]  # aiokafka is untyped
    retriable = True


async def list_offsets(client: AIOKafkaClient, topic: str, queries: Mapping[int, int]) -> dict[int, tuple[int, int]]:
    """ListOffsets: partition -> (offset, timestamp) for LATEST, EARLIEST or a timestamp (ms).

    For a timestamp with no record at or after it, the offset is -1 (Apache Kafka)
    or the timestamp is -1 (the test broker answers offset 0 then): callers treat
    either as "none".
    """
    by_node: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for partition, query in queries.items():
        by_node[leader(client, TopicPartition(topic, partition))].append((partition, query))
    responses = await asyncio.gather(
        *(client.send(node, OffsetRequest(-1, _READ_UNCOMMITTED, [(topic, parts)])) for node, parts in by_node.items())
    )
    out: dict[int, tuple[int, int]] = {}
    for response in responses:
        for _topic, partitions in response.topics:
            for partition, error_code, *info in partitions:
                if error_code:
                    raise for_code(error_code)(f"ListOffsets {topic}[{partition}]")
                timestamp, offset = info[0], info[1]
                out[partition] = (offset, timestamp)
    return out


# Topic ids (KIP-516) come only with Metadata v10+, which aiokafka does not speak.
# The structs below are Kafka's published schemas for the fields we read.


class _Uuid(AbstractType[bytes]):  # type: ignore[misc]  # aiokafka is untyped
    @classmethod
    def encode(cls, value: bytes) -> bytes:
        return value

    @classmethod
    def decode(cls, data: BytesIO) -> bytes:
        return data.read(16)


_BROKERS = CompactArray(
    ("node_id", Int32),
    ("host", CompactString("utf-8")),
    ("port", Int32),
    ("rack", CompactString("utf-8")),
    ("tags", TaggedFields),
)
_PARTITIONS = CompactArray(
    ("error_code", Int16),
    ("partition_index", Int32),
    ("leader_id", Int32),
    ("leader_epoch", Int32),
    ("replica_nodes", CompactArray(Int32)),
    ("isr_nodes", CompactArray(Int32)),
    ("offline_replicas", CompactArray(Int32)),
    ("tags", TaggedFields),
)
_TOPICS = CompactArray(
    ("error_code", Int16),
    ("name", CompactString("utf-8")),
    ("topic_id", _Uuid),
    ("is_internal", Boolean),
    ("partitions", _PARTITIONS),
    ("topic_authorized_operations", Int32),
    ("tags", TaggedFields),
)
_TOPIC_REQUESTS = CompactArray(("topic_id", _Uuid), ("name", CompactString("utf-8")), ("tags", TaggedFields))


class _MetadataResponseV10(Response):  # type: ignore[misc]
    API_KEY = 3
    API_VERSION = 10
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("brokers", _BROKERS),
        ("cluster_id", CompactString("utf-8")),
        ("controller_id", Int32),
        ("topics", _TOPICS),
        ("cluster_authorized_operations", Int32),
        ("tags", TaggedFields),
    )


class _MetadataResponseV12(Response):  # type: ignore[misc]
    API_KEY = 3
    API_VERSION = 12
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("brokers", _BROKERS),
        ("cluster_id", CompactString("utf-8")),
        ("controller_id", Int32),
        ("topics", _TOPICS),
        ("tags", TaggedFields),
    )


class _MetadataRequestV10(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 3
    API_VERSION = 10
    RESPONSE_TYPE = _MetadataResponseV10
    SCHEMA = Schema(
        ("topics", _TOPIC_REQUESTS),
        ("allow_auto_topic_creation", Boolean),
        ("include_cluster_authorized_operations", Boolean),
        ("include_topic_authorized_operations", Boolean),
        ("tags", TaggedFields),
    )


class _MetadataRequestV12(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 3
    API_VERSION = 12
    RESPONSE_TYPE = _MetadataResponseV12
    SCHEMA = Schema(
        ("topics", _TOPIC_REQUESTS),
        ("allow_auto_topic_creation", Boolean),
        ("include_topic_authorized_operations", Boolean),
        ("tags", TaggedFields),
    )


class _TopicMetadataRequest(Request[_MetadataRequestV10 | _MetadataRequestV12]):  # type: ignore[misc]
    API_KEY = 3

    def __init__(self, topics: Sequence[str]) -> None:
        self._topics = topics

    def build(self, request_struct_class: type[Any]) -> Any:
        topics: list[tuple[bytes, str, dict[int, bytes]]] = [(bytes(16), name, {}) for name in self._topics]
        if request_struct_class.API_VERSION == 10:
            return request_struct_class(topics, False, False, False, {})
        return request_struct_class(topics, False, False, {})


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """What the log needs to know of its topic."""

    name: str
    topic_id: str
    """Kafka's topic id in its usual text form (base64url, 22 characters), as kafka-topics shows it."""
    partitions: int


class TopicIdsUnsupportedError(RuntimeError):
    """The broker does not report topic ids (Metadata v10+, Apache Kafka 2.8+)."""


async def describe_topics(client: AIOKafkaClient, topics: Sequence[str]) -> dict[str, TopicInfo | None]:
    """Topic id and partition count per topic; None for a topic that does not exist."""
    try:
        response = await client.send(client.get_random_node(), _TopicMetadataRequest(topics))
    except NotImplementedError as exc:  # raised by Request.prepare when no version fits
        raise TopicIdsUnsupportedError(
            "the Kafka brokers do not report topic ids (Metadata v10+, Apache Kafka 2.8 or newer is required); "
            "Barrage derives the log epoch from the topic id"
        ) from exc
    out: dict[str, TopicInfo | None] = dict.fromkeys(topics)
    for error_code, name, topic_id, _internal, partitions, *_ in response.topics:
        if error_code:
            error = for_code(error_code)
            if error.__name__ == "UnknownTopicOrPartitionError":
                continue
            raise error(f"metadata for topic {name}")
        if topic_id == bytes(16):
            raise TopicIdsUnsupportedError(f"the broker reports no topic id for {name}")
        text_id = base64.urlsafe_b64encode(topic_id).rstrip(b"=").decode("ascii")
        out[name] = TopicInfo(name, text_id, len(partitions))
    return out
