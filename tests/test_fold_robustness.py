"""One bad event in the log never makes a room unjoinable (issue 12, part 2).

Validation keeps bad values out at ingest (tests/test_validation_generated.py); these
tests put them in the log anyway, DIRECTLY through each backend (the embedded log and
the Kafka test broker), as an older version, a bug or another writer could have: the
mute until 2^62 s of the issue, a checkpoint whose bytes do not parse, a checkpoint that
parses but holds values out of range, a checkpoint claiming a position after its own,
an event whose bytes are garbage, an event with an invalid publish time, a slow mode of
2^62 s. Then the node folds the room (join), restarts and folds it again (join): every
join is OK, the valid events after the bad ones are folded (snapshot) and delivered
(live), and each skipped event is an ERROR line and a barrage.fold.skipped count.

The insights fold and the assistant's live state get the same bad events in-process.
"""

from __future__ import annotations

import re
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from google.protobuf import timestamp_pb2

from barrage.clients.assistant.state import LiveState
from barrage.server.commerce import checkpoint_pb2
from barrage.server.commerce.state import checkpoint_payload
from barrage.server.core import policy
from barrage.server.insights.engine import InsightsConfig, RoomInsights
from barrage.server.log.base import Backend, LogEntry
from barrage.server.log.embedded import open_embedded
from barrage.server.log.kafka import open_kafka
from barrage.v1 import event_pb2 as ev
from barrage.v1 import room_service_pb2 as rs
from tests.kafka_broker import KafkaBroker, running_broker
from tests.server_process import ServerProcess, free_port
from tests.wire_client import Admin, RawStream

GARBAGE = b"\xff\xfe\x00garbage that is not an Event\x0a\xff"


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(time.time_ns())
    return ts


def event(room_id: str, payload: ev.Payload, priority: int) -> ev.Event:
    return ev.Event(
        room_id=room_id,
        event_id=uuid.uuid4().hex,
        sender=ev.Sender(user_id="ops", display_name="Ops", role=ev.ROLE_SERVICE),
        publish_time=_now(),
        priority=priority,  # type: ignore[arg-type]
        payload=payload,
    )


def pinned(product_id: str) -> ev.Payload:
    price = ev.Money(amount_minor=19_900, currency="CNY")
    return ev.Payload(
        product_pinned=ev.ProductPinned(product=ev.Product(product_id=product_id, title="T", price=price))
    )


def bad_events(room_id: str, epoch: str) -> list[LogEntry]:
    """What validation would refuse or never writes, as log entries."""
    mute = ev.Payload(user_muted=ev.UserMuted(user_id="troll"))
    mute.user_muted.until.seconds = 2**62  # the value
    checkpoint = checkpoint_pb2.RoomCheckpoint(position=10**6, epoch=epoch, like_total=5)
    checkpoint.muted.add(user_id="troll").until.seconds = 2**62
    checkpoint.node_viewers.add(node_id="n", node_viewers=1)  # and no node_viewers_time beside it
    bad_time = event(room_id, ev.Payload(comment=ev.Comment(text="when?")), policy.NORMAL)
    bad_time.publish_time.nanos = -5
    slow = ev.Payload(slow_mode=ev.SlowMode())
    slow.slow_mode.min_interval.seconds = 2**62
    # Valid values, but a position after its own: applied, it would skip every event after it.
    ahead = checkpoint_payload(checkpoint_pb2.RoomCheckpoint(position=10**12, epoch=epoch))
    return [
        LogEntry(event(room_id, mute, policy.CRITICAL).SerializeToString(), policy.CRITICAL),
        LogEntry(GARBAGE, policy.INTERNAL),  # a checkpoint that does not parse
        LogEntry(
            event(room_id, checkpoint_payload(checkpoint), policy.INTERNAL).SerializeToString(),
            policy.INTERNAL,
        ),
        LogEntry(GARBAGE, policy.CRITICAL),  # an event that does not parse
        LogEntry(bad_time.SerializeToString(), policy.NORMAL),
        LogEntry(event(room_id, slow, policy.CRITICAL).SerializeToString(), policy.CRITICAL),
        LogEntry(event(room_id, ahead, policy.INTERNAL).SerializeToString(), policy.INTERNAL),
    ]


async def append_directly(backend: Backend, room_id: str) -> None:
    """The bad events, then a valid one after them, around every check of the gateway."""
    await backend.log.start()
    try:
        entries = bad_events(room_id, backend.log.epoch(room_id))
        after = event(room_id, pinned("p-after"), policy.CRITICAL).SerializeToString()
        results = await backend.log.append(room_id, [*entries, LogEntry(after, policy.CRITICAL)])
        assert len(results) == len(entries) + 1
    finally:
        await backend.log.close()


# ----------------------------------------------------------------------------- backends


@pytest.fixture(scope="module")
def broker() -> Iterator[KafkaBroker]:
    """One test broker for the module (each test uses a topic of its own)."""
    with running_broker() as started:
        yield started


class Setup:
    """A node on one backend, and a way to write to that backend around the node."""

    def __init__(self, node: ServerProcess, backend: Backend) -> None:
        self.node = node
        self.backend = backend


@pytest.fixture(params=["embedded", "kafka"])
async def setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setup]:
    metrics = ("--metrics-listen", f"127.0.0.1:{free_port()}")
    if request.param == "embedded":
        data = tmp_path / "data"
        node = ServerProcess(data, args=metrics)
        backend = open_embedded(str(data))
    else:
        broker: KafkaBroker = request.getfixturevalue("broker")
        url = broker.url(f"fold-{uuid.uuid4().hex[:8]}")
        node = ServerProcess(tmp_path / "data", log_url=url, args=metrics)
        backend = open_kafka(url)
    node.start()
    try:
        yield Setup(node, backend)
    finally:
        node.stop()


def skipped_metric(node: ServerProcess) -> dict[str, float]:
    """barrage_fold_skipped_total by (fold, event type), from the node's Prometheus endpoint."""
    port = node.args[node.args.index("--metrics-listen") + 1]
    text = urllib.request.urlopen(f"http://{port}/metrics", timeout=5).read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("barrage_fold_skipped_total{"):
            fold = re.search(r'barrage_fold="([^"]*)"', line)
            kind = re.search(r'barrage_event_type="([^"]*)"', line)
            assert fold is not None and kind is not None, line
            counts[f"{fold.group(1)}/{kind.group(1)}"] = float(line.rsplit(" ", 1)[1])
    return counts


async def join_and_see_live(node: ServerProcess, room_id: str, text: str) -> rs.JoinResult:
    """Join as a viewer (OK), and see a comment posted after the join arrive live."""
    viewer = RawStream(node.target)
    admin = Admin(node.target, node.token("shop", role="service"))
    try:
        await viewer.hello(node.token(f"viewer-{uuid.uuid4().hex[:6]}"))
        joined = await viewer.join(room_id)
        assert joined.status.code == 0, joined.status
        await admin.publish(room_id, uuid.uuid4().hex, ev.Payload(comment=ev.Comment(text=text)))
        events = await viewer.wait_events(room_id, 1, kind="comment")
        assert [e.payload.comment.text for e in events] == [text]
        return joined
    finally:
        await viewer.close()
        await admin.close()


# ----------------------------------------------------------------------------- tests


async def test_bad_events_in_the_log_never_make_a_room_unjoinable(setup: Setup) -> None:
    node = setup.node
    room_id = f"room-{uuid.uuid4().hex[:8]}"
    admin = Admin(node.target, node.token("shop", role="service"))
    await admin.create_room(room_id)
    await admin.publish(room_id, "pin-before", pinned("p-before"))
    await admin.close()

    node.terminate()  # the embedded log belongs to one process; Kafka's is shared anyway
    await append_directly(setup.backend, room_id)
    node.start()

    joined = await join_and_see_live(node, room_id, "first join")
    assert joined.snapshot.pinned_product.product_id == "p-after"  # folded past every bad event
    assert joined.snapshot.slow_mode.seconds == 0  # the slow mode of 2^62 s was skipped, not applied
    troll = RawStream(node.target)
    await troll.hello(node.token("troll"))
    await troll.join(room_id)
    result = await troll.send_comment(room_id, "t-1", "not muted: that mute could not be applied")
    assert result.status.code == 0, result.status
    await troll.close()
    skipped = skipped_metric(node)
    assert skipped.get("room_state/user_muted", 0) >= 1, skipped
    assert skipped.get("room_state/slow_mode", 0) >= 1, skipped
    assert skipped.get("room_state/comment", 0) >= 1, skipped  # the invalid publish time
    assert skipped.get("room_state/undecodable", 0) >= 1, skipped
    assert skipped.get("checkpoint/room_checkpoint", 0) >= 3, skipped  # ahead of itself, out of range, garbage

    node.restart()  # kill -9, then start on the same log: the room is folded again
    joined = await join_and_see_live(node, room_id, "after the restart")
    assert joined.snapshot.pinned_product.product_id == "p-after"
    logs = node.logs()
    assert "skipped the user_muted event" in logs
    assert "log listener failed" not in logs
    assert "Traceback" not in logs


def test_insights_skip_what_they_cannot_fold() -> None:
    engine = RoomInsights("r", InsightsConfig())
    for position, entry in enumerate(bad_events("r", "e"), start=1):
        assert engine.fold_bytes(position, entry.payload)
    gift = ev.Payload(gift=ev.Gift(gift_id="rose", count=2, unit_value=ev.Money(amount_minor=100, currency="CNY")))
    huge_gift = ev.Payload()
    huge_gift.CopyFrom(gift)
    huge_gift.gift.count = 2**32 - 1
    assert engine.fold(20, event("r", huge_gift, policy.NORMAL))
    assert engine.fold(21, event("r", gift, policy.NORMAL))
    assert engine.position == 21
    total = sum(b.gifts for b in engine.buckets.values())
    assert total == 2  # the valid gift, not the out-of-range one
    assert engine.snapshot().totals.gifts == 2  # and the figures still answer


def test_the_assistants_live_state_skips_what_it_cannot_apply() -> None:
    state = LiveState()
    sale = ev.Payload(
        flash_sale_started=ev.FlashSaleStarted(
            sale_id="s-1", product=ev.Product(product_id="p-1", title="Jacket"), stock=3
        )
    )
    sale.flash_sale_started.end_time.seconds = 2**62
    slow = ev.Payload(slow_mode=ev.SlowMode())
    slow.slow_mode.min_interval.seconds = 2**62
    assert not state.apply(event("r", sale, policy.CRITICAL))
    assert not state.apply(event("r", slow, policy.CRITICAL))
    assert state.skipped == 2
    assert state.sale is None and state.slow_mode_s == 0.0  # nothing half-applied
    assert state.apply(event("r", pinned("p-2"), policy.CRITICAL))
    assert state.pinned_id == "p-2"
    snapshot = rs.RoomSnapshot(room_id="r")
    snapshot.slow_mode.seconds = 2**62
    snapshot.pinned_product.CopyFrom(pinned("p-3").product_pinned.product)
    state.reset(snapshot)  # does not raise
    assert state.pinned_id == "p-3"
    assert state.skipped == 3


async def test_a_bad_event_arriving_live_is_skipped_and_the_room_goes_on(broker: KafkaBroker, tmp_path: Path) -> None:
    """Kafka: another writer of the topic appends bad events while a node serves the room."""
    url = broker.url(f"fold-live-{uuid.uuid4().hex[:8]}")
    node = ServerProcess(tmp_path / "data", log_url=url, args=("--metrics-listen", f"127.0.0.1:{free_port()}"))
    node.start()
    writer = open_kafka(url)
    viewer = RawStream(node.target)
    try:
        room_id = f"room-{uuid.uuid4().hex[:8]}"
        admin = Admin(node.target, node.token("shop", role="service"))
        await admin.create_room(room_id)
        await admin.close()
        await viewer.hello(node.token("viewer-live"))
        assert (await viewer.join(room_id)).status.code == 0

        await writer.log.start()
        mute = ev.Payload(user_muted=ev.UserMuted(user_id="troll"))
        mute.user_muted.until.seconds = 2**62
        slow = ev.Payload(slow_mode=ev.SlowMode())
        slow.slow_mode.min_interval.seconds = 2**62
        entries = [
            LogEntry(event(room_id, mute, policy.CRITICAL).SerializeToString(), policy.CRITICAL),
            LogEntry(event(room_id, slow, policy.CRITICAL).SerializeToString(), policy.CRITICAL),
            LogEntry(GARBAGE, policy.CRITICAL),  # bytes that do not parse: never sent to anyone
            LogEntry(event(room_id, pinned("p-live"), policy.CRITICAL).SerializeToString(), policy.CRITICAL),
        ]
        await writer.log.append(room_id, entries)

        # Delivered as logged where they parse (the stream stays readable); the valid one after them too.
        pins = await viewer.wait_events(room_id, 1, kind="product_pinned")
        assert pins[0].payload.product_pinned.product.product_id == "p-live"
        # The node's folded state went on past them: a second join sees the pin, no slow mode.
        joined = await join_and_see_live(node, room_id, "still live")
        assert joined.snapshot.pinned_product.product_id == "p-live"
        assert joined.snapshot.slow_mode.seconds == 0
        skipped = skipped_metric(node)
        assert skipped.get("room_state/user_muted", 0) == 1, skipped
        assert skipped.get("room_state/slow_mode", 0) == 1, skipped
        assert skipped.get("live/undecodable", 0) == 1, skipped
    finally:
        await viewer.close()
        await writer.log.close()
        node.stop()
