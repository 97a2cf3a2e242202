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

from barrage.v1 import event_pb2, insights_service_pb2_grpc
from barrage.v1 import insights_service_pb2 as pb
from clients.sdk.errors import BarrageError

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


def product_name(insights: pb.RoomInsights, product_id: str) -> str:
    for product in insights.products:
        if product.product_id == product_id:
            return product.title or product_id
    return product_id or "—"


def _audience(insights: pb.RoomInsights) -> Panel:
    t = insights.totals
    per_bucket = max(1, len(insights.buckets))
    lines = Text()
    lines.append(f"{t.viewers:,}", style="bold green")
    lines.append(f" watching now   peak {t.peak_viewers:,}")
    if t.HasField("peak_time"):
        lines.append(f" at {when(t.peak_time)}")
    stay = t.average_watch_time.ToSeconds()
    lines.append(f"   {t.unique_viewers:,} viewers in all   average stay {stay // 60}m{stay % 60:02d}s\n")
    lines.append(f"joins {t.joins:,}  leaves {t.leaves:,}   comments {t.comments:,}")
    lines.append(f" ({t.comments / per_bucket:.1f}/bucket)")
    lines.append(f"  by {t.unique_commenters:,}   questions {t.questions:,}   likes {t.likes:,}\n")
    lines.append(f"gifts {t.gifts:,} worth {money(t.gift_value)}   purchases {t.purchases:,} ")
    lines.append(f"({t.units_sold:,} units, {t.unique_buyers:,} buyers)")
    return Panel(lines, title="audience and engagement", border_style="green")


def _series(insights: pb.RoomInsights) -> Panel:
    rows = insights.buckets
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", justify="right")
    table.add_column()
    for name, values in (
        ("viewers", [b.viewers for b in rows]),
        ("joins", [b.joins for b in rows]),
        ("leaves", [b.leaves for b in rows]),
        ("comments", [b.comments for b in rows]),
        ("likes", [b.likes for b in rows]),
        ("purchases", [b.purchases for b in rows]),
    ):
        table.add_row(name, f"{sparkline(values)}  max {max(values, default=0):,}")
    curve = " ".join(f"{p.share:.0%}" for p in insights.retention_curve[:12]) or "—"
    table.add_row("retention", curve)
    width = insights.bucket_width.ToMilliseconds() / 1000
    size = f"{width / 60:g} min" if width >= 60 else f"{width:g} s"
    title = f"per bucket of {size}, oldest left"
    return Panel(table, title=title, border_style="cyan")


def _questions(insights: pb.RoomInsights) -> Panel:
    table = Table(expand=True, show_edge=False, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("asks", style="bold")
    table.add_column("product")
    table.add_column("example", ratio=3)
    table.add_column("answered", ratio=2)
    for row in insights.questions[:10]:
        if row.answered:
            status = Text(f"✓ {ROLE_NAMES.get(row.answered_by, 'staff')}", style="green")
            if row.open_count:
                status.append(f", {row.open_count} since", style="yellow")
        else:
            status = Text(f"✗ {row.open_count} waiting", style="bold red")
        table.add_row(
            str(row.count), row.intent or "other", product_name(insights, row.product_id), row.example, status
        )
    return Panel(table, title="what viewers ask", border_style="magenta")


def _products(insights: pb.RoomInsights) -> Panel:
    table = Table(expand=True, show_edge=False, pad_edge=False)
    table.add_column("product", ratio=2, no_wrap=True)
    for column in ("pinned", "seen", "named", "asked", "bought", "conv."):
        table.add_column(column, justify="right")
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
    return Panel(table, title="product funnel", border_style="yellow")


def _terms(insights: pb.RoomInsights) -> Panel:
    text = Text()
    for term in insights.trending_terms[:15]:
        style = "bold red" if term.lift >= 2 else "bold" if term.lift >= 1.2 else ""
        text.append(f"{term.term}", style=style)
        text.append(f" {term.count}  ")
    return Panel(text or Text("—"), title="trending", border_style="blue")


def dashboard(insights: pb.RoomInsights) -> Layout:
    """One frame of the dashboard."""
    layout = Layout()
    state = "final" if insights.final else f"as of {when(insights.as_of_time)}"
    header = Text(f" {insights.title or insights.room_id}  ·  {insights.room_id}  ·  {state}", style="bold reverse")
    layout.split_column(
        Layout(header, size=1),
        Layout(_audience(insights), size=5),
        Layout(_series(insights), size=9),
        Layout(name="middle"),
        Layout(_terms(insights), size=4),
    )
    layout["middle"].split_row(Layout(_questions(insights), ratio=3), Layout(_products(insights), ratio=2))
    return layout


def render_text(insights: pb.RoomInsights, width: int = 160, height: int = 40) -> str:
    """The dashboard as plain text (for `--once` and tests)."""
    console = Console(width=width, height=height, record=True, file=io.StringIO(), color_system=None)
    console.print(Group(dashboard(insights)), height=height)
    return console.export_text()


async def run(target: str, token: str, room_id: str, interval_s: float, recent: int, once: bool) -> int:
    async with InsightsClient(target, token) as client:
        if once:
            print(render_text(await client.get(room_id)))
            return 0
        console = Console()
        live: Any = None
        try:
            async for insights in client.watch(room_id, interval_s, recent):
                frame = dashboard(insights)
                if live is None:
                    live = Live(frame, console=console, screen=True, auto_refresh=False)
                    live.start()
                live.update(frame, refresh=True)
        finally:
            if live is not None:
                live.stop()
        console.print("the room is closed: these are its final figures (barrage report writes them as HTML)")
    return 0
