"""Metric readers that add the hot registry's metrics (hot.py) to every collection."""

from __future__ import annotations

from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from barrage.server.telemetry.hot import Registry


class HotReader:
    """Mixed into a MetricReader: adds the registry's metrics to every collection."""

    hot_registry: Registry | None = None
    hot_resource: Resource = Resource.get_empty()
    _hot_memory: dict[Any, Any] | None = None

    def attach_registry(self, registry: Registry, resource: Resource) -> None:
        self.hot_registry = registry
        self.hot_resource = resource
        temporality = getattr(self, "_instrument_class_temporality", {}).get(HistogramInstrument)
        self._hot_memory = {} if temporality == AggregationTemporality.DELTA else None

    def _with_hot(self, data: MetricsData) -> MetricsData:
        if self.hot_registry is None:
            return data
        return self.hot_registry.merge(data, self.hot_resource, self._hot_memory)


class HotPrometheusReader(HotReader, PrometheusMetricReader):
    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        super()._receive_metrics(self._with_hot(metrics_data), timeout_millis, **kwargs)


class HotPeriodicReader(HotReader, PeriodicExportingMetricReader):
    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        super()._receive_metrics(self._with_hot(metrics_data), timeout_millis, **kwargs)


class HotInMemoryReader(HotReader, InMemoryMetricReader):
    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        super()._receive_metrics(self._with_hot(metrics_data), timeout_millis, **kwargs)
