"""Tracing, metrics and structured logs for a node (docs/observability.md).

- `hooks`: how telemetry hears the core: `TelemetryObserver`, the implementation of the
  core's `server/core/observer.py` that `hooks.enable` installs;
- `hot`: metrics cheap enough to update per delivery, exported through OpenTelemetry;
- `setup`: providers, exporters and the Prometheus endpoint from settings and OTEL_*;
- `otlpjson`: the `--trace-file` exporter (OTLP JSON lines) and its reader;
- `logs`: JSON or text logs carrying trace and span ids.
"""
