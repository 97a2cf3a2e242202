"""`barrage report ROOM --out DIR`: a room's insights as one self-contained HTML page.

DIR/report.html holds everything: the charts are PNGs drawn with matplotlib and embedded
as data URIs, the styles are inline, nothing is fetched when the page is opened. Charts:
viewers over time, comments / likes / gifts / purchases per bucket, joins and leaves,
the retention curve and cohort table, the product funnel. Tables: the totals, the
questions viewers asked (answered or not), the products, trending terms.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from barrage.v1 import insights_service_pb2 as pb
from clients.insights import ROLE_NAMES, InsightsClient, money, product_name

CHARTS = ("viewers", "engagement", "audience-flow", "retention", "funnel")
"""The charts a report has, in order (each is an <img> with this id)."""

_INK = "#1f2933"
_ACCENT = "#e4572e"
_BLUE = "#2e86ab"
_GREEN = "#3bb273"
_GOLD = "#f3a712"
_GREY = "#9aa5b1"


_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "PingFang SC",
    "Microsoft YaHei",
    "SimHei",
)


def _cjk_font() -> bool:
    """Use a Chinese font for chart labels if one is installed; False if none is."""
    from matplotlib import font_manager, rcParams

    installed = {font.name for font in font_manager.fontManager.ttflist}
    found = [name for name in _CJK_FONTS if name in installed]
    if found:
        rcParams["font.sans-serif"] = [*found, *rcParams["font.sans-serif"]]
    return bool(found)


def _label(product: pb.ProductInsight, cjk: bool) -> str:
    """A chart label: the title, or the product id when the title needs a font we lack (the tables
    in the page show every title: the browser has the fonts)."""
    title = product.title or product.product_id
    return title if cjk or title.isascii() else product.product_id


def _day(ts: Any) -> float:
    """A Timestamp in matplotlib's date unit (days), local time."""
    import matplotlib.dates as mdates

    return float(mdates.date2num(ts.ToDatetime(dt.UTC).astimezone()))  # type: ignore[no-untyped-call]


def _times(insights: pb.RoomInsights) -> list[float]:
    return [_day(b.start_time) for b in insights.buckets]


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _axes(ax: Any, title: str) -> None:
    ax.set_title(title, loc="left", fontsize=11, color=_INK, fontweight="bold")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="y", color="#e4e7eb", linewidth=0.8)
    ax.set_axisbelow(True)


def _time_axis(ax: Any) -> None:
    import matplotlib.dates as mdates

    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))  # type: ignore[no-untyped-call]


def _bar_width(insights: pb.RoomInsights) -> float:
    return insights.bucket_width.ToMilliseconds() / 86_400_000 * 0.8  # in days, matplotlib's date unit


def chart_viewers(insights: pb.RoomInsights) -> str:
    import matplotlib.pyplot as plt

    times = _times(insights)
    fig, ax = plt.subplots(figsize=(10, 3.2))
    peaks = [b.peak_viewers for b in insights.buckets]
    ends = [b.viewers for b in insights.buckets]
    ax.fill_between(times, peaks, step="post", color=_BLUE, alpha=0.15, label="peak in bucket")
    ax.step(times, ends, where="post", color=_BLUE, linewidth=2, label="present at bucket end")
    reported = [b.reported_viewers for b in insights.buckets]
    if any(reported):
        ax.step(times, reported, where="post", color=_GREY, linestyle=":", label="streams (viewer_count)")
    t = insights.totals
    if t.peak_viewers and t.HasField("peak_time"):
        when = _day(t.peak_time)
        ax.annotate(f"peak {t.peak_viewers:,}", (when, t.peak_viewers), xytext=(8, 4), textcoords="offset points")
        ax.plot([when], [t.peak_viewers], "o", color=_ACCENT)
    _axes(ax, "Viewers over time")
    _time_axis(ax)
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False, fontsize=8, loc="upper right")
    return _png(fig)


def chart_engagement(insights: pb.RoomInsights) -> str:
    import matplotlib.pyplot as plt

    times = _times(insights)
    width = _bar_width(insights)
    rows = insights.buckets
    series = (
        ("Comments", [b.comments for b in rows], _BLUE),
        ("Likes", [b.likes for b in rows], _ACCENT),
        ("Gift value", [sum(m.amount_minor for m in b.gift_value) / 100 for b in rows], _GOLD),
        ("Purchases", [b.purchases for b in rows], _GREEN),
    )
    fig, axes = plt.subplots(2, 2, figsize=(10, 5), sharex=True)
    for ax, (name, values, color) in zip(axes.flat, series, strict=True):
        ax.bar(times, values, width=width, color=color, align="edge")
        _axes(ax, f"{name} per bucket")
        _time_axis(ax)
    fig.tight_layout()
    return _png(fig)


def chart_flow(insights: pb.RoomInsights) -> str:
    import matplotlib.pyplot as plt

    times = _times(insights)
    width = _bar_width(insights)
    fig, ax = plt.subplots(figsize=(10, 3))
    ax.bar(times, [b.joins for b in insights.buckets], width=width, color=_GREEN, align="edge", label="joins")
    ax.bar(times, [-b.leaves for b in insights.buckets], width=width, color=_ACCENT, align="edge", label="leaves")
    ax.axhline(0, color=_INK, linewidth=0.8)
    worst = max(insights.buckets, key=lambda b: b.leaves, default=None)
    if worst is not None and worst.leaves:
        label = f"most left at {worst.start_time.ToDatetime(dt.UTC).astimezone():%H:%M}"
        ax.annotate(label, (_day(worst.start_time), -worst.leaves), xytext=(8, -4), textcoords="offset points")
    _axes(ax, "Arrivals and departures per bucket")
    _time_axis(ax)
    ax.legend(frameon=False, fontsize=8)
    return _png(fig)


def chart_retention(insights: pb.RoomInsights) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3))
    points = list(insights.retention_curve)
    ax.plot([p.after_buckets for p in points], [p.share * 100 for p in points], "-o", color=_BLUE, linewidth=2)
    for cohort in insights.retention[:12]:
        if cohort.arrivals:
            shares = [n / cohort.arrivals * 100 for n in cohort.remaining]
            ax.plot(range(len(shares)), shares, color=_GREY, alpha=0.35, linewidth=1)
    _axes(ax, "Retention: share of arrivals still present k buckets later (blue: all; grey: each cohort)")
    ax.set_ylim(0, 105)
    ax.set_xlabel("buckets after the arrival bucket")
    ax.set_ylabel("%")
    return _png(fig)


def chart_funnel(insights: pb.RoomInsights) -> str:
    import matplotlib.pyplot as plt

    products = list(insights.products)
    fig, ax = plt.subplots(figsize=(10, 0.8 + 0.9 * max(1, len(products))))
    stages = (
        ("viewers present", [p.viewers_during_pin for p in products], _GREY),
        ("mentioned it", [p.mentioners for p in products], _BLUE),
        ("asked about it", [p.questions for p in products], _GOLD),
        ("bought during pin", [p.buyers_during_pin for p in products], _GREEN),
    )
    height = 0.8 / len(stages)
    for i, (name, values, color) in enumerate(stages):
        ys = [n + i * height for n in range(len(products))]
        ax.barh(ys, values, height=height, color=color, label=name)
        for y, value in zip(ys, values, strict=True):
            ax.text(value, y, f" {value:,}", va="center", fontsize=8)
    ax.set_yticks([n + 0.4 - height / 2 for n in range(len(products))])
    cjk = _cjk_font()
    ax.set_yticklabels([_label(p, cjk) for p in products])
    ax.invert_yaxis()
    _axes(ax, "Product funnel (products pinned, named or asked about)")
    ax.grid(axis="x", color="#e4e7eb")
    ax.legend(frameon=False, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.02), ncols=4)
    return _png(fig)


# ---------------------------------------------------------------------- HTML

_STYLE = """
body{font-family:-apple-system,"Segoe UI","PingFang SC","Noto Sans CJK SC",sans-serif;margin:0;
background:#f5f7fa;color:#1f2933}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{margin:0 0 4px;font-size:26px} h2{margin:32px 0 8px;font-size:18px}
.sub{color:#616e7c;margin-bottom:20px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px}
.card{background:#fff;border-radius:10px;padding:12px 14px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.card b{display:block;font-size:22px} .card span{color:#616e7c;font-size:12px}
section{background:#fff;border-radius:10px;padding:16px;margin-top:16px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
img{max-width:100%} table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e4e7eb;vertical-align:top}
th{color:#616e7c;font-weight:600} td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#3bb273;font-weight:600} .no{color:#e4572e;font-weight:600} .muted{color:#9aa5b1}
.terms span{display:inline-block;margin:3px;padding:3px 9px;border-radius:12px;background:#e8f1f8}
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _table(rid: str, headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)

    def cell(i: int, content: str) -> str:
        return f'<td class="n">{content}</td>' if i in numeric else f"<td>{content}</td>"

    body = "".join("<tr>" + "".join(cell(i, c) for i, c in enumerate(r)) + "</tr>" for r in rows)
    if not rows:
        body = f'<tr><td colspan="{len(headers)}" class="muted">none</td></tr>'
    return f'<table id="{rid}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _minutes(seconds: int) -> str:
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _local(ts: Any) -> str:
    return f"{ts.ToDatetime(dt.UTC).astimezone():%Y-%m-%d %H:%M:%S}"


def render_html(insights: pb.RoomInsights) -> str:
    """The report page for one RoomInsights."""
    t = insights.totals
    stay = t.average_watch_time.ToSeconds()
    cards = (
        (f"{t.peak_viewers:,}", "peak viewers"),
        (f"{t.unique_viewers:,}", "viewers in all"),
        (f"{stay // 60}m{stay % 60:02d}s", "average stay"),
        (f"{t.comments:,}", f"comments by {t.unique_commenters:,}"),
        (f"{t.questions:,}", "questions"),
        (f"{t.likes:,}", "likes"),
        (money(t.gift_value), f"{t.gifts:,} gifts"),
        (f"{t.purchases:,}", f"purchases by {t.unique_buyers:,}"),
    )
    cards_html = "".join(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for v, k in cards)
    charts = {
        "viewers": chart_viewers(insights),
        "engagement": chart_engagement(insights),
        "audience-flow": chart_flow(insights),
        "retention": chart_retention(insights),
        "funnel": chart_funnel(insights),
    }

    def img(name: str) -> str:
        return f'<img id="chart-{name}" alt="{_e(name)} chart" src="{charts[name]}">'

    questions = []
    for q in insights.questions:
        if q.answered:
            who = ROLE_NAMES.get(q.answered_by, "staff")
            status = f'<span class="ok">answered by {_e(who)}</span><br><span class="muted">{_e(q.answer)}</span>'
            if q.open_count:
                status += f'<br><span class="no">{q.open_count} asked since</span>'
        else:
            status = f'<span class="no">not answered ({q.open_count} waiting)</span>'
        variants = "".join(f'<br><span class="muted">{_e(v)}</span>' for v in q.variants)
        questions.append(
            [str(q.count), str(q.askers), _e(q.intent or "other"), _e(product_name(insights, q.product_id)),
             _e(q.example) + variants, status]
        )  # fmt: skip
    products = [
        [_e(p.title or p.product_id), _minutes(p.pinned_duration.ToSeconds()),
         f"{p.viewers_during_pin:,}", f"{p.mentions:,} ({p.mentioners:,} viewers)", f"{p.questions:,}",
         f"{p.purchases_during_pin:,} ({p.units_during_pin:,} units)", f"{p.purchases:,}", f"{p.conversion:.1%}"]
        for p in insights.products
    ]  # fmt: skip
    cohorts = [
        [_local(c.start_time), f"{c.arrivals:,}"]
        + [f"{n / c.arrivals:.0%}" if c.arrivals else "" for n in list(c.remaining)[:8]]
        for c in insights.retention
    ]
    trending = "".join(f"<span>{_e(x.term)} · {x.count}</span>" for x in insights.trending_terms)
    top = "".join(f"<span>{_e(x.term)} · {x.count}</span>" for x in insights.top_terms)
    width = insights.bucket_width.ToMilliseconds() / 1000
    bucket = f"{width / 60:g} min" if width >= 60 else f"{width:g} s"
    state = "final figures (the room is closed)" if insights.final else f"as of {_local(insights.as_of_time)}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(insights.title or insights.room_id)} — room insights</title>
<style>{_STYLE}</style></head><body><main>
<h1>{_e(insights.title or insights.room_id)}</h1>
<div class="sub">Room <code>{_e(insights.room_id)}</code> · {_local(insights.start_time)} – {_local(insights.end_time)}
 · buckets of {bucket} · {state}</div>
<div class="cards" id="totals">{cards_html}</div>
<section><h2>Viewers over time</h2>{img("viewers")}</section>
<section><h2>Engagement</h2>{img("engagement")}</section>
<section><h2>Who came and who left</h2>{img("audience-flow")}</section>
<section><h2>Retention</h2>{img("retention")}
{_table("cohorts", ["arrived in", "arrivals"] + [f"+{k}" for k in range(8)], cohorts, range(1, 10))}</section>
<section><h2>What viewers asked</h2>
{_table("questions", ["asked", "askers", "intent", "product", "example", "answered?"], questions, (0, 1))}</section>
<section><h2>Products</h2>{img("funnel")}
{
        _table(
            "products",
            [
                "product",
                "on screen",
                "viewers",
                "mentions",
                "questions",
                "bought while pinned",
                "bought in all",
                "conversion",
            ],
            products,
            range(1, 8),
        )
    }</section>
<section><h2>Trending terms</h2><div class="terms" id="trending">{trending}</div>
<h2>Most used terms</h2><div class="terms" id="top-terms">{top}</div></section>
</main></body></html>
"""


async def write_report(
    target: str,
    token: str,
    room_id: str,
    out: Path,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> Path:
    """Fetch the room's insights and write DIR/report.html; returns its path."""
    async with InsightsClient(target, token) as client:
        insights = await client.get(room_id, start, end, top=50)
    return await asyncio.to_thread(save_report, insights, out)


def save_report(insights: pb.RoomInsights, out: Path) -> Path:
    """Write DIR/report.html (and the figures as DIR/insights.json); returns the page's path."""
    import matplotlib

    matplotlib.use("Agg")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.html"
    path.write_text(render_html(insights), encoding="utf-8")
    (out / "insights.json").write_text(_json(insights), encoding="utf-8")
    return path


def _json(insights: pb.RoomInsights) -> str:
    from google.protobuf import json_format

    return json_format.MessageToJson(insights, ensure_ascii=False, indent=1)
