"""The shopping assistant without a server: catalogue, live state, answers, grounding,
throttling, evaluation bars, and the language-model adapter against a local stand-in."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from barrage.clients.assistant import lexicon
from barrage.clients.assistant.answerer import ABSTAIN_TEXT, MISSING_LABEL, Answer, RetrievalAnswerer, render
from barrage.clients.assistant.bot import Assistant, Room
from barrage.clients.assistant.catalog import SAMPLE_CATALOGUE, Catalogue, CatalogueError, load_catalogue
from barrage.clients.assistant.evaluate import SAMPLE_EVAL, load_eval
from barrage.clients.assistant.evaluate import run as run_evaluation
from barrage.clients.assistant.facts import Fact, money
from barrage.clients.assistant.grounding import numbers, product_refs, ungrounded
from barrage.clients.assistant.llm import ChatPhraser, acceptable
from barrage.clients.assistant.settings import Settings
from barrage.clients.assistant.state import LiveState, Price
from barrage.clients.assistant.text import Query, language
from barrage.clients.assistant.throttle import Groups, RateLimiter, Recent, is_spam, looks_like_question
from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs

NOW_MS = 1_760_000_000_000


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(SAMPLE_CATALOGUE)


@pytest.fixture(scope="module")
def answerer(catalogue: Catalogue) -> RetrievalAnswerer:
    return RetrievalAnswerer(catalogue)


def _ts(ms: int) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def event(**payload: Any) -> event_pb2.Event:
    return event_pb2.Event(room_id="r", payload=event_pb2.Payload(**payload))


def pinned(product_id: str, price_minor: int, stock: int = -1, title: str = "") -> event_pb2.Event:
    product = event_pb2.Product(
        product_id=product_id, title=title, price=event_pb2.Money(amount_minor=price_minor, currency="CNY"), stock=stock
    )
    return event(product_pinned=event_pb2.ProductPinned(product=product))


def flash_sale(product_id: str, price_minor: int, stock: int, *, start_ms: int, end_ms: int) -> event_pb2.Event:
    started = event_pb2.FlashSaleStarted(
        sale_id="s1",
        product=event_pb2.Product(
            product_id=product_id, price=event_pb2.Money(amount_minor=price_minor, currency="CNY")
        ),
        stock=stock,
        limit_per_user=2,
        start_time=_ts(start_ms),
        end_time=_ts(end_ms),
    )
    return event(flash_sale_started=started)


# ------------------------------------------------------------------ catalogue


def test_the_sample_catalogue_has_twenty_bilingual_products_with_specs_and_policies(catalogue: Catalogue) -> None:
    assert len(catalogue.products) >= 20
    for product in catalogue.products:
        assert product.name.zh != product.name.en, product.id
        assert product.aliases and product.specs and product.price > 0
    assert any(p.sizes for p in catalogue.products) and any(p.colours for p in catalogue.products)
    assert any(p.ingredients for p in catalogue.products) and any(p.returns for p in catalogue.products)
    assert catalogue.shipping.zh and catalogue.returns.en and catalogue.faq
    assert any(p.faq for p in catalogue.products)


def test_a_bad_catalogue_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("shop: x\nshipping: s\nreturns: r\nproducts:\n  - {id: a, name: A, category: c, price: -1}\n")
    with pytest.raises(CatalogueError, match="price"):
        load_catalogue(path)
    path.write_text("shop: [unclosed\n")
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(path)
    product = "{id: a, name: A, category: c, price: 1}"
    path.write_text(f"shop: x\nshipping: s\nreturns: r\nproducts: [{product}, {product}]\n")
    with pytest.raises(CatalogueError, match="duplicate product id"):
        load_catalogue(path)


def test_prices_keep_their_decimals(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("shop: x\nshipping: s\nreturns: r\nproducts:\n  - {id: a, name: A, category: c, price: 19.9}\n")
    product = load_catalogue(path).products[0]
    assert product.price_minor() == 1990
    assert money(Price(1990, "CNY")) == "¥19.90" and money(Price(19900, "CNY")) == "¥199"
    assert money(Price(1299, "USD")) == "$12.99" and money(Price(500, "XYZ")) == "XYZ 5"


# ---------------------------------------------------------------- live state


def test_live_state_follows_cards_updates_and_sales() -> None:
    state = LiveState()
    state.apply(pinned("p1", 19900, stock=10, title="Serum"))
    assert state.pinned_id == "p1"
    live = state.product("p1")
    assert live is not None and live.price == Price(19900, "CNY") and live.stock == 10
    state.apply(event(product_updated=event_pb2.ProductUpdated(product_id="p1", stock=3)))
    state.apply(
        event(
            product_updated=event_pb2.ProductUpdated(
                product_id="p2", price=event_pb2.Money(amount_minor=500, currency="CNY")
            )
        )
    )
    assert state.product("p1").stock == 3 and state.product("p1").price == Price(19900, "CNY")  # type: ignore[union-attr]
    assert state.product("p2").price == Price(500, "CNY")  # type: ignore[union-attr]
    state.apply(event(product_unpinned=event_pb2.ProductUnpinned(product_id="p1")))
    assert state.pinned_id is None

    state.apply(flash_sale("p3", 100, 50, start_ms=NOW_MS - 1000, end_ms=NOW_MS + 60_000))
    sale = state.current_sale(NOW_MS)
    assert sale is not None and sale.product_id == "p3" and sale.running(NOW_MS)
    state.apply(event(flash_sale_stock=event_pb2.FlashSaleStock(sale_id="s1", stock=7)))
    assert sale.stock == 7
    assert state.current_sale(NOW_MS + 61_000) is None  # Past its end time even before the event.
    state.apply(event(flash_sale_ended=event_pb2.FlashSaleEnded(sale_id="s1", sold_out=True)))
    assert state.sale is None
    state.apply(event(slow_mode=event_pb2.SlowMode(min_interval=duration_pb2.Duration(seconds=3))))
    assert state.slow_mode_s == 3


def test_live_state_starts_from_the_join_snapshot() -> None:
    snapshot = rs.RoomSnapshot(
        room_id="r",
        pinned_product=event_pb2.Product(
            product_id="p1", price=event_pb2.Money(amount_minor=100, currency="CNY"), stock=-1
        ),
        flash_sale=flash_sale("p2", 50, 9, start_ms=NOW_MS, end_ms=NOW_MS + 1000).payload.flash_sale_started,
        slow_mode=duration_pb2.Duration(seconds=2),
    )
    state = LiveState()
    state.reset(snapshot)
    assert state.pinned_id == "p1" and state.product("p1").stock is None  # type: ignore[union-attr]
    assert state.sale is not None and state.sale.stock == 9 and state.slow_mode_s == 2
    state.reset(rs.RoomSnapshot(room_id="r"))
    assert state.pinned_id is None and state.sale is None and state.slow_mode_s == 0


# -------------------------------------------------------------------- answers


def test_language_follows_the_question() -> None:
    assert language("这个多少钱") == "zh" and language("这个有XL吗") == "zh"
    assert language("how much is this") == "en" and language("is the 精华 in stock?") == "en"


def test_answers_are_threaded_facts_from_the_catalogue_and_the_room(answerer: RetrievalAnswerer) -> None:
    state = LiveState()
    state.apply(pinned("sku-down-jacket", 35900, stock=126))
    answer = answerer.answer("这个多少钱？", state, NOW_MS)
    assert answer.outcome == "answer" and answer.lang == "zh"
    assert "¥359" in answer.text and "[product:sku-down-jacket]" in answer.text
    answer = answerer.answer("How much is the serum?", state, NOW_MS)
    assert answer.lang == "en" and "¥199" in answer.text and product_refs(answer.text) == ["sku-ha-serum"]
    assert answerer.answer("还有货吗", state, NOW_MS).text.startswith("轻薄羽绒服还剩 126 件")
    state.apply(event(product_updated=event_pb2.ProductUpdated(product_id="sku-down-jacket", stock=0)))
    assert "售罄" in answerer.answer("还有货吗", state, NOW_MS).text


def test_it_recommends_products_and_names_what_is_on_sale(answerer: RetrievalAnswerer) -> None:
    state = LiveState()
    answer = answerer.answer("do you have something for dry skin?", state, NOW_MS)
    assert answer.outcome == "answer" and answer.facts[0].kind == "recommend"
    assert set(answer.products) <= {"sku-ha-serum", "sku-centella-cream", "sku-sheet-mask"} and answer.products
    assert all(f"[product:{pid}]" in answer.text for pid in answer.products)

    assert answerer.answer("which one is on sale now?", state, NOW_MS).facts[0].kind == "no_sale"
    state.apply(pinned("sku-down-jacket", 35900))
    state.apply(flash_sale("sku-anc-earbuds", 39900, 50, start_ms=NOW_MS - 1000, end_ms=NOW_MS + 600_000))
    answer = answerer.answer("which one is on sale now?", state, NOW_MS)
    assert answer.products == ("sku-down-jacket", "sku-anc-earbuds")
    assert "¥399" in answer.text and "50 left" in answer.text and "limit 2 per person" in answer.text


def test_it_says_briefly_when_it_does_not_know_or_stays_silent_by_setting(catalogue: Catalogue) -> None:
    state = LiveState()
    state.apply(pinned("sku-down-jacket", 35900))
    say = RetrievalAnswerer(catalogue)
    answer = say.answer("羽绒服有帽子吗", state, NOW_MS)
    assert answer.outcome == "abstain" and answer.text == ABSTAIN_TEXT["unknown"]["zh"] and not answer.facts
    assert say.answer("主播好漂亮啊", state, NOW_MS).outcome == "ignore"  # Not a shopping question: never replied.
    assert say.answer("how much is this", LiveState(), NOW_MS).reason == "which_product"
    silent = RetrievalAnswerer(catalogue, unknown="silent")
    answer = silent.answer("does the jacket have a hood?", state, NOW_MS)
    assert answer.outcome == "abstain" and answer.text == ""


def test_templates_state_no_number_of_their_own() -> None:
    for texts in ABSTAIN_TEXT.values():
        for text in texts.values():
            assert numbers(text) == set(), text
    for zh, en in MISSING_LABEL.values():
        assert numbers(zh) == numbers(en) == set()
    fact = Fact("price", "p", "甲 现价 ¥5", "A is ¥5", ("甲", "A", "¥5"))
    for lang in ("zh", "en"):
        text = render(lang, [fact], ["stock", "sizes"])
        assert not ungrounded(text, fact.sources), text


def test_no_answer_states_a_number_that_is_not_in_its_sources(answerer: RetrievalAnswerer) -> None:
    """Random questions made of the lexicon's and the catalogue's words, in a room with
    live values: whatever comes out, every number is in the answer's sources."""
    state = LiveState()
    state.apply(pinned("sku-down-jacket", 35900, stock=12))
    state.apply(flash_sale("sku-anc-earbuds", 39900, 5, start_ms=NOW_MS + 60_000, end_ms=NOW_MS + 600_000))
    state.apply(event(product_updated=event_pb2.ProductUpdated(product_id="sku-thermos", stock=0)))
    words = [w for phrases in lexicon.INTENTS.values() for w in phrases if not w.startswith("re:")]
    words += [a for p in answerer.catalogue.products for a in p.aliases] + ["30", "99", "XL", "这个", "this", "吗", "?"]
    rng = random.Random(8)
    answered = 0
    for _ in range(600):
        question = " ".join(rng.sample(words, rng.randint(1, 4)))
        answer = answerer.answer(question, state, NOW_MS)
        assert not ungrounded(answer.text, answer.sources), (question, answer.text)
        answered += answer.outcome == "answer"
    assert answered > 100


def test_grounding_compares_numbers_as_values() -> None:
    assert numbers("¥199.00，剩 1,200 件，20:30 结束") == {"199", "1200", "20", "30"}
    assert numbers("七天无理由，一百九十九元，两件") == {"7", "199", "2"}
    assert numbers("twelve hours [product:sku-123]") == {"12"}
    assert ungrounded("现价 ¥199", ["价格 199.0 元"]) == set()
    assert ungrounded("only 3 left, ships in 2 days", ["3 left"]) == {"2"}
    assert ungrounded("保修两年", ["保修1年"]) == {"2"}


def test_evaluation_bars_hold(catalogue: Catalogue) -> None:
    evaluation = load_eval(SAMPLE_EVAL)
    questions = [q for s in evaluation.scenarios for q in s.questions]
    assert len(questions) >= 150
    assert sum(q.lang == "zh" for q in questions) >= 50 and sum(q.lang == "en" for q in questions) >= 50
    assert sum(q.abstain for q in questions) >= 20
    report = run_evaluation()
    figures = report.figures()
    assert figures["accuracy"] >= 0.9, figures
    assert figures["abstention_precision"] >= 0.9 and figures["abstention_recall"] >= 0.9, figures
    assert figures["invented_facts"] == 0, figures


# ------------------------------------------------------------------ throttle


def test_questions_and_spam_are_told_apart() -> None:
    for question in ("这个多少钱", "有XL吗", "how much?", "recommend something for dry skin", "包邮吗"):
        assert looks_like_question(question), question
    for chatter in ("主播好美", "666", "nice jacket"):
        assert not looks_like_question(chatter), chatter
    for spam in (
        "加v: abc12345 低价出",
        "cheap at www.example.com",
        "哈" * 20,
        "！！！",
        "x" * 300,
        "DM me for crypto",
    ):
        assert is_spam(spam), spam
    assert not is_spam("这个多少钱？") and not is_spam("is the serum ok for sensitive skin?")


def test_the_rate_limiter_allows_a_burst_then_the_rate() -> None:
    limiter = RateLimiter(2.0, burst=3)
    assert [limiter.reserve(0.0, max_wait=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.reserve(0.0, max_wait=0.1) is None  # Over the burst: not within 0.1 s.
    assert limiter.reserve(0.0, max_wait=1.0) == pytest.approx(0.5)
    assert limiter.reserve(10.0, max_wait=0.0) == 0.0  # Idle time refills it.
    slow = RateLimiter(5.0, burst=5)
    assert slow.reserve(0.0, max_wait=0.0, min_gap=3.0) == 0.0
    assert slow.reserve(1.0, max_wait=5.0, min_gap=3.0) == pytest.approx(2.0)  # Slow mode spaces them.
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0, 1)


def test_repeated_questions_are_answered_once_per_window_unless_the_facts_changed() -> None:
    groups = Groups(window_s=30, refresh_s=5)
    signature = ("zh", "answer", "", (("price", "p"),), ())
    assert groups.should_answer(signature, ("¥10",), 0.0)
    groups.record(signature, ("¥10",), 0.0)
    assert not groups.should_answer(signature, ("¥10",), 10.0)
    assert not groups.should_answer(signature, ("¥8",), 3.0)  # Changed, but too soon.
    assert groups.should_answer(signature, ("¥8",), 6.0)
    assert groups.should_answer(signature, ("¥10",), 31.0)
    recent: Recent[str] = Recent(max_entries=2)
    for key in "abc":
        recent.put(key, 1.0)
    assert "a" not in recent and len(recent) == 2


# ------------------------------------------------------------- phrasing (LLM)


class _StandIn(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint on loopback that replies what the test set."""

    reply: ClassVar[str] = ""
    delay_s: ClassVar[float] = 0.0
    status: ClassVar[int] = 200
    requests: ClassVar[list[dict[str, Any]]] = []
    headers_seen: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        type(self).headers_seen.append(dict(self.headers))
        time.sleep(self.delay_s)
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": self.reply}}]}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stand_in() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _StandIn.requests.clear()
    _StandIn.headers_seen.clear()
    _StandIn.delay_s, _StandIn.status = 0.0, 200
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _price_answer(answerer: RetrievalAnswerer, question: str) -> Answer:
    state = LiveState()
    state.apply(pinned("sku-down-jacket", 35900, stock=126))
    answer = answerer.answer(question, state, NOW_MS)
    assert answer.outcome == "answer"
    return answer


async def test_the_phrasing_adapter_is_used_only_when_grounded(answerer: RetrievalAnswerer, stand_in: str) -> None:
    phraser = ChatPhraser(stand_in, model="tiny", api_key="k-123", timeout_s=2.0)
    answer = _price_answer(answerer, "这个多少钱？")

    _StandIn.reply = "家人们，这款轻薄羽绒服现在只要 ¥359 哦～"
    text = await phraser.phrase(answer)
    assert text == "家人们，这款轻薄羽绒服现在只要 ¥359 哦～ [product:sku-down-jacket]"
    request = _StandIn.requests[-1]
    assert request["model"] == "tiny" and "¥359" in request["messages"][1]["content"]
    assert "这个多少钱" in request["messages"][1]["content"]
    assert _StandIn.headers_seen[-1]["Authorization"] == "Bearer k-123"

    _StandIn.reply = "这款羽绒服现价 ¥299，今天再送运费险！"  # A price the facts do not have.
    assert await phraser.phrase(answer) is None
    _StandIn.reply = "The jacket is ¥359."  # Right facts, wrong language.
    assert await phraser.phrase(answer) is None
    _StandIn.reply = ""
    assert await phraser.phrase(answer) is None


async def test_the_phrasing_adapter_falls_back_on_errors_and_timeouts(
    answerer: RetrievalAnswerer, stand_in: str
) -> None:
    answer = _price_answer(answerer, "how much is this?")
    _StandIn.reply = "It's ¥359 right now."
    _StandIn.status = 500
    assert await ChatPhraser(stand_in, timeout_s=2.0).phrase(answer) is None
    _StandIn.status = 200
    _StandIn.delay_s = 1.0
    started = time.monotonic()
    assert await ChatPhraser(stand_in, timeout_s=0.2).phrase(answer) is None
    assert time.monotonic() - started < 0.9
    assert await ChatPhraser("http://127.0.0.1:9/v1", timeout_s=0.5).phrase(answer) is None  # Nothing listens.
    await asyncio.sleep(1.0)  # Let the slow stand-in request finish before the server shuts down.


def test_acceptable_keeps_the_assistants_own_product_references(answerer: RetrievalAnswerer) -> None:
    answer = _price_answer(answerer, "how much is this?")
    assert acceptable("It's ¥359 [product:sku-evil]", answer) == "It's ¥359 [product:sku-down-jacket]"
    assert acceptable("x" * 500, answer) is None
    assert Query.of("HOW MUCH").words == ("how", "much")


# ------------------------------------------------------------ the bot's policy


class _Bot:
    """The assistant's decisions on a stream of comments, without a server: replies are
    recorded instead of sent."""

    def __init__(self, answerer: RetrievalAnswerer, settings: Settings, now: float = 1_000.0) -> None:
        self.now = now
        self.bot = Assistant("127.0.0.1:9", "token", ["r"], answerer, settings=settings, clock=lambda: self.now)
        self.bot.user_id = "assistant"
        self.room = Room(
            room_id="r",
            state=LiveState(),
            limiter=RateLimiter(settings.rate_per_s, settings.burst),
            groups=Groups(settings.window_s, settings.refresh_s),
            users=Recent(),
            answered_questions=Recent(),
        )
        self.bot.rooms["r"] = self.room
        self.replies: list[str] = []

        def spawn(coroutine: Any) -> None:
            question = coroutine.cr_frame.f_locals.get("event")
            self.replies.append(question.event_id if question is not None else coroutine.__name__)
            coroutine.close()

        self.bot._spawn = spawn  # type: ignore[method-assign]
        self._ids = iter(range(10**6))

    def comment(
        self, text: str, user: str = "v", role: event_pb2.Role.ValueType = event_pb2.ROLE_VIEWER, age_s: float = 0.0
    ) -> str:
        event_id = f"e{next(self._ids)}"
        comment = event_pb2.Comment(text=text)
        self.bot._on_event(
            self.room,
            event_pb2.Event(
                room_id="r",
                event_id=event_id,
                sender=event_pb2.Sender(user_id=user, role=role),
                publish_time=_ts(int((self.now - age_s) * 1000)),
                payload=event_pb2.Payload(comment=comment),
            ),
        )
        return event_id

    def publish(self, event: event_pb2.Event) -> None:
        self.bot._on_event(self.room, event)


def test_the_bot_limits_each_viewer_and_the_room_and_skips_stale_questions(answerer: RetrievalAnswerer) -> None:
    bot = _Bot(answerer, Settings(rate_per_s=1.0, burst=2, max_delay_s=1.5, user_interval_s=5.0))
    bot.publish(pinned("sku-down-jacket", 35900, stock=5))
    first = bot.comment("这个多少钱？", user="a")
    assert bot.comment("还有货吗？", user="a") not in bot.replies  # Same viewer, too soon.
    assert bot.comment("有XL吗？", user="b") in bot.replies
    assert bot.comment("有几个颜色？", user="c") in bot.replies  # Third in a burst of 2: waits 1 s.
    assert bot.comment("能机洗吗？", user="d") not in bot.replies  # Would wait 2 s: dropped.
    assert first in bot.replies and bot.bot.stats.rate_limited == 1 and bot.bot.stats.spam == 1
    assert bot.comment("包邮吗？", user="e", age_s=60) not in bot.replies  # Asked a minute ago.
    bot.now += 10
    assert bot.comment("会不会钻绒？", user="a") in bot.replies
    assert bot.comment("hi what's up? 加v: shop12345", user="f") not in bot.replies
    assert bot.comment("这个多少钱？", user="g", role=event_pb2.ROLE_BOT) not in bot.replies
    assert bot.comment("这个多少钱？", user="assistant", role=event_pb2.ROLE_BOT) not in bot.replies


def test_the_bot_stays_quiet_while_muted_and_honours_slow_mode(answerer: RetrievalAnswerer) -> None:
    bot = _Bot(answerer, Settings(user_interval_s=0.0, max_delay_s=2.0))
    bot.publish(pinned("sku-down-jacket", 35900, stock=5))
    until = _ts(int((bot.now + 60) * 1000))
    bot.publish(event(user_muted=event_pb2.UserMuted(user_id="assistant", until=until)))
    assert bot.comment("这个多少钱？") not in bot.replies and bot.bot.stats.muted == 1
    bot.publish(event(user_muted=event_pb2.UserMuted(user_id="someone-else", until=until)))
    bot.publish(event(user_muted=event_pb2.UserMuted(user_id="assistant", until=_ts(int(bot.now * 1000) - 1))))
    assert bot.comment("这个多少钱？") in bot.replies
    bot.publish(event(slow_mode=event_pb2.SlowMode(min_interval=duration_pb2.Duration(seconds=3))))
    assert bot.comment("还有货吗？") not in bot.replies  # The next slot is 3 s away: over max_delay.
    bot.now += 3
    assert bot.comment("还有货吗？") in bot.replies
    bot.publish(event(user_banned=event_pb2.UserBanned(user_id="assistant")))
    assert bot.room.ended and bot.replies[-1] == "_leave"
