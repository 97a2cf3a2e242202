"""Turn telemetry on for a node, from its settings and the standard OTEL_* variables.

What is on (nothing, by default — the hooks then cost a boolean test):

- traces, if `--trace-file PATH` (OTLP JSON lines, no collector) or `OTEL_TRACES_EXPORTER`
  (otlp, console; comma-separated) or an OTLP endpoint variable is set
  (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`);
- metrics, if `--metrics-listen HOST:PORT` (Prometheus scrape endpoint, /metrics) or
  `OTEL_METRICS_EXPORTER` (otlp, prometheus, console) or an OTLP endpoint variable
  (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`) is set.

`OTEL_SDK_DISABLED=true` turns everything off. The SDK itself reads the rest as users
expect: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)`,
`OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_*` (endpoint, headers, protocol grpc or
http/protobuf, timeout), `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_EXPORTER_PROMETHEUS_HOST/PORT`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics as metrics_api
from opentelemetry import trace
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from prometheus_client import CollectorRegistry, start_http_server

from barrage.server.telemetry import hooks
from barrage.server.telemetry.hot import Registry
from barrage.server.telemetry.otlpjson import OtlpJsonFileExporter
from barrage.server.telemetry.readers import HotPeriodicReader, HotPrometheusReader, HotReader

if TYPE_CHECKING:
    from barrage.server.config import Settings
    from barrage.server.core.gateway import Gateway
    from barrage.server.core.session import Session

log = logging.getLogger(__name__)

TRACER_NAME = "barrage.server"
_FILE_FLUSH_MS = 500
"""How often the --trace-file exporter writes (spans are batched in memory meanwhile)."""


def _names(value: str | None) -> list[str]:
    return [n.strip().lower() for n in (value or "").split(",") if n.strip()]


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _protocol(env: Mapping[str, str], signal: str) -> str:
    return (
        env.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    ).strip()


def _otlp_span_exporter(env: Mapping[str, str]) -> SpanExporter:
    if _protocol(env, "TRACES").startswith("http"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

        return HttpSpanExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _otlp_metric_reader(env: Mapping[str, str]) -> MetricReader:
    if _protocol(env, "METRICS").startswith("http"):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter

        return HotPeriodicReader(HttpMetricExporter())
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    return HotPeriodicReader(OTLPMetricExporter())


def split_listen(listen: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep:
        host, port = default_host, listen
    try:
        return host.strip("[]") or default_host, int(port)
    except ValueError:
        raise SystemExit(f"metrics address must be HOST:PORT, not {listen!r}") from None


@dataclass
class Telemetry:
    """What setup() turned on; `shutdown()` flushes and stops it."""

    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    registry: Registry | None = None
    metrics: hooks.Metrics | None = None
    metrics_address: tuple[str, int] | None = None
    """Where the Prometheus endpoint listens (the port actually bound)."""
    _servers: list[Any] = field(default_factory=list)

    @property
    def tracing(self) -> bool:
        return self.tracer_provider is not None

    def server_interceptors(self) -> list[Any]:
        """The OpenTelemetry aio server interceptor, for the unary admin RPCs only.

        RoomService.Connect is excluded: one span per long-lived stream would never end
        (its messages have spans of their own, from the hooks); health checks and
        reflection are excluded as noise.
        """
        if self.tracer_provider is None:
            return []
        from opentelemetry.instrumentation.grpc import aio_server_interceptor
        from opentelemetry.instrumentation.grpc.filters import any_of, negate, service_name

        excluded = any_of(
            service_name("barrage.v1.RoomService"),
            service_name("grpc.health.v1.Health"),
            service_name("grpc.reflection.v1alpha.ServerReflection"),
            service_name("grpc.reflection.v1.ServerReflection"),
        )
        interceptor = aio_server_interceptor(tracer_provider=self.tracer_provider, filter_=negate(excluded))  # type: ignore[no-untyped-call]
        return [interceptor]

    def observe(self, sessions: Collection[Session], gateway: Gateway) -> None:
        """Gauges read from a running node when metrics are collected: its open streams
        (a live collection, read at each collection) and its gateway."""
        registry = self.registry
        if registry is None:
            return
        hub = gateway.hub
        room_log = gateway.room_log

        def outbox_bytes() -> Iterable[tuple[dict[str, str], float]]:
            sizes = [session.outbox.size for session in list(sessions)]
            return [
                ({"barrage.aggregation": "sum"}, sum(sizes)),
                ({"barrage.aggregation": "max"}, max(sizes, default=0)),
            ]

        def lag() -> Iterable[tuple[dict[str, str], float]]:
            value = room_log.consumer_lag()
            return [] if value is None else [({}, value)]

        registry.gauge("barrage.connections", "{stream}", "open Connect streams", lambda: [({}, len(sessions))])
        registry.gauge("barrage.rooms", "{room}", "rooms this node serves", lambda: [({}, len(hub.channels))])
        registry.gauge(
            "barrage.subscribers",
            "{subscription}",
            "room subscriptions receiving live events",
            lambda: [({}, hub.subscribers)],
        )
        registry.gauge(
            "barrage.outbox.queued",
            "By",
            "bytes queued for writing across streams (sum) and on the fullest one (max)",
            outbox_bytes,
        )
        registry.gauge(
            "barrage.log.consumer.lag",
            "{record}",
            "Kafka: records in watched partitions not yet read by this node",
            lag,
        )

    def shutdown(self) -> None:
        hooks.disable()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()


def setup(
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    span_exporters: Sequence[SpanExporter] = (),
    span_processors: Sequence[SpanProcessor] = (),
    metric_readers: Sequence[MetricReader] = (),
    install_global: bool = False,
) -> Telemetry:
    """Configure traces and metrics for a node and turn the hooks on (see the module docstring).

    The extra exporters, processors and readers are for tests and embedding. With
    `install_global`, the providers also become OpenTelemetry's global ones (a server
    process; never in a test process, where they can be set only once).
    """
    env = os.environ if env is None else env
    telemetry = Telemetry()
    if _truthy(env.get("OTEL_SDK_DISABLED")):
        return telemetry
    attributes: dict[str, str] = {"service.instance.id": settings.node_id, "service.namespace": "barrage"}
    if not env.get("OTEL_SERVICE_NAME") and "service.name=" not in env.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        attributes["service.name"] = "barrage"
    resource = Resource.create(attributes)

    # ---- traces
    exporters: list[SpanExporter] = list(span_exporters)
    trace_names = _names(env.get("OTEL_TRACES_EXPORTER"))
    if not trace_names and (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        trace_names = ["otlp"]
    for name in trace_names:
        if name == "otlp":
            exporters.append(_otlp_span_exporter(env))
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name != "none":
            log.warning("OTEL_TRACES_EXPORTER=%s is not supported here (otlp, console, none)", name)
    processors: list[SpanProcessor] = [BatchSpanProcessor(e) for e in exporters]
    if settings.trace_file:
        processors.append(
            BatchSpanProcessor(OtlpJsonFileExporter(settings.trace_file), schedule_delay_millis=_FILE_FLUSH_MS)
        )
    processors.extend(span_processors)
    if processors:
        provider = TracerProvider(resource=resource)  # sampler: OTEL_TRACES_SAMPLER, default parent-based always-on
        for processor in processors:
            provider.add_span_processor(processor)
        telemetry.tracer_provider = provider
        if install_global:
            trace.set_tracer_provider(provider)

    # ---- metrics
    readers: list[MetricReader] = list(metric_readers)
    metric_names = _names(env.get("OTEL_METRICS_EXPORTER"))
    if not metric_names and (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")):
        metric_names = ["otlp"]
    prometheus_at: list[tuple[str, int]] = []
    if settings.metrics_listen:
        prometheus_at.append(split_listen(settings.metrics_listen))
    for name in metric_names:
        if name == "otlp":
            readers.append(_otlp_metric_reader(env))
        elif name == "prometheus":
            host = env.get("OTEL_EXPORTER_PROMETHEUS_HOST", "localhost")
            prometheus_at.append((host, int(env.get("OTEL_EXPORTER_PROMETHEUS_PORT", "9464"))))
        elif name == "console":
            readers.append(HotPeriodicReader(ConsoleMetricExporter()))
        elif name != "none":
            log.warning("OTEL_METRICS_EXPORTER=%s is not supported here (otlp, prometheus, console, none)", name)
    for host, port in prometheus_at[:1]:
        registry = CollectorRegistry()
        readers.append(HotPrometheusReader(registry=registry))
        try:
            server, _thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise SystemExit(f"cannot serve metrics on {host}:{port}: {exc}") from exc
        telemetry._servers.append(server)
        telemetry.metrics_address = (host, int(server.server_port))
        log.info("Prometheus metrics on http://%s:%d/metrics", host, server.server_port)
    hot = Registry()
    telemetry.registry = hot
    telemetry.metrics = hooks.Metrics(hot)
    if readers:
        for reader in readers:
            if isinstance(reader, HotReader):
                reader.attach_registry(hot, resource)
        telemetry.meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        # An SDK instrument that always reports, so that every collection reaches the readers
        # (the SDK skips a reader's _receive_metrics when its own instruments have nothing).
        started = time.monotonic()
        telemetry.meter_provider.get_meter(TRACER_NAME).create_observable_gauge(
            "process.uptime",
            callbacks=[lambda _options: [Observation(time.monotonic() - started)]],
            unit="s",
            description="seconds since the node started",
        )
        if install_global:
            metrics_api.set_meter_provider(telemetry.meter_provider)

    if telemetry.tracer_provider is None and telemetry.meter_provider is None:
        return telemetry
    tracer = telemetry.tracer_provider.get_tracer(TRACER_NAME) if telemetry.tracer_provider is not None else None
    hooks.enable(
        telemetry.metrics,
        tracer,
        node_id=settings.node_id,
        messaging_system="kafka" if settings.log.startswith("kafka://") else "barrage_embedded",
        write_ratio=settings.delivery_trace_ratio,
    )
    return telemetry
