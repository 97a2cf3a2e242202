"""What telemetry costs on the fan-out hot path, measured in-process (no network noise).

    python -m barrage.server.telemetry.bench [--subscribers 200] [--events 2000] [--batch 1]

Drives the real hub and outboxes: `events` records (decoded once, as the gateway does)
fan out to `subscribers` outboxes, `batch` events per flush, and every outbox is drained
as the stream writer would. Prints CPU µs per delivery for telemetry off, metrics only,
and metrics plus tracing (every message sampled, per-subscriber writes at the default
ratio), then the same with OTEL-style 1 % message sampling. The gRPC write itself
(30-40 µs of CPU) is not included, so these figures are the hooks' share of the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from barrage.server.core.hub import Hub
from barrage.server.core.outbox import Frame, Outbox
from barrage.server.log.base import LogRecord
from barrage.server.telemetry import hooks
from barrage.server.telemetry.hooks import traceparent_of
from barrage.server.telemetry.hot import Registry
from barrage.v1 import event_pb2


class _Discard(SpanExporter):
    def export(self, spans: object) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class _Sub:
    __slots__ = ("full", "min_position", "outbox", "user_id")

    def __init__(self) -> None:
        self.min_position = -1
        self.full = True
        self.user_id = ""
        self.outbox = Outbox(1 << 30, 1 << 20)

    def deliver(self, frame: Frame) -> None:
        self.outbox.put_frame(frame)

    def may_read(self, audience: object) -> bool:
        return False  # the bench sends no whispers


async def _run(subscribers: int, events: int, batch: int, provider: TracerProvider | None) -> float:
    hub = Hub(epoch_of=lambda _room: "e", interval_s=0.0, max_frame_bytes=1 << 20, recent_per_room=64)
    room = "bench"
    ch = hub.channel(room)
    subs = [_Sub() for _ in range(subscribers)]
    for sub in subs:
        hub.attach(ch, sub)
    tracer = provider.get_tracer("bench") if provider is not None else None
    payloads = []
    for i in range(events):
        traceparent = ""
        if tracer is not None:
            root = tracer.start_span("ingest")
            traceparent = traceparent_of(root.get_span_context())
            root.end()
        event = event_pb2.Event(
            room_id=room,
            event_id=uuid.uuid4().hex,
            traceparent=traceparent,
            payload=event_pb2.Payload(comment=event_pb2.Comment(text=f"comment {i}")),
        )
        event.publish_time.FromNanoseconds(time.time_ns())
        payloads.append((event.SerializeToString(), traceparent))
    start = time.process_time()
    position = 0
    for first in range(0, events, batch):
        items = []
        for data, traceparent in payloads[first : first + batch]:
            record = LogRecord(room, position, data, event_pb2.PRIORITY_NORMAL, "", traceparent)
            position += 1
            event = event_pb2.Event.FromString(record.payload)  # the gateway decodes once per node
            kind = event.payload.WhichOneof("kind")
            if hooks.ON:
                hooks.record_read(record, event, kind, hub._epoch_of)
            items.append((record, None))
        hub.on_records(items)
        if ch.timer is not None:
            hub.flush(ch)
        for sub in subs:
            while sub.outbox.size:
                await sub.outbox.next_write()
    return (time.process_time() - start) * 1e6 / (events * subscribers)


def measure(subscribers: int, events: int, batch: int, repeat: int = 3) -> dict[str, float]:
    def best(setup: str) -> float:
        results = []
        for _ in range(repeat):
            provider: TracerProvider | None = None
            if setup != "off":
                if setup.startswith("tracing"):
                    sampler = ParentBased(TraceIdRatioBased(0.01)) if setup.endswith("1%") else None
                    provider = TracerProvider(resource=Resource.create({}), sampler=sampler)
                    provider.add_span_processor(BatchSpanProcessor(_Discard()))
                metrics = hooks.Metrics(Registry())
                tracer = provider.get_tracer("barrage.server") if provider is not None else None
                hooks.enable(metrics, tracer, node_id="bench", messaging_system="bench", write_ratio=0.01)
            try:
                results.append(asyncio.run(_run(subscribers, events, batch, provider)))
            finally:
                hooks.disable()
                if provider is not None:
                    provider.shutdown()
        return round(min(results), 3)

    return {setup: best(setup) for setup in ("off", "metrics", "tracing", "tracing 1%")}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1, help="events per flush")
    args = parser.parse_args()
    figures = measure(args.subscribers, args.events, args.batch)
    print(json.dumps({"subscribers": args.subscribers, "events": args.events, "batch": args.batch,
                      "cpu_us_per_delivery": figures}))  # fmt: skip
