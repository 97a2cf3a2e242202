"""The room's live shopping state, folded from its events (as the server folds it).

The join snapshot gives the pinned card and the running flash sale; then
product_pinned / _unpinned / _updated and flash_sale_started / _stock / _ended keep it
current. Live values win over the catalogue: the price a viewer sees on the card is
the price the assistant states.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from barrage.v1 import event_pb2
from barrage.v1 import room_service_pb2 as rs

log = logging.getLogger(__name__)

MAX_PRODUCTS = 10_000
"""Live entries kept (a room shows dozens of products; this only bounds a flood)."""


@dataclass(frozen=True, slots=True)
class Price:
    amount_minor: int
    currency: str


@dataclass(slots=True)
class LiveProduct:
    product_id: str
    title: str = ""
    price: Price | None = None
    stock: int | None = None
    """Units left; None when unknown or not tracked."""


@dataclass(slots=True)
class FlashSale:
    sale_id: str
    product_id: str
    title: str
    price: Price | None
    stock: int
    limit_per_user: int
    start_ms: int
    end_ms: int

    def running(self, now_ms: int) -> bool:
        return self.start_ms <= now_ms and (self.end_ms == 0 or now_ms < self.end_ms)


def _price(money: event_pb2.Money) -> Price | None:
    return Price(money.amount_minor, money.currency) if money.currency else None


def _stock(stock: int) -> int | None:
    return stock if stock >= 0 else None


@dataclass
class LiveState:
    pinned_id: str | None = None
    products: dict[str, LiveProduct] = field(default_factory=dict)
    sale: FlashSale | None = None
    slow_mode_s: float = 0.0
    skipped: int = 0
    """Events (and snapshot parts) that could not be applied and were skipped."""

    def reset(self, snapshot: rs.RoomSnapshot) -> None:
        """Start over from a join snapshot (after a fresh join or a resume gap).

        Never raises: a part of the snapshot that cannot be applied (a time or duration
        out of range) is left out with an ERROR log, and the rest still applies."""
        self.pinned_id = None
        self.sale = None
        try:
            self._reset(snapshot)
        except Exception:  # a bad value must not stop the assistant
            self.skipped += 1
            log.exception("room snapshot: a part could not be applied and was skipped")

    def _reset(self, snapshot: rs.RoomSnapshot) -> None:
        self.pinned_id = None
        self.sale = None
        if snapshot.HasField("pinned_product") and snapshot.pinned_product.product_id:
            self._card(snapshot.pinned_product)
            self.pinned_id = snapshot.pinned_product.product_id
        if snapshot.HasField("flash_sale") and snapshot.flash_sale.sale_id:
            self._sale(snapshot.flash_sale)
        self.slow_mode_s = _seconds(snapshot.slow_mode)

    def apply(self, event: event_pb2.Event) -> bool:
        """Apply one live event; False if it could not be applied (then it changed
        nothing, was logged at ERROR and counted in `skipped`): one bad event never
        stops the assistant or corrupts what it knows."""
        try:
            self._apply(event)
        except Exception:  # one event must never stop the assistant
            self.skipped += 1
            kind = event.payload.WhichOneof("kind")
            log.exception("room %s: skipped a %s event that cannot be applied", event.room_id, kind)
            return False
        return True

    def _apply(self, event: event_pb2.Event) -> None:
        payload = event.payload
        kind = payload.WhichOneof("kind")
        if kind == "product_pinned":
            self._card(payload.product_pinned.product)
            self.pinned_id = payload.product_pinned.product.product_id or None
        elif kind == "product_unpinned":
            if self.pinned_id == payload.product_unpinned.product_id or not payload.product_unpinned.product_id:
                self.pinned_id = None
        elif kind == "product_updated":
            update = payload.product_updated
            live = self._entry(update.product_id)
            if update.HasField("price") and update.price.currency:
                live.price = _price(update.price)
            if update.HasField("stock"):
                live.stock = _stock(update.stock)
        elif kind == "flash_sale_started":
            self._sale(payload.flash_sale_started)
        elif kind == "flash_sale_stock":
            if self.sale is not None and self.sale.sale_id == payload.flash_sale_stock.sale_id:
                self.sale.stock = payload.flash_sale_stock.stock
        elif kind == "flash_sale_ended":
            if self.sale is not None and self.sale.sale_id == payload.flash_sale_ended.sale_id:
                self.sale = None
        elif kind == "slow_mode":
            self.slow_mode_s = _seconds(payload.slow_mode.min_interval)

    def product(self, product_id: str) -> LiveProduct | None:
        return self.products.get(product_id)

    def sale_of(self, product_id: str, now_ms: int) -> FlashSale | None:
        """The flash sale of this product, running or about to start."""
        sale = self.sale
        if sale is None or sale.product_id != product_id:
            return None
        if sale.end_ms and now_ms >= sale.end_ms:
            return None
        return sale

    def current_sale(self, now_ms: int) -> FlashSale | None:
        sale = self.sale
        return None if sale is None else self.sale_of(sale.product_id, now_ms)

    def _entry(self, product_id: str) -> LiveProduct:
        live = self.products.get(product_id)
        if live is None:
            if len(self.products) >= MAX_PRODUCTS:
                self.products.pop(next(iter(self.products)))
            live = self.products[product_id] = LiveProduct(product_id)
        return live

    def _card(self, product: event_pb2.Product) -> None:
        if not product.product_id:
            return
        live = self._entry(product.product_id)
        live.title = product.title or live.title
        price = _price(product.price)
        if price is not None:
            live.price = price
        live.stock = _stock(product.stock)

    def _sale(self, started: event_pb2.FlashSaleStarted) -> None:
        # Built completely (times converted, which may raise) before it replaces the old one.
        self.sale = FlashSale(
            sale_id=started.sale_id,
            product_id=started.product.product_id,
            title=started.product.title,
            price=_price(started.product.price),
            stock=started.stock,
            limit_per_user=started.limit_per_user,
            start_ms=started.start_time.ToMilliseconds() if started.HasField("start_time") else 0,
            end_ms=started.end_time.ToMilliseconds() if started.HasField("end_time") else 0,
        )


def _seconds(duration: object) -> float:
    """A Duration in seconds; ValueError when it is not a valid Duration."""
    seconds = duration.ToTimedelta().total_seconds()  # type: ignore[attr-defined]
    return float(seconds)
