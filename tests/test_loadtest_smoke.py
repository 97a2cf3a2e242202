"""The load generator keeps working: a few seconds, a few viewers, its own server.

Also pins the two pieces of it that read bytes by hand (the HTTP/2 framing and the
event-counting scan) against the generated protobuf classes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from barrage.loadtest import h2, proto
from barrage.loadtest.runner import check_loopback
from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs

ROOT = Path(__file__).resolve().parent.parent


def run_loadtest(out: Path, *args: str, timeout: float = 180) -> dict[str, Any]:
    """A few-second mega-room (12 viewers, 4 of them checking, 2 senders) with these extra
    arguments; its result.json."""
    command = [
        sys.executable, "-m", "barrage.loadtest",
        "--scenario", "mega-room",
        "--viewers", "12", "--sample", "4", "--senders", "2", "--rate", "20", "--critical-rate", "2",
        "--duration", "3", "--drain", "5", "--client-procs", "1",
        *args, "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads((out / "result.json").read_text())
    return result


def test_smoke_run_writes_sane_results(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_loadtest(
        out, "--like-rate", "4", "--gift-rate", "1", "--claim-rate", "2", "--spawn-server", "--batch-interval-ms 10"
    )
    f = result["figures"]
    checks = result["checks"]["totals"]

    assert isinstance(result["valid"], bool)
    assert result["config"]["viewers"] == 12
    assert result["plan"]["viewers_by_kind"] == {"sample": 4, "drain": 8}
    assert f["streams"] == 12 + 2
    # Everything sent (coupon claims of the batch the run dropped included) was acknowledged,
    # is in the history, and reached the viewers.
    assert result["config"]["claims"] == 2
    assert f["sent"] > 0 and f["acked"] == f["sent"] and f["send_errors"] == {}
    assert f["acked_not_in_history"] == 0
    assert f["viewer_deliveries"] > 0 and f["deliveries_per_s"] > 0
    assert checks["checked_viewers"] == 4 and checks["drain_viewers"] == 8
    assert checks["expected_events"] > 0
    # The guarantees the instrument exists to check.
    assert f["critical_checked"] > 0 and f["critical_lost"] == 0
    assert f["order_violations"] == 0 and f["duplicates"] == 0 and f["silent_gaps"] == 0
    assert checks.get("drain_unaccounted", 0) == 0 and checks["phantom_events"] == 0
    # Figures from /proc and from the events' own timestamps.
    assert f["server_cpu_s"] > 0 and f["server_cpu_us_per_delivery"] > 0
    assert 0 < f["rss_per_stream_kb"] < 10_000
    latency = f["latency_ms"]["from_publish_time"]
    assert latency["count"] > 0 and 0 <= latency["p50"] <= latency["p99"] <= latency["max"] < 10_000
    assert f["latency_ms"]["from_intended_send_time"]["count"] > 0
    assert result["machine"]["cpus"] >= 1 and len(result["git"]["commit"]) == 40
    for name in ("summary.md", "latency_over_time.png", "latency_percentiles.png"):
        assert (out / name).stat().st_size > 0
    assert "critical events lost" in (out / "summary.md").read_text()


def test_kafka_smoke_run_with_two_workers_reports_each_worker_and_the_broker(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_loadtest(
        out, "--like-rate", "0", "--gift-rate", "0", "--kafka", "--spawn-server", "--workers 2", timeout=240
    )
    f = result["figures"]
    assert "--log kafka://127.0.0.1:" in result["server"]["command"]
    assert f["sent"] > 0 and f["acked"] == f["sent"] and f["acked_not_in_history"] == 0
    assert f["critical_checked"] > 0 and f["critical_lost"] == 0
    assert f["order_violations"] == 0 and f["duplicates"] == 0
    # The supervisor and its two workers, each with its own CPU; the broker's apart.
    assert len(f["server_processes"]) >= 3
    assert sum(1 for p in f["server_processes"] if p["cpu_util"] > 0) >= 2
    assert f["broker_cpu_s"] > 0 and f["broker_cpu_us_per_ack"] > 0
    assert "Kafka broker (Tansu) CPU" in (out / "summary.md").read_text()


def test_a_cpu_cap_holds_a_busy_process_to_its_quota() -> None:
    import os
    import time

    from barrage.loadtest.cpucap import CpuCaps
    from barrage.loadtest.metrics import cpu_seconds

    try:
        caps = CpuCaps(0.2, "test")
    except SystemExit as exc:  # not root, or no cgroup cpu controller: nothing to test here
        pytest.skip(str(exc))
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        caps.apply([spin.pid])
        groups = list(caps.groups.values())
        start_cpu, start = cpu_seconds(spin.pid), time.monotonic()
        time.sleep(1.5)
        share = (cpu_seconds(spin.pid) - start_cpu) / (time.monotonic() - start)
        assert share < 0.35, f"capped at 0.2 cores, used {share:.2f}"
    finally:
        spin.kill()
        spin.wait()
        caps.close()
    assert not any(os.path.exists(group) for group in groups)


def test_refuses_non_loopback_targets() -> None:
    assert check_loopback("127.0.0.1:50051") == ("127.0.0.1", 50051)
    assert check_loopback("[::1]:50051") == ("::1", 50051)
    for target in ("10.0.0.1:50051", "192.168.1.5:80", "8.8.8.8:443"):
        with pytest.raises(SystemExit, match="loopback"):
            check_loopback(target)


def _event(cursor: str, text: str) -> event_pb2.Event:
    return event_pb2.Event(
        room_id="r", cursor=cursor, event_id="e" * 32, payload=event_pb2.Payload(comment=event_pb2.Comment(text=text))
    )


def test_scan_counts_events_like_the_generated_classes() -> None:
    long_text = "x" * 300  # two-byte lengths
    response = rs.ConnectResponse(
        messages=[
            rs.ServerMessage(welcome=rs.Welcome(session_id="s")),
            rs.ServerMessage(
                event_batch=rs.EventBatch(room_id="r", events=[_event("a.1", "hi"), _event("a.2", long_text)])
            ),
            rs.ServerMessage(event_batch=rs.EventBatch(room_id="r", events=[], omitted_count=300)),
            rs.ServerMessage(
                event_batch=rs.EventBatch(room_id="r", events=[_event(f"a.{i}", long_text) for i in range(3, 60)])
            ),
            rs.ServerMessage(send_result=rs.SendResult(room_id="r", client_msg_id="m")),
        ]
    )
    controls: list[str | None] = []
    events, omitted = proto.scan(
        response.SerializeToString(), lambda data: controls.append(proto.server_message(data).WhichOneof("kind"))
    )
    assert (events, omitted) == (2 + 57, 300)
    assert controls == ["welcome", "send_result"]


def test_message_ids_and_cursor_positions() -> None:
    sent_us = 1_700_000_000_123_456
    assert proto.parse_message_id(proto.message_id("s3", 17, sent_us)) == ("s3", 17, sent_us)
    assert proto.parse_message_id("not-ours") is None
    assert proto.cursor_position("0f3a.12345") == 12345


def test_grpc_messages_split_across_data_frames_are_reassembled() -> None:
    got: list[bytes] = []

    class Collect(h2.Stream):
        def on_message(self, data: bytes) -> None:
            got.append(data)

    stream = Collect()
    wire = h2.grpc_message(b"first") + h2.grpc_message(b"") + h2.grpc_message(b"x" * 1000)
    for i in range(0, len(wire), 7):
        stream._data(wire[i : i + 7])
    assert got == [b"first", b"", b"x" * 1000]


def test_websocket_viewers_are_driven_and_checked_like_grpc_ones(tmp_path: Path) -> None:
    result = run_loadtest(tmp_path / "run", "--web-fraction", "0.5", "--spawn-server", "--batch-interval-ms 10")
    f = result["figures"]
    checks = result["checks"]["totals"]
    assert result["plan"]["viewers_by_kind"] == {"sample": 2, "sample-ws": 2, "drain": 4, "drain-ws": 4}
    assert checks["checked_viewers"] == 4 and checks["drain_viewers"] == 8
    assert f["critical_checked"] > 0 and f["critical_lost"] == 0
    assert f["order_violations"] == 0 and f["duplicates"] == 0 and f["silent_gaps"] == 0
    assert checks.get("drain_unaccounted", 0) == 0
    assert "sample-ws" in f["latency_ms"]["by_viewer_kind_from_publish_time"]
