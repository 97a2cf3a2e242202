"""ResumeOutcome and JoinRoom.resume_cursor: a client that rejoins with the cursor of
the last event it received gets every event after it, or is told explicitly that it
cannot (never a silent gap)."""

from __future__ import annotations

from pathlib import Path

from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs
from tests.conformance.protocol.conftest import World, new_id
from tests.server_process import ServerProcess
from tests.wire_client import Admin, RawStream


async def test_resuming_from_the_last_cursor_received_gets_every_event_after_it(world: World) -> None:
    room_id = await world.room()
    user = new_id("phone")
    writer = await world.joined(room_id)
    phone = await world.joined(room_id, user=user)
    for n in range(3):
        await writer.send_comment(room_id, f"before-{n}", "seen")
    last = (await phone.wait_events(room_id, 3, kind="comment"))[-1]
    await phone.close()  # the phone goes through a tunnel
    for n in range(4):
        await writer.send_comment(room_id, f"missed-{n}", "while away")

    back = await world.stream(user=user)
    result = await back.join(room_id, resume_cursor=last.cursor)

    assert result.status.code == 0 and result.resume == rs.RESUME_OUTCOME_RESUMED
    await writer.send_comment(room_id, "live", "after the resume")
    got = await back.wait_events(room_id, 5, kind="comment")
    assert [e.client_msg_id for e in got] == [f"missed-{n}" for n in range(4)] + ["live"]
    # Exactly the log after the cursor, in its order: no gap, no duplicate.
    history = [e.event_id for e in await world.admin.all_events(room_id, kind="comment")]
    assert [e.event_id for e in got] == history[history.index(last.event_id) + 1 :]


async def test_a_cursor_that_is_not_from_the_rooms_log_is_answered_cursor_unknown(world: World) -> None:
    room_id = await world.room()
    await world.admin.publish(room_id, "a", event_pb2.Payload(announcement=event_pb2.Announcement(text="hi")))
    stream = await world.stream()

    result = await stream.join(room_id, resume_cursor="definitely-not-a-cursor")

    assert result.status.code == 0
    assert result.resume == rs.RESUME_OUTCOME_CURSOR_UNKNOWN
    assert result.snapshot.room_id == room_id and result.snapshot.head_cursor  # treated like a fresh join
    writer = await world.joined(room_id)
    await writer.send_comment(room_id, "live", "live events follow")
    [event] = await stream.wait_events(room_id, 1, kind="comment")
    assert event.client_msg_id == "live"


async def test_a_cursor_older_than_retention_is_answered_cursor_too_old(tmp_path: Path) -> None:
    """On the embedded log only: the test broker (Tansu) has no retention to push a cursor out of."""
    data = tmp_path / "small"
    small = ServerProcess(data, log_url=f"embedded:{data}?segment_bytes=4096&retention_bytes=8192")
    small.start()
    admin = Admin(small.target, small.token("ops", role="service"))
    viewer = RawStream(small.target)
    try:
        await admin.create_room("old")
        announce = event_pb2.Payload(announcement=event_pb2.Announcement(text="x" * 300))
        first = (await admin.publish("old", "first", announce)).cursor
        for n in range(100):
            await admin.publish("old", f"n{n}", announce)
        await viewer.hello(small.token("viewer"))

        result = await viewer.join("old", resume_cursor=first)

        assert result.status.code == 0
        assert result.resume == rs.RESUME_OUTCOME_CURSOR_TOO_OLD
        assert result.snapshot.head_cursor  # the snapshot and live events follow
        await admin.publish("old", "live", event_pb2.Payload(announcement=event_pb2.Announcement(text="live")))
        events = await viewer.wait_events("old", 1, kind="announcement")
        assert events[-1].payload.announcement.text == "live"
    finally:
        await viewer.close()
        await admin.close()
        small.stop()
