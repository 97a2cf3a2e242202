"""The fan-out engine in-process: batching per tick, encode once, bounded outboxes."""

from __future__ import annotations

import asyncio

from barrage.server.core import wire
from barrage.server.core.hub import Hub
from barrage.server.core.outbox import Frame, Outbox
from barrage.server.log.base import LogRecord
from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs

NORMAL = event_pb2.PRIORITY_NORMAL
CRITICAL = event_pb2.PRIORITY_CRITICAL


class Recorder:
    def __init__(self, full: bool = False) -> None:
        self.min_position = -1
        self.full = full
        self.frames: list[Frame] = []
        self.user_id = ""

    def deliver(self, frame: Frame) -> None:
        self.frames.append(frame)

    def may_read(self, audience: object) -> bool:
        return False  # no whispers here (tests/test_whispers.py)


def record(
    position: int, priority: int = NORMAL, room: str = "r", coalesce: str | None = None
) -> tuple[LogRecord, str | None]:
    event = event_pb2.Event(room_id=room, event_id=str(position), priority=priority)  # type: ignore[arg-type]
    return LogRecord(room, position, event.SerializeToString(), priority), coalesce


def make_hub(interval_s: float = 0.05, budget: float = 1000.0) -> Hub:
    return Hub(
        epoch_of=lambda _: "ep", interval_s=interval_s, max_frame_bytes=64 * 1024, recent_per_room=100,
        viewer_budget_per_s=budget,
    )  # fmt: skip


def events_of(frame: Frame) -> list[event_pb2.Event]:
    (message,) = rs.ConnectResponse.FromString(frame.data).messages
    return list(message.event_batch.events)


async def test_a_quiet_room_delivers_at_once() -> None:
    hub = make_hub(interval_s=10.0)
    sub = Recorder()
    hub.channel("r").subscribers.add(sub)
    hub.on_records([record(1)])
    assert [e.cursor for f in sub.frames for e in events_of(f)] == ["ep.1"]


async def test_an_occasional_event_next_to_another_costs_no_batching_delay() -> None:
    hub = make_hub(interval_s=10.0)
    sub = Recorder()
    hub.channel("r").subscribers.add(sub)
    hub.on_records([record(1)])  # a viewer count, say
    hub.on_records([record(2)])  # a comment a moment later: within the burst, flushed at once
    assert [[e.cursor for e in events_of(f)] for f in sub.frames] == [["ep.1"], ["ep.2"]]


async def test_a_busy_room_coalesces_events_into_one_frame_per_tick() -> None:
    hub = make_hub(interval_s=0.1)
    sub = Recorder()
    hub.channel("r").subscribers.add(sub)
    hub.on_records([record(1)])  # flushes at once: the room was quiet
    hub.on_records([record(2)])  # and so does the next: the room's burst of two flushes
    for position in range(3, 13):
        hub.on_records([record(position)])
    assert len(sub.frames) == 2
    await asyncio.sleep(0.15)  # the tick came at 0.1 s
    assert len(sub.frames) == 3
    assert [e.cursor for e in events_of(sub.frames[2])] == [f"ep.{p}" for p in range(3, 13)]
    for position in range(13, 23):  # still busy: one frame a window, no new burst
        hub.on_records([record(position)])
    assert len(sub.frames) == 3
    await asyncio.sleep(0.1)  # the next tick is due at 0.2 s
    assert len(sub.frames) == 4


async def test_every_subscriber_gets_the_same_frame_object() -> None:
    hub = make_hub()
    subs = [Recorder() for _ in range(50)]
    hub.channel("r").subscribers.update(subs)
    hub.on_records([record(1), record(2)])
    assert len({id(s.frames[0]) for s in subs}) == 1
    assert len({id(s.frames[0].data) for s in subs}) == 1


async def test_a_subscriber_handed_over_mid_frame_gets_only_later_events() -> None:
    hub = make_hub()
    early, late = Recorder(), Recorder()
    late.min_position = 2
    hub.channel("r").subscribers.update({early, late})
    hub.on_records([record(1), record(2), record(3)])
    assert [e.cursor for e in events_of(early.frames[0])] == ["ep.1", "ep.2", "ep.3"]
    assert [e.cursor for e in events_of(late.frames[0])] == ["ep.3"]


async def test_rooms_without_local_subscribers_cost_nothing() -> None:
    hub = make_hub()
    hub.on_records([record(1, room="elsewhere")])
    assert "elsewhere" not in hub.channels


async def test_a_hot_room_sends_viewers_a_sample_but_every_critical_event_and_honest_counts() -> None:
    hub = make_hub(interval_s=0.05, budget=20.0)
    viewer, host = Recorder(), Recorder(full=True)
    hub.channel("r").subscribers.update({viewer, host})
    position = 0
    for _ in range(10):  # ten ticks of 100 normal events and one critical each
        batch = [record(position + i) for i in range(100)] + [record(position + 100, CRITICAL)]
        position += 101
        hub.on_records(batch)
        await asyncio.sleep(0.06)
    hub.flush(hub.channels["r"])
    received = [e for f in viewer.frames for e in events_of(f)]
    omitted = sum(rs.ConnectResponse.FromString(f.data).messages[0].event_batch.omitted_count for f in viewer.frames)
    assert len(received) + omitted == 1010
    assert sum(e.priority == CRITICAL for e in received) == 10
    assert len(received) - 10 <= 20 * 1.0 + 20  # about budget × elapsed, plus the first second's allowance
    assert len([e for f in host.frames for e in events_of(f)]) == 1010
    shared = {id(f) for f in viewer.frames} & {id(f) for f in host.frames}
    assert not shared or len(shared) < len(viewer.frames)


async def test_a_sampled_viewer_gets_the_newest_normal_events_of_a_tick() -> None:
    hub = make_hub(interval_s=10.0, budget=3.0)
    viewer = Recorder()
    hub.channel("r").subscribers.add(viewer)
    hub.on_records([record(p) for p in range(1, 11)])  # the allowance starts at a second's worth: 3
    (frame,) = viewer.frames
    assert [e.cursor for e in events_of(frame)] == ["ep.8", "ep.9", "ep.10"]
    assert rs.ConnectResponse.FromString(frame.data).messages[0].event_batch.omitted_count == 7


async def test_ephemeral_values_with_one_key_coalesce_to_the_latest_in_a_tick() -> None:
    hub = make_hub(interval_s=10.0)
    sub = Recorder()
    hub.channel("r").subscribers.add(sub)
    hub.on_records([record(0)])
    hub.on_records([record(1)])  # two flushes at once (the burst); the rest wait for the tick
    ephemeral = event_pb2.PRIORITY_EPHEMERAL
    hub.on_records([record(2, ephemeral, coalesce="likes"), record(3), record(4, ephemeral, coalesce="likes")])
    hub.flush(hub.channels["r"])
    assert [e.cursor for e in events_of(sub.frames[2])] == ["ep.3", "ep.4"]


def frame(room: str, size: int, critical: bool, count: int = 1, cursor: str = "c") -> Frame:
    data = wire.event_batch_message(wire.room_field(room), [wire.batch_entry(b"x" * size)])
    return Frame(room, data, 1, 1, cursor, count, critical, ())


async def test_outbox_sheds_normal_frames_and_reports_how_many_events_were_omitted() -> None:
    outbox = Outbox(max_bytes=10_000, max_write_bytes=1_000_000)
    for _ in range(30):
        assert outbox.put_frame(frame("r", 1000, critical=False, count=3))
    assert outbox.size <= 10_000
    data = await outbox.next_write()
    assert data is not None
    messages = rs.ConnectResponse.FromString(data).messages
    delivered = sum(len(m.event_batch.events) for m in messages)
    omitted = sum(m.event_batch.omitted_count for m in messages)
    assert delivered * 3 + omitted == 90
    assert omitted > 0


async def test_outbox_never_sheds_critical_frames_it_asks_for_a_resume_instead() -> None:
    outbox = Outbox(max_bytes=10_000, max_write_bytes=1_000_000)
    accepted = [outbox.put_frame(frame("r", 1000, critical=True)) for _ in range(30)]
    assert accepted[:5] == [True] * 5
    assert accepted[-1] is False
    assert outbox.size <= 10_000


async def test_one_write_carries_everything_queued_up_to_the_write_budget() -> None:
    outbox = Outbox(max_bytes=1_000_000, max_write_bytes=5_000)
    for i in range(20):
        outbox.put_frame(frame("r", 1000, critical=True, cursor=f"c{i}"))
    first = await outbox.next_write()
    assert first is not None
    assert 1 < len(rs.ConnectResponse.FromString(first).messages) < 20
    assert outbox.delivered["r"] != "c19"
    while outbox.size:
        await outbox.next_write()
    assert outbox.delivered["r"] == "c19"


async def test_a_closed_outbox_drains_then_ends() -> None:
    outbox = Outbox(max_bytes=1_000_000, max_write_bytes=5_000)
    outbox.put_control(b"x")
    outbox.close()
    assert await outbox.next_write() == b"x"
    assert await outbox.next_write() is None


async def test_the_batching_window_widens_to_keep_writes_within_the_budget() -> None:
    hub = Hub(
        epoch_of=lambda _: "ep", interval_s=0.025, max_frame_bytes=64 * 1024, recent_per_room=100,
        write_budget_per_s=10_000,
    )  # fmt: skip
    ch = hub.channel("r")
    subs = [Recorder() for _ in range(1000)]
    for sub in subs[:100]:
        hub.attach(ch, sub)
    assert hub.interval() == 0.025  # 100 subscribers x 40 flushes/s fits the budget
    for sub in subs[100:]:
        hub.attach(ch, sub)
    assert hub.interval() == 0.1  # 1000 subscribers: at most 10 writes a second each
    hub.drop_channel("r")
    assert hub.subscribers == 0
