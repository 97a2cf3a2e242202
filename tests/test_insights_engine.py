"""The insights engine, folded from synthetic events (no server): grouping, answers,
audience and retention rules, products, windows, determinism; the Kafka shadow rule."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

import pytest

from barrage.clients.insights import retention_survival
from barrage.server.insights.engine import InsightsConfig, Limits, RoomInsights
from barrage.server.insights.kafka_consumer import _Shadows
from barrage.server.insights.text import AliasIndex, analyse, title_aliases
from barrage.v1 import event_pb2 as e
from barrage.v1 import insights_service_pb2 as pb

V, H, B, S = e.ROLE_VIEWER, e.ROLE_HOST, e.ROLE_BOT, e.ROLE_SERVICE
W = 60_000
T0 = 1_795_000_000_000 // W * W


class Script:
    """Builds a room's events in log order, with explicit times."""

    def __init__(self) -> None:
        self.events: list[e.Event] = []

    def add(self, at: int, user: str, role: int, **payload: object) -> str:
        event = e.Event(
            room_id="r",
            event_id=f"e{len(self.events)}",
            sender=e.Sender(user_id=user, role=role),  # type: ignore[arg-type]
            payload=e.Payload(**payload),  # type: ignore[arg-type]
        )
        event.publish_time.FromMilliseconds(at)
        self.events.append(event)
        return event.event_id

    def join(self, at: int, user: str, resumed: bool = False) -> None:
        self.add(at, user, V, viewer_joined=e.ViewerJoined(resumed=resumed))

    def leave(self, at: int, user: str) -> None:
        self.add(at, user, V, viewer_left=e.ViewerLeft())

    def ask(self, at: int, user: str, text: str) -> str:
        return self.add(at, user, V, comment=e.Comment(text=text, question=True))

    def say(self, at: int, user: str, text: str, role: int = V, reply_to: str = "") -> str:
        return self.add(at, user, role, comment=e.Comment(text=text, reply_to_event_id=reply_to))

    def pin(self, at: int, product_id: str, title: str, price: int = 9900) -> None:
        card = e.Product(product_id=product_id, title=title, price=e.Money(amount_minor=price, currency="CNY"))
        self.add(at, "ops", S, product_pinned=e.ProductPinned(product=card))

    def buy(self, at: int, user: str, product_id: str, quantity: int = 1) -> None:
        purchase = e.Purchase(buyer=e.Sender(user_id=user), product_id=product_id, quantity=quantity)
        self.add(at, "orders", S, purchase=purchase)

    def fold(self, config: InsightsConfig | None = None) -> RoomInsights:
        engine = RoomInsights("r", config or InsightsConfig(bucket_ms=W))
        for position, event in enumerate(self.events):
            engine.fold(position, event)
        return engine


def at(minute: float) -> int:
    return T0 + int(minute * W)


def test_the_same_question_in_chinese_and_english_is_one_group_answered_by_a_reply() -> None:
    s = Script()
    s.pin(at(0), "sku-1", "Dior 999 口红 Lipstick")
    first = s.ask(at(0.1), "a", "多少钱")
    s.ask(at(0.2), "b", "这个多少钱？")
    s.ask(at(0.3), "c", "how much is it")
    s.ask(at(0.4), "d", "ＨＯＷ　ＭＵＣＨ？")  # full-width
    s.ask(at(0.5), "e", "口红包邮吗")  # the product's name must not read as 红包
    s.say(at(1), "host", "只要299元", H, reply_to=first)
    s.ask(at(2), "f", "价格多少？")  # asked again after the answer
    insights = s.fold().snapshot()
    groups = {q.group_id: q for q in insights.questions}
    price = groups["price@sku-1"]
    assert (price.count, price.askers, price.answered, price.answered_by) == (5, 5, True, H)
    assert price.open_count == 1 and price.example == "多少钱"
    assert price.variants[:3] == ["这个多少钱？", "how much is it", "ＨＯＷ　ＭＵＣＨ？"]
    assert groups["shipping@sku-1"].count == 1 and not groups["shipping@sku-1"].answered
    assert [q.group_id for q in insights.questions] == ["price@sku-1", "shipping@sku-1"]


def test_a_host_or_bot_comment_on_the_same_intent_and_product_answers_without_a_reply() -> None:
    s = Script()
    s.pin(at(0), "sku-1", "小黑瓶精华液")
    s.ask(at(0.1), "a", "发什么快递？")
    s.ask(at(0.2), "b", "适合敏感肌吗")
    s.ask(at(0.3), "c", "能不能试色给我们看看？")
    s.say(at(0.5), "bot", "今天下单48小时内发货，顺丰包邮", B)  # shipping, not suitability
    s.say(at(0.6), "host", "试色马上给大家看看", H)  # the words of the similarity group
    groups = {q.group_id: q for q in s.fold().snapshot().questions}
    assert groups["shipping@sku-1"].answered and groups["shipping@sku-1"].answered_by == B
    assert not groups["suitability@sku-1"].answered
    assert groups["q1@sku-1"].answered and groups["q1@sku-1"].answered_by == H


def test_questions_without_a_known_intent_group_by_word_similarity() -> None:
    s = Script()
    s.ask(at(0), "a", "主播身高多少")
    s.ask(at(0.1), "b", "主播身高多少啊？")
    s.ask(at(0.2), "c", "主播穿的衣服是什么牌子")
    s.ask(at(0.3), "d", "衣服什么牌子的")
    s.ask(at(0.4), "e", "what brand is the dress")
    groups = {q.group_id: (q.count, q.intent, q.product_id) for q in s.fold().snapshot().questions}
    assert groups == {"q1": (2, "", ""), "q2": (2, "", ""), "q3": (1, "", "")}


def test_question_is_about_the_named_product_else_the_one_on_screen() -> None:
    s = Script()
    s.pin(at(0), "lip", "Dior 999 Lipstick 口红")
    s.pin(at(1), "serum", "Lancome Serum 小黑瓶")  # replaces the lipstick card
    s.ask(at(1.1), "a", "多少钱")  # the serum: on screen
    s.ask(at(1.2), "b", "lipsticks still in stock?")  # plural, names the lipstick
    s.ask(at(1.3), "c", "999还有吗")
    s.say(at(1.4), "d", "小黑瓶真好用")
    insights = s.fold().snapshot()
    assert {q.group_id: q.count for q in insights.questions} == {"price@serum": 1, "stock@lip": 2}
    products = {p.product_id: p for p in insights.products}
    assert (products["lip"].mentions, products["lip"].questions) == (2, 2)
    assert (products["serum"].mentions, products["serum"].questions) == (1, 1)


def test_alias_file_names_count_and_shared_aliases_go_to_the_product_on_screen() -> None:
    config = InsightsConfig(bucket_ms=W, aliases=(("lip", ("唇膏", "lippy")), ("lip2", ("唇膏",))))
    s = Script()
    s.pin(at(0), "lip", "Rouge 999")
    s.say(at(0.1), "a", "唇膏好看")  # shared by lip and lip2: lip is on screen
    s.say(at(0.2), "b", "love the lippy")
    insights = s.fold(config).snapshot()
    (lip,) = insights.products
    assert (lip.product_id, lip.mentions, lip.mentioners) == ("lip", 2, 2)
    assert "lippy" in lip.aliases and "999" in lip.aliases


def test_audience_rules_reconnects_second_devices_lost_leaves_and_close() -> None:
    s = Script()
    for i in range(10):
        s.join(at(0.1), f"u{i}")
    s.join(at(0.2), "u10")
    s.add(at(0.2), "host", H, viewer_joined=e.ViewerJoined())  # staff: never in the audience
    s.leave(at(1.5), "u0")
    s.join(at(1.5) + 5_000, "u0", resumed=True)  # a reconnect within the merge window
    s.join(at(1.6), "u1")  # a second device
    s.leave(at(1.7), "u1")  # one of two streams: still present
    s.join(at(1.8), "u2", resumed=True)  # its old stream's leave was lost (node crash): no change
    s.leave(at(2.5), "u3")
    s.join(at(3.5), "u3")  # back after the merge window: a new arrival
    s.leave(at(4.2), "u4")
    s.add(at(5.5), "host", H, room_closed=e.RoomClosed())
    s.leave(at(5.5), "u5")  # the gateway's own leave after the close: nothing more
    insights = s.fold(InsightsConfig(bucket_ms=W, merge_ms=30_000)).snapshot()
    rows = [(b.joins, b.leaves, b.viewers) for b in insights.buckets]
    assert rows == [(11, 0, 11), (0, 0, 11), (0, 1, 10), (1, 0, 11), (0, 1, 10), (0, 10, 0)]
    t = insights.totals
    assert (t.joins, t.leaves, t.unique_viewers, t.peak_viewers, t.viewers) == (12, 12, 11, 11, 0)
    assert insights.final
    cohorts = [(c.arrivals, list(c.remaining)) for c in insights.retention]
    assert cohorts == [(11, [11, 11, 10, 10, 9, 0]), (1, [1, 1, 0])]
    curve = [(p.after_buckets, p.arrivals, p.remaining) for p in insights.retention_curve]
    assert curve[:3] == [(0, 12, 12), (1, 12, 12), (2, 12, 10)]


def test_peak_inside_a_bucket_and_the_window_of_a_query() -> None:
    s = Script()
    for i in range(50):
        s.join(at(0.1), f"u{i}")
    for i in range(40):
        s.leave(at(0.5), f"u{i}")
    s.ask(at(1.2), "u45", "多少钱")
    s.ask(at(2.2), "u46", "多少钱")
    engine = s.fold()
    whole = engine.snapshot()
    assert (whole.buckets[0].peak_viewers, whole.buckets[0].viewers, whole.totals.peak_viewers) == (50, 10, 50)
    window = engine.snapshot(start_ms=at(1), end_ms=at(2))
    assert [b.start_time.ToMilliseconds() for b in window.buckets] == [at(1)]
    assert (window.totals.joins, window.totals.viewers, window.totals.questions, window.questions[0].count) == (
        0, 10, 1, 1,
    )  # fmt: skip
    assert not window.final


def test_a_crowd_that_arrives_and_leaves_within_one_slot_is_the_peak() -> None:
    # A one-bucket show: 40 viewers arrive and the room closes within the same second (one
    # slot). Net arrivals minus departures per slot read 0 there; they were all present.
    s = Script()
    for i in range(40):
        s.join(at(0.5) + i * 10, f"u{i}")
    s.leave(at(0.5) + 500, "u0")
    s.add(at(0.5) + 600, "host", H, room_closed=e.RoomClosed())
    insights = s.fold().snapshot()
    (row,) = insights.buckets
    t = insights.totals
    assert (row.joins, row.leaves, row.viewers, row.peak_viewers) == (40, 40, 0, 40)
    assert (t.peak_viewers, t.viewers) == (40, 0)
    assert at(0.5) <= t.peak_time.ToMilliseconds() < at(0.5) + 1_000


def test_departures_just_before_arrivals_in_one_slot_are_not_present_with_them() -> None:
    # 30 present; within one slot (one second) 6 leave, then 6 others arrive: never 36 at once.
    s = Script()
    for i in range(30):
        s.join(at(0.1), f"u{i}")
    for i in range(6):
        s.leave(at(0.5) + i, f"u{i}")
    for i in range(6):
        s.join(at(0.5) + 100 + i, f"new{i}")
    s.leave(at(0.5) + 200, "u10")
    s.join(at(0.5) + 300, "u10", resumed=True)  # a reconnect inside the slot: undone, never a departure
    s.join(at(0.5) + 400, "late")
    t = s.fold(InsightsConfig(bucket_ms=W, merge_ms=30_000)).snapshot().totals
    assert (t.joins, t.leaves, t.viewers, t.peak_viewers) == (37, 6, 31, 31)


def test_the_one_minute_synthetic_show_peaks_at_everyone_who_joined() -> None:
    # the report's one-bucket case (tests/test_report_render.py): every event at the same instant
    t = synthetic_show(minutes=1).fold().snapshot().totals
    assert t.joins == 40 and t.peak_viewers == 40


def _cohorts(insights: pb.RoomInsights) -> pb.RoomInsights:
    """The snapshot's cohorts alone, so the client computes the curve itself."""
    bare = pb.RoomInsights()
    bare.retention.extend(insights.retention)
    return bare


def test_the_retention_curve_is_a_life_table_that_never_rises_and_the_clients_agree() -> None:
    # An early cohort that stays, later ones that mostly leave at once: the pooled ratio per
    # point (remaining / arrivals of the cohorts known there) would read 47 %, 60 %, 100 %.
    s = Script()
    for i in range(10):
        s.join(at(0.1), f"early{i}")
    for i in range(10):
        s.join(at(1.1), f"mid{i}")
    for i in range(8):
        s.leave(at(1.5), f"mid{i}")
    for i in range(10):
        s.join(at(2.1), f"late{i}")
    for i in range(8):
        s.leave(at(2.5), f"late{i}")
    s.ask(at(2.9), "early0", "多少钱")  # time runs to the end of bucket 2
    s.ask(at(3.0), "early0", "多少钱")
    insights = s.fold().snapshot()
    assert [(c.arrivals, list(c.remaining)) for c in insights.retention] == [
        (10, [10, 10, 10]), (10, [2, 2]), (10, [2])
    ]  # fmt: skip
    curve = [(p.after_buckets, p.arrivals, p.remaining) for p in insights.retention_curve]
    assert curve == [(0, 30, 14), (1, 20, 12), (2, 10, 10)]
    shares = [p.share for p in insights.retention_curve]
    assert shares == pytest.approx([14 / 30, 14 / 30 * 12 / 12, 14 / 30 * 12 / 12 * 10 / 10])
    assert all(b <= a for a, b in itertools.pairwise(shares))
    assert retention_survival(_cohorts(insights)) == pytest.approx(shares)
    assert retention_survival(insights) == shares


@pytest.mark.parametrize("minutes", [40, 3, 1])
def test_a_shows_retention_curve_never_rises_never_exceeds_one_and_matches_the_client(minutes: int) -> None:
    insights = synthetic_show(minutes=minutes).fold().snapshot()
    shares = [p.share for p in insights.retention_curve]
    assert shares and all(0 <= share <= 1 for share in shares)
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(shares))
    assert retention_survival(_cohorts(insights)) == pytest.approx(shares)


def test_products_funnel_counts_viewers_present_and_purchases_during_the_pin() -> None:
    s = Script()
    for i in range(20):
        s.join(at(0.1), f"u{i}")
    s.pin(at(1), "lip", "口红")
    s.join(at(1.5), "late")
    s.buy(at(1.6), "u1", "lip", 2)
    s.buy(at(1.7), "u2", "lip")
    s.add(at(2), "ops", S, product_unpinned=e.ProductUnpinned(product_id="lip"))
    s.buy(at(2.5), "u3", "lip")  # not during the pin
    s.join(at(2.6), "later")  # not present during the pin
    (lip,) = s.fold().snapshot().products
    assert (lip.viewers_during_pin, lip.purchases_during_pin, lip.units_during_pin, lip.purchases) == (21, 2, 3, 3)
    assert lip.conversion == pytest.approx(2 / 21) and lip.pinned_duration.ToSeconds() == 60


def test_engagement_counts_viewers_only_and_gifts_by_value() -> None:
    s = Script()
    s.say(at(0), "a", "主播好美")
    s.say(at(0), "a", "真的好美")
    s.say(at(0), "host", "欢迎大家", H)
    s.add(at(0), "node", S, like_burst=e.LikeBurst(delta=7, total=7))
    gift = e.Gift(count=3, unit_value=e.Money(amount_minor=500, currency="CNY"), giver=e.Sender(user_id="a"))
    s.add(at(0), "pay", S, gift=gift)
    s.add(at(0), "node", S, viewer_count=e.ViewerCount(viewers=42, node_id="n1", node_viewers=42))
    t = s.fold().snapshot().totals
    assert (t.comments, t.unique_commenters, t.likes, t.gifts) == (2, 1, 7, 3)
    assert [(m.amount_minor, m.currency) for m in t.gift_value] == [(1500, "CNY")]


def synthetic_show(minutes: int = 40, seed: int = 7) -> Script:
    """A plausible show: an audience that builds up and drifts away, questions, pins, purchases."""
    rng = random.Random(seed)
    s = Script()
    lines = [
        "主播好美",
        "好看",
        "口红颜色好正",
        "这个好用吗",
        "已下单",
        "666",
        "哈哈哈",
        "lipstick so pretty",
        "精华液好用",
    ]
    questions = ["多少钱", "这个多少钱？", "how much is it?", "包邮吗", "什么时候发货", "适合敏感肌吗", "有优惠券吗"]
    present: list[str] = []
    n = 0
    s.pin(at(1), "lip", "Dior 999 口红 Lipstick", 29900)
    for minute in range(minutes):
        if minute == 15:
            s.pin(at(15), "serum", "兰蔻 小黑瓶 精华液 Serum", 76000)
        if minute == 30:
            s.add(at(30), "ops", S, product_unpinned=e.ProductUnpinned(product_id="serum"))
        arrivals = rng.randint(20, 60) if minute < 20 else rng.randint(0, 15)
        for _ in range(arrivals):
            n += 1
            present.append(f"v{n}")
            s.join(at(minute + rng.random() * 0.5), f"v{n}")
        for _ in range(rng.randint(5, 25) if present else 0):
            if present:
                s.leave(at(minute + 0.5 + rng.random() * 0.4), present.pop(rng.randrange(len(present))))
        for _ in range(rng.randint(5, 30)):
            if present:
                who = rng.choice(present)
                t = at(minute + 0.9 + rng.random() * 0.09)
                if rng.random() < 0.3:
                    s.ask(t, who, rng.choice(questions))
                else:
                    s.say(t, who, rng.choice(lines))
        if minute % 5 == 2:
            s.say(at(minute + 0.995), "host", "只要299元，全国包邮", H)
        for _ in range(rng.randint(0, 4)):
            if present:
                s.buy(at(minute + 0.996), rng.choice(present), "lip" if minute < 15 else "serum")
        s.add(at(minute + 0.997), "node", S, like_burst=e.LikeBurst(delta=rng.randint(0, 300)))
        if present and rng.random() < 0.4:
            gift = e.Gift(
                count=rng.randint(1, 20), unit_value=e.Money(amount_minor=rng.choice([100, 1000, 5000]), currency="CNY")
            )
            s.add(at(minute + 0.998), "pay", S, gift=gift)
    s.add(at(minutes), "host", H, room_closed=e.RoomClosed())
    return s


def chunks(events: list[e.Event], size: int) -> Iterator[list[tuple[int, e.Event]]]:
    numbered = list(enumerate(events))
    for i in range(0, len(numbered), size):
        yield numbered[i : i + size]


def test_a_rebuild_or_a_resumed_feed_with_overlap_gives_the_same_figures() -> None:
    script = synthetic_show()
    straight = script.fold().snapshot("show", limits=Limits(top_questions=50))
    engine = RoomInsights("r", InsightsConfig(bucket_ms=W))
    delivered = 0
    for chunk in chunks(script.events, 97):
        start = max(0, delivered - 13)  # re-delivers the tail of the previous chunk: ignored by position
        for position, event in [*list(enumerate(script.events))[start:delivered], *chunk]:
            engine.fold(position, event)
        delivered = chunk[-1][0] + 1
    assert engine.snapshot("show", limits=Limits(top_questions=50)) == straight
    assert straight.final and straight.totals.joins > 500 and straight.questions


def test_text_analysis() -> None:
    assert analyse("ＨＯＷ　ＭＵＣＨ is it？").intents == ("price",)
    assert analyse("这个多少钱，包邮吗").intents == ("price", "shipping")
    assert analyse("包邮吗？多少钱").intents == ("shipping", "price")
    assert analyse("any sizes left?").intents[0] == "size"
    assert "口红" in title_aliases("新款 Dior 999 口红 Lipstick 礼盒") and "新款" not in title_aliases("新款 口红")
    names = AliasIndex()
    names.add("lip", title_aliases("Dior 999 口红 Lipstick"))
    assert names.find(analyse("I love these lipsticks").normalized) == ["lip"]
    assert names.mask("口红包邮吗") == "〇包邮吗"


def test_kafka_shadow_rule_matches_the_log() -> None:
    shadows = _Shadows(window_ms=1000, skew_ms=0)
    assert not shadows.is_shadow(b"r", "k", 10_000)
    assert shadows.is_shadow(b"r", "k", 10_500)  # a retry within the window
    assert not shadows.is_shadow(b"r2", "k", 10_600)  # another room
    assert not shadows.is_shadow(b"r", "k", 11_600)  # past the window: a new first copy
