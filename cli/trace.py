"""`barrage trace EVENT_ID_OR_CURSOR --from PATH...`: one message's journey as a waterfall.

Reads OTLP JSON lines files (`barrage serve --trace-file`, or a client's
OtlpJsonFileExporter), finds the spans of one message, and prints each hop with its
node, when it started (from the journey's first span) and how long it took.

Which spans are the message's: every span whose messaging.message.id, barrage.cursor
or barrage.client_msg_id is the given key (the client's send and receive, the ingest,
each node's receive), their ancestors up to the first span that is not Barrage's, all
their descendants (the append, the sampled writes...), and every span that links to
one of them (the flush of a batch that carried the message) with its descendants.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from barrage.server.telemetry.otlpjson import SpanRecord, read_spans

KEYS = ("messaging.message.id", "barrage.cursor", "barrage.client_msg_id")


class NotFoundError(Exception):
    """No span mentions the key."""


@dataclass(frozen=True, slots=True)
class Row:
    span: SpanRecord
    depth: int
    via_link: bool
    """Placed under its parent row because it links to it (a batch), not as its child."""


@dataclass(frozen=True, slots=True)
class Journey:
    key: str
    rows: list[Row]
    start_ns: int
    end_ns: int

    @property
    def total_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def nodes(self) -> list[str]:
        return sorted({row.span.node for row in self.rows})


def _is_barrage(span: SpanRecord) -> bool:
    return "messaging.destination.name" in span.attributes or span.scope.startswith("barrage")


def find_journey(spans: Iterable[SpanRecord], key: str) -> Journey:
    by_id: dict[str, SpanRecord] = {}
    for span in spans:
        by_id.setdefault(span.span_id, span)
    children: dict[str, list[SpanRecord]] = {}
    linked_from: dict[str, list[SpanRecord]] = {}
    for span in by_id.values():
        if span.parent_id:
            children.setdefault(span.parent_id, []).append(span)
        for link in span.links:
            linked_from.setdefault(link.span_id, []).append(span)
    seeds = [s for s in by_id.values() if any(s.attributes.get(k) == key for k in KEYS)]
    if not seeds:
        raise NotFoundError(f"no span mentions {key!r} (an event id, cursor or client_msg_id)")
    chosen: set[str] = set()
    pending: list[SpanRecord] = []
    for seed in seeds:
        pending.append(seed)
        parent = by_id.get(seed.parent_id)
        while parent is not None and _is_barrage(parent):
            pending.append(parent)
            parent = by_id.get(parent.parent_id)
    while pending:
        span = pending.pop()
        if span.span_id in chosen:
            continue
        chosen.add(span.span_id)
        pending.extend(children.get(span.span_id, ()))
        pending.extend(linked_from.get(span.span_id, ()))
    journey = [by_id[i] for i in chosen]
    return Journey(key, _rows(journey), min(s.start_ns for s in journey), max(s.end_ns for s in journey))


def _order(span: SpanRecord) -> tuple[int, int, str]:
    return span.start_ns, span.end_ns, span.span_id


def _rows(spans: Sequence[SpanRecord]) -> list[Row]:
    """Depth-first, children by start time; a span whose parent is not in the journey hangs
    under the first journey span it links to."""
    ids = {s.span_id for s in spans}
    under: dict[str, list[tuple[SpanRecord, bool]]] = {}
    roots: list[SpanRecord] = []
    for span in spans:
        if span.parent_id in ids:
            under.setdefault(span.parent_id, []).append((span, False))
            continue
        target = next((link.span_id for link in span.links if link.span_id in ids), None)
        if target is not None:
            under.setdefault(target, []).append((span, True))
        else:
            roots.append(span)
    rows: list[Row] = []

    def walk(span: SpanRecord, depth: int, via_link: bool) -> None:
        rows.append(Row(span, depth, via_link))
        for child, linked in sorted(under.get(span.span_id, ()), key=lambda item: _order(item[0])):
            walk(child, depth + 1, linked)

    for root in sorted(roots, key=_order):
        walk(root, 0, False)
    return rows


def render(journey: Journey, width: int = 40) -> str:
    """The waterfall as text: one line per hop, then the total and the slowest hop."""
    start, total = journey.start_ns, max(journey.end_ns - journey.start_ns, 1)
    first = journey.rows[0].span
    room = first.attributes.get("messaging.destination.name", "?")
    lines = [
        f"message {journey.key} in room {room}: {len(journey.rows)} spans on {len(journey.nodes)} nodes "
        f"({', '.join(journey.nodes)}), {journey.total_ms:.1f} ms",
        "",
    ]
    names = [("  " * row.depth) + ("↳ " if row.via_link else "") + row.span.name for row in journey.rows]
    name_width = max(24, *(len(n) for n in names))
    node_width = max(8, *(len(row.span.node) for row in journey.rows))
    lines.append(f"{'hop':<{name_width}}  {'node':<{node_width}}  {'start':>9}  {'duration':>9}  timeline")
    for name, row in zip(names, journey.rows, strict=True):
        span = row.span
        begin = int((span.start_ns - start) * width / total)
        length = max(1, round((span.end_ns - span.start_ns) * width / total))
        bar = (" " * begin + "█" * length)[:width].ljust(width)
        mark = " !" if span.status == "error" else ""
        lines.append(
            f"{name:<{name_width}}  {span.node:<{node_width}}  {(span.start_ns - start) / 1e6:>6.1f} ms"
            f"  {span.duration_ms:>6.2f} ms  |{bar}|{mark}"
        )
    slowest = max(journey.rows, key=lambda r: r.span.duration_ms if r.depth else -1.0).span
    lines.append("")
    lines.append(
        f"total {journey.total_ms:.1f} ms (first span's start to last span's end); "
        f"slowest hop below the root: {slowest.name} on {slowest.node}, {slowest.duration_ms:.2f} ms"
    )
    errors = [row.span for row in journey.rows if row.span.status == "error"]
    for span in errors:
        lines.append(f"error in {span.name} on {span.node}: {span.status_message or span.attributes.get('error.type')}")
    return "\n".join(lines)


def trace_command(key: str, paths: Sequence[str], width: int = 40) -> int:
    import sys

    try:
        journey = find_journey(read_spans(paths), key)
    except NotFoundError as error:
        print(f"barrage trace: {error} in {', '.join(paths)}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"barrage trace: {error}", file=sys.stderr)
        return 1
    print(render(journey, width))
    return 0
