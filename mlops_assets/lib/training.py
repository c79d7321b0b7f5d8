"""Candidate models: one scikit-learn Pipeline per family, tuned by a small cross-validated search.

All preprocessing (imputation, encoding, scaling) lives inside the Pipeline, so serving applies
exactly what training applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, TimeSeriesSplit
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.utils import resample

from mlops_assets.lib.spec import METRICS, DatasetSpec
from mlops_contract.dates import date_part_names, date_parts

if TYPE_CHECKING:
    from mlops_assets.lib.search import Study

SEED = 0
SEARCH_ROWS = 20_000
SCORERS = {
    "r2": "r2",
    "rmse": "neg_root_mean_squared_error",
    "mae": "neg_mean_absolute_error",
    "accuracy": "accuracy",
    "f1_macro": "f1_macro",
    "log_loss": "neg_log_loss",
}


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    log: bool = False


@dataclass(frozen=True)
class FloatRange:
    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Family:
    """A model family and its hyperparameters: `grid` the settings a grid search tries, `space`
    the ranges an Optuna study samples (the same hyperparameters, around the grid's values)."""

    name: str
    estimator: Any
    grid: dict[str, list]
    space: dict[str, IntRange | FloatRange]


def families(task: str) -> list[Family]:
    boosting_grid = {"learning_rate": [0.1], "max_leaf_nodes": [15, 31]}
    boosting_space = {
        "learning_rate": FloatRange(0.02, 0.3, log=True),
        "max_leaf_nodes": IntRange(8, 64, log=True),
    }
    if task == "regression":
        return [
            Family(
                "ridge",
                Ridge(),
                {"alpha": [0.1, 1.0, 10.0]},
                {"alpha": FloatRange(1e-3, 1e3, log=True)},
            ),
            Family(
                "random_forest",
                RandomForestRegressor(n_estimators=60, max_depth=12, random_state=SEED, n_jobs=1),
                {"min_samples_leaf": [2, 5]},
                {"min_samples_leaf": IntRange(1, 20, log=True)},
            ),
            Family(
                "hist_gradient_boosting",
                HistGradientBoostingRegressor(random_state=SEED),
                boosting_grid,
                boosting_space,
            ),
        ]
    return [
        Family(
            "logistic_regression",
            LogisticRegression(max_iter=2000),
            {"C": [0.1, 1.0, 10.0]},
            {"C": FloatRange(1e-3, 1e3, log=True)},
        ),
        Family(
            "random_forest",
            RandomForestClassifier(n_estimators=60, random_state=SEED, n_jobs=1),
            {"min_samples_leaf": [1, 3]},
            {"min_samples_leaf": IntRange(1, 10, log=True)},
        ),
        Family(
            "hist_gradient_boosting",
            HistGradientBoostingClassifier(random_state=SEED),
            boosting_grid,
            boosting_space,
        ),
    ]


def preprocessor(spec: DatasetSpec) -> ColumnTransformer:
    def named(kind: str) -> list[str]:
        return [c.name for c in spec.feature_columns if c.kind == kind]

    numeric, dates, categorical = named("numeric"), named("date"), named("categorical")
    return ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "dates",
                make_pipeline(
                    FunctionTransformer(date_parts, feature_names_out=date_part_names),
                    SimpleImputer(strategy="median"),
                    StandardScaler(),
                ),
                dates,
            ),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                categorical,
            ),
        ]
    )


def _cv(spec: DatasetSpec):
    """Rolling-origin folds (each trains on everything before its test block) for a time split,
    where shuffled folds would train on the future; shuffled (stratified) folds otherwise."""
    if spec.split.method == "time":
        return TimeSeriesSplit(n_splits=spec.cv_folds)
    splitter = StratifiedKFold if spec.task == "classification" else KFold
    return splitter(n_splits=spec.cv_folds, shuffle=True, random_state=SEED)


@dataclass
class Candidate:
    family: str
    model: Pipeline
    params: dict[str, Any]
    cv_score: float
    searched_rows: int
    fold_scores: list[float]  # the chosen settings' score on each cross-validation fold
    trials: int  # settings compared: the grid's size, or the study's finished trials


@dataclass(frozen=True)
class SearchResult:
    """The best settings a search found, scored in the selection metric's own units."""

    params: dict[str, Any]
    cv_score: float
    fold_scores: list[float]
    trials: int


def fit_candidate(
    family: Family,
    spec: DatasetSpec,
    x,
    y,
    search_rows: int = SEARCH_ROWS,
    study: Study | None = None,
) -> Candidate:
    """Cross-validated search on at most `search_rows` rows (a seeded sample), then the best
    settings refit on every row: the search compares settings, which a sample does about as well,
    while its folds on all rows cost most of the training time on large tables.

    The search is the family's grid, or with `search.backend: optuna` the study `study` (where
    it is stored, and what hears of each finished trial)."""
    pipeline = Pipeline([("prepare", preprocessor(spec)), ("model", family.estimator)])
    x_search, y_search = _search_sample(x, y, search_rows, spec.split.method == "time")
    if spec.search.backend == "optuna":
        from mlops_assets.lib.search import optuna_search

        if study is None:
            raise ValueError(f"{spec.name}: an optuna search needs a study (its storage, name)")
        found = optuna_search(family, spec, pipeline, x_search, y_search, study)
    else:
        found = grid_search(family, spec, pipeline, x_search, y_search)
    settings = {f"model__{key}": value for key, value in found.params.items()}
    model = _refit_on_all_cores(clone(pipeline).set_params(**settings), x, y)
    return Candidate(
        family.name,
        model,
        found.params,
        found.cv_score,
        len(x_search),
        found.fold_scores,
        found.trials,
    )


def grid_search(family: Family, spec: DatasetSpec, pipeline: Pipeline, x, y) -> SearchResult:
    grid = {f"model__{key}": values for key, values in family.grid.items()}
    search = GridSearchCV(
        pipeline, grid, scoring=SCORERS[spec.selection_metric], cv=_cv(spec), n_jobs=1, refit=False
    )
    search.fit(x, y)
    sign = metric_sign(spec)
    params = {key.removeprefix("model__"): value for key, value in search.best_params_.items()}
    best = search.best_index_
    folds = [
        sign * float(search.cv_results_[f"split{i}_test_score"][best]) for i in range(spec.cv_folds)
    ]
    trials = len(search.cv_results_["params"])
    return SearchResult(params, sign * float(search.best_score_), folds, trials)


def metric_sign(spec: DatasetSpec) -> float:
    """From a scorer's value (higher is better) to the metric's own units, and back."""
    return 1.0 if spec.higher_is_better else -1.0


def _refit_on_all_cores(pipeline: Pipeline, x, y) -> Pipeline:
    """Fit a forest's trees on every core, then back to one job: a served model scores small
    batches, where a thread team per call costs more than it saves. (Histogram gradient
    boosting already uses every core; other families' `n_jobs` does nothing.)"""
    if not isinstance(pipeline[-1], RandomForestRegressor | RandomForestClassifier):
        return pipeline.fit(x, y)
    pipeline.set_params(model__n_jobs=-1).fit(x, y)
    return pipeline.set_params(model__n_jobs=1)


def _search_sample(x, y, rows: int, time_ordered: bool):
    if len(x) <= rows:
        return x, y
    if time_ordered:  # the latest rows, still in order
        return x.iloc[-rows:], y[-rows:]
    return resample(x, y, n_samples=rows, replace=False, random_state=SEED)


def holdout_metrics(task: str, model, x, y) -> dict[str, float]:
    """Test-set metrics, named `test_<metric>` as they are logged to MLflow."""
    predicted = model.predict(x)
    if task == "regression":
        values = {
            "r2": r2_score(y, predicted),
            "rmse": float(np.sqrt(mean_squared_error(y, predicted))),
            "mae": mean_absolute_error(y, predicted),
        }
    else:
        values = {
            "accuracy": accuracy_score(y, predicted),
            "f1_macro": f1_score(y, predicted, average="macro"),
            "log_loss": log_loss(y, model.predict_proba(x), labels=model.classes_),
        }
    return {f"test_{name}": float(value) for name, value in values.items()}


@dataclass(frozen=True)
class Baseline:
    name: str  # "mean", "class priors", "last value", "no change"
    model: Any  # predicts the holdout rows it was made for


class NaiveForecast:
    """The one-step naive forecast of a time-ordered holdout: each row's prediction is the
    target's previous value (the last training value for the first row)."""

    def __init__(self, y_train, y_test) -> None:
        self.forecast = np.concatenate([np.asarray(y_train[-1:]), np.asarray(y_test[:-1])])

    def predict(self, x):
        return self.forecast[: len(x)].astype(float)


def baseline(spec: DatasetSpec, x_train, y_train, x_test, y_test) -> Baseline:
    """What a champion must beat: the mean, or the class priors. A time-ordered regression is
    held to the stronger of the mean and the naive forecasts (the last value, and no change for
    a difference target) on the same holdout."""
    if spec.task == "classification":
        return Baseline("class priors", DummyClassifier(strategy="prior").fit(x_train, y_train))
    mean = Baseline("mean", DummyRegressor(strategy="mean").fit(x_train, y_train))
    if spec.split.method != "time":
        return mean
    options = [
        mean,
        Baseline("last value", NaiveForecast(y_train, y_test)),
        Baseline(
            "no change", DummyRegressor(strategy="constant", constant=0.0).fit(x_train, y_train)
        ),
    ]
    key = f"test_{spec.selection_metric}"
    sign = 1.0 if spec.higher_is_better else -1.0
    scores = [
        sign * holdout_metrics(spec.task, option.model, x_test, y_test)[key] for option in options
    ]
    return options[int(np.argmax(scores))]


def improvement(spec: DatasetSpec, new: dict[str, float], old: dict[str, float]) -> float:
    """How much `new` beats `old` on the selection metric (positive = better)."""
    key = f"test_{spec.selection_metric}"
    difference = new[key] - old[key]
    return difference if METRICS[spec.task][spec.selection_metric] else -difference
