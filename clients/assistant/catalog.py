"""The product catalogue the assistant answers from: a pydantic model and its YAML loader.

Every fact the assistant may state about a product (besides the room's live price,
stock and flash sale) is a field here; see docs/assistant.md for the file format.
Text that viewers read comes in both languages (`Text`: `{zh: ..., en: ...}`; a plain
string means the same text in both).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

Lang = Literal["zh", "en"]


class Text(BaseModel):
    """A text in Chinese and English."""

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


class Spec(BaseModel):
    """One named specification ("容量: 30ml"), found by its keywords."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(pattern=r"^[a-z0-9_]+$")
    name: Text
    value: Text
    keywords: list[str] = Field(min_length=1)
    """Words a viewer would use to ask for it, in both languages (typos are handled)."""


class Faq(BaseModel):
    """A question with a fixed answer, for one product or the whole shop."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_-]+$")
    keywords: list[str] = Field(min_length=1)
    """Words that identify the question; at least one must be in a viewer's question."""
    questions: list[str] = []
    """Example phrasings, used for lexical ranking between FAQ entries."""
    answer: Text


class Product(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    id: str = Field(pattern=r"^[A-Za-z0-9._-]+$", max_length=64)
    """Catalogue id: the same id ProductPinned.product.product_id and ProductUpdated carry."""
    name: Text
    aliases: list[str] = []
    """Other names viewers use (brand, nickname, short forms, link number), either language."""
    category: Text
    price: Decimal = Field(ge=0)
    """List price in major units (199.5 is ¥199.50); the room's live price overrides it."""
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    """ISO 4217; defaults to the catalogue's."""
    description: Text | None = None
    suitable_for: list[Text] = []
    """Who or what it is for ("干皮" / "dry skin"): stated as facts, used to recommend."""
    tags: list[str] = []
    """More search words for recommendations; never stated."""
    sizes: list[str] = []
    size_note: Text | None = None
    colours: list[Text] = Field(default=[], validation_alias=AliasChoices("colours", "colors"))
    ingredients: list[Text] = []
    specs: list[Spec] = []
    shipping: Text | None = None
    """Overrides the shop's shipping policy."""
    returns: Text | None = None
    """Overrides the shop's return policy."""
    faq: list[Faq] = []

    @field_validator("price", mode="before")
    @classmethod
    def _price_from_text(cls, value: Any) -> Any:
        # YAML reads 199.9 as a float; go through str so 199.9 stays 199.9.
        return str(value) if isinstance(value, float) else value

    def price_minor(self) -> int:
        return int((self.price * 100).to_integral_value())


class Catalogue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    shop: Text
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    shipping: Text
    """The shop's shipping policy."""
    returns: Text
    """The shop's return policy."""
    faq: list[Faq] = []
    """Shop-wide questions (payment, invoices, authenticity, ...)."""
    products: list[Product] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> Catalogue:
        seen: set[str] = set()
        for product in self.products:
            if product.id in seen:
                raise ValueError(f"duplicate product id {product.id!r}")
            seen.add(product.id)
            specs = [spec.key for spec in product.specs]
            if len(specs) != len(set(specs)):
                raise ValueError(f"product {product.id!r}: duplicate spec keys")
        faq_ids = [entry.id for entry in self.faq] + [f.id for p in self.products for f in p.faq]
        if len(faq_ids) != len(set(faq_ids)):
            raise ValueError("FAQ ids must be unique across the catalogue")
        return self

    def product(self, product_id: str) -> Product | None:
        for product in self.products:
            if product.id == product_id:
                return product
        return None

    def currency_of(self, product: Product) -> str:
        return product.currency or self.currency


class CatalogueError(ValueError):
    """The catalogue file cannot be read or does not match the format."""


def load_catalogue(path: str | Path) -> Catalogue:
    """Read a catalogue from a YAML file (see docs/assistant.md)."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError(f"cannot read catalogue {path}: {exc}") from exc
    try:
        return Catalogue.model_validate(raw)
    except ValueError as exc:
        raise CatalogueError(f"catalogue {path} is not valid: {exc}") from exc


DATA_DIR = Path(__file__).resolve().parent / "data"
SAMPLE_CATALOGUE = DATA_DIR / "catalog.yaml"
