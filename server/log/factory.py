"""Open a storage backend from its URL.

    embedded:DIR[?option=value&...]                      the default, on local disk
    kafka://HOST:PORT[,HOST:PORT...][/TOPIC][?option=value&...]

Options are the keyword arguments of open_embedded / open_kafka (docs/embedded-log.md,
docs/kafka.md); numbers and true/false are converted.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from barrage.server.log.base import Backend


def _value(text: str) -> object:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_options(query: str) -> dict[str, object]:
    return {key: _value(value) for key, value in parse_qsl(query, keep_blank_values=True)}


def open_backend(url: str) -> Backend:
    base, _, query = url.partition("?")
    options = parse_options(query)
    if base.startswith("embedded:"):
        from barrage.server.log.embedded import open_embedded

        return open_embedded(base.removeprefix("embedded:") or "./data", **options)
    if base.startswith("kafka://"):
        from barrage.server.log.kafka import open_kafka

        return open_kafka(base, **options)
    raise ValueError(f"unknown log URL {url!r}: use embedded:DIR or kafka://HOST:PORT/TOPIC")
