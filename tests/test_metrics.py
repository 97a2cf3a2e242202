"""The node's metrics: a scripted scenario against the Prometheus endpoint of a real server,
and the per-delivery counters of the outbox."""

from __future__ import annotations

import asyncio
import urllib.request
import uuid
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from barrage.server.core.outbox import Frame, Outbox
from barrage.server.telemetry import hooks
from barrage.server.telemetry.hot import Registry
from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs
from tests.server_process import ServerProcess, free_port
from tests.wire_client import Admin, RawStream

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = frozenset((k, v) for k, v in sample.labels.items() if not k.startswith("otel_scope"))
            out[(sample.name, labels)] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_prometheus_counts_match_a_scripted_scenario(tmp_path: Path) -> None:
    """N comments in; 3 viewers on a sampled budget and 1 staff sender out; then a flood."""
    n = 12
    port = free_port()
    server = ServerProcess(
        tmp_path / "data",
        args=("--metrics-listen", f"127.0.0.1:{port}", "--viewer-budget-per-s", "2", "--batch-interval-ms", "50"),
    )
    server.start()
    streams: list[RawStream] = []
    try:
        room = f"room-{uuid.uuid4().hex[:8]}"
        admin = Admin(server.target, server.token("ops", role="service"))
        await admin.create_room(room)
        await admin.close()
        viewers = []
        for i in range(3):
            viewer = RawStream(server.target)
            streams.append(viewer)
            await viewer.hello(server.token(f"viewer-{i}"))
            await viewer.join(room)
            viewers.append(viewer)
        sender = RawStream(server.target)
        streams.append(sender)
        await sender.hello(server.token("shop", role="service"))
        await sender.join(room)

        # Phase 1: N comments from a staff stream (gets every event); viewers get a sample.
        payload = event_pb2.Payload(comment=event_pb2.Comment(text="flash sale soon"))
        for i in range(n):
            await sender.send(rs.ConnectRequest(send=rs.Send(room_id=room, client_msg_id=f"m{i}", payload=payload)))
        results = [await sender.send_result(f"m{i}") for i in range(n)]
        assert all(r.status.code == 0 for r in results)
        await sender.wait_events(room, n, kind="comment")
        async with asyncio.timeout(10):
            while any(len(v.events(room, "comment")) + v.omitted(room) < n for v in viewers):
                await asyncio.sleep(0.05)
        received = sum(len(v.events(room, "comment")) for v in viewers)
        omitted = sum(v.omitted(room) for v in viewers)
        assert received + omitted == 3 * n and omitted > 0  # the budget did sample

        m = scrape(port)
        comment = {"barrage_event_type": "comment", "barrage_priority": "normal"}
        assert value(m, "barrage_events_in_total", **comment) == n
        assert value(m, "barrage_events_read_total", barrage_priority="normal") == n
        # Deliveries: the sender gets all N, the viewers what the sample kept.
        assert value(m, "barrage_events_out_total", **comment) == n + received
        assert value(m, "barrage_events_sampled_total", barrage_priority="normal") == omitted
        assert value(m, "barrage_sends_total", barrage_result="ok") == n
        assert value(m, "barrage_stage_duration_seconds_count", barrage_stage="ingest") == n
        assert value(m, "barrage_log_append_duration_seconds_count") >= 1
        frames = value(m, "barrage_frames_written_total")
        assert frames >= 4  # at least one comment frame per stream
        # Per-subscriber latencies are recorded for one delivery in LATENCY_EVERY.
        sampled_frames = frames // hooks.LATENCY_EVERY
        assert value(m, "barrage_delivery_latency_seconds_count") == sampled_frames
        assert value(m, "barrage_stage_duration_seconds_count", barrage_stage="write") == sampled_frames
        assert value(m, "barrage_delivery_latency_seconds_bucket", le="+Inf") == sampled_frames
        assert value(m, "barrage_connections") == 4
        assert value(m, "barrage_subscribers") == 4
        assert value(m, "barrage_rooms") == 1
        assert ("barrage_outbox_queued_bytes", frozenset({("barrage_aggregation", "max")})) in m
        assert ("barrage_log_consumer_lag", frozenset()) not in m  # the embedded log has no lag

        # Phase 2: a viewer floods past the per-stream burst; refusals are counted by reason.
        flood = 25
        for i in range(flood):
            send = rs.Send(room_id=room, client_msg_id=f"f{i}", payload=payload)
            await viewers[0].send(rs.ConnectRequest(send=send))
        answers = [await viewers[0].send_result(f"f{i}") for i in range(flood)]
        accepted = sum(1 for a in answers if a.status.code == 0)
        refused = flood - accepted
        assert refused > 0
        m = scrape(port)
        assert value(m, "barrage_sends_total", barrage_result="RATE_LIMITED") == refused
        assert value(m, "barrage_sends_total", barrage_result="ok") == n + accepted
        assert value(m, "barrage_events_in_total", **comment) == n + accepted
    finally:
        for stream in streams:
            await stream.close()
        server.stop()


def _frame(room: str, size: int, critical: bool, stamp: hooks.Stamp) -> Frame:
    return Frame(room, b"x" * size, 0, 0, "c", 3, critical, (), stamp)


def test_outbox_counts_written_and_shed_deliveries_by_priority() -> None:
    metrics = hooks.Metrics(Registry())
    stamp = hooks.Stamp(metrics, "r", 0.0, 0, 0.001, {"normal": 2, "ephemeral": 1}, None, None, 0.0)
    box = Outbox(max_bytes=16 * 1024, max_write_bytes=64 * 1024)
    assert box.put_frame(_frame("r", 6000, False, stamp))
    assert box.put_frame(_frame("r", 6000, False, stamp))
    # The third frame does not fit: the oldest normal frame is shed (its 3 events omitted).
    assert box.put_frame(_frame("r", 6000, False, stamp))
    dropped = {dict(k)["barrage.priority"]: c.value for k, c in metrics.events_dropped.cells.items()}
    assert dropped == {"normal": 2, "ephemeral": 1}
    asyncio.run(_drain(box))
    assert metrics.frames_written.value == 2
    metrics.frames_written.value = hooks.LATENCY_EVERY - 1  # the next write is one whose latency is recorded
    box = Outbox(max_bytes=16 * 1024, max_write_bytes=64 * 1024)
    box.put_frame(_frame("r", 100, False, stamp))
    asyncio.run(_drain(box))
    assert metrics.delivery.count == metrics.stage_write.count == 1
    assert metrics.delivery.min >= 0.001  # lag at flush + time queued
    # A critical frame that cannot fit makes the subscription resume: counted as lagged.
    assert not Outbox(16 * 1024, 64 * 1024).put_frame(_frame("r", 20_000, True, stamp))
    assert sum(c.value for c in metrics.lagged.cells.values()) == 1


async def _drain(box: Outbox) -> None:
    box.close()
    while await box.next_write() is not None:
        pass


def test_delta_temporality_reports_what_changed_since_the_last_collection() -> None:
    registry = Registry()
    counter = registry.counter("c", "1", "")
    series = registry.histogram("h", "s", "", (0.1, 1.0)).of()
    memory: dict[object, object] = {}
    counter.add(3)
    series.record(0.05)
    first = {m.name: m.data.data_points[0] for m in registry.collect(memory)}  # type: ignore[arg-type]
    counter.add(2)
    series.record(0.5)
    series.record(5.0)
    second = {m.name: m.data.data_points[0] for m in registry.collect(memory)}  # type: ignore[arg-type]
    assert getattr(first["c"], "value") == 3 and getattr(second["c"], "value") == 2  # noqa: B009
    assert list(getattr(second["h"], "bucket_counts")) == [0, 1, 1]  # noqa: B009
    cumulative = {m.name: m.data.data_points[0] for m in registry.collect()}
    assert list(getattr(cumulative["h"], "bucket_counts")) == [1, 1, 1]  # noqa: B009
