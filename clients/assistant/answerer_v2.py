"""The answerer for catalogue format v2, on the shared understanding (shoplang).

`CatalogueAnswerer(catalogue)` reads a question with `barrage.shoplang.understand` (which
products, what is asked, variant / size / colour / region / age / weight named), then
states only what the catalogue (format v2) and the room's live state say: live price,
list price, variant prices, stock, the flash sale (price, stock, limit, minutes left),
the product's own shipping (from, carrier, time, fee) or the shop's, returns, warranty,
gift with purchase, sizes and the size chart, colours, materials, who it is and is not
for (with limits checked against an age, weight or height in the question), specs and
FAQ. What is asked and not listed — an unlisted colour, size or region, a property the
catalogue does not mention, a health claim — is declined ("not listed, please ask
customer service"), never guessed. Every number in a reply comes from the catalogue or
the live state (checked by grounding.ungrounded before a reply is returned).
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from decimal import Decimal
from functools import lru_cache

from barrage.clients.assistant.answerer import Answer, Unknown, render
from barrage.clients.assistant.catalog import Lang
from barrage.clients.assistant.facts import Fact, clock, money, zone
from barrage.clients.assistant.grounding import ungrounded
from barrage.clients.assistant.listing_facts import (
    amount_in,
    amount_of_variants,
    chart_cells,
    chart_columns,
    chart_covers,
    chart_rows_saying,
    colours_fact,
    column_kind,
    count_not_listed,
    listing_fact,
    materials_fact,
    money_text,
    same_number,
    size_fact,
    variant_kinds,
    variants_fact,
    variants_measure,
)
from barrage.clients.assistant.state import LiveState, Price
from barrage.shoplang import lang as L
from barrage.shoplang import units
from barrage.shoplang.catalogue import Audience, Catalogue, Faq, Limit, Product, Shipping, Spec, Text, Variant
from barrage.shoplang.understand import Reading, Understanding, content_words

DECLINE: dict[str, tuple[str, str]] = {
    "medical": (
        "抱歉，商品信息里没有列出健康或治疗功效，我不能这样说，请咨询医生或客服～",
        "Sorry, no health or medical effect is listed for this product, so I can't claim one — please ask a doctor "
        "or customer service.",
    ),
    "unknown": (
        "抱歉，商品信息里没有列出这一点，请咨询客服～",
        "Sorry, that is not listed in the product information — please ask customer service.",
    ),
    "no_product": (
        "抱歉，直播间的商品里没有找到这个，请咨询客服～",
        "Sorry, I couldn't find that among this shop's products — please ask customer service.",
    ),
    "future": (
        "抱歉，之后的直播、价格和秒杀安排我不清楚，请关注直播间或咨询客服～",
        "Sorry, I don't know about later shows, prices or sales — please follow the room or ask customer service.",
    ),
}
_YES_NO_PROPERTY = re.compile(
    r"(?:有没有|有|是不是|是|支持|带|含|加了?|用的是|能不能|能|可以)(?P<x>[^吗呢么嘛?？]{1,12}?)(?:的)?(?:吗|么|嘛|不|没有)"
    r"|^(?:is|are|does|do|has|have|can)\b.*?\b(?:it|they|this|these|the \w+(?: \w+)?)\s+(?P<y>.+)$"
)


_CHOICE = re.compile(
    r"是(?P<a>[\u4e00-\u9fff]{2,5}?)的?还是(?P<b>[\u4e00-\u9fff]{2,5}?)的?(?:[呀啊呢吗?？\s]|$)"
    r"|\b(?:is it|is this|are they)?\s*(?P<c>[a-z]{3,12}) or (?P<d>[a-z]{3,12})\s*\?"
)
"""A choice between two kinds ("是机械的还是石英的", "quartz or automatic?")."""

_AGAINST_ANOTHER = re.compile(r"贵多少|便宜多少|差多少|差价|有优惠|优惠吗|划算|分别|各多少|多少.{1,12}呢[?？]?$")
"""A version's price asked beside another's: every version's price answers it."""

SHIPPING_INTENTS = frozenset({"fee", "shipping", "ships_from", "carrier", "delivery_time", "region"})
SHOP_INTENTS = SHIPPING_INTENTS | {"returns", "invoice", "link"}
_LATER_SHOW = re.compile(
    r"(明天|明晚|后天|下次|下回|下一场|下场|下周|改天|过几天)[^，。,.?？!！]{0,10}(价|秒杀|播|活动|优惠|福利|返场)"
    r"|下一场|还会再(有|上)|会不会再(有|上)|返场|还会有(秒杀|活动|优惠|福利|这个价)"  # (not "洗了还会有味道吗")
    r"|\b(tomorrow|later tonight|next (time|week))\b.{0,30}\b(price|sale|deal|live|stream|show)"
    r"|\banother (flash )?sale\b|\bnext (live|show|stream)\b|\bnext gen(eration)?\b|\bcoming out\b"
)
"""A question about what the shop will do later: its next show, a price or sale to come."""
_SIZE_KIND = re.compile(
    r"有\s*(?P<zh>儿童|童|婴儿|宝宝|半|男|女|男士|女士|男款|女款|男生|女生)的?(码|号|尺码|款|版)"
    r"|\bcome in an? (?P<en>men'?s|women'?s|kids'?|children'?s|half) (version|sizes?)"
)
"""A kind of size or version asked for by who wears it or a half size."""
_ORIGIN_SAID = re.compile(r"产地|产自|原产|[国省市县镇]产|进口|原装|made in|origin|imported|grown in|from the")
"""A fact that says where a product comes from."""
_SHOP_IN_PERSON = re.compile(r"线下|实体店|门店|\b(physical|offline) (store|shop)|store i can visit")
_HOST_OWN_SIZE = re.compile(
    r"主播(自己|本人)?(穿|戴)?的?(是)?(多大|什么|啥|几|哪个)(码|号)|主播(自己|本人)?(多高|身高|体重|多重|多少斤)"
    r"|\bhost'?s? (own )?(height|weight|size)|how tall is the host|what size (is|does) the host"
)
_THE_SHOP = re.compile(
    r"你们家|你家|店里|全店|本店|店铺|\byour (return|shipping|delivery|policy|store|shop)|\bstore policy"
)
"""What the shop's own terms answer without a product."""


class CatalogueAnswerer:
    """Answers from a v2 catalogue and the room's live state (the bot's Answerer protocol)."""

    reads_questions = True
    """It tells questions from chatter itself (barrage.shoplang.understand.is_question): the bot
    passes it every viewer comment, not only those the server flagged."""

    def __init__(self, catalogue: Catalogue, *, unknown: Unknown = "say", tz: str = "Asia/Shanghai") -> None:
        self.catalogue = catalogue
        self.understanding = Understanding(catalogue)
        self._faq_concepts: dict[int, frozenset[str]] = {}
        self._all_listings = " ".join(  # every name and listing of the room, for "is it sold here"
            L.normalize(p.name.zh + " " + " ".join(p.aliases)) + " " + self.understanding.listing_text(p.id)
            for p in catalogue.products
        )
        self.unknown = unknown
        self.tz = zone(tz)

    # ------------------------------------------------------------------ entry point

    def answer(self, question: str, state: LiveState, now_ms: int) -> Answer:
        reading = self.understanding.read(question)
        lang = _lang(reading)
        if not reading.question:
            return Answer(question, lang, "ignore", reason="not a question")
        if reading.medical:
            return self._decline(question, lang, "medical", reading)
        answer = self._answer(question, reading, lang, state, now_ms)
        asked = units.conversion(reading.text)
        if asked is None or (answer.outcome == "answer" and units.states(answer.text, asked.unit)):
            return answer  # ("how many feet is the 3m cable": its listing says "about 10 ft")
        # "2公斤是几斤 这箱": the amount the viewer gives, in the unit asked (arithmetic, not
        # a listed fact), then whatever the listing says of the rest.
        said = asked.sentence(lang)
        converted = Fact("convert", None, said, said, (said,))
        if answer.outcome != "answer":
            return Answer(question, lang, "answer", (converted,), said)
        joined = said + ("；" if lang == "zh" else "; ") + answer.text
        return Answer(question, lang, "answer", (converted, *answer.facts), joined)

    def _answer(self, question: str, reading: Reading, lang: Lang, state: LiveState, now_ms: int) -> Answer:
        sale = state.current_sale(now_ms)
        sale_pid = sale.product_id if sale is not None else None
        facts: list[Fact] = []
        declined: list[str] = []
        shop_facts = self._shop_level(reading, lang)
        if not shop_facts and _LATER_SHOW.search(reading.text):
            # "明天还是这个价吗", "will there be another flash sale tonight": what the shop will do
            # is in no listing or live state (a FAQ of the shop's show times answers instead).
            return self._decline(question, lang, "future", reading)
        if _SHOP_IN_PERSON.search(reading.text) and not any(
            _SHOP_IN_PERSON.search(L.normalize(f"{f.zh} {f.en}")) for f in shop_facts
        ):
            return self._decline(question, lang, "unknown", reading)  # "有线下门店吗": unless the FAQ says
        products = [pid for pid in reading.about(state.pinned_id, sale_pid) if self.catalogue.product(pid)]
        if _HOST_OWN_SIZE.search(reading.text) and not any(
            re.search(r"主播|host|model", self.understanding.listing_text(pid)) for pid in products
        ):
            # "主播自己穿多大码": the host's own size, which a listing may give ("主播165穿M"); the
            # product's sizes are no answer to it.
            return self._decline(question, lang, "unknown", reading)
        if reading.other_kind and not reading.named and not reading.pointed:
            return self._decline(question, lang, "no_product", reading)  # "有拉拉裤吗": not sold here
        if self._unknown_thing(reading):
            return self._decline(question, lang, "no_product", reading)  # "主播身上的围裙哪里买"
        others = set(reading.intents) - {"recommend", "price", "suitable"}
        if (
            "recommend" in reading.intents
            and not others
            and reading.named
            and not reading.pointed
            and not _clause_properties(reading)
            # ("腰围2尺7选哪个", "3岁能练字吗 有没有适合的字帖": which size / whether it fits, and the price)
            and not reading.quantities
            and "suitable" not in reading.intents
        ):
            # "scared of a flat tyre, what should i get": the product the need names, at its price;
            # products named only by a shared word ("办公", "文件", "布置") are candidates to weigh
            if L.needs(reading.text) or max(reading.strength.values(), default=0) < 2:
                return self._recommend(question, reading, state, now_ms)  # "my succulents get no sun, what can help"
            named = [p for pid in reading.named[:3] if (p := self.catalogue.product(pid)) is not None]
            limit = L.budget(reading.text)
            versions = [reading.variants.get(p.id) or _extreme_variant(p, reading.text) for p in named]
            priced = [self._priced_within(p, limit, state, now_ms, v) for p, v in zip(named, versions, strict=True)]
            facts = [item[0] for item in priced if item is not None]
            facts = facts or [self._price_fact(p, state, now_ms) for p in named]
            if facts:
                return Answer(question, lang, "answer", tuple(facts), render(lang, facts))
        if "recommend" in reading.intents and not others and not reading.named:
            # "插龟背竹买哪个号": the one product whose size chart names that use, at that size
            sized = [f for p in self.catalogue.products if (f := chart_rows_saying(p, reading.residue)) is not None]
            if len(sized) == 1:
                return Answer(question, lang, "answer", tuple(sized), render(lang, sized))
        if (
            "recommend" in reading.intents
            and not others
            and not reading.named
            and not reading.pointed
            # "送女朋友的 有礼盒吗": is there a gift box (a yes/no clause of its own)
            and not (_clause_properties(reading) and re.search(r"吗|么|嘛", reading.text))
        ):
            return self._recommend(question, reading, state, now_ms)
        if len(reading.named) > 1 and len(set(reading.name_spans)) == 1:
            # "那个58g的鼠标", one word naming two mice: the one listing that weight
            weighed = self.understanding.holders_of_marks(reading) & set(reading.named)
            if len(weighed) == 1:
                products = sorted(weighed)
        screen = [pid for pid in (state.pinned_id, sale_pid) if pid]
        if (instead := self.understanding.screen_instead(reading, screen)) is not None:
            products = [instead]
        held: set[str] = set()
        if not reading.named:
            products = self._by_measure(reading, products, sale_pid)
            held = (
                set()
                if reading.pointed
                else self.understanding.holders_of_marks(reading, products[0] if products else None)
            )
            if held and (not products or products[0] not in held):
                # "那个58g的鼠标" with the keyboard pinned: the one listing giving that amount
                shown = [pid for pid in screen if pid in held]
                products = shown[:1] or (sorted(held) if len(held) == 1 else products)
            elif (
                # ("这件是鹅绒还是鸭绒": two kinds the thing on screen may be, not the products called so)
                not (reading.pointed and _CHOICE.search(reading.text))
                and (head := self.understanding.head_owner(reading, products[0] if products else None)) is not None
            ):
                products = [head]  # "相机买了送什么" with the gimbal pinned: the camera
            elif (
                not reading.pointed
                and 1 < len(heads := self.understanding.head_owners(reading, products[0] if products else None)) <= 3
            ):
                # "拼图拍了送啥" with a board game pinned and two jigsaws sold: the jigsaw on sale,
                # else each jigsaw's answer
                products = [sale_pid] if sale_pid in heads else [p.id for p in self.catalogue.products if p.id in heads]
            owner = self.understanding.owner_of_words(reading, screen)
            owner_p = self.catalogue.product(owner) if owner is not None else None
            if owner_p is not None and (not shop_facts or any(self._faq_hit(e, reading) for e in owner_p.faq)):
                # ("膜贴歪了能退吗": the screen film's own FAQ beats the shop's returns)
                products = [owner_p.id]
                shop_facts = []
            elif (
                products
                and sale_pid
                and products[0] != sale_pid
                and products[0] not in held  # ("how big is the 200x230 one": the pinned duvet's size)
                and not (reading.pointed or reading.intents or reading.variants)  # ("8寸的直径": the 8-inch tin)
            ):
                # "一块电池能玩多久" with a scooter pinned (its wheels "need no battery") and an RC car
                # on sale: the product with a spec of that kind by name.
                pinned_p, sale_p = self.catalogue.product(products[0]), self.catalogue.product(sale_pid)
                if (
                    pinned_p
                    and sale_p
                    and not _names_concept(pinned_p, reading)
                    and not _variants_say_concept(pinned_p, reading)  # "辣不辣" of the jerky's 香辣 flavour
                    and _names_concept(sale_p, reading)
                ):
                    products = [sale_pid]
        if not reading.named and not reading.pointed and (by_label := self._spec_label_owner(reading)) is not None:
            products = [by_label]  # "7号铁多少度" with the driver pinned: the irons' "7号铁角度"
        if models := _models_asked(reading.text):
            # "sjk有mate60pro的吗" with the iPhone case on screen: the one case made for it
            holders = [
                q.id for q in self.catalogue.products if any(_option_is(o, m) for o in _options(q) for m in models)
            ]
            first_has = bool(products) and products[0] in holders
            if len(holders) == 1 and not first_has and (not reading.named or holders[0] in reading.named):
                products = holders
        for pattern, settled in ((_COMES_WITH, self._comes_with), (_CHOICE, self._choice)):
            first = settled(reading, products[:1])
            if first is None:
                continue
            # "is the pinned one goose or duck? what fill power?", "48头的多少钱 带礼盒吗": that, then
            # the rest asked
            rest = pattern.sub(" ", reading.text, count=1)
            more = self.understanding.read(rest)
            extra: tuple[Fact, ...] = ()
            if more.intents or more.concepts or more.residue.strip():
                answered = self._answer(rest, more, lang, state, now_ms)
                extra = answered.facts if answered.outcome == "answer" else ()
            both = [first, *(f for f in extra if f != first)]
            return Answer(question, lang, "answer", tuple(both), render(lang, both))
        on_sale = bool({"sale", "time_left", "limit"} & set(reading.intents)) or reading.sale
        shop_only = (
            bool(shop_facts)
            and not reading.named
            and not reading.pointed
            and not on_sale
            and not (set(reading.intents) - SHOP_INTENTS - {"recommend"})  # "多少钱 包邮不": the price too
            and not any(self._own_policy(pid, reading) for pid in products[:1])
            # ("裙摆多大" asks the hem spec of the skirt on screen, not the shop's sizing terms)
            and not any(_names_a_spec(p, reading) for pid in products[:1] if (p := self.catalogue.product(pid)))
        )
        if not shop_only:
            for pid in products[:3]:
                product = self.catalogue.product(pid)
                assert product is not None
                got, no = self._product_facts(product, reading, state, now_ms, lang)
                facts += got
                declined += no
        if not facts and not reading.named and not reading.pointed and not shop_facts and not held:
            # "滤网多久换一次" while the wok is pinned: the one other product whose listing
            # holds what is asked.
            other = self._elsewhere(reading, products)
            if other is not None:
                facts, declined = self._product_facts(other, reading, state, now_ms, lang)
        if not facts and shop_facts:
            facts, declined = shop_facts, []  # the product lists nothing of it; the shop's terms say
        elif facts and not shop_only:
            # The shop's own FAQ named by the question's words ("秒杀价能再用优惠券吗": coupons and
            # sale prices) is part of the answer beside the product's facts.
            facts += [f for f in shop_facts if f.kind.startswith("faq:") and self._shop_faq_words(f.kind, reading)]
            if (
                not reading.named
                and not reading.pointed
                and {"fee", "ships_from"} & set(reading.intents)
                and any(self._own_policy(pid, reading) for pid in products[:1])
                # ("鱼缸发什么快递" names what the product on screen is: its terms alone)
                and not (products and products[0] in self.understanding.head_owners(reading, None))
            ):
                # "包邮吗", "从哪发货" with a product of its own terms on screen: its terms, then the
                # shop's (a free-shipping threshold is the basket's). A carrier or a region asked
                # is this order's: the product's alone.
                facts += [
                    Fact(f.kind, None, f"其他商品：{f.zh}", f"Other items: {f.en}", f.sources)
                    for f in shop_facts
                    if not f.kind.startswith("faq:")
                ]
        elif not facts and not declined and "sale" in reading.intents and sale is None:
            facts.append(Fact("no_sale", None, "现在没有秒杀活动", "there is no flash sale right now", ()))
        if not facts and not declined and products and not shop_facts:
            # Nothing structured answers: the passage of the product's listing that holds most of
            # what is asked (only the product asked about: "保质期多久" of another is a wrong answer)
            found = _passage(self.catalogue.product(products[0]), self.understanding.own_words(reading, products[0]))
            facts = [found[0]] if found is not None else []
        if not facts:
            why = declined[0] if declined else ("unknown" if products else "no_product")
            return self._decline(question, lang, why, reading)
        carriers = [c for c in _CARRIERS if L.cue_matches(c, reading.text)]
        said = L.normalize(" ".join(f"{f.zh} {f.en}" for f in facts))
        if carriers and not any(L.cue_matches(c, said) for c in carriers):
            declined.append("unknown")  # "能指定顺丰吗" of a shop that sends ZTO: not listed
        if (days := _DAYS.findall(reading.text)) and not any(d in said for d in days):
            declined.append("unknown")  # "周末发货吗": dispatch hours say nothing of weekends
        text = render(lang, facts)
        if declined:
            body, _, refs = text.partition(" [product:")
            # No numerals in the note ("这一点" would read as the number 1 to grounding).
            note = (
                "（其余的商品信息里没有列出，请咨询客服）"
                if lang == "zh"
                else " (The rest is not listed — please ask customer service.)"
            )
            text_out = body + note + (" [product:" + refs if refs else "")
        else:
            text_out = text
        sources = tuple(source for fact in facts for source in fact.sources)
        if ungrounded(text_out, sources):
            return self._decline(question, lang, "unknown", reading)
        return Answer(question, lang, "answer", tuple(facts), text_out)

    def _choice(self, r: Reading, products: list[str]) -> Fact | None:
        """ "是机械的还是石英的", "cotton or polyester?": the one of the two the product's listing
        says (its names, kind, description, specs, materials); None when it says both or neither."""
        match = _CHOICE.search(r.text)
        p = self.catalogue.product(products[0]) if products else None
        if match is None or p is None:
            return None
        options = [o for o in (match.group("a") or match.group("c"), match.group("b") or match.group("d")) if o]
        options = [L.normalize(o).strip() for o in options]
        spec_text = [t for sp in p.specs for t in (sp.name.zh, sp.name.en, sp.value.zh, sp.value.en)]
        materials = [t for m in p.materials for t in (m.zh, m.en)]
        said = _listing_words(p) + " " + L.normalize(" ".join([*spec_text, *materials]))
        found = [o for o in options if len(o) >= 2 and _affirmed(o, said)]
        if len(options) != 2 or len(found) != 1:
            return None
        one = found[0]
        return Fact("choice", p.id, f"{p.name.zh} 是{one}的", f"{p.name.en} is {one}", (p.name.zh, p.name.en))

    def _comes_with(self, r: Reading, products: list[str]) -> Fact | None:
        """ "does the drill come with a charger?", "带充电器吗": the shortest part of the listing that
        names the thing asked for (what is in the box, the free gift, a version); None when no part
        names it (then the usual reading answers, or declines)."""
        match = _COMES_WITH.search(r.text)
        p = self.catalogue.product(products[0]) if products else None
        if match is None or p is None:
            return None
        thing = (match.group("en") or match.group("zh") or "").strip()
        if len(thing) < 2 or re.search(r"[什么啥几多哪货]|\b(what|which|how)\b", thing):
            return None
        fields = _listing_fields(p, names=False)
        fields += [(Text(zh="可选", en="options"), v.name) for v in p.variants]
        if L.CJK.search(thing):
            found = [(label, value) for label, value in fields if thing in L.normalize(value.zh)]
        else:
            words = [L.singular(w) for w in thing.split() if w not in L.STOP_EN]
            found = [
                (label, value)
                for label, value in fields
                if words
                and all(w in {L.singular(x) for x in re.findall(r"[a-z0-9-]+", L.normalize(value.en))} for w in words)
            ]
        if not found:
            return None
        refused = [f for f in found if _NOT_INCLUDED.search(L.normalize(f"{f[1].zh} {f[1].en}"))]
        if refused:
            # "电池需另购", "installation not included": any part saying no is the answer, with no "yes"
            return _field_fact(p, *min(refused, key=lambda f: len(f[1].zh)))
        # (the part called by the thing's name first: "installation: …" over a description mentioning it)
        label, value = min(found, key=lambda f: (thing not in L.normalize(f"{f[0].zh} {f[0].en}"), len(f[1].zh)))
        fact = _field_fact(p, label, value)
        return replace(fact, zh=f"有。{fact.zh}", en=f"Yes. {fact.en}")

    def _spec_label_owner(self, r: Reading) -> str | None:
        """The one product with a spec whose label starts with three or more characters the
        question says ("7号铁" of "7号铁角度")."""
        text = L.normalize(r.text)
        owners = {
            p.id
            for p in self.catalogue.products
            for spec in p.specs
            if len(label := L.normalize(spec.name.zh)) > 3
            and any(label[:k] in text for k in range(3, len(label)))
            and re.search(r"\d|[a-z]", label[:3])  # (a numbered part: "7号铁", "A面")
        }
        return next(iter(owners)) if len(owners) == 1 else None

    def _unknown_thing(self, r: Reading) -> bool:
        """Where to buy a thing no listing names ("主播身上的围裙哪里买"); a price or a pick of
        something unnamed is asked of what is on screen instead."""
        if r.named or r.pointed or r.variants or set(r.intents) != {"link"}:
            return False
        # ("大包小包价格": the big and small packs of what is on screen)
        words = [w for w in content_words(r.residue) if L.CJK.search(w) and w not in _ON_THE_HOST | _SIZE_WORDS]
        return bool(words) and not any(w in self._all_listings for w in words)

    def _faq_hit(self, entry: Faq, r: Reading) -> bool:
        """The FAQ's keywords or question are in the text, or the FAQ's question asks the same
        kind of thing ("要自己装吗" and "需要自己安装吗" both ask about setting it up)."""
        if _faq_words_hit(entry, r):
            return True
        if not r.concepts:
            return False
        asked = self._faq_concepts.get(id(entry))
        if asked is None:
            read = [self.understanding.read(q) for q in (entry.question.zh, entry.question.en) if q]
            asked = self._faq_concepts[id(entry)] = frozenset(c for x in read for c in x.concepts)
        # "鞋跟多高" asks a measure, not the shop's "can you alter the size" (both of dimensions)
        return bool(asked & (set(r.concepts) - (_MEASURE_KINDS if r.measure else set())))

    def _shop_faq_words(self, kind: str, r: Reading) -> bool:
        entry = next((e for e in self.catalogue.faq if f"faq:{e.id}" == kind), None)
        return entry is not None and _faq_words_hit(entry, r)

    def _own_policy(self, pid: str, r: Reading) -> bool:
        """The product on screen has its own shipping or returns terms for what is asked: "能退吗"
        in a live room asks about the product on screen, not the shop's default."""
        p = self.catalogue.product(pid)
        if p is None:
            return False
        intents = set(r.intents)
        if p.shipping is not None and p.shipping.fee == 0 and r.says("满"):
            return False  # "满多少包邮": the shop's threshold; a product that ships free has none
        if _THE_SHOP.search(r.text):
            return False  # "what's your return policy", "你们家怎么退": the shop's terms
        return (p.returns is not None and "returns" in intents) or (
            p.shipping is not None and bool(r.regions or intents & SHIPPING_INTENTS)
        )

    def _recommend(self, question: str, r: Reading, state: LiveState, now_ms: int) -> Answer:
        """Up to three products that fit a budget, an age / weight / height and what else the
        question names; with nothing named beyond the budget, the cheapest that fit."""
        lang = _lang(r)
        limit = L.budget(r.text)
        residue = " ".join(w for w in L.without_budget(r.residue).split() if not re.match(r"[\d.]+", w))
        asked = [(kind, value) for kind, value in r.quantities if kind in ("age", "weight", "height")]
        scored: list[tuple[float, Decimal, Product, Fact]] = []
        for p in self.catalogue.products:
            priced = self._priced_within(p, limit, state, now_ms, r.variants.get(p.id))
            if priced is None:
                continue
            price_fact, amount = priced
            if asked and not _fits(p, asked):
                continue
            score = 0.0
            if residue:
                score += len(_find_in_product(p, residue))
            # What it is for: a need the viewer names ("车上打扫卫生", "smells nice") met by words
            # of the whole listing, and the question's own words found there.
            kind = L.normalize(" ".join([p.name.zh, p.name.en, p.category.zh, p.category.en, *p.aliases]))
            whole = kind + " " + self.understanding.listing_text(p.id)
            # What it is beats what its listing mentions ("有什么喝的": drinks, not a snack that 泡水)
            score += sum(3 if L.any_cue(m, kind) else 1 for m in L.needs(r.text) if L.any_cue(m, whole))
            score += sum(0.5 for w in content_words(residue) if w in whole or L.stem(w) in whole)
            # What it is for, in the listing's own audiences ("求婚" of a balloon set "for proposals")
            uses = L.normalize(" ".join(f"{a.who.zh} {a.who.en}" for a in p.suitable_for))
            score += sum(1 for w in content_words(r.text) if w in uses)
            score += 1 if p.id in r.named else 0
            # The head of a word the reader typed, however mistyped ("机戒表" is some 表): the head
            # of what the product is
            heads = {L.normalize(n)[-1:] for n in (p.category.zh, p.name.zh)} - set(L.GENERIC_HEADS)
            score += 1 if any(w[-1] in heads for w in re.findall(r"[\u4e00-\u9fff]{2,}", residue)) else 0
            listing = _listing_words(p)
            for fits, others in L.recipients(r.text):
                if any(L.cue_matches(w, listing) for w in others):
                    score -= 3  # "送男朋友" is not answered by a women's watch
                elif any(L.cue_matches(w, listing) for w in fits):
                    score += 2
            if asked and any(a.limit is not None for a in p.suitable_for):
                score += 1
            scored.append((score, amount, p, price_fact))
        wanted = [item for item in scored if item[0] > 0] or (scored if (limit is not None or asked) else [])
        if re.search(r"最便宜|最实惠|cheapest", r.text):
            wanted = sorted(scored, key=lambda item: item[1])[:1]  # "what's the cheapest thing you sell"
        if not wanted:
            # "送男朋友什么好": the catalogue does not say who likes what; ask for what it can use.
            zh = "可以说说预算或用途（比如给谁、多大年龄），我帮你从直播间的商品里挑～"
            en = "Tell me a budget or what it is for (who, what age) and I'll pick from this room's products."
            return Answer(question, lang, "abstain", text=zh if lang == "zh" else en, reason="which")
        if limit is not None and re.search(r"左右|上下|around|about", r.text):
            # "预算800左右": the nearest to the budget first, not the cheapest
            wanted.sort(key=lambda item: (-item[0], abs(float(item[1]) - limit)))
        elif limit is not None and re.search(r"送|礼|gift|present", r.text):
            wanted.sort(key=lambda item: (-item[0], -item[1]))  # a gift within a budget: the most it buys
        else:
            wanted.sort(key=lambda item: (-item[0], item[1]))
        facts = [item[3] for item in wanted[:3]]
        head = Fact("recommend", None, "可以看看", "You could look at", ())
        text = render(lang, [head, *facts])
        text = text.replace("可以看看；", "可以看看：", 1).replace("You could look at; ", "You could look at: ", 1)
        return Answer(question, lang, "answer", (head, *facts), text)

    def _priced_within(
        self, p: Product, limit: float | None, state: LiveState, now_ms: int, variant_id: str | None = None
    ) -> tuple[Fact, Decimal] | None:
        """The product's price, or within a budget the dearest version that fits ("budget 40"
        of a 49.90 kit whose 30×40 cm version is 39.90); None when nothing fits."""
        variant = next((v for v in p.variants if v.id == variant_id), None)
        amount = variant.price if variant is not None and variant.price is not None else None
        if amount is None:
            amount = _amount(self._live_amount(p, state, now_ms))
        if limit is None or amount <= Decimal(str(limit)):
            return self._price_fact(p, state, now_ms, variant_id), amount
        fitting = [v for v in p.variants if v.price is not None and v.price <= Decimal(str(limit))]
        if not fitting:
            return None
        best = max(fitting, key=lambda v: v.price or 0)
        return _variant_price_fact(p, best, self.catalogue.currency), best.price or amount

    def _live_amount(self, p: Product, state: LiveState, now_ms: int) -> Price | Decimal:
        sale = state.sale_of(p.id, now_ms)
        if sale is not None and sale.price is not None and sale.running(now_ms):
            return sale.price
        live = state.product(p.id)
        if live is not None and live.price is not None:
            return live.price
        return p.price

    def _elsewhere(self, r: Reading, tried: list[str]) -> Product | None:
        hits, by_audience = [], []
        for p in self.catalogue.products:
            if p.id in tried:
                continue
            # Only words of the question that are no general kind of spec ("滤网" is a part of
            # the purifier; "保质期" is asked of whatever is on screen, and another product's
            # shelf life would be a wrong-product answer).
            specific = [spec for spec in p.specs if _spec_named(spec, r, specific=True)]
            faq = [entry for entry in p.faq if _faq_words_hit(entry, r)]  # "戴着大了能改圈吗": the ring's
            if specific or faq or (r.residue and _find_in_product(p, r.residue, names=False)) or _fields_of_term(p, r):
                hits.append(p)
            elif not _EXISTS.search(r.text) and _audience_named(p, r) is not None:
                by_audience.append(p)  # ("孕妇能染吗" while a hair dryer is pinned: the dye, not for pregnant women)
        hits = hits or by_audience
        return hits[0] if len(hits) == 1 else None

    def _by_measure(self, r: Reading, products: list[str], sale_pid: str | None = None) -> list[str]:
        """ "身高70穿哪个码" while diapers (sized by weight) are pinned: the one product whose
        size chart is by that measure."""
        kinds = {kind for kind, _ in r.quantities}
        if not kinds or not ({"sizes"} & set(r.intents)):
            return products

        def charted(p: Product | None) -> bool:
            chart = p.size_chart if p is not None else None
            return chart is not None and any(column_kind(c) in kinds for c in chart.columns)

        def covers(p: Product | None) -> bool:
            chart = p.size_chart if p is not None else None
            columns = {column_kind(c) for c in chart.columns} if chart is not None else set()
            return all(chart_covers(p, kind, value) for kind, value in r.quantities if kind in columns)

        # First a chart that holds the measure given ("娃脚长18cm拍几码" with adult shoes on screen:
        # the kids' shoe), then any chart by that measure: on screen, the sale's, the only one.
        for fits in (lambda p: charted(p) and covers(p), charted):
            if products and fits(self.catalogue.product(products[0])):
                return products
            if sale_pid is not None and fits(self.catalogue.product(sale_pid)):
                return [sale_pid]  # the other product on screen: the flash sale's
            only = [p.id for p in self.catalogue.products if fits(p)]
            if len(only) == 1:
                return only
        return products

    def _decline(self, question: str, lang: Lang, why: str, reading: Reading) -> Answer:
        zh, en = DECLINE.get(why, DECLINE["unknown"])
        text = "" if self.unknown == "silent" else (zh if lang == "zh" else en)
        return Answer(question, lang, "abstain", text=text, reason=why)

    # ------------------------------------------------------------------ shop-wide

    def _shop_level(self, reading: Reading, lang: Lang) -> list[Fact]:
        facts: list[Fact] = []
        for entry in self.catalogue.faq:
            if self._faq_hit(entry, reading):
                facts.append(
                    Fact(f"faq:{entry.id}", None, entry.answer.zh, entry.answer.en, (entry.answer.zh, entry.answer.en))
                )
        if SHIPPING_INTENTS & set(reading.intents) or (reading.regions and _only_a_place(reading)):
            facts += _shipping_facts(None, None, self.catalogue.shipping, reading, self.catalogue.currency)
        if "returns" in reading.intents:
            r = self.catalogue.returns
            facts.append(_returns_fact(None, None, r.days, r.note))
        return facts

    # ------------------------------------------------------------------ one product

    def _product_facts(
        self, p: Product, r: Reading, state: LiveState, now_ms: int, lang: Lang
    ) -> tuple[list[Fact], list[str]]:
        facts: list[Fact] = []
        declined: list[str] = []
        name_zh, name_en = p.name.zh, p.name.en
        intents = set(r.intents)
        if "time_left" in intents:
            intents.discard("delivery_time")  # "how long is the sale on": not shipping time
        currency = self.catalogue.currency
        sale = state.sale_of(p.id, now_ms)
        if not intents and not r.concepts and not r.colours and not r.sizes and _DESCRIBE.search(r.text):
            # "4号链接是啥", "what's link 4", "介绍一下": what it is, at its price
            facts.append(self._price_fact(p, state, now_ms))
            if p.description is not None:
                facts.append(_field_fact(p, Text(zh="介绍", en="about"), p.description))
            return facts, declined
        # The product's own FAQ ("口红能刻字吗": engraving), before the general fields.
        for entry in p.faq:
            if self._faq_hit(entry, r):
                zh, en = f"{name_zh}：{entry.answer.zh}", f"{name_en}: {entry.answer.en}"
                facts.append(listing_fact(f"faq:{entry.id}", p, zh, en, []))
        # Colours and sizes named: listed or not.
        if r.colours:
            listed = [c for c in p.colours if any(_same_colour(asked, c) for asked in r.colours)]
            named_in = [
                a
                for a in r.colours
                if L.COLOUR_ZH_OF.get(a, a.removesuffix("色")) in name_zh or _en_in(a, name_en.lower())
                if re.search(rf"\b(?:is|are)\b.*\b{re.escape(a)}\b\s*(?:inside|\?|$)|是{re.escape(a)}", r.text)
            ]
            if listed and p.colours and _OTHER_COLOURS.search(r.text):
                facts.append(colours_fact(p, name_zh, name_en))  # "come in black? any other colour?": all of them
            elif listed:
                facts.append(listing_fact("colours", p, f"{name_zh}有{'、'.join(c.zh for c in listed)}",
                                   f"{name_en} comes in {', '.join(c.en for c in listed)}", []))  # fmt: skip
            elif named_in and not p.colours:
                # "is the kiwi red inside?" of the "Red-heart kiwi": its name says so
                facts.append(listing_fact("colours", p, f"是的，{name_zh}", f"yes: {name_en}", []))
            else:
                declined.append("unknown")
        if r.unknown_sizes and not r.sizes:
            declined.append("unknown")
        models = _models_asked(r.text)
        if models and (options := _options(p)):
            found = [o for o in options if any(_option_is(o, m) for m in models)]
            if found:
                # "有16 pro max的吗" of "iPhone 16 Pro Max": the option, as the listing names it
                facts.append(listing_fact("sizes", p, f"{name_zh}有{'、'.join(found)}",
                                          f"{name_en} comes for {', '.join(found)}", found))  # fmt: skip
            elif _ASKS_FOR_ONE.search(r.text):
                declined.append("unknown")  # a model none of its options is
        # A size named that this product does not come in ("猫窝有XL吗" of S / M / L) is not
        # listed: say so, not the chart of the others.
        chart_rows = p.size_chart.rows if p.size_chart else {}
        own_sizes = {s.casefold() for s in p.sizes} | {s.casefold() for s in chart_rows}
        # A bare number is a size only where sizes are numbers ("肩宽40" is not shoe size 40).
        comparable = [s for s in r.sizes if not s.isdigit() or any(o.isdigit() for o in own_sizes)]
        other_size = bool(comparable) and bool(own_sizes) and not any(s in own_sizes for s in comparable)
        other_size = other_size or (bool(r.unknown_sizes) and not r.sizes)  # "有32码吗": none lists it
        if other_size and p.size_chart is not None and r.quantities:
            # "我45码的脚 袜子能穿吗" of socks for shoe sizes 39-44: the chart by that measure says
            columns = {column_kind(c) for c in p.size_chart.columns}
            other_size = not any(kind in columns for kind, _ in r.quantities)
        if other_size:
            declined.append("unknown")
        if (kind := _SIZE_KIND.search(r.text)) is not None and not _has_size_kind(p, kind, self.understanding):
            declined.append("unknown")  # "防晒衣有儿童码吗" of adult sizes, "有半码吗" of whole ones
        variant_id = r.variants.get(p.id)
        size_word = re.search(r"(?<!最)[大中小]号", r.text)  # ("最大号": the biggest of them)
        if (
            variant_id is None
            and size_word
            and p.variants
            and not any(size_word.group(0) in v.name.zh for v in p.variants)
        ):
            declined.append("unknown")  # "收纳箱有小号吗" of a medium and a large one
        elif variant_id is None and r.bigger is not None and p.variants:
            priced = sorted(p.variants, key=lambda v: v.price if v.price is not None else p.price)
            variant_id = (priced[-1] if r.bigger else priced[0]).id
        elif variant_id is None:
            variant_id = _extreme_variant(p, r.text)
        variant = next((v for v in p.variants if v.id == variant_id), None)
        if "variants" in intents and re.search(r"还是|\bor\b", r.text):
            variant = None  # "是一只的价格还是一对的": both, side by side
        bare = re.search(r"有\s*(\d+(?:\.\d+)?)\s*的?(吗|没|不|么)", r.text)  # "这锅有28的吗" of 30 / 32 / 34 cm
        if bare is None and _ASKS_FOR_EN.search(r.text):
            bare = re.search(r"[+-]?(\d+(?:\.\d+)?)", r.text)  # "do you have +4.00 readers"
        numbered = (
            bare is not None
            and all(re.search(r"\d", v.name.zh) for v in p.variants)
            and not any(same_number(bare.group(1), f"{v.name.zh} {v.name.en}") for v in p.variants)
        )
        if (
            p.variants
            and variant is None
            and (r.packs or amount_of_variants(p, r.text) or numbered or count_not_listed(p, r.text))
        ):
            declined.append("unknown")  # "狗粮有1公斤装吗" of the 2 kg and 7.5 kg bags
        # Price.
        after_sale = sale is not None and bool(_AFTER_SALE.search(r.text))
        if after_sale:
            # "秒杀结束以后多少钱": the price it goes back to, not the sale's
            live = state.product(p.id)
            s = money(live.price) if live is not None and live.price is not None else money_text(p.price, currency)
            zh, en = f"{name_zh} 秒杀结束后 {s}", f"{name_en} is {s} after the flash sale"
            facts.append(listing_fact("price", p, zh, en, [s]))
        elif "list_price" in intents:
            lp = variant.list_price if variant is not None and variant.list_price is not None else p.list_price
            if lp is not None:
                s = money_text(lp, currency)
                facts.append(listing_fact("list_price", p, f"{name_zh} 原价 {s}", f"{name_en} list price {s}", [s]))
            else:
                declined.append("unknown")
            if _LIVE_PRICE.search(r.text):
                facts.append(self._price_fact(p, state, now_ms))  # "list price vs live price"
        elif "price" in intents or (
            # "香水50ml多少": the variant's price; "大号能装多少升": what it holds, not its price
            variant is not None
            and not (intents - {"sale"})
            and not chart_cells(p, r.text, named_column=True)  # ("8寸的直径多少厘米": the chart's cell)
            and not (set(r.concepts) - set(variant_kinds(p)) - ({"weight", "volume"} if r.packs else set()))
        ):
            priced_apart = len({v.price or p.price for v in p.variants}) > 1
            if variant is not None and priced_apart and _AGAINST_ANOTHER.search(r.text):
                # "多少钱 熊猫盘贵多少", "一对多少 单买男款呢", "两条有优惠吗": this one against the others
                facts.append(variants_fact(p, currency))
            elif variant is not None:
                facts.append(self._price_fact(p, state, now_ms, variant.id))
            elif priced_apart and self._live_amount(p, state, now_ms) == p.price:
                # "补光灯多少钱" of a 10-inch at 89 and an 18-inch at 199: each one's price
                facts.append(variants_fact(p, currency))
            else:
                facts.append(self._price_fact(p, state, now_ms))
        # The flash sale.
        if sale is not None and not after_sale and ({"sale", "time_left", "limit"} & intents or r.sale):
            facts.append(self._sale_fact(p, state, now_ms, with_time="time_left" in intents or "sale" in intents))
            sale_note = p.flash_sale_note
            said = L.normalize(sale_note.zh + " " + sale_note.en) if sale_note is not None else ""
            if sale_note is not None and (
                variant is not None
                or "variants" in intents
                or any(w in said for w in content_words(r.residue))  # "秒杀价能再用优惠券吗"
            ):
                # "秒杀能拍增强版吗": which version the sale is for
                facts.append(
                    listing_fact("sale_note", p, f"{name_zh}：{sale_note.zh}", f"{name_en}: {sale_note.en}", [])
                )
        elif "limit" in intents:
            note = p.flash_sale_note
            if note is not None:
                facts.append(listing_fact("limit", p, f"{name_zh}：{note.zh}", f"{name_en}: {note.en}", []))
            else:
                declined.append("unknown")
        elif "time_left" in intents:
            declined.append("unknown")
        if "stock" in intents and not ("sale" in intents and sale is not None and "time_left" in intents):
            live = state.product(p.id)
            stock = sale.stock if sale is not None else (live.stock if live is not None else None)
            if stock is None:
                declined.append("unknown")
            elif stock <= 0:
                facts.append(listing_fact("stock", p, f"{name_zh} 已售罄", f"{name_en} is sold out", []))
            else:
                facts.append(
                    listing_fact("stock", p, f"{name_zh}还剩 {stock} 件", f"{name_en}: {stock} left", [str(stock)])
                )
        # Shipping, returns, warranty, gift.
        shipping = p.shipping or self.catalogue.shipping
        if SHIPPING_INTENTS & intents or (r.regions and _only_a_place(r)):
            live = state.product(p.id)
            paid = [p.price, *(v.price for v in p.variants if v.price is not None)]
            paid += [_amount(x.price) for x in (live, sale) if x is not None and x.price is not None]
            facts += _shipping_facts(p, p.id, shipping, r, currency, lowest=min(paid))
        if "returns" in intents:
            ret = p.returns or self.catalogue.returns
            facts.append(_returns_fact(p, p.id, ret.days, ret.note))
        if "warranty" in intents:
            if p.warranty is not None:
                w = p.warranty
                zh = f"{name_zh} 保修 {w.months} 个月" + (f"（{w.note.zh}）" if w.note else "")
                en = f"{name_en} has a {w.months}-month warranty" + (f" ({w.note.en})" if w.note else "")
                facts.append(listing_fact("warranty", p, zh, en, [str(w.months)]))
            else:
                declined.append("unknown")
        if "gift" in intents:
            if p.gift_with_purchase is not None:
                g = p.gift_with_purchase
                facts.append(
                    listing_fact("gift", p, f"{name_zh} 赠品：{g.zh}", f"{name_en} free gift: {g.en}", [g.zh, g.en])
                )
            else:
                declined.append("unknown")
        # Sizes, colours, materials, who it is for.
        if other_size:
            pass
        elif (
            "sizes" in intents
            or r.sizes
            or ("count" in intents and p.size_chart is not None)
            or (p.size_chart is not None and _measure_for_size(r))
        ):
            fact = size_fact(p, r)
            if fact is not None:
                facts.append(fact)
            elif not r.colours and not ("dimensions" in r.concepts and _specs_for(p, r)):
                declined.append("unknown")  # ("丝巾size多大" is answered by its dimensions)
        if "colours" in intents and (not r.colours or _ALL_COLOURS.search(r.text)):  # ("几个颜色 有粉的不": both)
            if p.colours:
                facts.append(colours_fact(p, name_zh, name_en))
            elif (spec := _spec_of_intent(p, "colours")) is not None:
                facts.append(_spec_fact(p, spec))  # no list of colours, a spec about them ("配色：不可选")
            else:
                declined.append("unknown")
        if "materials" not in intents and p.materials and not facts and self.understanding.substance_asked(r, p.id):
            intents.add("materials")
        if "materials" in intents and p.materials:
            facts.append(materials_fact(p))
        audience = "suitable" in intents or any(kind in ("age", "weight", "height") for kind, _ in r.quantities)
        measured = any(kind in ("age", "weight", "height") for kind, _ in r.quantities)  # (the limits below)
        named_audience = _audience_named(p, r) if (audience or not facts) and not (r.sizes or measured) else None
        if named_audience is not None:
            facts.append(named_audience)  # "超市小票能过塑吗" of a laminator not for thermal receipts
        elif audience and not (r.sizes or "sizes" in intents):
            fact = _audience_fact(p, r)
            if fact is not None and _someone_unlisted(p, r):
                # "孕妇可以用吗" of a cream listed for dry and sensitive skin: who may use it is
                # not an exhaustive list, so a group it does not name is "not listed", not the
                # groups it does name.
                declined.append("unknown")
            elif fact is not None:
                facts.append(fact)
            elif not (p.suitable_for or p.not_for or r.concepts) and (field := _who_in_listing(p, r)) is not None:
                facts.append(_field_fact(p, *field))  # (a kind asked — "冬天零下" — is no group)
        # A column of the size chart that is what is asked ("how heavy is the school bag"),
        # else specs by kind, then anything else the question names that the product lists.
        chart = chart_cells(p, r.text) if p.size_chart is not None and not facts else []  # "1.5号线拉力多少斤"
        if not chart and p.size_chart is not None and r.concepts and not facts and not _names_a_spec(p, r):
            chart = chart_columns(p, r)  # ("鞋跟多高": the heel spec the question names, not the chart)
        facts += chart
        for spec in [] if chart else _specs_for(p, r, weak=not facts):
            if not any(f.kind == f"spec:{spec.key}" for f in facts):
                facts.append(_spec_fact(p, spec))
        units = [u for u in L.units_asked(r.text) if u[0] not in ("个月", "天")]
        if units and facts and all(f.kind.startswith("spec:") for f in facts):
            said = L.normalize(" ".join(f.zh + " " + f.en for f in facts))
            if not any(L.says_amount_in(said, u) for u in units):
                declined.append("unknown")  # "电池能用几年" of a battery listed by capacity and run time
        names = [f"{v.name.zh} {v.name.en}" for v in p.variants]
        counted_in = [u for u in L.units_asked(r.text) if any(x in n for n in names for x in u)]
        flavoured = "taste" in r.concepts and all(re.search(r"味|flavou?r", n) for n in names)
        every = "variants" in intents and p.id in r.named and bool(_EVERY_VERSION.search(r.text))
        if (
            p.variants
            and (variant is None or every)  # ("有几种长度 34寸是多少厘米": all of them, that one among them)
            and ("variants" in intents or flavoured or (not facts and (variants_measure(p, r) or counted_in)))
        ):  # ("蒸锅有几层的" of two- and three-tier steamers; "气泡水有什么味道" of its flavours)
            facts.append(variants_fact(p, currency))  # "恐龙公仔有多大的" of the 30 / 50 / 80 cm ones
        if "variants" in intents and not p.variants and (p.sizes or p.size_chart) and not facts:
            fact = size_fact(p, r)  # "手镯圈口有哪几个": the sizes it comes in
            if fact is not None:
                facts.append(fact)
        elif "variants" in intents and not p.variants and p.colours and not facts and "colours" not in intents:
            facts.append(colours_fact(p, name_zh, name_en))  # "what shades does the lipstick come in"
        elif "variants" in intents and not p.variants and p.materials and not facts:
            # "菜籽有哪几种" of a seed kit: what is in it
            facts.append(listing_fact("materials", p, f"{name_zh} 包含：{'、'.join(m.zh for m in p.materials)}",
                               f"{name_en} includes: {', '.join(m.en for m in p.materials)}", []))  # fmt: skip
        if "link" in intents:
            links = [a for a in p.aliases if re.search(r"\d+\s*号链接|link \d+", a, re.IGNORECASE)]
            if links:
                facts.append(listing_fact("link", p, f"{name_zh} 是 {links[0]}", f"{name_en} is {links[-1]}", []))
        if "count" in intents and not facts:
            facts += _count_facts(p, r, currency)
        if not facts and r.concepts and p.materials and _materials_answer(p, r):
            facts.append(materials_fact(p))
        if not facts and r.concepts:
            # "步摇戴久了会掉色吗": whichever part of the listing speaks of that kind of thing
            # (its description, a warranty, returns or shipping note, an FAQ answer); a way of
            # asking ("where .* from") is looked for in the description only
            cues = [cue for c in r.concepts for cue in L.CONCEPTS[c]]
            stated = [cue for cue in cues if not _ASKING_CUE.search(cue)]
            for label, stated_text in _listing_fields(p, names=False):
                text = L.normalize(stated_text.zh + " " + stated_text.en)
                if any(L.cue_matches(cue, text) for cue in (cues if stated_text is p.description else stated)):
                    facts.append(_field_fact(p, label, stated_text))
                    if len(facts) == 2:
                        break
        elif facts and r.concepts:
            # "摩卡壶什么材质的 能进洗碗机吗": a kind of thing asked beside what is answered, from
            # the field that speaks of it ("不适合：洗碗机清洗")
            said = L.normalize(" ".join(f"{f.zh} {f.en}" for f in facts))
            for concept in r.concepts:
                cues = [cue for cue in L.CONCEPTS[concept] if not _ASKING_CUE.search(cue)]
                if any(L.cue_matches(cue, said) for cue in cues):
                    continue
                for label, stated_text in _listing_fields(p, names=False):
                    if any(L.cue_matches(cue, L.normalize(f"{stated_text.zh} {stated_text.en}")) for cue in cues):
                        facts.append(_field_fact(p, label, stated_text))
                        break
        if not facts:
            facts += [_field_fact(p, label, text) for label, text in _fields_of_term(p, r)[:2]]
        prop = _property_asked(r)
        if prop:
            where = _find_in_product(p, prop)
            if where:
                if not facts:
                    facts += [_field_fact(p, label, value) for label, value in where[:2]]
                if not _all_said(prop, where[0]):
                    declined.append("unknown")  # "有皮表带的吗" of a steel strap: what it is, and "not listed"
            elif not facts:
                return [], ["unknown"]
            elif not (intents or r.concepts or _spec_answers(p, facts, prop)) or _EXISTS.search(r.text):
                # "does it record the back too? what resolution": the rest; "有麻辣味的吗" of a jerky
                # whose flavours are listed without it
                declined.append("unknown")
        else:
            # "皮带多少钱 有礼盒吗": a clause of its own that asks "is there X" beside the
            # rest; answered from the field that holds X, else said to be not listed.
            made_of = L.normalize(" ".join(m.zh for m in p.materials))
            for x in _clause_properties(r):
                if any(f.kind == "materials" for f in facts) and x[-1] in made_of:
                    continue  # "是真丝吗": answered by the materials
                where = _find_in_product(p, x)
                if where and not any(where[0][1].zh in f.zh for f in facts):  # not said already
                    facts.append(_field_fact(p, *where[0]))
                if not where or not _all_said(x, where[0]):
                    declined.append("unknown")  # "有皮表带的吗" of a steel strap: what it is, and "not listed"
        if not facts and not declined:
            # A kind of thing asked that nothing answered ("can it be engraved") is not answered
            # by the product's name holding a word of the question.
            hits = _find_in_product(p, r.residue, names=not r.concepts)
            facts += [_field_fact(p, label, value) for label, value in hits[:2]]
        for fact in _counted_in_unit_asked(p, r, currency):
            if not any(fact.zh in f.zh for f in facts):
                facts.append(fact)  # "几倍的 戴眼镜能看吗": the 6倍 beside the eyepiece
        if facts and _YES_NO.search(r.text) and not _yes_no_said(p, r, facts):
            declined.append("unknown")  # "轮子会不会刮花地板": the wheels are listed, scratching is not
        if "origin" in r.concepts and facts and not any(_ORIGIN_SAID.search(f"{f.zh} {f.en}") for f in facts):
            declined.append("unknown")  # "面罩是哪里生产的 国产还是进口" of a listing naming no origin
        if r.measure and facts and all(f.kind.startswith(("spec:", "field")) for f in facts):
            said = L.normalize(" ".join(f.zh + " " + f.en for f in facts))
            if not amount_in(said, "weight" if r.measure[0] == "重" else "dimensions"):
                declined.append("unknown")  # "180的圣诞树多重" of a tree whose weight is not listed
        if "variants" in intents and _DIFFERENCE.search(r.text):
            # "2000和4000有啥区别": besides their prices, the specs that tell the versions apart
            marks = [set(re.findall(r"\d{2,}", L.normalize(v.name.zh))) for v in p.variants]
            for spec in p.specs:
                value = L.normalize(spec.value.zh)
                if sum(1 for m in marks if m and any(x in value for x in m)) >= 2:
                    facts.append(_spec_fact(p, spec))
        if (
            "recommend" in intents
            and (facts or variant is not None)  # ("身高130 儿童杆选哪个": the version for that height)
            and not any(f.kind in ("price", "variants") for f in facts)
        ):
            # "送老师什么好", "3岁能练字吗 有没有适合的字帖": a product recommended comes with its price
            facts.append(self._price_fact(p, state, now_ms, variant.id if variant is not None else None))
        verdict = _fit_verdict(p, r, facts) or _listed_yes(p, r, facts)
        if verdict is not None:
            facts.insert(0, verdict)  # "机舱包能放15.6寸电脑吗" of one for laptops up to 14 inches: no
        unique = {fact.zh: fact for fact in facts}  # one statement once, however it was reached
        return list(unique.values()), declined

    def _price_fact(self, p: Product, state: LiveState, now_ms: int, variant_id: str | None = None) -> Fact:
        variant = next((v for v in p.variants if v.id == variant_id), None)
        live_now = _amount(self._live_amount(p, state, now_ms)) != p.price
        if variant is not None and variant.price is not None and not (live_now and variant.price == p.price):
            return _variant_price_fact(p, variant, self.catalogue.currency)  # "20个人的派对 餐具买哪个"
        # A variant without a price of its own is at the product's price, live or listed; so is
        # one at the product's listed price when the room gives the product a live one (the
        # pinned card's ¥259 is the 20-inch case's, listed at the product's ¥299).
        zh, en = (
            (f"{p.name.zh}（{variant.name.zh}）", f"{p.name.en} ({variant.name.en})")
            if variant
            else (p.name.zh, p.name.en)
        )
        sale = state.sale_of(p.id, now_ms)
        live = state.product(p.id)
        currency = self.catalogue.currency
        if sale is not None and sale.price is not None and sale.running(now_ms):
            s = money(sale.price)
            return listing_fact("price", p, f"{zh} 秒杀价 {s}", f"{en} flash-sale price {s}", [s])
        if live is not None and live.price is not None:
            s = money(live.price)
            return listing_fact("price", p, f"{zh} 现价 {s}", f"{en} is {s} now", [s])
        s = money_text(p.price, currency)
        return listing_fact("price", p, f"{zh} {s}", f"{en} is {s}", [s])

    def _sale_fact(self, p: Product, state: LiveState, now_ms: int, with_time: bool) -> Fact:
        sale = state.sale_of(p.id, now_ms)
        assert sale is not None
        price = money(sale.price) if sale.price is not None else ""
        zh = f"秒杀：{p.name.zh}" + (f" {price}" if price else "") + f"，还剩 {sale.stock} 件"
        en = f"Flash sale: {p.name.en}" + (f" at {price}" if price else "") + f", {sale.stock} left"
        sources = [price, str(sale.stock)]
        if sale.limit_per_user:
            zh += f"，每人限购 {sale.limit_per_user} 件"
            en += f", limit {sale.limit_per_user} per person"
            sources.append(str(sale.limit_per_user))
        if with_time and sale.end_ms:
            minutes = max(0, math.ceil((sale.end_ms - now_ms) / 60_000))
            end = clock(sale.end_ms, self.tz)
            zh += f"，还剩 {minutes} 分钟（{end} 结束）"
            en += f", {minutes} min left (ends at {end})"
            sources += [str(minutes), end]
        return listing_fact("on_sale", p, zh, en, sources)


# ---------------------------------------------------------------- facts


def _variant_price_fact(p: Product, variant: Variant, currency: str) -> Fact:
    s = money_text(variant.price if variant.price is not None else p.price, currency)
    return listing_fact("price", p, f"{p.name.zh}（{variant.name.zh}）{s}", f"{p.name.en} ({variant.name.en}) {s}", [s])


_MODEL = re.compile(
    r"(?<![a-z0-9])([a-z]*\s?\d+(?:\s?(?:pro|max|plus|mini|ultra|lite|se|fold|flip|[a-z]))*)(?![a-z0-9])"
)
_ASKS_FOR_ONE = re.compile(r"有.{0,20}[吗嘛么没]|有没有|\b(?:for|fit|fits|come in|available)\b")


@lru_cache(maxsize=256)
def _models_asked(text: str) -> tuple[str, ...]:
    """Model-like tokens a question names ("16 pro max", "mate60pro", "pocket2"), compacted;
    letters and digits both, or digits with a model word after them (a bare number is no model).
    (Read by the answer and by each product's facts: once per question.)"""
    tokens = (match.group(1).replace(" ", "") for match in _MODEL.finditer(text))
    return tuple(t for t in tokens if re.search(r"[a-z]", t) and re.search(r"\d", t) and len(t) >= 3)


def _options(p: Product) -> list[str]:
    return list(dict.fromkeys([*p.sizes, *(v.name.en for v in p.variants)]))


def _option_is(option: str, model: str) -> bool:
    """ "iPhone 16 Pro Max" is "16promax", not "16pro"; "HUAWEI Mate 60 Pro" is "mate60pro"."""
    compact = re.sub(r"[^a-z0-9]", "", option.casefold())
    return compact.endswith(model) and not compact[: len(compact) - len(model)][-1:].isdigit()


def _lang(reading: Reading) -> Lang:
    return "zh" if reading.lang == "zh" else "en"


def _amount(price: Price | Decimal) -> Decimal:
    return price if isinstance(price, Decimal) else Decimal(price.amount_minor) / 100


def _fits(p: Product, asked: list[tuple[str, float]]) -> bool:
    """No 'not for' limit excludes the age / weight / height asked, and a 'for' limit of the
    same quantity includes it."""
    for kind, value in asked:
        for audience in p.not_for:
            lim = audience.limit
            if lim is not None and lim.quantity == kind and _inside(lim, kind, value):
                return False
        bounded = [a.limit for a in p.suitable_for if a.limit is not None and a.limit.quantity == kind]
        if bounded and not any(_inside(lim, kind, value) for lim in bounded):
            return False
    return True


def _inside(lim: Limit, kind: str, value: float) -> bool:
    scale = 12.0 if kind == "age" and lim.unit.startswith("year") else 1.0
    low = float(lim.min) * scale if lim.min is not None else -math.inf
    high = float(lim.max) * scale if lim.max is not None else math.inf
    return low <= value < high if lim.max is not None and lim.min is None else low <= value <= high


def _spec_fact(p: Product, spec: Spec) -> Fact:
    return listing_fact(f"spec:{spec.key}", p, f"{p.name.zh} {spec.name.zh}：{spec.value.zh}",
                 f"{p.name.en} {spec.name.en}: {spec.value.en}", [])  # fmt: skip


def _passage(p: Product | None, words: list[str]) -> tuple[Fact, int] | None:
    """The field of the listing holding at least 60 % (and two) of the question's own words, and how
    many ("小方块要换刷头吗": 刷头：无需更换刷头)."""
    if p is None or len(words) < 2:
        return None
    scored = []
    for label, value in _listing_fields(p, names=False):
        zh, en = L.normalize(f"{label.zh} {value.zh}"), L.normalize(f"{label.en} {value.en}")
        en_words = {L.singular(w) for w in re.findall(r"[a-z0-9]+", en)}
        hits = sum(1 for w in words if ((w in zh) if L.CJK.search(w) else (w in en_words or _en_in(w, en))))
        scored.append((hits, len(zh), label, value))
    # (of passages holding as many, the shortest: "刷头：无需更换刷头" over the description saying so too)
    scored.sort(key=lambda item: (-item[0], item[1]))
    if not scored or scored[0][0] < max(2, 0.6 * len(words)):
        return None
    return _field_fact(p, scored[0][2], scored[0][3]), scored[0][0]


def _field_fact(p: Product, label: Text, value: Text) -> Fact:
    return listing_fact(
        f"field:{label.en}", p, f"{p.name.zh} {label.zh}：{value.zh}", f"{p.name.en} {label.en}: {value.en}", []
    )


def _returns_fact(p: Product | None, pid: str | None, days: int, note: Text | None) -> Fact:
    zh = f"支持 {days} 天无理由退货" if days else "不支持无理由退货"
    en = f"{days}-day no-reason returns" if days else "no returns without a reason"
    if note is not None:
        zh, en = f"{zh}；{note.zh}", f"{en}; {note.en}"
    if p is not None:
        zh, en = f"{p.name.zh} {zh}", f"{p.name.en}: {en}"
    return Fact("returns", pid, zh, en, (zh, en))


def _shipping_facts(
    p: Product | None, pid: str | None, s: Shipping, r: Reading, currency: str, lowest: Decimal | None = None
) -> list[Fact]:
    """`lowest`: the lowest price the product is sold at (catalogue, versions, live, sale), by
    which one alone reaches the free-shipping threshold."""
    intents = set(r.intents)
    zh_name = f"{p.name.zh} " if p is not None else ""
    en_name = f"{p.name.en} " if p is not None else ""
    parts_zh: list[str] = []
    parts_en: list[str] = []
    served = [L.normalize(t.zh) + " " + L.normalize(t.en) for t in s.regions]
    excluded = [L.normalize(t.zh) + " " + L.normalize(t.en) for t in s.excluded]
    regions_zh = "、".join(t.zh for t in s.regions)
    regions_en = ", ".join(t.en for t in s.regions)
    for region in r.regions:
        names = L.REGIONS[region]
        label = names[0]
        if any(any(L.cue_matches(n, e) for n in names) for e in excluded):
            # Say "no" plainly: an excluded region is a listed fact, not an unknown.
            parts_zh.append(f"不发{label}（不配送：{'、'.join(t.zh for t in s.excluded)}）")
            parts_en.append(
                f"this doesn't ship to {names[-1].title()} (not delivered to: {', '.join(t.en for t in s.excluded)})"
            )
        elif any(any(L.cue_matches(n, t) for n in names) for t in served) or (
            region in L.MAINLAND and any("大陆" in t or "mainland" in t or "全国" in t for t in served)
        ):
            parts_zh.append(f"可以发{label}")
            parts_en.append(f"yes, we ship to {names[-1].title()}")
        else:
            parts_zh.append(f"抱歉，{label}不在列出的配送范围（只配送{regions_zh}），具体请咨询客服")
            parts_en.append(
                f"sorry, {names[-1].title()} is not listed — we deliver to {regions_en}; please ask customer service"
            )
    low, high = s.delivery_days
    if r.regions:
        note = L.normalize(s.note.zh + " " + s.note.en) if s.note is not None else ""
        if s.note is not None and any(any(L.cue_matches(n, note) for n in L.REGIONS[g]) for g in r.regions):
            parts_zh.append(s.note.zh)  # "常温包邮；新疆、西藏需补邮费10元": the note of a region asked
            parts_en.append(s.note.en)
        if "ships_from" in intents:
            parts_zh.insert(0, f"从{s.ships_from.zh}发货")  # "从哪发货 新疆能到吗": both
            parts_en.insert(0, f"ships from {s.ships_from.en}")
        if "carrier" in intents:
            parts_zh.append(f"发{s.carrier.zh}")
            parts_en.append(f"sent by {s.carrier.en}")
        if "delivery_time" in intents and not any(p.startswith("不发") for p in parts_zh):
            # "我在广州 几天能到": that it goes there, and how long it takes
            parts_zh.append(f"下单后 {_dispatch(s, 'zh')}发货，一般 {low} 到 {high} 天送达")
            parts_en.append(f"dispatched {_dispatch(s, 'en')}, usually arriving in {low} to {high} days")
        sources = [*_dispatch_numbers(s), str(low), str(high), *([s.note.zh, s.note.en] if s.note else [])]
        return [
            listing_fact("shipping:region", p, zh_name + "，".join(parts_zh), en_name + "; ".join(parts_en), sources)
        ]
    facet = False
    if "ships_from" in intents:
        parts_zh.append(f"从{s.ships_from.zh}发货")
        parts_en.append(f"ships from {s.ships_from.en}")
        facet = True
    if "carrier" in intents:
        parts_zh.append(f"发{s.carrier.zh}")
        parts_en.append(f"sent by {s.carrier.en}")
        note = L.normalize(f"{s.note.zh} {s.note.en}") if s.note is not None else ""
        if s.note is not None and any(L.cue_matches(c, r.text) and L.cue_matches(c, note) for c in _CARRIERS):
            parts_zh.append(s.note.zh)  # "能发顺丰吗": "可备注改发顺丰，补差价12元"
            parts_en.append(s.note.en)
        facet = True
    if "delivery_time" in intents:
        parts_zh.append(f"下单后 {_dispatch(s, 'zh')}发货，一般 {low} 到 {high} 天送达")
        parts_en.append(f"dispatched {_dispatch(s, 'en')}, usually arriving in {low} to {high} days")
        facet = True
    if "fee" in intents:
        parts_zh.append(_fee(s, currency, "zh", lowest))
        parts_en.append(_fee(s, currency, "en", lowest))
        facet = True
    if not facet:
        when_zh = f"{_dispatch(s, 'zh')}发货，一般 {low} 到 {high} 天送达"
        when_en = f"{_dispatch(s, 'en')}, usually arriving in {low} to {high} days"
        parts_zh = [f"从{s.ships_from.zh}发{s.carrier.zh}", when_zh, _fee(s, currency, "zh", lowest)]
        parts_en = [f"ships from {s.ships_from.en} by {s.carrier.en}", when_en, _fee(s, currency, "en", lowest)]
    sources = [*_dispatch_numbers(s), str(low), str(high), *([s.note.zh, s.note.en] if s.note else [])]
    return [listing_fact("shipping", p, zh_name + "，".join(parts_zh), en_name + "; ".join(parts_en), sources)]


def _only_a_place(r: Reading) -> bool:
    """A place named with nothing else asked ("新疆呢", "西藏?") asks whether it is delivered
    to; "在北京五环里面飞" or "西藏海拔5000米能起飞吗" asks something else there."""
    rest = r.residue
    for region in r.regions:
        for name in L.REGIONS.get(region, (region,)):
            rest = rest.replace(L.normalize(name), " ")
    return not re.search(r"[\u4e00-\u9fff]{2}|[a-z]{3}", rest)


def _dispatch(s: Shipping, lang: str) -> str:
    """The dispatch time: in hours, and in days too beyond three days ("360 小时内（15 天）")."""
    hours, days = s.dispatch_hours, _dispatch_days(s)
    if lang == "zh":
        return f"{hours} 小时内" + (f"（{days} 天）" if days else "")
    return f"within {hours} hours" + (f" ({days} days)" if days else "")


def _dispatch_numbers(s: Shipping) -> list[str]:
    days = _dispatch_days(s)
    return [str(s.dispatch_hours), *([str(days)] if days else [])]


def _dispatch_days(s: Shipping) -> int | None:
    hours = s.dispatch_hours
    return hours // 24 if hours > 72 and hours % 24 == 0 else None


def _fee(s: Shipping, currency: str, lang: str, lowest: Decimal | None = None) -> str:
    if s.fee == 0:
        return "包邮" if lang == "zh" else "free shipping"
    fee = money_text(s.fee, currency)
    if s.free_over is not None:
        over = money_text(s.free_over, currency)
        if lowest is not None and lowest >= s.free_over:
            # "this one free shipping?" of a ¥259 bag, ¥99 and over shipping free: yes, on its own
            return f"包邮（满 {over} 包邮）" if lang == "zh" else f"free shipping (orders of {over} or more ship free)"
        return f"运费 {fee}，满 {over} 包邮" if lang == "zh" else f"shipping {fee}, free for orders of {over} or more"
    return f"运费 {fee}" if lang == "zh" else f"shipping {fee}"


_YES_NO = re.compile(
    r"会不会|能不能|是不是|有没有|[^什么啥哪几多]{2}吗"
    r"|^(do you (have|sell)|is there|are there|have you got)\b"
)
_AMOUNT = re.compile(r"(\d+(?:\.\d+)?|半)\s*(克拉|克|公斤|千克|斤|毫升|升|厘米|毫米|米|寸|kg|g|ml|cm|mm)(?![a-z])")


def _fit_verdict(p: Product, r: Reading, facts: list[Fact]) -> Fact | None:
    """Yes or no to "does an N-unit thing fit" when a fact gives a bound in that unit ("可放14英寸
    及以下笔记本", "up to 20 kg"): the amount asked against it."""
    if not _ASKS_YES_NO.search(r.text):
        return None
    said = L.normalize(" ".join(f"{f.zh} {f.en}" for f in facts))
    verdicts: list[bool] = []
    for unit in _UNIT_WORDS:
        values = _amounts_in(r.text, unit)
        if not values:
            continue
        words = _unit_pattern(unit)
        highs = [float(b) for b in re.findall(rf"(\d+(?:\.\d+)?)\s*{words}\s*(?:{_AT_MOST})", said)]
        lows = [float(b) for b in re.findall(rf"(\d+(?:\.\d+)?)\s*{words}\s*(?:{_AT_LEAST})", said)]
        verdicts += [v <= high for v in values for high in highs] + [v >= low for v in values for low in lows]
    if not verdicts:
        return None
    ok = all(verdicts)
    return listing_fact(
        "verdict", p, "可以" if ok else "不行，超出了", "Yes" if ok else "No, that is over the limit", []
    )


def _listed_yes(p: Product, r: Reading, facts: list[Fact]) -> Fact | None:
    """ "Yes" to a yes/no question whose every word the listing's facts state, none of them
    negated ("does the steamer work on induction" of "gas, induction and ceramic hobs")."""
    if not facts or _WHICH.search(r.text) or not _ASKS_YES_NO.search(r.text) or _EXISTS.search(r.text):
        return None
    if not all(f.kind.startswith(("spec:", "field", "faq:")) for f in facts):
        return None
    said = L.normalize(" ".join(f"{f.zh} {f.en}" for f in facts))
    # Chinese chunks whole, less the verbs of using ("用冷水冲" of "加150ml冷水…" says 冷水)
    pieces = [piece for c in r.residue.split() for piece in re.findall(r"[\u4e00-\u9fff]+|[a-z]+", c)]
    words = [w for w in content_words(r.residue) if not re.search(r"\d", w) and not L.CJK.search(w)]
    words += [p for p in pieces if not L.CJK.search(p) and len(p) >= 3 and p not in L.STOP_EN and p not in words]
    words += [c for p in pieces if L.CJK.search(p) and len(c := _USE_WORDS.sub("", p)) >= 2]
    if not words:
        return None
    for word in words:
        w = _core_said(word, said)
        at = [m.start() for m in re.finditer(re.escape(w), said)] if w else []
        # (a negation on either side: "不支持电磁炉", "induction hobs not supported")
        if not at or any(_NEGATED.search(said[max(0, i - 12) : i + len(w) + 16]) for i in at):
            return None
    return listing_fact("verdict", p, "可以", "Yes", [])


def _core_said(word: str, said: str) -> str:
    """The word, or for a Chinese word the longest start of it the text says, if that is at
    least half of it and two characters ("冷水冲": 冷水); "" when the text says too little of
    it. Only a start: "全自动" is not said by "自动开、手动收"."""
    if word in said or not L.CJK.search(word):
        return word if word in said else ""
    for n in range(len(word) - 1, 1, -1):
        if n * 2 < len(word):
            break
        # (the rest is one character, a verb of using, or said elsewhere: "镜片蔡司" is not said
        # by 镜片 alone, "苹果手机" is by "苹果和安卓手机")
        tail = word[n:]
        if word[:n] in said and (len(tail) == 1 or all(ch in _USE_CHARS for ch in tail) or tail in said):
            return word[:n]
    return ""


_USE_CHARS = frozenset("用冲洗泡放装穿戴吃喝煮烤蒸炒涂擦晒挂")


_NEGATED = re.compile(r"[不没无非勿禁]|\b(not|no|non|without|never)\b")
_UNIT_WORDS = {
    "inch": ("英寸", "寸", "inches", "inch", '"'),
    "cm": ("厘米", "公分", "cm"),
    "kg": ("公斤", "千克", "kg"),
    "l": ("升", "litres", "l"),
}
"""A limit's or a bound's unit, as amounts are written in it."""
_AT_MOST = "及以下|以下|以内|之内|or smaller|or less|and under"
_AT_LEAST = "及以上|以上|or more|or larger|and up"


@lru_cache(maxsize=8)
def _unit_pattern(unit: str) -> str:
    words = "|".join(re.escape(w) for w in sorted(_UNIT_WORDS[unit], key=len, reverse=True))
    return f"(?:{words})(?![a-z])"


def _amounts_in(text: str, unit: str) -> list[float]:
    """The amounts a text gives in a unit ("32寸", "15.6 inch"; in cm also a bare number before a
    dimension, as viewers give them: "书桌才50深")."""
    after = _unit_pattern(unit) + ("|[深宽高长]" if unit == "cm" else "")
    return [float(v) for v in re.findall(rf"(\d+(?:\.\d+)?)\s*(?:{after})", text)]


_ASKS_YES_NO = re.compile(
    r"吗|能不能|可不可以|放得下|装得下|放不放得下|^(is|are)\b|\bcan\b|\bfits?\b|\bwill\b|\bdoes\b"
)


def _yes_no_said(p: Product, r: Reading, facts: list[Fact]) -> bool:
    """A yes/no question about what the product has or does is answered by what the reply
    states: "有半克的吗" not by 1 g, "轮子会不会刮花木地板" not by what the wheels are made of
    (most of its own words must be there), "洗发水去屑吗" not by who the shampoo is for. Prices
    and terms answer on their own, and audiences do when more than whether it suits is asked."""
    audiences = () if r.quantities else ("suitable",)  # ("我一米八五能骑吗": the height range answers)
    if set(r.intents) - {"suitable"} or not all(
        f.kind.startswith(("spec:", "field", "faq:", "variants", "chart:", *audiences)) for f in facts
    ):
        return True
    said = L.normalize(" ".join(f"{f.zh} {f.en}" for f in facts) + " " + p.name.zh + " " + p.name.en)
    if _EXISTS.search(r.text):
        for number, unit in _AMOUNT.findall(r.text):
            if not re.search(("0?\\.5" if number == "半" else re.escape(number)) + r"\s*" + re.escape(unit), said):
                return False
    if r.concepts and not _ASKS_FOR_EN.search(r.text):
        # "饭盒能保冷吗" is not answered by how long it keeps food hot: a cue of the question
        # (保冷) must be in what is said, when the question is a Chinese yes/no one.
        if "吗" not in r.text:
            return True
        cues = [cue for c in r.concepts for cue in L.CONCEPTS[c] if not cue.startswith("re:") and L.CJK.search(cue)]
        asked = [cue for cue in cues if cue in r.text]
        return not asked or any(cue in said for cue in asked)
    words = [w for w in content_words(r.residue) if not re.search(r"\d", w)]
    return not words or 2 * sum(w in said for w in words) >= len(words)


_SIZE_WORDS = {"大包", "小包", "包小", "大号", "小号", "中号", "大的", "小的"}
_LIVE_PRICE = re.compile(r"现价|到手价|直播价|live price|price now|current price|vs|还是|和现在|现在(多少|几|卖)|now\?")
_DIFFERENCE = re.compile(r"区别|差别|不同|不一样|差在|difference|differ|compare")
_ALL_COLOURS = re.compile(r"(几|多少|哪些|哪几|什么)(个|种)?颜色|what colou?rs|which colou?rs")
_DAYS = re.compile(r"周末|周六|周日|星期[六天日]|节假日|假期|春节|过年|国庆|weekends?|saturday|sunday|holidays?")


def _extreme_variant(p: Product, text: str) -> str | None:
    """ "马面裙最便宜的款多少": the version at the lowest price (or the highest)."""
    asked = _EXTREME_PRICE.search(text)
    if asked is None or not p.variants:
        return None
    priced = sorted(p.variants, key=lambda v: v.price if v.price is not None else p.price)
    return (priced[-1] if asked.group("dear") else priced[0]).id


_EXTREME_PRICE = re.compile(r"最便宜|最实惠|最低价|\bcheapest\b|(?P<dear>最贵|\bmost expensive\b)")
_CARRIERS = ("顺丰", "京东", "中通", "圆通", "申通", "韵达", "极兔", "邮政", "德邦", "ems", "sf", "jd", "zto", "yto")
_ON_THE_HOST = {"身上", "手上", "手里", "主播", "直播", "现在", "今天"}
_EVERY_VERSION = re.compile(r"几种|几款|哪几|哪些|有什么(规格|尺寸|款)|what (sizes|versions|options)")
_ASKING_ZH = re.compile(r"^(为啥|为什么|为何|怎么|咋|只能|只|能|走)+")
"""The words of asking that start a chunk ("为啥只", "走陆运" -> 陆运)."""
_AFTER_SALE = re.compile(
    r"(秒杀|活动|抢购|flash sale|sale|deal)\s*(结束|过|完)(了|以后|之后|后)|after the (flash )?(sale|deal)"
    r"|(秒杀|活动)(以|之)?后|恢复原价|original price after"
)
"""Asks the price once the flash sale is over."""
_DESCRIBE = re.compile(
    r"是(个|个什么|一个)?(什么|啥)(东西|玩意儿?|产品|商品|宝贝)?[呀啊呢哦吖嘞]*[?？!！。~～\s]*$"
    r"|(什么|啥)(东西|玩意)|(干嘛|干什么|做什么|有什么|有啥|啥)用|介绍(一)?下|讲讲|讲一下"
    r"|^\s*(what'?s|what is|whats)\s+(this|that|it|link\s*#?\s*\d+)\s*\??\s*$"
    r"|tell me about|what does (it|this|that) do|what('?s| is) (it|this) for"
)
"""Asks what a product is (nothing in particular about it): its name, price and description."""
_EXISTS = re.compile(r"有.{0,10}吗|有没有|有无")
_ASKS_FOR_EN = re.compile(r"^(do you (have|sell|do)|is there|are there|have you got|any)\b")


def _names_concept(p: Product, r: Reading) -> bool:
    """A spec of the product is named as the kind of thing asked (电池 / 续航 for "battery")."""
    return any(
        L.any_cue(L.CONCEPTS[c], L.normalize(f"{spec.name.zh} {spec.name.en}")) for c in r.concepts for spec in p.specs
    )


def _variants_say_concept(p: Product, r: Reading) -> bool:
    names = L.normalize(" ".join(f"{v.name.zh} {v.name.en}" for v in p.variants))
    return bool(names) and any(
        L.cue_matches(cue, names) for c in r.concepts for cue in L.CONCEPTS[c] if not cue.startswith("re:")
    )


def _all_said(asked: str, where: tuple[Text, Text]) -> bool:
    """Every character of a Chinese "有X吗" is in the field found for it: "皮表带" is not said
    by "表带：精钢表带"."""
    held = L.normalize(where[0].zh + where[1].zh)
    return not L.CJK.search(asked) or all(ch in held for ch in asked if L.CJK.match(ch))


def _has_size_kind(p: Product, kind: re.Match[str], understanding: Understanding) -> bool:
    """Whether the listing gives the kind of size asked: its word ("儿童", "men"), or for a half
    size, a size ending in .5."""
    word = kind.group("zh") or kind.group("en") or ""
    if word in ("半", "half"):
        return any(s.endswith(".5") for s in p.sizes) or "半码" in understanding.listing_text(p.id)
    stem = {"童": "儿童", "男士": "男", "女士": "女", "男款": "男", "女款": "女", "男生": "男", "女生": "女"}
    said = stem.get(word, word).replace("'", "").removesuffix("s")  # men's -> men, kids' -> kid
    said = {"children": "child", "kid": "child"}.get(said, said)
    found = re.compile(rf"\b{said}" if said.isascii() else said)  # ("men" is not in "women")
    return any(found.search(t) for t in (L.normalize(f"{p.name.zh} {p.name.en}"), understanding.listing_text(p.id)))


def _listing_words(p: Product) -> str:
    """The names, category and audience of a product, where a listing says whom it is for."""
    parts = [p.name.zh, p.name.en, *p.aliases]
    parts += [s for text in (p.category, p.description) if text is not None for s in (text.zh, text.en)]
    parts += [t for a in p.suitable_for for t in (a.who.zh, a.who.en)]
    return L.normalize(" ".join(parts))


def _measure_for_size(r: Reading) -> bool:
    """ "腰围2尺7选哪个": a body measure given and a choice asked is a size question."""
    given = any(kind in ("chest", "waist", "hip", "foot", "shoe") for kind, _ in r.quantities)
    fits = re.search(r"\bfit\b|能穿|穿得下|合适吗", r.text)  # "I wear EU 40, will they fit?"
    return given and bool(_WHICH.search(r.text) or fits)


def _audience_fact(p: Product, r: Reading) -> Fact | None:
    zh_parts: list[str] = []
    en_parts: list[str] = []
    asked = [(kind, value) for kind, value in r.quantities if kind in ("age", "weight", "height")]
    for group, word_zh, word_en in ((p.not_for, "不适合", "not for"), (p.suitable_for, "适合", "for")):
        for audience in group:
            if asked and audience.limit is not None and not _limit_relevant(audience, asked):
                continue
            if (
                asked
                and audience.limit is not None
                and group is p.not_for
                and not any(
                    kind == audience.limit.quantity and _inside(audience.limit, kind, value) for kind, value in asked
                )
            ):
                # "6岁孩子能学吗" of a ukulele not for 5 and under: the limit, not a "not for"
                zh_parts.append(f"{audience.who.zh}除外")
                en_parts.append(f"except {audience.who.en}")
                continue
            zh_parts.append(f"{word_zh}{audience.who.zh}")
            en_parts.append(f"{word_en} {audience.who.en}")
    return _audience_listing(p, zh_parts, en_parts)


def _audience_listing(p: Product, zh_parts: list[str], en_parts: list[str]) -> Fact | None:
    if not zh_parts:
        return None
    return listing_fact("suitable", p, f"{p.name.zh}：{'；'.join(zh_parts)}", f"{p.name.en}: {'; '.join(en_parts)}", [])


def _audience_named(p: Product, r: Reading) -> Fact | None:
    """The listed audiences (for / not for) that the question itself names: by a word of
    their own ("超市小票" of "热敏纸（小票会受热变黑）", "latex allergy"), by a child however
    said ("toddler" of "children under 3"), or by an amount inside their limit ("32寸的显示器"
    of "monitors up to 32 inches", "书桌才50深" of "desks at least 50 cm deep")."""
    if _WHICH.search(r.text):
        return None
    own = L.normalize(" ".join([p.name.zh, p.name.en, p.category.zh, p.category.en, *p.aliases]))
    entries = [L.normalize(f"{a.who.zh} {a.who.en}") for a in (*p.not_for, *p.suitable_for)]
    chunks = _who_chunks(r)
    keys = [
        k
        for c in chunks
        for k in _chunk_keys(c)
        # (a word every audience shares tells none apart: "猫咪" of a cat food's cats)
        if k not in own and not (len(entries) > 1 and L.CJK.match(k) and all(k[0] in e for e in entries))
    ]
    child_asked = any(w in c for c in chunks for w in L.CHILD_WORDS)
    people = L.people(r.text)
    # (a word in common is no answer to a kind of thing asked that a spec answers: "饭盒能保冷吗
    # 装冰饮料" of one not for fizzy drinks)
    by_words = bool(keys) and not (r.concepts and _specs_for(p, r, weak=False))
    zh_parts: list[str] = []
    en_parts: list[str] = []
    for group, word_zh, word_en in ((p.not_for, "不适合", "not for"), (p.suitable_for, "适合", "for")):
        for a in group:
            hay = L.normalize(f"{a.who.zh} {a.who.en}")
            # (a child named is a warning's: "适合3岁以上" is no answer to "baby抱着睡觉安全吗")
            child = child_asked and group is p.not_for and any(w in hay for w in L.CHILD_LISTED)
            within = L.in_ranges(hay, people, L.PEOPLE_RANGE)  # "我家三口人" of "2-5人家庭"
            if a.limit is not None and a.limit.quantity == "other":
                within = _amount_within(a.limit, r.text, inclusive=group is p.suitable_for)
            if within is False:
                continue
            if within or child or (by_words and any(k in hay for k in keys)):
                zh_parts.append(f"{word_zh}{a.who.zh}")
                en_parts.append(f"{word_en} {a.who.en}")
    fact = _audience_listing(p, zh_parts, en_parts)
    if fact is not None and any(part.startswith("不适合") for part in zh_parts) and _CAN_IT.search(r.text):
        # "能带吹风机吗" of one not for hair dryers: the answer is no, said first
        return replace(fact, zh=f"不建议。{fact.zh}", en=f"No. {fact.en}")
    return fact


_COMES_WITH = re.compile(
    r"^(?!.*\b(?:what|which)\b.*\bcomes? with).*?\bcomes? with (?:a |an |any |the |some )?"
    r"(?P<en>[a-z][a-z -]{1,30}?)(?:\?|$|,|\.| or | and | too\b| as well)"
    r"|(?<!能)(?<!可以)(?:带|配|含|附带|包含)(?:不带|不配)?(?P<zh>[\u4e00-\u9fff]{2,5}?)(?:吗|么|嘛|不|没)"
)
"""Whether it comes with a thing ("does the stand come with a plug", "带充电器吗", "配充电器不"); not
"what gift comes with it", nor "能带车载冰箱吗" (what it can power)."""
_NOT_INCLUDED = re.compile(
    r"不含|不包含|不送|不带|不配|另购|另拍|另付|单独购买|单独拍|自备"
    r"|not included|sold separately|excluded|\bno \w+ included"
)
"""The listing says the thing does not come with it."""
_OTHER_COLOURS = re.compile(
    r"other colou?rs?|what colou?rs|(别的|其他|其它)(颜)?色|还有(什么|啥|哪些)(颜)?色|几[个种](颜)?色"
)
_CAN_IT = re.compile(r"能|可以|可不可以|行不行|行吗|\bcan\b|\bcould\b|\bok\b|\bsafe\b|\bsuitable\b")


def _chunk_keys(chunk: str) -> list[str]:
    """A chunk of a question as words a listing may use: itself and, in Chinese, its pairs
    of content characters; English words of four letters or more (also singular)."""
    same = [w for group in L.USE_SYNONYMS if any(g in chunk for g in group) for w in group]  # 晚上 / 夜间
    if L.CJK.search(chunk):
        return [chunk, *content_words(chunk), *same]
    # (its stem too: "allergy" of "allergic to latex")
    return [chunk, L.singular(chunk), *([chunk[:-1]] if len(chunk) >= 6 else []), *same] if len(chunk) >= 4 else same


def _amount_within(limit: Limit, text: str, inclusive: bool) -> bool | None:
    """Whether an amount the question gives in the limit's unit is inside it (None: none
    given). "Up to 32 inches" is for a 32-inch monitor; "under 3 years" is not for a 3-year-old."""
    values = _amounts_in(text, limit.unit) if limit.unit in _UNIT_WORDS else []
    if not values:
        return None
    low = float(limit.min) if limit.min is not None else -math.inf
    high = float(limit.max) if limit.max is not None else math.inf
    return all(low <= v <= high if inclusive else _inside(limit, "other", v) for v in values)


@lru_cache(maxsize=1)
def _plain_cues() -> tuple[str, ...]:
    """The Chinese cue words of what is asked (保质期, 防水 ...)."""
    groups = (*L.INTENTS.values(), *L.CONCEPTS.values())
    return tuple({c for g in groups for c in g if not c.startswith("re:") and L.CJK.search(c) and len(c) >= 2})


_WHICH = re.compile(r"什么|哪|啥|几|多大|which|what|who")
_USE_WORDS = re.compile(
    r"能不能|可不可以|适不适合|适合|可以|能|会|用|吃|喝|穿|戴|坐|睡|吗|呢|嘛|么|不|的|了|吧|啊|这个|这款|它|也|都|还|请问|主播"
    r"|\b(can|could|is|it|ok|okay|for|safe|suitable|use|used|wear|eat|drink|this|my|a|the|good)\b"
)


def _someone_unlisted(p: Product, r: Reading) -> bool:
    """A yes/no question about a group of people (or animals) the product's audiences do not
    mention: the leftover words of the question are in none of them."""
    if _WHICH.search(r.text) or r.quantities:
        return False
    who = L.normalize(" ".join(f"{a.who.zh} {a.who.en}" for a in (*p.suitable_for, *p.not_for)))
    chunks = _who_chunks(r)
    if not chunks:
        return False
    return not any(_who_named(c, who) for c in chunks)


def _who_in_listing(p: Product, r: Reading) -> tuple[Text, Text] | None:
    """A product that lists no audiences may still say who it is for in its description or a
    spec ("猫狗通用", "男女同款"): the field that names the group asked about."""
    if _WHICH.search(r.text) or r.quantities:
        return None
    chunks = _who_chunks(r)
    fields = [(s.name, s.value) for s in p.specs]
    if p.description is not None:
        fields.append((Text(zh="介绍", en="about"), p.description))
    for label, value in fields:
        hay = L.normalize(f"{label.zh} {label.en} {value.zh} {value.en}")
        if any(_who_named(c, hay) for c in chunks):
            return label, value
    return None


def _who_chunks(r: Reading) -> list[str]:
    """The words of a "can X use it" question that may name a group (X)."""
    text = r.without_names()
    # The residue drops cue words, and 孕妇 / pregnant are cues of "suitable": keep them here.
    text = _USE_WORDS.sub(" ", text)
    chunks = [c for c in re.split(r"[\s\W\d_]+", text) if c]
    chunks = [c for c in chunks if (L.CJK.search(c) and len(c) >= 2) or (not L.CJK.search(c) and len(c) >= 4)]
    return [c for c in chunks if not _is_generic_use(c) and c not in L.STOP_EN]


_PLAIN_MODIFIERS = set("的了吗呢是有能可以多少几什么一个不也都还给买小大这那")
"""Characters that tell no group of people (or animals) from another."""


def _who_named(chunk: str, who: str) -> bool:
    """A group the viewer names is among the listed ones: the words, or, in Chinese, a
    character that tells the group apart — every character but the head noun at the end
    ("油皮" / 偏油, "男生" / 男女通用, "狗狗" / 猫狗; "孕妇" is not in 干皮和敏感肌) — in a word of two
    characters only: a longer chunk shares one by accident ("下雨天" / 150厘米以下, "粉笔写" / 记号笔)."""
    if chunk in who or _bigram_share(chunk, who) >= 0.5 or L.singular(chunk) in who:
        return True
    if any(chunk in asked and any(w in who for w in fits) for asked, fits, _ in L.RECIPIENTS):
        return True  # "小孩" of "14岁以下儿童": a child, however the listing says it
    if not L.CJK.search(chunk) or len(chunk) > 2:
        return False
    return any(ch in who for ch in chunk[:-1] if L.CJK.match(ch) and ch not in _PLAIN_MODIFIERS)


def _is_generic_use(chunk: str) -> bool:
    """Words of "can it be used / worn / eaten" that name nobody."""
    return chunk in {"use", "wear", "eat", "drink", "women", "people", "person", "用了", "使用", "平时", "每天", "天天"}


def _limit_relevant(audience: Audience, asked: list[tuple[str, float]]) -> bool:
    limit = audience.limit
    assert limit is not None
    return any(kind == limit.quantity for kind, _ in asked)


_SPEC_STOP = set("的了吗呢是有能可以多少几什么")


def _specs_for(p: Product, r: Reading, weak: bool = True) -> list[Spec]:
    out: list[Spec] = []
    named_too: list[Spec] = []
    by_name: list[Spec] = []
    """Specs the question names ("made in germany? age?"): each part of a many-part question keeps its own."""
    for spec in p.specs:
        own = L.normalize(" ".join([spec.key.replace("_", " "), spec.name.zh, spec.name.en, *spec.keywords]))
        if any(c in L.CONCEPTS and any(L.cue_matches(cue, own) for cue in L.CONCEPTS[c]) for c in r.concepts):
            out.append(spec)
            continue
        # The product's own name is not a question word: "保温壶能装碳酸饮料吗" does not
        # ask about the flask's 保温时长.
        keys = [L.normalize(k) for k in (spec.name.zh, spec.name.en, *spec.keywords) if len(k) >= 2]
        ones = [w for w in (spec.name.zh, *spec.keywords) if len(w) == 1 and L.CJK.match(w)]
        if any(r.says_apart(w) for w in ones):
            out.append(spec)  # "首饰盒有锁吗" / 锁, "是镀的吗" / 电镀 (keyword 镀): one character the shop chose
            continue
        # An English name is said in the singular too ("how many shades" / "几个shade").
        keys += [L.singular(k) for k in keys if L.CJK.search(k) is None and len(L.singular(k)) >= 4]
        if any(r.says(k) for k in keys):
            out.append(spec)
            if any(r.says(k) for k in keys if not _ASKING_CUE.search(k)):
                by_name.append(spec)  # "players", "年龄": the spec named, not a way of asking
            continue
        # A two-character word of the spec's name in the question ("蓝牙几点几" -> 蓝牙版本), or
        # a long English word of it ("how many clicks" -> "click life").
        name = "".join(ch for ch in spec.name.zh if L.CJK.match(ch))
        pairs = [name[i : i + 2] for i in range(len(name) - 1) if name[i : i + 2] not in _WEAK_BIGRAMS]
        english = [w for w in re.findall(r"[a-z]{5,}", L.normalize(spec.name.en)) if w not in L.STOP_EN]
        if any(_says_word_apart(r, w) for w in english):
            out.append(spec)
            continue
        if any(r.says_apart(pair) for pair in pairs):
            out.append(spec)
        elif any(r.says(pair) for pair in pairs):
            named_too.append(spec)
    if not out and not r.concepts and weak and not _clause_properties(r):
        # The pair is also (part of) the name the viewer used ("降噪效果怎么样" of the 降噪
        # earbuds): what is asked only when nothing else is ("防晒搓泥吗" asks 搓泥, "防晒能当
        # 隔离吗" asks 隔离, not 防晒指数).
        out = named_too
    if r.measure:
        # "皮带多宽": the width, not another dimension (or a value that happens to say "length").
        measured = [
            spec
            for spec in p.specs
            if r.measure[0] in spec.name.zh or any(w in L.normalize(spec.name.en) for w in r.measure[1:])
        ]
        if measured:
            # "how tall is it and how often do I water it": the height, and the other kinds asked
            other = [c for c in r.concepts if c not in _MEASURE_KINDS]
            also = [
                spec
                for spec in out
                if spec not in measured and any(L.any_cue(L.CONCEPTS[c], _spec_label(spec)) for c in other)
            ]
            return measured + also + [spec for spec in by_name if spec not in measured + also]
    if out:
        # A spec that holds the question's own words beats one found through the kind of
        # thing asked: "water bladder" is the hydration sleeve ("bladder"), not the rain
        # cover that "water" and "rain" (both waterproofing words) would pick.
        direct = _specs_with_words(p, r)
        if direct:
            kept = [spec for spec in out if spec in direct] or direct
            kept += [spec for spec in out if spec not in kept and len(spec.name.zh) >= 2 and spec.name.zh in r.text]
            # ...but a second kind asked keeps its own spec ("吸力多大 噪音大不大": suction and noise)
            others = [c for c in r.concepts if c not in _MEASURE_KINDS]
            kept += [
                spec
                for spec in out
                if spec not in kept
                and any(L.any_cue(L.CONCEPTS[c], _spec_label(spec)) for c in others)
                and not any(L.any_cue(L.CONCEPTS[c], _spec_label(k)) for k in kept for c in others)
            ]
            out = kept + [spec for spec in by_name if spec not in kept]
    if not out and r.concepts:
        # The kind asked is in a spec's value ("每片130克" for "多重"). A yes/no question asks
        # about one thing: the value must speak of it ("能上飞机吗" / "可登机"), not of another
        # property of the same kind ("搓泥吗" is not answered by "清爽不油腻").
        yes_no = not _WHICH.search(r.text) and not re.search(r"多|how|what", r.text)
        asked = [cue for c in r.concepts for cue in L.CONCEPTS.get(c, ()) if not cue.startswith("re:")]
        asked = [cue for cue in asked if L.cue_matches(cue, r.text)]
        for spec in p.specs:
            value = L.normalize(spec.value.zh + " " + spec.value.en)
            there = [
                cue
                for c in r.concepts
                if c in L.CONCEPTS
                for cue in L.CONCEPTS[c]
                if not cue.startswith("re:") and L.cue_matches(cue, value)
            ]
            if there and (not yes_no or any(_same_thing(a, b) for a in asked for b in there)):
                out.append(spec)
        if not out and not yes_no:
            # "what's the protein content": the spec that holds the question's own words.
            out = _specs_with_words(p, r)
    if not out:
        # "机械表一天差几秒", "how many carats": the spec whose value is counted in that unit;
        # "手机壳有6mm 能吸住吗": the spec that gives a limit in the unit the viewer gives.
        units = L.units_asked(r.text) or L.units_given(r.text)
        out = [s for s in p.specs for u in units if L.says_amount_in(L.normalize(s.value.zh + " " + s.value.en), u)]
    if not out and weak:
        # "铁观音怎么泡" / 冲泡, "皮带太长能剪吗" / 裁剪: the one verb asked is in one spec's name.
        verbs = re.findall(r"(?:怎么|如何|咋|能|可以|会)([\u4e00-\u9fff])(?:吗|呢|么|不|啊|$)", r.text)
        verbs = [v for v in verbs if v not in _SPEC_STOP and v not in "用吃喝穿戴坐睡涂"]
        named = [spec for spec in p.specs if any(v in spec.name.zh for v in verbs)]
        if len(named) == 1:
            out = named
    return out


_MEASURE_KINDS = {"dimensions", "weight", "thickness", "area", "volume"}


_NEGATED_BEFORE = re.compile(r"(免|不|无|没|非|不用|不需|不要|no|non|without|not)[\s-]?$")


def _affirmed(option: str, said: str) -> bool:
    """The listing says the option other than as what it is not ("免系鞋带" does not say it has
    laces; "non-slip" is not "slip")."""
    if L.CJK.search(option):
        starts = [m.start() for m in re.finditer(re.escape(option), said)]
        return any(not _NEGATED_BEFORE.search(said[max(0, i - 3) : i]) for i in starts)
    if not _en_in(option, said):
        return False
    starts = [m.start() for m in re.finditer(rf"(?<![a-z]){re.escape(option)}", said)]
    return not starts or any(not _NEGATED_BEFORE.search(said[max(0, i - 8) : i]) for i in starts)


def _says_word_apart(r: Reading, word: str) -> bool:
    """The question says the English word (or its plural) outside every product name."""
    return any(
        not any(s < m.end() and m.start() < e for s, e in r.name_spans)
        for m in re.finditer(rf"(?<![a-z]){re.escape(word)}(?:s|es)?(?![a-z])", r.text)
    )


def _names_a_spec(p: Product, r: Reading) -> bool:
    """The question says one of the product's specs by its name ("鞋跟多高", "裙摆多大")."""
    return any(len(spec.name.zh) >= 2 and spec.name.zh in r.text for spec in p.specs)


def _spec_label(spec: Spec) -> str:
    return L.normalize(f"{spec.key} {spec.name.zh} {spec.name.en}")


def _same_thing(asked: str, listed: str) -> bool:
    """Two cues of one kind that speak of the same thing: equal, or Chinese cues sharing a
    character that is not a function word (上飞机 / 登机; not 搓泥 / 油腻)."""
    if asked == listed:
        return True
    shared = set(asked) & set(listed)
    return any(L.CJK.match(ch) and ch not in _SPEC_STOP for ch in shared)


_WEAK_BIGRAMS = {"多少", "什么", "能否", "是否", "方式", "时间", "效果"}


def _specs_with_words(p: Product, r: Reading) -> list[Spec]:
    """The specs whose name or value hold most of the question's leftover words (English
    words of 4+ letters, Chinese character pairs), none if no spec holds any."""
    words = [w for w in re.findall(r"[a-z]{4,}", r.residue) if w not in L.STOP_EN]
    for chunk in r.residue.split():
        if L.CJK.search(chunk):
            words += [chunk[i : i + 2] for i in range(len(chunk) - 1) if chunk[i : i + 2] not in _WEAK_BIGRAMS]
    if not words:
        return []
    scored = []
    for spec in p.specs:
        hay = L.normalize(" ".join([spec.name.zh, spec.name.en, spec.value.zh, spec.value.en, *spec.keywords]))
        scored.append((sum(1 for w in words if w in hay or _en_in(w, hay)), spec))
    best = max((n for n, _ in scored), default=0)
    return [spec for n, spec in scored if n == best] if best else []


def _property_asked(r: Reading) -> str:
    """The X of "有X吗 / 是X的吗 / does it have X", without product names and particles."""
    if r.intents or r.colours or r.sizes or r.unknown_sizes or r.regions:
        return ""
    if re.search(r"什么|啥|哪|几|多少|怎么", r.text):
        return ""  # "是什么scent" asks what, it names no property to confirm
    match = _YES_NO_PROPERTY.search(r.residue.replace(" ", "") if L.CJK.search(r.residue) else r.text)
    if match is None:
        return ""
    x = (match.group("x") or match.group("y") or "").strip()
    x = re.sub(f"^[{L.PARTICLES_ZH}]+|[{L.PARTICLES_ZH}]+$", "", x)
    words = [w for w in re.split(r"\s+", x) if w and w not in L.STOP_EN | _POLARITY]
    return " ".join(words) if (L.CJK.search(x) and len(x) >= 2) or words else ""


def _spec_answers(p: Product, facts: list[Fact], prop: str) -> bool:
    """A spec already stated is named by a word of the property asked ("能剪吗" / 裁剪)."""
    stated = {f.kind.removeprefix("spec:") for f in facts if f.kind.startswith("spec:")}
    chars = {ch for ch in prop if L.CJK.match(ch) and ch not in _SPEC_STOP and ch not in _PLAIN_MODIFIERS}
    return any(spec.key in stated and chars & set(spec.name.zh) for spec in p.specs)


def _clause_properties(r: Reading) -> list[str]:
    """The X of each clause "有X吗" / "是X吗" that asks nothing else, product names taken out."""
    text = r.without_names()
    out: list[str] = []
    if r.colours or r.sizes or r.unknown_sizes or r.regions:
        return out  # a colour, size or region asked has its own answer
    for clause in re.split(r"[\s,，。;；!！?？~～]+", text):
        if not L.CJK.search(clause):
            continue
        intents, concepts = L.asked_of(clause)
        if set(intents) - {"recommend"} or concepts or re.search(r"什么|啥|哪|几|多少|怎么", clause):
            continue
        match = _YES_NO_PROPERTY.search(clause)
        if match is None or not match.group("x"):
            continue
        x = re.sub(f"^[{L.PARTICLES_ZH}]+|[{L.PARTICLES_ZH}]+$", "", match.group("x"))
        if len(x) >= 2:
            out.append(x)
    return out


_MEASURE_WORDS = "双片支粒颗个只条张袋包盒瓶罐卷抽贴杯"
_MEASURES_EN = {
    "piece": "片", "pc": "片", "sheet": "片", "pair": "双", "tablet": "片", "capsule": "粒", "bag": "袋", "cup": "杯",
    "pod": "粒", "stick": "条", "sachet": "袋", "bottle": "瓶",
}  # fmt: skip


def _count_facts(p: Product, r: Reading, currency: str) -> list[Fact]:
    """How many come in one: the spec that counts in the measure word asked ("一包几双" /
    双数：5双), else the variants whose names count in it ("一盒几片" / 1盒10片、3盒30片)."""
    asked = re.findall(rf"(?:几|多少)([{_MEASURE_WORDS}])", r.text)
    asked += [m for word, m in _MEASURES_EN.items() if re.search(rf"\b{word}s?\b", r.text)]
    out = []
    for spec in p.specs:
        # The count is a number in that measure ("5双"), not "每片精华液" (per piece).
        if (
            spec.key in ("pack", "count")
            or "规格" in spec.name.zh
            or any(re.search(rf"\d\s*{m}", spec.value.zh) for m in asked)
        ):
            out.append(_spec_fact(p, spec))
    if out:
        return out
    # "how many in a box" names no measure: the variants that count pieces of some kind.
    asked = asked or list("双片支粒颗个只条张卷抽贴")
    counted = [v for v in p.variants if any(re.search(rf"\d\s*{m}", v.name.zh) for m in asked)]
    if not counted:
        # "银耳羹一盒几杯" of "银耳羹 15g×10杯": the count its name gives
        said = any(re.search(rf"\d\s*{m}", p.name.zh) for m in asked if m not in "个只")
        return [listing_fact("count", p, f"商品名称：{p.name.zh}", f"Listed as: {p.name.en}", [])] if said else []
    zh = "、".join(f"{v.name.zh} {money_text(v.price if v.price is not None else p.price, currency)}" for v in counted)
    en = ", ".join(f"{v.name.en} {money_text(v.price if v.price is not None else p.price, currency)}" for v in counted)
    return [listing_fact("variants", p, f"{p.name.zh} 可选：{zh}", f"{p.name.en} options: {en}", [])]


_UNIT_ASKED = (
    (re.compile(r"(?:几|多少)\s*([倍层头档挡孔格])"), None),
    (re.compile(r"(?:几|多少)个?人(?:用|吃|份|食|住|坐|睡)|够几个?人|how many (?:people|persons)"), "人"),
    (re.compile(r"百分之(?:几|多少)|多少\s*%|含量(?:是)?多少|how many percent|what percent"), "%"),
)
"""How a question asks for a number in a unit no intent covers ("几倍", "够几个人", "含量多少"),
and the unit (None: the character asked)."""


def _counted_in_unit_asked(p: Product, r: Reading, currency: str) -> list[Fact]:
    """ "几倍的": the specs giving a number in that unit, else the versions named with one,
    else the materials ("骨粉含量≥40%")."""
    units = {unit or match.group(1) for pattern, unit in _UNIT_ASKED for match in pattern.finditer(r.text)}
    if not units:
        return []

    def holds(text: str) -> bool:
        return any(re.search(rf"\d\s*{re.escape(u)}", text) for u in units)

    specs = [s for s in p.specs if holds(s.value.zh)]
    if specs:
        return [_spec_fact(p, s) for s in specs[:2]]
    if any(holds(v.name.zh) for v in p.variants):
        return [variants_fact(p, currency)]
    if any(holds(m.zh) for m in p.materials):
        return [materials_fact(p)]
    return []


def _spec_of_intent(p: Product, intent: str) -> Spec | None:
    """A spec about what an intent asks ("配色 / colours" for a colour question) when the
    product has no list for it."""
    for spec in p.specs:
        own = L.normalize(" ".join([spec.key.replace("_", " "), spec.name.zh, spec.name.en, *spec.keywords]))
        if L.any_cue(L.INTENTS[intent], own) or (intent == "colours" and "色" in spec.name.zh):
            return spec
    return None


def _materials_answer(p: Product, r: Reading) -> bool:
    """The kind asked is answered by what it is made of: a percentage ("浓度多少" / 5%烟酰胺)
    or, for "what flavour", the main ingredient (beef)."""
    listed = L.normalize(" ".join(f"{m.zh} {m.en}" for m in p.materials))
    if "concentration" in r.concepts and "%" in listed:
        return True
    return "taste" in r.concepts and bool(re.search(r"什么|啥|哪|which|what", r.text))


def _spec_named(spec: Spec, r: Reading, specific: bool = False) -> bool:
    """The question holds two characters of the spec's Chinese name or its English name;
    `specific`: Chinese characters that are no general kind of spec ("枕套", not "保质期")."""
    name = "".join(ch for ch in spec.name.zh if L.CJK.match(ch))
    pairs = {name[i : i + 2] for i in range(len(name) - 1)} - _WEAK_BIGRAMS
    if specific:
        said = [cue for cue in _plain_cues() if cue in r.text]
        return any(pair in r.text and not any(pair in cue for cue in said) for pair in pairs)
    return any(pair in r.text for pair in pairs) or L.cue_matches(L.normalize(spec.name.en), r.text)


def _listing_fields(p: Product, names: bool = True) -> list[tuple[Text, Text]]:
    """What the product's listing says, as (label, text): the fields a question's words are looked for in."""
    fields: list[tuple[Text, Text]] = []
    if p.description is not None:
        fields.append((Text(zh="介绍", en="about"), p.description))
    fields += [(s.name, s.value) for s in p.specs]
    if p.materials:
        fields.append((Text(zh="成分/材质", en="made with"), _join(p.materials)))
    if p.suitable_for:
        fields.append((Text(zh="适合", en="for"), _join([a.who for a in p.suitable_for])))
    if p.not_for:
        fields.append((Text(zh="不适合", en="not for"), _join([a.who for a in p.not_for])))
    # What comes with it and the sale's terms are listings too ("有礼盒吗": 送礼盒和手提袋;
    # "不同尺码能一起拍吗": 不同尺码可以混拍).
    if p.gift_with_purchase is not None:
        fields.append((Text(zh="赠品", en="free gift"), p.gift_with_purchase))
    if p.flash_sale_note is not None:
        fields.append((Text(zh="秒杀说明", en="flash sale"), p.flash_sale_note))
    fields += [(Text(zh="说明", en="note"), entry.answer) for entry in p.faq]
    notes = (p.warranty, "保修", "warranty"), (p.returns, "退货", "returns"), (p.shipping, "发货", "shipping")
    fields += [(Text(zh=zh, en=en), terms.note) for terms, zh, en in notes if terms is not None and terms.note]
    if names:
        fields.append((Text(zh="名称", en="name"), p.name))
    return fields


def _fields_of_term(p: Product, r: Reading) -> list[tuple[Text, Text]]:
    """The fields that hold the one word a question is about: the term whose meaning is asked
    ("6A是啥意思") or the quality of an A-not-A question ("汉服鞋滑不滑": 防滑牛筋底)."""
    meaning = _MEANING.search(r.text)
    # ("这个6A是啥意思": the term, not the pointing word before it)
    terms = [re.sub(r"^.*(这个|那个|这|那|的)", "", meaning.group("zh") or meaning.group("en"))] if meaning else []
    terms = [t for t in terms if t]
    terms += [x for x in re.findall(r"([\u4e00-\u9fff])不\1", r.text) if x not in _NO_QUALITY]
    out = []
    for term in terms:
        out += [
            (label, text)
            for label, text in _listing_fields(p, names=False)
            if term in L.normalize(f"{text.zh} {text.en}") and (label, text) not in out
        ]
    return out


_MEANING = re.compile(r"(?P<zh>[^\s，,。?？]{1,8}?)(?:是|指)(?:啥|什么)意思|what does (?P<en>[\w-]+) mean")
_NO_QUALITY = set("是有能会要好行用对可够吃喝穿戴发买卖包送退换来去在大小多少像真假")
"""A-not-A verbs, words of asking and of amount ("能不能", "好不好", "大不大"): no quality a listing states."""


def _find_in_product(p: Product, query: str, names: bool = True) -> list[tuple[Text, Text]]:
    """Fields of the product whose text holds the query's words (all of a Chinese chunk; English words)."""
    if not query.strip():
        return []
    fields = _listing_fields(p, names)
    chunks = [c for c in re.split(r"\s+", L.normalize(query)) if c]
    # (the words of asking are no part of what is asked: "为啥只能走陆运" looks for 陆运)
    chunks = [_ASKING_ZH.sub("", c) if L.CJK.search(c) else c for c in chunks]
    cjk = [c for c in chunks if L.CJK.search(c) and len(c) >= 2]
    en = [L.singular(c) for c in chunks if not L.CJK.search(c) and len(c) >= 2 and c not in L.STOP_EN | _POLARITY]
    out = []
    for label, value in fields:
        hay = L.normalize(f"{label.zh} {label.en} {value.zh} {value.en}")
        hay_words = {L.singular(w) for w in re.findall(r"[a-z0-9.]+", hay)}
        ok_cjk = cjk and all(c in hay or _bigram_share(c, hay) >= 0.6 for c in cjk)
        ok_en = en and sum(1 for w in en if w in hay_words or w in hay or _en_in(w, hay)) * 2 > len(en)
        if (ok_cjk or not cjk) and (ok_en or not en) and (cjk or en):
            out.append((label, value))
    return out


def _en_in(word: str, hay: str) -> bool:
    """An English word in a text in another form: "makeup" / "make-up", "remove" / "removal"."""
    if L.CJK.search(word) or len(word) < 4:
        return False
    stem = re.sub(r"(able|ing|al|ed|es|er|e|s)$", "", word)
    return len(stem) >= 4 and stem in hay.replace("-", "")


def _bigram_share(chunk: str, hay: str) -> float:
    grams = [chunk[i : i + 2] for i in range(len(chunk) - 1)]
    if len(grams) < 2:
        return 0.0
    return sum(1 for g in grams if g in hay) / len(grams)


_ASKING_CUE = re.compile(r"^re:|\.\*|哪|什么|啥|几|多少|吗|\b(how|where|what|which)\b")
"""A concept's cue that is a way of asking ("哪里产", "where .* from"), not a word a listing states."""

_POLARITY = {"free", "no", "not", "without", "any"}
"""'fragrance free' asks whether fragrance is listed: the field that says so answers."""


def _join(items: list[Text]) -> Text:
    return Text(zh="、".join(i.zh for i in items), en=", ".join(i.en for i in items))


def _same_colour(asked: str, listed: Text) -> bool:
    a = asked.removesuffix("色")
    zh = L.normalize(listed.zh)
    if a in L.COLOUR_ZH_OF and L.COLOUR_ZH_OF[a] in zh:
        return True  # "in purple?" of 薰衣草紫 / lavender
    if any(other in zh and other != a for other in _NOT_THE_COLOUR.get(a, ())):
        return False  # 白金色 (platinum) and 玫瑰金色 (rose gold) are no 金色
    return a in zh or a in L.normalize(listed.en)


_NOT_THE_COLOUR = {"金": ("白金", "玫瑰金", "铂金"), "gold": ("rose gold", "white gold")}


def _faq_words_hit(entry: Faq, r: Reading) -> bool:
    words = [
        L.normalize(w).rstrip("?？!！。. ")
        for w in (*entry.keywords, entry.question.zh, entry.question.en)
        if len(w) >= 2
    ]
    # A one-character verb the shop gives as a keyword ("剪"), said outside the product's name
    verbs = [w for w in entry.keywords if len(w) == 1 and L.CJK.match(w)]
    if verbs:
        unnamed = "".join(ch for i, ch in enumerate(r.text) if not any(s <= i < e for s, e in r.name_spans))
        if any(w in unnamed for w in verbs):
            return True
    # A Latin keyword is a whole word ("COD" is not in "coupon codes").
    return any(
        w in r.text if L.CJK.search(w) else re.search(r"(?<![a-z])" + re.escape(w) + r"(?![a-z])", r.text) is not None
        for w in words
    )
