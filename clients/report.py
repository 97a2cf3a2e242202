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

from barrage.clients.admin import AdminClient
from barrage.clients.insights import ROLE_NAMES, InsightsClient, money, plural, product_name, retention_survival
from barrage.v1 import event_pb2
from barrage.v1 import insights_service_pb2 as pb

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


_CJK_FILES = ("NotoSansCJK", "SourceHanSans", "wqy-microhei", "wqy-zenhei")
"""File names of the fonts above, for fonts installed after matplotlib built its cache."""


def _cjk_font() -> bool:
    """Use a Chinese font for chart labels if one is installed; False if none is."""
    from matplotlib import font_manager, rcParams

    installed = {font.name for font in font_manager.fontManager.ttflist}
    found = [name for name in _CJK_FONTS if name in installed]
    if not found:
        # matplotlib's font cache predates a font installed since (fonts-noto-cjk): add the files.
        for path in font_manager.findSystemFonts():
            if Path(path).name.startswith(_CJK_FILES):
                font_manager.fontManager.addfont(path)
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


_TICK_STEPS_S = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
"""Tick spacings a time axis may use: round numbers of seconds, minutes and hours."""


def time_ticks(start_s: float, end_s: float, most: int = 8) -> list[tuple[float, str]]:
    """Ticks for a time axis over [start_s, end_s] (Unix seconds): (time, local label).

    The spacing is the smallest round step that gives at most `most` ticks, so a 3-minute
    show is labelled every 30 s and a 2-hour one every 15 min; labels carry seconds only
    when the step is under a minute, so no two ticks read the same."""
    span = max(end_s - start_s, 1.0)
    step = next((s for s in _TICK_STEPS_S if span / s <= most), _TICK_STEPS_S[-1])
    fmt = "%H:%M:%S" if step < 60 else "%H:%M"
    offset = dt.datetime.fromtimestamp(start_s).astimezone().utcoffset() or dt.timedelta()
    shift = offset.total_seconds()  # align ticks to round local times, not to round UTC ones
    first = -(-(start_s + shift) // step) * step - shift
    ticks = []
    t = first
    while t <= end_s + 1e-6:
        ticks.append((t, dt.datetime.fromtimestamp(t).astimezone().strftime(fmt)))
        t += step
    return ticks


def _window_s(insights: pb.RoomInsights) -> tuple[float, float]:
    """The charted span in Unix seconds: from the first bucket's start to the last one's end."""
    width = insights.bucket_width.ToMilliseconds() / 1000
    if insights.buckets:
        start = insights.buckets[0].start_time.ToMilliseconds() / 1000
        return start, insights.buckets[-1].start_time.ToMilliseconds() / 1000 + width
    return insights.start_time.ToMilliseconds() / 1000, insights.end_time.ToMilliseconds() / 1000


def _time_axis(ax: Any, insights: pb.RoomInsights, most: int = 8) -> None:
    """Ticks and limits from the window's length (see time_ticks); `most` ticks fit the axis's width."""
    import matplotlib.dates as mdates

    start, end = _window_s(insights)
    ticks = time_ticks(start, end, most)
    day = 86_400.0
    epoch = float(mdates.date2num(dt.datetime.fromtimestamp(0, dt.UTC)))  # type: ignore[no-untyped-call]
    ax.set_xlim(epoch + start / day, epoch + end / day)
    ax.set_xticks([epoch + t / day for t, _ in ticks], [label for _, label in ticks])


def _bar_width(insights: pb.RoomInsights) -> float:
    return insights.bucket_width.ToMilliseconds() / 86_400_000 * 0.8  # in days, matplotlib's date unit


def figure_viewers(insights: pb.RoomInsights) -> Any:
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
    _time_axis(ax, insights)
    ax.set_ylim(bottom=0, top=max(1.0, t.peak_viewers * 1.18))  # room for the peak's note above the line
    ax.legend(frameon=False, fontsize=8, loc="upper right")
    return fig


def figure_engagement(insights: pb.RoomInsights) -> Any:
    import matplotlib.pyplot as plt

    times = _times(insights)
    width = _bar_width(insights)
    rows = insights.buckets
    series: tuple[tuple[str, list[float], str], ...] = (
        ("Comments", [b.comments for b in rows], _BLUE),
        ("Likes", [b.likes for b in rows], _ACCENT),
        ("Gift value", [sum(m.amount_minor for m in b.gift_value) / 100 for b in rows], _GOLD),
        ("Purchases", [b.purchases for b in rows], _GREEN),
    )
    fig, axes = plt.subplots(2, 2, figsize=(10, 5), sharex=True)
    for ax, (name, values, color) in zip(axes.flat, series, strict=True):
        ax.bar(times, values, width=width, color=color, align="edge")
        _axes(ax, f"{name} per bucket")
        _time_axis(ax, insights, most=4)  # half the page's width: half the labels
        if not any(values):
            ax.set_ylim(0, 1)  # an empty series: a flat axis from 0, not one around 0
    fig.tight_layout()
    return fig


def figure_flow(insights: pb.RoomInsights) -> Any:
    import matplotlib.pyplot as plt

    times = _times(insights)
    width = _bar_width(insights)
    fig, ax = plt.subplots(figsize=(10, 3))
    ax.bar(times, [b.joins for b in insights.buckets], width=width, color=_GREEN, align="edge", label="joins")
    ax.bar(times, [-b.leaves for b in insights.buckets], width=width, color=_ACCENT, align="edge", label="leaves")
    ax.axhline(0, color=_INK, linewidth=0.8)
    most_in = max((b.joins for b in insights.buckets), default=0)
    worst = max(insights.buckets, key=lambda b: b.leaves, default=None)
    most_out = worst.leaves if worst is not None else 0
    # Head room both ways: the note goes under the deepest bar (no bar reaches below it).
    ax.set_ylim(-max(1.0, most_out * 1.3), max(1.0, most_in * 1.1))
    if worst is not None and worst.leaves:
        fmt = "%H:%M:%S" if insights.bucket_width.ToSeconds() < 60 else "%H:%M"
        label = f"most left ({worst.leaves:,}) at {worst.start_time.ToDatetime(dt.UTC).astimezone():{fmt}}"
        middle = _day(worst.start_time) + _bar_width(insights) / 2
        ax.annotate(label, (middle, -worst.leaves), xytext=(0, -3), textcoords="offset points", ha="center", va="top",
                    fontsize=8, color=_ACCENT)  # fmt: skip
    _axes(ax, "Arrivals and departures per bucket")
    _time_axis(ax, insights)
    ax.legend(frameon=False, fontsize=8, loc="upper right")
    return fig


def figure_retention(insights: pb.RoomInsights) -> Any:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(10, 3))
    curve = retention_survival(insights)
    for cohort in insights.retention[:12]:
        if cohort.arrivals:
            shares = [n / cohort.arrivals * 100 for n in cohort.remaining]
            ax.plot(range(len(shares)), shares, color=_GREY, alpha=0.35, linewidth=1)
    ax.plot(range(len(curve)), [share * 100 for share in curve], "-o", color=_BLUE, linewidth=2, markersize=4)
    if len(curve) <= 12:  # few points: write their values (a lone 0 % point is otherwise hard to see)
        for k, share in enumerate(curve):
            ax.annotate(f"{share:.0%}", (k, share * 100), xytext=(0, 6), textcoords="offset points", ha="center",
                        fontsize=8, color=_BLUE)  # fmt: skip
    _axes(ax, "Retention: share of arrivals still present k buckets later (blue: all; grey: each cohort)")
    ax.set_ylim(0, 105)
    # A one-bucket show has one point: still an axis from 0 to 1, in whole buckets.
    ax.set_xlim(-0.3, max(1, len(curve) - 1) + 0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"buckets after the arrival bucket (a bucket is {_bucket_text(insights)})")
    ax.set_ylabel("%")
    return fig


def figure_funnel(insights: pb.RoomInsights) -> Any:
    import matplotlib.pyplot as plt

    products = list(insights.products)
    fig, ax = plt.subplots(figsize=(10, 1.4 + 0.9 * max(1, len(products))), layout="constrained")
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
            ax.text(value, y, f" {value:,}", va="center", fontsize=8)  # just past the bar's end
    ax.set_yticks([n + 0.4 - height / 2 for n in range(len(products))])
    cjk = _cjk_font()
    ax.set_yticklabels([_label(p, cjk) for p in products])
    ax.invert_yaxis()
    _axes(ax, "Product funnel (products pinned, named or asked about)")
    ax.grid(axis="x", color="#e4e7eb")
    top = max((max(values, default=0) for _, values, _ in stages), default=0)
    ax.set_xlim(0, max(1.0, top * 1.12))  # room for the numbers past the longest bar
    # The legend goes under the chart: above it, it sat on the title.
    fig.legend(frameon=False, fontsize=8, loc="outside lower center", ncols=4)
    return fig


def figures(insights: pb.RoomInsights) -> dict[str, Any]:
    """Every chart as a matplotlib Figure, by name (CHARTS); render_html draws them as PNGs."""
    return {
        "viewers": figure_viewers(insights),
        "engagement": figure_engagement(insights),
        "audience-flow": figure_flow(insights),
        "retention": figure_retention(insights),
        "funnel": figure_funnel(insights),
    }


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
th{color:#616e7c;font-weight:600} .n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#3bb273;font-weight:600} .no{color:#e4572e;font-weight:600} .muted{color:#9aa5b1}
.terms span{display:inline-block;margin:3px;padding:3px 9px;border-radius:12px;background:#e8f1f8}
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _table(rid: str, headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    # A numeric column aligns right, header and cells alike, and every row has every cell:
    # a short row (a young cohort) gets empty cells, not a row that ends early.
    def th(i: int, text: str) -> str:
        return f'<th class="n">{_e(text)}</th>' if i in numeric else f"<th>{_e(text)}</th>"

    head = "".join(th(i, h) for i, h in enumerate(headers))

    def cell(i: int, content: str) -> str:
        return f'<td class="n">{content}</td>' if i in numeric else f"<td>{content}</td>"

    def row(r: Sequence[str]) -> str:
        cells = list(r) + [""] * (len(headers) - len(r))
        return "<tr>" + "".join(cell(i, c) for i, c in enumerate(cells)) + "</tr>"

    body = "".join(row(r) for r in rows)
    if not rows:
        body = f'<tr><td colspan="{len(headers)}" class="muted">none</td></tr>'
    return f'<table id="{rid}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _minutes(seconds: int) -> str:
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _bucket_text(insights: pb.RoomInsights) -> str:
    width = insights.bucket_width.ToMilliseconds() / 1000
    return f"{width / 60:g} min" if width >= 60 else f"{width:g} s"


def _local(ts: Any) -> str:
    return f"{ts.ToDatetime(dt.UTC).astimezone():%Y-%m-%d %H:%M:%S}"


def media_text(point: event_pb2.MediaTime) -> str:
    """A point of the show's stream as people read it: "live-1@0:10:05" (h:mm:ss)."""
    seconds = point.position.ToSeconds()
    clock = f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{point.timeline_id}@{clock}" if point.timeline_id else clock


def render_html(insights: pb.RoomInsights, caption: str = "") -> str:
    """The report page for one RoomInsights; `caption` says how its window was chosen."""
    t = insights.totals
    stay = t.average_watch_time.ToSeconds()
    cards = (
        (f"{t.peak_viewers:,}", "peak viewers"),
        (f"{t.unique_viewers:,}", "viewers in all"),
        (f"{stay // 60}m{stay % 60:02d}s", "average stay"),
        (f"{t.comments:,}", f"comments by {plural(t.unique_commenters, 'viewer')}"),
        (f"{t.questions:,}", "questions"),
        (f"{t.likes:,}", "likes"),
        (money(t.gift_value), plural(t.gifts, "gift")),
        (f"{t.purchases:,}", f"purchases by {plural(t.unique_buyers, 'buyer')}"),
    )
    cards_html = "".join(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for v, k in cards)
    charts = {name: _png(figure) for name, figure in figures(insights).items()}

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
         f"{p.viewers_during_pin:,}", f"{p.mentions:,} ({plural(p.mentioners, 'viewer')})", f"{p.questions:,}",
         f"{p.purchases_during_pin:,} ({plural(p.units_during_pin, 'unit')})", f"{p.purchases:,}",
         f"{p.conversion:.1%}"]
        for p in insights.products
    ]  # fmt: skip
    cohorts = [
        [_local(c.start_time), f"{c.arrivals:,}"]
        + [f"{n / c.arrivals:.0%}" if c.arrivals else "" for n in list(c.remaining)[:8]]
        for c in insights.retention
    ]
    # Trending shows only what is rising (lift > 1): in a show no longer than the trend
    # window every term's lift is 1 and the list would repeat "Most used terms".
    rising = [x for x in insights.trending_terms if x.lift > 1.0]
    trending = "".join(f"<span>{_e(x.term)} · {x.count} · ×{x.lift:.1f}</span>" for x in rising)
    if not rising:
        trending = '<em class="muted">no term is rising faster than in the whole show</em>'
    top = "".join(f"<span>{_e(x.term)} · {x.count}</span>" for x in insights.top_terms)
    bucket = _bucket_text(insights)
    state = "final figures (the room is closed)" if insights.final else f"as of {_local(insights.as_of_time)}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(insights.title or insights.room_id)} — room insights</title>
<style>{_STYLE}</style></head><body><main>
<h1>{_e(insights.title or insights.room_id)}</h1>
<div class="sub">Room <code>{_e(insights.room_id)}</code> · {_local(insights.start_time)} – {_local(insights.end_time)}
 · buckets of {bucket} · {state}{f" · {_e(caption)}" if caption else ""}</div>
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
<section><h2>Most used terms</h2><div class="terms" id="top-terms">{top}</div>
<h2>Rising in the last buckets</h2><div class="terms" id="trending">{trending}</div></section>
</main></body></html>
"""


async def write_report(
    target: str,
    token: str,
    room_id: str,
    out: Path,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    *,
    media_from: event_pb2.MediaTime | None = None,
    media_to: event_pb2.MediaTime | None = None,
) -> Path:
    """Fetch the room's insights and write DIR/report.html; returns its path.

    With `media_from` / `media_to` the window is a stretch of the show's stream (a
    recording's "from 0:10:00 to 0:25:00"): each point becomes the wall time the stream
    reached it, from the first event stamped at or after it (ListEvents by media time), so
    the report covers what happened on screen in that stretch (to the insights bucket). A
    `media_to` that no event reaches means "to the end"; a `media_from` that none reaches is
    a LookupError."""
    caption = ""
    if media_from is not None or media_to is not None:
        start, end = await media_window(target, token, room_id, media_from, media_to)
        first = media_text(media_from) if media_from else "the start"
        caption = f"stream time {first} to {media_text(media_to) if media_to else 'the end'}"
    async with InsightsClient(target, token) as client:
        insights = await client.get(room_id, start, end, top=50)
    return await asyncio.to_thread(save_report, insights, out, caption)


async def media_window(
    target: str, token: str, room_id: str, media_from: event_pb2.MediaTime | None, media_to: event_pb2.MediaTime | None
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The wall-clock window between two points of the room's stream (None: unbounded)."""
    async with AdminClient(target, token) as admin:

        async def first_at(point: event_pb2.MediaTime) -> dt.datetime | None:
            async for event in admin.history(room_id, media_time=point, limit=1):
                # The stream reached the point this much before the first event stamped after it.
                ahead = event.media_time.position.ToTimedelta() - point.position.ToTimedelta()
                return event.publish_time.ToDatetime(dt.UTC) - max(ahead, dt.timedelta(0))
            return None

        start = await first_at(media_from) if media_from is not None else None
        if media_from is not None and start is None:
            raise LookupError(f"no event of room {room_id!r} reaches stream time {media_text(media_from)}")
        end = await first_at(media_to) if media_to is not None else None
    return start, end


def save_report(insights: pb.RoomInsights, out: Path, caption: str = "") -> Path:
    """Write DIR/report.html (and the figures as DIR/insights.json); returns the page's path."""
    import matplotlib

    matplotlib.use("Agg")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.html"
    path.write_text(render_html(insights, caption), encoding="utf-8")
    (out / "insights.json").write_text(_json(insights), encoding="utf-8")
    return path


def _json(insights: pb.RoomInsights) -> str:
    from google.protobuf import json_format

    return json_format.MessageToJson(insights, ensure_ascii=False, indent=1)
