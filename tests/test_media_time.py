"""Interactions in step with the picture (issue 19): media clock, media_time, MediaSync.

The host's app reports its media timeline; every event accepted afterwards carries
media_time; a viewer whose player runs behind the camera shows each event when its
player reaches it. The scheduler takes a clock function, so the player's seconds here
are a fake clock's: exact, and fast.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from barrage.clients.admin import AdminClient
from barrage.clients.insights import InsightsClient
from barrage.clients.sdk import (
    BarrageError,
    Client,
    MediaSync,
    Omitted,
    PlayerTime,
    RoomItem,
    SendError,
    Subscription,
    SubscriptionEnded,
)
from barrage.server.commerce.state import RoomState
from barrage.server.core import media_clock
from barrage.server.core.errors import ApiError
from barrage.v1 import event_pb2
from tests.cluster import OK, Cluster, joined, send_payload
from tests.kafka_broker import running_broker
from tests.server_process import ROOT, ServerProcess
from tests.wire_client import Admin

CRITICAL = event_pb2.PRIORITY_CRITICAL
NORMAL = event_pb2.PRIORITY_NORMAL


# ------------------------------------------------------------------------ helpers


class FakeTime:
    """A clock the test moves."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Player:
    """A simulated video player on a FakeTime: plays, stalls (rebuffer), seeks, restarts."""

    def __init__(self, clock: FakeTime, timeline: str, position_s: float) -> None:
        self._clock = clock
        self.timeline = timeline
        self._base = position_s
        self._since = clock.now
        self.playing = True

    def position(self) -> float:
        return self._base + (self._clock.now - self._since if self.playing else 0.0)

    def __call__(self) -> PlayerTime:
        return PlayerTime(self.position(), self.timeline)

    def seek(self, position_s: float, timeline: str | None = None) -> None:
        self._base, self._since = position_s, self._clock.now
        self.timeline = timeline or self.timeline

    def stall(self) -> None:
        self._base, self.playing = self.position(), False

    def resume(self) -> None:
        self._since, self.playing = self._clock.now, True


def make_event(
    event_id: str,
    at_s: float | None,
    *,
    timeline: str = "live-1",
    kind: str = "flash_sale_started",
    user: str = "host",
) -> event_pb2.Event:
    payload = event_pb2.Payload()
    if kind == "flash_sale_started":
        payload.flash_sale_started.sale_id = event_id
    elif kind == "comment":
        payload.comment.text = event_id
    elif kind == "message_deleted":
        payload.message_deleted.event_id = event_id.removeprefix("del-")
    priority = NORMAL if kind == "comment" else CRITICAL
    event = event_pb2.Event(
        room_id="r", event_id=event_id, priority=priority, payload=payload, sender=event_pb2.Sender(user_id=user)
    )
    if at_s is not None:
        event.media_time.timeline_id = timeline
        event.media_time.position.FromNanoseconds(round(at_s * 1e9))
    return event


def events_of(items: list[RoomItem]) -> list[event_pb2.Event]:
    return [item for item in items if isinstance(item, event_pb2.Event)]


def clock_event(timeline: str, position_ms: int, at_ms: int, *, paused: bool = False) -> event_pb2.Event:
    event = event_pb2.Event(room_id="r", event_id=f"clock-{at_ms}")
    event.payload.media_clock.timeline_id = timeline
    event.payload.media_clock.paused = paused
    event.payload.media_clock.position.FromMilliseconds(position_ms)
    event.publish_time.FromMilliseconds(at_ms)
    return event


def ts(ms: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


COMMENT = event_pb2.Payload(comment=event_pb2.Comment(text="hi"))


# ------------------------------------------------------ the node: clock and stamp


def accepted(state: RoomState, at_ms: int, payload: event_pb2.Payload = COMMENT) -> event_pb2.Event:
    """An event as the node logs it (media_clock.serialized is what ingest calls)."""
    event = event_pb2.Event(room_id="r", event_id="e", publish_time=ts(at_ms), payload=payload)
    return event_pb2.Event.FromString(media_clock.serialized(event, payload, ts(at_ms), state))


def test_an_event_is_stamped_from_the_latest_clock_at_millisecond_precision() -> None:
    state = RoomState("r")
    assert not accepted(state, 1_000_000).HasField("media_time"), "no clock, no media_time"
    state.fold(1, clock_event("live-1", 100_000, 1_000_000))
    stamped = accepted(state, 1_001_234).media_time
    assert stamped.timeline_id == "live-1"
    assert stamped.position.ToMilliseconds() == 101_234
    assert stamped.position.nanos % 1_000_000 == 0
    # The clock report itself carries no media_time (it is the clock).
    report = event_pb2.Payload(media_clock=event_pb2.MediaClock(timeline_id="live-1"))
    assert not accepted(state, 1_001_234, report).HasField("media_time")
    # A clock silent for longer than STALE_MS: the stream stopped; nothing is stamped.
    assert accepted(state, 1_000_000 + media_clock.STALE_MS).HasField("media_time")
    assert not accepted(state, 1_000_001 + media_clock.STALE_MS).HasField("media_time")
    # A stream restart is a new timeline: positions start again from its report.
    state.fold(2, clock_event("live-2", 0, 1_002_000))
    restarted = accepted(state, 1_002_500).media_time
    assert (restarted.timeline_id, restarted.position.ToMilliseconds()) == ("live-2", 500)


@pytest.mark.parametrize("position_ms", [0, 1, 999, 1_000, 127_000, 3_600_123, 366 * 86_400_000])
@pytest.mark.parametrize("timeline", ["t", "live-2026-12-06T03:00:00Z-" + "x" * 37])
def test_the_stamped_bytes_are_what_protobuf_would_write(position_ms: int, timeline: str) -> None:
    """The field is appended as bytes at ingest: they must equal protobuf's own encoding."""
    state = RoomState("r")
    state.fold(1, clock_event(timeline, position_ms, 1_000_000))
    event = event_pb2.Event(room_id="r", event_id="e", publish_time=ts(1_000_000), payload=COMMENT)
    expected = event_pb2.Event()
    expected.CopyFrom(event)
    expected.media_time.timeline_id = timeline
    expected.media_time.position.FromMilliseconds(position_ms)
    assert media_clock.serialized(event, COMMENT, ts(1_000_000), state) == expected.SerializeToString()


def test_a_paused_stream_holds_its_clock() -> None:
    state = RoomState("r")
    state.fold(1, clock_event("live-1", 100_000, 1_000_000, paused=True))
    assert accepted(state, 1_004_000).media_time.position.ToMilliseconds() == 100_000
    state.fold(2, clock_event("live-1", 100_000, 1_005_000))  # playing again
    assert accepted(state, 1_005_300).media_time.position.ToMilliseconds() == 100_300


@pytest.mark.parametrize("paused", [False, True])
def test_the_clock_survives_a_checkpoint(paused: bool) -> None:
    state = RoomState("r")
    state.fold(1, clock_event("live-1", 100_000, 1_000_000, paused=paused))
    restored = RoomState.from_checkpoint("r", state.checkpoint("epoch"))
    assert restored.media_clock == state.media_clock == media_clock.Clock("live-1", 100_000, 1_000_000, paused)


def test_reports_are_logged_only_when_they_change_the_clock() -> None:
    """Latest wins: a report the logged clock already predicts is not logged."""
    reports = media_clock.Reports()
    state = RoomState("r")

    def report(timeline: str, position_ms: int, now_ms: int, paused: bool = False) -> bool:
        payload = event_pb2.Payload(media_clock=event_pb2.MediaClock(timeline_id=timeline, paused=paused))
        payload.media_clock.position.FromMilliseconds(position_ms)
        return reports.should_log(state, "r", payload, now_ms)

    assert report("live-1", 100_000, 1_000_000), "the first report starts the clock"
    # Four reports a second of a stream in real time (with 20 ms of jitter): predicted.
    assert not report("live-1", 100_250, 1_000_250)
    assert not report("live-1", 100_520, 1_000_500)
    assert not report("live-1", 100_730, 1_000_750)
    assert report("live-1", 100_800, 1_001_000), "drifted 200 ms (the stream paused): logged"
    assert not report("live-1", 101_050, 1_001_250)
    assert report("live-1", 102_800, 1_003_000), "2 s after the last logged one: a keepalive"
    assert report("live-2", 0, 1_003_100), "a restart (new timeline) is logged at once"
    assert report("live-2", 400, 1_003_500, paused=True), "a pause is logged"
    assert not report("live-2", 400, 1_003_750, paused=True), "a paused clock stands still: predicted"
    assert not report("live-2", 410, 1_004_000, paused=True)
    assert report("live-2", 410, 1_004_250), "playing again"
    with pytest.raises(ApiError) as refused:
        report("", 0, 1_004_000)
    assert refused.value.reason == "INVALID_FIELD"
    assert refused.value.metadata == {"field": "payload.media_clock.timeline_id"}


# --------------------------------------------------------- the SDK: MediaSync alone


def test_a_flash_sale_shows_when_a_player_5_s_behind_reaches_it() -> None:
    """The host starts a flash sale at media time T; the player is at T - 5 s."""
    t = FakeTime()
    player = Player(t, "live-1", position_s=95.0)
    sync = MediaSync(player, clock=t, is_own=lambda user: user == "me")
    sale = make_event("sale-1", 100.0)
    sync.offer(sale)
    own = make_event("my-comment", 100.2, kind="comment", user="me")
    sync.offer(own)
    untimed = make_event("no-clock", None)
    sync.offer(untimed)
    assert events_of(sync.take()) == [own, untimed], "own events and events without media_time: at once"
    shown_at = None
    while shown_at is None and t.now < 1020:
        t.now += 0.01
        if sale in sync.take():
            shown_at = t.now
    assert shown_at is not None
    assert abs(player.position() - 100.0) <= 0.1, "shown within 100 ms of the player reaching T"
    assert shown_at - 1000.0 == pytest.approx(5.0, abs=0.1), "5 s after it arrived"
    assert sync.stats.released_in_step == 1 and sync.stats.released_by_hold == 0


def test_seek_rebuffer_and_restart_lose_nothing_and_show_nothing_twice() -> None:
    """A camera stream, events every 0.5 s, a player 5 s behind that stalls, seeks back,
    seeks forward and follows a stream restart onto a new timeline."""
    t = FakeTime(0.0)
    player = Player(t, "A", position_s=0.0)
    player.stall()  # the player starts 5 s after the camera
    sync = MediaSync(player, clock=t, normal_budget_per_s=1000)
    offered: list[event_pb2.Event] = []
    shown: list[tuple[float, str, float, event_pb2.Event]] = []
    camera = ("A", 0.0)  # (timeline, fake time at which its position was 0)
    script: dict[float, Callable[[], None]] = {
        5.0: player.resume,
        12.0: player.stall,  # rebuffer for 3 s
        15.0: player.resume,
        18.0: lambda: player.seek(player.position() - 4.0),  # seek back 4 s
        22.0: lambda: player.seek(21.0),  # seek forward, near the live edge
        28.0: lambda: player.seek(0.0, "B"),  # the player follows onto the new timeline
    }
    n = 0
    for step in range(6500):
        t.now = step / 100
        action = script.get(round(t.now, 2))
        if action is not None:
            action()
        if round(t.now, 2) == 26.0:
            camera = ("B", 26.0)  # the stream restarts: a new timeline
        # The camera makes an event every 0.5 s until 45 s; it arrives 0.1 s later.
        since = round(t.now - 0.1 - camera[1], 2)
        if t.now <= 45.1 and since > 0 and since * 2 == int(since * 2):
            n += 1
            kind = "comment" if n % 2 else "flash_sale_started"
            event = make_event(f"{camera[0]}-{since}", since, timeline=camera[0], kind=kind)
            offered.append(event)
            sync.offer(event)
        position = player.position()
        shown.extend((t.now, player.timeline, position, e) for e in events_of(sync.take()))
    ids = [e.event_id for _, _, _, e in shown]
    timelines = [e.media_time.timeline_id for e in offered]
    # The camera: events at 0.5 to 25.5 s on A, then at 0.5 to 19 s on B.
    assert (timelines.count("A"), timelines.count("B")) == (51, 38)
    assert len(ids) == len(set(ids)), "nothing shown twice"
    assert sorted(ids) == sorted(e.event_id for e in offered), "nothing lost"
    assert sync.held == 0 and sync.stats.omitted == 0 and sync.stats.released_by_hold == 0
    for _, timeline, position, event in shown:
        if timeline == event.media_time.timeline_id:
            # Never before the picture: on its own timeline, the player had reached it.
            assert position >= event.media_time.position.ToNanoseconds() / 1e9 - 1e-9, event.event_id
        else:
            assert (event.media_time.timeline_id, timeline) == ("A", "B"), "only the old timeline's rest shows early"


def test_a_player_that_does_not_play_still_shows_everything_after_the_hold() -> None:
    t = FakeTime()
    sync = MediaSync(lambda: None, clock=t)
    sale = make_event("sale-1", 100.0)
    sync.offer(sale)
    t.now += 14.99
    assert sync.take() == []
    t.now += 0.01
    assert sync.take() == [sale]
    assert sync.stats.released_by_hold == 1


def test_critical_events_are_never_dropped_normal_ones_are_budgeted() -> None:
    t = FakeTime()
    player = Player(t, "live-1", position_s=0.0)
    sync = MediaSync(player, clock=t, normal_budget_per_s=30, max_held_normal=200)
    comments = [make_event(f"c{i}", 10 + i / 100, kind="comment") for i in range(100)]
    sales = [make_event(f"s{i}", 10 + i, kind="flash_sale_started") for i in range(5)]
    for event in comments + sales:
        sync.offer(event)
    player.seek(60.0)  # a seek forward makes all of them due at once
    items = sync.take()
    shown = events_of(items)
    assert [e for e in shown if e.priority == CRITICAL] == sales
    assert len([e for e in shown if e.priority == NORMAL]) == 30
    assert sum(i.count for i in items if isinstance(i, Omitted)) == 70 == sync.stats.omitted


def test_held_normal_events_are_bounded_and_the_excess_reported() -> None:
    t = FakeTime()
    player = Player(t, "live-1", position_s=0.0)
    sync = MediaSync(player, clock=t, max_held_normal=10)
    for i in range(15):
        sync.offer(make_event(f"c{i}", 50.0, kind="comment"))
    assert sync.held == 10 and sync.stats.omitted == 5
    player.seek(50.0)
    items = sync.take()
    assert items[0] == Omitted("r", 5), "the omission is reported before the next event shown"
    assert [e.event_id for e in events_of(items)] == [f"c{i}" for i in range(5, 15)]


def test_a_deleted_message_that_is_still_held_is_never_shown() -> None:
    t = FakeTime()
    player = Player(t, "live-1", position_s=0.0)
    sync = MediaSync(player, clock=t)
    sync.offer(make_event("c1", 10.0, kind="comment"))
    sync.offer(make_event("c2", 10.0, kind="comment"))
    deletion = make_event("del-c1", 10.5, kind="message_deleted")
    sync.offer(deletion)
    assert sync.take() == [deletion], "moderation acts at once"
    player.seek(11.0)
    assert [e.event_id for e in events_of(sync.take())] == ["c2"]
    assert sync.stats.deleted_while_held == 1


def test_the_end_of_the_subscription_shows_what_is_left_in_order() -> None:
    t = FakeTime()
    sync = MediaSync(lambda: None, clock=t)
    first, second = make_event("a", 10.0), make_event("b", 11.0)
    sync.offer(first)
    sync.offer(second)
    end = SubscriptionEnded("r")
    sync.offer(end)
    assert sync.take() == [first, second, end]


# ------------------------------------------------- end to end: a real node over gRPC


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real node for this module's end-to-end tests (each has a room of its own)."""
    proc = ServerProcess(tmp_path_factory.mktemp("media-time") / "data")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@dataclass
class Show:
    room_id: str
    host: Client
    host_room: Subscription
    viewer: Client
    viewer_room: Subscription


@pytest.fixture
async def show(server: ServerProcess, room_id: str) -> AsyncIterator[Show]:
    async with AdminClient(server.target, server.token("hana", role="host")) as admin:
        await admin.create_room(room_id, title="live sale")
    async with (
        Client(server.target, server.token("hana", role="host")) as host,
        Client(server.target, server.token("vic")) as viewer,
    ):
        host_room = await host.join(room_id)
        viewer_room = await viewer.join(room_id)
        yield Show(room_id, host, host_room, viewer, viewer_room)


async def report_clock(show: Show, timeline: str, position_ms: int) -> event_pb2.Event:
    """The host reports its media clock; returns the logged report once the viewer has it
    (so the node has folded it: fan-out follows the fold)."""
    payload = event_pb2.Payload(media_clock=event_pb2.MediaClock(timeline_id=timeline))
    payload.media_clock.position.FromMilliseconds(position_ms)
    ack = await show.host.send_payload(show.room_id, payload)
    assert ack.cursor, "a report that changes the clock is logged"
    return await next_of(show.viewer_room, "media_clock")


async def next_of(room: AsyncIterator[RoomItem], kind: str) -> event_pb2.Event:
    async with asyncio.timeout(15):
        async for item in room:
            if isinstance(item, event_pb2.Event) and item.payload.WhichOneof("kind") == kind:
                return item
    raise AssertionError(f"no {kind}")


def flash_sale(sale_id: str) -> event_pb2.Payload:
    now = int(time.time())
    sale = event_pb2.FlashSaleStarted(
        sale_id=sale_id,
        product=event_pb2.Product(
            product_id="p1", title="Down jacket", price=event_pb2.Money(amount_minor=9_900, currency="CNY"), stock=5
        ),
        stock=5,
        start_time=timestamp_pb2.Timestamp(seconds=now),
        end_time=timestamp_pb2.Timestamp(seconds=now + 600),
    )
    return event_pb2.Payload(flash_sale_started=sale)


def ms(value: timestamp_pb2.Timestamp | duration_pb2.Duration) -> int:
    return int(value.ToMilliseconds())


async def test_end_to_end_the_flash_sale_shows_when_the_player_reaches_it(show: Show) -> None:
    """Over real gRPC: the node stamps the host's flash sale from the host's clock; a viewer
    5 s behind the camera shows it within 100 ms of its player reaching it."""
    clock = await report_clock(show, "live-1", 3_600_000)
    assert not clock.HasField("media_time")
    await show.host.send_payload(show.room_id, flash_sale("sale-1"))
    sale = await next_of(show.viewer_room, "flash_sale_started")
    # Exactly the clock's position plus the time since its anchor (both on the node's clock).
    assert sale.media_time.timeline_id == "live-1"
    assert ms(sale.media_time.position) == 3_600_000 + ms(sale.publish_time) - ms(clock.publish_time)
    t = FakeTime()
    at = sale.media_time.position.ToNanoseconds() / 1e9
    player = Player(t, "live-1", position_s=at - 5.0)
    sync = MediaSync(player, clock=t)
    sync.offer(sale)
    while sale not in sync.take():
        t.now += 0.01
        assert t.now < 1010
    assert abs(player.position() - at) <= 0.1
    assert t.now - 1000.0 == pytest.approx(5.0, abs=0.1)


async def test_end_to_end_in_step_iteration_and_the_viewers_own_comment(show: Show) -> None:
    """Subscription.in_step against a player (on the real clock) 1.5 s behind the live edge:
    the host's announcement waits for it, the viewer's own comment does not."""
    lag_s = 1.5
    clock = await report_clock(show, "live-1", 0)
    anchor_s = ms(clock.publish_time) / 1000

    def player() -> PlayerTime:
        return PlayerTime(time.time() - anchor_s - lag_s, "live-1")

    shown: dict[str, tuple[float, event_pb2.Event]] = {}

    async def watch() -> None:
        async for item in show.viewer_room.in_step(player):
            kind = item.payload.WhichOneof("kind") if isinstance(item, event_pb2.Event) else None
            if isinstance(item, event_pb2.Event) and kind in ("announcement", "comment"):
                shown[str(kind)] = (time.time(), item)
                if len(shown) == 2:
                    return

    watching = asyncio.create_task(watch())
    announce = event_pb2.Payload(announcement=event_pb2.Announcement(text="3, 2, 1!"))
    await show.host.send_payload(show.room_id, announce)
    await show.viewer.send(show.room_id, "me first")
    await asyncio.wait_for(watching, 15)

    def waited(kind: str) -> float:
        """From the event's acceptance by the node (its publish_time) to its display."""
        at, event = shown[kind]
        return at - ms(event.publish_time) / 1000

    # In step, the announcement shows when the player reaches it: lag_s after it was
    # accepted (its media_time is that far ahead of the player), never sooner.
    assert lag_s - 0.002 <= waited("announcement") <= lag_s + 1.0
    assert waited("comment") < lag_s, "the viewer's own comment did not wait for the picture"
    assert shown["comment"][0] < shown["announcement"][0]


async def test_history_pages_by_media_time_across_a_restart(server: ServerProcess, show: Show) -> None:
    await report_clock(show, "live-1", 10_000)
    await show.host.send_payload(show.room_id, event_pb2.Payload(announcement=event_pb2.Announcement(text="A")))
    await report_clock(show, "live-1", 20_000)  # the host skipped ahead: drift, logged
    await show.host.send_payload(show.room_id, event_pb2.Payload(announcement=event_pb2.Announcement(text="B")))
    await report_clock(show, "live-2", 0)  # the stream restarted
    await show.host.send_payload(show.room_id, event_pb2.Payload(announcement=event_pb2.Announcement(text="C")))
    await next_of(show.viewer_room, "announcement")

    def texts(events: list[event_pb2.Event]) -> list[str]:
        return [e.payload.announcement.text for e in events if e.payload.WhichOneof("kind") == "announcement"]

    async with AdminClient(server.target, server.token("ops", role="service")) as admin:
        page = await admin.list_events(show.room_id, media_time=event_pb2.MediaTime(timeline_id="live-1"))
        assert texts(list(page.events)) == ["A", "B", "C"]
        at_20 = event_pb2.MediaTime(timeline_id="live-1", position=duration_pb2.Duration(seconds=20))
        page = await admin.list_events(show.room_id, media_time=at_20)
        assert texts(list(page.events)) == ["B", "C"]
        first = page.events[0]
        assert first.media_time.timeline_id == "live-1" and ms(first.media_time.position) >= 20_000
        restarted = await admin.list_events(show.room_id, media_time=event_pb2.MediaTime(timeline_id="live-2"))
        assert texts(list(restarted.events)) == ["C"]
        assert restarted.events[-1].media_time.timeline_id == "live-2"
        beyond = event_pb2.MediaTime(timeline_id="live-1", position=duration_pb2.Duration(seconds=3600))
        assert list((await admin.list_events(show.room_id, media_time=beyond)).events) == []
        # Paging on from there is by cursor, as always.
        small = await admin.list_events(show.room_id, media_time=at_20, page_size=1)
        rest = await admin.list_events(show.room_id, cursor=small.next_cursor)
        assert texts([*small.events, *rest.events]) == ["B", "C"]
        paged = [event async for event in admin.history(show.room_id, media_time=at_20, page_size=1)]
        assert texts(paged) == ["B", "C"]
        with pytest.raises(BarrageError) as refused:
            await admin.list_events(show.room_id, media_time=at_20, cursor=small.next_cursor)
        assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert (refused.value.reason, refused.value.metadata["field"]) == ("INVALID_FIELD", "media_time")


def test_the_history_command_replays_from_a_media_time(server: ServerProcess, room_id: str) -> None:
    """`barrage history ROOM --media-time TIMELINE@SECONDS`, as a process."""

    async def record() -> None:
        async with AdminClient(server.target, server.token("hana", role="host")) as admin:
            await admin.create_room(room_id)
        async with Client(server.target, server.token("hana", role="host")) as host:
            room = await host.join(room_id)
            show = Show(room_id, host, room, host, room)
            for position_ms, text in ((10_000, "A"), (20_000, "B")):
                await report_clock(show, "live-1", position_ms)
                await host.send_payload(room_id, event_pb2.Payload(announcement=event_pb2.Announcement(text=text)))

    asyncio.run(record())
    common = ("--kind", "announcement", "--target", server.target, "--token", server.token("ops", role="service"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARRAGE_")}

    def history(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "barrage.cli", "history", room_id, *args, *common]
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=30, check=False)

    done = history("--media-time", "live-1@19.5")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["payload"]["announcement"]["text"] for line in lines] == ["B"]
    assert lines[0]["mediaTime"]["timelineId"] == "live-1"
    bad = history("--media-time", "live-1@soon")
    assert bad.returncode != 0 and "--media-time" in bad.stderr


def test_the_report_covers_a_stretch_of_the_recording(tmp_path: Path, room_id: str) -> None:
    """`barrage report ROOM --media-from live-1@20 --media-to live-1@40`: the insights of what
    happened while the stream played from 0:00:20 to 0:00:40 — not before, not after."""
    node = ServerProcess(tmp_path / "data", args=("--insights-bucket-s", "1"))
    node.start()
    try:

        async def record() -> None:
            async with AdminClient(node.target, node.token("hana", role="host")) as admin:
                await admin.create_room(room_id, title="recorded sale")
            async with (
                Client(node.target, node.token("hana", role="host")) as host,
                Client(node.target, node.token("vic")) as viewer,
            ):
                room = await host.join(room_id)
                await viewer.join(room_id)
                show = Show(room_id, host, room, host, room)
                # One second apart, so that each stretch has buckets of its own.
                for position_ms, comments in ((10_000, 2), (20_000, 3), (40_000, 1)):
                    await asyncio.sleep(1.2)
                    await report_clock(show, "live-1", position_ms)
                    await asyncio.sleep(1.2)
                    for n in range(comments):
                        await viewer.send(room_id, f"at {position_ms // 1000} s, comment {n}")
            async with InsightsClient(node.target, node.token("ops", role="service")) as insights:
                async with asyncio.timeout(15):
                    while (await insights.get(room_id)).totals.comments < 6:
                        await asyncio.sleep(0.2)

        asyncio.run(record())
        env = {k: v for k, v in os.environ.items() if not k.startswith("BARRAGE_")}

        def report(*args: str) -> subprocess.CompletedProcess[str]:
            token = node.token("ops", role="service")
            command = [sys.executable, "-m", "barrage.cli", "report", room_id, "--target", node.target]
            command += ["--token", token]
            return subprocess.run(
                [*command, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=False
            )

        out = tmp_path / "stretch"
        done = report("--out", str(out), "--media-from", "live-1@20", "--media-to", "live-1@40")
        assert done.returncode == 0, done.stderr
        figures = json.loads((out / "insights.json").read_text(encoding="utf-8"))
        assert int(figures["totals"]["comments"]) == 3, "only the comments made between 0:00:20 and 0:00:40"
        assert "stream time live-1@0:00:20 to live-1@0:00:40" in (out / "report.html").read_text(encoding="utf-8")
        whole = report("--out", str(tmp_path / "whole"), "--media-from", "live-1@0")
        assert whole.returncode == 0, whole.stderr
        assert int(json.loads((tmp_path / "whole" / "insights.json").read_text())["totals"]["comments"]) == 6
        beyond = report("--out", str(tmp_path / "none"), "--media-from", "live-1@3600")
        assert beyond.returncode == 1 and "reaches stream time live-1@1:00:00" in beyond.stderr
        both = report("--out", str(tmp_path / "none"), "--media-from", "live-1@0", "--start", "2026-12-06T00:00:00")
        assert both.returncode == 1 and "not both" in both.stderr
    finally:
        node.stop()


async def test_a_viewer_may_not_report_the_media_clock(show: Show) -> None:
    payload = event_pb2.Payload(media_clock=event_pb2.MediaClock(timeline_id="fake"))
    with pytest.raises(SendError) as refused:
        await show.viewer.send_payload(show.room_id, payload)
    assert (refused.value.code, refused.value.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_FORBIDDEN")


# ------------------------------------------------ across nodes: two nodes on Kafka


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_broker() as broker:
        cluster = Cluster(broker, tmp_path_factory.mktemp("media-cluster"), f"media-{uuid.uuid4().hex[:8]}", 2)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


async def test_the_clock_reaches_every_node_and_both_stamp_alike(two_nodes: Cluster, room_id: str) -> None:
    """The host reports on node 0; an event accepted by node 1 is stamped from that clock."""
    admin = Admin(two_nodes[0].target, two_nodes.token("hana", role="host"))
    try:
        await admin.create_room(room_id, "two nodes")
    finally:
        await admin.close()
    members = [
        (two_nodes[0].target, two_nodes.token("hana", role="host")),
        (two_nodes[1].target, two_nodes.token("vic")),
    ]
    async with joined(room_id, *members) as (host, viewer):
        report = event_pb2.Payload(media_clock=event_pb2.MediaClock(timeline_id="live-1"))
        report.media_clock.position.FromMilliseconds(7_200_000)
        assert (await send_payload(host, room_id, "clock-1", report)).status.code == OK
        (clock,) = await viewer.wait_events(room_id, 1, timeout=20, kind="media_clock")  # node 1 folded it
        assert (await viewer.send_comment(room_id, "c-1", "from node 1")).status.code == OK
        assert (await host.send_comment(room_id, "c-2", "from node 0")).status.code == OK
        comments = await host.wait_events(room_id, 2, timeout=20, kind="comment")
    for comment in comments:
        assert comment.media_time.timeline_id == "live-1"
        assert ms(comment.media_time.position) == 7_200_000 + ms(comment.publish_time) - ms(clock.publish_time)
