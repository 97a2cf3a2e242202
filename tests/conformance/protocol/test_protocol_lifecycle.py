"""room_service.proto: GoAway (a node shutting down) and ResumeRequired (a stream that
fell behind a room), each on a server of its own."""

from __future__ import annotations

import asyncio
from pathlib import Path

from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs
from tests.conformance.protocol.conftest import Spawn, code, reason
from tests.kafka_broker import running_broker
from tests.server_process import ServerProcess
from tests.wire_client import Admin, RawStream, end_status, retry_delay_s


async def test_a_node_going_away_says_go_away_then_ends_streams_unavailable(spawn: Spawn) -> None:
    node = spawn({})
    viewer = RawStream(node.target)
    try:
        await viewer.hello(node.token("viewer"))
        assert node.proc is not None
        node.proc.terminate()  # SIGTERM: a graceful stop

        go_away = await viewer.expect("go_away", timeout=15)
        assert go_away.reason and go_away.HasField("reconnect_delay")
        ended = await viewer.wait_end(timeout=15)
        assert ended is not None
        status = end_status(ended)
        assert (status.code, reason(status)) == (code("UNAVAILABLE"), "SHUTTING_DOWN")
    finally:
        await viewer.close()


async def test_a_stream_too_slow_for_critical_events_is_told_to_resume_and_can(spawn: Spawn) -> None:
    """Critical events are never dropped: a stream that cannot take them is unsubscribed
    with resume_required, and joining again with its cursor yields every event after it."""
    node = spawn({"BARRAGE_OUTBOX_MAX_BYTES": "16384"})
    admin = Admin(node.target, node.token("ops", role="service"))
    # No BDP probing: the flow-control window stays small, as for a phone that stopped reading.
    slow = RawStream(node.target, (("grpc.http2.bdp_probe", 0),))
    try:
        await admin.create_room("busy")
        await slow.hello(node.token("phone"))
        await slow.join("busy")
        slow.pause()
        big = "y" * 400
        last = None
        for n in range(400):
            payload = event_pb2.Payload(announcement=event_pb2.Announcement(text=f"{n} {big}"))
            last = await admin.publish("busy", f"b{n}", payload)
        assert last is not None
        slow.resume()

        required = await slow.expect("resume_required", timeout=30)
        assert required.room_id == "busy"
        joined = await slow.join("busy", resume_cursor=required.cursor)
        assert joined.resume == rs.RESUME_OUTCOME_RESUMED
        async with asyncio.timeout(30):
            while last.cursor not in {e.cursor for e in slow.events("busy")}:
                await asyncio.sleep(0.05)
        announced = {e.cursor for e in await admin.all_events("busy", "announcement")}
        assert announced <= {e.cursor for e in slow.events("busy")}  # not one critical event missing
    finally:
        await slow.close()
        await admin.close()


async def test_a_send_the_log_cannot_confirm_is_unavailable_and_safe_to_retry(tmp_path: Path) -> None:
    """SendResult: UNAVAILABLE (LOG_UNAVAILABLE): retry with the same client_msg_id.
    On Kafka only: the embedded log is in the node's process and cannot be stalled from
    outside (its full-disk case is tests/test_embedded_corruption.py)."""
    with running_broker() as broker:  # its own broker: freezing it disturbs no other test
        own = ServerProcess(tmp_path / "data", log_url=broker.url("stall"))
        own.start()
        admin = Admin(own.target, own.token("ops", role="service"))
        sender = RawStream(own.target)
        try:
            await admin.create_room("stall")
            await sender.hello(own.token("ann"))
            await sender.join("stall")
            with broker.frozen_for():
                stalled = await sender.send_comment("stall", "m1", "are you there?", timeout=30)
            assert (stalled.status.code, reason(stalled.status)) == (code("UNAVAILABLE"), "LOG_UNAVAILABLE")
            assert retry_delay_s(stalled.status)

            retried = await sender.send_comment("stall", "m1", "are you there?", timeout=30)

            assert retried.status.code == 0
            assert len(await admin.all_events("stall", "comment")) == 1  # at most once, whatever the first did
        finally:
            await sender.close()
            await admin.close()
            own.stop()
