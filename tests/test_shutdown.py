"""SIGTERM ends a node within its documented drain time whatever its clients do, and
loses nothing acknowledged (docs/protocol.md, "Shutdown").

Documented bound: shutdown_grace_s (streams are told to go away, then closed) plus
shutdown_timeout_s (closing the log); a watchdog exits the process past that.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import grpc

from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs
from tests.kafka_broker import KafkaBroker
from tests.server_process import ROOT, ServerProcess
from tests.wire_client import Admin, RawStream, end_status, error_info

GRACE_S = 2.0
TIMEOUT_S = 3.0
ROOM = "shutdown-room"
HISTORY = 3000
WATCHDOG_SLACK_S = 5.0
"""server/app.py: the watchdog fires this long after grace + timeout."""


async def _fill(admin: Admin, count: int) -> list[str]:
    text = "\U0001f600" * 400  # ~1.6 KB a comment: a replay of them outgrows any window

    async def publish(first: int) -> list[str]:
        cursors = []
        for i in range(first, count, 8):
            reply = await admin.publish(ROOM, f"old-{i}", event_pb2.Payload(comment=event_pb2.Comment(text=text)))
            cursors.append(reply.cursor)
        return cursors

    parts = await asyncio.gather(*(publish(first) for first in range(8)))
    return [cursor for part in parts for cursor in part]


async def test_sigterm_ends_the_node_within_its_drain_time_whatever_clients_do(tmp_path: Path) -> None:
    args = ("--shutdown-grace-s", str(GRACE_S), "--shutdown-timeout-s", str(TIMEOUT_S), "--insights", "false")
    node = ServerProcess(tmp_path / "data", args=args)
    node.start()
    streams: list[RawStream] = []
    acked: set[str] = set()
    sending = True
    try:
        admin = Admin(node.target, node.token("ops", "service"))
        await admin.create_room(ROOM)
        acked.update(await _fill(admin, HISTORY))
        first_cursor = (await admin.history(ROOM, page_size=1)).events[0].cursor

        reading = RawStream(node.target)
        await reading.hello(node.token("reader"))
        await reading.join(ROOM)
        # Not reading: no BDP probing keeps its window small, and live events fill it.
        deaf = RawStream(node.target, (("grpc.http2.bdp_probe", 0),))
        await deaf.hello(node.token("deaf"))
        await deaf.join(ROOM)
        deaf.pause()
        # Mid-replay: resumes from the first event, so 3000 events follow, and reads none.
        replaying = RawStream(node.target, (("grpc.http2.bdp_probe", 0),))
        await replaying.hello(node.token("replayer"))
        assert (await replaying.join(ROOM, resume_cursor=first_cursor)).resume == rs.RESUME_OUTCOME_RESUMED
        replaying.pause()
        # Mid-append: a writer sends as fast as its limits allow until the node goes.
        writer = RawStream(node.target)
        await writer.hello(node.token("writer", "service"))
        await writer.join(ROOM)
        streams += [reading, deaf, replaying, writer]

        async def write() -> None:
            n = 0
            while sending and not writer.done:
                n += 1
                await writer.send(
                    rs.ConnectRequest(
                        send=rs.Send(
                            room_id=ROOM,
                            client_msg_id=f"live-{n}",
                            payload=event_pb2.Payload(comment=event_pb2.Comment(text=f"live {n}")),
                        )
                    )
                )
                await asyncio.sleep(0.02)

        writing = asyncio.create_task(write())
        await asyncio.sleep(1.0)
        await admin.close()

        assert node.proc is not None
        started = time.monotonic()
        code = await asyncio.to_thread(node.terminate, 30.0)
        took = time.monotonic() - started
        sending = False
        await writing
        assert code == 0, node.logs()[-3000:]  # drained by itself, not by the watchdog
        assert took < GRACE_S + TIMEOUT_S + 1.0, f"shutdown took {took:.1f} s"

        # The reading client was told: go away, then UNAVAILABLE SHUTTING_DOWN.
        await reading.expect("go_away", timeout=5)
        ended = await reading.wait_end(timeout=5)
        assert ended is not None and ended.code() == grpc.StatusCode.UNAVAILABLE
        assert error_info(end_status(ended)).reason == "SHUTTING_DOWN"
        for message in writer.received:
            if message.WhichOneof("kind") == "send_result" and message.send_result.status.code == 0:
                acked.add(message.send_result.cursor)
        assert any(m.WhichOneof("kind") == "send_result" for m in writer.received)
    finally:
        sending = False
        for stream in streams:
            await stream.close()
        node.stop()

    # Nothing acknowledged was lost: every ack is in the log after a restart.
    node.start()
    try:
        admin = Admin(node.target, node.token("ops", "service"))
        stored = {event.cursor for event in await admin.all_events(ROOM)}
        await admin.close()
        assert len(acked) > HISTORY
        assert not acked - stored, f"{len(acked - stored)} acknowledged events lost"
    finally:
        node.stop()


def test_the_watchdog_exits_a_process_whose_drain_hangs() -> None:
    script = "import time; from barrage.server.app import _exit_after; _exit_after(0.5); time.sleep(30)"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=60, check=False)
    assert done.returncode == 3
    assert b"shutdown did not finish" in done.stderr
    assert time.monotonic() - started < 20


async def test_sigterm_ends_the_node_in_time_while_its_kafka_broker_is_frozen(tmp_path: Path) -> None:
    """Appends hang on a frozen broker, and closing the producer would wait for them."""
    with KafkaBroker() as broker:
        args = ("--shutdown-grace-s", str(GRACE_S), "--shutdown-timeout-s", str(TIMEOUT_S), "--insights", "false")
        node = ServerProcess(tmp_path / "data", log_url=broker.url("shutdown"), args=args)
        node.start()
        stream = RawStream(node.target)
        try:
            admin = Admin(node.target, node.token("ops", "service"))
            await admin.create_room(ROOM)
            await admin.close()
            await stream.hello(node.token("writer"))
            await stream.join(ROOM)
            assert (await stream.send_comment(ROOM, "before", "before the freeze")).status.code == 0
            broker.freeze()
            try:
                for n in range(5):  # appends now wait for a broker that does not answer
                    payload = event_pb2.Payload(comment=event_pb2.Comment(text=f"stuck {n}"))
                    send = rs.Send(room_id=ROOM, client_msg_id=f"s{n}", payload=payload)
                    await stream.send(rs.ConnectRequest(send=send))
                await asyncio.sleep(0.5)
                started = time.monotonic()
                code = await asyncio.to_thread(node.terminate, 60.0)
                took = time.monotonic() - started
            finally:
                broker.thaw()
            assert code in (0, 3), node.logs()[-3000:]
            assert took < GRACE_S + TIMEOUT_S + WATCHDOG_SLACK_S + 1.0, f"shutdown took {took:.1f} s"
        finally:
            await stream.close()
            node.stop()
