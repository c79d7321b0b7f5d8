"""Prometheus metrics, in a registry of the app's own so several apps can live in one process."""

from __future__ import annotations

import collections
import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

CONTENT_TYPE = CONTENT_TYPE_LATEST
# requests the HTTP protocol rejected before any app saw them (serving.protocol), by status;
# per process, because the protocol layer is shared by every app in it
REJECTED_BEFORE_APP: collections.Counter[int] = collections.Counter()


class RejectedBeforeApp:
    """A collector exposing REJECTED_BEFORE_APP as `mlops_http_rejected_before_app_total`."""

    def collect(self):
        family = CounterMetricFamily(
            "mlops_http_rejected_before_app",
            "Requests rejected by the HTTP server before the app (headers too large, malformed)",
            labels=["status"],
        )
        for status, count in sorted(REJECTED_BEFORE_APP.items()):
            family.add_metric([str(status)], count)
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "mlops_http_requests", "HTTP requests", ["method", "route", "status"], registry=registry
        )
        self.request_latency = Histogram(
            "mlops_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "mlops_http_requests_in_flight", "Requests being served", registry=registry
        )
        self.predictions = Counter(
            "mlops_predictions", "Rows predicted", ["model", "version"], registry=registry
        )
        self.inference_latency = Histogram(
            "mlops_inference_duration_seconds",
            "Model call latency per batch",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_rows = Histogram(
            "mlops_inference_batch_rows", "Rows per model call", ["model"], buckets=BATCH_BUCKETS,
            registry=registry,
        )  # fmt: skip
        self.model_info = Gauge(
            "mlops_model_info",
            "Model being served (value 1)",
            ["model", "version"],
            registry=registry,
        )
        self.load_failures = Counter(
            "mlops_model_load_failures", "Bundles that failed to load", ["model"], registry=registry
        )
        self.load_error = Gauge(
            "mlops_model_load_error",
            "1 while the latest bundle of a model failed to load",
            ["model"],
            registry=registry,
        )
        self.bundle_damaged = Gauge(
            "mlops_model_bundle_damaged",
            "1 while the bundle on disk of the model being served is damaged or gone",
            ["model"],
            registry=registry,
        )
        registry.register(RejectedBeforeApp())
        self.prediction_log_dropped = Counter(
            "mlops_prediction_log_dropped",
            "Prediction records dropped (queue full)",
            registry=registry,
        )

    def model_loaded(self, model: str, version: str, previous_version: str | None) -> None:
        if previous_version is not None and previous_version != version:
            with contextlib.suppress(KeyError):
                self.model_info.remove(model, previous_version)
        self.model_info.labels(model, version).set(1)

    def model_failed(self, model: str) -> None:
        self.load_failures.labels(model).inc()

    def show_load_errors(self, errors: dict[str, bool]) -> None:
        for model, failing in errors.items():
            self.load_error.labels(model).set(1 if failing else 0)

    def show_damage(self, damaged: dict[str, bool]) -> None:
        for model, is_damaged in damaged.items():
            self.bundle_damaged.labels(model).set(1 if is_damaged else 0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
