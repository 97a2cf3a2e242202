"""A v2 catalogue written out in the assistant's first format (clients/assistant/catalog.py).

Used for the first (held-out) run of the evaluation shops against the assistant as it
was before format v2 existed. The conversion is faithful: what the first format has a
field for goes there; what it has none for (list price, variant prices, warranty, who
it is not for, gift, flash-sale note) becomes a named spec, as a shop operator would
have written it, with the spec's own name as its only keywords; structured shipping,
returns and size charts become text.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from barrage.shoplang.catalogue import Catalogue, Lang, Product, Returns, Shipping, Text


def _money(amount: Decimal) -> str:
    return f"¥{amount.normalize():f}"


def _text(zh: str, en: str) -> dict[str, str]:
    return {"zh": zh, "en": en}


def _t(text: Text) -> dict[str, str]:
    return {"zh": text.zh, "en": text.en}


def _join(items: list[Text], lang: Lang) -> str:
    return ("、" if lang == "zh" else ", ").join(item.get(lang) for item in items)


def shipping_text(s: Shipping) -> dict[str, str]:
    low, high = s.delivery_days
    zh = f"从{s.ships_from.zh}发货，下单后{s.dispatch_hours}小时内发出，{s.carrier.zh}，一般{low}到{high}天送达"
    zh += f"；配送{_join(s.regions, 'zh')}"
    en = f"ships from {s.ships_from.en} within {s.dispatch_hours} hours of the order by {s.carrier.en}"
    en += f", usually arriving in {low} to {high} days; delivers to {_join(s.regions, 'en')}"
    if s.excluded:
        zh += f"（{_join(s.excluded, 'zh')}除外）"
        en += f" (except {_join(s.excluded, 'en')})"
    if s.fee == 0:
        zh, en = zh + "，包邮", en + ", free shipping"
    else:
        zh += f"，运费{_money(s.fee)}"
        en += f", shipping fee {_money(s.fee)}"
        if s.free_over is not None:
            zh += f"，满{_money(s.free_over)}包邮"
            en += f", free for orders of {_money(s.free_over)} or more"
    if s.note is not None:
        zh, en = f"{zh}；{s.note.zh}", f"{en}; {s.note.en}"
    return _text(zh, en)


def returns_text(r: Returns) -> dict[str, str]:
    zh = f"支持{r.days}天无理由退货" if r.days else "不支持无理由退货"
    en = f"{r.days}-day no-reason returns" if r.days else "no returns without a reason"
    if r.note is not None:
        zh, en = f"{zh}；{r.note.zh}", f"{en}; {r.note.en}"
    return _text(zh, en)


def _spec(key: str, name: Text, value: dict[str, str], keywords: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    return {"key": key, "name": _t(name), "value": value, "keywords": [name.zh, name.en, *keywords]}


def product_v1(p: Product) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": p.id,
        "name": _t(p.name),
        "aliases": [*([p.brand] if p.brand else []), *p.aliases],
        "category": _t(p.category),
        "price": str(p.price),
    }
    if p.description is not None:
        out["description"] = _t(p.description)
    if p.suitable_for:
        out["suitable_for"] = [_t(a.who) for a in p.suitable_for]
    if p.sizes:
        out["sizes"] = list(p.sizes)
    if p.size_chart is not None:
        chart = p.size_chart
        zh = "；".join(
            f"{size}：" + "，".join(f"{c.zh}{v}" for c, v in zip(chart.columns, row, strict=True))
            for size, row in chart.rows.items()
        )
        en = "; ".join(
            f"{size}: " + ", ".join(f"{c.en} {v}" for c, v in zip(chart.columns, row, strict=True))
            for size, row in chart.rows.items()
        )
        out["size_note"] = _text(zh, en)
    if p.colours:
        out["colours"] = [_t(c) for c in p.colours]
    if p.materials:
        out["ingredients"] = [_t(m) for m in p.materials]
    specs = [_spec(s.key, s.name, _t(s.value), s.keywords) for s in p.specs]
    if p.list_price is not None:
        specs.append(
            _spec("list_price", Text(zh="原价", en="list price"), _text(_money(p.list_price), _money(p.list_price)))
        )
    if p.variants:
        zh = "；".join(f"{v.name.zh} {_money(v.price if v.price is not None else p.price)}" for v in p.variants)
        en = "; ".join(f"{v.name.en} {_money(v.price if v.price is not None else p.price)}" for v in p.variants)
        specs.append(_spec("variants", Text(zh="规格价格", en="variant prices"), _text(zh, en)))
    if p.warranty is not None:
        w = p.warranty
        zh = f"{w.months}个月" + (f"，{w.note.zh}" if w.note else "")
        en = f"{w.months} months" + (f", {w.note.en}" if w.note else "")
        specs.append(_spec("warranty", Text(zh="保修", en="warranty"), _text(zh, en)))
    if p.not_for:
        who = [a.who for a in p.not_for]
        specs.append(
            _spec("not_for", Text(zh="不适合", en="not suitable for"), _text(_join(who, "zh"), _join(who, "en")))
        )
    if p.gift_with_purchase is not None:
        specs.append(_spec("gift", Text(zh="赠品", en="free gift"), _t(p.gift_with_purchase)))
    if p.flash_sale_note is not None:
        specs.append(_spec("flash_sale_note", Text(zh="限购", en="purchase limit"), _t(p.flash_sale_note)))
    if specs:
        out["specs"] = specs
    if p.shipping is not None:
        out["shipping"] = shipping_text(p.shipping)
    if p.returns is not None:
        out["returns"] = returns_text(p.returns)
    if p.faq:
        out["faq"] = [_faq(f) for f in p.faq]
    return out


def _faq(f: Any) -> dict[str, Any]:
    return {
        "id": f.id,
        "keywords": list(f.keywords) or [f.question.zh, f.question.en],
        "questions": [f.question.zh, f.question.en],
        "answer": _t(f.answer),
    }


def catalogue_v1(c: Catalogue) -> dict[str, Any]:
    """The v2 catalogue as a dict in the first format (validate it with the assistant's model)."""
    return {
        "shop": _t(c.shop),
        "currency": c.currency,
        "shipping": shipping_text(c.shipping),
        "returns": returns_text(c.returns),
        "faq": [_faq(f) for f in c.faq],
        "products": [product_v1(p) for p in c.products],
    }
