"""The candidate search: settings compared on a sample of a large table, the model fit on all;
rolling-origin folds and a naive-forecast baseline for a time split."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from mlops_assets.lib.promotion import decide
from mlops_assets.lib.spec import Split
from mlops_assets.lib.training import (
    SCORERS,
    _cv,
    baseline,
    families,
    fit_candidate,
    holdout_metrics,
    preprocessor,
)
from mlops_assets_tests.synthetic import abalone_features


def abalone_like(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    x = abalone_features(rows, seed)
    noise = np.random.default_rng(seed + 1).normal(0, 1, rows)
    return x, pd.Series(x["Length"] * 20 + noise, name="Rings")


def ridge():
    return next(f for f in families("regression") if f.name == "ridge")


def test_a_small_table_is_searched_whole_as_a_plain_grid_search(builtin_specs):
    spec = builtin_specs["abalone"]
    x, y = abalone_like(400)
    candidate = fit_candidate(ridge(), spec, x, y)
    pipeline = Pipeline([("prepare", preprocessor(spec)), ("model", ridge().estimator)])
    grid = {f"model__{k}": v for k, v in ridge().grid.items()}
    plain = GridSearchCV(pipeline, grid, scoring=SCORERS["r2"], cv=_cv(spec)).fit(x, y)
    assert candidate.searched_rows == 400
    assert candidate.params == {k.removeprefix("model__"): v for k, v in plain.best_params_.items()}
    assert candidate.cv_score == plain.best_score_
    assert np.array_equal(candidate.model.predict(x), plain.best_estimator_.predict(x))


def test_a_large_table_is_searched_on_a_sample_and_refit_on_every_row(builtin_specs):
    spec = builtin_specs["abalone"]
    x, y = abalone_like(3000)
    y = y.to_numpy()  # as features.model_inputs gives it
    candidate = fit_candidate(ridge(), spec, x, y, search_rows=500)
    assert candidate.searched_rows == 500
    on_all_rows = Pipeline([("prepare", preprocessor(spec)), ("model", clone(ridge().estimator))])
    on_all_rows.set_params(**{f"model__{k}": v for k, v in candidate.params.items()}).fit(x, y)
    assert np.allclose(candidate.model.predict(x), on_all_rows.predict(x), rtol=0, atol=1e-12)


def test_the_refit_model_is_saved_with_one_job_and_the_same_trees(builtin_specs):
    spec = builtin_specs["abalone"]
    x, y = abalone_like(300)
    forest = next(f for f in families("regression") if f.name == "random_forest")
    candidate = fit_candidate(forest, spec, x, y.to_numpy())
    single = clone(forest.estimator).set_params(
        **candidate.params, n_jobs=1
    )  # same seed, one job: the trees do not depend on the number of jobs
    reference = Pipeline([("prepare", preprocessor(spec)), ("model", single)]).fit(x, y)
    assert candidate.model[-1].n_jobs == 1
    assert np.array_equal(candidate.model.predict(x), reference.predict(x))


def time_split(spec):
    return spec.model_copy(update={"split": Split(method="time", column="Length")})


def test_a_time_split_searches_rolling_origin_folds_and_records_each(builtin_specs):
    spec = time_split(builtin_specs["abalone"])
    x, y = abalone_like(400)
    for train, test in _cv(spec).split(x):
        assert train.max() < test.min()  # never trained on the future
    candidate = fit_candidate(ridge(), spec, x, y.to_numpy())
    assert len(candidate.fold_scores) == spec.cv_folds
    assert np.mean(candidate.fold_scores) == pytest.approx(candidate.cv_score)


def test_a_time_split_searches_the_latest_rows_in_order(builtin_specs):
    spec = time_split(builtin_specs["abalone"])
    x, y = abalone_like(3000)
    candidate = fit_candidate(ridge(), spec, x, y.to_numpy(), search_rows=500)
    x_last, y_last = x.iloc[-500:], y.to_numpy()[-500:]
    pipeline = Pipeline([("prepare", preprocessor(spec)), ("model", ridge().estimator)])
    grid = {f"model__{k}": v for k, v in ridge().grid.items()}
    plain = GridSearchCV(pipeline, grid, scoring=SCORERS["r2"], cv=_cv(spec)).fit(x_last, y_last)
    assert candidate.cv_score == plain.best_score_


def series(values: np.ndarray) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    x = abalone_features(len(values), 0)
    cut = int(len(values) * 0.8)
    return x.iloc[:cut], values[:cut], x.iloc[cut:], values[cut:]


def test_a_time_ordered_regression_is_held_to_the_stronger_naive_forecast(builtin_specs):
    spec = time_split(builtin_specs["abalone"])
    steps = np.random.default_rng(3).normal(0, 1, 500)
    level = 100 + np.cumsum(steps)  # a price: tomorrow is about today
    held = baseline(spec, *series(level))
    assert held.name == "last value"
    x_train, y_train, x_test, y_test = series(level)
    naive = holdout_metrics("regression", held.model, x_test, y_test)["test_r2"]
    mean = holdout_metrics("regression", baseline(builtin_specs["abalone"], *series(level)).model,
                           x_test, y_test)["test_r2"]  # fmt: skip
    assert naive > mean
    # a day-over-day change: yesterday's change says nothing, the mean or no change does
    assert baseline(spec, *series(steps)).name in ("mean", "no change")
    assert baseline(builtin_specs["abalone"], *series(level)).name == "mean"  # random split


def test_the_gate_names_the_baseline_it_held_the_model_to(builtin_specs):
    decision = decide(
        builtin_specs["abalone"], {"test_r2": 0.1}, {"test_r2": 0.4}, None, "last value"
    )
    assert not decision.beats_baseline and "last value baseline" in decision.reason
