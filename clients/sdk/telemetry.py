"""The SDK's side of tracing and metrics (docs/observability.md).

Uses the OpenTelemetry API only: the application chooses the SDK, exporters and
sampler (ClientOptions.tracer_provider / meter_provider, else the global providers;
with neither set, everything here is a no-op).

- `send {room}` (PRODUCER): from send() to its ack. Its W3C context is what
  Send.traceparent carries to the server (unless the caller passed its own), so the
  server's ingest, append and delivery spans join the sender's trace.
- `receive {room}` (CONSUMER): one per live event received, a child of the context the
  event carries (Event.traceparent), so a receiver's span lands in the sender's trace.
- `barrage.client.receive.latency` (histogram, s): publish time to receipt, per live
  event. Events published before the subscription's (re)join was answered are history
  being replayed and are left out of both.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from barrage.v1 import event_pb2

if TYPE_CHECKING:
    from barrage.clients.sdk.items import Ack
    from barrage.clients.sdk.options import ClientOptions
    from barrage.v1 import room_service_pb2

SCOPE = "barrage.sdk"
_PROPAGATOR = TraceContextTextMapPropagator()
_LATENCY_BOUNDS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0]


class ClientTelemetry:
    def __init__(self, options: ClientOptions) -> None:
        self._own_provider = options.tracer_provider
        provider = options.tracer_provider or trace.get_tracer_provider()
        self._tracer = provider.get_tracer(SCOPE)
        meter = (options.meter_provider or metrics.get_meter_provider()).get_meter(SCOPE)
        self._latency = meter.create_histogram(
            "barrage.client.receive.latency",
            unit="s",
            description="publish time of a live event to its receipt by the SDK",
            explicit_bucket_boundaries_advisory=_LATENCY_BOUNDS_S,
        )
        self._joined_at_ns: dict[str, int] = {}

    def _tracing(self) -> bool:
        if self._own_provider is not None:
            return True
        provider = trace.get_tracer_provider()
        return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)

    # ------------------------------------------------------------------ sends

    def send_started(self, room_id: str, payload: event_pb2.Payload) -> tuple[Span, str, str] | None:
        """A span for a send, with the traceparent and tracestate it travels with (None: not tracing)."""
        if not self._tracing():
            return None
        span = self._tracer.start_span(
            f"send {room_id}",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "barrage",
                "messaging.destination.name": room_id,
                "messaging.operation.type": "send",
                "messaging.operation.name": "send",
                "barrage.event.type": payload.WhichOneof("kind") or "",
            },
        )
        if not span.is_recording():
            span.end()
            return None
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
        return span, carrier.get("traceparent", ""), carrier.get("tracestate", "")

    def send_done(self, span: Span, ack: Ack) -> None:
        span.set_attribute("messaging.message.id", ack.event_id)
        span.set_attribute("barrage.client_msg_id", ack.client_msg_id)
        span.set_attribute("barrage.cursor", ack.cursor)
        span.set_attribute("barrage.duplicate", ack.duplicate)
        span.end()

    def send_failed(self, span: Span, error: BaseException) -> None:
        span.set_attribute("error.type", str(getattr(error, "reason", "") or type(error).__name__))
        span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
        span.end()

    # --------------------------------------------------------------- receives

    def joined(self, room_id: str) -> None:
        """The server answered a (re)join: events published before now are history."""
        self._joined_at_ns[room_id] = time.time_ns()

    def received(self, batch: room_service_pb2.EventBatch) -> None:
        """An EventBatch arrived for a joined room (called before its events are handed on)."""
        if not batch.events:
            return
        now = time.time_ns()
        joined = self._joined_at_ns.get(batch.room_id, 0)
        tracing = self._tracing()
        room = batch.room_id
        for event in batch.events:
            published = event.publish_time.seconds * 1_000_000_000 + event.publish_time.nanos
            if published < joined:
                continue  # replayed history, not a live delivery
            latency_s = max(now - published, 0) / 1e9
            self._latency.record(latency_s)
            if not tracing or not event.traceparent:
                continue
            carrier = {"traceparent": event.traceparent}
            if event.tracestate:
                carrier["tracestate"] = event.tracestate
            parent = _PROPAGATOR.extract(carrier)
            if not trace.get_current_span(parent).get_span_context().is_valid:
                continue
            attributes: dict[str, str | int | float] = {
                "messaging.system": "barrage",
                "messaging.destination.name": room,
                "messaging.operation.type": "receive",
                "messaging.operation.name": "receive",
                "messaging.message.id": event.event_id,
                "barrage.cursor": event.cursor,
                "barrage.event.type": event.payload.WhichOneof("kind") or "",
                "barrage.latency_s": latency_s,
            }
            if len(batch.events) > 1:
                attributes["messaging.batch.message_count"] = len(batch.events)
            span = self._tracer.start_span(
                f"receive {room}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes, start_time=now
            )
            span.end()
