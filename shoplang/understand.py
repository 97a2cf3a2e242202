"""One reading of a viewer's comment, shared by the assistant and room insights.

`Understanding(catalogue).read(text)` answers: is it a question (requests and statements
that ask count), which products it names (names, partial names, brands, aliases, the
everyday noun for the product's kind in either language, typos and pinyin slips) or
points at ("这个", "this", "the one on screen"; "秒杀的" = the flash sale's product),
what it asks (price, stock, shipping, sizes, ... several at once), which variant, size,
colour or region it names, the quantities it gives (age, weight, height) and whether it
asks for a health claim. Which product a pointing question is about depends on the room
(pinned card, flash sale): `Reading.about(pinned, sale)`.

The catalogue is the room's (format v2, or just id -> names for insights without one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise

from pypinyin import lazy_pinyin

from barrage.shoplang import lang as L
from barrage.shoplang import units
from barrage.shoplang.catalogue import Catalogue, Product

MIN_CJK_TERM = 2


@dataclass(frozen=True)
class Term:
    text: str
    product_id: str
    weight: float
    start_only: bool = False
    """One Chinese character ("米"): counts only at the start of the question."""


@dataclass
class Reading:
    original: str
    text: str
    lang: str
    question: bool
    named: tuple[str, ...]
    """Products named in the text, in order of first mention."""
    pointed: bool
    """"这个", "this": the product on screen."""
    sale: bool
    """"秒杀", "flash deal": the flash sale's product."""
    intents: tuple[str, ...]
    concepts: tuple[str, ...]
    medical: bool
    colours: tuple[str, ...]
    regions: tuple[str, ...]
    quantities: tuple[tuple[str, float], ...]
    variants: dict[str, str] = field(default_factory=dict)
    """Product id -> the variant id named."""
    sizes: tuple[str, ...] = ()
    unknown_sizes: tuple[str, ...] = ()
    residue: str = ""
    """The text with product names, question words and particles taken out."""
    strength: dict[str, float] = field(default_factory=dict)
    """Product id -> how strongly it is named (a shared word counts half)."""
    bigger: bool | None = None
    """"the bigger one" (True) / "the small one" (False)."""
    name_spans: tuple[tuple[int, int], ...] = ()
    """Where product names are in `text`."""
    other_kind: bool = False
    """It names a kind of product ("平板", "durian") that none of the room's products is."""
    measure: tuple[str, ...] = ()
    """A dimension asked by its adjective ("多宽" -> ("宽", "width")): the spec of that dimension."""
    packs: tuple[tuple[str, float], ...] = ()
    """Pack sizes named ("十斤装" = ("weight", 5.0)), whether or not a variant is that size."""
    also_named: tuple[str, ...] = ()
    """Products the words that name `named` also name, less strongly ("人脸锁" of two face locks)."""
    variant_words: tuple[str, ...] = ()
    """Products a word of whose variants the text says, one variant named or not ("钢带")."""

    @property
    def topic_key(self) -> str:
        """What is asked, as one key: the first intent or kind of spec ("" if none is known)."""
        if self.intents:
            return self.intents[0]
        if self.concepts:
            return self.concepts[0]
        if self.colours:
            return "colours"  # "有粉色的吗" and "in pink?" ask the same
        if self.regions:
            return "region"  # "发新疆吗" and "新疆能发货不"
        return "sizes" if self.sizes or self.unknown_sizes else ""

    @property
    def topic_words(self) -> frozenset[str]:
        """The leftover words (no product names, question words or particles) as Chinese
        character pairs and English words: near-duplicates share most of them."""
        out: set[str] = set()
        for chunk in self.residue.split():
            if L.CJK.search(chunk):
                out |= {chunk[i : i + 2] for i in range(len(chunk) - 1)}
            elif chunk not in L.STOP_EN:
                out.add(L.singular(chunk))
        return frozenset(out)

    def named_positions(self) -> set[int]:
        """Where the text says a product's name (spans may repeat or overlap: one nickname can
        name two products)."""
        return {i for start, end in self.name_spans for i in range(start, end)}

    def without_names(self) -> str:
        """The text with every product name said blanked out."""
        named = self.named_positions()
        return "".join(" " if i in named else c for i, c in enumerate(self.text))

    def says(self, word: str) -> bool:
        """The text holds the word other than inside a longer product name ("保温壶" does
        not say 保温; "降噪" alone may be both a name and what is asked)."""
        n = len(word)
        start = self.text.find(word)
        while start >= 0:
            if not any(s <= start and start + n <= e and e - s > n for s, e in self.name_spans):
                return True
            start = self.text.find(word, start + 1)
        return False

    def says_apart(self, word: str) -> bool:
        """The text holds the word outside every product name: "防晒" in "防晒要卸妆吗" names the
        sunscreen, it does not ask about its 防晒指数."""
        n = len(word)
        start = self.text.find(word)
        while start >= 0:
            if not any(s < start + n and start < e for s, e in self.name_spans):
                return True
            start = self.text.find(word, start + 1)
        return False

    def about(self, pinned: str | None, sale: str | None, ambiguous: Mapping[str, tuple[str, ...]] = {}) -> list[str]:
        """The products the question is about, given what is on screen."""
        if (
            self.named
            and self.pointed
            and pinned
            and pinned not in self.named
            and self.name_spans
            and all(_PREDICATE.search(self.text[:start] + self.text[start : start + 1]) for start, _ in self.name_spans)
        ):
            return [pinned]  # "这个是纯棉的吗": what follows "this is" says what it is, not which product
        if self.named:
            top = max(self.strength.values(), default=0.0)
            tied = [pid for pid in self.named if self.strength.get(pid, 0.0) >= top - 1e-9]
            compared = len(set(self.name_spans)) > 1 and _COMPARED.search(self.text)
            for screen in (pinned, sale):
                if len(tied) > 1 and screen in tied and not compared:
                    return [screen]  # a word several products share: the one on screen
            if pinned in self.also_named and len(set(self.name_spans)) == 1 and not compared:
                return [pinned]  # "人脸锁多少钱" with one of two face locks on screen: that one
            return list(self.named)
        if self.sale and sale:
            return [sale]  # "flash sale how many left and when does it end": the sale's, whatever "it" is
        if self.pointed and pinned:
            return [pinned]  # "这个华为能快充吗": this one, not the screen film's Huawei version
        if self.variants:
            for screen in (pinned, sale):
                if screen is not None and screen not in self.variants and screen in self.variant_words:
                    return [screen]  # "钢带太长了": the watch on screen has steel bracelets too
            return list(self.variants)  # "茶轴多少钱": the product that has that variant
        if pinned:
            return [pinned]
        return [sale] if sale else []


_ASKS_IF_THERE = re.compile(r"有.{0,10}(吗|么|没|不)|有没有|do you have|is there|any .{0,12}(size|version|one)")
"""Whether there is one of a kind ("有200ml的吗", "do you have a 200ml one")."""
_UNMARKED = frozenset({"about", "audience", "colours", "materials"})
"""Parts of a listing whose numbers say nothing of which product it is (who it suits, its story)."""

_PREDICATE = re.compile(r"(这个|这款|这件|这套|这双|这条|\bthis|\bit)\s*(是|is\b)\s*\S?$")
"""A name right after "这个是" / "this is" (or one that starts with 是)."""


def _shade_of(asked: str, listed: str) -> bool:
    # A basic colour ("白色", "red") names none: with the product on screen in other colours it
    # asks about that one ("有白色框的吗"), and other products' 米白 or 酒红 are no answer either.
    if (len(asked) == 1 and L.CJK.match(asked)) or asked in L.COLOURS_EN:
        return False
    return bool(asked) and asked in listed


@dataclass(frozen=True)
class ProductNames:
    """What a product is called: all a reader needs when there is no full catalogue
    (room insights get this from the room's `catalogue_registered` event)."""

    product_id: str
    names: tuple[str, ...]
    """Full names in each language first, then aliases and short forms."""
    categories: tuple[str, ...] = ()
    """Everyday nouns for its kind ("芒果", "mango")."""
    topics: tuple[tuple[str, str], ...] = ()
    """(key, text) of each part of its listing: a spec's name and value, its materials, ..."""


def names_of(catalogue: Catalogue) -> list[ProductNames]:
    out = []
    for p in catalogue.products:
        names = (p.name.zh, p.name.en, *([p.brand] if p.brand else []), *p.aliases)
        kinds = (p.category.zh, p.category.en)
        topics = [(s.key, " ".join([s.name.zh, s.name.en, s.value.zh, s.value.en, *s.keywords])) for s in p.specs]
        if p.sizes or p.size_chart is not None:
            chart = p.size_chart
            columns = " ".join(f"{c.zh} {c.en}" for c in chart.columns) if chart is not None else ""
            sizes = [*p.sizes, *(chart.rows if chart is not None else ())]
            topics.append(("sizes", " ".join(dict.fromkeys(sizes)) + " " + columns))
        if p.colours:
            topics.append(("colours", "|".join(f"{c.zh}|{c.en}" for c in p.colours)))
        if p.materials:
            topics.append(("materials", " ".join(f"{m.zh} {m.en}" for m in p.materials)))
        if p.suitable_for or p.not_for:
            topics.append(("audience", " ".join(f"{a.who.zh} {a.who.en}" for a in (*p.suitable_for, *p.not_for))))
        if p.variants:
            topics.append(("variants", " ".join(f"{v.name.zh} {v.name.en}" for v in p.variants)))
        if p.description is not None:
            topics.append(("about", f"{p.description.zh} {p.description.en}"))
        for entry in p.faq:  # "拼图缺片怎么办": the listing's own question about missing pieces
            words = [entry.question.zh, entry.question.en, *entry.keywords, entry.answer.zh, entry.answer.en]
            topics.append((f"faq-{entry.id}", " ".join(words)))
        out.append(
            ProductNames(p.id, tuple(dict.fromkeys(names)), tuple(dict.fromkeys(kinds)), tuple(t[:2] for t in topics))
        )
    return out


class Understanding:
    def __init__(
        self,
        catalogue: Catalogue | None = None,
        names: Mapping[str, Iterable[str]] | None = None,
        products: Iterable[ProductNames] = (),
    ) -> None:
        self.catalogue = catalogue
        raw: dict[str, list[tuple[str, float]]] = {}
        listed = [*(names_of(catalogue) if catalogue is not None else []), *products]
        self._topics: dict[str, list[tuple[str, str]]] = {}
        self._listings: dict[str, str] = {}
        # Per product, the amounts, sides and codes its names, specs, sizes and versions give
        # ("58g", "20L", "200×230cm", "M8"): a question that gives one means that listing.
        self._marks: dict[str, frozenset[tuple[str, str]]] = {}
        for entry in listed:
            raw.setdefault(entry.product_id, []).extend(_product_terms(entry))
            self._topics[entry.product_id] = [(key, L.normalize(text)) for key, text in entry.topics]
            said = [*entry.names, *(text for key, text in self._topics[entry.product_id] if key not in _UNMARKED)]
            self._marks[entry.product_id] = units.marks(" ".join(said))
        for p in catalogue.products if catalogue is not None else ():
            if p.size_chart is not None:  # ("M: 450 / 400 / 4 / 45×40": the mouse pad's M)
                rows = " ".join(value for row in p.size_chart.rows.values() for value in row)
                self._marks[p.id] = self._marks.get(p.id, frozenset()) | units.marks(rows)
        # The counting word of each product's variants ("1段 / 2段 / 3段" -> 段): "喝几段" asks
        # which variant of the one product counted that way. Measures of people and of
        # amounts (斤, 岁, 码, 毫升 ...) are not: many products and viewers use them.
        counting: dict[str, set[str]] = {}
        for product_id, topics in self._topics.items():
            for key, text in topics:
                if key == "variants":
                    for unit in re.findall(r"\d\s*([\u4e00-\u9fff])", text):
                        if unit not in "斤克升米岁月号码寸个件包盒瓶袋片只条支套毫公厘千装":
                            counting.setdefault(unit, set()).add(product_id)
        self._variant_units = {unit: next(iter(pids)) for unit, pids in counting.items() if len(pids) == 1}
        for entry in listed:
            # Whole pinyin, typed for a name or kind ("xiangxun" 香薰): long enough not to be a word.
            for name in (*entry.names, *entry.categories):
                if 2 <= len(name) <= 4 and all(L.CJK.match(ch) for ch in name):
                    spelled = "".join(lazy_pinyin(name))
                    if len(spelled) >= 5 and spelled.isascii():
                        raw[entry.product_id].append((spelled, 2.0))
                    head = "".join(lazy_pinyin(name[:-1]))  # "falang锅" for 珐琅锅
                    if len(name) >= 3 and len(head) >= 5 and head.isascii():
                        raw[entry.product_id].append((head + name[-1], 2.5))
        for product_id, extra in (names or {}).items():
            raw.setdefault(product_id, []).extend(_name_terms(list(extra)))
        # Pinyin initials, the way viewers type a name fast ("mpj" 猫爬架, "kh" 口红, "xbx" 小白鞋);
        # read only beside Chinese, where such shorthand is typed.
        self._initials: set[str] = set()
        spelled_by: dict[str, set[str]] = {}
        for product_id, terms in raw.items():
            zh_terms = {t for t, _ in terms if 2 <= len(t) <= 4 and all(L.CJK.match(ch) for ch in t)}
            for letters in {initials(t) for t in zh_terms} - _NOT_INITIALS:
                terms.append((letters, 1.2))
                self._initials.add(letters)
                spelled_by.setdefault(letters, set()).add(product_id)

        self._shop_words: set[str] = set()
        own = {entry.product_id: {L.normalize(n) for n in (*entry.names, *entry.categories)} for entry in listed}
        self.terms = _dedupe(raw, self._shop_words, own)
        # Initials that many products' names share ("tg": 推杆, 铁杆, 推杆练习毯) name none of
        # them alone, but they still say which products the viewer means: not the one on screen.
        self._initials_of_many = {letters: pids for letters, pids in spelled_by.items() if letters in self._shop_words}
        self._shop_holders = {
            word: {pid for pid, terms in raw.items() if any(t == word for t, _ in terms)}
            for word in self._shop_words
            if len(word) >= 2 and L.CJK.search(word)
        }
        # English words of several products' names ("real hair bob": real and hair qualify the bob).
        for entry in listed:
            for word in _content_en(" ".join((*entry.names, *entry.categories))):
                self._shop_holders.setdefault(word, set()).add(entry.product_id)
        # An amount with its unit that one product's name gives ("100W折叠太阳能板").
        amounts: dict[str, set[str]] = {}
        for entry in listed:
            for name in entry.names:
                for amount in _AMOUNT_IN_NAME.findall(L.normalize(name)):
                    amounts.setdefault(amount, set()).add(entry.product_id)
        self._amount_names = {amount: next(iter(pids)) for amount, pids in amounts.items() if len(pids) == 1}
        # A word many names hold, by the products whose name or kind ends with it ("相机": the
        # 卡片相机, not the 相机电池 or the 相机清洁套装, where it only qualifies the head noun).
        self._ends_with: dict[str, set[str]] = {}
        for word in self._shop_words:
            if len(word) >= 2 and L.CJK.match(word[-1]):
                for pid, called in own.items():
                    if any(re.sub(r"[(（【\[].*?[)）】\]]", "", n).endswith(word) for n in called):
                        self._ends_with.setdefault(word, set()).add(pid)
        self._own = own
        # Link numbers said alone that no listing names so itself ("5号" of "5号链接"): read
        # only before what is asked (_link_number_pattern).
        self._link_numbers = {t.text for t in self.terms if re.fullmatch(r"\d+号", t.text)} - {
            L.normalize(n) for called in own.values() for n in called
        }
        self._term_owners: dict[str, set[str]] = {}
        for term in self.terms:
            if term.text.isascii():
                self._term_owners.setdefault(term.text, set()).add(term.product_id)
        self._head_owners: dict[str, set[str]] = {}
        for pid, called in own.items():
            for n in called:
                bare = re.sub(r"[(（【\[].*?[)）】\]]", "", n)
                if bare and L.CJK.match(bare[-1]):
                    self._head_owners.setdefault(bare[-1], set()).add(pid)
        self._heads = {
            bare[-1]
            for e in listed
            for n in (*e.categories, *e.names)
            if (bare := re.sub(r"[(（【\[].*?[)）】\]]", "", n)) and L.CJK.match(bare[-1])
            and (n in e.categories or n in e.names[:2] or 2 <= len(bare) <= 4)
        } - set("子品装套盒包件号具")  # fmt: skip
        self._variants = [(p.id, _variant_keys(p)) for p in catalogue.products if p.variants] if catalogue else []
        # Per product, each variant's model numbers ("2000" of SK2000型): read once, not per question.
        self._model_numbers = [
            (pid, [{n for k in ks for n in re.findall(r"\d{3,}", k)} for _, ks in keys]) for pid, keys in self._variants
        ]
        self._known = {term.text for term in self.terms}
        # Kinds of product the room does not sell, as viewers name them ("平板", "durian"): every
        # synonym group none of whose names is the shop's own ("shoes" in a shoe shop is no other).
        self._other_kinds = [
            L.normalize(kind)
            for group in L.KIND_SYNONYMS
            if not any(L.normalize(k) in self._known or L.normalize(k) in self._shop_words for k in group)
            for kind in group
            if len(kind) >= 2
        ]
        # Each product's versions by name, for the products a version's word also names ("钢带").
        # Each version's whole Chinese name, if only one product has it ("6色全套" of the gel
        # polish): said whole, it names that product over another's shorter alias ("全套").
        titles: dict[str, set[str]] = {}
        for p in catalogue.products if catalogue is not None else ():
            for v in p.variants:
                if len(title := L.normalize(v.name.zh)) >= 3 and L.CJK.search(title):
                    titles.setdefault(title, set()).add(p.id)
        self._version_titles = {title: next(iter(pids)) for title, pids in titles.items() if len(pids) == 1}
        # The start of each version's name before its qualifiers ("全遮光" of 全遮光PVC涂层)
        self._version_starts = {
            p.id: frozenset(
                m.group(0) for v in p.variants if (m := re.match(r"[\u4e00-\u9fff]+", L.normalize(v.name.zh)))
            )
            for p in (catalogue.products if catalogue is not None else ())
        }
        self._variant_names = {
            pid: " ".join(text for key, text in topics if key == "variants") for pid, topics in self._topics.items()
        }
        # Each listed colour's names and the products that come in it ("豆沙色" is the lipstick's).
        self._colour_owners: dict[str, set[str]] = {}
        for product_id, topics in self._topics.items():
            for key, text in topics:
                if key == "colours":
                    for name in text.split("|"):
                        self._colour_owners.setdefault(name.strip(), set()).add(product_id)
        self._colour_names = tuple(self._colour_owners)
        self._by_first: dict[str, list[Term]] = {}
        for term in self.terms:
            self._by_first.setdefault(term.text[0], []).append(term)
        self._pinyin: dict[str, list[tuple[Term, tuple[str, ...]]]] = {}
        """First syllable -> the Chinese terms starting with it, with their toneless pinyin."""
        for term in self.terms:
            if L.CJK.search(term.text) and len(term.text) >= 2:
                sounds = _sounds(term.text)
                self._pinyin.setdefault(sounds[0], []).append((term, sounds))

    def own_words(self, reading: Reading, product_id: str) -> list[str]:
        """What the question says besides the product's own names, pointing, question words and
        particles: Chinese character pairs and English words ("小方块那个要换刷头吗" of the silicone
        brush called 小方块: 要换, 换刷, 刷头) — what a passage of its listing must hold to answer it."""
        text = reading.text
        for name in sorted(self._own.get(product_id, ()), key=len, reverse=True):
            if len(name) >= 2:
                text = text.replace(name, " ")
        out: list[str] = []
        # Only question words go: "要换" is what a passage must hold, not a cue to drop.
        for chunk in _residue(text, _question_words()).split():
            if L.CJK.search(chunk):
                out += _pairs(chunk)
            elif len(chunk) >= 3 and not chunk.isdigit():
                out.append(L.singular(chunk))
        return list(dict.fromkeys(out))

    def listing_text(self, product_id: str) -> str:
        """Everything the product's listing says, normalised: for finding a need's words in it."""
        text = self._listings.get(product_id)
        if text is None:
            text = self._listings[product_id] = " ".join(t for _, t in self._topics.get(product_id, ()))
        return text

    def _listings_holding(self, word: str) -> int:
        """How many listings hold the word: only words few hold tell products apart."""
        return sum(1 for pid in self._topics if word in self.listing_text(pid))

    def holders_of_marks(self, reading: Reading, first: str | None = None) -> set[str]:
        """The products whose listing gives an amount, sides or a code the question gives
        ("那个58g的鼠标", "20升那个包", "45乘40厘米的是哪个码"); the viewer's own weight or
        height ("175 70公斤穿什么码") and an amount to convert ("1斤是多少g") are no such mark.
        None when the question asks whether the product on screen (`first`) comes in another
        amount of a measure it lists ("有200ml大瓶的吗" of a 100 ml perfume: not the 200 ml
        diffuser)."""
        if units.conversion(reading.text) is not None:
            return set()
        own = {kind for kind, _ in reading.quantities}
        mine = {"mass"} if "weight" in own else set()
        mine |= {"length"} if own & {"height", "foot", "shoe"} else set()
        asked = {m for m in units.marks(reading.text) if m[0] not in mine}
        if first is not None:
            # the amount inside "有…吗" is what is asked for ("那个58g的鼠标有蓝牙吗" names a mouse)
            wanted = {m for there in _ASKS_IF_THERE.finditer(reading.text) for m in units.marks(there.group(0))}
            measures = {kind for kind, _ in self._marks.get(first, ())}
            if any(kind in measures for kind, _ in wanted & asked):
                return set()
        return {pid for pid, held in self._marks.items() if asked & held}

    def head_owner(self, reading: Reading, first: str | None) -> str | None:
        """The one product a word many names hold is the head noun of ("相机能带去潜水吗",
        "这个相机是ccd吗" in a camera shop: the compact camera), when the question names nothing
        else and the first product on screen is no such thing itself."""
        owners = self.head_owners(reading, first)
        return next(iter(owners)) if len(owners) == 1 else None

    def head_owners(self, reading: Reading, first: str | None) -> set[str]:
        """Every product such a word is the head noun of ("拼图拍了送啥": both jigsaws)."""
        if reading.named or reading.variants:
            return set()
        heads = {
            pid
            for word, pids in self._ends_with.items()
            if reading.says(word) and not (first is not None and any(word in n for n in self._own.get(first, ())))
            for pid in pids
        }
        return heads | {
            pid
            for letters, pids in self._initials_of_many.items()
            if first not in pids
            and L.CJK.search(reading.text)  # (typed beside Chinese, as initials are read)
            and re.search(rf"(?<![a-z0-9]){letters}(?![a-z0-9])", reading.text)
            for pid in pids
        }

    def owner_of_words(self, reading: Reading, on_screen: list[str]) -> str | None:
        """The one product whose listing holds the words of a question that names none, when
        the first product on screen does not ("耳针啥材质" while a necklace is pinned: the
        earrings list their 耳针); None when the first on screen does, or no one product does."""
        if reading.named or reading.pointed or reading.sale or reading.variants:
            return None
        words = content_words(reading.residue)
        # A rare unit the viewer gives ("五磅是多少斤"): the product whose listing counts in it.
        spelled = L.with_digits(reading.text) if not reading.quantities else ""  # ("55公斤" is the viewer's own weight)
        words += [u for row in L.units_given(spelled) for u in row[:1] if len(u) > 1 or L.CJK.match(u)]
        words += [m.group(0).replace(" ", "") for m in re.finditer(r"\d+(?:\.\d+)?\s*[\u4e00-\u9fff]", spelled)
                  if L.units_given(m.group(0))]  # fmt: skip
        if not words:
            return None

        # Only words few listings hold tell products apart ("体重" is in the scale's, the rope's
        # and the treadmill's; "耳针" only in the earrings').
        words = [w for w in words if self._listings_holding(w) <= 2]

        def hits(product_id: str) -> int:
            listing = self.listing_text(product_id)
            return sum(1 for w in words if w in listing)

        scores = {pid: hits(pid) for pid in self._topics}
        top = max(scores.values(), default=0)
        leaders = [pid for pid, n in scores.items() if n == top]
        if top == 0 or (on_screen and on_screen[0] in leaders):
            return None  # nothing holds them, or the product on screen does as well as any
        if len(leaders) == 1:
            return leaders[0]
        shown = [pid for pid in leaders if pid in on_screen]
        return shown[0] if len(shown) == 1 else None  # "无耳洞有耳夹款吗": the earrings on sale

    def screen_instead(self, reading: Reading, on_screen: list[str]) -> str | None:
        """The product on screen a question is about when it names another only by a word of
        its name that is no head noun ("刹车是碟刹还是v刹" with a folding bike pinned names the
        刹车灯 tail light): the question's other words are in the listing on screen, not in the
        named one's."""
        if len(reading.named) != 1 or reading.variants or max(reading.strength.values(), default=0) >= 2:
            return None
        named = reading.named[0]
        said = [L.normalize(reading.text[a:b]) for a, b in reading.name_spans]
        if named in on_screen or not all(any(w in n for n in self._own[named]) for w in said):
            return None  # (named by a typo, initials or pinyin: "fbx偏大吗" is the 帆布鞋's)
        own = self.listing_text(named) + " ".join(self._own[named])
        words = [w for w in content_words(reading.residue) if self._listings_holding(w) <= 2]
        if not words or any(w in own for w in words):
            return None
        holding = [pid for pid in on_screen if any(w in self.listing_text(pid) for w in words)]
        return holding[0] if len(holding) == 1 else None

    def topic_for(self, reading: Reading, product_id: str) -> str:
        """Which part of the product's listing the question's leftover words are about
        ("刀能进洗碗机吗" and "可以用洗碗机洗吗" -> the cleaning spec), "" if none."""
        scored = self._topic_scores(reading, product_id)
        return scored[0][0] if scored else ""

    def topics_for(self, reading: Reading, product_id: str) -> list[str]:
        """Every part of the listing a statement talks about: a host's "眼唇都能卸，遇水乳化"
        answers both the eyes-and-lips and the emulsifying questions."""
        return [key for key, _ in self._topic_scores(reading, product_id)]

    def _topic_scores(self, reading: Reading, product_id: str) -> list[tuple[str, float]]:
        chunks = [c for c in reading.residue.split() if len(c) >= 2]
        # A second name in the question may be what is asked of the first ("猫粮是无谷的吗": 无谷
        # is part of the cat food's name and its grain spec; "洗面奶能卸妆吗": 卸妆 names the remover).
        spans = sorted(reading.name_spans)
        spans = spans[1:] if len(spans) > 1 or reading.intents or reading.concepts else spans
        if not chunks:
            chunks = [reading.text[s:e] for s, e in spans if e - s >= (2 if L.CJK.search(reading.text[s:e]) else 3)]
        # Who may use it is asked with the group's own words: a tie goes to the audiences
        # ("冻干猫狗都能吃吗": 猫狗 is in the feeding spec too).
        topics = self._topics.get(product_id, ())
        if "suitable" in reading.intents:
            topics = sorted(topics, key=lambda t: t[0] != "audience")
        scored: list[tuple[str, float]] = []
        for key, text in topics:
            score = 0.0
            for chunk in chunks:
                if L.CJK.search(chunk):
                    pairs = [chunk[i : i + 2] for i in range(len(chunk) - 1)]
                    score += sum(1 for pair in pairs if pair in text) / len(pairs)
                elif len(chunk) >= 3 and L.cue_matches(chunk, text):
                    score += 1
            if score >= 0.3:
                scored.append((key, score))
        scored.sort(key=lambda ks: -ks[1])  # stable: the first of equals stays first
        return scored

    def topic_of_kind(self, reading: Reading, product_id: str) -> str:
        """The part of the product's listing that the kind of thing asked is about: "下大雨会
        不会湿透" and "is it waterproof" (waterproofing) -> the spec "防水指数"; "背包下雨怎么
        办" -> the backpack's rain cover. "" when no part of the listing is of that kind."""
        topics = [(k, t) for k, t in self._topics.get(product_id, ()) if k not in _LISTS]
        given = {kind for kind, _ in reading.quantities}
        if reading.measure:
            # "线有多长": the spec named by that dimension (线长), not another size (底座宽度).
            measured = [k for k, t in topics if reading.measure[0] in t.split(" ")[0]]
            if len(measured) == 1:
                return measured[0]
        said_best, said_n = "", 0
        for concept in reading.concepts:
            if (concept, "weight" in given or "height" in given) in (("weight", True), ("dimensions", True)):
                continue  # "180 80kg选几码" gives the viewer's weight, it does not ask the product's
            cues = tuple(L.CONCEPTS[concept])
            said = [cue for cue in cues if not cue.startswith("re:") and L.cue_matches(cue, reading.text)]
            for key, text in topics:
                # The question's own word in a spec's name ("功率多大" / 功率) beats the kind alone.
                n = sum(1 for cue in said if L.cue_matches(cue, text.split(" ")[0]))
                if n > said_n:
                    said_best, said_n = key, n
        if said_best:
            return said_best
        for concept in reading.concepts:
            if (concept, "weight" in given or "height" in given) in (("weight", True), ("dimensions", True)):
                continue
            cues = tuple(L.CONCEPTS[concept])
            best, best_n = "", 0
            for key, text in topics:
                n = sum(1 for cue in cues if L.cue_matches(cue, text))
                if n > best_n:
                    best, best_n = key, n
            if best:
                return best
        return ""

    def lists(self, product_id: str, key: str) -> bool:
        """The product's listing has that part ("sizes": sizes or a size chart)."""
        return any(k == key for k, _ in self._topics.get(product_id, ()))

    def substance_asked(self, reading: Reading, product_id: str) -> bool:
        """ "是纯羊绒吗", "真丝的吗", "鸭绒还是鹅绒", "百分百羊绒吗": a substance asked about. A
        Chinese material's last character is the substance (羊绒 / 山羊绒, 真丝 / 桑蚕丝, 纯肉 /
        鸡胸肉), so the product's listed materials holding it answer, whatever they call it;
        what qualifies it must be listed too ("意大利皮" is not "头层牛皮")."""
        listed = next((text for key, text in self._topics.get(product_id, ()) if key == "materials"), "")
        if not listed or reading.concepts:
            return False  # "防水吗" asks a kind of spec (waterproofing), not a substance
        named = reading.named_positions()
        for match in _SUBSTANCE_ASKED.finditer(reading.text):
            for group, found in enumerate(match.groups(), start=1):
                if not found:
                    continue
                x = found.rsplit("是", 1)[-1]
                start = match.start(group) + len(found) - len(x)
                if len(x) < 2 or not L.CJK.match(x[-1]) or x[-1] in _NOT_SUBSTANCE or x[-1] not in listed:
                    continue
                # Words before it that name the product ("方巾桑蚕丝吗") are no qualifier.
                cut = 0
                while cut < len(x) - 1 and start + cut in named:
                    cut += 1
                if all(ch in listed for ch in x[cut:-1] if ch not in _PURE):
                    return True
        return False

    # ------------------------------------------------------------------ reading

    def read(self, original: str) -> Reading:
        # "the one the host is holding" points at the product on screen, the way "this one" does
        text = _PINNED_THING.sub("this", _HOST_HOLDS.sub("this one", L.normalize(original)))
        spans = self._find(text)
        if len({pid for _, _, pid, _ in spans}) > 1:
            # "卷帘全遮光的多少": 全遮光 is a version of the roller blind named, not the
            # full-blackout curtain whose name holds it too
            spans = [
                (a, b, pid, w)
                for a, b, pid, w in spans
                if not any(
                    other != pid and len(text[a:b]) >= 2 and text[a:b] in self._version_starts.get(other, ())
                    for _, _, other, _ in spans
                )
            ] or spans
        spans = self._narrowed(text, spans) or self._by_amount_named(text)
        strength: dict[str, float] = {}
        for _, _, pid, weight in spans:
            strength[pid] = max(strength.get(pid, 0.0), weight)
        strongest = max(strength.values(), default=0.0)
        if strongest < 1.0 and all(L.CJK.search(text[a:b]) for a, b, _, _ in spans):
            spans = []  # a part's name two products share ("镜片"): no product named
        # (two products compared are both kept, however weakly the second is named)
        keep = 0.3 if _COMPARED.search(text) else 0.6
        before = spans
        spans = [s for s in spans if strength[s[2]] >= keep * strongest]
        # the products the same words name less strongly ("人脸锁": the other face lock's words too)
        also = {pid for a, b, pid, _ in before if any((a, b) == (x, y) for x, y, _, _ in spans)}
        # One word, two products: the one it names more strongly ("piano": the digital piano's
        # category, not the "thumb piano" kalimba)
        best_at: dict[tuple[int, int], float] = {}
        for a, b, _, w in spans:
            best_at[(a, b)] = max(best_at.get((a, b), 0.0), w)
        spans = [s for s in spans if s[3] >= best_at[(s[0], s[1])]]
        if not _COMPARED.search(text):
            # "6号那个脱毛仪": of the products a word names, the one the text names firmly elsewhere
            shared = {(a, b) for a, b, _, _ in spans if sum(1 for s in spans if (s[0], s[1]) == (a, b)) > 1}
            for place in shared:
                elsewhere = {pid for a, b, pid, w in spans if (a, b) != place and w >= 3.0}
                if elsewhere & {pid for a, b, pid, _ in spans if (a, b) == place}:
                    spans = [s for s in spans if (s[0], s[1]) != place or s[2] in elsewhere]
        # ("这个能充苹果电脑吗": 苹果 is what it charges; "这个胸背" names the harness it points at)
        partial = all(
            w < 3.0 and L.CJK.search(text[a:b]) and not _AFTER_POINTING.search(text[:a]) for a, b, _, w in spans
        )
        after_de = all(b - a == 1 and L.CJK.match(text[a]) and text[a - 1 : a] == "的" for a, b, _, _ in spans)
        if spans and (partial or after_de) and L.any_cue((*L.DEIXIS_ZH, *L.DEIXIS_EN), text):
            spans = []  # "这个有黑色的盆吗": this one's pot, not the planter called 盆 ("那把刀" is the knife)
        named = _order([(a, b, c) for a, b, c, _ in spans])
        if not named and self._variant_units:
            for match in re.finditer(r"(?:几|哪|什么|啥)([\u4e00-\u9fff])", text):
                unit = match.group(1)
                owner = self._variant_units.get(unit)
                if (amount := re.search(rf"(?<![\d.])(\d+)\s*{unit}", text)) is not None:
                    # "50颗是几种口味": the product whose name holds 50颗, not the one counted in 颗
                    holders = [
                        pid
                        for pid, names in self._own.items()
                        if any(re.search(rf"(?<![\d.]){amount.group(1)}\s*{unit}", n) for n in names)
                    ]
                    owner = holders[0] if len(holders) == 1 else owner
                if owner is not None:
                    named, strength = [owner], {owner: 1.0}
                    break
        for title, owner in self._version_titles.items():
            at = text.find(title)
            if at >= 0 and owner not in named:
                inside = [(a, b, pid) for a, b, pid, _ in spans if at <= a and b <= at + len(title)]
                if inside and len(inside) == len(spans) and all(pid != owner for _, _, pid in inside):
                    named, strength = [owner], {owner: 1.0}
                    spans = [(at, at + len(title), owner, 1.0)]
        masked = text
        # Each named stretch once, overlapping names merged ("链子": 项链 and 手链; 每日坚果 / 坚果里).
        for start, end in reversed(_merged([(a, b) for a, b, _, _ in spans])):
            masked = masked[:start] + " " + masked[end:]
        intents = tuple(L.intents_of(masked))
        concepts = tuple(L.concepts_of(masked))
        if not intents and not concepts and L.CJK.search(masked):
            intents, concepts = _asked_by_sound(masked)  # "包油吗" (包邮), "运废多少" (运费)
        if not intents and not concepts and re.search(r"[a-z]{5,}", masked):
            intents, concepts = _asked_by_spelling(masked)  # "shiping", "waterprof"
        measure = _measure_asked(masked)
        if measure and re.search(r"how long (is|are)\b", masked):
            # "how long is the cord": a length, not the time left or the delivery time.
            intents = tuple(i for i in intents if i not in ("time_left", "delivery_time"))
            concepts = tuple(dict.fromkeys(("dimensions", *concepts)))
        if (
            "recommend" in intents
            and "gift" in intents
            and (re.search(r"推荐|recommend|suggest|ideas?\b", masked) or L.budget(masked) or L.recipients(masked))
        ):
            intents = tuple(i for i in intents if i != "gift")  # "birthday gift有啥推荐": not a free gift
        if "shipping" in intents and "region" not in intents and L.regions_named(masked):
            intents = tuple("region" if i == "shipping" else i for i in intents)  # "寄台湾可以吗"
        if (
            "battery" in concepts
            and re.search(r"发货|到货|发出|快递|物流|ship|deliver|arriv", masked)
            and not re.search(r"续航|电池|充电|电量|battery|charg", masked)
        ):
            concepts = tuple(c for c in concepts if c != "battery")  # "几天能发货": the dispatch time
        if "battery" in concepts and not L.any_cue(L.SALE_WORDS, masked):
            # "how long does the battery last", "电池能玩多久": the product's run time
            intents = tuple(i for i in intents if i not in ("time_left", "delivery_time"))
        if "warranty" in intents and "returns" in intents and not _RETURN_WORDS.search(masked):
            intents = tuple(i for i in intents if i != "returns")  # "轮子坏了保修吗": a repair, not a return
        if "price" in intents and "fee" in intents and _FEE_HOW_MUCH.search(masked):
            intents = tuple(i for i in intents if i != "price")  # "运费多少钱": the shipping fee, not the price
        if "price" in intents and _HOW_MUCH_OF.search(text) and not re.search(r"price|cost|价", text):
            intents = tuple(i for i in intents if i != "price")  # "how much protein per scoop": an amount
        bare_how_much = not intents and not concepts and bool(_BARE_HOW_MUCH.search(text))
        if bare_how_much:
            intents = ("price",)  # "风衣多少", "吹风机现在多少": how much, with nothing else asked
        reading = Reading(
            original=original,
            text=text,
            lang=L.language(original),
            question=False,
            named=tuple(named),
            pointed=L.any_cue((*L.DEIXIS_ZH, *L.DEIXIS_EN), masked),
            # "一个人能抢几个", "还剩几分钟" with nothing named: only the flash sale has a limit and an end
            sale=L.any_cue(L.SALE_WORDS, masked)
            or _says_initials(L.SALE_WORDS, masked)
            or (not named and "time_left" in intents)
            or (not named and "limit" in intents and bool(re.search(r"抢|限购|秒", masked))),
            intents=intents,
            concepts=concepts,
            medical=L.is_medical(masked),  # a product's name ("止咳枇杷膏") is not a claim
            colours=tuple(L.colours_named(masked, self._colour_names))
            or _colour_before_name(text, spans)
            or _colour_by_sound(masked, self._colour_names),
            regions=tuple(L.regions_named(masked)),
            quantities=tuple(L.quantities(text)),
            residue=_residue(masked),
            name_spans=tuple((a, b) for a, b, _, _ in spans),
            strength={pid: w for pid, w in strength.items() if pid in named},
            also_named=tuple(sorted(also - set(named))),
            measure=measure,
        )
        reading.bigger = (
            True
            if re.search(r"(?<!多)大的|大箱|大号|大包|大瓶|bigger|larger|big one|large one", text)
            else False
            if re.search(r"小的|小箱|小号|小瓶|smaller|small one", text)
            else None
        )
        self._variants_and_sizes(reading, masked)
        tries_on = (
            reading.colours
            or reading.sizes
            or {"colours", "sizes"} & set(reading.intents)
            or re.search(r"(穿|戴|背|涂)上|上身|上脸|上嘴|试穿|试戴", text)
        )
        if "show" in reading.intents and tries_on and "host" not in reading.intents:
            # "主播试一下这个颜色": trying a colour or a size is wearing it.
            reading.intents = tuple("host" if i == "show" else i for i in reading.intents)
        if not reading.named and not reading.pointed and not reading.variants and reading.colours:
            # "主播涂一下豆沙色看看": a shade only one product comes in names that product.
            owners = {
                pid
                for colour in reading.colours
                for name, pids in self._colour_owners.items()
                if _shade_of(colour.removesuffix("色"), L.normalize(name))
                for pid in pids
            }
            if len(owners) == 1:
                reading.named = tuple(owners)
                reading.strength = {next(iter(owners)): 1.0}
        # Only a product (and "now") before a bare 多少: other leftover words ("胸围多少") ask something else.
        if bare_how_much and not reading.variants and any(w not in _WHEN_WORDS for w in reading.residue.split()):
            reading.intents = ()
        # "有没有平板", "do you sell tablets": asks whether the room sells a kind it does not;
        # "衬衫多少钱" in a room without shirts is not about the dress on screen either
        # (unless it points at the screen: "这件衬衫" is what the host shows, by another name).
        asks_for = re.search(r"有没有|有.{1,6}(吗|不|嘛)|卖不卖|do you (have|sell)|any .*\?|got any", text)
        reading.other_kind = (
            (
                bool(asks_for)
                or (not reading.pointed and bool(_OWN_ATTRIBUTES & set(intents)) and "suitable" not in intents)
            )
            and not reading.named
            and any(L.cue_matches(kind, masked) for kind in self._other_kinds)
        )
        reading.question = is_question(original, reading)
        return reading

    def _narrowed(self, text: str, spans: list[tuple[int, int, str, float]]) -> list[tuple[int, int, str, float]]:
        """Names of several products, and beside them a word many products share: the named ones
        that word is true of ("真发那个短发": of the two bobs, the real-hair one)."""
        if len({pid for _, _, pid, _ in spans}) < 2:
            return spans
        said = [
            (m.start(), holders)
            for word, holders in self._shop_holders.items()
            if (m := re.search(re.escape(word) if L.CJK.search(word) else rf"\b{word}\b", text)) is not None
            and len(holders) >= 2
            and not _is_cue(word)
            and not any(a < m.start() + len(word) and m.start() < b for a, b, _, _ in spans)
        ]
        # Only a word before the strongest name qualifies it ("真发那个短发"); one after says what is
        # asked ("三角架送手机夹吗", "连体泳衣防晒吗").
        strongest = max(spans, key=lambda s: (s[3] * (s[1] - s[0]), -s[0]))
        head = strongest[:2]
        at_head = {pid for a, b, pid, _ in spans if (a, b) == head}
        # (a word some products share is such a word too, wherever it is no part of the strongest name)
        for a, b in {(a, b) for a, b, _, _ in spans if b <= head[0]}:
            said.append((a, {pid for x, y, pid, _ in spans if (x, y) == (a, b)}))
        for start, holders in said:
            # ("不带猫眼那个人脸锁": the face lock without the peephole, not the one with it)
            kept = at_head - holders if _NEGATED.search(text[max(0, start - 3) : start]) else at_head & holders
            if start > head[0] or not kept or kept == at_head:
                continue
            # (two words agreeing name it firmly, however weakly each alone does)
            spans = [(a, b, pid, max(w, 1.0)) for a, b, pid, w in spans if pid in kept]
            at_head = kept
        return spans

    def _by_amount_named(self, text: str) -> list[tuple[int, int, str, float]]:
        """Nothing named, but "the one of" an amount only one product's name gives ("100w那个防水吗":
        the 100W panel) — not one asked for ("有200ml的吗" asks whether the one on screen comes so)."""
        asked = " ".join(m.group(0) for m in _ASKS_IF_THERE.finditer(text))
        for match in _AMOUNT_IN_NAME.finditer(text):
            owner = self._amount_names.get(match.group(0))
            pointing = re.match(r"\s*的?\s*[那这]?[个款台只件块]", text[match.end() :])
            if owner is not None and pointing and match.group(0) not in asked:
                return [(match.start(), match.end(), owner, 1.0)]
        return []

    def _find(self, text: str) -> list[tuple[int, int, str, float]]:
        """(start, end, product id) of every product term in the text, longest first, no overlaps."""
        hits: list[tuple[int, int, str, float]] = []
        candidates = [term for ch in set(text) for term in self._by_first.get(ch, ())]
        if not L.CJK.search(text):
            candidates = [term for term in candidates if term.text not in self._initials]
        for term in candidates:
            if term.start_only:
                # One character ("米多少钱", "表 waterproof?"): only as the question's first word,
                # or as the head noun that ends it after 的 ("睡哪个码的窝").
                rest = text[len(term.text) :]
                if (
                    text.startswith(term.text)
                    and rest
                    and (
                        not L.CJK.match(rest[0])
                        or rest.startswith(_AFTER_NAME)
                        or (term.text in self._heads and rest[0] in _VERB_AFTER_HEAD)
                    )
                ):  # ("刀开封了还能退吗": a head noun starting the question is its subject; "油皮" is oily skin)
                    hits.append((0, len(term.text), term.product_id, term.weight))
                for match in re.finditer("(?<=的)" + re.escape(term.text) + _AT_END, text):
                    hits.append((match.start(), match.end(), term.product_id, term.weight))
                # After a plain colour that is no longer name's part ("有红笔吗": a red pen).
                pattern = (
                    "(?<![\u4e00-\u9fff])有[黑白红蓝绿黄粉紫灰]("
                    + re.escape(term.text)
                    + ")(?=[吗呢没不]|[\\s?？!！。~～,，]|$)"
                )
                for match in re.finditer(pattern, text):
                    hits.append((match.start(1), match.end(1), term.product_id, term.weight))
                if term.text in self._heads:
                    # "那把刀", "想要个膜", "这球": a head noun after a demonstrative or a measure
                    # word is the thing itself.
                    after = "(?:[那这][把个只件款台支条双套瓶盒口张]?|要个|来个|买个)(" + re.escape(term.text) + ")"
                    for match in re.finditer(after, text):
                        hits.append((match.start(1), match.end(1), term.product_id, term.weight))
                continue
            if term.text not in text:
                continue  # the cheap test first: most terms are not in a given comment
            compiled = (_link_number_pattern if term.text in self._link_numbers else _term_pattern)(term.text)
            for match in compiled.finditer(text):
                hits.append((match.start(), match.end(), term.product_id, term.weight))
        for match in _WORD_THEN_HEAD.finditer(text):
            # "golf伞": an English word of one product's names before its Chinese head noun
            # (not "guitar弦距": 弦 starts another word there)
            owners = self._term_owners.get(match.group(1), set()) & self._head_owners.get(match.group(2), set())
            if len(owners) == 1:
                hits.append((match.start(), match.end(), next(iter(owners)), 8.0))
        if self._pinyin:
            hits += self._pinyin_hits(text, hits)
        if not any(L.CJK.search(text[s:e]) is None for s, e, _, _ in hits):
            hits += self._typo_hits(text, hits)
        hits.sort(key=lambda h: (-(h[1] - h[0]) * h[3], h[0]))
        taken: list[tuple[int, int, str, float]] = []
        for start, end, pid, weight in hits:
            overlaps = any(start < e and s < end and p != pid for s, e, p, _ in taken)
            if overlaps and not any(s == start and e == end for s, e, _, _ in taken):
                continue  # overlaps a longer name of another product
            if any(s <= start and end <= e and p == pid for s, e, p, _ in taken):
                continue
            taken.append((start, end, pid, weight))
        return taken

    def _pinyin_hits(self, text: str, exact: list[tuple[int, int, str, float]]) -> list[tuple[int, int, str, float]]:
        """Pinyin slips ("蜂密" for 蜂蜜): same toneless pinyin, at least half the characters exact."""
        covered = {i for s, e, _, _ in exact for i in range(s, e)}
        chars = list(text)
        syllables = [_syllable(ch) if L.CJK.match(ch) else ch for ch in chars]
        out = []
        for i, first in enumerate(syllables):
            for term, sounds in self._pinyin.get(first, ()):
                n = len(sounds)
                if i + n > len(chars) or all(j in covered for j in range(i, i + n)):
                    continue  # ("蛋白帮" is the 蛋白棒 though 蛋白 alone names two products)
                if _is_cue("".join(chars[i : i + n])) or "".join(chars[i : i + n]) in self._shop_words:
                    continue  # "几天" asks when, however much it sounds like a name; "眼镜" names no one product
                if any(s < i + n and i < e and e - s >= n and p == term.product_id for s, e, p, _ in exact):
                    continue  # the same product's name, as long, there already: a sound-alike adds nothing
                if tuple(syllables[i : i + n]) == sounds:
                    same = sum(1 for a, b in zip(chars[i : i + n], term.text, strict=True) if a == b)
                    if same * 2 >= n and same < n:
                        out.append((i, i + n, term.product_id, term.weight * 0.9))
        return out

    def _typo_hits(self, text: str, exact: list[tuple[int, int, str, float]]) -> list[tuple[int, int, str, float]]:
        """English typos: one edit away from a product word of 5+ letters."""
        out = []
        covered = {i for s, e, _, _ in exact for i in range(s, e)}
        for match in re.finditer(r"[a-z]{5,}", text):
            if match.start() in covered:
                continue
            word = L.singular(match.group(0))
            if _is_cue(word) or _is_cue(match.group(0)):
                continue  # "shipping" is asked, not a typo of "skipping"
            for term in self.terms:
                if (
                    " " not in term.text
                    and len(term.text) >= 5
                    and term.text[0] == word[0]
                    and L.edit1(word, term.text)
                ):
                    out.append((match.start(), match.end(), term.product_id, term.weight * 0.8))
        return out

    def _variants_and_sizes(self, reading: Reading, masked: str) -> None:
        if self.catalogue is None:
            return
        reading.packs = tuple(L.packs(reading.text))
        if not reading.named:
            # "2000和4000有啥区别": two model numbers of one product's variants name it
            both = [
                pid
                for pid, per_variant in self._model_numbers
                if sum(1 for numbers in per_variant if any(_says_number(n, masked) for n in numbers)) >= 2
            ]
            if len(both) == 1:
                reading.named, reading.strength = (both[0],), {both[0]: 1.0}
        for product_id, product_keys in self._variants:
            keys = product_keys
            if reading.named and product_id not in reading.named:
                continue  # "机械表有皮表带的吗": another watch's leather strap is not asked
            # A variant may be named by a word that is also the product's alias ("狼牙棒那款").
            seen = reading.text if product_id in reading.named else masked
            seen = L.without_budget(seen)  # "under 60 yuan" names no 60 cm variant
            if product_id not in reading.named:
                # (a bare number names a variant only of a product named: "散光150" is no reader's +1.50)
                keys = [(vid, frozenset(k for k in ks if not k.replace(".", "").isdigit())) for vid, ks in keys]
            metres = _METRES.sub(lambda m: f"{m.group(1)}.{m.group(2)}m" if m.group(2) else f"{m.group(1)}m", seen)
            # "两瓶装" for the 2瓶装 variant ("一袋里面" is any bag, not a 1-bag pack)
            counted = L.with_digits(seen, followed_by=_COUNTED, numerals="两二三四五六七八九十")
            # "多少钱一本", "一本多少钱": the price of one, the single variant ("1本")
            counted = re.sub(r"(?<=钱)一(?=[\u4e00-\u9fff])|一(?=[\u4e00-\u9fff](?:多少|几))", "1", counted)
            seen = " | ".join(dict.fromkeys((seen, metres, counted)))
            said = sum(1 for _, names in keys if any(_says_key(k, seen) for k in names))
            if said > 1 or (said == 1 and re.search(r"还是|差多少|差价|区别|对比|\bor\b|\bvs\b|difference", seen)):
                # "双头和单头差多少钱": two of one product's variants, side by side
                reading.intents = tuple(dict.fromkeys((*reading.intents, "variants")))
                if said > 1 and not reading.named:
                    reading.named, reading.strength = (product_id,), {product_id: 1.0}  # "A5和B6差多少钱"
            variant = _variant_named(keys, seen)
            if variant is None and (reading.packs or product_id in reading.named):
                # "十斤装" for the "5公斤" bag, "oat cookies 1kg" for the 1000 g box: the same amount
                # in other units names it too.
                amounts = reading.packs or tuple(L.amounts(seen))
                variant = _variant_by_amount(self.catalogue.product(product_id), amounts)
            if variant is None and product_id in reading.named:
                # "1米2的白板" for the 120 × 90 cm board, "背景布3x2的" for the 3 m × 2 m one
                variant = _variant_by_length(self.catalogue.product(product_id), reading.text)
            if variant is None and product_id in reading.named:
                # "20平米卧室" for the one "for rooms of 15–22 m²" (the area is no question of its own)
                variant = _variant_by_range(self.catalogue.product(product_id), reading.text)
                if variant is not None:
                    # ("两个人 买多大的": the size for them is the answer, not a spec of its own)
                    reading.concepts = tuple(c for c in reading.concepts if c not in _SIZE_LIKE)
            if variant is None and product_id in reading.named:
                # "13x15的35cm多少" of four base-and-length versions: the one with every number said
                variant = _variant_by_numbers(self.catalogue.product(product_id), reading.text)
            if variant is None and product_id in reading.named:
                # "穿戴甲有短的吗" of 短款方圆 / 中长款杏仁 / 长款芭蕾: the one version that word starts
                variant = _variant_by_first_word(self.catalogue.product(product_id), reading.text)
            if variant is not None:
                reading.variants[product_id] = variant
                # What the variant's own name says is not asked ("平装的多少": 装 is no set-up question)
                # (the longest such word, whatever the set's order: "12支", not "12", of "12支装多少")
                said_by = [k for vid, ks in keys if vid == variant for k in ks if k in seen and len(k) > 1]
                named_by = max(said_by, key=lambda k: (len(k), k), default="")
                # Other products whose versions are called that too ("钢带": two watches have one)
                sharing = [pid for pid, names in self._variant_names.items() if named_by and named_by in names]
                reading.variant_words = tuple(dict.fromkeys((*reading.variant_words, product_id, *sharing)))
                if named_by and reading.concepts:
                    # (in the form of the text that says it: "三个装多少" is "3个装" and 多少)
                    form = next(form for form in seen.split(" | ") if named_by in form)
                    rest = form.replace(named_by + "装", " ").replace(named_by, " ")  # ("两条装多少": no 装多少)
                    reading.concepts = tuple(c for c in reading.concepts if c in L.concepts_of(rest))
                    if not reading.intents and not reading.concepts and _BARE_HOW_MUCH.search(rest):
                        reading.intents = ("price",)
        listed = {s.casefold() for p in self.catalogue.products for s in p.sizes}
        sizes, unknown = [], []
        for match in _SIZE_LABEL.finditer(masked):
            label, marker = match.group(1), match.group(2)
            if label in listed:
                sizes.append(label)
            elif marker or label.startswith("x"):
                unknown.append(label)
        reading.sizes, reading.unknown_sizes = tuple(sizes), tuple(unknown)


# ------------------------------------------------------------------ questions

_MEASURES = {"宽": ("宽", "width", "wide"), "长": ("长", "length", "long"), "高": ("高", "height", "tall"),
             "厚": ("厚", "thick"), "深": ("深", "depth", "deep"), "粗": ("粗", "thick", "diameter"),
             "重": ("重", "weight", "heavy")}  # fmt: skip
_MEASURE_EN = {"wide": "宽", "long": "长", "tall": "高", "high": "高", "thick": "厚", "deep": "深", "heavy": "重"}
_NOT_A_LENGTH = re.compile(r"sale|deal|flash|offer|deliver|ship|warranty|guarantee|battery|charg|shelf|last|return")


def _measure_asked(text: str) -> tuple[str, ...]:
    """ "多宽", "有多长", "how wide is it", "how long is the leash": the dimension asked, as its
    Chinese character and English words ("" when none; "how long is delivery" is a time)."""
    # ("步摇和木簪哪个长": which of the two is longer asks the same dimension)
    match = re.search(r"(?<![好很太许])(?:多|哪个更?|谁更?)([宽长高厚深粗重])(?!时间|久|辈)", text)
    if match is not None:
        return _MEASURES[match.group(1)]
    match = re.search(r"how (wide|long|tall|high|thick|deep|heavy) (?:is|are)\b(?P<rest>.*)", text)
    if match is not None and not (match.group(1) == "long" and _NOT_A_LENGTH.search(match.group("rest"))):
        return _MEASURES[_MEASURE_EN[match.group(1)]]
    return ()


_LISTS = ("about", "audience", "variants", "sizes", "colours")
"""Free text and lists mention everything; a spec says what it is."""
_SUBSTANCE_ASKED = re.compile(
    r"是(?:不是)?([^吗呢么嘛?？,，\s]{2,6}?)(?:的)?(?:吗|么|嘛|呢)"
    r"|([^\s,，是]{2,4})还是([^\s,，吗?？]{2,4})"
    r"|([\u4e00-\u9fff]{2,5})(?:的)?吗[\s?？]*$"
)
_PURE = set("纯真全正天然百分100%")
"""Words that only say it is that substance (纯羊绒, 真丝, 百分百羊绒)."""
_NOT_SUBSTANCE = set("的了吗呢是有能可以多少几什么一个不也都还给买小大这那用吃穿好")


_HOW_MUCH_OF = re.compile(
    r"how much (?!is\b|are\b|does\b|do\b|for\b|would\b|will\b|it\b|this\b|these\b|that\b|the\b|now\b|today\b"
    r"|pls\b|please\b|each\b|per\b|in\b|\?|$)[a-z]"
)
_BARE_HOW_MUCH = re.compile(r"多少[啊呀呢哇嘞捏]?[\s?？!！~～。.]*$")
_WHEN_WORDS = {"现在", "今天", "目前", "这会", "直播间", "现价", "到手", "便宜", "贵"}
"""Words that may stand beside a bare 多少 and still ask the price ("便宜的那个多少": which one is cheap)."""


_VERDICT = re.compile(r"可以|不错|还行|挺|划算|便宜|实惠|贵|好看|喜欢|绝了|值")
"""A word that judges: "价格可以", "颜色不错" tell, they do not ask."""
_FEE_HOW_MUCH = re.compile(r"(运费|邮费|快递费)(要|是|大概|一般)?(多少|几块|几元)")

_OWN_ATTRIBUTES = {"price", "list_price", "stock", "sizes", "colours", "link", "materials", "variants", "gift"}
"""What a product named in a question has ("衬衫多少钱"), unlike what it is used with
("苹果手机能用吗": the phone is not what is sold)."""
_STATEMENT = re.compile(r"我|了|过|超|太|真|喜欢|好吃|好用|\b(i|i'm|love|loved|bought|got mine)\b")
_AT_END = "(?=[吗呢吧啊呀嘛么哦哇啦了]*[\\s?？!！。~～]*$)"
_AFTER_NAME = ("多少", "几", "是", "有", "怎么", "能", "可以", "还")
_Q_ZH = re.compile(
    r"多少|多久|多长|多大|多重|多高|多远|几(?!乎)[\u4e00-\u9fffa-z]|什么|啥|哪|怎么|怎样|如何|是否|能不能|可不可以|可以.*[吗不]"
    r"|有没有|是不是|会不会|要不要|咋|吗|呢[?？]?$|么[?？]?$|嘛$|(.)不\1|(.)没\2|([\u4e00-\u9fff]{2})不\3|吗|谁知道"
    r"|谁(出|承担|付|负责)"  # "退货运费谁出"
    r"|有无(?!限)|能否|可否"  # "拼图垫有无粉色", "能否开发票": the written A-not-A
    # "保证能考过十级吧", "站上去没事吧": asking to be told so
    r"|(能|会|保证|应该|可以|没问题|没事|是|行|够|合适|安全).{0,12}吧[?？~～!！]*$"
    r"|\d+\S{0,3}还是\S{0,3}\d+"  # "我头发到腰 25还是32的"
    r"|多[亮宽厚深粗硬软轻快响][?？]?$|真的假的|是真的吗|真的吗"  # "小方块那个多亮", "吃肌酸会脱发 真的假的"
    # "我220斤能骑不😂", "5个人玩得了不"
    r"|(能|会|行|要|敢|得了|得下|得动|发|包邮|好用).{0,8}不[^\u4e00-\u9fffa-z0-9]*$"
    r"|有.{1,10}没[\s?？~～]*$"  # "有玫瑰味的没"
    r"|了没有?[\s?？~～]*$"  # "内脏去了没"
    r"|[\u4e00-\u9fff](?<![还都也我你他她就并从])没有?[\s?？~～]*$"  # "橙子打蜡没"
    r"|[选买拿要穿].{0,8}还是"  # "我一米五二 选40寸还是41寸"
    r"|(?<![好很太许])多[厚宽深粗细硬软沉紧松贵快远小短窄薄轻矮低]"  # "多厚", "多小"
    r"|^[^我].{0,14}[^我]还是.{1,8}$"  # "偏大还是偏小"
    r"|谁(买|用|试|穿|吃)过?了?"  # "谁买了": has anyone tried it
    r"|(能|可以|会|要|是|有)[^不]{0,10}不[\s?？~～。]*$"  # "能用不", "狗狗能吃冻干不": a question ending in 不
    r"|[\u4e00-\u9fff]{2}(?<!要|差|了|得)不[\s?？~～。]*$"  # "积木跟lego通用不", "带证书不"
    r"|怎么办|怎么选|选哪"
)
_REQUEST_ZH = re.compile(
    r"推荐|^求|想看|想问|想知道|请问|麻烦|上链接|链接|试一下|试试|讲讲|介绍一下|展示一下|看一下|需要开|帮我|给我看"
    r"|主播.{0,8}(一下|看看(?!我)|个身)|一下.{0,8}看看[\s!！~～]*$"  # "主播背一下猫包", "涂一下豆沙色看看"
    r"|给(我们|大家|我)(看看|看一下|瞧瞧|试试)"  # "主播把车把调到最高给我们看看"
    r"|(看看|演示|试试|展示|拿出来|打开|穿上|上身).{0,6}[呗吧][\s!！~～]*$|^kk"  # "人字梯拿出来看看呗", "kk黑色"
    r"|[是对]吧[\s?？!！~～]"  # "饵料降价了是吧 29.9那个"
    # "白色表盘上手看看", "上个毛毯看看" (not "我先看看", "大家快看看")
    r"|上(脚|手|身|嘴|脸)看看|^上(一下|个|一个)|^(?!大家).*(?<![我先再快])看看[\s!！~～]*$"
)
_WORD_THEN_HEAD = re.compile(
    r"([a-z]{3,})\s*([\u4e00-\u9fff])(?=$|[^\u4e00-\u9fff]|[是有的吗多能怎几呢啊还要可会好贵咋哪啥什在])"
)
"""An English word, then one Chinese character that ends the word there ("golf伞是", not "guitar弦距")."""
_HOST_HOLDS = re.compile(
    r"\b(the one|what) (the host|she|he|you)('s| is| are)? (holding|showing|wearing|using)( rn| right now| now)?"
    r"|\bthe one in (the host'?s|her|his|your) hands?|\bthe pinned one\b"
)
_PINNED_THING = re.compile(r"\bthe pinned\b")
"""("the pinned curtain": this curtain)"""
_PRAISE_ONLY = re.compile(r"^(好|真|超|太)?(好看|漂亮|美|可爱|好美|绝|喜欢)(了|啊|呀|哦)?$")
_EXCLAIM_ZH = re.compile(
    r"^不知道(?!.*(怎么办|吗|呢))|^哪有(这么|那么)|^(哇|哇塞|天哪|我的天)(?!.*(吗|呢|多少|几))|好好看|怎么这么|多少钱都|什么都|哪里都|多么|太.*了|(?<!不)好(?!不好).*啊$"
    r"|^(为什么|怎么)我?(又|总是|老是|还是)?(抢不到|没抢到|买不到|拍不到|没拍到)"  # missing a flash sale: a complaint
    # wonder and delight, not questions ("为什么这么贵" still asks)
    r"|为什么(这么|那么)(便宜|划算|好看|好用|好吃|香|美|好)|怎么做到|什么神仙|[绝爱]了[!！~～啊]*$"
    # "为什么我现在才刷到", "有没有搞错 这么便宜", "哪里还有这个价", "好家伙": talk, not questions
    r"|^为什么我.{0,6}(才|都|总|每次|这么|那么)|有没有搞错|哪里还有这(个|种)价|^好家伙"
    # "咋这么便宜！", "多少有点心动了" (多少 = somewhat): wonder and feeling, not asking
    r"|(咋|怎么)(这么|那么)|^多少有点"
    # "怎么画得这么快", "什么鬼", "啥也不说了 冲", "谁不爱呢", "多少人跟我一样蹲", "没钱了怎么办", "忍不住买买买"
    r"|怎么.{1,3}(这么|那么)|什么鬼|(啥|什么)(也|都)不说|多少人(跟|和)我一样|没钱.{0,8}怎么办"
    r"|忍不住|为什么不早说|(什么|啥)时候都"
)
_RHETORICAL_ZH = re.compile(r"谁不(爱|喜欢|想要|心动)|谁还没(下单|拍|买|抢)")
_EXCLAIM_EN = re.compile(
    r"(^|[,.!;]\s*)(what an? |how (is|are) (this|that|it) so |so )"
    r"|^how \w+ (is|are|was|were) .*![!\s]*$"  # "how cute is that mermaid one!"
)
""""what a deal", "how is this so cheap lol", "how cute is that one!": wonder, not a question
(unless a "?" asks)."""
_LAUGH_EN = re.compile(r"\b(lol|omg|lmao|so sad)\b")
_ASKS_EN = re.compile(
    r"\bhow (many|much|long|often|big|heavy)\b|\b(which|what) (size|colou?r|one)\b"
    r"|^(does|do|can|is|are|will) (it|this|these|they|you|i)\b"
)
""""lol" ends wonder ("why is it so cheap lol") and questions alike ("how many clicks before it
breaks lol"): only one that asks for an amount, a choice or a yes/no about it is a question."""
_INTERJECTION = re.compile(r"^(what|huh|wait|really|seriously|omg|啥|什么)\s*[?？!！]+\s*(?=\S)")
""""what?? why is it so cheap lol": surprise, its question marks ask nothing."""
_BOUGHT_ZH = re.compile(r"(已付款|已下单|已拍|付款了|下单了|拍了|买了)[\s!！~～。]*$")
_VOCATIVE_END = re.compile(r"(?<=[\u4e00-\u9fff])\s*(主播|宝宝|姐姐|小姐姐|老师|老板|亲|家人们)[\s!！~～。]*$")
"""Whom a comment calls at its end ("发新疆不主播"): the question is what comes before."""
_ASKS_A_PICK = re.compile(
    r"预算|想要|想买|买哪|买啥|买什么|^求|给.{0,6}推荐|推荐(一下|下|个|点|款)|有(什么|啥)推荐|what should|any recommend"
    r"|^(想)?送(男朋友|女朋友|老婆|老公|妈妈|爸爸|父母|朋友|闺蜜|长辈|老师|同事|领导|孩子)"  # "送男朋友 他喜欢木质调的"
    r"|recommend (me|something|a|one)|suggest|gift for|something (that|for|to)|under \d|budget|want something"
    r"|looking for|need something"
)
_Q_EN = re.compile(
    r"\b(which|what|how)\s+(has|have|is|are|one|do|does|should|can|would)\b"
    r"|\b(what|which) (year|size|colou?r|time|kind|type|flavou?r|material|model|version)\b"
    r"|(^|[,;.]\s*)(how|what|what's|whats|which|where|when|why|who|can|could|does|do|did|is|are|will|would|any|anyone"
    r"|should|got)\b"
    r"|\b(how much|how many|how long|price|link|pls|please|show me|recommend|suggest)\b"
    # "memory foam pillow how high": the question word after the name
    r"|\bhow (high|tall|big|wide|heavy|thick|deep|bright|loud|warm|soft|firm|hard|strong|fast|far|old)\b"
    # "germ rice do I need to keep it in the fridge": a name, then the question
    r"|\b(do|does|can|should|will|is|are) (i|you|we|they|it)\b"
)


def is_question(original: str, reading: Reading | None = None) -> bool:
    """A comment that asks something: a question mark, a question word or particle, an
    A-not-A question, a request ("求链接", "show me"), or a product and a thing asked."""
    text = _VOCATIVE_END.sub("", _INTERJECTION.sub("", L.normalize(original)))
    if "?" in text or "？" in text:
        return True
    if L.CJK.search(text):
        clauses = re.split(r"[\s，,。！!~]+", text.strip(" ，,。！!~"))
        # "床太硬了 有啥推荐": a complaint, then the question; "口红啥色号 好好看": the
        # question, then only praise
        asking = [i for i, c in enumerate(clauses) if re.search(r"吗|呢|啥|什么|哪|几|多少|推荐", c)]
        if (
            len(clauses) > 1
            and asking
            and (asking[-1] == len(clauses) - 1 or all(_PRAISE_ONLY.match(c) for c in clauses[asking[-1] + 1 :]))
            and not _EXCLAIM_ZH.search(clauses[asking[-1]])
            and not re.search(r"哈哈|hhh", clauses[asking[-1]])
        ):
            return True
        if _RHETORICAL_ZH.search(text):
            return False  # "这么好看的包谁不爱呢", "谁还没下单呢 冲啊": asking no one
        if (_EXCLAIM_ZH.search(text) or "哈哈" in text) and not re.search(r"吗|呢", text):
            return False  # "为什么我养什么死什么哈哈哈": a laugh at oneself
        if any(_Q_ZH.search(clause) for clause in clauses):
            return True  # ("能拍两套不 给我妈也买一个": a question, then why)
        if _BOUGHT_ZH.search(text):
            return False  # "1号链接拍了 已付款": telling, not asking for the link
        if _REQUEST_ZH.search(text):
            return True
    wonder = _EXCLAIM_EN.search(text) or (_LAUGH_EN.search(text) and not _ASKS_EN.search(text))
    if wonder and not L.CJK.search(text):
        return False  # ("what a deal on that reel", "how is this so cheap lol")
    if _Q_EN.search(text):
        return True
    if reading is not None and (reading.named or reading.variants) and re.search(r"想要|想买|想入", text):
        return True  # "我手机是小米14 想要个膜", "想买原味的 就怕太硬": wanting one is asking for it
    if reading is not None and "recommend" in reading.intents and _ASKS_A_PICK.search(text):
        return True  # "预算150左右 想要个车上用的", "what should i get": asking for a pick
    chosen = reading is not None and (reading.variants or reading.bigger is not None)
    if reading is not None and (reading.named or reading.pointed or chosen) and (reading.intents or reading.concepts):
        # "walnuts shelf life", "牛奶保质期": a product and a thing asked, unless it tells
        # ("我上次买的核桃超好吃", "love this one!").
        return not (text.endswith(("!", "！")) or _STATEMENT.search(text))
    if reading is not None:
        bare = re.sub(r"[\s\W_]+", "", text)
        one_word = (not reading.residue and not _VERDICT.search(text)) if L.CJK.search(text) else len(text.split()) <= 2
        # One word: "价格", "尺码", "运费", "link" (not "颜色好看"); a kind of spec only when it is
        # the whole comment ("保质期", not "主播晚上好").
        said_kind = any(
            L.cue_matches(c, bare) and len(c) >= len(bare) - 1 for k in reading.concepts for c in L.CONCEPTS[k]
        )
        asked = bool(set(reading.intents) - {"sale"}) or said_kind
        if asked and one_word and not text.endswith(("!", "！")):
            return True
        if re.match(r"(好?想要|要个|要一个|来个|来一个)", bare) and (
            reading.colours or reading.sizes or reading.variants
        ):
            return True  # "想要黑色": is it there, and how to get it
    return False


@lru_cache(maxsize=1)
def _cues_by_sound() -> dict[str, list[tuple[str, str, str, tuple[str, ...]]]]:
    """First syllable -> (family, name, cue, syllables) of every plain Chinese cue of 2+ characters."""
    out: dict[str, list[tuple[str, str, str, tuple[str, ...]]]] = {}
    for family, table in (("intent", L.INTENTS), ("concept", L.CONCEPTS)):
        for name, cues in table.items():
            for cue in cues:
                if cue.startswith("re:") or len(cue) < 2 or not all(L.CJK.match(ch) for ch in cue):
                    continue
                sounds = _sounds(cue)
                out.setdefault(sounds[0], []).append((family, name, cue, sounds))
    return out


@lru_cache(maxsize=1)
def _english_cues() -> list[tuple[str, str, str]]:
    """(family, name, cue) of every one-word English cue of 5+ letters."""
    out = []
    for family, table in (("intent", L.INTENTS), ("concept", L.CONCEPTS)):
        for name, cues in table.items():
            out += [(family, name, c) for c in cues if re.fullmatch(r"[a-z]{5,}", c)]
    return out


def _says_initials(words: tuple[str, ...], text: str) -> bool:
    """A word typed as its pinyin initials, on its own ("ms还剩几分钟" = 秒杀)."""
    return any(
        len(word) >= 2 and L.CJK.match(word[0]) and re.search(rf"(?<![a-z0-9]){initials(word)}(?![a-z0-9])", text)
        for word in words
    )


def _asked_by_spelling(masked: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What is asked, through an English typo: one edit from a cue of 5+ letters, first letter kept."""
    intents: list[str] = []
    concepts: list[str] = []
    for written in re.findall(r"[a-z]{5,}", masked):
        word = L.singular(written)
        for family, name, cue in _english_cues():
            if len(word) < 6 and family != "intent":
                continue  # "small" is a word, not a typo of "smell"; "prise" is one of "price"
            if word != cue and word[0] == cue[0] and L.edit1(word, cue):
                target = intents if family == "intent" else concepts
                if name not in target:
                    target.append(name)
    order_i, order_c = list(L.INTENTS), list(L.CONCEPTS)
    return tuple(sorted(intents, key=order_i.index)), tuple(sorted(concepts, key=order_c.index))


_FUNCTION_CHARS = set("多少几什么怎样哪吗呢吧啊了的是有没不能会可以要还")


def _asked_by_sound(masked: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What is asked, read through pinyin slips: a cue said with other characters of the
    same sound, at least half of them exact (the way pinyin input goes wrong)."""
    index = _cues_by_sound()
    chars = list(masked)
    sounds = [_syllable(ch) if L.CJK.match(ch) else ch for ch in chars]
    intents: list[str] = []
    concepts: list[str] = []
    for i, first in enumerate(sounds):
        for family, name, cue, cue_sounds in index.get(first, ()):
            n = len(cue_sounds)
            if tuple(sounds[i : i + n]) != cue_sounds:
                continue
            exact = [a for a, b in zip(chars[i : i + n], cue, strict=True) if a == b]
            # The exact characters must say something: "围多少" is not "喂多少" (usage) just
            # because 多少 is right.
            # ("多少前" is 多少钱: after 多少 the sound alone tells what is asked)
            if len(exact) * 2 >= n and (any(ch not in _FUNCTION_CHARS for ch in exact) or cue.startswith("多少")):
                target = intents if family == "intent" else concepts
                if name not in target:
                    target.append(name)
    order_i, order_c = list(L.INTENTS), list(L.CONCEPTS)
    return tuple(sorted(intents, key=order_i.index)), tuple(sorted(concepts, key=order_c.index))


# ------------------------------------------------------------------ product terms


def _product_terms(product: ProductNames) -> list[tuple[str, float]]:
    terms = _name_terms([*product.names, *product.categories])
    # Partial Chinese names: every run of 2+ characters of a name or category.
    for name in (*product.names, *product.categories):
        if _LINK_NAME.search(name):
            continue  # "7号链接" names the product whole; its "号链" is no part of a name
        # A bracketed qualifier ("(燃气灶专用)", "（2片装）") says what it is for, not what it is called.
        bare = re.sub(r"[(（【\[].*?[)）】\]]", "", name)
        cjk = "".join(ch for ch in bare if L.CJK.match(ch))
        for n in range(2, len(cjk)):
            for i in range(len(cjk) - n + 1):
                part = cjk[i : i + n]
                if part not in L.GENERIC_NAME_WORDS and not _is_cue(part) and not _POINTER.search(part):
                    terms.append((part, n * 0.8))
    # A link number in the other language's form: "4号链接" is "link 4" (and "#4"), and back.
    for name in product.names:
        if number := re.fullmatch(r"\s*(?:(\d+)\s*号链接|link\s*#?\s*(\d+))\s*", name, re.IGNORECASE):
            k = number.group(1) or number.group(2)
            terms += [(form, 4.0) for form in (f"{k}号链接", f"link {k}", f"link#{k}", f"link #{k}")]
            terms.append((f"{k}号", 2.0))  # "5号还剩多少": the link by its number alone
    # A model-like token of a name names it strongly ("63合1", "P88"; not a paper size, "A4").
    for name in product.names[:2]:
        tokens = re.findall(r"(?<![a-z0-9])(?:\d+[\u4e00-\u9fff]\d+|[a-z]+\d+[a-z\d]*)", L.normalize(name))
        terms += [(t, 3.5) for t in tokens if len(t) >= 3]
    # English head noun and other content words of the names and categories.
    categories = set(product.categories)
    for en in (*product.names, *product.categories):
        if L.CJK.search(en):
            continue
        # The head noun ends the name's first part: "Modelling Clay, 36 Colours" is a clay, and
        # "Kettle with Tea Infuser" a kettle.
        first = re.split(r"[,(（:：;/]|\s[-–—]\s|\b(?:with|for|in|and)\b", en.casefold(), maxsplit=1)[0]
        n_first = len(_content_en(first))
        words = _content_en(en)
        for i, word in enumerate(words):
            head = i == (n_first or len(words)) - 1
            # "Waterproof" in "Waterproof Hardshell Jacket" is what viewers ask about, not a
            # name for the jacket: a word that is a cue names a product only as the head noun.
            # Nor does a word that says how much is left ("Golf Glove (left hand)" is not named by
            # "how many are left").
            if not re.fullmatch(r"[\d.]+[a-z]*", word) and (head or not (_is_cue(word) or word in _STOCK_WORDS_EN)):
                # (the head of what it is, its category, beats the head of a nickname: "piano" is
                # the digital piano, not the "thumb piano")
                terms.append((word, (3.0 if en in categories else 2.5) if head else 1.5))
                if head and not word.endswith("s"):  # "how many mops left"
                    terms.append((word + ("es" if word.endswith(("sh", "ch", "x")) else "s"), 2.5))
    # Everyday names of the product's kind (general synonyms).
    own = L.normalize(" ".join([*product.categories, *product.names[:2]]))
    # A Chinese noun's head is its last character: 徒步鞋 is a 鞋, so 鞋子 names it too.
    heads = {L.normalize(n)[-1] for n in (*product.categories, *product.names[:2]) if n and L.CJK.match(n[-1])}
    # "X子" is the everyday noun of a head X: 绳子 is the 牵引绳, 袜子 the 船袜.
    terms += [(head + "子", 2.0) for head in heads if head != "子"]
    terms += [(head, 1.5) for head in heads if head not in L.GENERIC_HEADS]  # "笔多少钱", "有红笔吗"
    for group in L.KIND_SYNONYMS:
        if any(
            _contains(own, member) if len(member) >= 2 or not L.CJK.search(member) else member in heads
            for member in group
        ):
            for member in group:
                terms.append((member, max(2.0, len(member) * 1.0)))
    return terms


_SIZE_LABEL = re.compile(r"(?<![a-z0-9'’])(?<!\d\.)(x{0,4}[sl]|m|nb|xx+l|\d{2,3})(?![a-z0-9]|\.\d)\s*(码|号|size)?")
"""A size label ("XL", "42码"), not the whole of a decimal ("掌围21.5厘米" gives no size 21)."""
_STOCK_WORDS_EN = frozenset({"left", "remaining", "available"})
_NEGATED = re.compile(r"(不带|没有|没带|不要|不是|无|非|without|no|not)\s*$")
_AMOUNT_IN_NAME = re.compile(r"(?<![\d.a-z])\d+(?:\.\d+)?[a-z]{1,3}(?![a-z])")
_POINTER = re.compile(r"[这那哪][个款件只台套种]")
"""A pronoun inside a nickname ("千瓦时那个"): "那个" alone points, it names nothing."""
_LINK_NAME = re.compile(r"\d+\s*号链接|link\s*\d+", re.IGNORECASE)


def _content_en(text: str) -> list[str]:
    return [w for w in L.en_words(text) if w not in L.STOP_EN and w not in L.GENERIC_NAME_WORDS and len(w) > 2]


def _name_terms(names: list[str]) -> list[tuple[str, float]]:
    out = []
    for name in names:
        norm = L.normalize(name)
        if not norm:
            continue
        out.append((norm, 3.0 + len(norm) * (1.0 if L.CJK.search(norm) else 0.3)))
        compact = norm.replace(" ", "")
        if compact != norm:
            out.append((compact, 3.0 + len(compact) * 0.3))
        if "'" in norm or "’" in norm:
            bare = norm.replace("'", "").replace("’", "")  # "mens watch" for "Men's Watch"
            out.append((bare, 3.0 + len(bare) * 0.3))
        singular = " ".join(L.singular(w) for w in norm.split())
        if singular != norm:
            out.append((singular, 3.0 + len(singular) * 0.3))
    return out


def _dedupe(raw: dict[str, list[tuple[str, float]]], shop_words: set[str], own: Mapping[str, set[str]]) -> list[Term]:
    """The terms, each product's best weight; words most products share go to `shop_words`
    ("眼镜" in an eyewear shop: no sound-alike of them names one product either) — unless one
    or two products are called that themselves ("跑鞋" is the running shoe's own category,
    though every shoe is a 跑鞋 to a general synonym): then it names those."""
    owners: dict[str, set[str]] = {}
    for pid, terms in raw.items():
        for text, _ in terms:
            owners.setdefault(text, set()).add(pid)
    out: list[Term] = []
    for pid, terms in raw.items():
        best: dict[str, float] = {}
        for text, weight in terms:
            best[text] = max(best.get(text, 0.0), weight)
        for text, weight in best.items():
            if not text or text in L.STOP_EN:
                continue
            cjk = L.CJK.search(text) is not None
            if cjk and len(text) < MIN_CJK_TERM:
                out.append(Term(text, pid, weight, start_only=True))
                continue
            if not cjk and len(text) < 2:
                continue
            holders = owners[text]
            if len(holders) >= max(3, len(raw) // 3):
                called = {other for other in holders if text in own.get(other, ())}
                within = {other for other in holders if any(text in name for name in own.get(other, ()))}
                if 0 < len(called) <= 2 and within == called:  # (not "枕头" of 荞麦壳枕头 too)
                    if pid in called:
                        out.append(Term(text, pid, weight * (0.5 if len(called) > 1 else 1.0)))
                    continue
                shop_words.add(text)
                continue  # "car" in a car-accessory shop, "tea" in a tea shop: the shop's word, no one product's
            shared = len(holders) > 1
            out.append(Term(text, pid, weight * (0.5 if shared else 1.0)))
    return out


@lru_cache(maxsize=65536)
def _is_cue(part: str) -> bool:
    """A piece of a name that is also a word for what is asked ("防水") or a region ("新疆")."""
    groups = (*L.INTENTS.values(), *L.CONCEPTS.values(), *L.REGIONS.values(), L.MEDICAL)
    return any(
        part == cue or (len(cue) >= 2 and cue in part) for group in groups for cue in group if not cue.startswith("re:")
    )


def _contains(text: str, word: str) -> bool:
    return L.cue_matches(L.normalize(word), text)


_NOT_INITIALS = frozenset({*L.STOP_EN, "ml", "kg", "cm", "mm", "mg", "db", "lb", "oz", "hz", "no", "ok", "go", "hi",
                           "ps", "pc", "tv", "id", "jd", "sf", "ms", "jg", "lj", "gg", "dd", "yy"})  # fmt: skip
"""Initials that are units, English words or other shorthand, never a product's name."""


@lru_cache(maxsize=65536)
def initials(word: str) -> str:
    """The first letters of a Chinese word's pinyin ("秒杀" -> "ms")."""
    return "".join(_syllable(ch)[0] for ch in word if L.CJK.match(ch))


def _variant_by_first_word(product: Product | None, text: str) -> str | None:
    """A one-character quality asked for ("有短的吗", "要长的") that starts one version's name."""
    if product is None:
        return None
    asked = re.findall(r"(?:有|要|拍|买|选)([\u4e00-\u9fff])的", text)
    starting = [v.id for v in product.variants for ch in asked if v.name.zh.startswith(ch)]
    return starting[0] if len(starting) == 1 else None


def _colour_by_sound(text: str, listed: tuple[str, ...]) -> tuple[str, ...]:
    """A listed shade typed with a pinyin slip ("星空篮" for 星空蓝): the same sounds, at
    least half of the characters exact."""
    for name in listed:
        if len(name) < 3 or not all(L.CJK.match(ch) for ch in name):
            continue  # (two characters are too few to tell a slip from another word)
        sounds = tuple(_syllable(ch) for ch in name)
        for i in range(len(text) - len(name) + 1):
            typed = text[i : i + len(name)]
            same = sum(1 for a, b in zip(typed, name, strict=True) if a == b)
            cjk = all(L.CJK.match(ch) for ch in typed)
            if same * 2 >= len(name) and cjk and tuple(_syllable(ch) for ch in typed) == sounds:
                return (name,)
    return ()


@lru_cache(maxsize=65536)
def _syllable(ch: str) -> str:
    return _fold(lazy_pinyin(ch)[0])


def _sounds(word: str) -> tuple[str, ...]:
    """A word's syllables read in context (瑜伽 is yu-jia, not yu-ga), folded."""
    spelled = lazy_pinyin(word)
    if len(spelled) != len(word):
        return tuple(_syllable(ch) for ch in word)
    return tuple(_fold(s) for s in spelled)


def _fold(syllable: str) -> str:
    """Toneless pinyin, with the sounds typed for one another folded together (吸成器 for
    吸尘器: cheng / chen; zh / z, ch / c, sh / s, n / l)."""
    syllable = re.sub(r"^([zcs])h", r"\1", syllable)
    syllable = re.sub(r"^n(?=[aeiou])", "l", syllable)
    return re.sub(r"(?<=[aei])ng$|(?<=i)ng$", "n", syllable)


@lru_cache(maxsize=4096)
def _term_pattern(term: str) -> re.Pattern[str]:
    if L.CJK.search(term):
        # (a term starting with a number is not the end of another: "5号" is not in "1.5号线")
        return re.compile(("(?<![\\d.])" if term[0].isdigit() else "") + re.escape(term))
    return re.compile(r"(?<![a-z0-9])" + re.escape(term) + r"(?:e?s)?(?![a-z])")


@lru_cache(maxsize=256)
def _link_number_pattern(term: str) -> re.Pattern[str]:
    """ "5号" of a product listed as "5号链接", before what is asked ("5号还剩多少", "2号能盖吗"),
    not before a noun it numbers ("7号铁" is a golf iron, "5号电池" a battery size)."""
    return re.compile(rf"(?<![\d.]){term}(?=$|[^\u4e00-\u9fff]|{_AFTER_LINK_NUMBER})")


_AFTER_LINK_NUMBER = "[还能是的和跟与送拍多有那这怎啥几什可会偏要买含哪适现秒价库剩]"


def _order(spans: list[tuple[int, int, str]]) -> list[str]:
    out: list[str] = []
    for _, _, pid in sorted(spans):
        if pid not in out:
            out.append(pid)
    return out


@lru_cache(maxsize=1)
def _cue_words() -> re.Pattern[str]:
    """Every Chinese cue word of what is asked, longest first, as one pattern."""
    words = {cue for group in (*L.INTENTS.values(), *L.CONCEPTS.values(), L.QUESTION_WORDS_ZH) for cue in group}
    plain = sorted((w for w in words if not w.startswith("re:") and L.CJK.search(w)), key=len, reverse=True)
    return re.compile("|".join(re.escape(w) for w in plain))


@lru_cache(maxsize=1)
def _question_words() -> re.Pattern[str]:
    plain = sorted((w for w in L.QUESTION_WORDS_ZH if not w.startswith("re:")), key=len, reverse=True)
    return re.compile("|".join(re.escape(w) for w in plain))


def _residue(masked: str, cues: re.Pattern[str] | None = None) -> str:
    """The text without pointing, particles and `cues` (default: every cue word of what is asked)."""
    # "沾不沾杯" asks what "沾杯吗" asks: an A-not-A question is its A.
    masked = re.sub(r"([\u4e00-\u9fff])[不没]\1", r"\1", masked)
    masked = L.cues_pattern(L.DEIXIS_ZH).sub(" ", masked)  # "主播手上那盆": pointing, not asking
    text = (cues or _cue_words()).sub(" ", re.sub(r"[\s\W_]+", " ", masked))
    text = re.sub(f"[{L.PARTICLES_ZH}]", " ", text)
    words = [w for w in text.split() if w not in L.STOP_EN and len(w) > 1]
    return " ".join(words)


def _variant_keys(product: Product) -> list[tuple[str, frozenset[str]]]:
    """Per variant, the strings that name it: its name, its numbers with units ("9斤",
    "45毫米", "12盒"), and Chinese words of its name no other variant has ("茶轴", "2段")."""
    words: dict[str, set[str]] = {}
    for variant in product.variants:
        zh = L.normalize(variant.name.zh)
        words[variant.id] = {
            w
            for w in re.findall(r"[\u4e00-\u9fff]{2,}|(?<![\d.])\d+(?:\.\d+)?[\u4e00-\u9fff]", zh)
            if not w.startswith(("不", "没")) and not _is_cue(w)  # "(不辣)" is said by "辣不辣"
        }
    out = []
    for variant in product.variants:
        zh = L.normalize(variant.name.zh)
        keys = {zh.removesuffix("装"), L.normalize(variant.name.en)}
        # (not a model number's digits: "小米14" is named by all of it)
        core = re.findall(r"\d+(?:\.\d+)?\s*(?:毫升|毫米|公斤|斤|盒|段|英寸|寸|ml|mm|kg|g|m(?![a-z]))", zh)
        core += re.findall(r"(?<![^\W\d_])\d+(?:\.\d+)?(?![\d.])", zh)  # a bare number, not a model's ("小米14")
        keys |= {c.replace(" ", "") for c in core if len(c) > 1}
        # "5kg" and "5 kg" for "5公斤装 / 5 kg bag": the English name's amounts, written together.
        en = L.normalize(variant.name.en)
        # Latin model and paper names only this variant has ("A5", "B6", "PW5")
        others_all = " ".join(
            f"{L.normalize(v.name.zh)} {L.normalize(v.name.en)}" for v in product.variants if v.id != variant.id
        )
        models = re.findall(r"(?<![a-z0-9])[a-z]+\d+[a-z]*(?![a-z0-9])", f"{zh} {en}")
        keys |= {t for t in models if t not in others_all}
        amounts_en = re.findall(r"\d+(?:\.\d+)?[\s-]*(?:kg|g|ml|l|lb|oz|mm|cm|inch|in|pack|pcs)\b", en)  # ("20-inch")
        keys |= {re.sub(r"[\s-]+", "", m) for m in amounts_en} | {re.sub(r"[\s-]+", " ", m) for m in amounts_en}
        others = set().union(*(w for vid, w in words.items() if vid != variant.id))
        keys |= words[variant.id] - others
        # Two English words only this variant's name has ("light roast" of "Light roast, 454 g").
        en_words = L.en_words(L.normalize(variant.name.en))
        other_en = " ".join(L.normalize(v.name.en) for v in product.variants if v.id != variant.id)
        keys |= {
            f"{a} {b}" for a, b in pairwise(en_words)
            if f"{a} {b}" not in other_en and not {a, b} & _EN_UNITS and not (a.isdigit() and b.isdigit())
        }  # fmt: skip
        # An English word only this variant's name has ("with drawers" of "5 compartments with 2 drawers")
        other_words = set(L.en_words(other_en))
        keys |= {
            w for w in re.findall(r"[a-z]{4,}", en) if w not in L.STOP_EN and not _is_cue(w)
            and L.singular(w) not in other_words
        }  # fmt: skip
        # A pair of characters only this variant's name has ("狼牙棒那款" for 狼牙棒款, "主驾" for
        # 主驾单片): viewers say part of a variant's name.
        other_names = "".join(L.normalize(v.name.zh) for v in product.variants if v.id != variant.id)
        run = "".join(ch for ch in zh if L.CJK.match(ch))
        keys |= {
            run[i : i + 2]
            for i in range(len(run) - 1)
            if run[i : i + 2] not in other_names
            and not set(run[i : i + 2]) & _VARIANT_FILLER
            and not _is_cue(run[i : i + 2])  # "口味" of 混合口味 is what is asked, not the variant
        }
        # "4 pack", "四个装", "pack of 4" for "4只装": however a pack of that many is said
        for zh_n, en_n in re.findall(r"(\d+)\s*[只个支件片盒包袋瓶罐卷条双套把张本]装|pack of (\d+)", f"{zh} {en}"):
            n = zh_n or en_n
            keys |= {f"{n}个装", f"{n}只装", f"{n}pack", f"{n} pack", f"{n}-pack", f"pack of {n}", f"{n}pcs"}
        numbers = set(re.findall(r"\d{2,}", zh))
        other_numbers = {n for v in product.variants if v.id != variant.id for n in re.findall(r"\d{2,}", v.name.zh)}
        keys |= {n + "的" for n in numbers - other_numbers} | {n + "ml" for n in numbers - other_numbers}
        keys |= {k.replace("英寸", "寸") for k in keys if "英寸" in k}  # "15.6寸" for 15.6英寸
        out.append((variant.id, frozenset(k for k in keys if k)))
    return out


_COUNTED = "[瓶罐包盒袋支片层件套双斤只条张颗粒本把卷对]|个装"
_METRES = re.compile(r"(\d+)米(\d)?(?!\d)")
""""1米8" is 1.8 m and "3米宽" 3 m, the way variant names write them."""
_EN_UNITS = {"cm", "mm", "m", "kg", "g", "ml", "l", "inch", "inches", "in", "lb", "oz"}
_VARIANT_FILLER = set("款版号码色个只的和含与及不没")
"""Characters every kind of variant name uses: a pair with one of them names no variant."""


def _variant_by_amount(product: Product | None, packs: tuple[tuple[str, float], ...]) -> str | None:
    if product is None:
        return None
    found = [
        v.id
        for v in product.variants
        if any(
            kind == k and abs(value - amount) < 1e-6
            for kind, value in packs
            for k, amount in L.amounts(L.normalize(f"{v.name.zh} {v.name.en}"))
        )
    ]
    return found[0] if len(set(found)) == 1 else None


def _variant_by_length(product: Product | None, text: str) -> str | None:
    """The one variant whose name has every length the text names (in any unit), or every
    side of a "3x2" said without a unit, in that order."""
    if product is None:
        return None
    asked, sides = L.lengths(text), L.sides(text)
    if not asked and not sides:
        return None
    found = []
    for v in product.variants:
        name = L.normalize(f"{v.name.zh} {v.name.en}")
        has = L.lengths(name)
        numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", L.normalize(v.name.zh))]
        by_length = bool(asked) and all(any(abs(a - h) < 1e-6 for h in has) for a in asked)
        if by_length or (not asked and any(_in_order(side, numbers) for side in sides)):
            found.append(v.id)
    return found[0] if len(found) == 1 else None


def _variant_by_numbers(product: Product | None, text: str) -> str | None:
    """The one variant whose name holds every number the text gives (two or more; not a link's "6号")."""
    if product is None:
        return None
    said = set(re.findall(r"(?<![\d.])\d+(?:\.\d+)?(?![\d.]|\s*号)", re.sub(r"link\s*#?\s*\d+", " ", text)))
    if len(said) < 2:
        return None
    found = [
        v.id
        for v in product.variants
        if said <= set(re.findall(r"\d+(?:\.\d+)?", L.normalize(f"{v.name.zh} {v.name.en}")))
    ]
    return found[0] if len(found) == 1 else None


_SIZE_LIKE = frozenset({"area", "occupancy", "dimensions", "volume"})


def _variant_by_range(product: Product | None, text: str) -> str | None:
    """The first variant whose range holds the room size or the number of people the text
    names ("客厅35平" of "for rooms of 25–40 m²", "两个人" of "3L（1-3人）")."""
    if product is None:
        return None
    area = [float(m) for m in L.AREA_ASKED.findall(L.with_digits(text, followed_by="(?:平|个平)"))]
    for asked, ranges in ((area, L.AREA_RANGE), (L.people(text), L.PEOPLE_RANGE)):
        for v in product.variants:
            if asked and L.in_ranges(L.normalize(v.name.zh + " " + v.name.en), asked, ranges):
                return v.id  # (ranges overlap: the first listed that holds it, listings go small to large)
    # "身高130" of "小号（身高115–135厘米）", "8岁" of "6-8岁": the viewer's own measure in a
    # range the version's name gives
    for kind, value in L.quantities(text):
        if kind not in _OWN_RANGE:
            continue
        pattern, scale = _OWN_RANGE[kind]
        for v in product.variants:
            for low, high in pattern.findall(L.normalize(v.name.zh)):
                if float(low) * scale <= value <= float(high) * scale:
                    return v.id
    return None


_OWN_RANGE = {
    "height": (re.compile(r"身高\s*(\d+)\s*[-–~到至]\s*(\d+)"), 1.0),
    "age": (re.compile(r"(\d+)\s*[-–~到至]\s*(\d+)\s*岁"), 12.0),  # (ages are read in months)
}


def _in_order(wanted: tuple[float, ...], numbers: list[float]) -> bool:
    it = iter(numbers)
    return all(any(abs(w - n) < 1e-6 for n in it) for w in wanted)


def _says_number(number: str, text: str) -> bool:
    return re.search(rf"(?<![\d.]){number}(?![\d.])", text) is not None


def _says_key(key: str, text: str) -> bool:
    """The key is in the text, a key starting with a digit not inside a longer number
    ("5公斤" is not said by "55公斤")."""
    if not key[:1].isdigit():
        if L.CJK.search(key) is None:
            # A Latin key is a whole word: "L" is not said by "XL", "S" not by "what's".
            return re.search(r"(?<![a-z0-9'’])" + re.escape(key) + r"(?![a-z0-9])", text) is not None
        return key in text
    if key.replace(".", "").isdigit():
        # A bare number ("120" of "120粒") is not said by another amount ("120斤", "1200").
        return re.search(_NOT_IN_A_NUMBER + re.escape(key) + _NOT_ANOTHER_AMOUNT, text) is not None
    # ("2米" is not said by "2米7": that is 2.7 m)
    return re.search(_NOT_IN_A_NUMBER + re.escape(key) + (r"(?!\d)" if key.endswith("米") else ""), text) is not None


_COMPARED = re.compile(r"和|跟|与|还是|比|差多少|区别|\bvs\b|\band\b|\bor\b|difference|compare")


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def content_words(residue: str) -> list[str]:
    """Chinese character pairs and English words of the leftover text that can name a thing
    (no question words, particles or pairs across them)."""
    out: list[str] = []
    for chunk in residue.split():
        if L.CJK.search(chunk):
            # "70公斤" is the viewer's
            out += [p for p in _pairs(chunk) if not any(p in row for row in L.UNITS) and not _is_cue(p)]
        elif len(chunk) >= 4 and chunk not in L.STOP_EN and not _is_cue(chunk):
            out.append(chunk)
    return list(dict.fromkeys(out))


def _pairs(chunk: str) -> list[str]:
    """The chunk's Chinese character pairs without a function character."""
    return [
        chunk[i : i + 2]
        for i in range(len(chunk) - 1)
        if L.CJK.match(chunk[i]) and L.CJK.match(chunk[i + 1]) and not set(chunk[i : i + 2]) & _FUNCTION_CHARS
    ]


_FUNCTION_CHARS = set("啥什么吗呢了的是有能可以会不没怎咋哪几多少这那个吧啊呀也都还就要给")


def _colour_before_name(text: str, spans: list[tuple[int, int, str, float]]) -> tuple[str, ...]:
    """A colour said as the first character of a product's name ("有黑珍珠的吗", "有红笔吗"):
    a black one of them, not a product called so."""
    out = [text[s - 1] + "色" for s, _, _, _ in spans if s > 0 and text[s - 1] in _PLAIN_COLOURS]
    if any(s > 1 and L.CJK.match(text[s - 2]) and text[s - 2] not in "有是要买的个款" for s, _, _, _ in spans):
        return ()  # "纯白茶": a longer name, not a colour
    return tuple(dict.fromkeys(out))


_PLAIN_COLOURS = set("黑白红蓝绿黄粉紫灰")

_AFTER_POINTING = re.compile(r"[这那][个款件条双套瓶盒只支台把]$")
_VERB_AFTER_HEAD = set("开卷被坏断掉生会能可是有的多几怎咋还要也都用洗在质保退换送带一贴穿戴吃喝放装破漏")
_RETURN_WORDS = re.compile(r"退|换|return|refund|exchange")

_NOT_IN_A_NUMBER = r"(?<![\d.])(?<![^a-z][a-z])(?<!^[a-z])"
"""Not inside a longer number, nor a model's ("5本" is not in "a5本子"; "xjj2瓶" has 2瓶)."""
_NOT_ANOTHER_AMOUNT = (
    r"(?![\d.]|\s*(?:斤|公斤|千克|克|岁|个月|周|厘米|公分|毫米|米|元|块|瓦|分钟|小时|天|年|度|张|片|粒|颗|双|件|支|"
    r"(?:kg|g|cm|mm|m|w|yrs?|years?|months?|mins?|minutes?|hours?|days?|yuan|rmb|bucks?)(?![a-z])))"
)


def _variant_named(keys: list[tuple[str, frozenset[str]]], text: str) -> str | None:
    found = [vid for vid, names in keys if any(_says_key(k, text) for k in names)]
    return found[0] if len(found) == 1 else None
