"""Facts: what the assistant may state, each rendered in both languages with the values
it was built from (its sources, for the grounding check).

The templates here hold no numbers of their own: every number in a sentence comes from
a source value (tests/test_assistant.py checks the templates).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from barrage.clients.assistant.catalog import Catalogue, Faq, Lang, Product, Spec, Text
from barrage.clients.assistant.state import FlashSale, LiveState, Price

CURRENCY_SIGNS = {"CNY": "¥", "RMB": "¥", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "JP¥", "HKD": "HK$"}


def money(price: Price) -> str:
    """¥199, ¥199.50, $12.99 (whole amounts without decimals)."""
    sign = CURRENCY_SIGNS.get(price.currency, price.currency + " ")
    whole, cents = divmod(abs(price.amount_minor), 100)
    body = f"{whole}" if cents == 0 else f"{whole}.{cents:02d}"
    return f"{'-' if price.amount_minor < 0 else ''}{sign}{body}"


def zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return timezone(timedelta(hours=8)) if name == "Asia/Shanghai" else UTC


def clock(ms: int, tz: tzinfo) -> str:
    return datetime.fromtimestamp(ms / 1000, tz).strftime("%H:%M")


@dataclass(frozen=True, slots=True)
class Fact:
    kind: str
    """price, stock, sizes, colours, ingredients, suitable, about, spec:<key>, faq:<id>,
    shipping, returns, on_sale, no_sale, recommend."""
    product_id: str | None
    zh: str
    en: str
    sources: tuple[str, ...]
    """The catalogue and live values the sentences state."""

    def text(self, lang: Lang) -> str:
        return self.zh if lang == "zh" else self.en

    @property
    def key(self) -> tuple[str, str | None]:
        return self.kind, self.product_id


def _list(items: list[Text], lang: Lang) -> str:
    return ("、" if lang == "zh" else ", ").join(item.get(lang) for item in items)


class FactBook:
    """Renders facts about the catalogue's products and the room's live state."""

    def __init__(self, catalogue: Catalogue, tz: str = "Asia/Shanghai") -> None:
        self.catalogue = catalogue
        self.tz = zone(tz)

    # ------------------------------------------------------------------ values

    def name(self, product_id: str, state: LiveState, lang: Lang) -> str:
        product = self.catalogue.product(product_id)
        if product is not None:
            return product.name.get(lang)
        live = state.product(product_id)
        return live.title if live is not None and live.title else product_id

    def list_price(self, product: Product) -> Price:
        return Price(product.price_minor(), self.catalogue.currency_of(product))

    def price(self, product_id: str, state: LiveState) -> Price | None:
        """The live price (card, product_updated), else the catalogue's."""
        live = state.product(product_id)
        if live is not None and live.price is not None:
            return live.price
        product = self.catalogue.product(product_id)
        return self.list_price(product) if product is not None else None

    # ------------------------------------------------------------------- facts

    def price_fact(self, product_id: str, state: LiveState, now_ms: int) -> Fact | None:
        zh_name, en_name = self.name(product_id, state, "zh"), self.name(product_id, state, "en")
        sale = state.sale_of(product_id, now_ms)
        price = self.price(product_id, state)
        if sale is not None and sale.price is not None:
            sale_text = money(sale.price)
            sources = [zh_name, en_name, sale_text]
            zh = f"{zh_name} 秒杀价 {sale_text}"
            en = f"{en_name}: flash-sale price {sale_text}"
            if price is not None and price != sale.price:
                sources.append(money(price))
                zh += f"（原价 {money(price)}）"
                en += f" (regular {money(price)})"
            if not sale.running(now_ms):
                start = clock(sale.start_ms, self.tz)
                sources.append(start)
                zh += f"，{start} 开抢"
                en += f", starts at {start}"
            if sale.limit_per_user:
                sources.append(str(sale.limit_per_user))
                zh += f"，每人限购 {sale.limit_per_user} 件"
                en += f", limit {sale.limit_per_user} per person"
            return Fact("price", product_id, zh, en, tuple(sources))
        if price is None:
            return None
        text = money(price)
        return Fact("price", product_id, f"{zh_name} 现价 {text}", f"{en_name} is {text}", (zh_name, en_name, text))

    def stock_fact(self, product_id: str, state: LiveState, now_ms: int) -> Fact | None:
        zh_name, en_name = self.name(product_id, state, "zh"), self.name(product_id, state, "en")
        sale = state.sale_of(product_id, now_ms)
        if sale is not None:
            return self._stock_sentence(product_id, zh_name, en_name, sale.stock, sale=True)
        live = state.product(product_id)
        if live is None or live.stock is None:
            return None
        return self._stock_sentence(product_id, zh_name, en_name, live.stock, sale=False)

    @staticmethod
    def _stock_sentence(product_id: str, zh_name: str, en_name: str, stock: int, *, sale: bool) -> Fact:
        if stock <= 0:
            zh = f"{zh_name}{'秒杀' if sale else ''}已售罄"
            en = f"{en_name} is sold out{' in the flash sale' if sale else ''}"
            return Fact("stock", product_id, zh, en, (zh_name, en_name))
        count = str(stock)
        zh = f"{zh_name}{'秒杀' if sale else ''}还剩 {count} 件"
        en = f"{en_name}: {count} left{' in the flash sale' if sale else ''}"
        return Fact("stock", product_id, zh, en, (zh_name, en_name, count))

    def sizes_fact(self, product: Product, asked: list[str]) -> Fact | None:
        if not product.sizes:
            return None
        sizes = " / ".join(product.sizes)
        have = [size for size in product.sizes if size in asked]
        zh = f"{product.name.zh} {'有 ' + '、'.join(have) + '，' if have else ''}尺码：{sizes}"
        en = f"{product.name.en} {'comes in ' + ', '.join(have) + '; ' if have else ''}sizes: {sizes}"
        sources = [product.name.zh, product.name.en, sizes]
        if product.size_note is not None:
            zh += f"（{product.size_note.zh}）"
            en += f" ({product.size_note.en})"
            sources += [product.size_note.zh, product.size_note.en]
        return Fact("sizes", product.id, zh, en, tuple(sources))

    def colours_fact(self, product: Product) -> Fact | None:
        return _list_fact("colours", product, product.colours, "颜色：", "colours:")

    def ingredients_fact(self, product: Product) -> Fact | None:
        return _list_fact("ingredients", product, product.ingredients, "成分：", "ingredients:")

    def suitable_fact(self, product: Product) -> Fact | None:
        return _list_fact("suitable", product, product.suitable_for, "适合：", "is for:")

    def about_fact(self, product_id: str, state: LiveState, now_ms: int) -> Fact | None:
        product = self.catalogue.product(product_id)
        price = self.price_fact(product_id, state, now_ms)
        if product is None:
            return price
        zh, en = product.name.zh, product.name.en
        sources: list[str] = [zh, en]
        if product.description is not None:
            zh += f"：{product.description.zh}"
            en += f": {product.description.en}"
            sources += [product.description.zh, product.description.en]
        if price is not None:
            zh += f"；{price.zh}"
            en += f". {price.en}"
            sources += price.sources
        return Fact("about", product_id, zh, en, tuple(sources))

    def spec_fact(self, product: Product, spec: Spec) -> Fact:
        return Fact(
            f"spec:{spec.key}",
            product.id,
            f"{product.name.zh} {spec.name.zh}：{spec.value.zh}",
            f"{product.name.en} {spec.name.en}: {spec.value.en}",
            (product.name.zh, product.name.en, spec.value.zh, spec.value.en),
        )

    @staticmethod
    def faq_fact(entry: Faq, product: Product | None) -> Fact:
        return Fact(
            f"faq:{entry.id}",
            product.id if product is not None else None,
            entry.answer.zh,
            entry.answer.en,
            (entry.answer.zh, entry.answer.en),
        )

    def policy_fact(self, kind: str, product: Product | None) -> Fact:
        """shipping or returns: the product's own policy, else the shop's."""
        own: Text | None = getattr(product, kind) if product is not None else None
        policy: Text = own or getattr(self.catalogue, kind)
        label_zh, label_en = ("发货", "Shipping") if kind == "shipping" else ("退换", "Returns")
        if own is not None and product is not None:
            zh, en = f"{product.name.zh} {label_zh}：{policy.zh}", f"{product.name.en} — {label_en}: {policy.en}"
            sources: tuple[str, ...] = (product.name.zh, product.name.en, policy.zh, policy.en)
        else:
            zh, en = f"{label_zh}：{policy.zh}", f"{label_en}: {policy.en}"
            sources = (policy.zh, policy.en)
        return Fact(kind, product.id if own is not None and product is not None else None, zh, en, sources)

    def recommend_fact(self, product: Product, state: LiveState, now_ms: int) -> Fact:
        zh, en = product.name.zh, product.name.en
        sources: list[str] = [zh, en]
        price = self.price(product.id, state)
        sale = state.sale_of(product.id, now_ms)
        if sale is not None and sale.price is not None:
            zh += f" 秒杀价 {money(sale.price)}"
            en += f" (flash sale {money(sale.price)})"
            sources.append(money(sale.price))
        elif price is not None:
            zh += f" {money(price)}"
            en += f" {money(price)}"
            sources.append(money(price))
        if product.suitable_for:
            zh_list, en_list = _list(product.suitable_for, "zh"), _list(product.suitable_for, "en")
            zh += f"，适合{zh_list}"
            en += f", for {en_list}"
            sources += [zh_list, en_list]
        return Fact("recommend", product.id, zh, en, tuple(sources))

    def sale_facts(self, state: LiveState, now_ms: int) -> list[Fact]:
        """What is on now: the pinned card and the flash sale (or that there is none)."""
        facts: list[Fact] = []
        sale = state.current_sale(now_ms)
        if state.pinned_id is not None and (sale is None or sale.product_id != state.pinned_id):
            price = self.price_fact(state.pinned_id, state, now_ms)
            zh_name = self.name(state.pinned_id, state, "zh")
            en_name = self.name(state.pinned_id, state, "en")
            if price is not None:
                zh, en = f"正在讲解：{price.zh}", f"On screen now: {price.en}"
                sources = price.sources
            else:
                zh, en, sources = f"正在讲解：{zh_name}", f"On screen now: {en_name}", (zh_name, en_name)
            facts.append(Fact("on_sale", state.pinned_id, zh, en, sources))
        if sale is not None:
            facts.append(self._sale_fact(sale, state, now_ms))
        if not facts:
            facts.append(Fact("no_sale", None, "现在没有正在讲解的商品或秒杀活动", "Nothing is on sale right now", ()))
        return facts

    def _sale_fact(self, sale: FlashSale, state: LiveState, now_ms: int) -> Fact:
        zh_name, en_name = self.name(sale.product_id, state, "zh"), self.name(sale.product_id, state, "en")
        if not zh_name or zh_name == sale.product_id:
            zh_name = en_name = sale.title or sale.product_id
        sources: list[str] = [zh_name, en_name]
        zh, en = f"秒杀：{zh_name}", f"Flash sale: {en_name}"
        if sale.price is not None:
            zh += f" {money(sale.price)}"
            en += f" at {money(sale.price)}"
            sources.append(money(sale.price))
        if sale.running(now_ms):
            if sale.stock > 0:
                zh += f"，还剩 {sale.stock} 件"
                en += f", {sale.stock} left"
                sources.append(str(sale.stock))
            else:
                zh += "，已抢光"
                en += ", sold out"
        else:
            start = clock(sale.start_ms, self.tz)
            zh += f"，{start} 开抢"
            en += f", starts at {start}"
            sources.append(start)
        if sale.limit_per_user:
            zh += f"，每人限购 {sale.limit_per_user} 件"
            en += f", limit {sale.limit_per_user} per person"
            sources.append(str(sale.limit_per_user))
        if sale.end_ms and sale.running(now_ms):
            end = clock(sale.end_ms, self.tz)
            zh += f"，{end} 结束"
            en += f", ends at {end}"
            sources.append(end)
        return Fact("on_sale", sale.product_id, zh, en, tuple(sources))


def _list_fact(kind: str, product: Product, items: list[Text], zh_label: str, en_label: str) -> Fact | None:
    """A fact that lists a product's colours, ingredients, or who it suits, in both languages."""
    if not items:
        return None
    zh_list, en_list = _list(items, "zh"), _list(items, "en")
    return Fact(
        kind,
        product.id,
        f"{product.name.zh} {zh_label}{zh_list}",
        f"{product.name.en} {en_label} {en_list}",
        (product.name.zh, product.name.en, zh_list, en_list),
    )
