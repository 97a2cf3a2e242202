"""The insights of one room, folded from its events in log order; pure (no I/O, no clock).

`RoomInsights.fold(position, event)` applies one event; `snapshot(...)` answers any
window of the history folded so far. Time is the events' `publish_time` (the accepting
gateway's clock), so the figures depend only on the log: a node that rebuilds a room
from its log reaches exactly the figures of one that followed it live.

Counted: viewers' comments, questions, likes (like bursts), gifts, purchases, presence
(server/insights/audience.py), questions (questions.py), products (products.py) and
terms. Engagement counts viewers only (role viewer): hosts, moderators, services and bots
are the show, not its audience; gifts and purchases are counted whoever published them
(the payment and order services do), by their giver and buyer.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from google.protobuf import duration_pb2, timestamp_pb2

from barrage.server.commerce.state import Unappliable, check_applicable, decode_event, skipped
from barrage.server.insights.audience import Audience
from barrage.server.insights.products import Products
from barrage.server.insights.questions import Questions
from barrage.server.insights.text import Analysis, analyse
from barrage.shoplang import lang as L
from barrage.shoplang.lang import answer_intents
from barrage.shoplang.understand import ProductNames, Reading, Understanding
from barrage.v1 import event_pb2
from barrage.v1 import insights_service_pb2 as pb

VIEWER = event_pb2.ROLE_VIEWER
ANSWERERS = frozenset({event_pb2.ROLE_HOST, event_pb2.ROLE_MODERATOR, event_pb2.ROLE_BOT})
SHOP_WIDE = frozenset({"invoice", "region"})
SHOP_TERMS = frozenset({"shipping", "delivery_time", "ships_from", "carrier", "fee", "region", "returns"})
GENERIC_KEYS = frozenset({"suitable", "sizes", "materials"})
"""Intents that a more specific part of the listing (a spec the question names) refines."""
SAME_AS_INTENT = {
    "materials": "materials", "audience": "suitable", "variants": "variants", "sizes": "sizes", "colours": "colours"
}  # fmt: skip
"""Parts of a listing that are what an intent asks for."""


_DELIVERS = re.compile(r"(不|能|可以|暂时|暂不|也)(发|寄|配送|送到)|发不了|寄不了|(don't|do not|can|we) (ship|deliver)")
"""Whether a statement says a region gets delivered to ("新疆西藏暂时发不了"), not where it ships from."""
_TRY_ON = re.compile(r"试穿|试戴|试色|主播.{0,2}(穿|戴|涂)")
"""Asking the host to wear it ("主播试穿一下藏青色"): a request of its own, in any colour."""


def _hues(colour: str) -> list[str]:
    """The basic hues a colour is, whatever it was called ("樱花粉", "粉色", "pink" -> 粉;
    "黑白" -> 黑, 白); none for a shade of no basic hue ("豆沙色", "汤色")."""
    return [ch for ch in L.COLOUR_ZH_OF.get(colour, colour) if ch in L.COLOURS_ZH]


def _topic_key(topic: str) -> str:
    return SAME_AS_INTENT.get(topic, f"about:{topic}")


"""Questions about the shop, not a product (with a registered catalogue)."""


@dataclass(frozen=True, slots=True)
class InsightsConfig:
    bucket_ms: int = 60_000
    """Width of a bucket (one minute; tests compress time with seconds)."""
    merge_ms: int = 30_000
    """A leave followed by a join of the same viewer within this is a reconnect."""
    similarity: float = 0.5
    """Word overlap from which a question joins a group of the same product (questions.py)."""
    max_question_groups: int = 5000
    aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Extra product aliases (product id, names), from the alias file."""


@dataclass(frozen=True, slots=True)
class Limits:
    top_questions: int = 20
    top_terms: int = 30
    trend_buckets: int = 5

    @staticmethod
    def of(options: pb.InsightsOptions) -> Limits:
        return Limits(
            min(200, options.top_questions or 20),
            min(200, options.top_terms or 30),
            min(1000, options.trend_buckets or 5),
        )


@dataclass(slots=True)
class Bucket:
    comments: int = 0
    commenters: set[str] = field(default_factory=set)
    questions: int = 0
    likes: int = 0
    gifts: int = 0
    gift_value: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    purchases: int = 0
    units: int = 0
    buyers: set[str] = field(default_factory=set)
    reported_viewers: int = 0
    terms: Counter[str] = field(default_factory=Counter)


def _ts(ms: int) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def _duration(ms: int) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(ms)
    return d


def _money(values: dict[str, int]) -> list[event_pb2.Money]:
    return [event_pb2.Money(amount_minor=v, currency=c) for c, v in sorted(values.items()) if v]


def survival_curve(cohorts: list[tuple[int, list[int]]]) -> list[tuple[int, int, float]]:
    """The retention curve of (arrivals, remaining per bucket end) cohorts, as a life table:
    point k is (arrivals, remaining) summed over the cohorts known at k, and the share
    S(0) = Σ remaining[0] / Σ arrivals, S(k) = S(k-1) · Σ remaining[k] / Σ remaining[k-1],
    both sums over the cohorts known at k.

    Young cohorts are not known far out: the plain pooled ratio at k (remaining / arrivals of
    the cohorts known at k) counts only the earliest cohorts late on and climbs back towards
    100 % when they stayed longest. Chaining the step ratios never rises, because no cohort's
    remaining does (docs/insights.md, retention)."""
    arrivals: dict[int, int] = defaultdict(int)
    remaining: dict[int, int] = defaultdict(int)
    before: dict[int, int] = defaultdict(int)  # Σ remaining[k-1] (Σ arrivals at k = 0), cohorts known at k
    for n, left in cohorts:
        if not n:
            continue
        for k, still in enumerate(left):
            arrivals[k] += n
            remaining[k] += still
            before[k] += left[k - 1] if k else n
    out: list[tuple[int, int, float]] = []
    share = 1.0
    for k in range(len(arrivals)):
        share = share * remaining[k] / before[k] if before[k] else 0.0
        out.append((arrivals[k], remaining[k], share))
    return out


class RoomInsights:
    """Folded insights of one room. Feed every event once, in log order."""

    def __init__(self, room_id: str, config: InsightsConfig) -> None:
        self.room_id = room_id
        self.config = config
        self.position = -1
        """Log position of the last folded event (-1: none)."""
        self.cursor = ""
        """Its cursor, set by whoever feeds the engine."""
        self.events = 0
        self.first_ms = -1
        self.last_ms = -1
        self.closed = False
        self.buckets: dict[int, Bucket] = defaultdict(Bucket)
        self.audience = Audience(config.bucket_ms, config.merge_ms)
        self.questions = Questions(config.similarity, config.max_question_groups)
        self.products = Products({pid: list(names) for pid, names in config.aliases})
        self.understanding: Understanding | None = None
        """From the room's latest catalogue_registered event: the shared reading of comments."""

    def bucket(self, ms: int) -> int:
        return ms // self.config.bucket_ms

    # ------------------------------------------------------------------ fold

    def fold(self, position: int, event: event_pb2.Event) -> bool:
        """Apply one event; False (and nothing changes) if it is not after the last one.

        Never raises: an event whose values are out of range, or that fails to apply, is
        skipped (ERROR log, barrage.fold.skipped{barrage.fold=insights}) and the room's
        insights go on from the next one."""
        if position <= self.position:
            return False
        try:
            check_applicable(event)  # before any change: a bad event changes nothing
            return self._apply(position, event)
        except Exception as exc:  # one event must never stop a room's insights
            self.position = position
            skipped("insights", self.room_id, position, event.payload.WhichOneof("kind"), exc)
            return True

    def fold_bytes(self, position: int, data: bytes) -> bool:
        """fold() for event bytes as read from the log (bytes that do not parse are skipped)."""
        if position <= self.position:
            return False
        try:
            event = decode_event(data)
        except Unappliable as exc:
            self.position = position
            skipped("insights", self.room_id, position, None, exc)
            return True
        return self.fold(position, event)

    def _apply(self, position: int, event: event_pb2.Event) -> bool:
        self.position = position
        if event.payload.WhichOneof("kind") == "whisper":
            return True  # private (server/core/whisper.py): no figure, count or text of insights shows it
        self.events += 1
        at = event.publish_time.ToMilliseconds()
        if self.last_ms >= 0 and at < self.last_ms:
            at = self.last_ms  # nodes' clocks differ a little: time never runs backwards here
        if at <= 0:
            at = max(self.last_ms, 0)  # no publish time (never from a gateway): as the previous event
        if self.first_ms <= 0:
            self.first_ms = at
        self.last_ms = at
        payload = event.payload
        kind = payload.WhichOneof("kind")
        sender = event.sender
        b = self.bucket(at)
        if kind == "comment":
            self._comment(event, at, b)
        elif kind == "viewer_joined":
            if sender.role == VIEWER:
                change = self.audience.joined(sender.user_id, at, payload.viewer_joined.resumed)
                if change is not None:
                    self.products.arrived(sender.user_id)
        elif kind == "viewer_left":
            if sender.role == VIEWER:
                self.audience.left(sender.user_id, at)
        elif kind == "like_burst":
            self.buckets[b].likes += payload.like_burst.delta
        elif kind == "gift":
            gift = payload.gift
            bucket = self.buckets[b]
            bucket.gifts += gift.count
            bucket.gift_value[gift.unit_value.currency] += gift.count * gift.unit_value.amount_minor
        elif kind == "purchase":
            purchase = payload.purchase
            bucket = self.buckets[b]
            bucket.purchases += 1
            bucket.units += purchase.quantity
            bucket.buyers.add(purchase.buyer.user_id)
            self.products.purchased(purchase.product_id, purchase.buyer.user_id, purchase.quantity, b)
        elif kind == "product_pinned":
            self.products.pin(payload.product_pinned.product, at, self.audience.present)
        elif kind == "product_unpinned":
            self.products.unpin(payload.product_unpinned.product_id, at)
        elif kind == "product_updated":
            self.products.updated(payload.product_updated)
        elif kind == "flash_sale_started":
            self.products.sale_started(payload.flash_sale_started, at, self.audience.present)
        elif kind == "flash_sale_ended":
            self.products.sale_ended(payload.flash_sale_ended.sale_id, at)
        elif kind == "viewer_count":
            bucket = self.buckets[b]
            bucket.reported_viewers = max(bucket.reported_viewers, payload.viewer_count.viewers)
        elif kind == "catalogue_registered":
            self._register(payload.catalogue_registered)
        elif kind == "room_closed":
            self.audience.room_closed(at)
            self.products.closed(at)
            self.closed = True
        return True

    def _register(self, catalogue: event_pb2.CatalogueRegistered) -> None:
        entries = [
            ProductNames(p.product_id, tuple(p.names), tuple(p.categories), tuple((t.key, t.text) for t in p.topics))
            for p in catalogue.products
            if p.product_id and p.names
        ]
        self.understanding = Understanding(products=entries) if entries else None
        for entry in entries:
            product = self.products.product(entry.product_id)
            product.title = product.title or entry.names[0]

    def _read(
        self, text: str, analysis: Analysis, on_screen: list[str], answer: bool = False
    ) -> tuple[Reading, Analysis, list[str]]:
        """With a registered catalogue: the shared reading's products and what is asked."""
        assert self.understanding is not None
        reading = self.understanding.read(text)
        # ("拼图还有货没" names two jigsaws: the one on sale)
        named = reading.about(self.products.pinned or None, self.products.on_sale()) if reading.named else []
        if reading.named and len(named) == 1 and named[0] not in (*reading.named, *reading.also_named):
            named = list(reading.named)  # (but "人脸锁" of two face locks is the one on screen)
        if len(reading.named) > 1 and len(named) == 1:
            named = named + [pid for pid in reading.named if pid not in named]
        key = reading.topic_key
        # a colour asked for is its last hue ("樱花粉" is 粉); a statement names every hue ("黑白两色")
        hues = [f"colour:{hue}" for c in reading.colours for hue in _hues(c)[-1:]]
        if hues and key in ("host", "show", "stock", "colours") and not _TRY_ON.search(reading.text):
            key = hues[0]  # "想看看白色的", "白的还有吗", "in white?": the viewers who want that colour
        on_screen = self._sized_first(reading, on_screen)
        subject = (named or on_screen)[0] if (named or on_screen) else ""
        topic = self.understanding.topic_for(reading, subject) if subject else ""
        # What is asked, as the product's listing names it: the kind of spec a question asks
        # about ("湿透", "rain", "防水" -> the waterproofing spec) comes before the words it
        # shares with the listing, and both before a generic "can I use it" / "what size".
        kind = self.understanding.topic_of_kind(reading, subject) if subject and reading.concepts else ""
        generic = not reading.intents or key in GENERIC_KEYS
        if (
            subject
            and (not reading.intents or key == "materials")
            and self.understanding.substance_asked(reading, subject)
        ):
            key = "materials"  # "是纯羊绒吗", "方巾桑蚕丝吗": what it is made of
        elif kind and (not reading.intents or key == "suitable"):
            key = _topic_key(kind)
        elif topic and generic:
            key = _topic_key(topic)
        elif key == "suitable" and reading.concepts:
            key = reading.concepts[0]  # "冬天能用吗" asks about winter, not "can I use it"
        keys = [*(reading.intents if answer else key.split()), *analysis.intents]
        if answer:
            # A statement about those parts of the listing answers them (all it talks about).
            every = self.understanding.topics_for(reading, subject) if subject else []
            keys += [_topic_key(t) for t in (kind, topic, *every) if t]
        if answer:
            hues = [f"colour:{hue}" for c in reading.colours for hue in _hues(c)]
            # (and the regions a statement says it does or does not deliver to: "新疆西藏暂时发不了")
            keys += [
                *reading.concepts,
                *answer_intents(reading.text),
                *hues,
                *(["region"] if reading.regions and _DELIVERS.search(reading.text) else []),
            ]
        intents = tuple(dict.fromkeys(k for k in keys if k))
        return reading, Analysis(analysis.normalized, intents, reading.topic_words, analysis.terms), named

    def _unnamed(self, reading: Reading, on_screen: list[str]) -> list[str]:
        """What a question naming no product is about: "秒杀的" -> the sale's product, a
        shop-wide question (invoice, delivery to a region) or one about a kind of product the
        room does not sell ("有没有平板") -> none, else what is on screen."""
        sale = self.products.on_sale()
        if reading.sale and sale is not None:
            return [sale]
        if not reading.pointed and (reading.topic_key in SHOP_WIDE or reading.regions or reading.other_kind):
            return []
        if reading.variants:
            return list(reading.variants)  # "无耳洞有耳夹款吗": the product that has a clip-on version
        assert self.understanding is not None
        first = on_screen[0] if on_screen else None
        heads = set() if reading.pointed else self.understanding.head_owners(reading, first)
        # "拼图还有货没" with a board game pinned: the jigsaw on sale, or the one jigsaw sold
        headed = [pid for pid in on_screen if pid in heads] or (sorted(heads) if len(heads) == 1 else [])
        if headed:
            return headed
        owner = self.understanding.owner_of_words(reading, on_screen)
        if owner is not None:
            return [owner]  # "耳针啥材质" while the necklace is pinned: the earrings list their posts
        return self._sized_first(reading, on_screen)

    def _sized_first(self, reading: Reading, on_screen: list[str]) -> list[str]:
        """ "柯基穿什么码" while a water fountain is pinned and a harness on sale: a size
        question is about the product on screen that comes in sizes."""
        assert self.understanding is not None
        if reading.pointed or not ("sizes" in reading.intents or reading.sizes) or len(on_screen) < 2:
            return on_screen
        sized = [pid for pid in on_screen if self.understanding.lists(pid, "sizes")]
        return sized + [pid for pid in on_screen if pid not in sized]

    def _comment(self, event: event_pb2.Event, at: int, b: int) -> None:
        comment = event.payload.comment
        sender = event.sender
        if sender.role == VIEWER:
            analysis = analyse(comment.text, names=self.products.aliases)
            bucket = self.buckets[b]
            bucket.comments += 1
            bucket.commenters.add(sender.user_id)
            bucket.terms.update(analysis.terms)
            on_screen = self.products.on_screen()
            asked = comment.question
            fallback = on_screen
            if self.understanding is not None:
                reading, analysis, named = self._read(comment.text, analysis, on_screen)
                asked = reading.question
                fallback = self._unnamed(reading, on_screen)
            else:
                named = self.products.aliases.find(analysis.normalized, on_screen)
            for product_id in named:
                product = self.products.product(product_id)
                product.mentions[b] += 1
                product.mentioners[b].add(sender.user_id)
            if asked:
                bucket.questions += 1
                about = named[0] if named else (fallback[0] if fallback else "")
                if about:
                    self.products.product(about).questions[b] += 1
                self.questions.ask(event.event_id, sender.user_id, comment.text, at, b, analysis, about)
        elif sender.role in ANSWERERS and not comment.question:
            analysis = analyse(comment.text, answer=True, names=self.products.aliases)
            on_screen = self.products.on_screen()
            if self.understanding is not None:
                reading, analysis, named = self._read(comment.text, analysis, on_screen, answer=True)
                owner = self.understanding.owner_of_words(reading, on_screen) if not named else None
                named = [owner] if owner else named  # "安卓也能用，贴上引磁片就吸住了": the phone mount's words
            else:
                named = self.products.aliases.find(analysis.normalized, on_screen)
            products = [*(named or on_screen), ""]  # and the shop-wide questions ("能发新疆不")
            if named and SHOP_TERMS & set(analysis.intents):
                # "深圳中通发货，2到5天到；脚垫常州发": the shop's terms answer what was asked of the screen
                products = [*named, *(p for p in on_screen if p not in named)]
            self.questions.comment_by_staff(
                event.event_id, sender.role, comment.text, at, comment.reply_to_event_id, analysis, products
            )

    # ------------------------------------------------------------------ figures

    def snapshot(
        self,
        title: str = "",
        start_ms: int | None = None,
        end_ms: int | None = None,
        limits: Limits = Limits(),
    ) -> pb.RoomInsights:
        """The figures of the window [start, end) (bucket-aligned; default: the whole show)."""
        width = self.config.bucket_ms
        as_of = max(self.last_ms, 0)
        origin = self.first_ms if self.first_ms >= 0 else as_of
        first = self.bucket(start_ms if start_ms is not None else origin)
        last_end = end_ms if end_ms is not None else as_of + 1
        end = max(first + 1, -(-last_end // width))
        end = min(end, first + 100_000)  # a window of absurd width: cap the series
        window_start, window_end = first * width, end * width
        as_of_w = min(as_of, window_end - 1)
        whole = (self.first_ms < 0 or window_start <= self.first_ms) and window_end > as_of
        out = pb.RoomInsights(
            room_id=self.room_id,
            title=title,
            bucket_width=_duration(width),
            start_time=_ts(window_start),
            end_time=_ts(window_end),
            as_of_time=_ts(as_of),
            through_cursor=self.cursor,
            final=self.closed and whole,
        )
        self._series(out, first, end, as_of_w, whole)
        self._retention(out, first, end, as_of_w)
        self._questions(out, first, end, limits)
        self._products(out, first, end, window_start, window_end)
        self._terms(out, first, end, limits)
        return out

    def _series(self, out: pb.RoomInsights, first: int, end: int, as_of: int, whole: bool) -> None:
        audience = self.audience
        viewers_end, peaks, peak, peak_ms = audience.concurrency(first, end, as_of)
        totals = out.totals
        commenters: set[str] = set()
        buyers: set[str] = set()
        gift_value: dict[str, int] = defaultdict(int)
        for i, b in enumerate(range(first, end)):
            bucket = self.buckets.get(b)
            row = out.buckets.add(
                start_time=_ts(b * self.config.bucket_ms),
                joins=audience.joins.get(b, 0),
                leaves=audience.leaves.get(b, 0),
                viewers=viewers_end[i],
                peak_viewers=peaks[i],
            )
            totals.joins += row.joins
            totals.leaves += row.leaves
            if bucket is None:
                continue
            row.comments = bucket.comments
            row.unique_commenters = len(bucket.commenters)
            row.questions = bucket.questions
            row.likes = bucket.likes
            row.gifts = bucket.gifts
            row.gift_value.extend(_money(bucket.gift_value))
            row.purchases = bucket.purchases
            row.units_sold = bucket.units
            row.reported_viewers = bucket.reported_viewers
            totals.comments += bucket.comments
            totals.questions += bucket.questions
            totals.likes += bucket.likes
            totals.gifts += bucket.gifts
            totals.purchases += bucket.purchases
            totals.units_sold += bucket.units
            commenters |= bucket.commenters
            buyers |= bucket.buyers
            for currency, value in bucket.gift_value.items():
                gift_value[currency] += value
        totals.unique_commenters = len(commenters)
        totals.unique_buyers = len(buyers)
        totals.gift_value.extend(_money(gift_value))
        totals.viewers = viewers_end[-1] if viewers_end else 0
        totals.peak_viewers = peak
        if peak:
            totals.peak_time.CopyFrom(_ts(max(peak_ms, first * self.config.bucket_ms)))
        watched, people = audience.watch_ms(first * self.config.bucket_ms, end * self.config.bucket_ms, as_of, whole)
        totals.unique_viewers = people
        if people:
            totals.average_watch_time.CopyFrom(_duration(watched // people))

    def _retention(self, out: pb.RoomInsights, first: int, end: int, as_of: int) -> None:
        cohorts = self.audience.retention(first, end, as_of, self.closed)
        for cohort, count, left in cohorts:
            out.retention.add(start_time=_ts(cohort * self.config.bucket_ms), arrivals=count, remaining=left)
        for k, (arrivals, remaining, share) in enumerate(survival_curve([(n, left) for _, n, left in cohorts])):
            out.retention_curve.add(after_buckets=k, arrivals=arrivals, remaining=remaining, share=share)

    def _questions(self, out: pb.RoomInsights, first: int, end: int, limits: Limits) -> None:
        start_ms, end_ms = first * self.config.bucket_ms, end * self.config.bucket_ms
        rows = []
        for group in self.questions.groups.values():
            i, j = bisect_left(group.times, start_ms), bisect_left(group.times, end_ms)
            if i < j:
                rows.append((group, i, j))
        rows.sort(key=lambda r: (-(r[2] - r[1]), r[0].times[r[1]], r[0].group_id))
        for group, i, j in rows[: limits.top_questions]:
            times = group.times
            if i == 0 and j == len(times):
                askers = len(group.askers)
            else:
                who: set[str] = set()
                for b, users in group.askers_by_bucket.items():
                    if first <= b < end:
                        who |= users
                askers = len(who)
            row = out.questions.add(
                group_id=group.group_id,
                intent=group.intent,
                product_id=group.product_id,
                count=j - i,
                askers=askers,
                example=group.example[0],
                example_event_id=group.example[1],
                variants=group.variants,
                first_time=_ts(times[i]),
                last_time=_ts(times[j - 1]),
            )
            answers = [a for a in group.answers if times[i] <= a.at < end_ms]
            if answers:
                first_answer = answers[0]
                row.answered = True
                row.answered_by = first_answer.role  # type: ignore[assignment]
                row.answer = first_answer.text
                row.answer_event_id = first_answer.event_id
                row.answer_time.CopyFrom(_ts(first_answer.at))
                row.open_count = j - max(i, bisect_right(times, answers[-1].at))
            else:
                row.open_count = j - i

    def _products(self, out: pb.RoomInsights, first: int, end: int, start_ms: int, end_ms: int) -> None:
        as_of = max(self.last_ms, 0)
        for product in sorted(
            self.products.products.values(), key=lambda p: (p.pins[0].start if p.pins else math.inf, p.product_id)
        ):
            pins = [pin for pin in product.pins if pin.start < end_ms and (pin.end < 0 or pin.end > start_ms)]
            mentions = sum(n for b, n in product.mentions.items() if first <= b < end)
            if not pins and not mentions:
                continue
            mentioners: set[str] = set()
            for b, who in product.mentioners.items():
                if first <= b < end:
                    mentioners |= who
            viewers: set[str] = set()
            buyers: set[str] = set()
            row = out.products.add(
                product_id=product.product_id,
                title=product.title,
                aliases=self.products.aliases.aliases_of(product.product_id),
                pins=len(pins),
                mentions=mentions,
                mentioners=len(mentioners),
                questions=sum(n for b, n in product.questions.items() if first <= b < end),
                purchases=sum(n for b, n in product.purchases.items() if first <= b < end),
            )
            if product.price is not None:
                row.price.CopyFrom(product.price)
            shown = 0
            for pin in pins:
                stop = pin.end if pin.end >= 0 else as_of
                shown += max(0, min(stop, end_ms) - max(pin.start, start_ms))
                viewers |= pin.viewers
                buyers |= pin.buyers
                row.purchases_during_pin += pin.purchases
                row.units_during_pin += pin.units
            row.pinned_duration.CopyFrom(_duration(shown))
            if pins:
                row.first_pinned_time.CopyFrom(_ts(pins[0].start))
            row.buyers_during_pin = len(buyers)
            row.viewers_during_pin = len(viewers)
            row.conversion = row.purchases_during_pin / len(viewers) if viewers else 0.0

    def _terms(self, out: pb.RoomInsights, first: int, end: int, limits: Limits) -> None:
        total: Counter[str] = Counter()
        recent: Counter[str] = Counter()
        last = min(end, self.bucket(max(self.last_ms, 0)) + 1)
        recent_from = max(first, last - limits.trend_buckets)
        for b in range(first, end):
            bucket = self.buckets.get(b)
            if bucket is None:
                continue
            total.update(bucket.terms)
            if b >= recent_from:
                recent.update(bucket.terms)
        for term, count in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[: limits.top_terms]:
            out.top_terms.add(term=term, count=count)
        spans = max(1, end - first)
        recent_spans = max(1, last - recent_from)
        for term, count in sorted(recent.items(), key=lambda kv: (-kv[1], kv[0]))[: limits.top_terms]:
            lift = (count / recent_spans) / (total[term] / spans) if total[term] else 0.0
            out.trending_terms.add(term=term, count=count, lift=round(lift, 3))
