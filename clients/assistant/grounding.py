"""The grounding check: every number an answer states must be in its sources.

Sources are the catalogue values and live values the answer was built from (prices,
stock, spec values, policy texts, product names). Numbers are compared as values, so
"¥199.00", "199" and "一百九十九" are the same number; digits in product references
(`[product:ID]`) are not statements and are skipped. A template answer passes by
construction; an answer phrased by a language model must pass it or is not used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

PRODUCT_REF = re.compile(r"\[product:([A-Za-z0-9._-]+)\]")
"""How an answer names a product the app can render as a card (docs/assistant.md)."""

_DIGITS = re.compile(r"\d+(?:[,，]\d{3})*(?:\.\d+)?")
_HAN_NUMERAL = re.compile(r"[零〇一二两三四五六七八九十百千万亿]+")
_TIME = re.compile(r"\b\d{1,2}:\d{2}\b")
_HAN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_HAN_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10_000, "亿": 100_000_000}
_WORDS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "hundred": 100, "thousand": 1000, "dozen": 12, "half": 0.5,
}  # fmt: skip
_WORD = re.compile(r"\b(" + "|".join(_WORDS) + r")\b", re.IGNORECASE)


def _han_value(run: str) -> int:
    """一百九十九 -> 199, 七 -> 7, 十五 -> 15, 一二三 -> 123 (digit by digit)."""
    if not any(ch in _HAN_UNITS for ch in run):
        return int("".join(str(_HAN_DIGITS[ch]) for ch in run))
    total = section = digit = 0
    for ch in run:
        if ch in _HAN_DIGITS:
            digit = _HAN_DIGITS[ch]
        else:
            unit = _HAN_UNITS[ch]
            if unit >= 10_000:
                total += (section + digit) * unit
                section = 0
            else:
                section += (digit or 1) * unit
            digit = 0
    return total + section + digit


def _canonical(value: Decimal) -> str:
    normalized = value.normalize()
    return format(normalized, "f")


def numbers(text: str) -> set[str]:
    """The numbers a text states, canonical ("199.50" -> "199.5")."""
    text = PRODUCT_REF.sub(" ", text)
    found: set[str] = set()
    for match in _TIME.finditer(text):
        found.update(part.lstrip("0") or "0" for part in match.group().split(":"))
    for match in _DIGITS.finditer(_TIME.sub(" ", text)):
        try:
            found.add(_canonical(Decimal(re.sub(r"[,，]", "", match.group()))))
        except InvalidOperation:
            found.add(match.group())
    for match in _HAN_NUMERAL.finditer(text):
        found.add(str(_han_value(match.group())))
    for match in _WORD.finditer(text):
        found.add(_canonical(Decimal(str(_WORDS[match.group().lower()]))))
    return found


def ungrounded(text: str, sources: Iterable[str]) -> set[str]:
    """Numbers in `text` that appear in none of the sources (empty: grounded)."""
    allowed: set[str] = set()
    for source in sources:
        allowed |= numbers(source)
    return numbers(text) - allowed


def product_refs(text: str) -> list[str]:
    """Product ids referenced in an answer, in order."""
    return PRODUCT_REF.findall(text)
