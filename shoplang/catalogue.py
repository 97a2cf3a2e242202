"""Catalogue format v2: what a live-shopping listing really holds, validated on load.

Compared with the assistant's first format (clients/assistant/catalog.py) a product can
carry its crossed-out list price, per-variant prices, warranty, who it is NOT for (with
limits such as a weight or an age), structured shipping (ships from, regions served and
excluded, carrier, dispatch and delivery time, fee or free-shipping threshold), a size
chart, a gift with purchase during the live show and a flash sale's per-user limit note.
Live values (the pinned card's price, stock, a running flash sale) still come from room
events; the catalogue is what the shop knows before the show.

Texts viewers read are `{zh: ..., en: ...}`, or one string meaning the same in both.
`load_catalogue` raises CatalogueError naming the product and the field that is wrong
("product 'sku-x' (products[3]) field 'variants[1].price': ...").
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Lang = Literal["zh", "en"]
ID_PATTERN = r"^[A-Za-z0-9._-]+$"


class Text(BaseModel):
    """A text in Chinese and English (a plain string: the same in both)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _plain_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"zh": value, "en": value}
        return value

    def get(self, lang: Lang) -> str:
        return self.zh if lang == "zh" else self.en


def _decimal(value: Any) -> Any:
    # YAML reads 19.9 as a float; through str so 19.9 stays 19.9 (not 19.899999...).
    return str(value) if isinstance(value, float) else value


Money = Decimal
"""Amounts are in major units of the catalogue's currency (19.9 is ¥19.90)."""


class Variant(BaseModel):
    """One purchasable option (a flavour, a capacity, a pack size) with its own price."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=ID_PATTERN, max_length=64)
    name: Text
    price: Money | None = Field(default=None, ge=0)
    """Its price; None: the product's price."""
    list_price: Money | None = Field(default=None, ge=0)

    _money = field_validator("price", "list_price", mode="before")(_decimal)


class Limit(BaseModel):
    """A measurable bound of who a product is or is not for ("under 3 years", "over 100 kg")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quantity: Literal["age", "weight", "height", "other"]
    unit: str = Field(min_length=1)
    """"months", "years", "kg", "cm", ..."""
    min: Decimal | None = None
    max: Decimal | None = None

    @model_validator(mode="after")
    def _bounded(self) -> Limit:
        if self.min is None and self.max is None:
            raise ValueError("a limit needs min or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is above max")
        return self


class Audience(BaseModel):
    """A group of people (or uses) a product is for, or NOT for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    who: Text
    limit: Limit | None = None


class Spec(BaseModel):
    """A named specification ("容量 / capacity: 20000mAh")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(pattern=r"^[a-z0-9_]+$")
    name: Text
    value: Text
    keywords: list[str] = []
    """Extra words viewers use to ask for it (the name is always one)."""


class Shipping(BaseModel):
    """Where from, where to, by whom, how fast and at what cost."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ships_from: Text
    regions: list[Text] = Field(min_length=1)
    """Regions served (e.g. "中国大陆")."""
    excluded: list[Text] = []
    """Regions not served although inside `regions` (e.g. remote areas)."""
    carrier: Text
    dispatch_hours: int = Field(gt=0)
    """Ships within this many hours of the order."""
    delivery_days: tuple[int, int]
    """Usually arrives within [min, max] days of dispatch."""
    fee: Money = Field(default=Decimal(0), ge=0)
    free_over: Money | None = Field(default=None, ge=0)
    """Free shipping for orders of at least this amount; None: `fee` always applies (0 = free)."""
    note: Text | None = None

    _money = field_validator("fee", "free_over", mode="before")(_decimal)

    @field_validator("delivery_days")
    @classmethod
    def _days(cls, value: tuple[int, int]) -> tuple[int, int]:
        if value[0] < 0 or value[0] > value[1]:
            raise ValueError("delivery_days must be [min, max] with 0 <= min <= max")
        return value


class Returns(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    days: int = Field(ge=0)
    """No-reason return window in days (0: none)."""
    note: Text | None = None
    """Conditions ("unopened", "quality problems only")."""


class Warranty(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    months: int = Field(ge=0)
    note: Text | None = None


class SizeChart(BaseModel):
    """A table: one row per size, one column per measure ("身高 / height (cm)")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    columns: list[Text] = Field(min_length=1)
    rows: dict[str, list[str]] = Field(min_length=1)
    """Size -> values, one per column."""

    @model_validator(mode="after")
    def _shape(self) -> SizeChart:
        for size, values in self.rows.items():
            if len(values) != len(self.columns):
                raise ValueError(f"size {size!r} has {len(values)} values for {len(self.columns)} columns")
        return self


class Faq(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_-]+$")
    question: Text
    """The question as a viewer would ask it."""
    keywords: list[str] = []
    answer: Text


class Product(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=ID_PATTERN, max_length=64)
    """= ProductPinned.product.product_id."""
    name: Text
    brand: str | None = None
    aliases: list[str] = []
    """Nicknames and short forms viewers use, either language (link numbers too)."""
    category: Text
    """The everyday noun for what it is ("纸尿裤" / "diapers")."""
    price: Money = Field(ge=0)
    """The shop's price before the show; the room's live price overrides it."""
    list_price: Money | None = Field(default=None, ge=0)
    """The crossed-out reference price."""
    description: Text | None = None
    variants: list[Variant] = []
    colours: list[Text] = []
    sizes: list[str] = []
    size_chart: SizeChart | None = None
    materials: list[Text] = []
    """Ingredients or materials."""
    specs: list[Spec] = []
    suitable_for: list[Audience] = []
    not_for: list[Audience] = []
    warranty: Warranty | None = None
    shipping: Shipping | None = None
    """Overrides the shop's shipping."""
    returns: Returns | None = None
    """Overrides the shop's returns."""
    gift_with_purchase: Text | None = None
    """What a buyer gets free during the live show."""
    flash_sale_note: Text | None = None
    """The per-user limit and conditions when it is in a flash sale."""
    faq: list[Faq] = []

    _money = field_validator("price", "list_price", mode="before")(_decimal)

    @model_validator(mode="after")
    def _consistent(self) -> Product:
        _unique("variants", [v.id for v in self.variants])
        _unique("specs", [s.key for s in self.specs])
        _unique("sizes", self.sizes)
        if self.list_price is not None and self.list_price < self.price:
            raise ValueError(f"list_price {self.list_price} is below price {self.price}")
        if self.size_chart is not None:
            unknown = set(self.size_chart.rows) - set(self.sizes)
            if self.sizes and unknown:
                raise ValueError(f"size_chart has sizes not in sizes: {sorted(unknown)}")
        return self


class Catalogue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal[2]
    shop: Text
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    shipping: Shipping
    returns: Returns
    faq: list[Faq] = []
    products: list[Product] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> Catalogue:
        _unique("products", [p.id for p in self.products])
        _unique("faq", [f.id for f in self.faq] + [f.id for p in self.products for f in p.faq])
        return self

    def product(self, product_id: str) -> Product | None:
        return next((p for p in self.products if p.id == product_id), None)


def _unique(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise ValueError(f"duplicate id {item!r} in {what}")
        seen.add(item)


class CatalogueError(ValueError):
    """The catalogue cannot be read or does not match format v2."""


def describe(error: ValidationError, raw: Any) -> str:
    """Pydantic's errors, each naming the product (by id) and the field."""
    lines = []
    for item in error.errors():
        loc = list(item["loc"])
        where = ".".join(str(part) for part in loc) or "catalogue"
        if len(loc) >= 2 and loc[0] == "products" and isinstance(loc[1], int):
            index = loc[1]
            pid = "?"
            products = raw.get("products") if isinstance(raw, dict) else None
            if isinstance(products, list) and index < len(products) and isinstance(products[index], dict):
                pid = str(products[index].get("id", "?"))
            field = _field_path(loc[2:]) or "(the product)"
            where = f"product {pid!r} (products[{index}]) field {field!r}"
        lines.append(f"{where}: {item['msg']}")
    return "; ".join(lines)


def _field_path(parts: list[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_catalogue(raw: Any, source: str = "catalogue") -> Catalogue:
    try:
        return Catalogue.model_validate(raw)
    except ValidationError as exc:
        raise CatalogueError(f"{source} is not a valid v2 catalogue: {describe(exc, raw)}") from exc


def load_catalogue(path: str | Path) -> Catalogue:
    """Read a v2 catalogue from a YAML file."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError(f"cannot read catalogue {path}: {exc}") from exc
    return parse_catalogue(raw, str(path))


def is_v2(path: str | Path) -> bool:
    """Whether a catalogue file declares `format: 2` (else it is the assistant's first format)."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(raw, dict) and raw.get("format") == 2
