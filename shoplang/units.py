"""Converting an amount the viewer gives into the unit they ask for ("2公斤是几斤",
"4-5斤是多少公斤", "40mm是几厘米", "500克是一斤吗", "how much is 2 kg in pounds").

The answer is arithmetic on the question's own number and a fixed table of units, so it
states nothing the shop would have to list; an amount the question does not give (how
heavy the product is) is the listing's to say, not this module's."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from barrage.shoplang.lang import cn_number

# unit word -> (dimension, size in the dimension's base unit: g, mm, ml; exact)
_UNITS: dict[str, tuple[str, float, bool]] = {}
for _words, _dimension, _size, _exact in (
    (("克", "g", "gram", "grams"), "mass", 1.0, True),
    (("公斤", "千克", "kg", "kgs", "kilo", "kilos", "kilogram", "kilograms"), "mass", 1000.0, True),
    (("斤",), "mass", 500.0, True),
    (("两",), "mass", 50.0, True),
    (("磅", "lb", "lbs", "pound", "pounds"), "mass", 453.59237, False),
    (("盎司", "oz", "ounce", "ounces"), "mass", 28.349523125, False),
    (("毫米", "mm"), "length", 1.0, True),
    (("厘米", "公分", "cm"), "length", 10.0, True),
    (("米", "m", "meter", "meters", "metre", "metres"), "length", 1000.0, True),
    (("英寸", "inch", "inches"), "length", 25.4, False),
    (("英尺", "ft", "feet", "foot"), "length", 304.8, False),
    (("毫升", "ml"), "volume", 1.0, True),
    (("升", "l", "litre", "litres", "liter", "liters"), "volume", 1000.0, True),
):
    for _word in _words:
        _UNITS[_word] = (_dimension, _size, _exact)

_NUMBER = r"\d+(?:\.\d+)?|[一二两三四五六七八九十百半]+"


@lru_cache(maxsize=1)
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    unit = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
    after = r"(?![a-z])"
    # "4-5斤", "1米8" (1.8 m), "40 mm"; 两 is a unit only after a numeral other than itself.
    amount = re.compile(
        rf"(?<![\d.])(?P<a>{_NUMBER})(?:\s*[-~～到至]\s*(?P<b>{_NUMBER}))?\s*(?P<u>{unit}){after}"
        r"(?P<tail>[一二三四五六七八九\d](?![\d.]|[厘毫米公千克斤两升个件只块岁]))?"
    )
    asked_zh = re.compile(rf"(?:多少|几)个?(?P<u>{unit}){after}(?<!两(?=[只个件条双对套]))")
    asked_same = re.compile(rf"是\s*(?P<n>{_NUMBER})?\s*(?P<u>{unit}){after}\s*(?:吗|嘛|么|不|没)")
    asked_en = re.compile(rf"\b(?:in|into|to|how many)\s+(?P<u>{unit}){after}")
    return amount, asked_zh, asked_same, asked_en


def states(text: str, unit: str) -> bool:
    """Whether a text gives an amount in that unit or one of the same size ("约10 ft" for
    "feet"): a listing that says it is the answer, not arithmetic of the reader's."""
    amount = _patterns()[0]
    size = _UNITS[unit.lower()][:2]
    return any(_UNITS[m.group("u")][:2] == size for m in amount.finditer(text.lower()))


@dataclass(frozen=True)
class Conversion:
    given: str
    """The amount as the viewer wrote it ("4-5斤")."""
    values: tuple[float, ...]
    unit: str
    """The unit asked for, as the viewer wrote it."""
    exact: bool
    expected: float | None = None
    """The amount a yes/no question proposes ("是一斤吗": 1)."""

    def sentence(self, lang: str) -> str:
        shown = "-".join(_shown(v, 2 if self.exact else 1) for v in self.values)  # (约4.5斤, as listings round)
        zh_unit = self.unit
        verdict = ""
        if self.expected is not None:
            same = len(self.values) == 1 and abs(self.values[0] - self.expected) <= 0.01 * max(self.expected, 1e-9)
            verdict = ("是的，" if same else "不是，") if lang == "zh" else ("Yes, " if same else "No, ")
        if lang == "zh":
            return f"{verdict}{self.given}{'等于' if self.exact else '约等于'}{shown}{zh_unit}"
        return f"{verdict}{self.given} is {'' if self.exact else 'about '}{shown} {self.unit}"


def conversion(text: str) -> Conversion | None:
    """The conversion a question asks for, if it gives an amount and asks it in another unit
    of the same kind ("2公斤是几斤"); None when it asks a unit without an amount to convert
    ("这箱几斤": the listing's weight)."""
    amount, asked_zh, asked_same, asked_en = _patterns()
    lowered = text.lower()  # (same length as the text: spans index both)
    target = asked_same.search(lowered) or asked_zh.search(lowered) or asked_en.search(lowered)
    if target is None:
        return None
    to_unit = target.group("u")
    dimension, to_size, to_exact = _UNITS[to_unit]
    for match in amount.finditer(lowered):
        if match.start("u") == target.start("u"):
            continue  # the unit asked for is not an amount given
        from_unit = match.group("u")
        from_dimension, from_size, from_exact = _UNITS[from_unit]
        if from_dimension != dimension or from_size == to_size:
            continue
        if from_unit == "两" and match.group("a") == "两":
            continue  # "两斤" is 2 jin; "两" alone is no amount
        values = [cn_number(match.group("a"))] + ([cn_number(match.group("b"))] if match.group("b") else [])
        if match.group("tail"):  # "1米8": 1.8 m
            values[-1] += cn_number(match.group("tail")) / 10
        converted = tuple(v * from_size / to_size for v in values)
        expected = None
        if target.re is asked_same:
            expected = cn_number(target.group("n")) if target.group("n") else 1.0
        given = text[match.start() : match.end()].strip()
        unit = text[target.start("u") : target.end("u")]
        return Conversion(given, converted, unit, from_exact and to_exact, expected)
    return None


def _shown(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}".rstrip("0").rstrip(".")


_MARK_UNITS = {**{word: (dimension, size) for word, (dimension, size, _) in _UNITS.items()}, "寸": ("length", 25.4)}
"""(寸 of a suitcase, a bike or a guitar is an inch.)"""


@lru_cache(maxsize=1)
def _mark_patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    unit = "|".join(re.escape(u) for u in sorted(_MARK_UNITS, key=len, reverse=True))
    amount = re.compile(rf"(?<![\d.a-z])(\d+(?:\.\d+)?)\s*({unit})(?![a-z])")
    sides = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(?:cm|厘米|mm|毫米)?\s*[×xX*＊乘]\s*(\d+(?:\.\d+)?)(?![\d.])")
    code = re.compile(r"(?<![a-z0-9])([a-z]{1,2}\d{1,3})(?![a-z0-9.])")
    return amount, sides, code


def marks(text: str) -> frozenset[tuple[str, str]]:
    """What a text gives that can tell one listing from another: amounts in a unit, as
    (dimension, amount in the base unit) so that "20升" and "20L" are one mark; sides
    ("45乘40厘米", "200×230cm") and short model codes ("M8")."""
    lowered = text.lower()
    amount, sides, code = _mark_patterns()
    out: set[tuple[str, str]] = set()
    for number, unit in amount.findall(lowered):
        dimension, size = _MARK_UNITS[unit]
        out.add((dimension, _shown(float(number) * size, 3)))
    for a, b in sides.findall(lowered):
        out.add(("sides", "×".join(sorted((_shown(float(a), 2), _shown(float(b), 2))))))
    out.update(("code", c) for c in code.findall(lowered))
    return frozenset(out)
