"""Facts stated from a format-v2 listing: the builder every answer uses, prices as text, and
what a product comes in — its variants, sizes and size chart (clients/assistant/answerer_v2.py
decides which of them a question asks for)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache

from barrage.clients.assistant.facts import Fact, money
from barrage.clients.assistant.state import Price
from barrage.shoplang import lang as L
from barrage.shoplang.catalogue import Product, SizeChart, Text, Variant
from barrage.shoplang.understand import Reading


def money_text(amount: Decimal, currency: str) -> str:
    return money(Price(int((amount * 100).to_integral_value()), currency))


def listing_fact(kind: str, p: Product | None, zh: str, en: str, sources: Sequence[str]) -> Fact:
    zh = re.sub(r"(?<=[\u4e00-\u9fff，（]) (?=[\d¥])|(?<=\d) (?=[\u4e00-\u9fff])", "", zh)
    return Fact(kind, p.id if p is not None else None, zh, en, (zh, en, *sources))


def size_fact(p: Product, r: Reading) -> Fact | None:
    if not p.sizes and p.size_chart is None:
        return None
    chart = p.size_chart
    asked = [(kind, value) for kind, value in r.quantities if kind in _MEASURES]
    charted = {column_kind(c) for c in chart.columns} if chart is not None else set()
    if chart is not None and not charted & {k for k, _ in asked} and (by_column := _rows_covering(chart, r.text)):
        # "掌围21.5厘米戴几号": a number beside a column the chart has, in that column's ranges
        return _rows_fact(p, by_column)
    if chart is not None and asked:
        rows = []
        points: list[tuple[float, str, Text, str]] = []
        for size, values in chart.rows.items():
            for column, cell in zip(chart.columns, values, strict=True):
                kind = column_kind(column)
                bounds = _range(cell)
                if bounds is None:
                    one = _cell_value(cell, kind)
                    if one is not None and any(kind == want for want, _ in asked):
                        points.append((one, size, column, cell))
                    continue
                for want_kind, value in asked:
                    if kind == want_kind and bounds[0] <= value <= bounds[1]:
                        rows.append((size, column, cell))
        if not rows and points:
            # One value per size (foot length 255mm): the smallest size that is long enough.
            kind = column_kind(points[0][2])
            given = [value for want, value in asked if want == kind]
            if kind in ("chest", "waist", "hip") and given:
                # A garment's girth is about the body's (两尺 = 66.7 cm: the 66.5 cm waist), not
                # the next one up as a shoe must be.
                fitting = sorted(points, key=lambda pt: (abs(pt[0] - given[0]), -pt[0]))
            else:
                fitting = sorted((pt for pt in points if given and pt[0] >= given[0] - 1e-9), key=lambda pt: pt[0])
                if given and not _covers([pt[0] for pt in points], given[0]):
                    fitting = []  # an 18 cm foot is no 36 (22.5 cm): far below the chart's smallest
            if fitting:
                _, size, column, cell = fitting[0]
                rows.append((size, column, cell))
        by_size: dict[str, set[str]] = {}
        for size, column, _ in rows:
            by_size.setdefault(size, set()).add(column_kind(column))
        measures = {column_kind(c) for c in chart.columns} & {kind for kind, _ in asked}
        every = [size for size, kinds in by_size.items() if kinds >= measures]
        if every and len(every) < len(by_size):
            # 165 cm and 52 kg: the size that fits both, not every size that fits one.
            rows = [row for row in rows if row[0] in every]
        if rows:
            return _rows_fact(p, rows)
    if chart is not None and (r.sizes or "count" in r.intents):
        wanted = [s for s in chart.rows if s.casefold() in r.sizes] or list(chart.rows)
        zh = f"{p.name.zh} 尺码表：" + "；".join(
            f"{s}：" + "，".join(f"{c.zh}{v}" for c, v in zip(chart.columns, chart.rows[s], strict=True))
            for s in wanted
        )
        en = f"{p.name.en} size chart: " + "; ".join(
            f"{s}: " + ", ".join(f"{c.en} {v}" for c, v in zip(chart.columns, chart.rows[s], strict=True))
            for s in wanted
        )
        return listing_fact("sizes", p, zh, en, [])
    zh = f"{p.name.zh} 尺码：{'、'.join(p.sizes)}"
    en = f"{p.name.en} sizes: {', '.join(p.sizes)}"
    if chart is not None:
        zh += "（尺码表：" + "；".join(f"{s} {'/'.join(v)}" for s, v in chart.rows.items()) + "）"
        en += " (size chart: " + "; ".join(f"{s} {'/'.join(v)}" for s, v in chart.rows.items()) + ")"
    return listing_fact("sizes", p, zh, en, [])


def same_number(number: str, name: str) -> bool:
    return any(float(n) == float(number) for n in re.findall(r"\d+(?:\.\d+)?", name))


def variants_fact(p: Product, currency: str) -> Fact:
    def price(v: Variant) -> str:
        return money_text(v.price if v.price is not None else p.price, currency)

    zh = "、".join(f"{v.name.zh} {price(v)}" for v in p.variants)
    en = ", ".join(f"{v.name.en} {price(v)}" for v in p.variants)
    return listing_fact("variants", p, f"{p.name.zh} 可选：{zh}", f"{p.name.en} options: {en}", [])


def materials_fact(p: Product) -> Fact:
    zh, en = "、".join(m.zh for m in p.materials), ", ".join(m.en for m in p.materials)
    return listing_fact("materials", p, f"{p.name.zh} 成分/材质：{zh}", f"{p.name.en} is made with: {en}", [])


def colours_fact(p: Product, name_zh: str, name_en: str) -> Fact:
    """Every colour the product comes in."""
    zh, en = "、".join(c.zh for c in p.colours), ", ".join(c.en for c in p.colours)
    return listing_fact("colours", p, f"{name_zh} 颜色：{zh}", f"{name_en} colours: {en}", [])


_UNITS_OF = {
    "dimensions": r"厘米|公分|毫米|米|英寸|寸|cm|mm|m|inch(?:es)?|\"",
    "weight": r"公斤|千克|克|斤|kg|g|lb",
    "volume": r"毫升|升|ml|l|litres?|liters?",
}


@lru_cache(maxsize=8)
def _amount_pattern(kind: str) -> re.Pattern[str]:
    return re.compile(r"(?:\d|[一二两三四五六七八九十半])(?:\.\d+)?\s*(?:" + _UNITS_OF[kind] + r")(?![a-z])")


def variant_kinds(p: Product) -> list[str]:
    """The kinds of amount every variant's name is (["weight"] for 30 g / 50 g jars)."""
    names = [L.normalize(v.name.zh + " " + v.name.en) for v in p.variants]
    return [kind for kind in _UNITS_OF if names and all(_amount_pattern(kind).search(n) for n in names)]


def variants_measure(p: Product, r: Reading) -> bool:
    """The variants are amounts of the kind asked ("多大" of 30 / 50 / 80 cm plush toys)."""
    return any(concept in variant_kinds(p) for concept in r.concepts)


def amount_in(text: str, kind: str) -> bool:
    """The text gives an amount of that kind ("dimensions", "weight", "volume")."""
    return _amount_pattern(kind).search(text) is not None


def amount_of_variants(p: Product, text: str) -> bool:
    """The text names an amount of the kind the variants are ("有15克的吗" of 30 g and 50 g)."""
    return any(amount_in(text, kind) for kind in variant_kinds(p))


def count_not_listed(p: Product, text: str) -> bool:
    """The text counts in the unit every variant is counted in, a number none of them has
    ("有200人份的吗" of 10 / 20 / 50 人份), or gives sides none has ("200 x 220" of 120×200 /
    150×200 cm mattresses)."""
    names = [L.normalize(v.name.zh) for v in p.variants]
    counts = [{(n, _unit(u)) for n, u in re.findall(r"(\d+(?:\.\d+)?)\s*([\u4e00-\u9fff]{1,2})", n)} for n in names]
    units = {u for _, u in counts[0]}.intersection(*({u for _, u in c} for c in counts[1:])) if counts else set()
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([\u4e00-\u9fff]{1,2})", L.with_digits(text)):
        if _unit(unit) in units and not any((n, u) == (number, _unit(unit)) for c in counts for n, u in c):
            return True
    sides = L.sides(text)
    numbers = [[float(n) for n in re.findall(r"\d+(?:\.\d+)?", name)] for name in names]
    return (
        bool(sides)
        and all(len(ns) >= 2 for ns in numbers)
        and not any(all(any(abs(s - n) < 1e-6 for n in ns) for s in side) for side in sides for ns in numbers)
    )


def _unit(word: str) -> str:
    """A counting unit without what follows it: "片的", "瓶装" and "片款" count in 片, 瓶."""
    return word[0] if len(word) == 2 and word[1] in "的吗呢装款版" else word


def chart_columns(p: Product, r: Reading) -> list[Fact]:
    """Columns of the size chart whose heading is what is asked, for every size."""
    chart = p.size_chart
    assert chart is not None
    cues = tuple(cue for c in r.concepts for cue in L.CONCEPTS[c]) + r.measure[1:]
    out = []
    for i, column in enumerate(chart.columns):
        heading = L.normalize(column.zh + " " + column.en)
        if cues and L.any_cue(cues, heading) and any(row[i] != size for size, row in chart.rows.items()):
            zh = f"{p.name.zh} {column.zh}：" + "；".join(f"{size} {row[i]}" for size, row in chart.rows.items())
            en = f"{p.name.en} {column.en}: " + "; ".join(f"{size} {row[i]}" for size, row in chart.rows.items())
            out.append(listing_fact(f"chart:{i}", p, zh, en, []))
    return out


def chart_cells(p: Product, text: str, named_column: bool = False) -> list[Fact]:
    """The row of the size chart the question names ("1.5号线", "2.0 line"), at the columns its
    words name, in the unit asked when the chart gives several ("拉力多少斤" of kg / 斤 / lb);
    the whole row when no column is named. Nothing when no row is named."""
    chart = p.size_chart
    if chart is None:
        return []
    text = L.normalize(text)
    row = next((size for size in chart.rows if _row_named(size, text)), None)
    if row is None:
        return []
    named = [i for i, c in enumerate(chart.columns) if _column_named(c, text)]
    if named_column and not named:
        return []
    units = [u for u in L.units_asked(text)]
    in_unit = [
        i
        for i in named
        if any(any(x in L.normalize(chart.columns[i].zh + chart.columns[i].en) for x in u) for u in units)
    ]
    picked = in_unit or named or list(range(len(chart.columns)))
    cells = chart.rows[row]
    zh = f"{p.name.zh} {row}：" + "，".join(_cell(chart.columns[i].zh, cells[i]) for i in picked)
    en = f"{p.name.en} {row}: " + ", ".join(_cell(chart.columns[i].en, cells[i]) for i in picked)
    return [listing_fact("chart:row", p, zh, en, [])]


def _rows_covering(chart: SizeChart, text: str) -> list[tuple[str, Text, str]]:
    """Rows whose range, in a column the text names, holds a number the text gives that is
    no size of the chart: (size, column, cell)."""
    text = L.normalize(text)
    numbers = [float(n) for n in re.findall(r"(?<![\d.])\d+(?:\.\d+)?(?![\d.])", text) if n not in chart.rows]
    rows = []
    for i, column in enumerate(chart.columns):
        if not _column_named(column, text, dimension=False):
            continue
        for size, cells in chart.rows.items():
            bounds = _range(cells[i])
            if bounds is not None and any(bounds[0] <= n <= bounds[1] for n in numbers):
                rows.append((size, column, cells[i]))
    return rows


def chart_rows_saying(p: Product, residue: str) -> Fact | None:
    """The rows of the size chart whose cells say a word of the question ("插龟背竹买哪个号" of
    a vase chart saying "L: 大束花、龟背竹"): the size for that use."""
    chart = p.size_chart
    if chart is None:
        return None
    runs: list[str] = re.findall(r"[\u4e00-\u9fff]{2,}", residue)
    words = {run[i : i + 3] for run in runs for i in range(len(run) - 2)} | {run for run in runs if len(run) == 2}
    words |= {w for w in re.findall(r"[a-z]{6,}", L.normalize(residue)) if w not in L.STOP_EN}
    rows = [
        (size, column, cell)
        for size, cells in chart.rows.items()
        for column, cell in zip(chart.columns, cells, strict=True)
        if any(w in L.normalize(cell) for w in words)
    ]
    if not rows or len(rows) == len(chart.rows):
        return None  # a word every size says tells none apart
    return _rows_fact(p, rows, zh_mark="号", en_mark="size ")


def _rows_fact(p: Product, rows: list[tuple[str, Text, str]], zh_mark: str = "码", en_mark: str = "") -> Fact:
    """The sizes to choose, each with the chart cell that picked it."""
    zh = f"{p.name.zh} 可选：" + "、".join(f"{size}{zh_mark}（{col.zh}{cell}）" for size, col, cell in rows)
    en = f"{p.name.en}: choose " + ", ".join(f"{en_mark}{size} ({col.en} {cell})" for size, col, cell in rows)
    return listing_fact("sizes", p, zh, en, [])


def _cell(heading: str, value: str) -> str:
    """ "高度 (cm)", "8" -> "高度 8 cm": the value with the unit its heading gives."""
    match = re.match(r"\s*(.*?)\s*[(（]\s*(.+?)\s*[)）]\s*$", heading)
    if match is None:
        return f"{heading} {value}"
    core, unit = match.groups()
    return f"{core} {value}{unit}" if L.CJK.match(unit[0]) else f"{core} {value} {unit}"


def _row_named(size: str, text: str) -> bool:
    label = L.normalize(size)
    if len(label) < 2 and not label.isdigit():
        return False  # ("S", "L": size letters are read elsewhere)
    bare = re.sub(r"[号码#]$", "", label)
    if bare != label and re.search(rf"(?<![\d.]){re.escape(bare)}\s*(?:号|码|#|line\b|size\b)", text):
        return True
    after = "" if L.CJK.match(label[-1]) else r"(?![a-z0-9.])"  # ("8寸的": a Chinese label ends itself)
    return re.search(rf"(?<![a-z0-9.]){re.escape(label)}{after}", text) is not None


def _column_named(column: Text, text: str, dimension: bool = True) -> bool:
    """A heading's own words (not its unit in brackets) in the question; with `dimension`,
    a dimension's own character too ("多高" for 高度)."""
    zh = re.sub(r"[（(].*?[)）]", "", column.zh)
    en = re.sub(r"[（(].*?[)）]", "", L.normalize(column.en))
    pairs = [zh[i : i + 2] for i in range(len(zh) - 1) if L.CJK.match(zh[i]) and L.CJK.match(zh[i + 1])]
    words = [w for w in re.findall(r"[a-z]{4,}", en) if w not in L.STOP_EN]
    # a dimension's own character: "直径" / 内径, "多高" / 高度
    said = dimension and any(ch in text for ch in zh if ch in "径宽长高厚深重")
    return any(pair in text for pair in pairs) or any(w in text for w in words) or said


def column_kind(column: Text) -> str:
    text = L.normalize(column.zh + " " + column.en)
    if "体重" in text or "weight" in text:
        return "weight"
    if "身高" in text or "height" in text:
        return "height"
    if "月龄" in text or "年龄" in text or "age" in text:
        return "age"
    if "脚长" in text or "foot" in text or "feet" in text:
        return "foot"
    if "鞋码" in text or "shoe size" in text or "eu size" in text:
        return "shoe"
    for kind, words in _GIRTH_COLUMNS:
        if any(w in text for w in words):
            return kind
    return ""


_GIRTH_COLUMNS = (
    ("chest", ("胸围", "bust", "chest")),
    ("waist", ("腰围", "waist")),
    ("hip", ("臀围", "hip")),
    ("head", ("头围", "head")),
)


_MEASURES = ("weight", "height", "age", "foot", "shoe", "chest", "waist", "hip", "head")
"""What a viewer gives of themselves (or their pet) to choose a size."""


def chart_covers(p: Product | None, kind: str, value: float) -> bool:
    """Whether a size of the product's chart fits a measure of that kind ("脚长18cm": not
    an adult shoe's chart that starts at 22.5 cm)."""
    chart = p.size_chart if p is not None else None
    if chart is None:
        return False
    points: list[float] = []
    columns = [(i, _in_column_unit(c, kind, value)) for i, c in enumerate(chart.columns) if column_kind(c) == kind]
    for values in chart.rows.values():
        for i, asked in columns:
            bounds = _range(values[i])
            if bounds is not None and bounds[0] <= asked <= bounds[1]:
                return True
            if bounds is None and (one := _cell_value(values[i], kind)) is not None:
                points.append(one)
    return _covers(points, columns[0][1]) if columns else False


def _in_column_unit(column: Text, kind: str, value: float) -> float:
    """An age is read in months; a chart's age column is in years unless it says months."""
    if kind != "age" or re.search(r"月|month", f"{column.zh} {column.en}", re.IGNORECASE):
        return value
    return value / 12


def _covers(points: list[float], value: float) -> bool:
    """One value a size (foot length): within the chart, or at most a step below its smallest."""
    if not points:
        return False
    ordered = sorted(set(points))
    step = min((b - a for a, b in itertools.pairwise(ordered)), default=ordered[0] * 0.05)
    return ordered[0] - step - 1e-9 <= value <= ordered[-1] + 1e-9


def _range(cell: str) -> tuple[float, float] | None:
    match = re.match(r"\s*(\d+(?:\.\d+)?)\s*[-~到]\s*(\d+(?:\.\d+)?)", cell)
    if match is None:
        return None
    return float(match.group(1)), float(match.group(2))


def _cell_value(cell: str, kind: str) -> float | None:
    """A one-value cell ("255mm", "25.5cm"), in the unit quantities use (foot: mm)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(mm|毫米|cm|厘米|公分)?\s*", cell)
    if match is None:
        return None
    value = float(match.group(1))
    if kind == "foot" and (match.group(2) in ("cm", "厘米", "公分") or value < 40):
        value *= 10
    return value
