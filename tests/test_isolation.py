"""A subscriber that stops reading delays no one, costs bounded memory, loses nothing critical."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs
from tests.server_process import ServerProcess
from tests.wire_client import Admin, RawStream


def latency_ms(event: event_pb2.Event, received_at: float) -> float:
    return received_at * 1000 - event.publish_time.ToMilliseconds()


async def test_a_stalled_subscriber_is_isolated_and_made_to_resume(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "data",
        env={"BARRAGE_OUTBOX_MAX_BYTES": "65536", "BARRAGE_SENDS_PER_SECOND": "2000", "BARRAGE_SEND_BURST": "2000"},
    )
    server.start()
    room = "isolation"
    admin = Admin(server.target, server.token("ops", role="service"))
    streams: list[RawStream] = []
    try:
        await admin.create_room(room)

        async def viewer(name: str, small_window: bool = False) -> RawStream:
            # Without BDP probing the stream's flow-control window stays at 64 KiB, as on
            # a phone whose app stopped reading, instead of growing to megabytes.
            stream = RawStream(server.target, (("grpc.http2.bdp_probe", 0),) if small_window else ())
            streams.append(stream)
            await stream.hello(server.token(name))
            await stream.join(room)
            return stream

        stalled = await viewer("frozen-phone", small_window=True)
        readers = [await viewer(f"reader-{i}") for i in range(4)]
        sender = await viewer("sender")
        stalled.pause()
        rss_before = server.rss_bytes()

        # Per event: when each reader received it (its frame's arrival).
        arrivals: dict[str, list[float]] = {}

        async def watch(stream: RawStream) -> None:
            seen = 0
            while True:
                events = stream.events(room)
                now = time.time()
                for event in events[seen:]:
                    arrivals.setdefault(event.cursor, []).append(latency_ms(event, now))
                seen = len(events)
                await asyncio.sleep(0.002)

        watchers = [asyncio.create_task(watch(r)) for r in readers]
        text = "这个多少钱? " + "货" * 450
        announcements: list[str] = []
        for n in range(600):
            await sender.send(
                rs.ConnectRequest(
                    send=rs.Send(
                        room_id=room,
                        client_msg_id=f"c{n}",
                        payload=event_pb2.Payload(comment=event_pb2.Comment(text=text)),
                    )
                )
            )
            if n % 100 == 50:
                reply = await admin.publish(
                    room, f"a{n}", event_pb2.Payload(announcement=event_pb2.Announcement(text=f"flash sale {n}"))
                )
                announcements.append(reply.cursor)
            await asyncio.sleep(0.004)
        for reader in readers:
            await reader.wait_events(room, 600, timeout=30, kind="comment")
            await reader.wait_events(room, len(announcements), timeout=30, kind="announcement")
        for task in watchers:
            task.cancel()
        rss_after = server.rss_bytes()

        latencies = [ms for values in arrivals.values() for ms in values]
        p50 = statistics.median(latencies)
        p99 = statistics.quantiles(latencies, n=100)[98]
        print(f"readers' latency while one subscriber stalls: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        assert p99 < 1000, (p50, p99)
        assert rss_after - rss_before < 40 * 1024 * 1024

        # The stalled one wakes up: every critical event is there, normal ones were
        # shed and counted, none silently.
        stalled.resume()
        async with asyncio.timeout(30):
            while len(stalled.events(room, "comment")) + stalled.omitted(room) < 600:
                await asyncio.sleep(0.05)
        # Omitted counts every non-critical event shed: comments, and the few viewer
        # counts (ephemeral) the room published meanwhile.
        ephemeral = 0
        for kind in ("viewer_count", "viewer_joined", "viewer_left", "audience"):
            ephemeral += len(await admin.all_events(room, kind))
        assert stalled.omitted(room) > 0
        assert 600 <= len(stalled.events(room, "comment")) + stalled.omitted(room) <= 600 + ephemeral
        assert set(announcements) <= {e.cursor for e in stalled.events(room)}

        # Critical events alone overflow its budget: it is told to resume, and resuming
        # from the cursor it is given yields every event after it.
        stalled.pause()
        for n in range(1000):
            reply = await admin.publish(
                room, f"b{n}", event_pb2.Payload(announcement=event_pb2.Announcement(text=f"{n} " + "y" * 400))
            )
        stalled.resume()
        required = await stalled.expect("resume_required", timeout=30)
        assert required.room_id == room
        joined = await stalled.join(room, resume_cursor=required.cursor)
        assert joined.resume == rs.RESUME_OUTCOME_RESUMED
        async with asyncio.timeout(30):
            while reply.cursor not in {e.cursor for e in stalled.events(room)}:
                await asyncio.sleep(0.05)
        # What it holds first, then the log: an event (a viewer count) may land in between, and the
        # log read after holds everything the subscriber does.
        cursors = [e.cursor for e in stalled.events(room)]
        history = [e.cursor for e in await admin.all_events(room)]
        resumed_at = cursors.index(history[history.index(required.cursor) + 1])
        # From the resume on, exactly the log's order (up to what has arrived so far).
        assert cursors[resumed_at:] == history[history.index(required.cursor) + 1 :][: len(cursors) - resumed_at]
        announced = {e.cursor for e in await admin.all_events(room, "announcement")}
        assert announced <= set(cursors)
    finally:
        for stream in streams:
            await stream.close()
        await admin.close()
        server.stop()
