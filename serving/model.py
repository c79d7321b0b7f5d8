"""A loaded champion: an immutable object requests hold on to while a newer one is swapped in."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from mlops_contract.bundle import HISTORY_FILE, Bundle, BundleError, read_regular
from mlops_contract.record import RecordField, example_record, manifest_fields, record_schema
from mlops_contract.series import Series
from mlops_contract.validation import Field, compile_fields
from serving.inference import Predictor, compile_predictor

TASKS = ("classification", "regression")


@dataclass(frozen=True)
class Prediction:
    """Model output for a batch, in row order; probabilities only for classifiers.

    `unscorable` holds the rows the model cannot score: their features or outputs are not finite
    (a value far outside what the model was fitted on overflows its arithmetic). Those rows get
    None and are answered 422, never sent or logged as a prediction."""

    values: list
    probabilities: list[dict[str, float]] | None
    unscorable: frozenset[int] = frozenset()


@dataclass(frozen=True)
class LoadedModel:
    dataset: str
    manifest: dict[str, Any]
    fields: tuple[Field, ...]
    estimator: Any
    labels: tuple | None
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    series_window: dict | None = None  # a series model's history at promotion (HISTORY_FILE)

    @cached_property
    def predictor(self) -> Predictor:
        return compile_predictor(self.estimator)

    @cached_property
    def series(self) -> Series | None:
        """The lags and windows the server computes from history, for a series model."""
        entry = self.manifest.get("series")
        return Series.from_manifest(entry) if entry else None

    @cached_property
    def frame_fields(self) -> tuple[Field, ...]:
        """What a row holds: the request's fields, then a series model's computed features."""
        if self.series is None:
            return self.fields
        features = self.series.features
        computed = tuple(RecordField(f.name, f.name, "float", nullable=True) for f in features)
        return self.fields + compile_fields(computed)

    @cached_property
    def row_layout(self) -> tuple[tuple[str, str], ...]:
        """(column, type) of each value of a row, in order: what `predict` takes."""
        return tuple((f.column, f.type) for f in self.frame_fields)

    def baseline_row(self) -> list:
        """A typical row: the contract's examples, computed features left to the imputer."""
        return example_row(self.fields) + [None] * (len(self.frame_fields) - len(self.fields))

    @property
    def name(self) -> str:
        return self.dataset

    @property
    def record_fields(self) -> tuple[RecordField, ...]:
        """The record contract: every rule a request record obeys."""
        return tuple(field.contract for field in self.fields)

    @cached_property
    def input_schema(self) -> dict[str, Any]:
        """The contract as the JSON Schema of one record (the manifest's `input_schema`, or the
        same schema built from a legacy manifest's `inputs`)."""
        return record_schema(self.dataset, self.record_fields)

    @property
    def version(self) -> str:
        return str(self.manifest.get("version"))

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def bundle_id(self) -> str:
        return self.manifest.get("bundle_id", "")

    @cached_property
    def _columns_path(self) -> bool:
        """Compiled preprocessing over plain column arrays (dates need a DataFrame's parsing)."""
        has_dates = any(field.type == "date" for field in self.frame_fields)
        return self.predictor.prepare_columns is not None and not has_dates

    def predict(self, rows: list[list]) -> Prediction:
        """Scores the rows whose features are finite; the others are `unscorable`, so one bad
        record neither fails nor slows the batch it shares with others."""
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported per row
            return self._predict(rows)

    def _predict(self, rows: list[list]) -> Prediction:
        if self._columns_path:
            features = self.predictor.prepare_columns(column_arrays(rows, self.frame_fields))
        else:
            features = self.predictor.prepare(to_frame(rows, self.frame_fields))
        finite = _finite_rows(features, len(rows))
        if finite.all():
            return self._predict_features(features)
        kept = np.flatnonzero(finite)
        subset = features.iloc[kept] if isinstance(features, pd.DataFrame) else features[kept]
        scored = self._predict_features(subset) if len(kept) else Prediction([], [])
        values: list = [None] * len(rows)
        probabilities: list | None = None if self.labels is None else [None] * len(rows)
        for position, index in enumerate(kept.tolist()):
            values[index] = scored.values[position]
            if probabilities is not None:
                probabilities[index] = scored.probabilities[position]
        unscorable = {int(i) for i in np.flatnonzero(~finite)}
        unscorable |= {int(kept[i]) for i in scored.unscorable}
        return Prediction(values, probabilities, frozenset(unscorable))

    def _predict_features(self, features) -> Prediction:
        if self.labels is None:
            values = np.asarray(self.predictor.predict(features))
            bad = _non_finite(values.reshape(len(values), -1))
            return Prediction(values.tolist(), None, bad)
        values, proba = self.predictor.predict_with_proba(features)
        matrix = [dict(zip(self.labels, row, strict=True)) for row in proba.tolist()]
        return Prediction(np.asarray(values).tolist(), matrix, _non_finite(proba))

    def culprits(self, row: list) -> list[str]:
        """The fields of an unscorable row that make it so: those whose typical value in their
        place makes the row scorable."""
        baseline = self.baseline_row()
        trials = [row[:i] + [baseline[i]] + row[i + 1 :] for i in range(len(self.fields))]
        prediction = self.predict(trials)
        return [f.name for i, f in enumerate(self.fields) if i not in prediction.unscorable]


def _finite_rows(features, rows: int) -> np.ndarray:
    """Per row, whether no numeric feature is infinite. NaN stands for a missing value the model
    may handle itself; non-numeric features pass."""
    if isinstance(features, pd.DataFrame):
        features = features.select_dtypes("number").to_numpy(dtype=np.float64)
    array = np.asarray(features)
    if array.dtype.kind not in "fc" or array.ndim != 2:
        return np.ones(rows, dtype=bool)
    return ~np.isinf(array).any(axis=1)


def _non_finite(outputs: np.ndarray) -> frozenset[int]:
    if outputs.dtype.kind not in "fc":
        return frozenset()
    return frozenset(int(i) for i in np.flatnonzero(~np.isfinite(outputs).all(axis=1)))


def _column(values: tuple, type_: str) -> Any:
    has_null = any(value is None for value in values)
    if type_ == "float" or (type_ == "int" and has_null):
        return np.array(values, dtype=np.float64)
    if type_ == "int":
        return np.array(values, dtype=np.int64)
    if type_ == "bool" and not has_null:
        return np.array(values, dtype=bool)
    if type_ == "date":
        return pd.to_datetime(pd.Series(values), errors="coerce")
    return np.array(values, dtype=object)


def column_arrays(rows: list[list], fields: tuple[Field, ...]) -> dict[str, Any]:
    """Validated rows as one array per column, keyed by the spec's column names."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in fields]
    return {
        field.column: _column(values, field.type)
        for field, values in zip(fields, columns, strict=True)
    }


def to_frame(rows: list[list], fields: tuple[Field, ...]) -> pd.DataFrame:
    """Validated rows as a DataFrame with the spec's column names, built column by column."""
    return pd.DataFrame(column_arrays(rows, fields))


def example_row(fields: tuple[Field, ...]) -> list:
    """A valid row to check a model can score at all: the contract's examples (typical training
    values), else values inside each field's rules."""
    record = example_record(tuple(field.contract for field in fields))
    return [field.check(record[field.name]) for field in fields]


def _labels(bundle: Bundle) -> tuple | None:
    manifest, estimator = bundle.manifest, bundle.model
    if manifest["task"] != "classification":
        return None
    if not hasattr(estimator, "predict_proba"):
        raise BundleError(f"{bundle.path}: classifier has no predict_proba")
    model_classes = [str(label) for label in np.asarray(estimator.classes_).tolist()]
    declared = manifest.get("classes")
    if declared is not None and [str(label) for label in declared] != model_classes:
        raise BundleError(
            f"{bundle.path}: manifest classes {declared} differ from the model's {model_classes}"
        )
    return tuple(model_classes)


def _series_window(bundle: Bundle) -> dict:
    try:
        return json.loads(read_regular(bundle.path / HISTORY_FILE))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{bundle.path}: a series model, its history unreadable: {exc}") from exc


def from_bundle(dataset: str, bundle: Bundle) -> LoadedModel:
    """Check a verified bundle is servable (schema, task, a trial prediction) and wrap it."""
    manifest = bundle.manifest
    if manifest.get("task") not in TASKS:
        raise BundleError(f"{bundle.path}: unknown task {manifest.get('task')!r}")
    if not hasattr(bundle.model, "predict"):
        raise BundleError(f"{bundle.path}: model has no predict method")
    try:
        fields = compile_fields(manifest_fields(manifest))
        window = _series_window(bundle) if manifest.get("series") else None
        loaded = LoadedModel(
            dataset, manifest, fields, bundle.model, _labels(bundle), series_window=window
        )
        if loaded.predict([loaded.baseline_row()]).unscorable:
            raise BundleError(f"{bundle.path}: its output for a typical record is not finite")
    except BundleError:
        raise
    except Exception as exc:  # anything the model raises on a valid row makes it unservable
        raise BundleError(f"{bundle.path}: incompatible with its input schema: {exc}") from exc
    return loaded
