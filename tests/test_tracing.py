"""One message's spans, from the SDK's send to the SDK's receive, through real servers.

Servers are real `barrage serve` processes writing `--trace-file` (OTLP JSON lines);
the SDK clients run here with an in-memory exporter. Both are read into the same
SpanRecord model (server/telemetry/otlpjson.py), and the chain is checked: who is
whose parent, who links to whom, and that the hops' times line up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from barrage.clients.admin import AdminClient
from barrage.clients.sdk import Ack, Client, ClientOptions, Subscription
from barrage.server.telemetry.logs import JsonFormatter, TraceContextFilter
from barrage.server.telemetry.otlpjson import OtlpJsonFileExporter, SpanRecord, decode_request, encode_spans, read_spans
from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs
from tests.cluster import connect
from tests.kafka_broker import running_broker
from tests.server_process import ServerProcess, free_port
from tests.test_metrics import scrape, value

SLACK_NS = 1_000_000
"""Clock slack allowed between processes' time.time_ns() readings (same machine: tiny)."""


class ClientTracing:
    """A client application's OpenTelemetry SDK: spans in memory (and optionally a file)."""

    def __init__(self, service: str, file: Path | None = None) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        if file is not None:
            self.provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFileExporter(file)))
        self.metrics = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metrics])

    def options(self) -> ClientOptions:
        return ClientOptions(tracer_provider=self.provider, meter_provider=self.meter_provider)

    def spans(self) -> list[SpanRecord]:
        return list(decode_request(encode_spans(self.exporter.get_finished_spans())))

    def shutdown(self) -> None:
        self.provider.shutdown()
        self.meter_provider.shutdown()


@dataclass
class Journey:
    """What one traced comment left behind."""

    ack: Ack
    event: event_pb2.Event
    spans: list[SpanRecord]
    sender: ClientTracing
    viewer: ClientTracing

    def one(self, name: str, node: str | None = None, **attributes: object) -> SpanRecord:
        found = self.all(name, node, **attributes)
        assert len(found) == 1, (name, node, attributes, [(s.name, s.node) for s in self.spans])
        return found[0]

    def all(self, name: str, node: str | None = None, **attributes: object) -> list[SpanRecord]:
        return [
            s
            for s in self.spans
            if s.name == name
            and (node is None or s.node == node)
            and all(s.attributes.get(k.replace("__", ".")) == v for k, v in attributes.items())
        ]


async def _first_comment(sub: Subscription, timeout: float = 15.0) -> event_pb2.Event:
    async def first() -> event_pb2.Event:
        async for item in sub:
            if isinstance(item, event_pb2.Event) and item.payload.WhichOneof("kind") == "comment":
                return item
        raise AssertionError("subscription ended")

    return await asyncio.wait_for(first(), timeout)


async def wait_spans(
    paths: Sequence[Path], ready: Callable[[list[SpanRecord]], bool], timeout: float = 15.0
) -> list[SpanRecord]:
    """The servers' spans, once `ready` says they are all there (files are written every 0.5 s)."""
    deadline = time.monotonic() + timeout
    spans: list[SpanRecord] = []
    while time.monotonic() < deadline:
        spans = read_spans([p for p in paths if p.exists()])
        if ready(spans):
            return spans
        await asyncio.sleep(0.2)
    raise AssertionError(f"spans never complete: {sorted((s.name, s.node) for s in spans)}")


def traced_server(data: Path, trace_file: Path, log_url: str | None = None, *extra: str) -> ServerProcess:
    args = ("--trace-file", str(trace_file), "--delivery-trace-ratio", "1", *extra)
    return ServerProcess(data, log_url=log_url, args=args)


async def send_one_comment(
    sender_node: ServerProcess,
    viewer_node: ServerProcess,
    trace_files: Sequence[Path],
    room: str,
    client_files: tuple[Path | None, Path | None] = (None, None),
) -> Journey:
    """A viewer joins on `viewer_node`, a sender on `sender_node` sends one comment; every span."""
    async with AdminClient(sender_node.target, sender_node.token("ops", role="service")) as admin:
        await admin.create_room(room)
    sender_tracing = ClientTracing("sender-app", client_files[0])
    viewer_tracing = ClientTracing("viewer-app", client_files[1])
    try:
        viewer = Client(viewer_node.target, viewer_node.token("bob"), options=viewer_tracing.options())
        sender = Client(sender_node.target, sender_node.token("alice"), options=sender_tracing.options())
        async with viewer, sender:
            watching = await viewer.join(room)
            echo = await sender.join(room)
            ack = await sender.send(room, "这个多少钱？")
            event = await _first_comment(watching)
            # Both nodes serve a subscriber until each has written the comment: a sender
            # that left first would leave its node nothing to flush (no write span there).
            await _first_comment(echo)
        nodes = {sender_node.target, viewer_node.target}

        def complete(spans: list[SpanRecord]) -> bool:
            receives = {
                s.node
                for s in spans
                if s.name == f"receive {room}" and s.attributes.get("barrage.cursor") == ack.cursor
            }
            writes = {s.node for s in spans if s.name == f"write {room}"}
            return len(receives) == len(nodes) and len(writes) == len(nodes)

        server_spans = await wait_spans(trace_files, complete)
        return Journey(
            ack, event, server_spans + sender_tracing.spans() + viewer_tracing.spans(), sender_tracing, viewer_tracing
        )
    finally:
        sender_tracing.shutdown()
        viewer_tracing.shutdown()


def check_chain(j: Journey, room: str, sender_node: str, viewer_node: str) -> None:
    """The span tree of one comment, and that its hops' times line up."""
    ack = j.ack
    send = j.one(f"send {room}", "sender-app")
    assert send.kind == "producer" and send.attributes["messaging.message.id"] == ack.event_id
    assert send.attributes["barrage.cursor"] == ack.cursor
    trace_id = send.trace_id

    ingest = j.one(f"ingest {room}", sender_node)
    assert (ingest.trace_id, ingest.parent_id, ingest.kind) == (trace_id, send.span_id, "server")
    assert ingest.attributes["messaging.message.id"] == ack.event_id
    assert ingest.attributes["barrage.cursor"] == ack.cursor
    assert ingest.attributes["rpc.system"] == "grpc" and ingest.attributes["rpc.method"] == "Connect"

    append = j.one(f"append {room}", sender_node)
    assert (append.trace_id, append.parent_id, append.kind) == (trace_id, ingest.span_id, "producer")
    assert append.attributes["messaging.destination.name"] == room

    # Each node that serves the room reads the record; its context (the ingest span's)
    # came through the log record (Kafka headers on the Kafka log).
    reads: dict[str, SpanRecord] = {}
    first_writes: dict[str, SpanRecord] = {}
    for node in {sender_node, viewer_node}:
        read = reads[node] = j.one(f"receive {room}", node, barrage__cursor=ack.cursor)
        assert (read.trace_id, read.parent_id, read.kind) == (trace_id, ingest.span_id, "consumer")
        assert read.attributes["messaging.message.id"] == ack.event_id
        # The flush that carried it: the batch span links to the event's receive span.
        flush = next(s for s in j.all(f"flush {room}", node) if read.span_id in {link.span_id for link in s.links})
        assert flush.parent_id == read.span_id  # the first (here: only) event of its batch
        assert int(flush.attributes["messaging.batch.message_count"]) >= 1  # type: ignore[call-overload]
        writes = [w for w in j.all(f"write {room}", node) if w.parent_id == flush.span_id]
        assert writes, f"no sampled write on {node}"
        first_writes[node] = min(writes, key=lambda w: w.end_ns)
        # Times: the append starts inside the ingest; the node reads after the append
        # began; its receive span is the batch wait and ends where the flush starts;
        # writes start at the flush.
        assert ingest.start_ns <= append.start_ns <= append.end_ns <= ingest.end_ns
        assert read.start_ns >= append.start_ns - SLACK_NS
        assert read.end_ns == flush.start_ns
        for write in writes:
            assert write.start_ns == flush.start_ns <= write.end_ns

    # The viewer's SDK: a receive span in the sender's trace, after the server wrote it.
    received = j.one(f"receive {room}", "viewer-app")
    assert (received.trace_id, received.parent_id, received.kind) == (trace_id, send.span_id, "consumer")
    assert received.attributes["messaging.message.id"] == ack.event_id
    read, write = reads[viewer_node], first_writes[viewer_node]
    assert received.start_ns >= write.end_ns - SLACK_NS
    # Durations add up: the hops from the append's start (the event's publish time) to
    # the client's receipt account for the latency the client measured.
    hops_ns = (
        (read.start_ns - append.start_ns)  # log: append, then on to the node's listener
        + (read.end_ns - read.start_ns)  # batch wait
        + (write.end_ns - write.start_ns)  # write wait in the stream's queue
        + (received.start_ns - write.end_ns)  # network and the client's decoding
    )
    measured_s = float(received.attributes["barrage.latency_s"])  # type: ignore[arg-type]
    assert abs(hops_ns / 1e9 - measured_s) < 0.003, (hops_ns / 1e9, measured_s)
    # The sender's send span covers the whole ingest (it ends at the ack).
    assert send.start_ns <= ingest.start_ns + SLACK_NS and ingest.end_ns <= send.end_ns + SLACK_NS

    # Client-reported receive latency (the SDK's histogram).
    data = j.viewer.metrics.get_metrics_data()
    assert data is not None
    points = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "barrage.client.receive.latency"
        for p in m.data.data_points
    ]
    assert points and sum(int(getattr(p, "count", 0)) for p in points) >= 1


async def test_one_comment_through_the_embedded_log_leaves_the_whole_chain(tmp_path: Path) -> None:
    trace_file = tmp_path / "node.jsonl"
    server = traced_server(tmp_path / "data", trace_file)
    server.start()
    try:
        room = f"room-{uuid.uuid4().hex[:8]}"
        journey = await send_one_comment(server, server, [trace_file], room)
    finally:
        server.stop()
    node = f"test-{server.port}"
    check_chain(journey, room, node, node)
    # The gRPC instrumentation traces the unary admin RPCs; the Connect stream is excluded
    # (one span per long-lived stream would never end) and still works with it installed.
    spans = read_spans([trace_file])
    assert any(s.name == "/barrage.v1.RoomAdminService/CreateRoom" and s.kind == "server" for s in spans)
    assert not any("RoomService/Connect" in s.name for s in spans)


async def test_one_comment_through_two_nodes_on_the_kafka_log(tmp_path: Path) -> None:
    with running_broker() as broker:
        url = broker.url(f"trace-{uuid.uuid4().hex[:8]}") + "?fetch_max_wait_ms=20&partitions=1"
        files = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
        metrics_port = free_port()
        nodes = [
            traced_server(tmp_path / "n0", files[0], url),
            traced_server(tmp_path / "n1", files[1], url, "--metrics-listen", f"127.0.0.1:{metrics_port}"),
        ]
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(node.start) for node in nodes]:
                future.result()
        try:
            room = f"room-{uuid.uuid4().hex[:8]}"
            journey = await send_one_comment(nodes[0], nodes[1], files, room)
            # The Kafka log reports how far behind the partitions' high watermarks its tail is.
            metrics = scrape(metrics_port)
            assert value(metrics, "barrage_log_consumer_lag") >= 0
            assert ("barrage_log_consumer_lag", frozenset()) in metrics
            assert value(metrics, "barrage_events_read_total", barrage_priority="normal") >= 1
        finally:
            for node in nodes:
                node.stop()
    check_chain(journey, room, f"test-{nodes[0].port}", f"test-{nodes[1].port}")
    append = journey.one(f"append {room}", f"test-{nodes[0].port}")
    assert append.attributes["messaging.system"] == "kafka"


def test_logs_carry_trace_and_span_ids() -> None:
    provider = TracerProvider()
    record = logging.LogRecord("barrage.test", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    with provider.get_tracer("test").start_as_current_span("op") as span:
        assert TraceContextFilter("node-1").filter(record)
        ctx = span.get_span_context()
    line = JsonFormatter().format(record)
    assert f'"trace_id": "{ctx.trace_id:032x}"' in line and f'"span_id": "{ctx.span_id:016x}"' in line
    assert '"message": "hello world"' in line and '"node_id": "node-1"' in line
    outside = logging.LogRecord("barrage.test", logging.INFO, __file__, 1, "bye", (), None)
    TraceContextFilter().filter(outside)
    assert "trace_id" not in JsonFormatter().format(outside)


async def _one_traced_comment(server: ServerProcess) -> tuple[str, Ack]:
    """A fresh room, and one comment a traced client sends there and reads back."""
    room = f"room-{uuid.uuid4().hex[:8]}"
    async with AdminClient(server.target, server.token("ops", role="service")) as admin:
        await admin.create_room(room)
    tracing = ClientTracing("app")
    try:
        async with Client(server.target, server.token("alice"), options=tracing.options()) as client:
            sub = await client.join(room)
            ack = await client.send(room, "hi")
            await _first_comment(sub)
    finally:
        tracing.shutdown()
    return room, ack


async def test_per_subscriber_writes_are_not_traced_at_ratio_zero(tmp_path: Path) -> None:
    trace_file = tmp_path / "node.jsonl"
    server = ServerProcess(tmp_path / "data", args=("--trace-file", str(trace_file), "--delivery-trace-ratio", "0"))
    server.start()
    try:
        room, ack = await _one_traced_comment(server)

        def flushed(spans: list[SpanRecord]) -> bool:
            return any(s.name == f"flush {room}" for s in spans)

        spans = await wait_spans([trace_file], flushed)
    finally:
        server.stop()
    assert any(s.attributes.get("barrage.cursor") == ack.cursor for s in spans)
    assert not [s for s in spans if s.name.startswith("write ")]


async def test_a_send_its_client_did_not_sample_is_not_traced_through_the_nodes(tmp_path: Path) -> None:
    """Parent-based sampling holds across a batched append: unsampled sends that share an
    append with a sampled one get no receive or flush spans of their own."""
    trace_file = tmp_path / "node.jsonl"
    server = traced_server(tmp_path / "data", trace_file)
    server.start()
    try:
        room = f"room-{uuid.uuid4().hex[:8]}"
        async with AdminClient(server.target, server.token("ops", role="service")) as admin:
            await admin.create_room(room)
        stream = await connect(server.target, server.token("alice"), room)
        try:
            sampled_trace = uuid.uuid4().hex
            for i in range(20):  # one burst: the stream's sends share appends
                flag = "01" if i == 7 else "00"
                trace_id = sampled_trace if i == 7 else uuid.uuid4().hex
                send = rs.Send(
                    room_id=room,
                    client_msg_id=f"m{i}",
                    payload=event_pb2.Payload(comment=event_pb2.Comment(text=f"comment {i}")),
                    traceparent=f"00-{trace_id}-{uuid.uuid4().hex[:16]}-{flag}",
                )
                await stream.send(rs.ConnectRequest(send=send))
            results = [await stream.send_result(f"m{i}") for i in range(20)]
            await stream.wait_events(room, 20, kind="comment")
        finally:
            await stream.close()
        sampled_cursor = results[7].cursor

        def received(spans: list[SpanRecord]) -> bool:
            return any(s.name == f"receive {room}" for s in spans) and any(s.name == f"flush {room}" for s in spans)

        spans = await wait_spans([trace_file], received)
        await asyncio.sleep(1.0)  # the file is written every 0.5 s: anything more would be there now
        spans = read_spans([trace_file])
    finally:
        server.stop()
    receives = [s for s in spans if s.name == f"receive {room}"]
    assert [s.attributes.get("barrage.cursor") for s in receives] == [sampled_cursor]
    ingests = [s for s in spans if s.name == f"ingest {room}"]
    assert [s.attributes.get("barrage.client_msg_id") for s in ingests] == ["m7"]
    assert {s.trace_id for s in spans if s.name.split(" ")[0] in ("ingest", "append", "receive")} == {sampled_trace}


class _Collector:
    """A minimal OTLP/HTTP receiver on loopback: keeps the decoded requests it is sent."""

    def __init__(self) -> None:
        import http.server
        import threading

        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/v1/traces":
                    collector.traces.append(ExportTraceServiceRequest.FromString(body))
                elif self.path == "/v1/metrics":
                    collector.metrics.append(ExportMetricsServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def span_names(self) -> set[str]:
        return {s.name for r in self.traces for rs_ in r.resource_spans for ss in rs_.scope_spans for s in ss.spans}

    def metric_names(self) -> set[str]:
        return {
            m.name for r in self.metrics for rm in r.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_standard_otel_variables_export_over_otlp(tmp_path: Path) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT and friends, as any OpenTelemetry user sets them."""
    collector = _Collector()
    server = ServerProcess(
        tmp_path / "data",
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.port}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_SERVICE_NAME": "barrage-eu1",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_METRIC_EXPORT_INTERVAL": "300",
        },
    )
    server.start()
    try:
        room, _ack = await _one_traced_comment(server)
        wanted_spans = {f"ingest {room}", f"append {room}", f"receive {room}", f"flush {room}"}
        async with asyncio.timeout(15):
            while not (wanted_spans <= collector.span_names() and "barrage.events.in" in collector.metric_names()):
                await asyncio.sleep(0.1)
    finally:
        server.stop()
        collector.close()
    resources = {
        kv.value.string_value
        for r in collector.traces
        for rs_ in r.resource_spans
        for kv in rs_.resource.attributes
        if kv.key == "service.name"
    }
    assert resources == {"barrage-eu1"}
    assert {"barrage.delivery.latency", "barrage.stage.duration", "barrage.connections"} <= collector.metric_names()
