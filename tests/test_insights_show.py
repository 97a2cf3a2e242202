"""A scripted live show through a real server, with a kill -9 in the middle: the insights
after the show are exactly the figures the script implies.

Time is compressed: buckets of 3 s. Each phase starts just after a bucket boundary and
must finish inside that bucket (the test checks it); the restart takes however many
buckets it takes, and the expectations use the buckets the phases really ran in.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from barrage.clients.report import write_report
from barrage.v1 import event_pb2, insights_service_pb2_grpc
from barrage.v1 import insights_service_pb2 as ipb
from barrage.v1 import room_service_pb2 as rs
from tests.server_process import ServerProcess
from tests.wire_client import Admin

BUCKET_S = 3.0
ROOM = "spring-show"
LIP = "sku-lip"
SERUM = "sku-serum"


class Participant:
    """One stream in the room over a shared channel; drains what the server sends."""

    def __init__(self, channel: grpc.aio.Channel, user: str, token: str) -> None:
        self.user = user
        self.token = token
        self.channel = channel
        self._queue: asyncio.Queue[rs.ConnectRequest | None] = asyncio.Queue()
        self._call: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._waiters: dict[str, asyncio.Future[Any]] = {}
        self.cursor = ""
        self.acks: dict[str, rs.SendResult] = {}
        self.sent = 0

    async def _requests(self) -> AsyncIterator[rs.ConnectRequest]:
        while (item := await self._queue.get()) is not None:
            yield item

    def _expect(self, key: str) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[key] = future
        return future

    async def _read(self) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
            async for response in self._call:
                for message in response.messages:
                    kind = message.WhichOneof("kind")
                    if kind == "event_batch" and message.event_batch.events:
                        self.cursor = message.event_batch.events[-1].cursor
                    key = kind
                    if kind == "send_result":
                        key = f"send:{message.send_result.client_msg_id}"
                    waiter = self._waiters.pop(key, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(getattr(message, kind))

    async def join(self, resume: bool = False) -> None:
        connect = self.channel.stream_stream(
            "/barrage.v1.RoomService/Connect",
            request_serializer=rs.ConnectRequest.SerializeToString,
            response_deserializer=rs.ConnectResponse.FromString,
        )
        self._queue = asyncio.Queue()
        self._call = connect(self._requests())
        welcome = self._expect("welcome")
        self._reader = asyncio.create_task(self._read())
        await self._queue.put(rs.ConnectRequest(hello=rs.Hello(token=self.token)))
        async with asyncio.timeout(20):
            await welcome
            joined = self._expect("join_result")
            cursor = self.cursor if resume else ""
            await self._queue.put(rs.ConnectRequest(join_room=rs.JoinRoom(room_id=ROOM, resume_cursor=cursor)))
            result = await joined
        assert result.status.code == 0, result
        if resume:
            assert result.resume == rs.RESUME_OUTCOME_RESUMED, result
        if not self.cursor:
            self.cursor = result.snapshot.head_cursor

    async def send(self, payload: event_pb2.Payload, key: str) -> rs.SendResult:
        ack = self._expect(f"send:{key}")
        await self._queue.put(rs.ConnectRequest(send=rs.Send(room_id=ROOM, client_msg_id=key, payload=payload)))
        async with asyncio.timeout(20):
            result: rs.SendResult = await ack
        assert result.status.code == 0, result
        self.acks[key] = result
        return result

    async def comment(self, text: str, reply_to: str = "") -> str:
        self.sent += 1
        payload = event_pb2.Payload(comment=event_pb2.Comment(text=text, reply_to_event_id=reply_to))
        result = await self.send(payload, f"c-{self.user}-{self.sent}")
        return result.event_id

    async def leave(self) -> None:
        left = self._expect("leave_result")
        await self._queue.put(rs.ConnectRequest(leave_room=rs.LeaveRoom(room_id=ROOM)))
        async with asyncio.timeout(20):
            await left
        await self.close()

    async def close(self) -> None:
        await self._queue.put(None)
        if self._call is not None:
            self._call.cancel()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader


class Show:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.channels: list[grpc.aio.Channel] = []
        self.people: dict[str, Participant] = {}
        self.admin = Admin(server.target, server.token("ops", role="service"))
        self.stub: Any = None
        self.phase_buckets: list[int] = []

    def connect(self) -> None:
        self.channels = [grpc.aio.insecure_channel(self.server.target) for _ in range(4)]
        ops = grpc.aio.insecure_channel(self.server.target)
        self.channels.append(ops)
        self.stub = insights_service_pb2_grpc.RoomInsightsServiceStub(ops)
        self.admin = Admin(self.server.target, self.server.token("ops", role="service"))
        for i, person in enumerate(self.people.values()):
            person.channel = self.channels[i % 4]

    async def disconnect(self) -> None:
        for person in self.people.values():
            await person.close()
        for channel in self.channels:
            await channel.close()
        await self.admin.close()

    def person(self, user: str, role: str = "viewer") -> Participant:
        if user not in self.people:
            channel = self.channels[len(self.people) % 4]
            rooms = [ROOM] if role == "bot" else None  # a bot acts only in the rooms its token lists
            self.people[user] = Participant(channel, user, self.server.token(user, role=role, name=user, rooms=rooms))
        return self.people[user]

    async def insights(self, **request: Any) -> ipb.RoomInsights:
        metadata = (("authorization", f"Bearer {self.server.token('ops', role='service')}"),)
        response = await self.stub.GetInsights(ipb.GetInsightsRequest(room_id=ROOM, **request), metadata=metadata)
        return response.insights  # type: ignore[no-any-return]

    async def settle(self, **totals: int) -> ipb.RoomInsights:
        """Wait until the insights show these totals (the presence events are appended in the background)."""
        got: ipb.RoomInsights | None = None
        async with asyncio.timeout(15):
            while True:
                got = await self.insights()
                if all(getattr(got.totals, name) == value for name, value in totals.items()):
                    return got
                await asyncio.sleep(0.1)

    async def next_bucket(self) -> int:
        """Sleep until just after the next bucket boundary; that bucket's index."""
        now = time.time()
        bucket = int(now // BUCKET_S) + 1
        await asyncio.sleep(bucket * BUCKET_S - now + 0.05)
        self.phase_buckets.append(bucket)
        return bucket

    def check_in_bucket(self, bucket: int) -> None:
        assert time.time() < (bucket + 1) * BUCKET_S - 0.05, "phase overran its bucket (machine too slow?)"

    async def publish(self, key: str, payload: event_pb2.Payload) -> None:
        await self.admin.publish(ROOM, key, payload)

    async def joins(self, users: list[str], resume: bool = False) -> None:
        for i in range(0, len(users), 20):
            await asyncio.gather(*(self.person(u).join(resume) for u in users[i : i + 20]))

    async def leaves(self, users: list[str]) -> None:
        await asyncio.gather(*(self.people[u].leave() for u in users))


def viewers(a: int, b: int) -> list[str]:
    return [f"v{i:03d}" for i in range(a, b)]


def product(product_id: str, title: str, price: int) -> event_pb2.Payload:
    card = event_pb2.Product(
        product_id=product_id, title=title, price=event_pb2.Money(amount_minor=price, currency="CNY")
    )
    return event_pb2.Payload(product_pinned=event_pb2.ProductPinned(product=card))


def purchase(buyer: str, product_id: str, quantity: int = 1) -> event_pb2.Payload:
    return event_pb2.Payload(
        purchase=event_pb2.Purchase(buyer=event_pb2.Sender(user_id=buyer), product_id=product_id, quantity=quantity)
    )


def gift(giver: str, count: int, unit: int) -> event_pb2.Payload:
    value = event_pb2.Money(amount_minor=unit, currency="CNY")
    return event_pb2.Payload(
        gift=event_pb2.Gift(
            gift_id="g", gift_name="g", count=count, unit_value=value, giver=event_pb2.Sender(user_id=giver)
        )
    )


def comparable(insights: ipb.RoomInsights, last_bucket: int) -> dict[str, Any]:
    """What must not change across a restart: the series up to a bucket, questions, funnels."""
    width = int(BUCKET_S * 1000)
    rows = [
        (b.start_time.ToMilliseconds() // width, b.joins, b.leaves, b.viewers, b.comments, b.questions, b.purchases)
        for b in insights.buckets
        if b.start_time.ToMilliseconds() // width <= last_bucket
    ]
    questions = [(q.group_id, q.count, q.answered, q.answered_by, q.open_count) for q in insights.questions]
    products = [
        (p.product_id, p.mentions, p.questions, p.purchases_during_pin, p.viewers_during_pin) for p in insights.products
    ]
    return {"rows": rows, "questions": questions, "products": products}


async def test_scripted_show_with_a_restart_gives_exact_figures(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "data",
        args=("--insights-bucket-s", str(BUCKET_S), "--insights-poll-s", "0.1", "--insights-merge-s", "5"),
        env={"BARRAGE_SENDS_PER_SECOND": "1000", "BARRAGE_SEND_BURST": "1000"},
    )
    server.start()
    show = Show(server)
    try:
        show.connect()
        await show.admin.create_room(ROOM, "Spring show")
        host = show.person("host", "host")
        bot = show.person("assistant", "bot")
        await host.join()
        await bot.join()

        # Phase 0: 120 arrive; the lipstick is pinned; questions in Chinese and English; likes.
        b0 = await show.next_bucket()
        await show.joins(viewers(0, 120))
        await show.publish("pin-lip", product(LIP, "Dior 999 口红 Lipstick", 29900))
        lines = [
            (0, "这个多少钱？"), (1, "多少钱"), (2, "how much is it?"), (3, "口红多少钱呀"), (4, "Price please?"),
            (5, "口红包邮吗？"), (6, "does it ship free?"), (7, "好漂亮的口红"), (8, "lipstick looks great"),
            (9, "999 色号显白吗"), (10, "主播好美"),
        ]  # fmt: skip
        ids = {}
        for i, text in lines:
            ids[i] = await show.person(f"v{i:03d}").comment(text)
        for i in range(3):
            await show.person(f"v{100 + i:03d}").send(event_pb2.Payload(like=event_pb2.Like(count=10)), f"like-{i}")
        await show.settle(joins=120, comments=11, likes=30)
        show.check_in_bucket(b0)

        # Phase 1: 30 leave, 60 arrive; the host answers the price question by a reply; purchases, gifts;
        # more questions; the assistant answers shipping without a reply.
        b1 = await show.next_bucket()
        await show.leaves(viewers(90, 120))
        await show.settle(leaves=30)
        await show.joins(viewers(120, 180))
        await host.comment("只要299元", reply_to=ids[0])
        for i in range(10, 18):
            await show.publish(f"buy-{i}", purchase(f"v{i:03d}", LIP, 2 if i == 10 else 1))
        await show.publish("gift-1", gift("v011", 2, 5000))
        await show.publish("gift-2", gift("v012", 10, 100))
        for i, text in ((20, "有优惠券吗"), (21, "能便宜点吗？"), (22, "包邮吗")):
            await show.person(f"v{i:03d}").comment(text)
        await bot.comment("全国包邮，今天发货")
        await show.settle(joins=180, leaves=30, purchases=8, gifts=12, questions=11)
        show.check_in_bucket(b1)

        # Phase 2: the serum is pinned (the lipstick card goes); questions and purchases of both;
        # ten viewers reconnect (leave and resume at once: not a departure); twenty leave.
        b2 = await show.next_bucket()
        await show.publish("pin-serum", product(SERUM, "兰蔻 小黑瓶 精华液 Serum", 76000))
        lines = [
            (30, "精华液多少钱"), (31, "how much is the serum?"), (32, "这个适合敏感肌吗"), (33, "serum 多少ml?"),
            (34, "口红还有货吗"), (35, "小黑瓶真的好用"),
        ]  # fmt: skip
        for i, text in lines:
            await show.person(f"v{i:03d}").comment(text)
        for i in range(40, 45):
            await show.publish(f"buy-{i}", purchase(f"v{i:03d}", SERUM))
        await show.publish("buy-45", purchase("v045", LIP))
        await show.leaves(viewers(50, 60))
        await show.settle(leaves=40)
        await show.joins(viewers(50, 60), resume=True)
        await show.leaves(viewers(120, 140))
        before = await show.settle(joins=180, leaves=50, purchases=14, questions=16, comments=20)
        show.check_in_bucket(b2)

        # kill -9 mid-show, start again on the same data directory; everyone reconnects and resumes.
        server.kill()
        for person in show.people.values():
            await person.close()
        await show.disconnect()
        server.start()
        show.connect()
        after = await show.insights()
        assert comparable(after, b2) == comparable(before, b2)
        present = [u for u in show.people if u not in set(viewers(90, 120)) | set(viewers(120, 140))]
        await show.joins(present, resume=True)

        # Phase 3: the serum card goes; 40 leave, 60 arrive; questions with no known intent and no product.
        b3 = await show.next_bucket()
        await show.publish(
            "unpin-serum", event_pb2.Payload(product_unpinned=event_pb2.ProductUnpinned(product_id=SERUM))
        )
        await show.leaves(viewers(0, 40))
        await show.settle(leaves=90)
        await show.joins(viewers(180, 240))
        for i, text in ((181, "主播身高多少"), (182, "主播身高多少啊？"), (183, "主播穿的衣服是什么牌子")):
            await show.person(f"v{i:03d}").comment(text)
        await show.settle(joins=240, leaves=90, questions=19)
        show.check_in_bucket(b3)

        # Phase 4: the show ends; everyone still there leaves with it.
        b4 = await show.next_bucket()
        await show.admin.close_room(ROOM, "thanks!")
        await show.settle(leaves=240)
        show.check_in_bucket(b4)
        await asyncio.sleep(0.5)  # the gateway's own leave events for the removed streams follow the close
        final = await show.insights()
        assert final.final
        b_last = final.as_of_time.ToMilliseconds() // int(BUCKET_S * 1000)
        assert b_last in (b4, b4 + 1)

        check_final(final, b0, b1, b2, b3, b4, b_last)
        await check_watch_and_window(show, b1)
    finally:
        with contextlib.suppress(Exception):
            await show.disconnect()
        server.stop()


def check_final(final: ipb.RoomInsights, b0: int, b1: int, b2: int, b3: int, b4: int, b_last: int) -> None:
    width = int(BUCKET_S * 1000)
    t = final.totals
    assert (t.comments, t.unique_commenters, t.questions) == (23, 23, 19)
    assert (t.likes, t.gifts, [(m.amount_minor, m.currency) for m in t.gift_value]) == (30, 12, [(11000, "CNY")])
    assert (t.purchases, t.units_sold, t.unique_buyers) == (14, 15, 14)
    assert (t.joins, t.leaves, t.unique_viewers, t.viewers, t.peak_viewers) == (240, 240, 240, 0, 150)

    rows = {b.start_time.ToMilliseconds() // width: b for b in final.buckets}
    assert min(rows) in (b0 - 1, b0) and max(rows) == b_last and len(rows) == b_last - min(rows) + 1  # setup first
    expected = {b0: (120, 0, 120), b1: (60, 30, 150), b2: (0, 20, 130), b3: (60, 40, 150), b4: (0, 150, 0)}
    for b, row in rows.items():
        joins, leaves, viewers_at_end = expected.get(b, (0, 0, 130 if b0 < b < b4 else 0))  # idle: the restart
        assert (row.joins, row.leaves, row.viewers) == (joins, leaves, viewers_at_end), b
    assert (rows[b0].comments, rows[b0].questions, rows[b0].likes) == (11, 8, 30)
    assert (rows[b1].comments, rows[b1].questions, rows[b1].purchases, rows[b1].gifts) == (3, 3, 8, 12)
    assert (rows[b2].comments, rows[b2].questions, rows[b2].purchases, rows[b2].units_sold) == (6, 5, 6, 6)
    assert rows[b1].peak_viewers == 150 and rows[b4].peak_viewers == 150

    # Retention: remaining at the end of each bucket from the arrival bucket to the close.
    def cohort(arrivals: int, leaves_by_bucket: dict[int, int], start: int) -> list[int]:
        out, left = [], arrivals
        for b in range(start, b_last + 1):
            left -= leaves_by_bucket.get(b, 0)
            out.append(left)
        return out

    cohorts = {c.start_time.ToMilliseconds() // width: (c.arrivals, list(c.remaining)) for c in final.retention}
    assert cohorts == {
        b0: (120, cohort(120, {b1: 30, b3: 40, b4: 50}, b0)),
        b1: (60, cohort(60, {b2: 20, b4: 40}, b1)),
        b3: (60, cohort(60, {b4: 60}, b3)),
    }
    curve = {p.after_buckets: (p.arrivals, p.remaining) for p in final.retention_curve}
    assert curve[0] == (240, 240)
    assert curve[1] == (240, 90 + 40 + 0)

    groups = {q.group_id: q for q in final.questions}
    ranked = [q.group_id for q in final.questions]
    assert ranked[:2] == [f"price@{LIP}", f"shipping@{LIP}"]
    assert ranked[2:5] == [f"discount@{LIP}", f"price@{SERUM}", "q1"]
    assert {g: q.count for g, q in groups.items()} == {
        f"price@{LIP}": 5, f"shipping@{LIP}": 3, f"discount@{LIP}": 2, f"price@{SERUM}": 2, "q1": 2,
        f"color@{LIP}": 1, f"suitability@{SERUM}": 1, f"size@{SERUM}": 1, f"stock@{LIP}": 1, "q2": 1,
    }  # fmt: skip
    price = groups[f"price@{LIP}"]
    assert price.example == "这个多少钱？" and "how much is it?" in price.variants
    assert (price.answered, price.answered_by, price.answer, price.open_count) == (
        True,
        event_pb2.ROLE_HOST,
        "只要299元",
        0,
    )
    shipping = groups[f"shipping@{LIP}"]
    assert (shipping.answered, shipping.answered_by, shipping.open_count) == (True, event_pb2.ROLE_BOT, 0)
    assert not groups[f"discount@{LIP}"].answered and groups[f"discount@{LIP}"].open_count == 2
    assert groups["q1"].example == "主播身高多少" and groups["q1"].askers == 2

    products = {p.product_id: p for p in final.products}
    assert [p.product_id for p in final.products] == [LIP, SERUM]
    lip, serum = products[LIP], products[SERUM]
    assert (lip.pins, lip.mentions, lip.mentioners, lip.questions) == (1, 6, 6, 12)
    assert (lip.purchases_during_pin, lip.units_during_pin, lip.buyers_during_pin, lip.purchases) == (8, 9, 8, 9)
    assert lip.viewers_during_pin == 180 and lip.conversion == pytest.approx(8 / 180)
    assert (serum.pins, serum.mentions, serum.questions, serum.purchases_during_pin) == (1, 4, 4, 5)
    assert serum.viewers_during_pin == 150 and serum.conversion == pytest.approx(5 / 150)
    assert "口红" in lip.aliases and "lipstick" in lip.aliases and "serum" in serum.aliases
    assert final.top_terms and final.trending_terms


async def check_watch_and_window(show: Show, b1: int) -> None:
    width = int(BUCKET_S * 1000)
    window = await show.insights(
        start_time=_ts(b1 * width), end_time=_ts((b1 + 1) * width), options=ipb.InsightsOptions(top_questions=3)
    )
    assert [b.start_time.ToMilliseconds() // width for b in window.buckets] == [b1]
    assert (window.totals.joins, window.totals.leaves, window.totals.questions) == (60, 30, 3)
    assert [q.group_id for q in window.questions] == [f"discount@{LIP}", f"shipping@{LIP}"] and not window.final
    metadata = (("authorization", f"Bearer {show.server.token('ops', role='service')}"),)
    updates = [
        u
        async for u in show.stub.WatchInsights(
            ipb.WatchInsightsRequest(room_id=ROOM, recent_buckets=2), metadata=metadata
        )
    ]
    assert len(updates) == 1 and len(updates[0].insights.buckets) == 2  # a closed room: one final update
    # The CLI: the dashboard once (as a process), and the HTML report.
    token = show.server.token("ops", role="service")
    command = [sys.executable, "-m", "barrage.cli", "insights", ROOM, "--once", "--target", show.server.target]
    shown = await asyncio.to_thread(
        subprocess.run, [*command, "--token", token], capture_output=True, text=True, timeout=60, check=True
    )
    assert "Spring show" in shown.stdout and "what viewers ask" in shown.stdout and "final" in shown.stdout
    out = show.server.data_dir.parent / "report"
    page = await write_report(show.server.target, token, ROOM, out)
    text = page.read_text(encoding="utf-8")
    assert text.count('src="data:image/png;base64,') == 5 and "只要299元" in text and "主播身高多少" in text
    viewer = (("authorization", f"Bearer {show.server.token('v001')}"),)
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await show.stub.GetInsights(ipb.GetInsightsRequest(room_id=ROOM), metadata=viewer)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await show.stub.GetInsights(ipb.GetInsightsRequest(room_id="no-such-room"), metadata=metadata)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def _ts(ms: int) -> Any:
    from google.protobuf import timestamp_pb2

    ts = timestamp_pb2.Timestamp()
    ts.FromMilliseconds(ms)
    return ts
