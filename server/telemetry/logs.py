"""Structured logs that carry the current trace and span ids.

`--log-format json` writes one JSON object a line (time, level, logger, message,
node, trace_id, span_id, exception); `text` (the default) keeps the human format
and appends `trace=... span=...` when a span is current. Either way a log line
written while a span is current (an instrumented admin RPC, an append) can be
joined to its trace.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from opentelemetry import trace

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(trace_suffix)s"


class TraceContextFilter(logging.Filter):
    """Adds trace_id, span_id (hex, "" outside a span) and trace_suffix to every record."""

    def __init__(self, node_id: str = "") -> None:
        super().__init__()
        self.node_id = node_id

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        trace_id = span_id = suffix = ""
        if ctx.is_valid:
            trace_id, span_id = f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"
            suffix = f" trace={trace_id} span={span_id}"
        record.trace_id = trace_id
        record.span_id = span_id
        record.trace_suffix = suffix
        record.node_id = self.node_id
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("node_id", "trace_id", "span_id"):
            value = getattr(record, key, "")
            if value:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(level: str, log_format: str = "text", node_id: str = "") -> None:
    """The server's root logging: to stderr, text or JSON lines, with trace ids."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(TraceContextFilter(node_id))
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    elif log_format == "text":
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    else:
        raise SystemExit(f"--log-format must be text or json, not {log_format!r}")
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
