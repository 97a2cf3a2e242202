"""`barrage insights ROOM`: a room's insights as a live terminal dashboard (rich).

Follows RoomInsightsService.WatchInsights and redraws on every update: the audience now,
engagement per bucket as sparklines, the retention curve, the questions viewers ask
(answered or not), the product funnel and trending terms.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import duration_pb2, timestamp_pb2
from rich.console import Console, Group
from rich.layout import Layout
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from barrage.clients.sdk.errors import BarrageError
from barrage.v1 import event_pb2, insights_service_pb2_grpc
from barrage.v1 import insights_service_pb2 as pb

_BARS = " ▁▂▃▄▅▆▇█"
ROLE_NAMES = {event_pb2.ROLE_HOST: "host", event_pb2.ROLE_BOT: "assistant", event_pb2.ROLE_MODERATOR: "moderator"}


class InsightsClient:
    """RoomInsightsService with a bearer token."""

    def __init__(self, target: str, token: str) -> None:
        self._channel = grpc.aio.insecure_channel(target)
        self._stub = insights_service_pb2_grpc.RoomInsightsServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),)

    async def __aenter__(self) -> InsightsClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self._channel.close()

    async def get(
        self, room_id: str, start: dt.datetime | None = None, end: dt.datetime | None = None, top: int = 20
    ) -> pb.RoomInsights:
        request = pb.GetInsightsRequest(room_id=room_id, options=pb.InsightsOptions(top_questions=top, top_terms=40))
        if start is not None:
            request.start_time.FromDatetime(start)
        if end is not None:
            request.end_time.FromDatetime(end)
        try:
            response = await self._stub.GetInsights(request, metadata=self._metadata)
        except grpc.aio.AioRpcError as error:
            raise _sdk_error(error) from None
        return response.insights  # type: ignore[no-any-return]

    async def watch(self, room_id: str, interval_s: float = 2.0, recent: int = 0) -> AsyncIterator[pb.RoomInsights]:
        interval = duration_pb2.Duration()
        interval.FromMilliseconds(int(interval_s * 1000))
        request = pb.WatchInsightsRequest(room_id=room_id, interval=interval, recent_buckets=recent)
        try:
            async for response in self._stub.WatchInsights(request, metadata=self._metadata):
                yield response.insights
        except grpc.aio.AioRpcError as error:
            raise _sdk_error(error) from None


def _sdk_error(error: grpc.aio.AioRpcError) -> Exception:
    return BarrageError.from_rpc_error(error)


# ---------------------------------------------------------------------- formatting


def when(ts: timestamp_pb2.Timestamp) -> str:
    return ts.ToDatetime(dt.UTC).astimezone().strftime("%H:%M:%S")


def money(values: Sequence[event_pb2.Money]) -> str:
    return " + ".join(f"{m.amount_minor / 100:,.2f} {m.currency}" for m in values) or "0"


def sparkline(values: Sequence[float], width: int = 60) -> str:
    values = list(values)[-width:]
    top = max(values, default=0)
    if top <= 0:
        return _BARS[0] * len(values)
    return "".join(_BARS[min(8, round(v / top * 8))] for v in values)


def plural(n: int, noun: str) -> str:
    """ "1 viewer", "2 viewers" (English nouns that take an s)."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def retention_survival(insights: pb.RoomInsights) -> list[float]:
    """The retention curve: point k is the share of arrivals still present k buckets after
    their arrival bucket (k = 0: at the end of the arrival bucket), as fractions.

    Young cohorts are not yet known far out, so the step from k-1 to k is taken from the
    cohorts known at k only: S(0) = Σ remaining[0] / Σ arrivals, and
    S(k) = S(k-1) · Σ remaining[k] / Σ remaining[k-1], both sums over the cohorts known at k
    (a life table). Dividing each point's remaining by its own arrivals instead lets the late
    points count only the early cohort and climb back towards 100 %; this curve never rises,
    because no cohort's remaining does. docs/insights.md defines it for the report.

    The server sends this curve as `retention_curve` (its shares, the same life table since
    issue 15: tests/test_insights_engine.py checks the two agree); it is computed here from
    the cohorts only when a snapshot carries no curve (one built by hand)."""
    if insights.retention_curve:
        return [point.share for point in insights.retention_curve]
    cohorts = [list(c.remaining) for c in insights.retention if c.arrivals]
    arrivals = [c.arrivals for c in insights.retention if c.arrivals]
    known = [(a, r) for a, r in zip(arrivals, cohorts, strict=True) if r]
    if not known:
        return []
    curve = [sum(r[0] for _, r in known) / sum(a for a, _ in known)]
    for k in range(1, max(len(r) for _, r in known)):
        before = sum(r[k - 1] for _, r in known if len(r) > k)
        after = sum(r[k] for _, r in known if len(r) > k)
        curve.append(curve[-1] * after / before if before else 0.0)
    return curve


def product_name(insights: pb.RoomInsights, product_id: str) -> str:
    for product in insights.products:
        if product.product_id == product_id:
            return product.title or product_id
    return product_id or "—"


# An 80×24 terminal is the design size: every panel has a height fixed by its content, the
# questions take what is left, and nothing is laid side by side (side by side, the product
# titles were cut to "Re…"). Wider and taller terminals get longer sparklines and more rows.
NARROW_HEIGHT = 30
"""Below this many rows the dashboard leaves out the secondary sparklines and the terms panel's border."""


def _packed(items: Sequence[Text], width: int) -> list[Text]:
    """Items joined by wide gaps into lines no wider than `width`, never splitting an item."""
    lines: list[Text] = []
    line = Text()
    for item in items:
        if line.cell_len and line.cell_len + 3 + item.cell_len > width:
            lines.append(line)
            line = Text()
        if line.cell_len:
            line.append("   ")
        line.append_text(item)
    if line.cell_len:
        lines.append(line)
    return lines


def _audience(insights: pb.RoomInsights, width: int, height: int) -> Panel:
    t = insights.totals
    stay = t.average_watch_time.ToSeconds()
    peak = f"peak {t.peak_viewers:,}" + (f" at {when(t.peak_time)}" if t.HasField("peak_time") else "")
    items = [
        Text.assemble((f"{t.viewers:,}", "bold green"), " watching now"),
        Text(peak),
        Text(f"{plural(t.unique_viewers, 'viewer')} in all"),
        Text(f"average stay {stay // 60}m{stay % 60:02d}s"),
        *([Text(f"joins {t.joins:,} leaves {t.leaves:,}")] if height >= NARROW_HEIGHT else []),
        Text(f"{plural(t.comments, 'comment')} by {t.unique_commenters:,}"),
        Text(plural(t.questions, "question")),
        Text(plural(t.likes, "like")),
        Text(f"{plural(t.gifts, 'gift')} worth {money(t.gift_value)}"),
        Text(f"{plural(t.purchases, 'purchase')} by {plural(t.unique_buyers, 'buyer')}"),
    ]
    lines = _packed(items, width - 4)
    return Panel(Text("\n").join(lines), title="audience and engagement", border_style="green", height=len(lines) + 2)


def _series(insights: pb.RoomInsights, width: int, height: int) -> Panel:
    rows = insights.buckets
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", justify="right")
    table.add_column(no_wrap=True)
    series = [
        ("viewers", [b.viewers for b in rows]),
        ("joins", [b.joins for b in rows]),
        ("leaves", [b.leaves for b in rows]),
        ("comments", [b.comments for b in rows]),
        ("likes", [b.likes for b in rows]),
        ("purchases", [b.purchases for b in rows]),
    ]
    if height < NARROW_HEIGHT:
        series = [row for row in series if row[0] in ("viewers", "comments", "purchases")]
    room = max(10, width - 4 - 10 - 14)  # border and padding, the names, "  max 12,345"
    for name, values in series:
        table.add_row(name, f"{sparkline(values, room)}  max {max(values, default=0):,}")
    shares = retention_survival(insights)
    curve = " ".join(f"{share:.0%}" for share in shares[: max(1, room // 5)]) or "—"
    table.add_row("retention", curve)
    width_s = insights.bucket_width.ToMilliseconds() / 1000
    size = f"{width_s / 60:g} min" if width_s >= 60 else f"{width_s:g} s"
    return Panel(table, title=f"per bucket of {size}, oldest left", border_style="cyan", height=len(series) + 3)


def _questions(insights: pb.RoomInsights) -> Panel:
    table = Table(expand=True, box=None, pad_edge=False, header_style="bold dim")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("asks", style="bold", no_wrap=True)
    table.add_column("product", ratio=2, no_wrap=True, overflow="ellipsis")
    table.add_column("example", ratio=3, no_wrap=True, overflow="ellipsis")
    table.add_column("answered", no_wrap=True)
    for row in insights.questions[:20]:
        if row.answered:
            status = Text(f"✓ {ROLE_NAMES.get(row.answered_by, 'staff')}", style="green")
            if row.open_count:
                status.append(f" +{row.open_count}", style="yellow")
        else:
            status = Text(f"✗ {row.open_count} waiting", style="bold red")
        table.add_row(
            str(row.count), row.intent or "other", product_name(insights, row.product_id), row.example, status
        )
    if not insights.questions:
        table.add_row("", "—", "", Text("no questions yet", style="dim"), "")
    return Panel(table, title="what viewers ask (✓ +n: asked again since the answer)", border_style="magenta")


def _products(insights: pb.RoomInsights) -> Panel:
    table = Table(expand=True, box=None, pad_edge=False, header_style="bold dim")
    longest = max((Text(p.title or p.product_id).cell_len for p in insights.products), default=7)
    # The name may wrap onto a second line, never be cut: it is what the row is about.
    table.add_column("product", ratio=1, min_width=min(longest, 30))
    for column in ("pinned", "seen", "named", "asked", "bought", "conv."):
        table.add_column(column, justify="right", no_wrap=True)
    for p in insights.products:
        table.add_row(
            p.title or p.product_id,
            f"{p.pinned_duration.ToSeconds() // 60}m{p.pinned_duration.ToSeconds() % 60:02d}s",
            f"{p.viewers_during_pin:,}",
            f"{p.mentions:,}",
            f"{p.questions:,}",
            f"{p.purchases_during_pin:,}",
            f"{p.conversion:.1%}",
        )
    if not insights.products:
        table.add_row("—", "", "", "", "", "", "")
    lines = 1 + sum(2 if Text(p.title or p.product_id).cell_len > 30 else 1 for p in insights.products)
    return Panel(table, title="product funnel", border_style="yellow", height=max(2, lines) + 2)


def _terms(insights: pb.RoomInsights, framed: bool) -> Any:
    # Rising terms (lift > 1) when there are any; in a show no longer than the trend window
    # every lift is 1, and the list is the most used terms: say so instead of "trending".
    rising = [term for term in insights.trending_terms if term.lift > 1.0]
    terms = rising or list(insights.top_terms)
    label = "rising" if rising else "most used"
    text = Text(no_wrap=True, overflow="ellipsis")
    if not framed:
        text.append(f"{label}: ", style="bold blue")
    for term in terms[:15]:
        style = "bold red" if term.lift >= 2 else "bold" if term.lift >= 1.2 else ""
        text.append(f"{term.term}", style=style)
        text.append(f" {term.count}  ")
    if not terms:
        text.append("—")
    return Panel(text, title=label, border_style="blue", height=3) if framed else text


def dashboard(insights: pb.RoomInsights, width: int = 80, height: int = 24) -> Layout:
    """One frame of the dashboard for a terminal of width × height."""
    layout = Layout()
    state = "final" if insights.final else f"as of {when(insights.as_of_time)}"
    header = Text(
        f" {insights.title or insights.room_id}  ·  {insights.room_id}  ·  {state}",
        style="bold reverse",
        no_wrap=True,
        overflow="ellipsis",
    )
    audience = _audience(insights, width, height)
    series = _series(insights, width, height)
    products = _products(insights)
    framed = height >= NARROW_HEIGHT
    layout.split_column(
        Layout(header, size=1),
        Layout(audience, size=audience.height),
        Layout(series, size=series.height),
        Layout(products, size=products.height),
        Layout(_questions(insights), name="questions", minimum_size=3),
        Layout(_terms(insights, framed), size=3 if framed else 1),
    )
    return layout


def render_text(insights: pb.RoomInsights, width: int = 80, height: int = 24) -> str:
    """The dashboard as plain text (for `--once` and tests)."""
    console = Console(width=width, height=height, record=True, file=io.StringIO(), color_system=None)
    console.print(Group(dashboard(insights, width, height)), height=height)
    return console.export_text()


async def run(target: str, token: str, room_id: str, interval_s: float, recent: int, once: bool) -> int:
    async with InsightsClient(target, token) as client:
        if once:
            size = Console().size
            print(render_text(await client.get(room_id), size.width, size.height))
            return 0
        console = Console()
        live: Any = None
        try:
            async for insights in client.watch(room_id, interval_s, recent):
                frame = dashboard(insights, console.width, console.height)
                if live is None:
                    live = Live(frame, console=console, screen=True, auto_refresh=False)
                    live.start()
                live.update(frame, refresh=True)
        finally:
            if live is not None:
                live.stop()
        console.print("the room is closed: these are its final figures (barrage report writes them as HTML)")
    return 0
