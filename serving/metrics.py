"""Prometheus metrics, in a registry of the app's own so several apps can live in one process.

With several workers (`mlops serve --workers N`, serving.server sets PROMETHEUS_MULTIPROC_DIR)
counters and histograms go through prometheus_client's multiprocess files, so whichever worker
answers a scrape reports every worker's requests. The state gauges (model served, load error,
damage, drift, promotion time) are not counted but read: they are built at scrape time from what
this worker has loaded (every worker reads the same bundles and drift files), which also lets a
stale label set (an old version, a feature no longer evaluated) disappear: multiprocess files
cannot remove a label set.
"""

from __future__ import annotations

import collections
import os
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

CONTENT_TYPE = CONTENT_TYPE_LATEST
# requests the HTTP protocol rejected before any app saw them (serving.protocol), by status;
# per process, because the protocol layer is shared by every app in it
REJECTED_BEFORE_APP: collections.Counter[int] = collections.Counter()
_rejected_shared: Counter | None = None  # the same count in the multiprocess files


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def record_rejected_before_app(status: int) -> None:
    global _rejected_shared
    REJECTED_BEFORE_APP[status] += 1
    if multiprocess():
        if _rejected_shared is None:
            _rejected_shared = Counter(
                "mlops_http_rejected_before_app", RejectedBeforeApp.HELP, ["status"], registry=None
            )
        _rejected_shared.labels(str(status)).inc()


class RejectedBeforeApp:
    """A collector exposing REJECTED_BEFORE_APP as `mlops_http_rejected_before_app_total`."""

    HELP = "Requests rejected by the HTTP server before the app (headers too large, malformed)"

    def collect(self):
        family = CounterMetricFamily("mlops_http_rejected_before_app", self.HELP, labels=["status"])
        for status, count in sorted(REJECTED_BEFORE_APP.items()):
            family.add_metric([str(status)], count)
        yield family


def _timestamp(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except (TypeError, ValueError):
        return None


class ServedState:
    """Gauges read from what is loaded: set on every reload tick, exported on every scrape."""

    def __init__(self) -> None:
        self.models: dict[str, tuple[str, str | None]] = {}  # model -> (version, promoted_at)
        self.load_errors: dict[str, bool] = {}
        self.damaged: dict[str, bool] = {}
        self.pointer_errors: dict[str, bool] = {}
        self.drift: dict[str, dict] = {}  # model -> drift.json document (mlops_contract.drift)
        self.live: dict[str, dict] = {}  # model -> live.json document (mlops_contract.drift)

    def collect(self):
        info = _gauge("mlops_model_info", "Model being served (value 1)", ["model", "version"])
        promoted = _gauge(
            "mlops_champion_promoted_timestamp_seconds",
            "When the model being served was promoted to champion (manifest promoted_at)",
            ["model", "version"],
        )
        for model, (version, promoted_at) in sorted(self.models.items()):
            info.add_metric([model, version], 1)
            if (seconds := _timestamp(promoted_at)) is not None:
                promoted.add_metric([model, version], seconds)
        yield info
        yield promoted
        yield _flags(
            "mlops_model_load_error", "1 while the latest bundle of a model failed to load",
            self.load_errors,
        )  # fmt: skip
        yield _flags(
            "mlops_model_bundle_damaged",
            "1 while the bundle on disk of the model being served is damaged or gone",
            self.damaged,
        )
        yield _flags(
            "mlops_model_pointer_error",
            "1 while a model's current.json is missing or unreadable though bundles exist",
            self.pointer_errors,
        )
        yield from self._drift_families()
        yield from self._live_families()

    def _drift_families(self):
        labels = ["model", "version", "feature"]
        p_value = _gauge("mlops_drift_p_value", "Drift test p-value per feature", labels)
        psi = _gauge("mlops_drift_psi", "Population stability index per feature", labels)
        drifted = _gauge("mlops_drift_feature_drifted", "1 when the feature drifted", labels)
        dataset = _gauge("mlops_dataset_drift", "1 on dataset drift", ["model", "version"])
        evaluated = _gauge(
            "mlops_drift_evaluated_timestamp_seconds", "When drift was last evaluated", ["model"]
        )
        for model, document in sorted(self.drift.items()):
            version = str(document.get("version"))
            for feature, values in sorted(document.get("features", {}).items()):
                p_value.add_metric([model, version, feature], values["p_value"])
                psi.add_metric([model, version, feature], values["psi"])
                drifted.add_metric([model, version, feature], 1 if values["drifted"] else 0)
            dataset.add_metric([model, version], 1 if document.get("dataset_drift") else 0)
            if (seconds := _timestamp(document.get("evaluated_at"))) is not None:
                evaluated.add_metric([model], seconds)
        yield from (p_value, psi, drifted, dataset, evaluated)

    def _live_families(self):
        metric = _gauge(
            "mlops_live_metric",
            "The served version's metric on the latest day's labelled requests",
            ["model", "version", "metric"],
        )
        labelled = _gauge(
            "mlops_live_labelled", "Labelled requests behind it", ["model", "version"]
        )
        within = _gauge(
            "mlops_live_within_holdout",
            "0 when the live metric fell below the holdout interval (live_within_holdout)",
            ["model", "version"],
        )
        estimated = _gauge(
            "mlops_live_estimated_metric",
            "The served version's metric on the latest day's requests estimated from its "
            "calibrated probabilities, labels or not (classifiers)",
            ["model", "version", "metric"],
        )
        for model, document in sorted(self.live.items()):
            version = str(document.get("version"))
            for name, value in sorted(document["metrics"].items()):
                metric.add_metric([model, version, name], value)
            for name, value in sorted(document.get("estimated", {}).items()):
                estimated.add_metric([model, version, name], value)
            labelled.add_metric([model, version], document.get("labelled", 0))
            within.add_metric([model, version], 1 if document.get("within_holdout", True) else 0)
        yield from (metric, labelled, within, estimated)


def _gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


def _flags(name: str, documentation: str, flags: dict[str, bool]) -> GaugeMetricFamily:
    family = _gauge(name, documentation, ["model"])
    for model, flag in sorted(flags.items()):
        family.add_metric([model], 1 if flag else 0)
    return family


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
            "mlops_http_requests_in_flight", "Requests being served", registry=registry,
            multiprocess_mode="livesum",
        )  # fmt: skip
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
        self.load_failures = Counter(
            "mlops_model_load_failures", "Bundles that failed to load", ["model"], registry=registry
        )
        self.state = ServedState()
        registry.register(self.state)
        registry.register(RejectedBeforeApp())
        self.prediction_log_dropped = Counter(
            "mlops_prediction_log_dropped",
            "Served requests left out of the prediction log (queue and held lines full)",
            registry=registry,
        )
        self.prediction_log_held = Gauge(
            "mlops_prediction_log_held",
            "Served requests whose log lines wait for a writable disk",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.feedback_labels = Counter(
            "mlops_feedback_labels", "Labels accepted by POST /models/{name}/feedback", ["model"],
            registry=registry,
        )  # fmt: skip
        self.shadow_predictions = Counter(
            "mlops_shadow_predictions", "Rows the challenger scored in the shadow",
            ["model", "version"], registry=registry,
        )  # fmt: skip
        self.shadow_dropped = Counter(
            "mlops_shadow_dropped",
            "Requests not scored in the shadow because its queue was full",
            registry=registry,
        )
        self.feedback_dropped = Counter(
            "mlops_feedback_dropped",
            "Feedback requests left out of the feedback log (queue and held lines full)",
            registry=registry,
        )

    def show_models(self, models: dict[str, tuple[str, str | None]]) -> None:
        """model -> (version, promoted_at) of every model being served."""
        self.state.models = dict(models)

    def model_failed(self, model: str) -> None:
        self.load_failures.labels(model).inc()

    def show_load_errors(self, errors: dict[str, bool]) -> None:
        self.state.load_errors = dict(errors)

    def show_damage(self, damaged: dict[str, bool], pointer_errors: dict[str, bool]) -> None:
        self.state.damaged = dict(damaged)
        self.state.pointer_errors = dict(pointer_errors)

    def show_drift(self, documents: dict[str, dict]) -> None:
        self.state.drift = dict(documents)

    def show_live(self, documents: dict[str, dict]) -> None:
        self.state.live = dict(documents)

    def exposition(self) -> bytes:
        if not multiprocess():
            return generate_latest(self.registry)
        from prometheus_client import multiprocess as shared

        registry = CollectorRegistry()
        shared.MultiProcessCollector(registry)
        registry.register(self.state)
        return generate_latest(registry)
