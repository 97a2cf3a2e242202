"""Metrics cheap enough for the fan-out hot path, exported through OpenTelemetry.

An OpenTelemetry Python instrument costs 3-4 µs a measurement (Counter.add,
Histogram.record with attributes; measured on this project's machine), which is half
the whole CPU cost of one delivery. So the node counts in plain Python objects — a
counter cell is an int attribute, a histogram series is a list of bucket counts
updated with one bisect (~0.1 µs) — and the OpenTelemetry SDK only carries the
results: every metric reader the node uses is one of the subclasses at the bottom,
which add these metrics to what the SDK collected before passing it on (Prometheus
scrape, OTLP push, or the in-memory reader of tests; see readers.py). Same data model, same
exporters, same resource; nothing is measured twice.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

Attrs = tuple[tuple[str, str], ...]
"""Attributes as a hashable, ordered tuple of (key, value)."""

LATENCY_BOUNDS_S: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
SIZE_BOUNDS: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


class Cell:
    """One counter series: `cell.value += n` is the whole cost of counting."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


class Counter:
    """A monotonic counter family (exported as a cumulative Sum)."""

    def __init__(self, name: str, unit: str, description: str) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self.cells: dict[Attrs, Cell] = {}

    def cell(self, **attributes: str) -> Cell:
        key = tuple(sorted(attributes.items()))
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = Cell()
        return cell

    def add(self, n: int, **attributes: str) -> None:
        self.cell(**attributes).value += n

    def by(self, *names: str) -> Labelled:
        """The counter's cells indexed by the values of these attributes, in this order."""
        return Labelled(self, names)


class Labelled:
    """A counter's cells by attribute values, for hot paths: `by[values].value += n` costs a
    tuple and a dict lookup, where `add(n, **attributes)` builds, sorts and hashes a key."""

    __slots__ = ("_cells", "_counter", "_names")

    def __init__(self, counter: Counter, names: tuple[str, ...]) -> None:
        self._counter = counter
        self._names = names
        self._cells: dict[tuple[str, ...], Cell] = {}

    def __getitem__(self, values: tuple[str, ...]) -> Cell:
        cell = self._cells.get(values)
        if cell is None:
            cell = self._cells[values] = self._counter.cell(**dict(zip(self._names, values, strict=True)))
        return cell


class Series:
    """One histogram series with fixed bucket bounds."""

    __slots__ = ("bounds", "counts", "max", "min", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")

    def record(self, value: float) -> None:
        # Bucket i holds bounds[i-1] < value <= bounds[i] (OpenTelemetry's explicit buckets).
        # Per delivery: keep it to a bisect and a few updates (the count is the buckets' sum).
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        if value < self.min:  # noqa: PLR1730 - a comparison is cheaper than a min() call here
            self.min = value
        if value > self.max:  # noqa: PLR1730
            self.max = value

    @property
    def count(self) -> int:
        return sum(self.counts)


class HistogramFamily:
    def __init__(self, name: str, unit: str, description: str, bounds: Sequence[float]) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self.bounds = tuple(bounds)
        self.series: dict[Attrs, Series] = {}

    def of(self, **attributes: str) -> Series:
        key = tuple(sorted(attributes.items()))
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series(self.bounds)
        return series


GaugeCallback = Callable[[], Iterable[tuple[dict[str, str], float]]]


class GaugeFamily:
    """A value read when metrics are collected (connections, queue depth, lag...)."""

    def __init__(self, name: str, unit: str, description: str, callback: GaugeCallback | None = None) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self.callback = callback


class Registry:
    """Every hot metric of the process; `collect()` turns them into OpenTelemetry data."""

    def __init__(self, scope: str = "barrage.server") -> None:
        self.scope = InstrumentationScope(scope)
        self.start_ns = time.time_ns()
        self.counters: list[Counter] = []
        self.histograms: list[HistogramFamily] = []
        self.gauges: list[GaugeFamily] = []

    def counter(self, name: str, unit: str, description: str) -> Counter:
        counter = Counter(name, unit, description)
        self.counters.append(counter)
        return counter

    def histogram(
        self, name: str, unit: str, description: str, bounds: Sequence[float] = LATENCY_BOUNDS_S
    ) -> HistogramFamily:
        family = HistogramFamily(name, unit, description, bounds)
        self.histograms.append(family)
        return family

    def gauge(self, name: str, unit: str, description: str, callback: GaugeCallback | None = None) -> GaugeFamily:
        gauge = GaugeFamily(name, unit, description, callback)
        self.gauges.append(gauge)
        return gauge

    def collect(self, delta_from: dict[tuple[str, Attrs], Any] | None = None) -> list[Metric]:
        """The current values. With `delta_from` (a reader's memory), histograms and counters
        are reported as deltas since that reader's previous collection."""
        now = time.time_ns()
        delta = delta_from is not None
        temporality = AggregationTemporality.DELTA if delta else AggregationTemporality.CUMULATIVE
        metrics: list[Metric] = []
        for counter in self.counters:
            points = []
            for key, cell in list(counter.cells.items()):
                value = cell.value
                start = self.start_ns
                if delta_from is not None:
                    last_value, start = delta_from.get((counter.name, key), (0, self.start_ns))
                    delta_from[(counter.name, key)] = (value, now)
                    value -= last_value
                points.append(NumberDataPoint(dict(key), start, now, value))
            if points:
                metrics.append(
                    Metric(counter.name, counter.description, counter.unit, Sum(points, temporality, is_monotonic=True))
                )
        for family in self.histograms:
            hpoints = []
            for key, series in list(family.series.items()):
                counts = list(series.counts)  # one C-level copy: consistent even while the loop records
                count, total = sum(counts), series.sum
                start = self.start_ns
                if delta_from is not None:
                    last = delta_from.get((family.name, key))
                    delta_from[(family.name, key)] = (counts, count, total, now)
                    if last is not None:
                        counts = [a - b for a, b in zip(counts, last[0], strict=True)]
                        count, total, start = count - last[1], total - last[2], last[3]
                hpoints.append(
                    HistogramDataPoint(
                        attributes=dict(key),
                        start_time_unix_nano=start,
                        time_unix_nano=now,
                        count=count,
                        sum=total,
                        bucket_counts=counts,
                        explicit_bounds=list(family.bounds),
                        min=series.min if series.count else 0.0,
                        max=series.max if series.count else 0.0,
                    )
                )
            if hpoints:
                metrics.append(Metric(family.name, family.description, family.unit, Histogram(hpoints, temporality)))
        for gauge in self.gauges:
            if gauge.callback is None:
                continue
            gpoints = [NumberDataPoint(attrs, now, now, value) for attrs, value in gauge.callback()]
            if gpoints:
                metrics.append(Metric(gauge.name, gauge.description, gauge.unit, Gauge(gpoints)))
        return metrics

    def merge(self, data: MetricsData | None, resource: Resource, delta_from: dict[Any, Any] | None) -> MetricsData:
        """`data` (what the SDK collected) with this registry's metrics added as one more scope."""
        scope = ScopeMetrics(self.scope, self.collect(delta_from), schema_url="")
        resource_metrics = list(data.resource_metrics) if data is not None else []
        if resource_metrics:
            first = resource_metrics[0]
            resource_metrics[0] = ResourceMetrics(first.resource, [*first.scope_metrics, scope], first.schema_url)
        else:
            resource_metrics.append(ResourceMetrics(resource, [scope], schema_url=""))
        return MetricsData(resource_metrics)
