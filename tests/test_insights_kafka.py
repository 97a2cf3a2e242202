"""Insights on the Kafka log: two nodes in the consumer group "<topic>.insights" answer the
same figures for a room whichever owns its partition, and a node killed with -9 and
started again (its partitions rebuilt from their start) answers them unchanged."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from barrage.v1 import event_pb2, insights_service_pb2_grpc
from barrage.v1 import insights_service_pb2 as ipb
from tests.kafka_broker import KafkaBroker, running_broker
from tests.server_process import ServerProcess
from tests.wire_client import Admin, RawStream


@pytest.fixture
def broker() -> Iterator[KafkaBroker]:
    with running_broker() as started:
        yield started


def figures(insights: ipb.RoomInsights) -> tuple[Any, ...]:
    t = insights.totals
    return (
        insights.through_cursor,
        (t.comments, t.questions, t.joins, t.leaves, t.purchases, t.peak_viewers, t.viewers),
        [(b.joins, b.leaves, b.viewers, b.comments) for b in insights.buckets],
        [(q.group_id, q.count, q.answered) for q in insights.questions],
        [
            (p.product_id, p.mentions, p.questions, p.purchases_during_pin, p.viewers_during_pin)
            for p in insights.products
        ],
    )


def same(figures: tuple[Any, ...]) -> tuple[Any, ...]:
    """What a restart must not change: all but the cursor (new events follow) and the first bucket only
    (the next minute may have begun meanwhile)."""
    _cursor, totals, buckets, questions, products = figures
    return totals, buckets[:1], questions, products


async def get(node: ServerProcess, room: str) -> ipb.RoomInsights:
    async with grpc.aio.insecure_channel(node.target) as channel:
        stub = insights_service_pb2_grpc.RoomInsightsServiceStub(channel)
        metadata = (("authorization", f"Bearer {node.token('ops', role='service')}"),)
        response = await stub.GetInsights(ipb.GetInsightsRequest(room_id=room), metadata=metadata)
        return response.insights  # type: ignore[no-any-return]


async def agreed(nodes: list[ServerProcess], room: str, comments: int) -> tuple[Any, ...]:
    """Wait until every node answers the same figures with `comments` comments; those figures.

    Up to two minutes: after a restart the group may rebalance (and the nodes rebuild their
    rooms) once more when the broker notices the dead member, which a loaded machine slows."""
    seen: list[tuple[Any, ...]] = []
    try:
        async with asyncio.timeout(120):
            while True:
                seen = [figures(await get(node, room)) for node in nodes]
                if seen[0][1][0] == comments and all(f == seen[0] for f in seen):
                    return seen[0]
                await asyncio.sleep(0.3)
    except TimeoutError:
        raise AssertionError(f"{room}: the nodes never agreed; last answers {seen}") from None


async def until_logged(node: ServerProcess, line: str, times: int, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while node.logs().count(line) < times:
            await asyncio.sleep(0.2)


@pytest.mark.timeout(420)  # two nodes, a kill -9 and a restart, and up to two minutes to agree twice
async def test_nodes_agree_whoever_owns_the_partition_and_a_restart_changes_nothing(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    url = broker.url(f"rooms-{uuid.uuid4().hex[:8]}") + "?partitions=4&replication_factor=1"
    nodes = [ServerProcess(tmp_path / f"n{i}", log_url=url) for i in range(2)]
    streams: list[RawStream] = []
    admin: Admin | None = None
    try:
        for node in nodes:
            node.start(timeout_s=60)
        rooms = [f"room-{i}" for i in range(4)]  # likely spread over both nodes' partitions
        admin = Admin(nodes[0].target, nodes[0].token("ops", role="service"))
        for room in rooms:
            await admin.create_room(room, room)
        card = event_pb2.Product(
            product_id="lip", title="Dior 999 口红", price=event_pb2.Money(amount_minor=100, currency="CNY")
        )
        for i in range(6):
            stream = RawStream(nodes[i % 2].target)
            streams.append(stream)
            await stream.hello(nodes[i % 2].token(f"v{i}"))
            for room in rooms:
                await stream.join(room)
        for room in rooms:
            await admin.publish(
                room, f"pin-{room}", event_pb2.Payload(product_pinned=event_pb2.ProductPinned(product=card))
            )
            for i, text in enumerate(("这个多少钱？", "how much is it?", "口红包邮吗", "好看")):
                await streams[i].send_comment(room, f"{room}-{i}", text)
            buyer = event_pb2.Sender(user_id="v1")
            purchase = event_pb2.Purchase(buyer=buyer, product_id="lip", quantity=1)
            await admin.publish(room, f"buy-{room}", event_pb2.Payload(purchase=purchase))
        await streams[5].close()  # one viewer leaves every room
        before = {room: await agreed(nodes, room, 4) for room in rooms}
        for room in rooms:
            _, totals, _, questions, products = before[room]
            assert totals[:5] == (4, 3, 6, 1, 1) and totals[6] == 5  # the peak is at 1 s resolution: not checked
            assert questions == [("price@lip", 2, False), ("shipping@lip", 1, False)]
            assert products == [("lip", 1, 3, 1, 6)]

        # Both nodes had a share of the partitions: the figures above came from owners and followers alike.
        marker = "assigned: rebuilding their rooms from the start"
        for node in nodes:
            await until_logged(node, marker, 1, timeout_s=60)
        nodes[0].kill()
        nodes[0].start(timeout_s=60)
        after = {room: same(await agreed(nodes, room, 4)) for room in rooms}  # new events since: not the cursor
        assert after == {room: same(figures) for room, figures in before.items()}
        # Once the group has given the restarted node its share again (rebuilt from the partitions'
        # start), the figures are still the same. The test broker may take long to notice the dead member.
        with contextlib.suppress(TimeoutError):
            await until_logged(nodes[0], marker, 2, timeout_s=20)
        rebuilt = {room: same(await agreed(nodes, room, 4)) for room in rooms}
        assert rebuilt == after
    finally:
        for stream in streams:
            with contextlib.suppress(Exception):
                await stream.close()
        if admin is not None:
            await admin.close()
        for node in nodes:
            node.stop()
