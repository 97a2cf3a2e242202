"""Spans as OTLP JSON lines: the exporter behind `barrage serve --trace-file`, and its reader.

Each line is one `ExportTraceServiceRequest` in the OTLP/JSON encoding (the encoding
the OpenTelemetry Collector's `otlpjsonfile` receiver and file exporter use): ids as
lowercase hex, 64-bit integers as decimal strings, enums as numbers, lowerCamelCase
field names. So a file written here can be replayed into a collector, and `barrage
trace` (cli/trace.py) reads it back with `read_spans`.

Lines are written with one `write()` on a file opened with O_APPEND, so several
processes (`serve --workers N`) may share one file without tearing each other's lines.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

# OTLP's Span.SpanKind numbering (SPAN_KIND_UNSPECIFIED = 0); the API's enum starts at 0 = INTERNAL.
_KIND = {
    SpanKind.INTERNAL: 1,
    SpanKind.SERVER: 2,
    SpanKind.CLIENT: 3,
    SpanKind.PRODUCER: 4,
    SpanKind.CONSUMER: 5,
}
KIND_NAMES = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS = {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}


def _value(value: object) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, Sequence):
        return {"arrayValue": {"values": [_value(v) for v in value]}}
    return {"stringValue": str(value)}


def _attributes(attributes: Mapping[str, object] | None) -> list[dict[str, Any]]:
    return [{"key": key, "value": _value(value)} for key, value in (attributes or {}).items()]


def _span(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    assert ctx is not None
    out: dict[str, Any] = {
        "traceId": f"{ctx.trace_id:032x}",
        "spanId": f"{ctx.span_id:016x}",
        "name": span.name,
        "kind": _KIND.get(span.kind, 1),
        "startTimeUnixNano": str(span.start_time or 0),
        "endTimeUnixNano": str(span.end_time or 0),
        "attributes": _attributes(span.attributes),
    }
    if ctx.trace_state:
        out["traceState"] = ctx.trace_state.to_header()
    if span.parent is not None:
        out["parentSpanId"] = f"{span.parent.span_id:016x}"
    if span.links:
        out["links"] = [
            {
                "traceId": f"{link.context.trace_id:032x}",
                "spanId": f"{link.context.span_id:016x}",
                "attributes": _attributes(link.attributes),
            }
            for link in span.links
        ]
    if span.events:
        out["events"] = [
            {"timeUnixNano": str(e.timestamp), "name": e.name, "attributes": _attributes(e.attributes)}
            for e in span.events
        ]
    status: dict[str, Any] = {"code": _STATUS.get(span.status.status_code, 0)}
    if span.status.description:
        status["message"] = span.status.description
    out["status"] = status
    return out


def encode_spans(spans: Iterable[ReadableSpan]) -> dict[str, Any]:
    """One ExportTraceServiceRequest (as a JSON-ready dict), spans grouped by resource and scope."""
    grouped: dict[int, tuple[Any, dict[tuple[str, str], list[dict[str, Any]]]]] = {}
    for span in spans:
        resource = span.resource
        scopes = grouped.setdefault(id(resource), (resource, {}))[1]
        scope = span.instrumentation_scope
        key = (scope.name, scope.version or "") if scope is not None else ("", "")
        scopes.setdefault(key, []).append(_span(span))
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _attributes(resource.attributes)},
                "scopeSpans": [
                    {"scope": {"name": name, **({"version": version} if version else {})}, "spans": spans_}
                    for (name, version), spans_ in scopes.items()
                ],
            }
            for resource, scopes in grouped.values()
        ]
    }


class OtlpJsonFileExporter(SpanExporter):
    """Appends each exported batch to a file as one OTLP JSON line (no collector needed).

    Use it in a BatchSpanProcessor; clients can use it too, to put their spans beside
    the server's for `barrage trace --from server.jsonl --from client.jsonl`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.parent != Path():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        line = (json.dumps(encode_spans(spans), separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        with self._lock:
            if self._fd is None:
                return SpanExportResult.FAILURE
            try:
                os.write(self._fd, line)
            except OSError:
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def shutdown(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


# ------------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class SpanLink:
    trace_id: str
    span_id: str
    attributes: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One span as read back from an OTLP JSON file (ids as hex strings, times in ns)."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    """internal, server, client, producer or consumer."""
    start_ns: int
    end_ns: int
    attributes: dict[str, object]
    resource: dict[str, object]
    scope: str
    links: tuple[SpanLink, ...] = ()
    status: str = "unset"
    """unset, ok or error."""
    status_message: str = ""

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def node(self) -> str:
        """Where the span was recorded: a Barrage node's id, else the service's name (a client app)."""
        node = self.attributes.get("barrage.node.id")
        if not node and self.resource.get("service.namespace") == "barrage":
            node = self.resource.get("service.instance.id")
        return str(node or self.resource.get("service.name") or "?")


def _decode_value(value: Mapping[str, Any]) -> object:
    if "stringValue" in value:
        return str(value["stringValue"])
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [_decode_value(v) for v in value["arrayValue"].get("values", [])]
    return None


def _decode_attributes(items: Iterable[Mapping[str, Any]] | None) -> dict[str, object]:
    return {item["key"]: _decode_value(item.get("value", {})) for item in items or ()}


def _hex_id(value: str) -> str:
    """OTLP/JSON ids are hex; protobuf's generic JSON mapping would give base64: accept both."""
    if not value:
        return ""
    if all(c in "0123456789abcdefABCDEF" for c in value):
        return value.lower()
    import base64

    return base64.b64decode(value).hex()


def decode_request(request: Mapping[str, Any]) -> Iterator[SpanRecord]:
    """The spans of one ExportTraceServiceRequest (as parsed JSON)."""
    status_names = {0: "unset", 1: "ok", 2: "error"}
    for resource_spans in request.get("resourceSpans", ()):
        resource = _decode_attributes(resource_spans.get("resource", {}).get("attributes"))
        for scope_spans in resource_spans.get("scopeSpans", ()):
            scope = str(scope_spans.get("scope", {}).get("name", ""))
            for span in scope_spans.get("spans", ()):
                status = span.get("status", {})
                yield SpanRecord(
                    trace_id=_hex_id(span.get("traceId", "")),
                    span_id=_hex_id(span.get("spanId", "")),
                    parent_id=_hex_id(span.get("parentSpanId", "")),
                    name=str(span.get("name", "")),
                    kind=KIND_NAMES.get(int(span.get("kind", 1)), "internal"),
                    start_ns=int(span.get("startTimeUnixNano", 0)),
                    end_ns=int(span.get("endTimeUnixNano", 0)),
                    attributes=_decode_attributes(span.get("attributes")),
                    resource=resource,
                    scope=scope,
                    links=tuple(
                        SpanLink(
                            _hex_id(link["traceId"]),
                            _hex_id(link["spanId"]),
                            _decode_attributes(link.get("attributes")),
                        )
                        for link in span.get("links", ())
                    ),
                    status=status_names.get(int(status.get("code", 0)), "unset"),
                    status_message=str(status.get("message", "")),
                )


def read_spans(paths: Iterable[str | os.PathLike[str]]) -> list[SpanRecord]:
    """Every span in the given OTLP JSON lines files (a torn last line is skipped)."""
    out: list[SpanRecord] = []
    for path in paths:
        with open(path, encoding="utf-8") as lines:
            for raw in lines:
                text = raw.strip()
                if not text:
                    continue
                try:
                    request = json.loads(text)
                except json.JSONDecodeError:
                    continue  # a line being written right now
                out.extend(decode_request(request))
    return out
