"""Data set specs: one YAML file declares everything the chain needs, from source to serving."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlops_contract.record import FieldType, RecordField
from mlops_contract.series import Series, SeriesFeature

Task = Literal["classification", "regression"]

# metric -> True when higher is better
METRICS: dict[Task, dict[str, bool]] = {
    "regression": {"r2": True, "rmse": False, "mae": False},
    "classification": {"accuracy": True, "f1_macro": True, "log_loss": False},
}
DEFAULT_METRIC: dict[Task, str] = {"regression": "r2", "classification": "f1_macro"}
NAME_PATTERN = r"^[a-z][a-z0-9_]*$"


class SpecError(ValueError):
    """A spec file that cannot be used; the message names the file and the field."""


def api_name_for(column: str) -> str:
    name = re.sub(r"\W", "_", column)
    return f"_{name}" if name[:1].isdigit() else name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Strict):
    name: str
    type: FieldType
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[str | int | float | bool] | None = None
    api_name: str | None = None
    feature: bool = True
    format: str | None = Field(None, description="strptime format for date columns")
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> Column:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if (self.min is not None or self.max is not None) and self.type not in ("float", "int"):
            raise ValueError("min/max apply to float and int columns only")
        if self.api_name is not None and not self.api_name.isidentifier():
            raise ValueError(f"api_name {self.api_name!r} is not an identifier")
        return self

    @property
    def field(self) -> str:
        """The name clients send (the API field)."""
        return self.api_name or api_name_for(self.name)

    @property
    def is_numeric(self) -> bool:
        return self.type in ("float", "int", "bool")

    @property
    def kind(self) -> Literal["numeric", "date", "categorical"]:
        """How the model takes the column in: scaled, split into date parts, or one-hot."""
        if self.is_numeric:
            return "numeric"
        return "date" if self.type == "date" else "categorical"


class Derived(_Strict):
    name: str
    sql: str = Field(description="DuckDB SQL expression over the validated rows; windows allowed")
    type: Literal["float", "int", "category", "bool"] = "float"
    api_name: str | None = None
    feature: bool = True

    def as_column(self) -> Column:
        return Column(
            name=self.name,
            type=self.type,
            nullable=True,
            api_name=self.api_name,
            feature=self.feature,
        )


class Lag(_Strict):
    column: str
    lags: list[int] = Field(min_length=1, description="how many observations back, each >= 1")

    @field_validator("lags")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(n < 1 for n in value):
            raise ValueError("lags are counted in observations back: each must be >= 1")
        return value


class Window(_Strict):
    column: str
    size: int = Field(ge=1, description="the observations before the row it summarizes")
    stats: list[Literal["mean", "min", "max"]] = ["mean"]


class SeriesSpec(_Strict):
    """Lags and windows over earlier observations of one entity, in time order: computed in
    DuckDB for training and by the server from the observations it keeps."""

    time: str
    entity: str | None = None
    lags: list[Lag] = []
    windows: list[Window] = []
    max_gap_days: int | None = Field(
        None, ge=1, description="a request whose last observation is older is refused (422)"
    )

    def features(self) -> tuple[SeriesFeature, ...]:
        lagged = [
            SeriesFeature(f"{lag.column}_lag{n}", lag.column, "lag", n)
            for lag in self.lags
            for n in lag.lags
        ]
        windowed = [
            SeriesFeature(f"{window.column}_{stat}{window.size}", window.column, stat, window.size)
            for window in self.windows
            for stat in window.stats
        ]
        return tuple(lagged + windowed)

    def compiled(self) -> Series:
        return Series(self.time, self.entity, self.features(), self.max_gap_days)


class ReadOptions(_Strict):
    delimiter: str = ","
    header: bool | Literal["auto"] = True
    na_values: list[str] = ["", "NA", "NaN", "nan", "null", "NULL", "None"]
    thousands: str | None = None
    quote: str = '"'


class Split(_Strict):
    method: Literal["random", "time"] = "random"
    seed: int = 42
    test_fraction: float = Field(0.2, gt=0, lt=1)
    column: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Split:
        if self.method == "time" and not self.column:
            raise ValueError("a time split needs `column`")
        return self


class LiveEvidence(_Strict):
    """A challenger scored in the shadow of the champion is promoted when it beats it on live
    labelled requests (see lib.shadow.live_evidence)."""

    min_labelled: int = Field(
        description="fewest labelled requests both versions scored (a paired bootstrap on "
        "fewer is too coarse to trust)",
        ge=30,
    )


class Gates(_Strict):
    max_quarantine_share: float = Field(0.05, ge=0, le=1)
    max_duplicate_share: float = Field(0.05, ge=0, le=1)
    min_rows: int = Field(50, ge=1)
    baseline_margin: float = Field(0.0, description="how much the champion must beat the dummy by")
    promotion_margin: float = Field(
        0.0, description="how much a challenger may trail the champion and still be promoted"
    )
    drift_alpha: float = Field(0.05, gt=0, lt=1, description="p-value under which it drifted")
    max_drift_share: float = Field(
        0.5, gt=0, le=1, description="share of drifted features that makes it dataset drift"
    )
    drift_min_rows: int = Field(
        200,
        ge=1,
        description="fewest rows in the current window for drift to be judged: a few requests "
        "differ from the training data by chance, and are reported as too small to judge",
    )
    live_min_labels: int = Field(
        100,
        ge=1,
        description="fewest labelled predictions of a version on a day for its live performance "
        "to be judged against its holdout interval",
    )
    max_slice_gap: float | None = Field(
        None,
        ge=0,
        description="how far a slice of a feature named in `slices` may trail the overall metric",
    )
    promote_on_live_evidence: LiveEvidence | None = Field(
        None,
        description="unset: only the holdout promotes; `{min_labelled: N}`: "
        "`<ds>/shadow_comparison` also promotes the challenger when it beats the champion on "
        "N or more labelled requests with the paired interval of the improvement above zero",
    )


class Search(_Strict):
    """How each family's settings are chosen: every setting of its grid, or an Optuna study
    (TPE) within a budget per family, `trials` and/or `seconds`, whichever runs out first."""

    backend: Literal["grid", "optuna"] = "grid"
    trials: int | None = Field(None, ge=1, description="trials per family, stored ones included")
    seconds: float | None = Field(
        None, gt=0, description="search seconds per family, stored trials' time included"
    )

    @model_validator(mode="after")
    def _check(self) -> Search:
        budget = self.trials is not None or self.seconds is not None
        if self.backend == "optuna" and not budget:
            raise ValueError("an optuna search needs a budget: `trials`, `seconds` or both")
        if self.backend == "grid" and budget:
            raise ValueError(
                "`trials` and `seconds` are an optuna budget; the grid tries each of its settings"
            )
        return self


class DatasetSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    source: str
    sha256: str | None = None
    license: str | None = None
    read: ReadOptions = ReadOptions()
    columns: list[Column] = Field(min_length=1)
    derived: list[Derived] = []
    target: str
    task: Task
    split: Split = Split()
    metric: str | None = None
    gates: Gates = Gates()
    slices: list[str] = Field(
        [], description="feature columns whose slices gates.max_slice_gap checks"
    )
    cv_folds: int = Field(3, ge=2, le=10)
    search: Search = Search()
    series: SeriesSpec | None = None
    path: Path | None = Field(None, exclude=True)

    @field_validator("source")
    @classmethod
    def _source_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("source is empty")
        return value

    @model_validator(mode="after")
    def _check(self) -> DatasetSpec:
        names = [c.name for c in self.all_columns]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"column names repeat: {duplicated}")
        fields = [c.field for c in self.all_columns]
        if len(set(fields)) != len(fields):
            raise ValueError(f"API field names collide: {fields}")
        if self.target not in names:
            raise ValueError(f"target {self.target!r} is not a column")
        if self.split.column and self.split.column not in names:
            raise ValueError(f"split.column {self.split.column!r} is not a column")
        if self.metric and self.metric not in METRICS[self.task]:
            allowed = sorted(METRICS[self.task])
            raise ValueError(f"metric {self.metric!r} is not one of {allowed} for {self.task}")
        if self.task == "classification" and self.column(self.target).type not in (
            "category",
            "int",
            "bool",
        ):
            raise ValueError("a classification target must be a category, int or bool column")
        if not self.feature_columns:
            raise ValueError("no feature columns: every column is the target or excluded")
        self._check_slices()
        self._check_series()
        return self

    def _check_series(self) -> None:
        if self.series is None:
            return
        file_columns = {c.name: c for c in self.columns}
        time = file_columns.get(self.series.time)
        if time is None or time.type != "date":
            raise ValueError(f"series.time {self.series.time!r} must be a date column of the file")
        for role, name in (("time", self.series.time), ("entity", self.series.entity)):
            column = file_columns.get(name) if name is not None else None
            if name is not None and (column is None or not column.feature):
                raise ValueError(
                    f"series.{role} {name!r} must be a request field (a file column that is a "
                    "feature): the server reads it from each request"
                )
        for feature in self.series_features:
            observed = file_columns.get(feature.column)
            if observed is None or not observed.is_numeric:
                raise ValueError(
                    f"series feature {feature.name}: {feature.column!r} is not a numeric column "
                    "of the file"
                )
            if not observed.feature or observed.name == self.target:
                raise ValueError(
                    f"series feature {feature.name}: {feature.column!r} must be a request field "
                    "(a feature, not the target): the server keeps the history of what it is sent"
                )
        if not self.series_features:
            raise ValueError("series: declare at least one of `lags` or `windows`")

    def _check_slices(self) -> None:
        features = [c.name for c in self.feature_columns]
        unknown = [name for name in self.slices if name not in features]
        if unknown:
            raise ValueError(f"slices {unknown} are not feature columns (features: {features})")
        if self.gates.max_slice_gap is not None and not self.slices:
            raise ValueError(
                "gates.max_slice_gap needs `slices`: the features whose slices it checks"
            )

    @property
    def series_features(self) -> tuple[SeriesFeature, ...]:
        return self.series.features() if self.series else ()

    @property
    def all_columns(self) -> list[Column]:
        """The file's columns, the derived ones, then the series features."""
        series = [Column(name=f.name, type="float", nullable=True) for f in self.series_features]
        return self.columns + [d.as_column() for d in self.derived] + series

    def column(self, name: str) -> Column:
        return next(c for c in self.all_columns if c.name == name)

    @property
    def feature_columns(self) -> list[Column]:
        """Model inputs: every column except the target and those marked feature: false. A date
        reaches the model whole and is split into its parts inside it (`mlops_contract.dates`)."""
        return [c for c in self.all_columns if c.name != self.target and c.feature]

    @property
    def drift_columns(self) -> list[Column]:
        """The features drift compares: those a request sends, not dates (in live traffic newer
        than every training date by design) and not series features (computed, not sent)."""
        computed = {f.name for f in self.series_features}
        return [c for c in self.feature_columns if c.kind != "date" and c.name not in computed]

    def rule(self, column: Column) -> RecordField:
        """What a value of `column` must be, read from the spec once: the SQL split, the pandera
        gate, the traffic generator and the API contract are all generated from these."""
        return RecordField(
            name=column.field,
            column=column.name,
            type=column.type,
            nullable=column.nullable and column.name != self.target,
            minimum=column.min,
            maximum=column.max,
            allowed=None if column.allowed is None else tuple(column.allowed),
            date_format=column.format,
            description=column.description,
        )

    @property
    def rules(self) -> tuple[RecordField, ...]:
        """The rules of the file's columns, in spec order: what validation enforces."""
        return tuple(self.rule(c) for c in self.columns)

    @property
    def input_rules(self) -> tuple[RecordField, ...]:
        """The rules of the model inputs a request sends, in model input order: what the
        prediction API accepts (series features are computed from history, not sent)."""
        computed = {f.name for f in self.series_features}
        return tuple(self.rule(c) for c in self.feature_columns if c.name not in computed)

    @property
    def selection_metric(self) -> str:
        return self.metric or DEFAULT_METRIC[self.task]

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.task][self.selection_metric]


def _format_error(path: Path, error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return f"{path}: field `{where}`: {first['msg']}"


# libyaml's safe loader where PyYAML has it: the pure-Python one spends ~8 ms on a spec, and
# the code location parses every spec while it loads
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_spec(text: str, path: Path) -> DatasetSpec:
    try:
        raw = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a spec must be a YAML mapping, got {type(raw).__name__}")
    try:
        spec = DatasetSpec.model_validate({**raw, "path": path})
    except ValidationError as exc:
        raise SpecError(_format_error(path, exc)) from None
    if spec.name != path.stem:
        raise SpecError(
            f"{path}: field `name`: {spec.name!r} must match the file name {path.stem!r}"
        )
    return spec


def load_spec(path: Path) -> DatasetSpec:
    return parse_spec(path.read_text(encoding="utf-8"), path)


def spec_files(directory: Path) -> list[Path]:
    """The spec files of a folder; each one's name (without the suffix) is its data set's."""
    if not directory.is_dir():
        raise SpecError(f"{directory}: spec directory does not exist")
    return sorted(directory.glob("*.y*ml"))


def load_specs(directory: Path) -> dict[str, DatasetSpec]:
    """The specs of a folder, by data set name."""
    return {path.stem: load_spec(path) for path in spec_files(directory)}
