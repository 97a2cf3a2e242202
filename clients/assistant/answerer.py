"""The built-in answerer: retrieval over the catalogue and the room's live state.

A question is read for (1) the products it names (names and aliases, typo-tolerant),
or points at ("这个" → the pinned card, "秒杀的" → the flash sale's product), (2) what
it asks (price, stock, sizes, colours, ... from the lexicon; specs and FAQ entries from
the catalogue's keywords), and, for "do you have something for dry skin?", (3) which
products match, ranked with BM25 (rank_bm25) over jieba-segmented product texts. The
answer states only facts found (facts.py); anything asked and not found is "don't
know", never a guess.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from rank_bm25 import BM25Okapi

from barrage.clients.assistant import lexicon
from barrage.clients.assistant.catalog import Catalogue, Faq, Lang, Product, Spec, Text
from barrage.clients.assistant.facts import Fact, FactBook
from barrage.clients.assistant.grounding import ungrounded
from barrage.clients.assistant.state import LiveState
from barrage.clients.assistant.text import (
    Phrase,
    Query,
    Segmenter,
    best_match,
    compact,
    language,
    pinyin_of,
    raw_words,
    stem,
    word_matches,
)

Outcome = Literal["answer", "abstain", "ignore"]
Unknown = Literal["say", "silent"]

MAX_PRODUCTS = 3
"""Products one answer talks about (and cards it carries)."""
MAX_CHARS = 400
_MEASURE = re.compile(r"^(几|多少|多|哪)[个件瓶条双种包盒颗片号款只支罐斤天次位]?$")
"""Question words with a measure word ("几个", "几瓶"): asking, not naming."""
"""Answers stay well under the server's 500-character comment limit."""

ABSTAIN_TEXT: dict[str, dict[Lang, str]] = {
    "unknown": {
        "zh": "抱歉，这个我还不清楚，请等主播解答～",
        "en": "Sorry, I don't know that one — the host will get back to you.",
    },
    "which_product": {
        "zh": "请问您问的是哪款商品呢？告诉我商品名，我来查～",
        "en": "Which product do you mean? Tell me its name and I'll check.",
    },
    "no_match": {
        "zh": "抱歉，目前没有找到合适的商品，请等主播推荐～",
        "en": "Sorry, I couldn't find a matching product — the host may have a suggestion.",
    },
}
"""What the assistant says when it does not know (no numbers, no facts)."""

MISSING_LABEL: dict[str, tuple[str, str]] = {
    "price": ("价格", "price"),
    "stock": ("库存", "stock"),
    "sizes": ("尺码", "sizes"),
    "colours": ("颜色", "colours"),
    "ingredients": ("成分", "ingredients"),
    "suitable": ("适用人群", "who it is for"),
}


@dataclass(frozen=True)
class Answer:
    """What the answerer makes of one question."""

    question: str
    lang: Lang
    outcome: Outcome
    """answer: facts found; abstain: a shopping question it cannot answer; ignore: not
    a shopping question (chatter), never replied to."""
    facts: tuple[Fact, ...] = ()
    text: str = ""
    """The reply to post; empty when nothing is to be posted."""
    reason: str = ""
    missing: tuple[str, ...] = ()
    """Intents asked about whose facts are not known."""

    @property
    def products(self) -> tuple[str, ...]:
        """Products the answer is about, in order (rendered as cards)."""
        seen: dict[str, None] = {}
        for fact in self.facts:
            if fact.product_id is not None:
                seen.setdefault(fact.product_id)
        return tuple(seen)[:MAX_PRODUCTS]

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(source for fact in self.facts for source in fact.sources)

    @property
    def signature(self) -> tuple[object, ...]:
        """Answers with the same signature answer the same question (for grouping). "Don't
        know" answers group by the question's text: different unknowns each get one."""
        asked = compact(self.question) if self.outcome != "answer" else ""
        return (self.lang, self.outcome, self.reason, tuple(fact.key for fact in self.facts), self.missing, asked)

    @property
    def values(self) -> tuple[str, ...]:
        """The stated text of each fact: changes when a live value changes."""
        return tuple(fact.text(self.lang) for fact in self.facts)


class Answerer(Protocol):
    """Turns a viewer's question into an Answer. Must be fast (it runs on the bot's loop)."""

    def answer(self, question: str, state: LiveState, now_ms: int) -> Answer: ...


def render(lang: Lang, facts: Sequence[Fact], missing: Sequence[str] = ()) -> str:
    """Join fact sentences, note what is unknown, and add product references."""
    sentences = [fact.text(lang).rstrip("。.;；") for fact in facts]
    note = ""
    if missing:
        labels = [MISSING_LABEL[m][0 if lang == "zh" else 1] for m in missing]
        note = f"（{'、'.join(labels)}我暂时不清楚）" if lang == "zh" else f" (I don't know the {', '.join(labels)})"
    products: dict[str, None] = {}
    for fact in facts:
        if fact.product_id is not None:
            products.setdefault(fact.product_id)
    refs = " ".join(f"[product:{pid}]" for pid in list(products)[:MAX_PRODUCTS])
    separator, end = ("；", "。") if lang == "zh" else ("; ", ".")
    while True:
        body = separator.join(sentences) + end + note
        text = f"{body} {refs}".strip() if refs else body
        if len(text) <= MAX_CHARS or len(sentences) <= 1:
            return text[:MAX_CHARS]
        sentences.pop()


@dataclass
class _ProductIndex:
    product: Product
    names: list[Phrase]
    specs: list[tuple[Spec, list[Phrase]]]
    faq: list[tuple[Faq, list[Phrase]]]
    sizes: list[Phrase]
    colours: list[Phrase]
    suitable: list[Phrase]
    vocabulary: set[str] = field(default_factory=set)


def _phrases(words: Iterable[str]) -> list[Phrase]:
    return [Phrase.of(word) for word in words if word.strip()]


def _parts(item: Text) -> list[str]:
    """ "侧睡和仰睡" / "side and back sleepers" -> the item and its parts, for matching."""
    parts = [item.zh, item.en]
    parts += [p for p in re.split(r"[和与及、/,，]", item.zh) if len(p.strip()) >= 2]
    return list(dict.fromkeys(p.strip() for p in parts))


def _value_phrase(value: str) -> Phrase:
    """A size or colour as said in a question: "XL" as a whole word, "黑色" as text."""
    if re.fullmatch(r"[A-Za-z0-9./-]+", value):
        return Phrase.of(f"re:(?<![a-z0-9]){re.escape(value.casefold())}(?![a-z0-9])")
    return Phrase.of(value)


class RetrievalAnswerer:
    """The built-in answerer (see the module docstring)."""

    def __init__(self, catalogue: Catalogue, *, unknown: Unknown = "say", tz: str = "Asia/Shanghai") -> None:
        self.catalogue = catalogue
        self.book = FactBook(catalogue, tz)
        self.unknown = unknown
        self.intents = {name: _phrases(words) for name, words in lexicon.INTENTS.items()}
        self.deictic = [Phrase.of(word, exact=True) for word in lexicon.DEICTIC]
        self.sale_words = _phrases(lexicon.SALE_REFERENCE)
        self.global_faq = [(entry, _phrases(entry.keywords)) for entry in catalogue.faq]
        self.index: dict[str, _ProductIndex] = {}
        words: list[str] = []
        for product in catalogue.products:
            names = [product.name.zh, product.name.en, *product.aliases]
            self.index[product.id] = _ProductIndex(
                product=product,
                names=_phrases(names),
                specs=[(spec, _phrases(spec.keywords)) for spec in product.specs],
                faq=[(entry, _phrases(entry.keywords)) for entry in product.faq],
                sizes=[_value_phrase(size) for size in product.sizes],
                colours=[_value_phrase(colour.zh) for colour in product.colours]
                + [_value_phrase(colour.en) for colour in product.colours],
                suitable=_phrases(part for item in product.suitable_for for part in _parts(item)),
            )
            words += names + [t.zh for t in product.suitable_for] + product.tags + [product.category.zh]
        self.segmenter = Segmenter(words)
        docs: list[list[str]] = []
        self.raw_vocabulary: dict[str, str] = {}
        for entry in self.index.values():
            text = " ".join(self._doc_texts(entry.product))
            self.raw_vocabulary.update((raw, stem(raw)) for raw in raw_words(text) if len(raw) >= 4)
            tokens = self._tokens(text)
            entry.vocabulary = set(tokens)
            docs.append(tokens)
        self.vocabulary = set().union(*(entry.vocabulary for entry in self.index.values()))
        self.bm25 = BM25Okapi(docs)
        self.ask_words = _phrases(lexicon.ASK_WORDS)
        self.specific_ask = _phrases(lexicon.SPECIFIC_ASK)
        self.about_host = _phrases(lexicon.ABOUT_THE_HOST)
        self.price_fallback = _phrases(lexicon.PRICE_FALLBACK)
        self.groups = [(markers, _phrases(words)) for markers, words in lexicon.GROUPS]
        self.stopwords = frozenset(stem(w) if w.isascii() else w for w in lexicon.STOPWORDS)
        # Words the assistant knows only match exactly: "flash" is not a typo of "flask".
        known: set[str] = set(self.vocabulary) | set(self.stopwords)
        for phrase in [p for ps in self.intents.values() for p in ps] + self.deictic + self.sale_words:
            known.update(phrase.words)
        for entry in self.index.values():
            for phrase in (
                entry.names + [p for _, ps in entry.specs for p in ps] + [p for _, ps in entry.faq for p in ps]
            ):
                known.update(phrase.words)
        self.known = frozenset(word for word in known if word.isascii())

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _doc_texts(product: Product) -> list[str]:
        texts = [product.name.zh, product.name.en, *product.aliases, product.category.zh, product.category.en]
        texts += [t.zh for t in product.suitable_for] + [t.en for t in product.suitable_for] + product.tags
        texts += [t.zh for t in product.ingredients] + [t.en for t in product.ingredients]
        if product.description is not None:
            texts += [product.description.zh, product.description.en]
        return texts

    def _tokens(self, text: str) -> list[str]:
        return [t for t in self.segmenter.tokens(text) if re.search(r"\w", t)]

    def _snap(self, token: str) -> str:
        """A word as typed -> the catalogue word (stem) it most likely means."""
        if not token.isascii():
            return token
        stemmed = stem(token)
        if stemmed in self.vocabulary or stemmed in self.known or len(token) < 4:
            return stemmed
        for raw, word in self.raw_vocabulary.items():
            if word_matches(token, raw):
                return word
        return stemmed

    def looks_like_question(self, text: str) -> bool:
        """A question mark, a question word, or a request ("recommend something ...")."""
        if re.search(r"[?？]", text):
            return True
        query = Query.of(text)
        if any(phrase.found_in(query) for phrase in self.ask_words):
            return True
        return any(phrase.found_in(query) for phrase in self.intents["recommend"])

    def _mentions(self, query: Query) -> list[tuple[str, Phrase]]:
        found: list[tuple[str, Phrase, float]] = []
        for product_id, entry in self.index.items():
            phrase = best_match(query, entry.names)
            if phrase is not None:
                found.append((product_id, phrase, phrase.weight))
        if not found:
            return []

        # A name inside a longer name ("面膜" in "补水面膜") belongs to the longer one.
        def key(phrase: Phrase) -> str:
            return phrase.flat if not phrase.words else f" {' '.join(phrase.words)} "

        kept = [
            item
            for item in found
            if not any(
                len(key(other[1])) > len(key(item[1])) and key(item[1]) in key(other[1]) and other[1].found_in(query)
                for other in found
            )
        ]
        kept.sort(key=lambda item: -item[2])
        return [(product_id, phrase) for product_id, phrase, _ in kept[:MAX_PRODUCTS]]

    def _covered(self, query: Query, token: str, phrases: Iterable[Phrase]) -> bool:
        """Whether a matched phrase accounts for this word of the question."""
        syllables = pinyin_of(token)
        for phrase in phrases:
            if phrase.pattern is not None:
                if any(token in compact(m.group()) or token in m.group() for m in phrase.pattern.finditer(query.norm)):
                    return True
            elif phrase.words:
                if any(query.token_matches(token, w, r) for w, r in zip(phrase.words, phrase.raw, strict=True)):
                    return True
            elif token in phrase.flat or _contains(phrase.pinyin, syllables):
                return True
        return False

    def _residual(self, query: Query, matched: Iterable[Phrase]) -> list[str]:
        """Words of the question that no matched phrase, stopword or question word explains:
        what the viewer asks about that the assistant did not recognise."""
        phrases = list(matched) + self.ask_words + self.deictic
        return [
            token
            for token in self.segmenter.tokens(query.norm, stemmed=False)
            if re.search(r"\w", token)
            and (stem(token) if token.isascii() else token) not in self.stopwords
            and not _MEASURE.match(token)
            and not token.isdigit()
            and not self._covered(query, token, phrases)
        ]

    # ----------------------------------------------------------------- answer

    def answer(self, question: str, state: LiveState, now_ms: int) -> Answer:
        text = question
        for spoken, written in lexicon.SYNONYMS.items():
            text = text.replace(spoken, written)
        query = Query.of(text, self.known)
        lang = language(question)
        hits: dict[str, Phrase] = {}
        spotted: list[Phrase] = []
        for name, phrases in self.intents.items():
            here = [phrase for phrase in phrases if phrase.found_in(query)]
            if here:
                hits[name] = max(here, key=lambda phrase: phrase.weight)
                spotted += here
        mentions = self._mentions(query)
        deictic = best_match(query, self.deictic)
        sale_ref = best_match(query, self.sale_words)
        sale = state.current_sale(now_ms)
        pinned = state.pinned_id

        # Which products: named ones, else the sale's (when pointed at), else the pinned card.
        targets = [pid for pid, _ in mentions]
        if not targets and sale_ref is not None and sale is not None:
            targets = [sale.product_id]
        if not targets and pinned is not None:
            targets = [pinned]

        values, value_phrases = self._value_hits(query, targets)
        specs, faqs = self._catalogue_hits(query, targets)
        if not hits and not values and not specs and not faqs:
            fallback = best_match(query, self.price_fallback)
            if fallback is not None:
                hits["price"] = fallback  # "这个多少？"
        product_intents = {name for name in hits if name in lexicon.PRODUCT_INTENTS} | values
        concrete = product_intents - {"about", "suitable"}
        names = [p for pid, _ in mentions for p in self.index[pid].names if p.found_in(query)]
        matched = [*spotted, *hits.values(), *value_phrases, *names]
        if sale_ref is not None:
            matched.append(sale_ref)
        if deictic is not None:
            matched.append(deictic)

        # "Do you have something for dry skin?", "送男朋友什么好": a product to find.
        plain = deictic is None and not concrete and not specs and not faqs
        wants = "recommend" in hits or (
            "suitable" in hits and not mentions and deictic is None and "suitable" not in values
        )
        if wants and plain and (not mentions or "recommend" in hits):
            return self._recommend(question, query, lang, state, now_ms)
        # "Which one is on sale now?" (but "秒杀的还剩几个" asks the sale product's stock)
        asks_sale_product = sale_ref is not None and sale is not None and bool({"price", "stock"} & set(hits))
        if "on_sale" in hits and plain and not mentions and not asks_sale_product:
            if self._residual(query, matched):
                return self._abstain(question, lang, "unknown")  # "what's the discount code?"
            return self._done(question, lang, self.book.sale_facts(state, now_ms), [])
        if "on_sale" in hits and (mentions or deictic is not None):
            product_intents.add("price")

        global_faq = self._global_faq(query)
        shop = [name for name in ("shipping", "returns") if name in hits]
        if not product_intents and not specs and not faqs and not shop and global_faq is None:
            if mentions:
                if self._residual(query, matched) or best_match(query, self.specific_ask) is not None:
                    return self._abstain(question, lang, "unknown")  # "羽绒服防水吗": asks what we do not have.
                product_intents.add("about")
            elif deictic is not None and pinned is not None:
                return self._abstain(question, lang, "unknown")
            else:
                return Answer(question, lang, "ignore", reason="not a shopping question")

        if best_match(query, self.about_host) is not None and not faqs:
            return self._abstain(question, lang, "unknown")  # "主播穿多大码的鞋": about the host, not the shoes.
        needs_product = bool(product_intents or specs or faqs)
        if needs_product and not targets and not shop and global_faq is None:
            return self._abstain(question, lang, "which_product")
        if needs_product and targets and not mentions and not specs and not faqs and self._residual(query, matched):
            # The card is a guess: "主播身上那件毛衣多少钱" names something that is not it.
            return self._abstain(question, lang, "unknown")

        facts: list[Fact] = []
        missing: list[str] = []
        for product_id in targets if needs_product else []:
            found, lacking = self._product_facts(
                product_id, product_intents, specs, faqs, query, matched, state, now_ms
            )
            facts += found
            missing += [m for m in lacking if m not in missing]
        first = self.catalogue.product(targets[0]) if targets and mentions else None
        for name in shop:
            facts.append(self.book.policy_fact(name, first))
        if global_faq is not None and not any(f.kind.startswith("faq:") for f in facts):
            facts.append(self.book.faq_fact(global_faq, None))
        if not facts:
            return self._abstain(question, lang, "unknown", missing)
        return self._done(question, lang, _unique(facts), missing)

    def _value_hits(self, query: Query, targets: Sequence[str]) -> tuple[set[str], list[Phrase]]:
        """Values asked about: "有XL吗" asks for sizes, "有藏青色吗" for colours."""
        found: set[str] = set()
        phrases: list[Phrase] = []
        for product_id in targets:
            entry = self.index.get(product_id)
            if entry is None:
                continue
            values = (("sizes", entry.sizes), ("colours", entry.colours), ("suitable", entry.suitable))
            for intent, candidates in values:
                hit = [phrase for phrase in candidates if phrase.found_in(query)]
                if hit:
                    found.add(intent)
                    phrases += hit
            groups = self._group_hits(entry.product, query)
            if groups:
                found.add("suitable")
                phrases += groups
        return found, phrases

    def _catalogue_hits(self, query: Query, targets: Sequence[str]) -> tuple[dict[str, Spec], dict[str, Faq]]:
        """The best-matching spec and product FAQ entry of each target, by keyword."""
        specs: dict[str, Spec] = {}
        faqs: dict[str, Faq] = {}
        for product_id in targets:
            entry = self.index.get(product_id)
            if entry is None:
                continue
            spec_hits = [(spec, best_match(query, phrases)) for spec, phrases in entry.specs]
            best_spec = max(
                ((spec, _specificity(phrase)) for spec, phrase in spec_hits if phrase is not None),
                key=lambda item: item[1],
                default=None,
            )
            if best_spec is not None:
                specs[product_id] = best_spec[0]
            best_faq = max(
                ((faq, _specificity(phrase)) for faq, phrases in entry.faq if (phrase := best_match(query, phrases))),
                key=lambda item: item[1],
                default=None,
            )
            if best_faq is not None:
                faqs[product_id] = best_faq[0]
        return specs, faqs

    def _global_faq(self, query: Query) -> Faq | None:
        best: tuple[Faq, float] | None = None
        for entry, phrases in self.global_faq:
            phrase = best_match(query, phrases)
            if phrase is not None and (best is None or phrase.weight > best[1]):
                best = (entry, phrase.weight)
        return best[0] if best is not None else None

    def _product_facts(
        self,
        product_id: str,
        intents: set[str],
        specs: dict[str, Spec],
        faqs: dict[str, Faq],
        query: Query,
        matched: list[Phrase],
        state: LiveState,
        now_ms: int,
    ) -> tuple[list[Fact], list[str]]:
        product = self.catalogue.product(product_id)
        facts: list[Fact] = []
        missing: list[str] = []
        if product_id in faqs and product is not None:
            facts.append(self.book.faq_fact(faqs[product_id], product))
        if product_id in specs and product is not None:
            facts.append(self.book.spec_fact(product, specs[product_id]))
        for intent in ("price", "stock", "sizes", "colours", "ingredients", "suitable"):
            if intent not in intents:
                continue
            fact: Fact | None = None
            if intent == "price":
                fact = self.book.price_fact(product_id, state, now_ms)
            elif intent == "stock":
                fact = self.book.stock_fact(product_id, state, now_ms)
            elif product is not None:
                if intent == "sizes":
                    asked = [size for size, phrase in zip(product.sizes, self.index[product_id].sizes, strict=True)
                             if phrase.found_in(query)]  # fmt: skip
                    fact = self.book.sizes_fact(product, asked)
                elif intent == "colours":
                    fact = self.book.colours_fact(product)
                elif intent == "ingredients":
                    fact = self.book.ingredients_fact(product)
                elif self._suits(product, query, matched):
                    fact = self.book.suitable_fact(product)
            if fact is not None:
                facts.append(fact)
            else:
                missing.append(intent)
        if "about" in intents and not facts:
            about = self.book.about_fact(product_id, state, now_ms)
            if about is not None:
                facts.append(about)
        return facts, missing

    def _group_hits(self, product: Product, query: Query) -> list[Phrase]:
        """Words for a group the product's suitable_for names in other words ("情侣" for 男女同款)."""
        hits: list[Phrase] = []
        for item in product.suitable_for:
            text = f"{item.zh} {item.en.casefold()}"
            for markers, words in self.groups:
                if any(marker in text for marker in markers):
                    hits += [word for word in words if word.found_in(query)]
        return hits

    def _suits(self, product: Product, query: Query, matched: list[Phrase]) -> bool:
        """Asked "适合干皮吗"? Only when the group asked about is one the catalogue lists (a
        list is not exhaustive: "oily skin" missing from it does not mean "not for oily skin")."""
        entry = self.index[product.id]
        if any(phrase.found_in(query) for phrase in entry.suitable) or self._group_hits(product, query):
            return True
        return not self._residual(query, matched)  # "what is it good for?": the list is the answer.

    def _recommend(self, question: str, query: Query, lang: Lang, state: LiveState, now_ms: int) -> Answer:
        content = [self._snap(t) for t in self.segmenter.tokens(query.norm, stemmed=False) if re.search(r"\w", t)]
        content = [t for t in dict.fromkeys(content) if t not in self.stopwords and not _MEASURE.match(t)]
        if not content:
            # "有什么推荐的？" — what is on now is the recommendation.
            facts = self.book.sale_facts(state, now_ms)
            if facts[0].kind == "no_sale":
                return self._abstain(question, lang, "no_match")
            return self._done(question, lang, facts, [])
        scores = self.bm25.get_scores(content)
        ranked = sorted(zip(self.index.values(), scores, strict=True), key=lambda item: -item[1])
        top = ranked[0][1]
        # The products recommended must between them account for most of what was asked
        # ("蓝牙音箱": earbuds have 蓝牙, nothing has 音箱: no recommendation).
        chosen: list[_ProductIndex] = []
        for entry, score in ranked:
            if score <= 0 or math.isnan(score) or score < 0.5 * top or len(chosen) >= MAX_PRODUCTS:
                break
            if any(t in entry.vocabulary for t in content):
                chosen.append(entry)
        covered = sum(_weight(t) for t in content if any(t in entry.vocabulary for entry in chosen))
        if not chosen or covered * 3 < sum(_weight(t) for t in content) * 2:
            return self._abstain(question, lang, "no_match")
        facts = [self.book.recommend_fact(entry.product, state, now_ms) for entry in chosen]
        return self._done(question, lang, facts, [])

    # ---------------------------------------------------------------- results

    def _done(self, question: str, lang: Lang, facts: Sequence[Fact], missing: Sequence[str]) -> Answer:
        text = render(lang, facts, missing)
        sources = [source for fact in facts for source in fact.sources]
        if ungrounded(text, sources):  # Cannot happen with the templates; never state it anyway.
            return self._abstain(question, lang, "unknown")
        return Answer(question, lang, "answer", tuple(facts), text, missing=tuple(missing))

    def _abstain(self, question: str, lang: Lang, reason: str, missing: Sequence[str] = ()) -> Answer:
        text = "" if self.unknown == "silent" else ABSTAIN_TEXT[reason][lang]
        return Answer(question, lang, "abstain", (), text, reason=reason, missing=tuple(missing))


def _specificity(phrase: Phrase) -> float:
    """How telling a keyword is: "功率" names the thing asked, "多大" only asks."""
    return phrase.weight - (1.5 if re.match(r"^(多|几|how\b|what\b)", phrase.text) else 0.0)


def _weight(token: str) -> int:
    """Chinese words weigh their length ("熬夜党": 熬夜 counts 2, 党 1); Latin words 2."""
    return 2 if token.isascii() else len(token)


def _contains(sequence: tuple[str, ...], part: tuple[str, ...]) -> bool:
    n = len(part)
    return n > 0 and any(sequence[i : i + n] == part for i in range(len(sequence) - n + 1))


def _unique(facts: Iterable[Fact]) -> list[Fact]:
    seen: set[tuple[str, str | None]] = set()
    out: list[Fact] = []
    for fact in facts:
        if fact.key not in seen:
            seen.add(fact.key)
            out.append(fact)
    return out
