"""How telemetry hears the node's hot path, to trace and measure it (see docs/observability.md).

The core reports through the interface it defines (server/core/observer.py); `enable`
installs `TelemetryObserver` there, which calls the functions below. The core calls
them behind `if observer.ON:` (a module global read: ~30 ns when telemetry is off), and
the outbox behind `if frame.stamp is not None:` (frames are only stamped while
telemetry is on). The log (server/log/kafka*.py) calls `continuity` here directly.

Nothing here is called per subscriber except `Stamp.written` and `Stamp.shed`, which count
and record into hot histograms (server/telemetry/hot.py) and start a span only for the
sampled ratio of writes.

The path of one message, and where each piece is recorded:

    session._send            send_received   ingest span starts (child of Send.traceparent)
    ingest.append            append_started  append span; log records get the ingest span's context
    (log confirms)           append_done     append duration, events in
    session._send_result     send_answered   ingest span ends (cursor, event id, or the refusal)
    live._on_records         record_read     receive span starts on each node (child of the record's context)
    hub.flush                flushed         receive spans end; flush span (linked to them); frames stamped
    outbox.next_write        Stamp.written   write latency; a sampled write span (child of the flush span)
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Sequence
from random import random
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from barrage.server.core import observer
from barrage.server.core.cursor import encode_cursor
from barrage.server.telemetry.hot import SIZE_BOUNDS, Cell, Counter, HistogramFamily, Labelled, Registry, Series
from barrage.v1 import event_pb2

if TYPE_CHECKING:
    from barrage.server.core.hub import Channel
    from barrage.server.core.outbox import Frame
    from barrage.server.core.posts import Posted
    from barrage.server.log.base import AppendResult, LogEntry, LogRecord
    from barrage.v1 import room_service_pb2

ON = False
"""Telemetry (metrics, tracing or both) is on: the hooks run."""
TRACING = False
"""Spans are recorded."""

MAX_LINKS = 32
"""Links on one span (a batch links to at most this many events)."""
LATENCY_EVERY = 8
"""Per-subscriber latencies (write wait, delivery) are recorded for one delivery in this many."""
_LATENCY_MASK = LATENCY_EVERY - 1
_MAX_PENDING_INGESTS = 10_000
_ABANDONED_S = 120.0
"""A send unanswered this long belongs to a stream that is gone (the log times out long before)."""
_MAX_READS_PER_ROOM = 8192

PRIORITY: dict[int, str] = {int(v): name.removeprefix("PRIORITY_").lower() for name, v in event_pb2.Priority.items()}
_PROPAGATOR = TraceContextTextMapPropagator()

# Attribute names (OpenTelemetry semantic conventions where they exist).
MESSAGING_SYSTEM = "messaging.system"
DESTINATION = "messaging.destination.name"
OPERATION_TYPE = "messaging.operation.type"
OPERATION_NAME = "messaging.operation.name"
MESSAGE_ID = "messaging.message.id"
BATCH_COUNT = "messaging.batch.message_count"
NODE = "barrage.node.id"
CURSOR = "barrage.cursor"
POSITION = "barrage.log.position"
EVENT_TYPE = "barrage.event.type"
PRIORITY_ATTR = "barrage.priority"
CLIENT_MSG_ID = "barrage.client_msg_id"


class Metrics:
    """The node's metrics (names and meanings: docs/observability.md)."""

    def __init__(self, registry: Registry) -> None:
        r = self.registry = registry
        self.events_in: Labelled = r.counter(
            "barrage.events.in", "{event}", "events appended to the log through this node, by type and priority"
        ).by(EVENT_TYPE, PRIORITY_ATTR)
        self.events_read: Labelled = r.counter(
            "barrage.events.read", "{event}", "live events this node read from the log for its subscribers"
        ).by(PRIORITY_ATTR)
        self.events_out: Labelled = r.counter(
            "barrage.events.out", "{event}", "event deliveries queued to subscribers (events x subscribers)"
        ).by(EVENT_TYPE, PRIORITY_ATTR)
        self.events_sampled: Labelled = r.counter(
            "barrage.events.sampled", "{event}", "deliveries left out of viewers' sampled frames in hot rooms"
        ).by(PRIORITY_ATTR)
        self.events_dropped: Counter = r.counter(
            "barrage.events.dropped", "{event}", "deliveries shed from slow streams' queues (reported as omitted)"
        )
        self.lagged: Counter = r.counter(
            "barrage.subscriptions.lagged", "{subscription}", "subscriptions told to resume: critical events overflowed"
        )
        self.fold_skipped: Labelled = r.counter(
            "barrage.fold.skipped", "{event}", "logged events or checkpoints a fold could not apply and skipped"
        ).by("barrage.fold", EVENT_TYPE)
        self.continuity: Labelled = r.counter(
            "barrage.live.continuity",
            "{event}",
            "live-delivery continuity checks that failed: discontinuity, refetch, hole, room_gap",
        ).by("barrage.continuity")
        self.frames_written: Cell = r.counter(
            "barrage.frames.written", "{frame}", "room frames handed to subscribers' streams (one per subscriber)"
        ).cell()
        self.sends: Labelled = r.counter(
            "barrage.sends", "{send}", "sends answered, by result: ok, duplicate, or the refusal's reason"
        ).by("barrage.result")
        self.delivery: Series = r.histogram(
            "barrage.delivery.latency", "s", "publish time of a frame's oldest event to its write, per subscriber"
        ).of()
        stages: HistogramFamily = r.histogram(
            "barrage.stage.duration", "s", "time a message spends in each stage of its path (barrage.stage)"
        )
        self.stage_ingest = stages.of(**{"barrage.stage": "ingest"})
        self.stage_log = stages.of(**{"barrage.stage": "log"})
        self.stage_batch = stages.of(**{"barrage.stage": "batch"})
        self.stage_write = stages.of(**{"barrage.stage": "write"})
        self.append: Series = r.histogram(
            "barrage.log.append.duration", "s", "log append calls: from the call to the log's confirmation"
        ).of()
        self.batch_size: Series = r.histogram(
            "barrage.batch.size", "{event}", "events per flushed room frame", SIZE_BOUNDS
        ).of()
        # The platform's moderation hook (server/core/moderation.py).
        self.moderation_calls: Labelled = r.counter(
            "barrage.moderation_hook.calls",
            "{call}",
            "posts reviewed by the moderation hook, by outcome (the verdict or the failure) and effect",
        ).by("barrage.moderation_hook.outcome", "barrage.moderation_hook.effect")
        self.moderation_latency: Series = r.histogram(
            "barrage.moderation_hook.duration", "s", "time a post waited for its review (failures included)"
        ).of()


class _State:
    def __init__(
        self,
        metrics: Metrics,
        tracer: trace.Tracer | None,
        node_id: str,
        messaging_system: str,
        write_ratio: float,
    ) -> None:
        self.metrics = metrics
        self.tracer = tracer
        self.node_id = node_id
        self.messaging_system = messaging_system
        self.write_ratio = write_ratio
        self.ingests: dict[tuple[str, str, str], _Ingest] = {}
        self.received = 0
        self.reads: dict[str, deque[_Read]] = {}


_state: _State | None = None


def enable(
    metrics: Metrics,
    tracer: trace.Tracer | None,
    *,
    node_id: str,
    messaging_system: str,
    write_ratio: float,
) -> None:
    """Turn the hooks on (setup.py does this)."""
    global _state, ON, TRACING  # noqa: PLW0603 - module globals are what the hot path tests
    _state = _State(metrics, tracer, node_id, messaging_system, write_ratio)
    TRACING = tracer is not None
    ON = True
    observer.install(TelemetryObserver())


def disable() -> None:
    global _state, ON, TRACING  # noqa: PLW0603 - module globals are what the hot path tests
    ON = TRACING = False
    _state = None
    observer.install(None)


# ----------------------------------------------------------------------------- helpers


def traceparent_of(ctx: SpanContext) -> str:
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def remote_context(traceparent: str, tracestate: str = "") -> otel_context.Context | None:
    """The context a W3C traceparent names (None if absent or malformed)."""
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    ctx = _PROPAGATOR.extract(carrier)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def _recording(span: Span | None) -> bool:
    return span is not None and span.is_recording()


def _links(contexts: Sequence[SpanContext]) -> list[Link]:
    seen: set[int] = set()
    links: list[Link] = []
    for ctx in contexts:
        if ctx.span_id not in seen:
            seen.add(ctx.span_id)
            links.append(Link(ctx))
            if len(links) >= MAX_LINKS:
                break
    return links


# ------------------------------------------------------------------------------ ingest


class _Ingest:
    __slots__ = ("appended", "received", "span")

    def __init__(self, received: float, span: Span | None) -> None:
        self.received = received
        self.span = span
        self.appended = False


def send_received(user_id: str, send: room_service_pb2.Send) -> None:
    """A send frame arrived on a stream (before rate limits and checks)."""
    st = _state
    if st is None:
        return
    span: Span | None = None
    if st.tracer is not None:
        room = send.room_id
        span = st.tracer.start_span(
            f"ingest {room}",
            context=remote_context(send.traceparent, send.tracestate),
            kind=SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": "barrage.v1.RoomService",
                "rpc.method": "Connect",
                MESSAGING_SYSTEM: "barrage",
                DESTINATION: room,
                OPERATION_NAME: "ingest",
                CLIENT_MSG_ID: send.client_msg_id,
                EVENT_TYPE: send.payload.WhichOneof("kind") or "",
                "enduser.id": user_id,
                NODE: st.node_id,
            },
        )
        if not span.is_recording():
            span = None
    ingests = st.ingests
    key = (user_id, send.room_id, send.client_msg_id)
    now = time.monotonic()
    if key not in ingests:
        ingests[key] = _Ingest(now, span)
        st.received += 1
        if st.received % 1024 == 0 or len(ingests) > _MAX_PENDING_INGESTS:
            _forget_abandoned(st, now)
    elif span is not None:
        span.end()  # the same send is already in flight: its answer ends the first span


def _forget_abandoned(st: _State, now: float) -> None:
    """Sends never answered (their stream died while they waited for the log): end their spans.

    The dict is in arrival order, so the oldest come first."""
    ingests = st.ingests
    while ingests:
        key, oldest = next(iter(ingests.items()))
        if now - oldest.received < _ABANDONED_S and len(ingests) <= _MAX_PENDING_INGESTS:
            return
        del ingests[key]
        if oldest.span is not None:
            oldest.span.set_attribute("error.type", "abandoned")
            oldest.span.end()


def send_answered(user_id: str, send: room_service_pb2.Send, outcome: Posted | Exception) -> None:
    """The send's SendResult was queued: OK (Posted) or refused (ApiError)."""
    st = _state
    if st is None:
        return
    reason = getattr(outcome, "reason", None)
    duplicate = bool(getattr(outcome, "duplicate", False))
    result = str(reason) if reason is not None else "duplicate" if duplicate else "ok"
    st.metrics.sends[(result,)].value += 1
    ingest = st.ingests.pop((user_id, send.room_id, send.client_msg_id), None)
    if ingest is None or ingest.span is None:
        return
    span = ingest.span
    if reason is not None:
        span.set_attribute("error.type", result)
        span.set_attribute("rpc.grpc.status_code", int(getattr(getattr(outcome, "code", 0), "value", 0)))
        span.set_status(Status(StatusCode.ERROR, str(getattr(outcome, "message", ""))[:200]))
    else:
        span.set_attribute(MESSAGE_ID, str(getattr(outcome, "event_id", "")))
        span.set_attribute(CURSOR, str(getattr(outcome, "cursor", "")))
        span.set_attribute("barrage.duplicate", bool(getattr(outcome, "duplicate", False)))
    span.end()


def moderation_reviewed(outcome: str, effect: str, seconds: float) -> None:
    """A post was reviewed: outcome allow, reject, replace, timeout, unavailable, error,
    overloaded, circuit_open or invalid; effect allowed, rejected, replaced, failed_open
    or failed_closed."""
    st = _state
    if st is None:
        return
    st.metrics.moderation_calls[(outcome, effect)].value += 1
    st.metrics.moderation_latency.record(seconds)


def continuity(what: str, n: int = 1) -> None:
    """A live-delivery continuity check failed (docs/protocol.md): `what` is `discontinuity`
    (a Kafka fetch answer not contiguous), `refetch` (asked again), `hole` (a range given up
    on) or `room_gap` (a room's live stream on this node skipped records; its subscribers resume)."""
    st = _state
    if st is not None:
        st.metrics.continuity[(what,)].value += n


# ------------------------------------------------------------------------------ append


class Appending:
    """One append call in progress."""

    __slots__ = ("kinds", "priorities", "span", "started")

    def __init__(self, started: float, span: Span | None, kinds: list[str], priorities: list[int]) -> None:
        self.started = started
        self.span = span
        self.kinds = kinds
        self.priorities = priorities


def append_started(
    user_id: str,
    room_id: str,
    payloads: Sequence[event_pb2.Payload],
    client_ids: Sequence[str],
    records: list[LogEntry],
) -> tuple[list[LogEntry], Appending]:
    """Entries are about to be appended. Returns the entries to append: when tracing, each
    carries the context of its ingest span (or of the append span), so that every node's
    receive span is its child."""
    st = _state
    now = time.monotonic()
    kinds: list[str] = [p.WhichOneof("kind") or "" for p in payloads]
    appending = Appending(now, None, kinds, [r.priority for r in records])
    if st is None:
        return records, appending
    # Which ingest (send) each entry comes from; extra entries of one post have client id "".
    owners: list[_Ingest | None] = []
    last: _Ingest | None = None
    for client_id in client_ids:
        if client_id:
            last = st.ingests.get((user_id, room_id, client_id))
            if last is not None and not last.appended:
                last.appended = True
                st.metrics.stage_ingest.record(now - last.received)
        owners.append(last)
    if st.tracer is None:
        return records, appending
    parents = [o.span.get_span_context() for o in owners if o is not None and o.span is not None]
    parent: otel_context.Context | None
    if parents:
        parent = trace.set_span_in_context(NonRecordingSpan(parents[0]))
    elif records and records[0].traceparent:
        parent = remote_context(records[0].traceparent)  # an admin publish that carried one
    elif trace.get_current_span().is_recording():
        parent = None  # the current span (an instrumented admin RPC)
    else:
        return records, appending  # the server's own events (presence, likes, tallies): not traced
    attributes: dict[str, Any] = {
        MESSAGING_SYSTEM: st.messaging_system,
        DESTINATION: room_id,
        OPERATION_TYPE: "send",
        OPERATION_NAME: "append",
        NODE: st.node_id,
    }
    if len(records) > 1:
        attributes[BATCH_COUNT] = len(records)
    span = st.tracer.start_span(
        f"append {room_id}", context=parent, kind=SpanKind.PRODUCER, attributes=attributes, links=_links(parents[1:])
    )
    if not span.is_recording():
        return records, appending
    appending.span = span
    own = traceparent_of(span.get_span_context())
    out: list[LogEntry] = []
    for record, owner in zip(records, owners, strict=True):
        if owner is None:
            out.append(dataclasses.replace(record, traceparent=own))
        elif owner.span is not None:
            out.append(dataclasses.replace(record, traceparent=traceparent_of(owner.span.get_span_context())))
        else:
            out.append(record)  # its send was not sampled: neither is its journey through the nodes
    return out, appending


def append_done(appending: Appending, results: Sequence[AppendResult]) -> None:
    st = _state
    if st is None:
        return
    m = st.metrics
    m.append.record(time.monotonic() - appending.started)
    for kind, priority, result in zip(appending.kinds, appending.priorities, results, strict=False):
        if not result.duplicate:
            m.events_in[kind, PRIORITY.get(priority, str(priority))].value += 1
    span = appending.span
    if span is not None:
        if len(results) == 1:
            span.set_attribute(POSITION, results[0].record.position)
        span.set_attribute("barrage.duplicates", sum(1 for r in results if r.duplicate))
        span.end()


def append_failed(appending: Appending, error: BaseException) -> None:
    st = _state
    if st is None:
        return
    st.metrics.append.record(time.monotonic() - appending.started)
    span = appending.span
    if span is not None:
        span.set_attribute("error.type", type(error).__name__)
        span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
        span.end()


# -------------------------------------------------------------------------------- read


class _Read:
    __slots__ = ("kind", "position", "priority", "publish_ns", "read", "span")

    def __init__(
        self, position: int, read: float, publish_ns: int, kind: str, priority: int, span: Span | None
    ) -> None:
        self.position = position
        self.read = read
        self.publish_ns = publish_ns
        self.kind = kind
        self.priority = priority
        self.span = span


def record_read(record: LogRecord, event: event_pb2.Event, kind: str | None, epoch_of: Callable[[str], str]) -> None:
    """A live record reached this node's listener for a room it serves (once per node)."""
    st = _state
    if st is None:
        return
    now = time.monotonic()
    wall = time.time_ns()
    published = event.publish_time
    publish_ns = published.seconds * 1_000_000_000 + published.nanos
    m = st.metrics
    m.stage_log.record(max(wall - publish_ns, 0) / 1e9)
    priority = record.priority
    m.events_read[(PRIORITY.get(priority, str(priority)),)].value += 1
    span: Span | None = None
    room = record.room_id
    if st.tracer is not None and record.traceparent:
        parent = remote_context(record.traceparent)
        if parent is not None:
            span = st.tracer.start_span(
                f"receive {room}",
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes={
                    MESSAGING_SYSTEM: st.messaging_system,
                    DESTINATION: room,
                    OPERATION_TYPE: "receive",
                    OPERATION_NAME: "read",
                    MESSAGE_ID: event.event_id,
                    CURSOR: encode_cursor(epoch_of(room), record.position),
                    POSITION: record.position,
                    EVENT_TYPE: kind or "",
                    PRIORITY_ATTR: PRIORITY.get(priority, str(priority)),
                    NODE: st.node_id,
                },
                start_time=wall,
            )
            if not span.is_recording():
                span = None
    reads = st.reads.get(room)
    if reads is None:
        reads = st.reads[room] = deque()
    reads.append(_Read(record.position, now, publish_ns, kind or "", priority, span))
    if len(reads) > _MAX_READS_PER_ROOM:  # never flushed (cannot happen while the room is served)
        stale = reads.popleft()
        if stale.span is not None:
            stale.span.end()


def fold_skipped(fold: str, kind: str) -> None:
    """A fold (room_state, checkpoint, insights) skipped an event it could not apply."""
    st = _state
    if st is not None:
        st.metrics.fold_skipped[(fold, kind)].value += 1


def channel_dropped(room_id: str) -> None:
    """The node stopped serving a room: forget what it read and never flushed."""
    st = _state
    if st is None:
        return
    for read in st.reads.pop(room_id, ()):
        if read.span is not None:
            read.span.end()


# ------------------------------------------------------------------------------- flush


class Stamp:
    """Attached to a room frame at flush: what its writes must measure (one per frame)."""

    __slots__ = (
        "flush_mono", "flush_ns", "lag_s", "metrics", "node_id", "priorities", "ratio", "room_id", "span", "tracer",
    )  # fmt: skip

    def __init__(
        self,
        metrics: Metrics,
        room_id: str,
        flush_mono: float,
        flush_ns: int,
        lag_s: float,
        priorities: dict[str, int],
        span: Span | None,
        tracer: trace.Tracer | None,
        ratio: float,
    ) -> None:
        self.metrics = metrics
        self.room_id = room_id
        self.flush_mono = flush_mono
        self.flush_ns = flush_ns
        self.lag_s = lag_s
        """Publish time of the frame's oldest event to the flush."""
        self.priorities = priorities
        """Events in the frame by priority name (what a shed drops)."""
        self.span = span
        self.tracer = tracer
        self.ratio = ratio
        self.node_id = _state.node_id if _state is not None else ""

    def written(self, queued_bytes: int) -> None:
        """The frame was handed to one subscriber's stream (per subscriber: keep it cheap).

        Every delivery is counted; the latency histograms take every LATENCY_EVERY-th
        one (a counter increment and a mask test for the others)."""
        cell = self.metrics.frames_written
        cell.value = n = cell.value + 1
        if self.span is not None and random() < self.ratio:
            self._write_span(queued_bytes)
        if n & _LATENCY_MASK:
            return
        wait = time.monotonic() - self.flush_mono
        self.metrics.stage_write.record(wait)
        self.metrics.delivery.record(self.lag_s + wait)

    def _write_span(self, queued_bytes: int) -> None:
        if self.span is None or self.tracer is None:
            return
        wait_ns = int((time.monotonic() - self.flush_mono) * 1e9)
        span = self.tracer.start_span(
            f"write {self.room_id}",
            context=trace.set_span_in_context(NonRecordingSpan(self.span.get_span_context())),
            kind=SpanKind.PRODUCER,
            attributes={DESTINATION: self.room_id, OPERATION_TYPE: "send", OPERATION_NAME: "write",
                        "barrage.outbox.bytes": queued_bytes, NODE: self.node_id},
            start_time=self.flush_ns,
        )  # fmt: skip
        span.end(self.flush_ns + wait_ns)

    def shed(self) -> None:
        """The frame was shed from a slow stream's queue (its events reported as omitted)."""
        for priority, count in self.priorities.items():
            self.metrics.events_dropped.add(count, **{PRIORITY_ATTR: priority, "barrage.reason": "shed"})

    def lagged(self) -> None:
        """A critical frame overflowed a stream's queue: the subscription must resume."""
        self.metrics.lagged.add(1)

    def queued(self) -> None:
        """The flush queued the frame on every subscriber: the flush span ends."""
        if self.span is not None and self.span.is_recording():
            self.span.end()


def flushed(ch: Channel, full: Frame, sampled: Frame) -> tuple[Frame, Frame]:
    """A room flushed (once per room per tick): returns the frames, stamped for their writes."""
    st = _state
    if st is None:
        return full, sampled
    now = time.monotonic()
    wall = time.time_ns()
    m = st.metrics
    reads = st.reads.get(ch.room_id)
    taken: list[_Read] = []
    last = full.last_position
    while reads and reads[0].position <= last:
        taken.append(reads.popleft())
    subscribers = ch.subscribers
    n_subs = len(subscribers)
    full_positions = {position for position, _ in full.entries}
    if sampled is full:
        n_full, n_viewers = n_subs, 0
        sampled_positions = full_positions
    else:
        n_full = sum(1 for sub in subscribers if sub.full)
        n_viewers = n_subs - n_full
        sampled_positions = {position for position, _ in sampled.entries}
    m.batch_size.record(len(full.entries))
    full_counts: dict[str, int] = {}
    sampled_counts: dict[str, int] = {}
    spans: list[Span] = []
    oldest = wall
    for read in taken:
        m.stage_batch.record(now - read.read)
        if read.span is not None:
            read.span.end(wall)
            spans.append(read.span)
        if read.position not in full_positions:
            continue  # an ephemeral value replaced within the tick
        oldest = min(oldest, read.publish_ns)
        priority = PRIORITY.get(read.priority, str(read.priority))
        full_counts[priority] = full_counts.get(priority, 0) + 1
        delivered = n_full
        if read.position in sampled_positions:
            delivered += n_viewers
            sampled_counts[priority] = sampled_counts.get(priority, 0) + 1
        elif n_viewers:
            m.events_sampled[(priority,)].value += n_viewers
        if delivered:
            m.events_out[read.kind, priority].value += delivered
    lag = max(wall - oldest, 0) / 1e9
    span: Span | None = None
    if spans and st.tracer is not None:
        contexts = [s.get_span_context() for s in spans]
        span = st.tracer.start_span(
            f"flush {ch.room_id}",
            context=trace.set_span_in_context(NonRecordingSpan(contexts[0])),
            kind=SpanKind.INTERNAL,
            attributes={
                DESTINATION: ch.room_id,
                OPERATION_NAME: "flush",
                BATCH_COUNT: len(full.entries),
                "barrage.subscribers": n_subs,
                "barrage.omitted_for_viewers": sampled.event_count - len(sampled.entries),
                CURSOR: full.last_cursor,
                NODE: st.node_id,
            },
            links=_links(contexts),
            start_time=wall,
        )
        if not span.is_recording():
            span = None
    stamp = Stamp(m, ch.room_id, now, wall, lag, full_counts, span, st.tracer, st.write_ratio)
    stamped_full = dataclasses.replace(full, stamp=stamp)
    if sampled is full:
        return stamped_full, stamped_full
    viewer_stamp = Stamp(m, ch.room_id, now, wall, lag, sampled_counts, span, st.tracer, st.write_ratio)
    return stamped_full, dataclasses.replace(sampled, stamp=viewer_stamp)


# ---------------------------------------------------------------------------- observer


class TelemetryObserver(observer.Observer):
    """The core's reports (server/core/observer.py), traced and measured by the functions above."""

    def send_received(self, user_id: str, send: room_service_pb2.Send) -> None:
        send_received(user_id, send)

    def send_answered(self, user_id: str, send: room_service_pb2.Send, outcome: Posted | Exception) -> None:
        send_answered(user_id, send, outcome)

    def moderation_reviewed(self, outcome: str, effect: str, seconds: float) -> None:
        moderation_reviewed(outcome, effect, seconds)

    def append_started(
        self,
        user_id: str,
        room_id: str,
        payloads: Sequence[event_pb2.Payload],
        client_ids: Sequence[str],
        records: list[LogEntry],
    ) -> tuple[list[LogEntry], object | None]:
        return append_started(user_id, room_id, payloads, client_ids, records)

    def append_done(self, appending: object, results: Sequence[AppendResult]) -> None:
        if isinstance(appending, Appending):
            append_done(appending, results)

    def append_failed(self, appending: object, error: BaseException) -> None:
        if isinstance(appending, Appending):
            append_failed(appending, error)

    def record_read(
        self, record: LogRecord, event: event_pb2.Event, kind: str | None, epoch_of: Callable[[str], str]
    ) -> None:
        record_read(record, event, kind, epoch_of)

    def flushed(self, ch: Channel, full: Frame, sampled: Frame) -> tuple[Frame, Frame]:
        return flushed(ch, full, sampled)

    def channel_dropped(self, room_id: str) -> None:
        channel_dropped(room_id)

    def continuity(self, what: str, n: int = 1) -> None:
        continuity(what, n)

    def fold_skipped(self, fold: str, kind: str) -> None:
        fold_skipped(fold, kind)
