"""The product funnel: what was on screen, who was there, who talked about it, asked, bought.

A product is *on screen* from `product_pinned` until `product_unpinned` (or the next
pin: one card is pinned at a time), and from `flash_sale_started` until
`flash_sale_ended`. Each stay on screen is a Pin that collects the viewers present at
any time during it (those present when it starts, and every arrival until it ends), and
the purchases of the product made during it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from barrage.server.insights.text import AliasIndex, title_aliases
from barrage.v1 import event_pb2


@dataclass
class Pin:
    start: int
    end: int = -1
    """-1 while on screen."""
    viewers: set[str] = field(default_factory=set)
    purchases: int = 0
    units: int = 0
    buyers: set[str] = field(default_factory=set)


@dataclass
class Product:
    product_id: str
    title: str = ""
    price: event_pb2.Money | None = None
    pins: list[Pin] = field(default_factory=list)
    mentions: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    """Bucket -> viewers' comments naming the product."""
    mentioners: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    questions: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    purchases: dict[int, int] = field(default_factory=lambda: defaultdict(int))


def load_alias_file(path: str) -> dict[str, list[str]]:
    """An alias file: JSON object, product id -> list of names ("sku-1": ["口红", "lipstick"])."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(a, str) for a in v) for k, v in doc.items()
    ):
        raise ValueError(f"{path}: expected a JSON object of product id -> list of aliases")
    return {k: list(v) for k, v in doc.items()}


@dataclass
class Products:
    extra_aliases: dict[str, list[str]] = field(default_factory=dict)
    products: dict[str, Product] = field(default_factory=dict)
    aliases: AliasIndex = field(default_factory=AliasIndex)
    pinned: str = ""
    """The pinned card's product id ("" if none)."""
    sales: dict[str, str] = field(default_factory=dict)
    """Running flash sale id -> product id."""

    def __post_init__(self) -> None:
        for product_id, names in self.extra_aliases.items():
            self.aliases.add(product_id, names)

    def on_sale(self) -> str | None:
        """The product of the newest running flash sale."""
        return next(reversed(self.sales.values()), None)

    def on_screen(self) -> list[str]:
        shown = [self.pinned] if self.pinned else []
        shown.extend(p for p in self.sales.values() if p not in shown)
        return shown

    def product(self, product_id: str) -> Product:
        product = self.products.get(product_id)
        if product is None:
            product = self.products[product_id] = Product(product_id)
        return product

    def _show(self, card: event_pb2.Product, at: int, present: set[str]) -> None:
        product = self.product(card.product_id)
        if card.title and card.title != product.title:
            product.title = card.title
            self.aliases.add(card.product_id, title_aliases(card.title))
        if card.HasField("price"):
            product.price = card.price
        if not product.pins or product.pins[-1].end >= 0:
            product.pins.append(Pin(at, viewers=set(present)))

    def _hide(self, product_id: str, at: int) -> None:
        if product_id in self.on_screen():
            return  # still on screen another way (pinned and on sale)
        product = self.products.get(product_id)
        if product is not None and product.pins and product.pins[-1].end < 0:
            product.pins[-1].end = max(at, product.pins[-1].start)

    def pin(self, card: event_pb2.Product, at: int, present: set[str]) -> None:
        previous = self.pinned
        self.pinned = ""
        if previous and previous != card.product_id:
            self._hide(previous, at)
        self.pinned = card.product_id
        self._show(card, at, present)

    def unpin(self, product_id: str, at: int) -> None:
        if self.pinned == product_id:
            self.pinned = ""
            self._hide(product_id, at)

    def sale_started(self, sale: event_pb2.FlashSaleStarted, at: int, present: set[str]) -> None:
        self.sales[sale.sale_id] = sale.product.product_id
        self._show(sale.product, at, present)

    def sale_ended(self, sale_id: str, at: int) -> None:
        product_id = self.sales.pop(sale_id, None)
        if product_id is not None:
            self._hide(product_id, at)

    def updated(self, update: event_pb2.ProductUpdated) -> None:
        product = self.products.get(update.product_id)
        if product is not None and update.HasField("price"):
            product.price = update.price

    def arrived(self, user_id: str) -> None:
        for product_id in self.on_screen():
            self.products[product_id].pins[-1].viewers.add(user_id)

    def purchased(self, product_id: str, buyer: str, quantity: int, bucket: int) -> None:
        product = self.product(product_id)
        product.purchases[bucket] += 1
        if product_id in self.on_screen() and product.pins:
            pin = product.pins[-1]
            pin.purchases += 1
            pin.units += quantity
            pin.buyers.add(buyer)

    def closed(self, at: int) -> None:
        for product_id in self.on_screen():
            pins = self.products[product_id].pins
            if pins and pins[-1].end < 0:
                pins[-1].end = max(at, pins[-1].start)
        self.pinned = ""
        self.sales.clear()
