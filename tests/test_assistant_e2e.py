"""The shopping assistant end to end: a real server on loopback, the assistant as a bot
on the SDK, viewers asking through their own streams, a service publishing live
product changes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import timestamp_pb2

from barrage.clients.admin import AdminClient
from barrage.clients.assistant.answerer import Answerer, RetrievalAnswerer
from barrage.clients.assistant.bot import Assistant
from barrage.clients.assistant.catalog import SAMPLE_CATALOGUE, load_catalogue
from barrage.clients.assistant.grounding import product_refs
from barrage.clients.assistant.llm import ChatPhraser
from barrage.clients.assistant.settings import Settings
from barrage.clients.sdk import Client, ClientOptions, Subscription
from barrage.v1 import event_pb2
from tests.server_process import ROOT, ServerProcess

FAST = ClientOptions(backoff_base_s=0.05, backoff_max_s=0.5)
SETTINGS = Settings(window_s=30.0, refresh_s=0.2, rate_per_s=5.0, burst=10, user_interval_s=0.0)
"""Test rooms are small: several questions from one viewer, quick refreshes."""
REPLY_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module; every test has its own room."""
    proc = ServerProcess(tmp_path_factory.mktemp("assistant") / "data")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def answerer() -> RetrievalAnswerer:
    return RetrievalAnswerer(load_catalogue(SAMPLE_CATALOGUE))


@pytest.fixture
async def admin(server: ServerProcess) -> AsyncIterator[AdminClient]:
    async with AdminClient(server.target, server.token("shop", role="service")) as client:
        yield client


@pytest.fixture
async def room(admin: AdminClient) -> str:
    room_id = f"room-{uuid.uuid4().hex[:12]}"
    await admin.create_room(room_id, title="assistant test")
    return room_id


def money(yuan: int) -> event_pb2.Money:
    return event_pb2.Money(amount_minor=yuan * 100, currency="CNY")


def at(seconds_from_now: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromMilliseconds(int((time.time() + seconds_from_now) * 1000))
    return ts


async def pin(admin: AdminClient, room_id: str, product_id: str, price: int, stock: int) -> None:
    product = event_pb2.Product(product_id=product_id, title=product_id, price=money(price), stock=stock)
    await admin.publish(room_id, event_pb2.Payload(product_pinned=event_pb2.ProductPinned(product=product)))


class Viewer:
    """A viewer's app: its own stream, everything it receives kept for the test."""

    def __init__(self, server: ServerProcess, room_id: str, user: str, role: str = "viewer") -> None:
        self.room_id = room_id
        rooms = [room_id] if role == "bot" else None  # a bot acts only in the rooms its token lists
        self.client = Client(server.target, server.token(user, role=role, name=user, rooms=rooms), options=FAST)
        self.events: list[event_pb2.Event] = []
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Viewer:
        await self.client.connect()
        subscription = await self.client.join(self.room_id)
        self._reader = asyncio.create_task(self._read(subscription))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self.client.close()

    async def _read(self, subscription: Subscription) -> None:
        async for item in subscription:
            if isinstance(item, event_pb2.Event):
                self.events.append(item)
                self._changed.set()

    async def ask(self, text: str) -> str:
        """Post a comment; its event id."""
        return (await self.client.send(self.room_id, text)).event_id

    def replies_to(self, event_id: str) -> list[event_pb2.Event]:
        return [
            e
            for e in self.events
            if e.payload.WhichOneof("kind") == "comment" and e.payload.comment.reply_to_event_id == event_id
        ]

    async def wait(self, found: Callable[[], Any], timeout: float = REPLY_TIMEOUT_S) -> Any:
        async with asyncio.timeout(timeout):
            while not (result := found()):
                self._changed.clear()
                await self._changed.wait()
        return result

    async def reply(self, event_id: str, timeout: float = REPLY_TIMEOUT_S) -> event_pb2.Event:
        replies: list[event_pb2.Event] = await self.wait(lambda: self.replies_to(event_id), timeout)
        return replies[0]


@contextlib.asynccontextmanager
async def assistant(
    server: ServerProcess,
    room_id: str,
    answerer: Answerer,
    settings: Settings = SETTINGS,
    **kwargs: Any,
) -> AsyncIterator[Assistant]:
    bot = Assistant(
        server.target,
        server.token("assistant", role="bot", name="小助手", rooms=[room_id]),
        [room_id],
        answerer,
        settings=settings,
        client_options=FAST,
        **kwargs,
    )
    task = asyncio.create_task(bot.run())
    ready = asyncio.create_task(bot.ready.wait())
    await asyncio.wait({task, ready}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if task.done():
        task.result()  # Raises what stopped it.
    assert bot.ready.is_set(), "assistant not ready"
    try:
        yield bot
    finally:
        bot.stop()
        await asyncio.wait_for(task, 15)


def is_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


# ------------------------------------------------------------------------ tests


async def test_viewers_questions_get_threaded_answers_in_their_language(
    server: ServerProcess, admin: AdminClient, room: str, answerer: RetrievalAnswerer
) -> None:
    await pin(admin, room, "sku-down-jacket", 359, 126)
    async with (
        assistant(server, room, answerer) as bot,
        Viewer(server, room, "alice") as alice,
        Viewer(server, room, "bob") as bob,
    ):
        zh = await alice.ask("这个多少钱？")
        en = await bob.ask("How much is this?")
        serum = await bob.ask("is the serum ok for sensitive skin?")
        for viewer, question, price in ((alice, zh, "¥359"), (bob, en, "¥359"), (bob, serum, "")):
            reply = await viewer.reply(question)
            comment = reply.payload.comment
            assert reply.sender.user_id == "assistant" and reply.sender.role == event_pb2.ROLE_BOT
            assert price in comment.text
        zh_text = (await alice.reply(zh)).payload.comment.text
        en_text = (await bob.reply(en)).payload.comment.text
        assert is_chinese(zh_text) and not is_chinese(en_text)
        assert product_refs(zh_text) == ["sku-down-jacket"] == product_refs(en_text)
        serum_text = (await bob.reply(serum)).payload.comment.text
        assert "sensitive skin" in serum_text and product_refs(serum_text) == ["sku-ha-serum"]
        # Every viewer sees the threaded answers, not only the asker.
        await bob.wait(lambda: bob.replies_to(zh))
    assert bot.stats.answered == 3


async def test_live_price_and_stock_changes_show_in_the_next_answers(
    server: ServerProcess, admin: AdminClient, room: str, answerer: RetrievalAnswerer
) -> None:
    await pin(admin, room, "sku-down-jacket", 359, 126)
    async with assistant(server, room, answerer), Viewer(server, room, "carol") as carol:
        first = (await carol.reply(await carol.ask("羽绒服多少钱，还有货吗？"))).payload.comment.text
        assert "¥359" in first and "126" in first
        update = event_pb2.ProductUpdated(product_id="sku-down-jacket", price=money(299), stock=7)
        await admin.publish(room, event_pb2.Payload(product_updated=update))
        await carol.wait(lambda: any(e.payload.WhichOneof("kind") == "product_updated" for e in carol.events))
        await asyncio.sleep(SETTINGS.refresh_s)
        second = (await carol.reply(await carol.ask("羽绒服多少钱，还有货吗？"))).payload.comment.text
        assert "¥299" in second and "7" in second and "¥359" not in second and "126" not in second
        # A product that is not pinned: its live price comes from product_updated too.
        update = event_pb2.ProductUpdated(product_id="sku-thermos", price=money(59), stock=0)
        await admin.publish(room, event_pb2.Payload(product_updated=update))
        await carol.wait(lambda: sum(e.payload.WhichOneof("kind") == "product_updated" for e in carol.events) == 2)
        thermos = (await carol.reply(await carol.ask("is the thermos sold out? how much?"))).payload.comment.text
        assert "¥59" in thermos and "sold out" in thermos


async def test_on_sale_and_recommendations_carry_product_references(
    server: ServerProcess, admin: AdminClient, room: str, answerer: RetrievalAnswerer
) -> None:
    await pin(admin, room, "sku-down-jacket", 359, 126)
    sale = event_pb2.FlashSaleStarted(
        sale_id="fs-1",
        product=event_pb2.Product(product_id="sku-anc-earbuds", title="earbuds", price=money(399)),
        stock=50,
        limit_per_user=1,
        start_time=at(-1),
        end_time=at(600),
    )
    await admin.publish(room, event_pb2.Payload(flash_sale_started=sale))
    async with assistant(server, room, answerer), Viewer(server, room, "dave") as dave:
        on_sale = (await dave.reply(await dave.ask("which one is on sale now?"))).payload.comment.text
        assert product_refs(on_sale) == ["sku-down-jacket", "sku-anc-earbuds"]
        assert "¥399" in on_sale and "50 left" in on_sale
        stock = event_pb2.FlashSaleStock(sale_id="fs-1", stock=12)
        await admin.publish(room, event_pb2.Payload(flash_sale_stock=stock))
        await dave.wait(lambda: any(e.payload.WhichOneof("kind") == "flash_sale_stock" for e in dave.events))
        left = (await dave.reply(await dave.ask("秒杀还剩几个"))).payload.comment.text
        assert "12" in left and product_refs(left) == ["sku-anc-earbuds"]
        dry = (await dave.reply(await dave.ask("do you have something for dry skin?"))).payload.comment.text
        assert product_refs(dry) and set(product_refs(dry)) <= {"sku-ha-serum", "sku-centella-cream", "sku-sheet-mask"}
        unknown = (await dave.reply(await dave.ask("羽绒服有帽子吗？"))).payload.comment.text
        assert "不清楚" in unknown and not product_refs(unknown)


async def test_repeated_questions_get_one_answer_per_window(
    server: ServerProcess, admin: AdminClient, room: str, answerer: RetrievalAnswerer
) -> None:
    await pin(admin, room, "sku-down-jacket", 359, 126)
    async with contextlib.AsyncExitStack() as stack:
        bot = await stack.enter_async_context(assistant(server, room, answerer))
        viewers = [await stack.enter_async_context(Viewer(server, room, f"fan-{i}")) for i in range(5)]
        asked = await asyncio.gather(
            *(
                v.ask(text)
                for v, text in zip(
                    viewers, ["多少钱？", "这个多少钱", "多少钱啊", "价格多少", "这件多少钱？"], strict=True
                )
            )
        )
        watcher = viewers[0]
        await watcher.wait(lambda: any(watcher.replies_to(q) for q in asked))
        english = await viewers[1].ask("how much is it?")  # Another language: another group.
        await watcher.reply(english)
        await asyncio.sleep(0.5)
        answered = [q for q in asked if watcher.replies_to(q)]
        assert len(answered) == 1, [watcher.replies_to(q) for q in asked]
        assert bot.stats.grouped == 4


async def test_it_ignores_itself_other_bots_staff_and_spam(
    server: ServerProcess, room: str, answerer: RetrievalAnswerer
) -> None:
    async with (
        assistant(server, room, answerer) as bot,
        Viewer(server, room, "erin") as erin,
        Viewer(server, room, "other-bot", role="bot") as other_bot,
        Viewer(server, room, "host-1", role="host") as host,
    ):
        # Nothing is pinned: the assistant asks back "Which product do you mean?" — a
        # question of its own, which it must not answer.
        which = await erin.ask("how much is this?")
        asked_back = await erin.reply(which)
        assert asked_back.payload.comment.text.endswith("I'll check.")
        ignored = [
            await other_bot.ask("面霜多少钱？"),
            await host.ask("面霜多少钱？大家想看哪个？"),
            await erin.ask("面霜多少钱？加v: shop12345 更便宜 www.cheap-cream.top"),
        ]
        sentinel = await erin.ask("防晒霜多少钱？")
        assert "¥129" in (await erin.reply(sentinel)).payload.comment.text
        await asyncio.sleep(0.5)
        assert not erin.replies_to(asked_back.event_id)
        assert all(not erin.replies_to(q) for q in ignored)
        assert bot.stats.spam == 1 and bot.stats.answered == 1


async def test_muted_it_stays_silent_and_banned_it_leaves(
    server: ServerProcess, admin: AdminClient, room: str, answerer: RetrievalAnswerer
) -> None:
    await pin(admin, room, "sku-down-jacket", 359, 126)
    async with Viewer(server, room, "frank") as frank:
        bot = Assistant(
            server.target,
            server.token("assistant", role="bot", rooms=[room]),
            [room],
            answerer,
            settings=SETTINGS,
            client_options=FAST,
        )
        task = asyncio.create_task(bot.run())
        await asyncio.wait_for(bot.ready.wait(), 15)
        await admin.publish(room, event_pb2.Payload(user_muted=event_pb2.UserMuted(user_id="assistant", until=at(60))))
        await frank.wait(lambda: any(e.payload.WhichOneof("kind") == "user_muted" for e in frank.events))
        while_muted = await frank.ask("这个多少钱？")
        await asyncio.sleep(1.0)
        assert not frank.replies_to(while_muted) and bot.stats.muted == 1

        await admin.publish(room, event_pb2.Payload(user_muted=event_pb2.UserMuted(user_id="assistant", until=at(-1))))
        await frank.wait(lambda: sum(e.payload.WhichOneof("kind") == "user_muted" for e in frank.events) == 2)
        assert "¥359" in (await frank.reply(await frank.ask("how much is this?"))).payload.comment.text

        await admin.publish(room, event_pb2.Payload(user_banned=event_pb2.UserBanned(user_id="assistant")))
        stats = await asyncio.wait_for(task, 10)  # Banned: the assistant leaves and stops.
        assert stats.answered == 1
        after = await frank.ask("还有货吗？")
        await asyncio.sleep(0.5)
        assert not frank.replies_to(after)


async def test_replies_arrive_within_a_second_at_p95(
    server: ServerProcess, admin: AdminClient, room: str, answerer: RetrievalAnswerer
) -> None:
    await pin(admin, room, "sku-down-jacket", 359, 126)
    questions = [
        "这个多少钱", "还有货吗", "有XL吗", "有几个颜色", "能机洗吗", "包邮吗", "能开发票吗", "面霜多少钱",
        "精华液适合干皮吗", "耳机防水吗", "how much is this", "is it still in stock", "what colours does it come in",
        "do you ship for free?", "is the sunscreen waterproof", "how much are the nuts", "air fryer warranty?",
        "where is the tea from", "is the scarf itchy", "does the pillow smell",
    ]  # fmt: skip
    settings = Settings(window_s=30.0, refresh_s=0.2, rate_per_s=8.0, burst=16, user_interval_s=0.0)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(assistant(server, room, answerer, settings))
        viewers = [await stack.enter_async_context(Viewer(server, room, f"v{i}")) for i in range(4)]
        latencies: list[float] = []

        async def ask(viewer: Viewer, text: str) -> None:
            started = time.monotonic()
            await viewer.reply(await viewer.ask(text))
            latencies.append(time.monotonic() - started)

        tasks = []
        for i, text in enumerate(questions):
            tasks.append(asyncio.create_task(ask(viewers[i % len(viewers)], text)))
            await asyncio.sleep(0.2)  # About five questions a second.
        await asyncio.gather(*tasks)
    latencies.sort()
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    assert p95 < 1.0, latencies


async def test_the_phrasing_model_words_the_reply_and_cannot_add_facts(
    server: ServerProcess, admin: AdminClient, room: str, answerer: RetrievalAnswerer
) -> None:
    replies = iter(["家人们，这件轻薄羽绒服现在只要 ¥359！", "这件羽绒服今天只要 ¥99！"])

    class StandIn(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            content = next(replies)
            body = f'{{"choices": [{{"message": {{"role": "assistant", "content": "{content}"}}}}]}}'.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        await pin(admin, room, "sku-down-jacket", 359, 126)
        phraser = ChatPhraser(f"http://127.0.0.1:{http.server_address[1]}/v1", timeout_s=2.0)
        async with assistant(server, room, answerer, phraser=phraser), Viewer(server, room, "gina") as gina:
            answer = (await gina.reply(await gina.ask("这个多少钱？"))).payload.comment
            assert answer.text == "家人们，这件轻薄羽绒服现在只要 ¥359！ [product:sku-down-jacket]"
            assert list(answer.product_ids) == ["sku-down-jacket"]  # for the app's product card
            # The model invents a price: the template answer goes out instead.
            template = (await gina.reply(await gina.ask("羽绒服多钱，还有货吗"))).payload.comment.text
            assert template == "轻薄羽绒服 现价 ¥359；轻薄羽绒服还剩 126 件。 [product:sku-down-jacket]"
    finally:
        http.shutdown()
        http.server_close()
        thread.join(5)


def test_the_barrage_assistant_command_answers_and_stops_on_sigterm(server: ServerProcess, tmp_path: Path) -> None:
    room_id = f"room-{uuid.uuid4().hex[:12]}"
    command = [
        sys.executable, "-m", "barrage.cli", "assistant",
        "--room", "placeholder", "--catalog", str(SAMPLE_CATALOGUE),
        "--token", server.token("assistant", role="bot", rooms=[room_id]), "--target", server.target,
    ]  # fmt: skip
    command[command.index("placeholder")] = room_id
    log = tmp_path / "assistant.log"
    asyncio.run(_create_room(server, room_id))  # The command joins an existing room.
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
        try:
            text = asyncio.run(_ask_until_answered(server, room_id, proc))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                raise
    output = log.read_text()
    assert "¥169" in text and "[product:sku-ha-serum]" in text, output
    assert code == 0, output
    assert "answered 1" in output, output


async def _create_room(server: ServerProcess, room_id: str) -> None:
    async with AdminClient(server.target, server.token("shop", role="service")) as admin:
        await admin.create_room(room_id)
        await pin(admin, room_id, "sku-ha-serum", 169, 12)


async def _ask_until_answered(server: ServerProcess, room_id: str, proc: subprocess.Popen[bytes]) -> str:
    async with Viewer(server, room_id, "hank") as hank:
        asked: list[str] = []
        deadline = time.monotonic() + 30
        while True:  # The command needs a moment to load its dictionaries and join.
            asked.append(await hank.ask("这个多少钱？"))
            with contextlib.suppress(TimeoutError):
                replies = await hank.wait(lambda: [r for q in asked for r in hank.replies_to(q)], timeout=2.0)
                return str(replies[0].payload.comment.text)
            assert time.monotonic() < deadline and proc.poll() is None, "no answer from the command"
